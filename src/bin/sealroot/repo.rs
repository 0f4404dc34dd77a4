//! `sealroot repo`: maintain a deployed repository (init, list, fsck, gc,
//! enable-verity), plus what `oci seal|verify` and `deploy` share: trusted
//! certificate arguments and progress reporting.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sealroot::crypto::Cert;
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::sink::ObjectSink;
use sealroot::repo::dir::LockHolder;
use sealroot::repo::{Access, Location, Repository, enable, fsck, gc};
use sealroot::verity::{FsVerityDigest, VerityParams};
use serde_json::json;

/// Exit status when a check failed (fsck problems, verification refused).
pub const EXIT_FAILED: u8 = 1;

/// Trusted certificates.
#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// A trusted certificate (PEM or DER, may hold several); repeatable
    #[arg(long = "cert", value_name = "CERT")]
    certs: Vec<PathBuf>,
    /// Trust every certificate in this directory (*.pem, *.crt, *.cer, *.cert, *.der)
    #[arg(long, value_name = "DIR")]
    certs_dir: Vec<PathBuf>,
}

impl TrustArgs {
    pub fn load(&self) -> anyhow::Result<Vec<Cert>> {
        let mut all: Vec<&Path> = self.certs.iter().map(PathBuf::as_path).collect();
        all.extend(self.certs_dir.iter().map(PathBuf::as_path));
        Ok(Cert::load_all(&all)?)
    }
}

/// A spinner on stderr while long work runs, only when stderr is a
/// terminal; counts the files and bytes an import hashes.
pub struct Progress {
    bar: Option<ProgressBar>,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

impl Progress {
    pub fn new(what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(what.to_owned());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub fn stage(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    fn update(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{} files, {} MiB hashed",
                self.files.load(Ordering::Relaxed),
                self.bytes.load(Ordering::Relaxed) >> 20
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An [`ObjectSink`] that reports to a [`Progress`] and forwards.
pub struct CountingSink<'a, S> {
    pub inner: S,
    pub progress: &'a Progress,
}

impl<S: ObjectSink> ObjectSink for CountingSink<'_, S> {
    fn params(&self) -> &VerityParams {
        self.inner.params()
    }

    fn store(&self, content: &mut dyn Read, size: u64) -> std::io::Result<FsVerityDigest> {
        let d = self.inner.store(content, size)?;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes.fetch_add(size, Ordering::Relaxed);
        self.progress.update();
        Ok(d)
    }

    fn store_bytes(&self, data: &[u8]) -> std::io::Result<FsVerityDigest> {
        let d = self.inner.store_bytes(data)?;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        self.progress
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.progress.update();
        Ok(d)
    }
}

/// `--sysroot DIR` or `--repo DIR`.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct RepoLocation {
    /// The root filesystem the initramfs will see (the repository is DIR/sealroot); DIR must
    /// exist, DIR/sealroot must not be a symlink
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// The repository directory itself; its parent must exist, DIR itself must not be a symlink
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
}

impl RepoLocation {
    pub fn location(&self) -> Location {
        match (&self.repo, &self.sysroot) {
            (Some(r), _) => Location::Repo(r.clone()),
            (None, Some(s)) => Location::Sysroot(s.clone()),
            (None, None) => Location::Sysroot(PathBuf::from("/")),
        }
    }

    /// Opens the repository with the lock `access` asks for, saying on
    /// stderr who holds a conflicting one while waiting for it.
    pub fn open(&self, access: Access) -> anyhow::Result<Repository> {
        Ok(Repository::open(&self.location(), access, &mut waiting)?)
    }

