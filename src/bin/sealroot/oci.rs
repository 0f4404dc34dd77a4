//! `sealroot oci`: read OCI images the way sealing reads them.

use sealroot::atomic::{self, Mode};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::boot::objects::LayerObjects;
use sealroot::oci::import::import_layers;
use sealroot::oci::inline::InlineSeal;
use sealroot::oci::layer::{Change, EntryKind};
use sealroot::oci::layout::{ImageLayout, ResolvedImage};
use sealroot::oci::referrers::seal_artifacts;
use sealroot::oci::sink::{DigestOnlySink, FileContent};
use sealroot::oci::{ImageReference, Platform};
use sealroot::repo::check::{
    ArtifactCheck, Binding, InlineCheck, binding, check_artifacts, check_inline,
};
use sealroot::repo::image::{MergedImages, bootable_of, merged_from_layers};
use serde_json::json;

use crate::repo::{CountingSink, EXIT_FAILED, Progress, TrustArgs};

/// Long help of `sealroot oci`.
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

const SEAL_HELP: &str = "\
Sign an image for sealed boot: computes the fs-verity digests (--algorithm) of the \
image's stored manifest and config bytes and of its merged composefs EROFS (regenerated \
from the layers, reproducibly: the same image gives the same EROFS on any machine; it \
records its files' objects by their --algorithm fs-verity digests, as `cfsctl oci \
compute-id` in a composefs-rs repository of that algorithm, so the image deploys into a \
sealroot repository of --algorithm: `sealroot repo init --algorithm`), signs \
each as an fs-verity builtin signature (PKCS#7), and writes a composefs sealing artifact \
(artifactType application/vnd.composefs.metadata.v1) into the layout as a referrer of the \
image: new blobs and one untagged index.json entry; nothing of the image changes. Sealing \
again with another key adds a second artifact. The layout must be a directory (oci:DIR).

Binding: the artifact also carries a signed binding record (annotation sealroot.binding.v1) \
naming the manifest, config and merged EROFS together, so that nobody can pair this image's \
signed config with another image's signed EROFS; sealroot-prepare refuses images without \
such a binding by default (docs/sealing.md).

Bootable variant: for an image that boots (--bootable=auto, the default: /usr, /boot and \
/sysroot are directories and it carries a kernel), the artifact also signs the EROFS bootc \
boots, composefs-rs's boot transformation of the merged one (/boot and /sysroot emptied, \
SELinux labels from the image's own policy; `oci compute-id --bootable`), as the spec's \
composefs.merged.bootable.erofs.v1 role, and the binding record names it; `deploy` stores it \
and sealroot-prepare boots it (docs/sealing.md, \"The bootable EROFS\"). --bootable=yes \
refuses images it cannot transform, --bootable=no signs none. Inline mode signs none.

