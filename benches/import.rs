//! Importing a large multi-layer image: `sealroot deploy` (read every
//! layer, hash everything, write every object into a repository, build the
//! EROFS) against composefs-rs' `cfsctl oci pull` (0.9.4, the same layout),
//! in alternating pairs in one run; then `sealroot oci seal` (no object
//! writes) once for reference, and in-process the library's pipelined
//! importer against the plain sequential one (`tests/oci_support/
//! sequential.rs`), hashing only, also in alternating pairs.
//!
//! The image is generated once into SEALROOT_BENCH_IMPORT_DIR (default
//! target/bench-import; reused while its parameters match):
//! SEALROOT_BENCH_IMPORT_MIB (default 1100) MiB of file content in
//! SEALROOT_BENCH_IMPORT_FILES (default 60,000) files over
//! SEALROOT_BENCH_IMPORT_LAYERS (default 4) gzip layers; file sizes from
//! 100 bytes to 8 MiB (most small, a few large), content half random, half
//! repetitive (gzip ratio about 1.8).
//!
//! SEALROOT_BENCH_PAIRS (default 5) pairs. Before each timed command its
//! previous output (sysroot, cfsctl repository) is removed, and the
//! filesystem synced (`syncfs`), outside the timed part: the writeback of
//! one run's 1.1 GB never lands in the next one's time. Each command runs
//! under /usr/bin/time (wall, user+sys CPU, peak RSS). CPU use =
//! (user+sys)/wall (2.0 = both cores busy on a 2-core machine). The hashing
//! share is estimated from single-thread rates measured here: the fs-verity
//! Merkle tree of every file, sha256 of the tar streams (diff_id) and of
//! the compressed blobs, divided by the command's CPU time.
//!
//! cfsctl: CFSCTL or SEALROOT_CFSCTL names it, else `scripts/reference-tools
//! --cfsctl` provides it (built once into the reference cache);
//! `CFSCTL=none` skips the comparison.
//!
//! Before the image, the per-object signing cost (issue 11): N ECDSA P-256
//! signatures (SEALROOT_BENCH_SIGNATURES, default 2000) over distinct
//! digests on one thread, with p256's own `sign_prehash`, with
//! `PrivateKey::sign_prehash` (the precomputed-table signer, one by one)
//! and with `PrivateKey::sign_prehashes` (the same in batches, as sealing
//! signs objects), alternating in 20 rounds in the same run, outputs
//! compared byte for byte; printed as the median µs per signature and the
//! median ratios to p256.
//!
//! Per-object signatures (`oci seal --object-signatures`, docs/ipe.md) are
//! measured as a ratio to sealing without, with an ECDSA P-256 and an
//! RSA-2048 key (target: P-256 adds at most 50% on 2 cores).
//!
//! Run: `cargo bench --bench import` (release build);
//! `cargo bench --bench import -- signing` runs only the signing part.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flate2::Compression as Level;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use sealroot::verity::VerityParams;
use sealroot::verity::digest::MerkleHasher;
use serde_json::json;
use sha2::Digest;

#[path = "../tests/common/reference_tools.rs"]
mod reference_tools;
/// The sequential reference importer, shared with `tests/repo_import.rs`.
#[path = "../tests/oci_support/sequential.rs"]
mod sequential;
#[path = "support/timed.rs"]
mod timed;
use timed::{Measure, Pairs, alternate, loadavg, timed_command};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let x = rng.next();
        if (v.len() / 4096) % 2 == 0 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(b"repetitive text ");
        }
    }
    v.truncate(len);
    v
}

/// File sizes: 90% 100 B..16 KiB, 9.5% 16 KiB..1 MiB, 0.5% 1..8 MiB,
/// scaled so the total is about `total` bytes.
fn sizes(n: u64, total: u64) -> Vec<usize> {
    let mut rng = Rng(0x5eed);
    let raw: Vec<u64> = (0..n)
        .map(|_| {
            let r = rng.next() % 1000;
            let x = rng.next();
            if r < 900 {
                100 + x % (16 << 10)
            } else if r < 995 {
                (16 << 10) + x % (1 << 20)
            } else {
                (1 << 20) + x % (7 << 20)
            }
        })
        .collect();
    let sum: u64 = raw.iter().sum();
    raw.iter()
        .map(|s| ((*s as u128 * total as u128 / sum as u128) as usize).max(65))
        .collect()
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&d), bytes).unwrap();
    format!("sha256:{d}")
}

