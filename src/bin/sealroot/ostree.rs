//! `sealroot ostree`: seal ostree commits (docs/ostree.md).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sealroot::atomic::{self, Mode};
use sealroot::crypto::Cert;
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::ostree::binding::{self, Binding};
use sealroot::ostree::deploy::{self, Deployment, SealedFiles, Sysroot};
use sealroot::ostree::image::CommitImage;
use sealroot::ostree::objects::Checksum;
use sealroot::ostree::repo::Repo;
use sealroot::pkcs7::verify_fsverity;
use sealroot::repo::json::SignatureMode;
use serde_json::json;

use crate::repo::{EXIT_FAILED, Progress, TrustArgs};
use crate::sign::{EXIT_INPUT, fail};

pub const LONG_HELP: &str = "\
Seal ostree commits: the composefs EROFS of a commit (byte for byte the `.ostree.cfs` ostree \
writes for it), a signed binding record naming the commit and that EROFS, and the files a \
deployment carries for sealroot-prepare.

The flow:
  # where the key is (the build server), after `ostree commit`:
  sealroot ostree seal --repo /srv/repo exampleos/x86_64/stable \\
      --key keys/signer.key.pem --cert keys/signer.crt.pem
  #   -> signatures in the commit's detached metadata; `ostree pull` brings them along
  sealroot ostree verify --repo /srv/repo exampleos/x86_64/stable --cert keys/signer.crt.pem
  # on the machine, after `ostree pull` and `ostree admin deploy` (not --stage):
  sealroot ostree deploy --sysroot / --cert /etc/sealroot/certs.d/signer.pem
  #   -> .ostree.cfs, .sealroot.binding(.sig) in each deployment; fs-verity on the objects
  sealroot ostree enable-verity --sysroot / --check
  # then boot ostree's own entry (ostree=...) with sealroot-prepare in the initramfs

