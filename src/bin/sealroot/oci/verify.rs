//! `sealroot oci verify`: read every layer, regenerate the merged (and
//! bootable) EROFS, and check every seal against it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use sealroot::oci::boot::objects::LayerObjects;
use sealroot::oci::import::import_layers;
use sealroot::oci::layer::{Change, EntryKind};
use sealroot::oci::sink::{DigestOnlySink, FileContent};
use sealroot::repo::check::{
    ArtifactCheck, Binding, InlineCheck, binding, check_artifacts, check_inline,
};
use sealroot::repo::image::{MergedImages, bootable_of, merged_from_layers};
use serde_json::json;

use crate::repo::{CountingSink, EXIT_FAILED, Progress, TrustArgs};

use super::{ImageArgs, open, open_failure};

pub(super) fn verify(a: &ImageArgs, list: bool, trust: &TrustArgs) -> anyhow::Result<ExitCode> {
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
