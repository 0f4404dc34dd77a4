//! fs-verity digest throughput: sealroot against fsverity-utils.
//!
//! `cargo bench --bench verity` prints, in one run:
//! 1. raw SHA-256 throughput of the `sha2` crate (SHA-NI where the CPU has
//!    it): the one-stream floor, since fs-verity hashes every byte about
//!    1.024 times
//!    (each block once plus its padding block, plus the tree);
//! 2. one 1 GiB file, page cache warm (written, then read once before
//!    timing): `sealroot digest` on all cores (the file cut into segments
//!    hashed in parallel) and `sealroot digest -j1` (one thread), each
//!    against `fsverity digest` in SEALROOT_BENCH_PAIRS (default 5)
//!    alternating pairs: median speed-up and its spread; and the library's
//!    single-threaded `digest_file` against the one-stream floor;
//! 3. many files (20,000, mixed sizes, page cache warm): `fsverity digest`
//!    against `sealroot digest` on all cores and on one.
//!
//! Environment: `SEALROOT_BENCH_MIB` (size of the big file, default 1024),
//! `SEALROOT_BENCH_FILES` (default 20000), `SEALROOT_BENCH_RUNS` (default
//! 5). Everything lives in a temporary directory that is removed at the end.

#[path = "support/timed.rs"]
mod timed;
#[path = "../tests/common/tools.rs"]
mod tools;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealroot::verity::VerityParams;
use sealroot::verity::digest::digest_open_file;
use sha2::{Digest, Sha256};

const SEALROOT: &str = env!("CARGO_BIN_EXE_sealroot");
const MIB: u64 = 1 << 20;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn fill(buf: &mut [u8], seed: &mut u64) {
    *seed |= 1;
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let v = seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time used so far by this process and its waited-for children
/// (utime + stime + cutime + cstime from /proc/self/stat, proc(5)).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime is field 14.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    let ticks = rustix::param::clock_ticks_per_second();
    Duration::from_secs_f64(f.iter().sum::<u64>() as f64 / ticks as f64)
}

/// Median wall-clock and CPU time of a measured action.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

/// Runs `f` once to warm up, then `runs` times; returns the medians. CPU
/// time is what to compare on a busy machine (it is what the hashing
/// costs); wall time is what a user waits.
fn time_runs(runs: u64, mut f: impl FnMut()) -> Timing {
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_time());
        f();
        wall.push(t.elapsed());
        cpu.push(cpu_time() - c);
    }
    Timing {
        wall: median(wall),
        cpu: median(cpu),
    }
}

fn ratio(theirs: Timing, ours: Timing) -> String {
    format!(
        "{:.2} by CPU time, {:.2} by wall time",
        theirs.cpu.as_secs_f64() / ours.cpu.as_secs_f64(),
        theirs.wall.as_secs_f64() / ours.wall.as_secs_f64()
    )
}

fn show(name: &str, bytes: u64, t: Timing) {
    println!(
        "{name:<34} wall {:>7.3} s ({:>5.0} MB/s)   cpu {:>7.3} s ({:>5.0} MB/s)",
        t.wall.as_secs_f64(),
        mb_per_s(bytes, t.wall),
        t.cpu.as_secs_f64(),
        mb_per_s(bytes, t.cpu)
    );
}

/// Runs a command with stdout discarded; panics if it fails.
fn run_quiet(cmd: &mut Command) {
    let status = cmd.stdout(Stdio::null()).status().expect("spawn");
    assert!(status.success(), "{cmd:?} failed");
}

