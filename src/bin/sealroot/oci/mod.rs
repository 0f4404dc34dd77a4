//! `sealroot oci`: read OCI images the way sealing reads them.
//!
//! `seal` (signing) and `verify` (checking) live in their own modules;
//! this one holds the command line, opening an image, `inspect` and
//! `compute-id`.

use sealroot::atomic::{self, Mode};
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::boot::objects::LayerObjects;
use sealroot::oci::import::import_layers;
use sealroot::oci::inline::InlineSeal;
use sealroot::oci::layout::{ImageLayout, ResolvedImage};
use sealroot::oci::referrers::seal_artifacts;
use sealroot::oci::sink::DigestOnlySink;
use sealroot::oci::{ImageReference, Platform};
use sealroot::repo::image::{bootable_of, merged_from_layers};
use serde_json::json;

use crate::repo::{CountingSink, EXIT_FAILED, Progress, TrustArgs};

/// Long help of `sealroot oci`.
mod seal;
mod verify;

use seal::{SEAL_HELP, SealArgs, seal};
use verify::verify;

pub const LONG_HELP: &str = "Read OCI images from an image layout directory or an oci-archive, \
    the way sealing reads them: every blob is checked against its digest and size, every \
    layer against its diff_id, every tar member validated.\n\n\
    IMAGE is skopeo's transport syntax:\n  \
    oci:DIR                 the only image in the layout DIR\n  \
    oci:DIR:TAG             the image tagged TAG (org.opencontainers.image.ref.name)\n  \
    oci:DIR@sha256:HEX      the manifest or index with that digest\n  \
    oci-archive:FILE[:TAG]  the same inside an (uncompressed) tar of a layout\n\n\
    Multi-platform indexes resolve to the host's platform unless --platform says otherwise.\n\n\
    The whole flow, from an image to a sealed boot:\n  \
    sealroot keygen --out-dir=keys                       # signer key + certificate\n  \
    skopeo copy docker://quay.io/fedora/fedora-bootc:41 oci:/srv/img:41\n  \
    sealroot oci seal oci:/srv/img:41 --key keys/signer.key.pem --cert keys/signer.crt.pem\n  \
    sealroot oci verify oci:/srv/img:41 --cert keys/signer.crt.pem\n  \
    sealroot deploy oci:/srv/img:41 --sysroot /mnt/root --cert keys/signer.crt.pem\n  \
    # put the printed `sealroot=sha256:<manifest>` on the kernel command line and\n  \
    # the certificate into the initramfs (sealroot-prepare loads it into .fs-verity)\n\n\
    More:\n  \
    sealroot oci inspect --json --platform linux/arm64 oci-archive:img.tar\n  \
    sealroot oci seal oci:/srv/img:41 --cert signer.crt.pem \\\n      \
    --sign-command 'openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign /keys/signer.key.pem'";

#[derive(Args)]
pub struct OciArgs {
    #[command(subcommand)]
    command: OciCommand,
}