fn generate(dir: &Path, mib: u64, files: u64, layers: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let sizes = sizes(files, mib << 20);
    let per = sizes.len().div_ceil(layers as usize);
    let chunks: Vec<(usize, &[usize])> = sizes.chunks(per).enumerate().collect();
    let results: Vec<(String, String, usize)> = chunks
        .par_iter()
        .map(|(l, chunk)| {
            let mut rng = Rng(0x1234_5678 + *l as u64);
            let gz = GzEncoder::new(Vec::new(), Level::fast());
            let mut tar = tar::Builder::new(gz);
            let mut diff = sha2::Sha256::new();
            // Every directory as its own member (composefs-rs requires
            // parents to exist), the root too (both sealroot and
            // composefs-rs give / the metadata of /usr anyway: docs/
            // sealing.md, "The merged EROFS").
            let mut dirs = vec![format!("usr/share/l{l}")];
            if *l == 0 {
                dirs.insert(0, "usr/share".into());
                dirs.insert(0, "usr".into());
                dirs.insert(0, "./".into());
            }
            dirs.extend((0..500).map(|d| format!("usr/share/l{l}/d{d:03}")));
            for d in dirs {
                let mut h = tar::Header::new_gnu();
                h.set_size(0);
                h.set_mode(0o755);
                h.set_mtime(1_700_000_000);
                h.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut h, d, &[][..]).unwrap();
            }
            for (i, size) in chunk.iter().enumerate() {
                let data = content(&mut rng, *size);
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(1_700_000_000);
                h.set_entry_type(tar::EntryType::Regular);
                let path = format!("usr/share/l{l}/d{:03}/f{i}", i % 500);
                tar.append_data(&mut h, path, &data[..]).unwrap();
            }
            let gz = tar.into_inner().unwrap();
            let blob = gz.finish().unwrap();
            // diff_id: sha256 of the uncompressed stream.
            let mut dec = flate2::read::GzDecoder::new(&blob[..]);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut dec, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                diff.update(&buf[..n]);
            }
            let digest = write_blob(dir, &blob);
            (
                digest,
                format!("sha256:{}", hex::encode(diff.finalize())),
                blob.len(),
            )
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": results.iter().map(|r| &r.1).collect::<Vec<_>>()},
    }))
    .unwrap();
    let cd = write_blob(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": results.iter().map(|r| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": r.0, "size": r.2})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let md = write_blob(dir, &manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
        .unwrap(),
    )
    .unwrap();
}

/// Single-thread rates in bytes/s: fs-verity sha256, plain sha256, gunzip.
fn rates(sample_blob: &Path) -> (f64, f64, f64) {
    let buf = content(&mut Rng(7), 256 << 20);
    let t = Instant::now();
    let mut h = MerkleHasher::new(&VerityParams::sha256());
    h.update(&buf);
    std::hint::black_box(h.finish());
    let verity = buf.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    std::hint::black_box(sha2::Sha256::digest(&buf));
    let sha = buf.len() as f64 / t.elapsed().as_secs_f64();
    let blob = std::fs::read(sample_blob).unwrap();
    let t = Instant::now();
    let n = std::io::copy(
        &mut flate2::read::GzDecoder::new(&blob[..]),
        &mut std::io::sink(),
    )
    .unwrap();
    let gunzip = n as f64 / t.elapsed().as_secs_f64();
    (verity, sha, gunzip)
}

/// user+sys CPU seconds of this process so far (/proc/self/stat fields
/// utime and stime, proc(5)).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the ")" closing the command name, utime and stime are the 12th
    // and 13th fields.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / rustix::param::clock_ticks_per_second() as f64
}

