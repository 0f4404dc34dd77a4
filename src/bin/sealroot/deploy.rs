//! `sealroot deploy`: put a sealed image into a sysroot's repository.

use std::process::ExitCode;

use clap::Args;
use sealroot::oci::Sha256Digest;
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::repo::deploy::{DeployOptions, ModeChoice, deploy};
use sealroot::repo::json::SignatureMode;

use crate::oci::{ImageArgs, open};
use crate::repo::{EXIT_FAILED, Progress, RepoLocation, TrustArgs};
use crate::sign::{EXIT_INPUT, EXIT_USAGE};

/// The trust choice every deploy command requires: certificates
/// (`have_certs`) or `--no-verify`, exactly one. `Err` carries the exit
/// status (usage, 2) after printing why; `--no-verify` prints a warning
/// naming `signatures` (what goes unchecked).
pub fn require_trust_choice(
    command: &str,
    have_certs: bool,
    no_verify: bool,
    signatures: &str,
) -> Result<(), ExitCode> {
    match (have_certs, no_verify) {
        (false, false) => Err(crate::sign::fail(
            EXIT_USAGE,
            &anyhow::anyhow!(
                "{command} needs the certificates to verify {signatures} with: pass --cert FILE \
                 or --certs-dir DIR (the certificates the initramfs will trust), or --no-verify \
                 to deploy without checking them"
            ),
        )),
        (true, true) => Err(crate::sign::fail(
            EXIT_USAGE,
            &anyhow::anyhow!(
                "--no-verify and --cert/--certs-dir contradict each other; pass one of them"
            ),
        )),
        (false, true) => {
            eprintln!(
                "sealroot: warning: --no-verify: {signatures} are not checked against any \
                 certificate (only the digests are); sealroot-prepare checks them at boot"
            );
            Ok(())
        }
        (true, false) => Ok(()),
    }
}

