//! `sealroot oci`: read OCI images the way sealing reads them.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use sealroot::oci::import::import_layers;
use sealroot::oci::layer::{Change, EntryKind};
use sealroot::oci::layout::{ImageLayout, ResolvedImage};
use sealroot::oci::referrers::seal_artifacts;
use sealroot::oci::sink::{DigestOnlySink, FileContent};
use sealroot::oci::{ImageReference, Platform};
use serde_json::json;

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
    Examples:\n  \
    skopeo copy docker://quay.io/fedora/fedora-bootc:41 oci:/srv/img:41\n  \
    sealroot oci inspect oci:/srv/img:41\n  \
    sealroot oci inspect --json --platform linux/arm64 oci-archive:img.tar\n  \
    sealroot oci verify oci:/srv/img:41";

#[derive(Args)]
pub struct OciArgs {
    #[command(subcommand)]
    command: OciCommand,
}

#[derive(Args)]
struct ImageArgs {
    /// The image: oci:DIR[:TAG|@sha256:DIGEST] or oci-archive:FILE[:TAG|@sha256:DIGEST]
    image: ImageReference,
    /// Platform to pick from a multi-platform index, OS/ARCH[/VARIANT]
    #[arg(long, default_value_t = Platform::host())]
    platform: Platform,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum OciCommand {
    /// Show the image's manifest, config, layers and attached sealing artifacts
    Inspect(ImageArgs),
    /// Read every layer, checking blob digests, diff_ids and tar members
    #[command(
        long_about = "Read every layer of the image completely, in parallel: blob \
        sha256 and size against the manifest, uncompressed sha256 against the config's \
        diff_ids, every tar member against the rules sealing applies (no path escapes, no \
        malformed headers, valid whiteouts). Nothing is written. Exit status 0 when the image \
        is intact, 1 with a message naming the blob or member when it is not."
    )]
    Verify {
        #[command(flatten)]
        image: ImageArgs,
        /// Also list every change each layer makes
        #[arg(long)]
        changes: bool,
    },
}

pub fn run(args: OciArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OciCommand::Inspect(a) => inspect(&a),
        OciCommand::Verify { image, changes } => verify(&image, changes),
    }
}

fn open(a: &ImageArgs) -> anyhow::Result<(ImageLayout, ResolvedImage)> {
    let layout = ImageLayout::open(&a.image).with_context(|| format!("opening {}", a.image))?;
    let image = layout
        .resolve(&a.image.selector, &a.platform)
        .with_context(|| format!("resolving {}", a.image))?;
    Ok((layout, image))
}

fn inspect(a: &ImageArgs) -> anyhow::Result<ExitCode> {
    let (layout, image) = open(a)?;
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
    Ok(ExitCode::SUCCESS)
}

fn verify(a: &ImageArgs, list: bool) -> anyhow::Result<ExitCode> {
    let (layout, image) = open(a)?;
    let start = Instant::now();
    let sink = DigestOnlySink::default();
    let layers = import_layers(&layout, &image, &sink)?;
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
    if a.json {
        serde_json::to_writer_pretty(
            &mut stdout,
            &json!({"image": a.image.to_string(), "manifest": image.manifest.digest(), "ok": true,
                    "seconds": elapsed.as_secs_f64(), "layers": report}),
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
    }
    Ok(ExitCode::SUCCESS)
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