#[derive(Args)]
pub struct ImageArgs {
    /// The image: oci:DIR[:TAG|@sha256:DIGEST] or oci-archive:FILE[:TAG|@sha256:DIGEST]
    pub image: ImageReference,
    /// Platform to pick from a multi-platform index, OS/ARCH[/VARIANT] (default: this
    /// machine's); a single-platform image must be for this platform
    #[arg(long)]
    platform: Option<Platform>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

const COMPUTE_ID_HELP: &str = "\
Print the image's composefs digest: the fs-verity digest of its merged composefs EROFS, \
what `cfsctl oci compute-id` prints for the same image in a composefs-rs repository \
initialised with `cfsctl init --algorithm ALGORITHM`, and what bootc pins as `composefs=`. \
--algorithm is the repository's: the EROFS records its objects' fs-verity digests in it \
(trusted.overlay.metacopy, and the redirect path XX/<rest of hex>), and the image digest \
is computed with it too. Nothing is written except --erofs/--dump.

The digest is reproducible (any machine, any layout copy) and follows composefs-rs's \
canonical form of an OCI image: `/` takes `/usr`'s metadata, `/run` is emptied, only \
security.capability xattrs are kept (docs/sealing.md, \"The merged EROFS\").

`oci seal --algorithm ALGORITHM` signs this very EROFS and digest, and `deploy` stores \
it into a repository of that algorithm (`sealroot repo init --algorithm`).

--bootable prints the digest of the bootable variant instead, as `cfsctl oci compute-id \
--bootable`: /boot and /sysroot emptied (they must exist, as must /usr), SELinux labels \
applied from the image's own policy (/etc/selinux/config, file_contexts), or removed when it \
has none (docs/sealing.md, \"The bootable EROFS\"). This is what bootc boots and pins as \
`composefs=`, and what `oci seal` signs as the merged.bootable role.

Examples:
  sealroot oci compute-id oci:/srv/img:41
  sealroot oci compute-id oci:/srv/img:41 --algorithm fsverity-sha512-12 --erofs img.erofs
  sealroot oci compute-id oci:/srv/img:41 --bootable

Exit status: 0 printed, 1 the image does not verify (blob, diff_id, tar), 3 unusable input \
(with --bootable: also an image without /usr, /boot or /sysroot directories, or whose SELinux \
policy composefs-rs refuses).";

#[derive(Args)]
struct ComputeIdArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// fs-verity algorithm of the objects and of the image digest (cfsctl init --algorithm)
    #[arg(long, default_value = "fsverity-sha256-12")]
    algorithm: VerityAlgorithm,
    /// Also write the merged EROFS to FILE
    #[arg(long, value_name = "FILE")]
    erofs: Option<std::path::PathBuf>,
    /// Also write its composefs-dump(5) to FILE
    #[arg(long, value_name = "FILE")]
    dump: Option<std::path::PathBuf>,
    /// The bootable variant (as `cfsctl oci compute-id --bootable`): /boot and /sysroot
    /// emptied, SELinux labels from the image's own policy
    #[arg(long)]
    bootable: bool,
}

#[derive(Subcommand)]
enum OciCommand {
    /// Sign an image: write a composefs sealing artifact into its layout
    #[command(long_about = SEAL_HELP)]
    Seal(SealArgs),
    /// Show the image's manifest, config, layers and attached sealing artifacts
    Inspect(ImageArgs),
    /// Print the image's composefs digest (as `cfsctl oci compute-id`)
    #[command(long_about = COMPUTE_ID_HELP)]
    ComputeId(ComputeIdArgs),
    /// Read every layer, checking blob digests, diff_ids and tar members
    #[command(
        long_about = "Read every layer of the image completely, in parallel: blob \
        sha256 and size against the manifest, uncompressed sha256 against the config's \
        diff_ids, every tar member against the rules sealing applies (no path escapes, no \
        malformed headers, valid whiteouts). Nothing is written.\n\n\
        Sealing artifacts attached to the image, and inline sealing metadata in its \
        manifest, are checked too: the subject, and every signed fs-verity digest against \
        the manifest and config bytes and the merged EROFS regenerated from the layers. \
        With --cert/--certs-dir every PKCS#7 signature is verified against those \
        certificates (as the kernel would), and the output says which certificate verified \
        which artifact.\n\n\
        Binding: the report says whether the image is bound, i.e. whether a signature ties \
        its config to its merged EROFS (a binding record of an artifact, or the config's \
        containers.composefs.fsverity label), and by what. sealroot-prepare refuses unbound \
        images unless its prepare.conf sets `require-binding = no`; an unbound image does \
        not make this command fail.\n\n\
        Exit status: 0 intact (and, with certificates, at least one artifact fully verified \
        and none tampered); 1 verification failed, with a message naming the blob, member, \
        artifact or signature; 3 unreadable input.\n\n\
        Example: sealroot oci verify oci:/srv/img:41 --cert keys/signer.crt.pem"
    )]
    Verify {
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// Also list every change each layer makes
        #[arg(long)]
        changes: bool,
    },
}

pub fn run(args: OciArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OciCommand::Inspect(a) => match open(&a) {
            Ok(opened) => inspect(&a, opened),
            Err(e) => Ok(crate::sign::fail(open_failure(&e), &e)),
        },
        OciCommand::ComputeId(a) => compute_id(&a),
        OciCommand::Verify {
            image,
            changes,
            trust,
        } => verify(&image, changes, &trust),
        OciCommand::Seal(a) => match seal(&a) {
            Ok(code) => Ok(code),
            Err(e) => Ok(crate::sign::fail(crate::sign::EXIT_INPUT, &e)),
        },
    }
}

/// The exit status for an image that [`open`] could not open: 3 (unusable
/// input) when there is no such layout, tag or platform, 1 (verification
/// failed) when the layout's content does not match its digests or schema.
pub fn open_failure(err: &anyhow::Error) -> u8 {
    use sealroot::oci::layout::LayoutError as L;
    let layout = err.chain().find_map(|e| e.downcast_ref::<L>());
    match layout {
        None
        | Some(
            L::Io { .. }
            | L::NotALayout { .. }
            | L::Archive(_)
            | L::NoSuchTag { .. }
            | L::NoSuchDigest { .. }
            | L::Empty { .. }
            | L::Ambiguous { .. }
            | L::NoPlatform { .. },
        ) => crate::sign::EXIT_INPUT,
        Some(_) => EXIT_FAILED,
    }
}

pub fn open(a: &ImageArgs) -> anyhow::Result<(ImageLayout, ResolvedImage)> {
    let layout = ImageLayout::open(&a.image).with_context(|| format!("opening {}", a.image))?;
    let image = layout
        .resolve(
            &a.image.selector,
            &a.platform.clone().unwrap_or_else(Platform::host),
        )
        .with_context(|| format!("resolving {}", a.image))?;
    // An index chose by platform already; a single-platform image (or an
    // index's only entry without a platform) is taken as it is, so an
    // explicit --platform is checked against what its config states.
    if let Some(wanted) = &a.platform {
        let found = image.config.platform();
        if !found.architecture.is_empty() && !wanted.matches(&found) {
            anyhow::bail!(
                "{}: --platform {wanted}: the image is for {found} only (it is not a \
                 multi-platform index); drop --platform or pass --platform {found}",
                a.image
            );
        }
    }
    Ok((layout, image))
}