/// Captures a command's stdout.
fn capture(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Reads a file to /dev/null so that timings measure hashing, not the disk.
fn warm(path: &Path) {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    while f.read(&mut buf).unwrap() > 0 {}
}

fn raw_sha256(runs: u64) -> f64 {
    let mut buf = vec![0u8; 256 * MIB as usize];
    fill(&mut buf, &mut 7);
    let t = time_runs(runs, || {
        std::hint::black_box(Sha256::digest(&buf));
    });
    mb_per_s(buf.len() as u64, t.cpu)
}

fn big_file(dir: &Path, runs: u64, raw: f64) {
    let mib = env_num("SEALROOT_BENCH_MIB", 1024);
    let path = dir.join("big");
    {
        let mut f = File::create(&path).unwrap();
        let mut buf = vec![0u8; 4 * MIB as usize];
        let mut seed = 42;
        for _ in 0..mib.div_ceil(4) {
            fill(&mut buf, &mut seed);
            f.write_all(&buf).unwrap();
        }
    }
    warm(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    let fsverity = tools::fsverity();

    // Same answer first, then speed.
    let theirs = capture(fsverity.command().arg("digest").arg(&path));
    let ours = capture(Command::new(SEALROOT).args(["digest", "-j1"]).arg(&path));
    assert_eq!(ours, theirs, "digests differ");

    let pairs = env_num("SEALROOT_BENCH_PAIRS", 5) as usize;
    let fsverity_cmd = {
        let mut c = fsverity.command();
        c.arg("digest").arg(&path);
        c
    };
    let ours_cmd = |jobs: Option<&str>| {
        let mut c = Command::new(SEALROOT);
        c.arg("digest").args(jobs).arg(&path);
        c
    };
    let (all_cmd, one_cmd) = (ours_cmd(None), ours_cmd(Some("-j1")));
    let all = timed::alternate(
        pairs,
        || timed::timed_command(&all_cmd),
        || timed::timed_command(&fsverity_cmd),
    );
    let one = timed::alternate(
        pairs,
        || timed::timed_command(&one_cmd),
        || timed::timed_command(&fsverity_cmd),
    );
    let fsverity_walls: Vec<f64> = all
        .theirs
        .iter()
        .chain(&one.theirs)
        .map(|m| m.wall)
        .collect();
    let fsverity_cpus: Vec<f64> = all
        .theirs
        .iter()
        .chain(&one.theirs)
        .map(|m| m.cpu)
        .collect();
    let t_fsverity = Timing {
        wall: Duration::from_secs_f64(timed::median(&fsverity_walls)),
        cpu: Duration::from_secs_f64(timed::median(&fsverity_cpus)),
    };
    let params = VerityParams::sha256();
    let t_lib = time_runs(runs, || {
        std::hint::black_box(digest_file_single(&params, &path));
    });

    // Compression-function input per 4 KiB block: the block plus one
    // padding block; the tree adds one hash per 128 blocks, recursively.
    let blocks = size.div_ceil(4096);
    let tree_blocks = {
        let (mut n, mut total) = (blocks, 0);
        while n > 1 {
            n = n.div_ceil(128);
            total += n;
        }
        total
    };
    let hashed = (blocks + tree_blocks) * (4096 + 64);
    let floor = Duration::from_secs_f64(hashed as f64 / 1e6 / raw);

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n== one {} MiB file, sha256, 4 KiB blocks, page cache warm ==",
        size / MIB
    );
    print!(
        "{}",
        all.report(&format!("sealroot digest ({cpus} CPUs)"), "fsverity digest")
    );
    print!("{}", one.report("sealroot digest -j1", "fsverity digest"));
    show("fsverity digest (median)", size, t_fsverity);
    show(
        &format!("library, one thread (median of {runs})"),
        size,
        t_lib,
    );
    println!(
        "{:<34} {:>7.3} s ({:>5.0} MB/s)",
        "one-stream floor (raw sha256 x1.024)",
        floor.as_secs_f64(),
        mb_per_s(size, floor)
    );
    println!(
        "ratio fsverity/library     (single thread): {}",
        ratio(t_fsverity, t_lib)
    );
    println!(
        "library CPU time vs the one-stream floor: {:.0}% (below 100% = faster than one \
         SHA-256 stream can go: blocks are hashed in pairs)",
        100.0 * t_lib.cpu.as_secs_f64() / floor.as_secs_f64()
    );
    std::fs::remove_file(&path).unwrap();
}

/// The library's one-thread streaming digest (`digest_file` would use the
/// segment-parallel path for a file this large).
fn digest_file_single(params: &VerityParams, path: &Path) -> sealroot::verity::FsVerityDigest {
    digest_open_file(params, &File::open(path).unwrap()).unwrap()
}

/// A size drawn from a mix like an OS image: mostly small files, some
/// medium, a few large.
fn mixed_size(seed: &mut u64) -> usize {
    let mut r = [0u8; 8];
    fill(&mut r, seed);
    let r = u64::from_le_bytes(r);
    let pick = r % 100;
    let v = (r >> 8) as usize;
    match pick {
        0..80 => v % (16 << 10),
        80..98 => (16 << 10) + v % (112 << 10),
        _ => (128 << 10) + v % (896 << 10),
    }
}

fn many_files(dir: &Path, runs: u64) {
    let count = env_num("SEALROOT_BENCH_FILES", 20_000);
    let root = dir.join("many");
    std::fs::create_dir(&root).unwrap();
    let mut seed = 99;
    let mut names: Vec<PathBuf> = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; MIB as usize];
    for i in 0..count {
        let sub = format!("{:02x}", i % 256);
        if i < 256 {
            std::fs::create_dir(root.join(&sub)).unwrap();
        }
        let name = PathBuf::from(format!("{sub}/{i}"));
        let size = mixed_size(&mut seed);
        fill(&mut buf[..size], &mut seed);
        std::fs::write(root.join(&name), &buf[..size]).unwrap();
        total += size as u64;
        names.push(name);
    }
    for n in &names {
        warm(&root.join(n));
    }
    let fsverity = tools::fsverity();
    let ours = |jobs: Option<&str>| {
        let mut c = Command::new(SEALROOT);
        c.current_dir(&root).arg("digest");
        if let Some(j) = jobs {
            c.arg(j);
        }
        c.args(&names);
        c
    };
    let theirs = || {
        let mut c = fsverity.command();
        c.current_dir(&root).arg("digest").args(&names);
        c
    };
    assert_eq!(
        capture(&mut ours(None)),
        capture(&mut theirs()),
        "digests differ"
    );
    let t_fsverity = time_runs(runs, || run_quiet(&mut theirs()));
    let t_all = time_runs(runs, || run_quiet(&mut ours(None)));
    let t_one = time_runs(runs, || run_quiet(&mut ours(Some("-j1"))));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n== {count} files, {:.0} MiB in all, page cache warm, median of {runs} ==",
        total as f64 / MIB as f64
    );
    show("fsverity digest", total, t_fsverity);
    show(&format!("sealroot digest ({cpus} CPUs)"), total, t_all);
    show("sealroot digest -j1", total, t_one);
    println!(
        "speedup over fsverity, all {cpus} CPUs (wall time): {:.2}x",
        t_fsverity.wall.as_secs_f64() / t_all.wall.as_secs_f64()
    );
    println!(
        "speedup over fsverity, single thread: {}",
        ratio(t_fsverity, t_one)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this only checks that it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs = env_num("SEALROOT_BENCH_RUNS", 5).max(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "fs-verity digest benchmark; load average at start: {}",
        load.trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_sha256(runs);
    println!("raw sha256 (sha2 crate, one stream): {raw:.0} MB/s");
    big_file(dir.path(), runs, raw);
    many_files(dir.path(), runs);
    println!("\nload average at end: {}", timed::loadavg());
}