    /// Opens the repository exclusively, creating it (never its parent).
    pub fn open_or_create(&self, algorithm: Option<VerityAlgorithm>) -> anyhow::Result<Repository> {
        Ok(Repository::open_or_create(
            &self.location(),
            algorithm,
            &mut waiting,
        )?)
    }
}

/// Tells the user whom a command waits for (docs/repository.md, "Locking").
pub fn waiting(holders: &[LockHolder]) {
    let who = if holders.is_empty() {
        "another process".to_owned()
    } else {
        holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!("sealroot: waiting for the repository lock, held by {who}");
}

pub const REPO_HELP: &str = "\
Maintain a sealroot repository (the layout is docs/repository.md):

  init           create an empty repository with a chosen fs-verity algorithm
  list           show deployments and the kernel argument that boots each
  fsck           re-verify everything: objects' digests against their names, blobs'
                 sha256, images readable with all their objects present, deployments
                 complete and consistent, and (with --cert) every signature
  gc             remove objects, images and blobs no deployment references
                 (--dry-run lists them); state directories are never touched
  enable-verity  enable fs-verity on every repository file that lacks it, e.g. after
                 deploying on a machine whose kernel or filesystem had none

Nothing on the disk steers these commands outside the repository: every path inside it is \
resolved without following symlinks, and a symlink, FIFO, device or hard-linked file where \
the layout has a file or directory is an error naming it (fsck reports it as a problem; gc \
and enable-verity refuse before changing anything). --sysroot DIR must exist and \
DIR/sealroot must be a directory, not a symlink; with --repo DIR the path up to DIR is \
yours, DIR itself must not be a symlink. Only init (and deploy) create the repository, and \
never its parent.

Locking: init, gc and enable-verity (like deploy) lock the repository exclusively, fsck takes \
a shared lock, list none. A command waits for a conflicting lock and says who holds it.

Exit status: 0 success; 1 fsck found problems, or the command refused or failed (the message \
names the file and why); 2 usage error; 3 no repository (or --sysroot) at that path.

Examples:
  sealroot repo fsck --sysroot /mnt/root --cert keys/signer.crt.pem
  sealroot repo gc --sysroot /mnt/root --dry-run
  sealroot repo enable-verity --sysroot /sysroot";

#[derive(Args)]
pub struct RepoArgs {
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create an empty repository
    Init {
        #[command(flatten)]
        location: RepoLocation,
        /// fs-verity algorithm of the objects and signed files: fsverity-sha256-12 or
        /// fsverity-sha512-12 (as `cfsctl init --algorithm`; images must be sealed with it)
        #[arg(long, default_value = "fsverity-sha256-12")]
        algorithm: VerityAlgorithm,
    },
    /// List deployments
    List {
        #[command(flatten)]
        location: RepoLocation,
        #[arg(long)]
        json: bool,
    },
    /// Re-verify the repository; exit 1 when anything is wrong
    Fsck {
        #[command(flatten)]
        location: RepoLocation,
        #[command(flatten)]
        trust: TrustArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove what no deployment references
    Gc {
        #[command(flatten)]
        location: RepoLocation,
        /// Only list what would be removed
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Enable fs-verity on objects, images and signed blobs that lack it
    EnableVerity {
        #[command(flatten)]
        location: RepoLocation,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: RepoArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RepoCommand::Init {
            location,
            algorithm,
        } => {
            let repo = location.open_or_create(Some(algorithm))?;
            if repo.config().is_mixed() {
                outln!(
                    "repository {} ({} signed files, {} objects: created by an older sealroot)",
                    repo.root().display(),
                    repo.algorithm(),
                    repo.object_algorithm()
                );
            } else {
                outln!(
                    "repository {} ({})",
                    repo.root().display(),
                    repo.algorithm()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::List { location, json } => list(&location, json),
        RepoCommand::Fsck {
            location,
            trust,
            json,
        } => {
            let trusted = trust.load()?;
            let repo = location.open(Access::Shared)?;
            let progress = Progress::new("fsck");
            progress.stage("hashing objects, blobs and images");
            let report = fsck::fsck(&repo, &trusted)?;
            progress.finish();
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.problems {
                    outln!("PROBLEM {}: {}", p.path.display(), p.problem);
                }
                outln!(
                    "{}: {} objects, {} blobs, {} images, {} deployments checked; {} signatures \
                     verified{}; {} object signatures verified; {}",
                    repo.root().display(),
                    report.objects,
                    report.blobs,
                    report.images,
                    report.deployments,
                    report.signatures_verified,
                    if trusted.is_empty() {
                        " (no --cert: signatures not checked)"
                    } else {
                        ""
                    },
                    report.object_signatures_verified,
                    match report.problems.len() {
                        1 => "1 problem".to_string(),
                        n => format!("{n} problems"),
                    }
                );
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        RepoCommand::Gc {
            location,
            dry_run,
            json,
        } => {
            let repo = location.open(Access::Exclusive)?;
            let report = gc::gc(&repo, dry_run)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.removed {
                    outln!(
                        "{} {}",
                        if dry_run { "would remove" } else { "removed" },
                        p.display()
                    );
                }
                outln!(
                    "{} {} entries ({} bytes); kept {} objects, {} images, {} blobs",
                    if dry_run { "would remove" } else { "removed" },
                    report.removed.len(),
                    report.bytes,
                    report.kept_objects,
                    report.kept_images,
                    report.kept_blobs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::EnableVerity { location, json } => enable_verity(&location, json),
    }
}

fn list(location: &RepoLocation, as_json: bool) -> anyhow::Result<ExitCode> {
    // No lock: list reads only deployment.json files, which writers
    // replace atomically, so it never waits behind a long deploy.
    let repo = location.open(Access::Unlocked)?;
    let found = repo.deployments()?;
    if as_json {
        let mut out = Vec::new();
        for f in &found {
            match &f.deployment {
                Ok(d) => out.push(json!({
                    "deployment": d, "cmdline": format!("sealroot={}", d.manifest.0),
                })),
                Err(e) => out.push(json!({"directory": f.path, "error": e.to_string()})),
            }
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for f in &found {
            let dir = &f.path;
            match &f.deployment {
                Ok(d) => outln!(
                    "sealroot={}  image {}  {} signatures{}  from {} at {}",
                    d.manifest.0,
                    d.image.to_hex(),
                    d.signatures,
                    if d.verity {
                        ""
                    } else {
                        ", fs-verity NOT enabled"
                    },
                    d.source,
                    d.deployed_at
                ),
                Err(e) => outln!("{}: unreadable: {e}", dir.display()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `repo enable-verity` (`sealroot::repo::enable`).
fn enable_verity(location: &RepoLocation, as_json: bool) -> anyhow::Result<ExitCode> {
    let repo = location.open(Access::Exclusive)?;
    let progress = Progress::new("enable-verity");
    let report = enable::enable_verity(&repo, &mut |p: &Path| {
        progress.stage(&p.display().to_string())
    })?;
    progress.finish();
    if as_json {
        outln!("{}", json!(report));
    } else {
        outln!(
            "fs-verity enabled on {} files ({} already had it); {} objects with their builtin \
             signature",
            report.enabled,
            report.already,
            report.objects_signed
        );
    }
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}