/// In-process, hashing only: the library's pipelined importer
/// (`oci::import::import_layers`) against the sequential reference (one
/// task per layer, one member after the other), in alternating pairs.
fn importers(layout: &Path, pairs: usize) -> String {
    use sealroot::oci::layout::ImageLayout;
    use sealroot::oci::sink::DigestOnlySink;
    use sealroot::oci::{Platform, Selector};
    let l = ImageLayout::open_dir(layout).unwrap();
    let img = l
        .resolve(&Selector::Tag("bench".into()), &Platform::host())
        .unwrap();
    let run = |pipelined: bool| {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let sink = DigestOnlySink::default();
        let layers = if pipelined {
            sealroot::oci::import::import_layers(&l, &img, &sink).unwrap()
        } else {
            sequential::import_layers(&l, &img, &sink).unwrap()
        };
        std::hint::black_box(layers);
        Measure {
            wall: t0.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c0,
            rss_mib: 0.0,
        }
    };
    let p = alternate(pairs, || run(true), || run(false));
    format!(
        "importer, in process, hashing only:\n{}",
        p.report("pipelined (production)", "sequential (reference)")
    )
}

/// cfsctl 0.9.4 as `tests/cfsctl_interop.rs` finds it; `None` for
/// `CFSCTL=none`.
fn cfsctl() -> Option<PathBuf> {
    for var in ["CFSCTL", "SEALROOT_CFSCTL"] {
        if let Some(p) = std::env::var_os(var) {
            return (p != "none").then(|| p.into());
        }
    }
    let out = reference_tools::run(
        &["--cfsctl"],
        "set CFSCTL to a built cfsctl 0.9.4 or CFSCTL=none",
    );
    Some(reference_tools::value(&out, "SEALROOT_CFSCTL"))
}

/// Removes `path` (a previous run's output) and flushes the filesystem
/// holding `sync_dir`, so neither lands in the next timed command.
fn clean(path: &Path, sync_dir: &Path) {
    let _ = std::fs::remove_dir_all(path);
    let d = std::fs::File::open(sync_dir).unwrap();
    rustix::fs::syncfs(&d).unwrap();
}