Everything read from a repository or sysroot is resolved below it without following a \
symlink. Repositories must be bare, bare-user or bare-user-only (a system's /ostree/repo \
is bare).

Every content object hashed is checked against its name (ostree's checksum): an altered \
or planted object is an error naming it, never an image.

Exit status: 0 done, 1 refused or failed (a signature that does not verify, a deployment \
whose objects do not hash to their names, objects without fs-verity with --check), 2 deploy \
without --cert/--certs-dir/--no-verify, 3 unusable input (repository, ref, key, \
certificate, an object that does not hash to its name outside deploy).

The on-disk contract, the threat analysis and the migration: docs/ostree.md.";

#[derive(Args)]
pub struct OstreeArgs {
    #[command(subcommand)]
    command: OstreeCommand,
}

#[derive(Subcommand)]
enum OstreeCommand {
    /// Print the fs-verity digest of a commit's composefs EROFS
    #[command(long_about = COMPUTE_ID_HELP)]
    ComputeId(ComputeIdArgs),
    /// Sign a commit: binding record signature into its detached metadata
    #[command(long_about = SEAL_HELP)]
    Seal(SealArgs),
    /// Check a commit's signatures against trusted certificates
    #[command(long_about = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Write the sealed files into deployments, enable fs-verity on their objects
    #[command(long_about = DEPLOY_HELP)]
    Deploy(DeployArgs),
    /// Enable (or with --check, report) fs-verity on the objects commits reference
    #[command(long_about = ENABLE_VERITY_HELP)]
    EnableVerity(EnableVerityArgs),
}

#[derive(Args)]
struct CommitArgs {
    /// The ostree repository (bare, bare-user or bare-user-only)
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// A commit checksum (64 hex), a ref (refs/heads, refs/mirrors) or REMOTE:REF
    rev: String,
    /// fs-verity algorithm of the EROFS and binding record digests
    #[arg(long, default_value = "fsverity-sha256-12")]
    algorithm: VerityAlgorithm,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

const COMPUTE_ID_HELP: &str = "\
Build the composefs EROFS of a commit as ostree lays it out (ostree's composefs integration: \
every non-empty file external, redirected to objects/XX/<rest>.file with its sha256 \
fs-verity digest; mtimes 0; no hard links; usr, etc, boot, var, sysroot added below the root \
if missing; composefs format 0) and print its fs-verity digest (--algorithm). With the \
default fsverity-sha256-12 this is ostree's own `ostree.composefs.digest.v0` for the commit, \
and the fs-verity digest of the `.ostree.cfs` that `ostree checkout --composefs` or \
`ostree admin deploy` (composefs with verity) writes. Objects without fs-verity are hashed.

Examples:
  sealroot ostree compute-id --repo /ostree/repo exampleos/x86_64/stable
  sealroot ostree compute-id --repo repo 2d2426bb...03d --erofs commit.cfs --dump commit.dump

Exit status: 0 printed, 3 unusable input.";

#[derive(Args)]
struct ComputeIdArgs {
    #[command(flatten)]
    commit: CommitArgs,
    /// Also write the EROFS here
    #[arg(long, value_name = "FILE")]
    erofs: Option<PathBuf>,
    /// Also write its composefs-dump(5) here
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
}

const SEAL_HELP: &str = "\
Sign a commit for sealed boot. Builds the commit's composefs EROFS (see compute-id), makes \
the binding record

  {\"mediaType\":\"application/vnd.sealroot.ostree.binding.v1+json\",\"commit\":\"<hex>\",\
\"algorithm\":\"<alg>\",\"erofs\":\"<hex>\"}

signs its fs-verity digest (--algorithm) as a kernel fs-verity builtin signature (PKCS#7, \
the profile of `sealroot sign`), and adds the signature to the commit's detached metadata \
(objects/XX/<commit>.commitmeta, fetched by `ostree pull`) under \
`sealroot.binding.v1.<alg>.sig` (aay: one per sealing; sealing again with another key adds \
one), with the signed EROFS digest under `sealroot.erofs.v1.<alg>`. The commit itself \
(and its checksum) does not change; other detached metadata (GPG, ostree.sign.*) is kept.

Signer options are those of `oci seal`: --key, or --sign-command (same protocol: the bytes \
to sign on stdin, SEALROOT_SIGN_DIGEST_ALGORITHM, SEALROOT_SIGN_DIGEST, \
SEALROOT_SIGN_KEY_ALGORITHM; the raw signature on stdout), --embed-cert.

Examples:
  sealroot ostree seal --repo /srv/repo exampleos/stable --key signer.key.pem --cert signer.crt.pem
  sealroot ostree seal --repo /srv/repo exampleos/stable --cert signer.crt.pem \\
      --sign-command 'openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign /keys/signer.key.pem'

Exit status: 0 sealed, 3 unusable input (repository, ref, key, certificate, command).";

#[derive(Args)]
struct SealArgs {
    #[command(flatten)]
    commit: CommitArgs,
    #[command(flatten)]
    signer: crate::sign::SignerArgs,
}

const VERIFY_HELP: &str = "\
Rebuild a commit's composefs EROFS, and check each signature in its detached metadata \
(--algorithm) against the binding record of this commit and that EROFS, with the trusted \
certificates (the kernel's rules, `sealroot verify --help`). Reports every signature.

Exit status: 0 at least one signature verifies, 1 none does, 3 unusable input.";

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    commit: CommitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

const DEPLOY_HELP: &str = "\
After `ostree admin deploy`: for each deployment of the sysroot (ostree/deploy/<os>/deploy/\
<commit>.<serial>; all of them, those of --os, or the ones named), build the commit's \
composefs EROFS from ostree/repo, find a signature of its binding record in the commit's \
detached metadata, and write into the deployment directory:

  .ostree.cfs              the EROFS (ostree's file name; replaced if its bytes differ),
                           fs-verity enabled (--algorithm)
  .sealroot.binding        the binding record (commit + EROFS digest), fs-verity enabled,
                           with the signature as builtin signature (--signatures)
  .sealroot.binding.sig    the DER PKCS#7 signature

then enable sha256 fs-verity on every repository object the EROFS references (each object's \
header and content were checked against its name while the EROFS was built, and the \
kernel's measurement must equal the digest the EROFS records). Files already right are \
kept, so running it again is cheap. sealroot-prepare boots such a deployment from \
`ostree=/ostree/boot.N/<os>/<bootcsum>/<serial>` (docs/ostree.md).

Trust (one is required): --cert FILE / --certs-dir DIR: a signature that verifies against \
them (the certificates the initramfs trusts) is deployed, and nothing is written if none \
does; --no-verify deploys without checking the signature (sealroot-prepare checks it at \
boot), and then the commit must carry exactly one signature for --algorithm.

Signatures (--signatures), for .sealroot.binding:
  auto            (default) builtin when the running kernel accepts it (signer in
                  .fs-verity), otherwise detached
  builtin         fs-verity with the PKCS#7 as builtin signature; fails if refused
  detached        fs-verity without signature; the initramfs checks the .sig file
  attach-at-boot  fs-verity off; the initramfs enables it with the signature at boot

Examples:
  ostree admin deploy --os=exampleos exampleos/stable
  sealroot ostree deploy --sysroot / --os exampleos --cert /etc/sealroot/certs.d/signer.pem
  sealroot ostree deploy --sysroot /mnt --no-verify --json 2d2426bb...03d.0

Exit status: 0 deployed, 1 refused (no or no verifying signature, the EROFS differs from \
the signed one, an object changed), 2 neither --cert/--certs-dir nor --no-verify (or \
both), 3 unusable input.";

#[derive(Args)]
struct DeployArgs {
    /// The sysroot (holding ostree/repo and ostree/deploy)
    #[arg(long, value_name = "DIR")]
    sysroot: PathBuf,
    /// Only the deployments of this stateroot (ostree admin --os)
    #[arg(long, value_name = "OS")]
    os: Option<String>,
    /// Deployments to seal, as directory names <commit>.<serial> (default: all)
    #[arg(value_name = "DEPLOYMENT")]
    deployments: Vec<String>,
    /// Deploy the signature that verifies against these (see above)
    #[command(flatten)]
    trust: TrustArgs,
    /// Deploy without verifying the signature (instead of --cert/--certs-dir)
    #[arg(long)]
    no_verify: bool,
    /// auto, builtin, detached or attach-at-boot (see above)
    #[arg(long, default_value = "auto")]
    signatures: String,
    /// fs-verity algorithm of the EROFS and the binding record
    #[arg(long, default_value = "fsverity-sha256-12")]
    algorithm: VerityAlgorithm,
    /// Leave the objects' fs-verity alone (see `sealroot ostree enable-verity`)
    #[arg(long)]
    no_object_verity: bool,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

const ENABLE_VERITY_HELP: &str = "\
Enable sha256 fs-verity (4 KiB blocks) on every content object a commit's composefs EROFS \
references: what overlayfs checks with verity=require, and what ostree itself enables with \
`[ex-integrity] fsverity=true` in the repository config. Each object's header and content \
are checked against its name (ostree's checksum) before it becomes immutable, and the \
kernel's measurement afterwards must equal the digest the EROFS records. With --check nothing \
changes: the objects lacking fs-verity are listed. --sysroot takes the commits of all its \
deployments from its ostree/repo.

Examples:
  sealroot ostree enable-verity --repo /ostree/repo exampleos/stable
  sealroot ostree enable-verity --sysroot / --check --json

Exit status: 0 every object has fs-verity, 1 some lack it (--check, or the filesystem has \
no fs-verity), 3 unusable input.";

#[derive(Args)]
struct EnableVerityArgs {
    /// The ostree repository
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "sysroot",
        required_unless_present = "sysroot"
    )]
    repo: Option<PathBuf>,
    /// A sysroot: the commits of all its deployments, in its ostree/repo
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// Commits or refs (with --repo)
    #[arg(value_name = "REV")]
    revs: Vec<String>,
    /// Change nothing; list the objects lacking fs-verity
    #[arg(long)]
    check: bool,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: OstreeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OstreeCommand::ComputeId(a) => compute_id(&a),
        OstreeCommand::Seal(a) => seal(&a),
        OstreeCommand::Verify(a) => verify(&a),
        OstreeCommand::Deploy(a) => deploy_cmd(&a),
        OstreeCommand::EnableVerity(a) => enable_verity(&a),
    }
}

/// Unusable input: exit 3 (the convention of `sign`, `oci`, `deploy`).
macro_rules! input {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(fail(EXIT_INPUT, &anyhow::Error::from(e))),
        }
    };
}

fn open_commit(a: &CommitArgs) -> anyhow::Result<(Repo, Checksum)> {
    let repo = Repo::open(&a.repo)?;
    let commit = repo.resolve(&a.rev)?;
    Ok((repo, commit))
}

fn build(repo: &Repo, commit: &Checksum, what: &str) -> anyhow::Result<CommitImage> {
    let progress = Progress::new(what);
    progress.stage("reading the commit and hashing its objects");
    let image = CommitImage::build(repo, commit)
        .with_context(|| format!("building the composefs EROFS of commit {commit}"))?;
    progress.finish();
    Ok(image)
}

fn compute_id(a: &ComputeIdArgs) -> anyhow::Result<ExitCode> {
    let (repo, commit) = input!(open_commit(&a.commit));
    let image = input!(build(&repo, &commit, "compute-id"));
    let (bytes, digest) = image.write(&a.commit.algorithm.params())?;
    if let Some(path) = &a.erofs {
        atomic::write(path, Mode::Umask, &bytes)?;
    }
    if let Some(path) = &a.dump {
        atomic::write_with(path, Mode::Umask, |w| {
            sealroot::dumpfile::write_dump(&image.tree, w).map_err(io::Error::other)
        })?;
    }
    if a.commit.json {
        let out = json!({
            "commit": commit.to_hex(),
            "algorithm": a.commit.algorithm.to_string(),
            "digest": digest.to_hex(),
            "erofsSize": bytes.len(),
            "objects": image.objects.len(),
            "objectsWithoutVerity": image.objects.iter().filter(|o| !o.measured).count(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{}", digest.to_hex());
    }
    Ok(ExitCode::SUCCESS)
}

fn seal(a: &SealArgs) -> anyhow::Result<ExitCode> {
    use sealroot::pkcs7::sign_fsverity;

    let (repo, commit) = input!(open_commit(&a.commit));
    let signer = input!(a.signer.load());
    let image = input!(build(&repo, &commit, "seal"));
    let alg = a.commit.algorithm;
    let (_, erofs) = image.write(&alg.params())?;
    let b = Binding {
        commit,
        algorithm: alg,
        erofs,
    };
    let signature = input!(sign_fsverity(
        &b.digest(),
        signer.signer.as_ref(),
        &signer.cert,
        &signer.options
    ));
    let existing = input!(repo.detached_metadata(&commit));
    let entries = binding::add_signature(&existing, &b, signature)?;
    let count = binding::signatures(&entries, alg)?.len();
    repo.write_detached_metadata(&commit, &entries)
        .context("writing the detached metadata")?;
    let out = json!({
        "commit": commit.to_hex(),
        "algorithm": alg.to_string(),
        "erofs": erofs.to_hex(),
        "binding": String::from_utf8_lossy(&b.to_bytes()),
        "bindingDigest": b.digest().to_hex(),
        "signatures": count,
        "signer": signer.cert.info(),
    });
    if a.commit.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!(
            "sealed commit {commit}\n  {alg}: EROFS {}\n  {alg}: binding record {}\n  signed by {} ({count} signature(s) in the detached metadata)",
            erofs.to_hex(),
            b.digest().to_hex(),
            signer.cert.subject()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The verdict on each signature of `binding` found in `entries`.
fn check_signatures(
    sigs: &[Vec<u8>],
    b: &Binding,
    trusted: &[Cert],
) -> Vec<(
    usize,
    Result<sealroot::pkcs7::Verified, sealroot::pkcs7::VerifyError>,
)> {
    let digest = b.digest();
    sigs.iter()
        .enumerate()
        .map(|(i, s)| (i, verify_fsverity(s, &digest, trusted)))
        .collect()
}

fn verify(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = input!(a.trust.load());
    if trusted.is_empty() {
        return Ok(fail(
            EXIT_INPUT,
            &anyhow::anyhow!("give the trusted certificates with --cert or --certs-dir"),
        ));
    }
    let (repo, commit) = input!(open_commit(&a.commit));
    let alg = a.commit.algorithm;
    let meta = input!(repo.detached_metadata(&commit));
    let sigs = input!(binding::signatures(&meta, alg));
    let signed_for = input!(binding::signed_erofs(&meta, alg));
    let image = input!(build(&repo, &commit, "verify"));
    let (_, erofs) = image.write(&alg.params())?;
    let b = Binding {
        commit,
        algorithm: alg,
        erofs,
    };
    let results = check_signatures(&sigs, &b, &trusted);
    let ok = results.iter().any(|(_, r)| r.is_ok());
    if a.commit.json {
        let list: Vec<_> = results
            .iter()
            .map(|(i, r)| match r {
                Ok(v) => {
                    json!({"index": i, "verified": true, "trusted": v.trusted, "signer": v.signer})
                }
                Err(e) => json!({"index": i, "verified": false, "error": e.to_string()}),
            })
            .collect();
        let out = json!({
            "commit": commit.to_hex(),
            "algorithm": alg.to_string(),
            "erofs": erofs.to_hex(),
            "signedErofs": signed_for.map(|d| d.to_hex()),
            "signatures": list,
            "verified": ok,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("commit {commit}\n  {alg}: EROFS {}", erofs.to_hex());
        if let Some(d) = signed_for.filter(|d| *d != erofs) {
            outln!(
                "  the signatures were made for EROFS {}: this repository's objects give another image",
                d.to_hex()
            );
        }
        if results.is_empty() {
            outln!(
                "  no {} in the detached metadata (run `sealroot ostree seal`)",
                binding::signatures_key(alg)
            );
        }
        for (i, r) in &results {
            match r {
                Ok(v) => outln!(
                    "  signature {i}: verified, trusted {} ({})",
                    v.trusted.subject,
                    v.trusted.fingerprint
                ),
                Err(e) => outln!("  signature {i}: does not verify: {e}"),
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// A refusal (exit 1) rather than unusable input.
struct Refused(anyhow::Error);

fn deploy_one(
    sysroot: &Sysroot,
    d: &Deployment,
    a: &DeployArgs,
    trusted: &[Cert],
    mode: Option<SignatureMode>,
) -> Result<serde_json::Value, Refused> {
    let refuse = |e: anyhow::Error| Refused(e);
    let repo = sysroot.repo();
    let alg = a.algorithm;
    let meta = repo
        .detached_metadata(&d.commit)
        .map_err(|e| refuse(e.into()))?;
    let sigs = binding::signatures(&meta, alg).map_err(|e| refuse(e.into()))?;
    if sigs.is_empty() {
        return Err(refuse(anyhow::anyhow!(
            "commit {} has no {} in its detached metadata: seal it with `sealroot ostree \
             seal` where the key is, then bring the detached metadata here (`ostree pull` \
             fetches it; or copy objects/{})",
            d.commit,
            binding::signatures_key(alg),
            d.commit.loose_path("commitmeta")
        )));
    }
    let image = CommitImage::build(repo, &d.commit)
        .with_context(|| format!("building the composefs EROFS of commit {}", d.commit))
        .map_err(refuse)?;
    let (bytes, erofs) = image.write(&alg.params()).map_err(|e| refuse(e.into()))?;
    if let Some(signed) = binding::signed_erofs(&meta, alg).map_err(|e| refuse(e.into()))? {
        if signed != erofs {
            return Err(refuse(anyhow::anyhow!(
                "commit {}: the signatures are for EROFS {}, but the objects in {} give EROFS \
                 {}: an object or its metadata differs from what was sealed (run `ostree \
                 fsck`), or the EROFS rules differ between the sealing sealroot and this one",
                d.commit,
                signed.to_hex(),
                repo.path().display(),
                erofs.to_hex()
            )));
        }
    }
    let b = Binding {
        commit: d.commit,
        algorithm: alg,
        erofs,
    };
    let (signature, signer) = if trusted.is_empty() {
        if sigs.len() != 1 {
            return Err(refuse(anyhow::anyhow!(
                "commit {} carries {} signatures for {alg}; name the certificate the initramfs \
                 trusts with --cert or --certs-dir so the right one is deployed",
                d.commit,
                sigs.len()
            )));
        }
        (sigs[0].clone(), None)
    } else {
        let results = check_signatures(&sigs, &b, trusted);
        match results.iter().find(|(_, r)| r.is_ok()) {
            Some((i, Ok(v))) => (sigs[*i].clone(), Some(v.trusted.clone())),
            _ => {
                let why: Vec<String> = results
                    .iter()
                    .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("signature {i}: {e}")))
                    .collect();
                return Err(refuse(anyhow::anyhow!(
                    "commit {}: no signature of its binding record verifies with the trusted \
                     certificates: {}",
                    d.commit,
                    why.join("; ")
                )));
            }
        }
    };
    if signature.len() > sealroot::verity::ioctl::MAX_SIGNATURE_SIZE {
        return Err(refuse(anyhow::anyhow!(
            "commit {}: the signature is {} bytes, more than the {} the kernel takes as a \
             builtin signature (and sealroot-prepare reads): seal again without a certificate \
             chain that large",
            d.commit,
            signature.len(),
            sealroot::verity::ioctl::MAX_SIGNATURE_SIZE
        )));
    }
    let record = b.to_bytes();
    let written = deploy::write_sealed(
        d,
        &SealedFiles {
            image: &bytes,
            record: &record,
            signature: &signature,
            params: &alg.params(),
            mode,
        },
    )
    .with_context(|| format!("writing the sealed files into {}", d.dir.path().display()))
    .map_err(refuse)?;
    let objects = if a.no_object_verity {
        None
    } else {
        Some(
            deploy::enable_object_verity(repo, &image.objects, false)
                .context("enabling fs-verity on the repository objects")
                .map_err(refuse)?,
        )
    };
    Ok(json!({
        "stateroot": d.stateroot,
        "deployment": d.name,
        "path": d.dir.path(),
        "commit": d.commit.to_hex(),
        "algorithm": alg.to_string(),
        "erofs": erofs.to_hex(),
        "bindingDigest": b.digest().to_hex(),
        "trusted": signer,
        "imageVerity": written.image.as_str(),
        "bindingVerity": written.record.as_str(),
        "objects": image.objects.len(),
        "objectsVerityEnabled": objects.as_ref().map(|o| o.enabled),
        "objectsVerityAlready": objects.as_ref().map(|o| o.already),
        "objectsWithoutVerity": objects.as_ref().map(|o| o.missing.len() + o.wrong_algorithm.len()),
    }))
}

fn deploy_cmd(a: &DeployArgs) -> anyhow::Result<ExitCode> {
    let mode = match a.signatures.as_str() {
        "auto" => None,
        other => {
            Some(input!(other.parse::<SignatureMode>().map_err(|e| {
                anyhow::anyhow!("--signatures: {e}; or auto")
            })))
        }
    };
    let trusted = input!(a.trust.load());
    if let Err(code) = crate::deploy::require_trust_choice(
        "ostree deploy",
        !trusted.is_empty(),
        a.no_verify,
        "the commit's signatures",
    ) {
        return Ok(code);
    }
    let sysroot = input!(Sysroot::open(&a.sysroot));
    let deployments = if a.deployments.is_empty() {
        input!(sysroot.deployments(a.os.as_deref()))
    } else {
        let mut out = Vec::new();
        for name in &a.deployments {
            let os = match &a.os {
                Some(os) => os.clone(),
                None => {
                    let all = input!(sysroot.deployments(None));
                    match all.iter().find(|d| &d.name == name) {
                        Some(d) => d.stateroot.clone(),
                        None => {
                            return Ok(fail(
                                EXIT_INPUT,
                                &anyhow::anyhow!(
                                    "{}: no deployment {name} in any stateroot",
                                    a.sysroot.display()
                                ),
                            ));
                        }
                    }
                }
            };
            out.push(input!(sysroot.deployment(&os, name)));
        }
        out
    };
    if deployments.is_empty() {
        return Ok(fail(
            EXIT_INPUT,
            &anyhow::anyhow!(
                "{}: no deployments (run `ostree admin deploy` first)",
                a.sysroot.display()
            ),
        ));
    }
    let mut reports = Vec::new();
    let mut failed = false;
    for d in &deployments {
        match deploy_one(&sysroot, d, a, &trusted, mode) {
            Ok(r) => {
                if !a.json {
                    outln!(
                        "sealed deployment {}/{}\n  {}: EROFS {}\n  signature: {}\n  .ostree.cfs: fs-verity {}; .sealroot.binding: fs-verity {}{}",
                        d.stateroot,
                        d.name,
                        a.algorithm,
                        r["erofs"].as_str().unwrap_or_default(),
                        match r["trusted"].get("subject").and_then(|s| s.as_str()) {
                            Some(subject) => format!("verified, trusted {subject}"),
                            None => "NOT verified (--no-verify): no certificate was given".into(),
                        },
                        r["imageVerity"].as_str().unwrap_or_default(),
                        r["bindingVerity"].as_str().unwrap_or_default(),
                        match r["objectsWithoutVerity"].as_u64() {
                            Some(0) => format!(
                                "\n  objects: {} referenced, all with fs-verity",
                                r["objects"]
                            ),
                            Some(n) => format!(
                                "\n  objects: {} referenced, {n} without fs-verity (the filesystem has none? `sealroot ostree enable-verity --check`)",
                                r["objects"]
                            ),
                            None => String::new(),
                        }
                    );
                }
                reports.push(r);
            }
            Err(Refused(e)) => {
                failed = true;
                eprintln!("sealroot: error: {}/{}: {e:#}", d.stateroot, d.name);
                reports.push(json!({
                    "stateroot": d.stateroot,
                    "deployment": d.name,
                    "error": format!("{e:#}"),
                }));
            }
        }
    }
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "deployments": reports }))?
        );
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn enable_verity(a: &EnableVerityArgs) -> anyhow::Result<ExitCode> {
    let (repo, commits): (Repo, Vec<Checksum>) = match (&a.repo, &a.sysroot) {
        (Some(path), _) => {
            let repo = input!(Repo::open(path));
            if a.revs.is_empty() {
                return Ok(fail(
                    EXIT_INPUT,
                    &anyhow::anyhow!("name the commits or refs"),
                ));
            }
            let mut commits = Vec::new();
            for r in &a.revs {
                commits.push(input!(repo.resolve(r)));
            }
            (repo, commits)
        }
        (None, Some(path)) => {
            let sysroot = input!(Sysroot::open(path));
            let mut commits: Vec<Checksum> = input!(sysroot.deployments(None))
                .iter()
                .map(|d| d.commit)
                .collect();
            commits.sort();
            commits.dedup();
            (sysroot.repo().clone(), commits)
        }
        (None, None) => bail!("give --repo or --sysroot"),
    };
    let mut reports = Vec::new();
    let mut lacking = 0usize;
    for commit in &commits {
        let image = input!(build(&repo, commit, "enable-verity"));
        let r = deploy::enable_object_verity(&repo, &image.objects, a.check)?;
        lacking += r.missing.len() + r.wrong_algorithm.len();
        let missing: Vec<String> = r.missing.iter().map(|c| c.loose_path("file")).collect();
        let wrong: Vec<String> = r
            .wrong_algorithm
            .iter()
            .map(|c| c.loose_path("file"))
            .collect();
        if !a.json {
            outln!(
                "commit {commit}: {} objects; {} had fs-verity, {} enabled now, {} lack it{}",
                image.objects.len(),
                r.already,
                r.enabled,
                missing.len() + wrong.len(),
                if wrong.is_empty() {
                    ""
                } else {
                    " (some with another algorithm than sha256)"
                }
            );
            for m in missing.iter().chain(&wrong) {
                outln!("  objects/{m}");
            }
        }
        reports.push(json!({
            "commit": commit.to_hex(),
            "objects": image.objects.len(),
            "already": r.already,
            "enabled": r.enabled,
            "missing": missing,
            "wrongAlgorithm": wrong,
        }));
    }
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "commits": reports }))?
        );
    }
    Ok(if lacking > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