Inline mode (--inline --tag TAG): instead of an artifact, write a NEW manifest, tagged TAG, \
that carries the signatures in its own annotations (the composefs sealing spec's inline \
mode: composefs.merged.erofs.v1.<alg>[.sig] on the manifest, composefs.config.<alg>[.sig] on \
the config descriptor), with a NEW config that carries the label \
containers.composefs.fsverity=<merged EROFS digest>, so the signed config binds the EROFS. \
The layers are shared; the original manifest, config and tags are untouched; the new \
manifest digest is printed (that is what sealroot=sha256:... selects). Inline metadata \
survives a plain `skopeo copy`; there is no manifest signature (it would sign itself). An \
existing TAG is refused unless --replace-tag.

Signing with an external command (HSM, KMS, smartcard): --sign-command CMD runs \
`/bin/sh -c CMD` once per signature with the bytes to sign on stdin, and the environment \
SEALROOT_SIGN_DIGEST_ALGORITHM (sha256|sha384|sha512), SEALROOT_SIGN_DIGEST (that hash of \
stdin, hex) and SEALROOT_SIGN_KEY_ALGORITHM (rsa|ecdsa). It must print the raw signature \
on stdout: RSA PKCS#1 v1.5 or DER ECDSA, as `openssl dgst -sign` / `openssl pkeyutl -sign` \
print it, and exit 0. Every signature is checked against --cert before it is used.

Examples:
  sealroot oci seal oci:/srv/img:41 --key keys/signer.key.pem --cert keys/signer.crt.pem
  sealroot oci seal oci:/srv/img:41 --inline --tag 41-sealed --key k.pem --cert c.pem
  sealroot oci seal oci:/srv/img:41 --cert signer.crt.pem \\
      --sign-command 'openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign /keys/signer.key.pem'
  sealroot oci seal oci:/srv/img:41 --cert signer.crt.pem --sign-command \\
      'openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -binary | openssl pkeyutl -sign \\
       -inkey /keys/signer.key.pem -pkeyopt digest:\"$SEALROOT_SIGN_DIGEST_ALGORITHM\"'

Exit status: 0 sealed, 3 unusable input (image, key, certificate, signing command).";

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

#[derive(Args)]
struct SealArgs {
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    signer: crate::sign::SignerArgs,
    /// fs-verity algorithm of the signed digests and of the objects the EROFS records,
    /// that of the repository it deploys into: fsverity-sha256-12 or fsverity-sha512-12
    #[arg(long, default_value = "fsverity-sha256-12")]
    algorithm: VerityAlgorithm,
    /// Also sign every content object (fs-verity builtin signatures for IPE's
    /// fsverity_signature=TRUE, docs/ipe.md), as one extra artifact layer
    #[arg(long)]
    object_signatures: bool,
    /// Seal inline: write a new, signed manifest (and labelled config) tagged --tag
    #[arg(long, requires = "tag")]
    inline: bool,
    /// The tag of the inline-sealed manifest
    #[arg(long, value_name = "TAG", requires = "inline")]
    tag: Option<String>,
    /// With --inline: move TAG if it already names another manifest
    #[arg(long, requires = "inline")]
    replace_tag: bool,
    /// Also sign the bootable variant (role merged.bootable, what bootc boots): auto = when
    /// the image has /usr, /boot and /sysroot directories and a kernel
    /// (/usr/lib/modules/*/vmlinuz or anything in /boot)
    #[arg(long, value_enum, default_value_t = Bootable::Auto)]
    bootable: Bootable,
}

/// `oci seal --bootable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Bootable {
    Auto,
    Yes,
    No,
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

fn seal(a: &SealArgs) -> anyhow::Result<ExitCode> {
    use sealroot::repo::seal::{SealDigests, seal};
    use sealroot::repo::seal_inline::{InlineOptions, seal_inline};

    if a.inline && a.object_signatures {
        // Inline mode has no artifact to hold the bundle's layer, and
        // manifest annotations are no place for megabytes of signatures
        // (docs/sealing.md, "Object signatures").
        anyhow::bail!(
            "--object-signatures needs the sealing artifact (the bundle is one of its layers), \
             and --inline writes none: seal without --inline to get per-object signatures (the \
             artifact's signed binding record binds the EROFS as inline mode does), or drop \
             --object-signatures (then an initramfs with [ipe] required = yes refuses to boot \
             the image)"
        );
    }
    let (layout, image) = open(&a.image)?;
    let Some(dir) = layout.dir() else {
        anyhow::bail!(
            "{}: sealing writes the artifact into the layout, and oci-archive files are \
             read-only; copy it to a directory first (skopeo copy oci-archive:F oci:DIR:TAG)",
            a.image.image
        );
    };
    let dir = dir.to_owned();
    let crate::sign::LoadedSigner {
        cert,
        signer,
        options,
    } = a.signer.load()?;
    let index_before = layout.index()?;
    let progress = Progress::new("seal");
    // The EROFS records the objects' digests in the seal's algorithm, as a
    // composefs-rs repository of that algorithm does (and `deploy` into a
    // repository of it stores them).
    let sink = CountingSink {
        inner: DigestOnlySink::new(a.algorithm.params()),
        progress: &progress,
    };
    let layers = import_layers(&layout, &image, &sink)?;
    progress.stage("writing the merged EROFS");
    let merged = merged_from_layers(&layers)?;
    let want_bootable = match a.bootable {
        Bootable::Yes => true,
        Bootable::No => false,
        // Inline metadata binds the merged EROFS through the config label
        // only, so sealroot-prepare would not boot a bootable entry there.
        Bootable::Auto => !a.inline && sealroot::oci::boot::looks_bootable(&merged.tree),
    };
    if want_bootable && a.inline {
        anyhow::bail!(
            "--bootable=yes needs the sealing artifact: inline metadata binds only the merged \
             EROFS (through the config label), so sealroot-prepare would not boot a bootable \
             variant signed there; seal without --inline, or with --bootable=no"
        );
    }
    let bootable = if want_bootable {
        progress.stage("writing the bootable EROFS");
        let objects = LayerObjects::new(&layout, &image, &layers);
        match bootable_of(&merged, &objects) {
            Ok(b) => Some(b),
            Err(e) => return Ok(crate::sign::fail(crate::sign::EXIT_INPUT, &e.into())),
        }
    } else {
        None
    };
    progress.stage("signing");
    if a.inline {
        let tag = a.tag.as_deref().unwrap_or_default();
        let sealed = seal_inline(
            &dir,
            &image,
            a.algorithm,
            merged.digest(a.algorithm),
            signer.as_ref(),
            &cert,
            &InlineOptions {
                tag,
                replace_tag: a.replace_tag,
                sign: &options,
            },
        )?;
        progress.finish();
        return print_inline(a, &image, &merged.composefs_digest.to_hex(), &sealed, &cert);
    }
    let mut extensions = Vec::new();
    let mut object_report = serde_json::Value::Null;
    if a.object_signatures {
        let t = Instant::now();
        let (layer, report) = sign_objects(
            &merged,
            signer.as_ref(),
            &cert,
            &options,
            a.signer.sign_command.is_some(),
            &progress,
        )?;
        object_report = report;
        object_report["seconds"] = json!(t.elapsed().as_secs_f64());
        extensions.push(layer);
    }
    let digests = SealDigests::of(&image, a.algorithm, Some(merged.digest(a.algorithm)))
        .with_bootable(bootable.as_ref().map(|b| b.digest(a.algorithm)));
    let sealed = seal(
        &dir,
        &image,
        a.algorithm,
        &digests,
        signer.as_ref(),
        &cert,
        &options,
        &extensions,
    )?;
    progress.finish();
    let index_after = layout.index()?;
    let note = sealroot::oci::referrers::skopeo_reference_note(&dir, &index_before, &index_after);
    let out = json!({
        "image": a.image.image.to_string(),
        "manifest": image.manifest.digest(),
        "config": image.config.digest(),
        "artifact": sealed.artifact.digest,
        "algorithm": a.algorithm.to_string(),
        "digests": {
            "manifest": digests.manifest.to_hex(),
            "config": digests.config.to_hex(),
            "merged": merged.digest(a.algorithm).to_hex(),
            "bootable": digests.bootable.map(|d| d.to_hex()),
        },
        "binding": {"digest": sealed.binding.digest.to_hex()},
        "composefsDigest": merged.composefs_digest.to_hex(),
        "signer": cert.info(),
        "objectSignatures": object_report,
    });
    if a.image.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let (bootable_line, bootable_named) = match digests.bootable {
            Some(b) => (
                format!("\n  {}: bootable EROFS {}", a.algorithm, b.to_hex()),
                ", bootable EROFS",
            ),
            None => (String::new(), ""),
        };
        outln!(
            "sealed {} (manifest {})\n  artifact {}\n  {}: manifest {}\n  {}: config {}\n  {}: merged EROFS {}{}\n  \
             binding record (manifest, config, merged EROFS{}) {}\n  signed by {}",
            a.image.image,
            image.manifest.digest(),
            sealed.artifact.digest,
            a.algorithm,
            digests.manifest.to_hex(),
            a.algorithm,
            digests.config.to_hex(),
            a.algorithm,
            merged.digest(a.algorithm).to_hex(),
            bootable_line,
            bootable_named,
            sealed.binding.digest.to_hex(),
            cert.subject()
        );
        if !object_report.is_null() {
            outln!(
                "  object signatures: {} objects, {} bytes (layer {})",
                object_report["count"],
                object_report["bytes"],
                object_report["digest"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(note) = note {
        eprintln!("{note}");
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

fn print_inline(
    a: &SealArgs,
    image: &ResolvedImage,
    composefs_digest: &str,
    sealed: &sealroot::repo::seal_inline::InlineSealed,
    cert: &sealroot::crypto::Cert,
) -> anyhow::Result<ExitCode> {
    let new_ref = format!("oci:{}:{}", a.image.image.path.display(), sealed.tag);
    let out = json!({
        "image": a.image.image.to_string(),
        "inline": true,
        "sealed": new_ref,
        "tag": sealed.tag,
        "manifest": sealed.manifest.digest,
        "config": sealed.config.digest,
        "originalManifest": image.manifest.digest(),
        "originalConfig": image.config.digest(),
        "replacedTag": sealed.replaced,
        "algorithm": sealed.algorithm.to_string(),
        "digests": {
            "config": sealed.config_fsverity.to_hex(),
            "merged": sealed.merged.to_hex(),
        },
        "composefsDigest": composefs_digest,
        "signer": cert.info(),
    });
    if a.image.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "sealed {} inline as {new_ref}\n  manifest {} (new; the original {} is unchanged)\n  \
         config   {} (new: label containers.composefs.fsverity={})\n  {}: config {}\n  \
         {}: merged EROFS {}\n  signed by {}",
        a.image.image,
        sealed.manifest.digest,
        image.manifest.digest(),
        sealed.config.digest,
        sealed.merged.to_hex(),
        sealed.algorithm,
        sealed.config_fsverity.to_hex(),
        sealed.algorithm,
        sealed.merged.to_hex(),
        cert.subject()
    );
    if let Some(old) = sealed.replaced {
        outln!("  tag {} moved from {old}", sealed.tag);
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs every content object of `merged` into a bundle layer
/// (`sealroot::objsig`). An external command spends most of its time in
/// fork/exec, so it runs four processes per core; in-process keys use
/// the global pool (one thread per core).
fn sign_objects(
    merged: &sealroot::repo::image::MergedImage,
    signer: &(dyn sealroot::crypto::Signer + Sync),
    cert: &sealroot::crypto::Cert,
    options: &sealroot::pkcs7::SignOptions,
    command: bool,
    progress: &Progress,
) -> anyhow::Result<((sealroot::oci::Descriptor, Vec<u8>), serde_json::Value)> {
    use sealroot::objsig::{self, build};
    use std::sync::atomic::{AtomicU64, Ordering};
    let objects: Vec<_> = build::tree_objects(&merged.tree).into_iter().collect();
    progress.stage(&format!("signing {} objects", objects.len()));
    let done = AtomicU64::new(0);
    let tick = || {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 1000 == 0 {
            progress.stage(&format!("signed {n} of {} objects", objects.len()));
        }
    };
    let threads = command.then(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_mul(4)
            .min(64)
    });
    let bundle = build::sign_objects(
        &objects,
        sealroot::verity::BlockSize::DEFAULT,
        signer,
        cert,
        options,
        threads,
        &tick,
    )?;
    let mut d = sealroot::oci::Descriptor::for_bytes(objsig::MEDIA_TYPE, &bundle);
    d.annotations
        .insert(objsig::COUNT_ANNOTATION.into(), objects.len().to_string());
    let report = json!({
        "count": objects.len(),
        "bytes": bundle.len(),
        "digest": d.digest,
        "mediaType": objsig::MEDIA_TYPE,
    });
    Ok(((d, bundle), report))
}

fn verify(a: &ImageArgs, list: bool, trust: &TrustArgs) -> anyhow::Result<ExitCode> {
    let trusted = match trust.load() {
        Ok(t) => t,
        Err(e) => return Ok(crate::sign::fail(crate::sign::EXIT_INPUT, &e)),
    };
    let (layout, image) = match open(a) {
        Ok(x) => x,
        Err(e) => return Ok(crate::sign::fail(open_failure(&e), &e)),
    };
    let start = Instant::now();
    let progress = Progress::new("verify");
    // One merged EROFS per object algorithm the seals use (a sha512 seal
    // signs the EROFS of sha512 objects): the layers are read once each.
    let algorithms = sealroot::repo::check::seal_algorithms(&layout, &image)?;
    let signs_bootable = sealroot::repo::source::signs_bootable(&layout, &image)?;
    let mut layers = Vec::new();
    let mut merged: Option<MergedImages> = None;
    let mut bootables: Option<MergedImages> = None;
    for alg in algorithms {
        let sink = CountingSink {
            inner: DigestOnlySink::new(sealroot::verity::VerityParams::with_algorithm(alg)),
            progress: &progress,
        };
        let these = match import_layers(&layout, &image, &sink) {
            Ok(l) => l,
            Err(e) => return Ok(crate::sign::fail(EXIT_FAILED, &e.into())),
        };
        progress.stage("regenerating the merged EROFS");
        let m = merged_from_layers(&these)?;
        if signs_bootable {
            progress.stage("regenerating the bootable EROFS");
            let objects = LayerObjects::new(&layout, &image, &these);
            let b = match bootable_of(&m, &objects) {
                Ok(b) => b,
                Err(e) => return Ok(crate::sign::fail(EXIT_FAILED, &e.into())),
            };
            match bootables.as_mut() {
                None => bootables = Some(MergedImages::new(b)),
                Some(all) => all.push(b),
            }
        }
        match merged.as_mut() {
            None => {
                merged = Some(MergedImages::new(m));
                layers = these;
            }
            Some(all) => all.push(m),
        }
    }
    let Some(merged) = merged else {
        anyhow::bail!("no fs-verity algorithm to regenerate the merged EROFS with");
    };
    let checks = check_artifacts(&layout, &image, &merged, bootables.as_ref(), &trusted)?;
    let inline = check_inline(&image, &merged, &trusted);
    let bound = binding(&image, &merged, &checks);
    progress.finish();
    let elapsed = start.elapsed();
    let mut stdout = std::io::stdout().lock();
    let mut report = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let changes: Vec<String> = l.changes.iter().map(describe).collect();
        if list && !a.json {
            for c in &changes {
                writeln!(stdout, "layer {} {c}", i + 1)?;
            }
        }
        report.push(json!({
            "digest": l.descriptor.digest, "diffId": l.diff_id, "tarSize": l.tar_size,
            "entries": l.changes.len(),
            "changes": if list { json!(changes) } else { json!(null) },
        }));
    }
    let tar: u64 = layers.iter().map(|l| l.tar_size).sum();
    let broken = checks.iter().any(ArtifactCheck::is_broken)
        || inline.as_ref().is_some_and(InlineCheck::is_broken)
        || bound.problem.is_some();
    let any_verified =
        checks.iter().any(|c| c.verified) || inline.as_ref().is_some_and(|i| i.verified);
    let ok = !broken && (trusted.is_empty() || any_verified);
    let verified_roles = checks
        .iter()
        .filter(|c| c.verified)
        .flat_map(|c| &c.roles)
        .chain(inline.iter().filter(|i| i.verified).flat_map(|i| &i.roles));
    let mut verified_by: Vec<String> = verified_roles
        .filter_map(|r| r.verified_by.as_ref())
        .map(|c| c.to_string())
        .collect();
    verified_by.sort();
    verified_by.dedup();
    if a.json {
        serde_json::to_writer_pretty(
            &mut stdout,
            &json!({"image": a.image.to_string(), "manifest": image.manifest.digest(), "ok": ok,
                    "seconds": elapsed.as_secs_f64(), "layers": report,
                    "composefsDigest": merged.first().composefs_digest.to_hex(),
                    "artifacts": checks, "inline": inline, "binding": bound,
                    "verifiedBy": verified_by, "signaturesChecked": !trusted.is_empty()}),
        )?;
        writeln!(stdout)?;
    } else {
        writeln!(
            stdout,
            "{}: manifest {} intact: {} layers, {} entries, {} uncompressed bytes, verified in {:.2}s",
            a.image,
            image.manifest.digest(),
            layers.len(),
            layers.iter().map(|l| l.changes.len()).sum::<usize>(),
            tar,
            elapsed.as_secs_f64()
        )?;
        print_checks(&mut stdout, &checks, trusted.is_empty())?;
        print_inline_check(&mut stdout, inline.as_ref(), trusted.is_empty())?;
        print_binding(&mut stdout, &bound)?;
    }
    if !ok {
        let why = if broken {
            "a sealing artifact or the inline metadata does not match the image or is damaged \
             (see above)"
                .to_string()
        } else if checks.is_empty() && inline.is_none() {
            "the image has no sealing artifact and no inline signatures; seal it with \
             `sealroot oci seal`"
                .to_string()
        } else {
            "no sealing artifact or inline metadata is signed by a trusted certificate".to_string()
        };
        eprintln!("sealroot: error: verification failed: {why}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

fn verdict(verified: bool, broken: bool, no_certs: bool) -> &'static str {
    if verified {
        "VERIFIED"
    } else if broken {
        "FAILED"
    } else if no_certs {
        "digests match (signatures not checked: no --cert)"
    } else {
        "NOT TRUSTED"
    }
}

fn print_inline_check(
    out: &mut impl Write,
    inline: Option<&InlineCheck>,
    no_certs: bool,
) -> std::io::Result<()> {
    let Some(i) = inline else {
        return writeln!(out, "inline sealing metadata: none");
    };
    writeln!(
        out,
        "inline sealing metadata [{}]: {}",
        i.algorithm.as_deref().unwrap_or("?"),
        verdict(i.verified, i.is_broken(), no_certs)
    )?;
    if let Some(p) = &i.problem {
        writeln!(out, "  problem: {p}")?;
    }
    print_roles(out, &i.roles)
}

fn print_binding(out: &mut impl Write, b: &Binding) -> std::io::Result<()> {
    if let Some(p) = &b.problem {
        return writeln!(out, "bound: FAILED: {p}");
    }
    if b.bound {
        let by: Vec<String> = b.by.iter().map(|x| x.to_string()).collect();
        return writeln!(out, "bound: yes, by {}", by.join("; "));
    }
    writeln!(
        out,
        "bound: NO: no signed binding record or config label ties the config to the merged \
         EROFS; sealroot-prepare refuses it unless prepare.conf sets require-binding = no \
         (reseal it with this sealroot)"
    )
}

fn print_checks(
    out: &mut impl Write,
    checks: &[ArtifactCheck],
    no_certs: bool,
) -> std::io::Result<()> {
    if checks.is_empty() {
        writeln!(out, "sealing artifacts: none")?;
    }
    for c in checks {
        let verdict = verdict(c.verified, c.is_broken(), no_certs);
        writeln!(
            out,
            "artifact {} [{}{}]: {verdict}",
            c.artifact,
            c.format,
            c.algorithm
                .as_deref()
                .map(|a| format!(", {a}"))
                .unwrap_or_default()
        )?;
        if let Some(p) = &c.problem {
            writeln!(out, "  problem: {p}")?;
        }
        print_roles(out, &c.roles)?;
        match &c.binding {
            None => writeln!(out, "  binding record: none")?,
            Some(b) => match (&b.problem, &b.verified_by) {
                (Some(p), _) => writeln!(out, "  binding record FAILED: {p}")?,
                (None, Some(by)) => writeln!(out, "  binding record ok, signed by {by}")?,
                (None, None) => writeln!(out, "  binding record names this image")?,
            },
        }
        if let Some(o) = &c.object_signatures {
            let state = if o.complete() && o.verified_by.is_some() {
                "ok"
            } else if o.problem.is_some() || o.missing > 0 || o.bad > 0 {
                "FAILED"
            } else {
                "coverage ok"
            };
            writeln!(out, "  {:<14} {state}: {}", "objects", o.summary())?;
        }
    }
    Ok(())
}

fn print_roles(
    out: &mut impl Write,
    roles: &[sealroot::repo::check::RoleCheck],
) -> std::io::Result<()> {
    for r in roles {
        match (&r.problem, &r.verified_by) {
            (Some(p), _) => writeln!(out, "  {:<14} FAILED: {p}", r.role)?,
            (None, Some(by)) => {
                let signer = r.signer.as_ref().filter(|s| *s != by);
                writeln!(
                    out,
                    "  {:<14} ok {} signed by {}{}",
                    r.role,
                    r.signed_digest,
                    signer.unwrap_or(by),
                    signer
                        .map(|_| format!(", trusted via {by}"))
                        .unwrap_or_default()
                )?
            }
            (None, None) => writeln!(out, "  {:<14} digest ok {}", r.role, r.signed_digest)?,
        }
    }
    Ok(())
}

fn describe(c: &Change<FileContent>) -> String {
    match c {
        Change::Whiteout(p) => format!("whiteout {p}"),
        Change::Opaque(p) => format!("opaque   {p}"),
        Change::Add { path, kind, meta } => {
            let what = match kind {
                EntryKind::File(FileContent::Inline(v)) => format!("file {} bytes inline", v.len()),
                EntryKind::File(FileContent::External { digest, size }) => {
                    format!("file {size} bytes fs-verity {digest}")
                }
                EntryKind::Symlink(t) => format!("symlink -> {}", t.escape_ascii()),
                EntryKind::Hardlink(t) => format!("hardlink -> {t}"),
                k => k.type_name().to_string(),
            };
            format!(
                "add      {path} {:04o} {}:{} {what}",
                meta.permissions, meta.uid, meta.gid
            )
        }
    }
}