/// Per-signature cost of ECDSA P-256 over `n` distinct sha256 digests:
/// p256's `SigningKey::sign_prehash` against `PrivateKey::sign_prehash`
/// (one by one) and `PrivateKey::sign_prehashes` (in batches, as sealing
/// signs objects).
fn signing(n: u64) -> String {
    use sealroot::crypto::{DigestAlgorithm, PrivateKey};
    use signature::hazmat::PrehashSigner;

    let key = p256::ecdsa::SigningKey::from_bytes(&[0x42; 32].into()).unwrap();
    let ours = PrivateKey::P256(key.clone());
    let digests: Vec<[u8; 32]> = (0..n)
        .map(|i| sha2::Sha256::digest(i.to_le_bytes()).into())
        .collect();
    // The first signature builds the table (once per process).
    let t = Instant::now();
    ours.sign_prehash(DigestAlgorithm::Sha256, &digests[0])
        .unwrap();
    let first = t.elapsed().as_secs_f64();
    // Alternate the three in short rounds over the same digests, so load
    // changes hit all alike; medians of the rounds resist load spikes.
    let rounds = 20;
    let (mut p256_us, mut single_us, mut batch_us) = (Vec::new(), Vec::new(), Vec::new());
    let (mut single_ratios, mut batch_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let part =
            &digests[(round * digests.len() / rounds)..((round + 1) * digests.len() / rounds)];
        let t = Instant::now();
        let reference: Vec<Vec<u8>> = part
            .iter()
            .map(|d| {
                let sig: p256::ecdsa::Signature = key.sign_prehash(d).unwrap();
                sig.to_der().as_bytes().to_vec()
            })
            .collect();
        let theirs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let single: Vec<Vec<u8>> = part
            .iter()
            .map(|d| ours.sign_prehash(DigestAlgorithm::Sha256, d).unwrap())
            .collect();
        let one_by_one = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let hashes: Vec<&[u8]> = part.iter().map(|d| &d[..]).collect();
        let batched: Vec<Vec<u8>> = ours
            .sign_prehashes(DigestAlgorithm::Sha256, &hashes)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let in_batches = t.elapsed().as_secs_f64();
        assert_eq!(
            reference, single,
            "the table-driven signer differs from p256"
        );
        assert_eq!(reference, batched, "the batch signer differs from p256");
        let per_signature = |secs: f64| secs * 1e6 / part.len() as f64;
        p256_us.push(per_signature(theirs));
        single_us.push(per_signature(one_by_one));
        batch_us.push(per_signature(in_batches));
        single_ratios.push(theirs / one_by_one);
        batch_ratios.push(theirs / in_batches);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    format!(
        "ECDSA P-256, {n} signatures in {rounds} rounds, one thread (medians): \
         p256 sign_prehash {:.1} µs, sealroot one by one {:.1} µs ({:.2}x faster), \
         in batches of {} {:.1} µs ({:.2}x faster) per signature; \
         first signature (builds the table) {:.1} ms; load average {}\n",
        median(p256_us),
        median(single_us),
        median(single_ratios),
        sealroot::crypto::p256_fixed_base::BATCH,
        median(batch_us),
        median(batch_ratios),
        first * 1e3,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    )
}

fn main() {
    let signing_report = signing(env_u64("SEALROOT_BENCH_SIGNATURES", 2000).max(20));
    print!("{signing_report}");
    if std::env::args().any(|a| a == "signing") {
        return;
    }
    let mib = env_u64("SEALROOT_BENCH_IMPORT_MIB", 1100);
    let files = env_u64("SEALROOT_BENCH_IMPORT_FILES", 60_000);
    let layers = env_u64("SEALROOT_BENCH_IMPORT_LAYERS", 4);
    let pairs = env_u64("SEALROOT_BENCH_PAIRS", 5) as usize;
    let root = std::env::var_os("SEALROOT_BENCH_IMPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-import"));
    let layout = root.join("layout");
    let stamp = format!("v3 {mib} {files} {layers}\n");
    if std::fs::read_to_string(root.join("params")).ok().as_deref() != Some(stamp.as_str()) {
        let t = Instant::now();
        generate(&layout, mib, files, layers);
        std::fs::write(root.join("params"), &stamp).unwrap();
        eprintln!("generated the image in {:.1} s", t.elapsed().as_secs_f64());
    }
    let load_start = loadavg();
    let blobs: Vec<PathBuf> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let compressed: u64 = blobs.iter().map(|p| p.metadata().unwrap().len()).sum();
    let largest = blobs
        .iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();

    let sr = env!("CARGO_BIN_EXE_sealroot");
    let keys = root.join("keys");
    if !keys.join("signer.crt.pem").exists() {
        let ok = Command::new(sr)
            .args(["keygen", "--self-signed", "--out-dir"])
            .arg(&keys)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let image = format!("oci:{}:bench", layout.display());
    // Sealing writes an artifact into the layout each time (same key: the
    // same artifact), which is cheap and does not change the image.
    let mut seal_cmd = Command::new(sr);
    seal_cmd
        .args(["oci", "seal", &image, "--json", "--key"])
        .arg(keys.join("signer.key.pem"))
        .arg("--cert")
        .arg(keys.join("signer.crt.pem"));
    let _warm = timed_command(&seal_cmd);
    let seal = timed_command(&seal_cmd);
    let sealed = seal_cmd.output().unwrap();
    let sealed: serde_json::Value = serde_json::from_slice(&sealed.stdout).unwrap();
    let ours = sealed["composefsDigest"].as_str().unwrap().to_owned();

    let sysroot = root.join("sysroot");
    // --no-verify: the import and the writes are measured (cfsctl checks no
    // signature either).
    let mut deploy_cmd = Command::new(sr);
    deploy_cmd
        .args([
            "deploy",
            &image,
            "--json",
            "--no-seed-var",
            "--no-verify",
            "--sysroot",
        ])
        .arg(&sysroot);
    let deploy = || {
        clean(&sysroot, &root);
        std::fs::create_dir(&sysroot).unwrap();
        timed_command(&deploy_cmd)
    };
    let cfs_repo = root.join("cfs-repo");
    let cfsctl = cfsctl();
    let pull = |cfsctl: &Path| {
        clean(&cfs_repo, &root);
        let ok = Command::new(cfsctl)
            .arg("--repo")
            .arg(&cfs_repo)
            .args(["init", "--insecure", "--algorithm", "fsverity-sha256-12"])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "cfsctl init: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let mut cmd = Command::new(cfsctl);
        cmd.arg("--repo")
            .arg(&cfs_repo)
            .args(["oci", "pull", &image, "bench"]);
        timed_command(&cmd)
    };
    let deploys: Pairs = match &cfsctl {
        Some(c) => alternate(pairs, deploy, || pull(c)),
        None => Pairs {
            ours: (0..pairs.max(1)).map(|_| deploy()).collect(),
            theirs: Vec::new(),
        },
    };

    let tar_bytes = {
        let r = Command::new(sr)
            .args(["oci", "verify", &image, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["tarSize"].as_u64().unwrap())
            .sum::<u64>()
    };
    let content_bytes = mib << 20;
    let (verity_rate, sha_rate, gunzip_rate) = rates(largest);
    let hash_cpu = content_bytes as f64 / verity_rate
        + tar_bytes as f64 / sha_rate
        + compressed as f64 / sha_rate;
    let gunzip_cpu = tar_bytes as f64 / gunzip_rate;
    let mb = |b: u64| b as f64 / 1e6;
    let mut report = String::new();
    let mut line = |name: &str, m: &Measure| {
        report.push_str(&format!(
            "{name:<30} {:>7.2} s  {:>7.1} MB/s (tar)  CPU {:>6.2} s = {:.2} cores  hashing {:>3.0}%  gunzip {:>3.0}%  peak RSS {:>6.1} MiB\n",
            m.wall,
            mb(tar_bytes) / m.wall,
            m.cpu,
            m.cpu / m.wall,
            100.0 * hash_cpu / m.cpu,
            100.0 * gunzip_cpu / m.cpu,
            m.rss_mib
        ));
    };
    line("sealroot oci seal (1 run)", &seal);
    line("sealroot deploy (median run)", &deploys.median_ours());
    let mut ratios = String::new();
    for key_type in ["p256", "rsa2048"] {
        let dir = root.join(format!("keys-{key_type}"));
        if !dir.join("signer.crt.pem").exists() {
            let ok = Command::new(sr)
                .args(["keygen", "--self-signed", "--type", key_type, "--out-dir"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let mut cmd = Command::new(sr);
        cmd.args([
            "oci",
            "seal",
            &image,
            "--json",
            "--object-signatures",
            "--key",
        ])
        .arg(dir.join("signer.key.pem"))
        .arg("--cert")
        .arg(dir.join("signer.crt.pem"));
        let m = timed_command(&cmd);
        let out: serde_json::Value = serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap();
        let objects = &out["objectSignatures"];
        line(&format!("seal +objects {key_type}"), &m);
        ratios.push_str(&format!(
            "  {key_type}: {} objects, bundle {:.1} MB; wall {:.2}x, CPU {:.2}x sealing without\n",
            objects["count"],
            objects["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            m.wall / seal.wall,
            m.cpu / seal.cpu
        ));
    }
    if let Some(cfsctl) = &cfsctl {
        let median_pull = {
            let mut t = deploys.theirs.clone();
            t.sort_by(|a, b| a.wall.total_cmp(&b.wall));
            t[t.len() / 2]
        };
        line("cfsctl oci pull (median run)", &median_pull);
        report.push_str(&format!(
            "deploy vs cfsctl oci pull ({pairs} alternating pairs, outputs removed and syncfs before each):\n{}",
            deploys.report("sealroot deploy", "cfsctl oci pull")
        ));
        let id = Command::new(cfsctl)
            .arg("--repo")
            .arg(&cfs_repo)
            .args(["oci", "compute-id", "bench"])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
        report.push_str(&format!(
            "composefs digest: sealroot {ours}, cfsctl {id} ({})\n",
            if id == ours { "equal" } else { "DIFFERENT" }
        ));
    }
    report.push_str(&ratios);
    report.push_str(&importers(&layout, pairs));
    let _ = std::fs::remove_dir_all(&sysroot);
    let _ = std::fs::remove_dir_all(&cfs_repo);
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "image: {} files, {:.0} MB content, {:.0} MB tar, {:.0} MB gzip in {layers} layers, {} cores\n\
         load average: {load_start} at start, {} at end (ratios under load are indicative)\n\
         single-thread rates: fs-verity sha256 {:.0} MB/s, sha256 {:.0} MB/s, gunzip {:.0} MB/s\n\
         => hashing needs {:.1} CPU-s, gunzip {:.1} CPU-s\n{report}",
        files,
        mb(content_bytes),
        mb(tar_bytes),
        mb(compressed),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        loadavg(),
        verity_rate / 1e6,
        sha_rate / 1e6,
        gunzip_rate / 1e6,
        hash_cpu,
        gunzip_cpu,
    )
    .unwrap();
}