fn inspect(
    a: &ImageArgs,
    (layout, image): (ImageLayout, ResolvedImage),
) -> anyhow::Result<ExitCode> {
    let seals = seal_artifacts(&layout, &image.manifest)?;
    let layers: Vec<_> = image
        .layers()
        .map(|(d, diff_id)| {
            json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size, "diffId": diff_id})
        })
        .collect();
    let seals: Vec<_> = seals
        .iter()
        .map(|(d, r)| match r {
            Ok(s) => json!({
                "digest": d.digest, "valid": true, "algorithm": s.algorithm.to_string(),
                "roles": s.entries.iter().map(|e| json!({"role": e.role.to_string(), "digest": e.digest.to_hex()})).collect::<Vec<_>>(),
                "bindingRecord": s.binding.as_ref().map(|b| b.digest.to_hex()),
            }),
            Err(e) => json!({"digest": d.digest, "valid": false, "error": e.to_string()}),
        })
        .collect();
    let out = json!({
        "image": a.image.to_string(),
        "manifest": {"digest": image.manifest.digest(), "size": image.manifest.bytes().len(), "mediaType": image.descriptor.media_type},
        "config": {"digest": image.config.digest(), "size": image.config.bytes().len()},
        "platform": image.config.platform().to_string(),
        "indexes": image.indexes.iter().map(|d| d.digest.to_string()).collect::<Vec<_>>(),
        "layers": layers,
        "sealingArtifacts": seals,
        "inline": match InlineSeal::parse(&image.manifest) {
            Ok(None) => json!(null),
            Ok(Some(i)) => json!({
                "valid": true, "algorithm": i.algorithm.to_string(), "signed": i.is_signed(),
                "roles": i.entries().map(|e| json!({"role": e.role.to_string(), "digest": e.digest.to_hex()})).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"valid": false, "error": e.to_string()}),
        },
        "sealLabel": image.config.seal_label(),
    });
    let mut stdout = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(stdout, "image:    {}", a.image)?;
    writeln!(
        stdout,
        "manifest: {} ({} bytes)",
        image.manifest.digest(),
        image.manifest.bytes().len()
    )?;
    writeln!(
        stdout,
        "config:   {} ({} bytes)",
        image.config.digest(),
        image.config.bytes().len()
    )?;
    writeln!(stdout, "platform: {}", image.config.platform())?;
    for (i, (d, diff_id)) in image.layers().enumerate() {
        writeln!(
            stdout,
            "layer {}:  {} {} bytes {}\n          diff_id {}",
            i + 1,
            d.digest,
            d.size,
            d.media_type,
            diff_id
        )?;
    }
    if seals.is_empty() {
        writeln!(stdout, "sealed:   no sealing artifact attached")?;
    }
    for s in &seals {
        writeln!(stdout, "sealed:   {}", serde_json::to_string(s)?)?;
    }
    if !out["inline"].is_null() {
        writeln!(stdout, "inline:   {}", out["inline"])?;
    }
    Ok(ExitCode::SUCCESS)
}

fn compute_id(a: &ComputeIdArgs) -> anyhow::Result<ExitCode> {
    let (layout, image) = match open(&a.image) {
        Ok(x) => x,
        Err(e) => return Ok(crate::sign::fail(crate::sign::EXIT_INPUT, &e)),
    };
    let progress = Progress::new("compute-id");
    let sink = CountingSink {
        inner: DigestOnlySink::new(a.algorithm.params()),
        progress: &progress,
    };
    let layers = match import_layers(&layout, &image, &sink) {
        Ok(l) => l,
        Err(e) => return Ok(crate::sign::fail(EXIT_FAILED, &e.into())),
    };
    progress.stage("writing the merged EROFS");
    let mut merged = merged_from_layers(&layers)?;
    if a.bootable {
        progress.stage("writing the bootable EROFS");
        let objects = LayerObjects::new(&layout, &image, &layers);
        merged = match bootable_of(&merged, &objects) {
            Ok(b) => b,
            // No /boot, a broken policy: the image is unusable for this.
            Err(e) => return Ok(crate::sign::fail(crate::sign::EXIT_INPUT, &e.into())),
        };
    }
    let digest = merged.digest(a.algorithm);
    if let Some(path) = &a.erofs {
        atomic::write(path, Mode::Umask, &merged.erofs)?;
    }
    if let Some(path) = &a.dump {
        atomic::write_with(path, Mode::Umask, |w| {
            sealroot::dumpfile::write_dump(&merged.tree, w)
        })?;
    }
    progress.finish();
    if a.image.json {
        let out = json!({
            "image": a.image.image.to_string(),
            "manifest": image.manifest.digest(),
            "algorithm": a.algorithm.to_string(),
            "digest": digest.to_hex(),
            "bootable": a.bootable,
            "erofsSize": merged.erofs.len(),
            "inodes": merged.inodes,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{}", digest.to_hex());
    }
    Ok(ExitCode::SUCCESS)
}
