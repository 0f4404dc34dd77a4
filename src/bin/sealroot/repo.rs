//! `sealroot repo`: maintain a deployed repository (init, list, fsck, gc,
//! enable-verity), plus what `oci seal|verify` and `deploy` share: trusted
//! certificate arguments and progress reporting.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sealroot::crypto::Cert;
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::sink::ObjectSink;
use sealroot::repo::json::SignatureMode;
use sealroot::repo::store::{Repository, VerityRequest, VerityState};
use sealroot::repo::{SYSROOT_DIR, fsck, gc};
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
    /// Trust every certificate in this directory (*.pem, *.crt, *.cer, *.der)
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
}

/// `--sysroot DIR` or `--repo DIR`.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct RepoLocation {
    /// The root filesystem the initramfs will see (the repository is DIR/sealroot)
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// The repository directory itself
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
}

impl RepoLocation {
    pub fn path(&self) -> PathBuf {
        match (&self.repo, &self.sysroot) {
            (Some(r), _) => r.clone(),
            (None, Some(s)) => s.join(SYSROOT_DIR),
            (None, None) => PathBuf::from(SYSROOT_DIR),
        }
    }
}

const REPO_HELP: &str = "\
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

Examples:
  sealroot repo fsck --sysroot /mnt/root --cert keys/signer.crt.pem
  sealroot repo gc --sysroot /mnt/root --dry-run
  sealroot repo enable-verity --repo /sysroot/sealroot";

#[derive(Args)]
#[command(long_about = REPO_HELP)]
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
        /// fs-verity algorithm of the signed files: fsverity-sha256-12 or fsverity-sha512-12
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
            let repo = Repository::open_or_create(location.path(), Some(algorithm))?;
            println!(
                "repository {} ({})",
                repo.root().display(),
                repo.algorithm()
            );
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::List { location, json } => list(&location, json),
        RepoCommand::Fsck {
            location,
            trust,
            json,
        } => {
            let repo = Repository::open(location.path())?;
            let trusted = trust.load()?;
            let progress = Progress::new("fsck");
            progress.stage("hashing objects, blobs and images");
            let report = fsck::fsck(&repo, &trusted)?;
            progress.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.problems {
                    println!("PROBLEM {}: {}", p.path.display(), p.problem);
                }
                println!(
                    "{}: {} objects, {} blobs, {} images, {} deployments checked; {} signatures \
                     verified{}; {} object signatures verified; {} problems",
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
                    report.problems.len()
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
            let repo = Repository::open(location.path())?;
            let report = gc::gc(&repo, dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.removed {
                    println!(
                        "{} {}",
                        if dry_run { "would remove" } else { "removed" },
                        p.display()
                    );
                }
                println!(
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
    let repo = Repository::open(location.path())?;
    let mut out = Vec::new();
    for (dir, d) in repo.deployments()? {
        match d {
            Ok(d) => out.push(json!({
                "deployment": d, "cmdline": format!("sealroot={}", d.manifest.0),
            })),
            Err(e) => out.push(json!({"directory": dir, "error": e.to_string()})),
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (dir, d) in repo.deployments()? {
            match d {
                Ok(d) => println!(
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
                Err(e) => println!("{}: unreadable: {e}", dir.display()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Enables verity where missing: objects (sha256), and the signed files of
/// each deployment (repository algorithm; builtin signature when the
/// deployment says builtin). Files are re-created atomically (a copy gets
/// verity, then is renamed over) because verity needs a file with no
/// writer, which an in-place file may have.
fn enable_verity(location: &RepoLocation, as_json: bool) -> anyhow::Result<ExitCode> {
    let repo = Repository::open(location.path())?;
    let progress = Progress::new("enable-verity");
    let sha256 = VerityParams::sha256();
    let counts = std::cell::Cell::new([0u64; 2]); // enabled, already
    let counts_signed = std::cell::Cell::new(0u64);
    let bump = |i: usize| {
        let mut c = counts.get();
        c[i] += 1;
        counts.set(c);
    };
    let redo = |path: &Path, request: VerityRequest<'_>| -> anyhow::Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match repo.put_file(path, &bytes, request)? {
            VerityState::Unsupported => anyhow::bail!(
                "{}: this filesystem or kernel has no fs-verity (EOPNOTSUPP); run this on the \
                 target system (ext4 with -O verity, btrfs, f2fs)",
                path.display()
            ),
            _ => bump(0),
        }
        Ok(())
    };
    // Objects get the builtin signature a deployment's bundle has for them
    // (per-object signatures, docs/ipe.md), else none.
    let bundles = sealroot::objsig::repo::RepoBundles::load(&repo)?;
    for (name, path) in fsck::list_objects(&repo)? {
        let f = std::fs::File::open(&path)?;
        if sealroot::verity::ioctl::has_verity(&f).unwrap_or(false) {
            bump(1);
            continue;
        }
        progress.stage(&path.display().to_string());
        let signature = sealroot::repo::json::parse_verity_hex(
            &name,
            sealroot::oci::artifact::VerityAlgorithm::SHA256_12,
        )
        .ok()
        .and_then(|d| bundles.pkcs7(&d));
        if signature.is_some() {
            counts_signed.set(counts_signed.get() + 1);
        }
        redo(
            &path,
            VerityRequest::On {
                params: &sha256,
                signature: signature.as_deref(),
            },
        )?;
    }
    let params = repo.params();
    for (_, d) in repo.deployments()? {
        let mut d = d?;
        if d.signatures == SignatureMode::AttachAtBoot {
            // The initramfs enables verity with the signature at boot.
            continue;
        }
        let artifact = std::fs::read(repo.blob_path(&d.artifact))?;
        let artifact = sealroot::oci::Stored::<sealroot::oci::ImageManifest>::parse(artifact)?;
        let artifact = sealroot::oci::artifact::SealArtifact::parse(&artifact)?;
        use sealroot::oci::artifact::Role;
        for (role, path) in [
            (Role::Manifest, repo.blob_path(&d.manifest.0)),
            (Role::Config, repo.blob_path(&d.config.0)),
            (Role::Merged, repo.image_path(&d.image)),
        ] {
            let f = std::fs::File::open(&path)?;
            if sealroot::verity::ioctl::has_verity(&f).unwrap_or(false) {
                bump(1);
                continue;
            }
            let sig = match (d.signatures, artifact.entry(role)) {
                (SignatureMode::Builtin, Some(e)) => {
                    Some(std::fs::read(repo.blob_path(&e.blob.digest))?)
                }
                _ => None,
            };
            redo(
                &path,
                VerityRequest::On {
                    params: &params,
                    signature: sig.as_deref(),
                },
            )?;
        }
        if !d.verity {
            d.verity = true;
            sealroot::repo::deploy::replace_deployment_json(&repo, &d)?;
        }
    }
    progress.finish();
    let counts = counts.get();
    if as_json {
        println!(
            "{}",
            json!({"enabled": counts[0], "already": counts[1], "objectsSigned": counts_signed.get()})
        );
    } else {
        println!(
            "fs-verity enabled on {} files ({} already had it); {} objects with their builtin signature",
            counts[0],
            counts[1],
            counts_signed.get()
        );
    }
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}
