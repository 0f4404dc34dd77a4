//! `sealroot oci seal`: sign an image with a composefs sealing artifact
//! (or inline metadata), and its per-object signatures.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::boot::objects::LayerObjects;
use sealroot::oci::import::import_layers;
use sealroot::oci::layout::ResolvedImage;
use sealroot::oci::sink::DigestOnlySink;
use sealroot::repo::image::{bootable_of, merged_from_layers};
use serde_json::json;

use crate::repo::{CountingSink, Progress};

use super::{ImageArgs, open};

pub(super) const SEAL_HELP: &str = "\
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
pub(super) struct SealArgs {
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

pub(super) fn seal(a: &SealArgs) -> anyhow::Result<ExitCode> {
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