pub const DEPLOY_HELP: &str = "\
Deploy a sealed image into the root filesystem the initramfs will see (--sysroot DIR; \
the repository is DIR/sealroot, laid out as docs/repository.md describes):

  objects/XX/...          file contents by fs-verity digest (fs-verity enabled)
  images/<hex>            the merged composefs EROFS (regenerated from the layers and
                          compared with the signed digest before anything is written)
  blobs/sha256/<hex>      the exact manifest, config, signature artifact and PKCS#7s
  deployments/<manifest>/ deployment.json, etc/upper + etc/work (the /etc overlay; the
                          image's /etc is its lower layer, nothing is seeded), var/
  by-config/, by-image/   names for sealroot.config= and sealroot.image=

/var: a new deployment's var/ starts as a copy of the image's /var (like bootc's first \
deploy); re-deploying the same image never touches etc/ or var/. --no-seed-var leaves \
it empty.

Sealed images: with a sealing artifact (`sealroot oci seal`), or sealed inline \
(`sealroot oci seal --inline`: the signatures are in the manifest; deploy the new tag). \
The image must be bound: a signed binding record (written by `sealroot oci seal`) or the \
config's containers.composefs.fsverity label (written by `--inline`) must tie its config \
to its merged EROFS, as sealroot-prepare requires by default; images sealed by older \
sealroot releases are refused unless --allow-unbound (for an initramfs whose prepare.conf \
says `require-binding = no`). Reseal them instead.

Signatures (--signatures):
  auto            (default) builtin when the running kernel accepts the signature (the
                  signer's certificate is in .fs-verity), otherwise detached
  builtin         enable fs-verity with the PKCS#7 as builtin signature (kernel-checked
                  on every open); fails if the kernel refuses it; where fs-verity is
                  unavailable, recorded for `sealroot repo enable-verity` to attach
  detached        enable fs-verity without signature; the initramfs verifies the PKCS#7
                  from blobs/ in userspace
  attach-at-boot  leave fs-verity off on the signed files; the initramfs enables it with
                  the signature at boot (needs a writable root then)

Where the filesystem or kernel has no fs-verity (e.g. deploying from a build host), \
files are written without it and deployment.json says \"verity\": false; run \
`sealroot repo enable-verity --sysroot DIR` on the target, or deploy there.

Trust (one is required): --cert FILE / --certs-dir DIR verify every signature of the \
sealing artifact against these certificates before anything is written (use the ones the \
initramfs will trust); --no-verify deploys without checking the signatures (the digests are \
still checked; sealroot-prepare verifies the signatures at boot) and says so.

Writes are atomic: content first, then the deployment, then the names; a failed or \
interrupted deploy leaves the previous deployments intact (leftovers: `sealroot repo gc`).

sealroot-prepare mounts /etc, /var and the physical root on the image's /etc, /var and \
/sysroot, and refuses an image without them at boot: deploy warns when one is missing (and \
says what to add to the image).

Prints the kernel command-line argument that boots the image: sealroot=sha256:<manifest>.

Example (the whole flow):
  sealroot keygen --out-dir=keys
  sealroot oci seal oci:/srv/img:41 --key keys/signer.key.pem --cert keys/signer.crt.pem
  sealroot oci verify oci:/srv/img:41 --cert keys/signer.crt.pem
  sealroot deploy oci:/srv/img:41 --sysroot /mnt/root --cert keys/signer.crt.pem
  # kernel command line: sealroot=sha256:<manifest hex>; the certificate goes into the
  # initramfs, whose sealroot-prepare loads it into .fs-verity and seals the keyring

Exit status: 0 deployed; 1 refused (not sealed, not bound, digests or signatures do not \
verify) or failed; 2 neither --cert/--certs-dir nor --no-verify (or both), or another usage \
error; 3 unusable input (image, certificate, or a --sysroot that does not exist).";

/// Deploy a sealed OCI image into a sysroot
#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    location: RepoLocation,
    /// Verify the artifact's signatures against these before deploying
    #[command(flatten)]
    trust: TrustArgs,
    /// Deploy without verifying the signatures (instead of --cert/--certs-dir)
    #[arg(long)]
    no_verify: bool,
    /// How the signatures reach the kernel ("Signatures" in --help explains each)
    #[arg(long, default_value = "auto", value_parser = ["auto", "builtin", "detached", "attach-at-boot"])]
    signatures: String,
    /// Deploy this sealing artifact (sha256:...) when the image has several
    #[arg(long, value_name = "DIGEST")]
    artifact: Option<Sha256Digest>,
    /// fs-verity algorithm of a new repository, its objects and signed files (default: the
    /// image's seals' algorithm when they agree, else fsverity-sha256-12; an existing
    /// repository keeps its own; the image must be sealed with it)
    #[arg(long)]
    algorithm: Option<VerityAlgorithm>,
    /// Leave a new deployment's var/ empty instead of copying the image's /var
    #[arg(long)]
    no_seed_var: bool,
    /// Deploy an image whose config and EROFS no signature binds (for an initramfs
    /// with `require-binding = no`)
    #[arg(long)]
    allow_unbound: bool,
}

pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let mode = match args.signatures.as_str() {
        "auto" => ModeChoice::Auto,
        other => ModeChoice::Fixed(
            other
                .parse::<SignatureMode>()
                .map_err(|e| anyhow::anyhow!("--signatures: {e}; or auto"))?,
        ),
    };
    let trusted = match args.trust.load() {
        Ok(t) => t,
        Err(e) => return Ok(crate::sign::fail(EXIT_INPUT, &e)),
    };
    if let Err(code) = require_trust_choice(
        "deploy",
        !trusted.is_empty(),
        args.no_verify,
        "the sealing artifact's signatures",
    ) {
        return Ok(code);
    }
    let (layout, image) = match open(&args.image) {
        Ok(x) => x,
        Err(e) => return Ok(crate::sign::fail(crate::oci::open_failure(&e), &e)),
    };
    // A repository this deploy creates takes the algorithm of the image's
    // seals when --algorithm is not given (and they agree): otherwise a
    // sha512-sealed image would create a sha256 repository, be refused,
    // and leave that empty repository behind.
    let algorithm = args.algorithm.or_else(|| {
        let new =
            std::fs::symlink_metadata(args.location.location().path().join("repo.json")).is_err();
        match sealroot::repo::check::seal_algorithms(&layout, &image).ok()?[..] {
            [hash] if new => Some(VerityAlgorithm {
                hash,
                block_size: VerityAlgorithm::SHA256_12.block_size,
            }),
            _ => None,
        }
    });
    let repo = match args.location.open_or_create(algorithm) {
        Ok(r) => r,
        // A sysroot that does not exist is unusable input (3); a repository
        // of another algorithm, or with a planted symlink, refuses (1).
        Err(e) => return Ok(crate::sign::fail(crate::exit_status(&e), &e)),
    };
    let opts = DeployOptions {
        source: args.image.image.to_string(),
        mode,
        trusted: &trusted,
        artifact: args.artifact,
        seed_var: !args.no_seed_var,
        allow_unbound: args.allow_unbound,
    };
    let progress = Progress::new("deploy");
    progress.stage("importing layers into the repository");
    let report = match deploy(&repo, &layout, &image, &opts) {
        Ok(r) => r,
        Err(e @ sealroot::repo::Error::Refused(_)) => {
            progress.finish();
            return Ok(crate::sign::fail(EXIT_FAILED, &e.into()));
        }
        Err(e) => return Err(e.into()),
    };
    progress.finish();
    for warning in &report.warnings {
        eprintln!("sealroot: warning: {warning}");
    }
    if args.image.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let d = &report.deployment;
    outln!(
        "deployed {} into {}",
        args.image.image,
        report.deployment_dir.display()
    );
    outln!("  manifest   {}", d.manifest.0);
    outln!("  config     {}", d.config.0);
    outln!("  image      {} ({})", d.image.to_hex(), d.algorithm);
    if let Some(b) = d.bootable {
        outln!(
            "  bootable   {} (the variant sealroot-prepare boots)",
            b.to_hex()
        );
    }
    outln!("  composefs  {}", report.composefs_digest);
    match d.artifact {
        Some(a) => outln!("  artifact   {a}"),
        None => outln!("  artifact   none: sealed inline (signatures in the manifest)"),
    }
    match &report.bound_by {
        Some(by) => outln!("  bound      by {by}"),
        None => outln!(
            "  UNBOUND    nothing ties config and EROFS together (--allow-unbound): \
             sealroot-prepare boots it only with `require-binding = no`"
        ),
    }
    outln!(
        "  objects    {} new, {} already present, {} MiB",
        report.objects.added,
        report.objects.existing,
        report.objects.bytes >> 20
    );
    outln!("  signatures {}", d.signatures);
    for c in &report.verified_by {
        outln!("  verified   by {c}");
    }
    if args.no_verify {
        outln!("  verified   NOT verified (--no-verify): no certificate was given");
    }
    if report.created {
        outln!(
            "  state      new etc/upper, etc/work; var/ seeded with {} entries",
            report.var_entries
        );
    } else {
        outln!("  state      kept (re-deploy)");
    }
    if !d.verity {
        outln!(
            "  WARNING    fs-verity is not enabled (no support on this filesystem/kernel, or \
             attach-at-boot); run `sealroot repo enable-verity` on the target"
        );
    }
    outln!("kernel command line: {}", report.kernel_cmdline);
    Ok(ExitCode::SUCCESS)
}
