//! EROFS generation speed and memory against the reference mkcomposefs
//! (Debian's composefs 1.0.8, set up by scripts/reference-tools), in one run:
//!
//! 1. dumpfile mode: a generated dumpfile of SEALROOT_BENCH_ENTRIES entries
//!    (default 1,000,000; realistic shape: nested directories, external
//!    files with digests, small inline files, symlinks, SELinux labels);
//! 2. directory mode: SEALROOT_BENCH_DIR (default /usr; `none` skips it),
//!    hashing every file larger than 64 bytes on all cores.
//!
//! Each tool runs as a process under /usr/bin/time (wall time, peak RSS),
//! best of SEALROOT_BENCH_RUNS (default 2) after a warm-up; the images must
//! be byte-identical. Run: `cargo bench --bench mkcomposefs`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/timed.rs"]
mod timed;

use std::fmt::Write as _;
use std::path::Path;

use timed::{Measure, timed};

fn best(runs: usize, cmd: &[&std::ffi::OsStr]) -> Measure {
    let mut best: Option<Measure> = None;
    for _ in 0..runs {
        let m = timed(cmd);
        best = Some(match best {
            Some(b) if b.wall <= m.wall => Measure {
                rss_mib: b.rss_mib.max(m.rss_mib),
                ..b
            },
            Some(b) => Measure {
                rss_mib: b.rss_mib.max(m.rss_mib),
                ..m
            },
            None => m,
        });
    }
    best.unwrap()
}

fn synthetic_dump(entries: usize) -> String {
    let mut rng = common::trees::Rng::new(42);
    let labels = [
        "system_u:object_r:usr_t:s0",
        "system_u:object_r:bin_t:s0",
        "system_u:object_r:lib_t:s0",
    ];
    let mut out = String::with_capacity(entries * 200);
    out.push_str("/ 4096 40755 2 0 0 0 1700000000.0 - - - security.selinux=system_u:object_r:root_t:s0\\x00\n");
    let mut dirs = vec![String::new()];
    let mut n = 0usize;
    let mut d = 0usize;
    while n < entries {
        let parent = dirs[d % dirs.len()].clone();
        d += 1;
        for i in 0..(1 + rng.below(60)) {
            if n >= entries {
                break;
            }
            n += 1;
            let path = format!("{parent}/e{i:03}x{}", rng.below(1000));
            let label = labels[rng.below(3) as usize];
            let t = 1_700_000_000 + rng.below(1000);
            match rng.below(20) {
                0 | 1 => {
                    let _ = writeln!(
                        out,
                        "{path} 4096 40755 2 0 0 0 {t}.0 - - - security.selinux={label}\\x00"
                    );
                    dirs.push(path);
                }
                2 => {
                    let _ = writeln!(
                        out,
                        "{path} 12 120777 1 0 0 0 {t}.0 ../lib/x.so.1 - - security.selinux={label}\\x00"
                    );
                }
                3 => {
                    let _ = writeln!(
                        out,
                        "{path} 5 100644 1 0 0 0 {t}.0 - hello - security.selinux={label}\\x00"
                    );
                }
                _ => {
                    let digest = hex::encode(rng.bytes(32));
                    let size = 65 + rng.below(1 << 20);
                    let _ = writeln!(
                        out,
                        "{path} {size} 100644 1 0 0 0 {t}.0 {}/{} - {digest} security.selinux={label}\\x00",
                        &digest[..2],
                        &digest[2..]
                    );
                }
            }
        }
    }
    out
}

fn compare(what: &str, entries: usize, ours: &Measure, theirs: &Measure, a: &Path, b: &Path) {
    let same = std::fs::read(a).unwrap() == std::fs::read(b).unwrap();
    println!(
        "{what}: {entries} entries, images {}",
        if same { "byte-identical" } else { "DIFFERENT" }
    );
    for (who, m) in [("sealroot   ", ours), ("mkcomposefs", theirs)] {
        println!(
            "  {who} {:8.3} s  {:>12.0} entries/s  CPU {:6.2} s  peak RSS {:>8.1} MiB",
            m.wall,
            entries as f64 / m.wall.max(1e-9),
            m.cpu,
            m.rss_mib
        );
    }
    println!(
        "  speed-up {:.2}x, memory {:.2}x of mkcomposefs",
        theirs.wall / ours.wall.max(1e-9),
        ours.rss_mib / theirs.rss_mib.max(1e-9)
    );
    assert!(same, "{what}: images differ");
}

fn main() {
    let sealroot = env!("CARGO_BIN_EXE_sealroot");
    let mkcomposefs = common::reference().bin.join("mkcomposefs");
    let runs: usize = std::env::var("SEALROOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let entries: usize = std::env::var("SEALROOT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let (dump, a, b) = (
        tmp.path().join("bench.dump"),
        tmp.path().join("ours.cfs"),
        tmp.path().join("ref.cfs"),
    );
    std::fs::write(&dump, synthetic_dump(entries)).unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    let ours_cmd = [
        os(sealroot),
        os("mkcomposefs"),
        os("--from-file"),
        dump.clone().into(),
        a.clone().into(),
    ];
    let ref_cmd = [
        mkcomposefs.clone().into(),
        os("--from-file"),
        dump.clone().into(),
        b.clone().into(),
    ];
    timed(&refs(&ours_cmd)); // warm-up (page cache)
    let ours = best(runs, &refs(&ours_cmd));
    let theirs = best(runs, &refs(&ref_cmd));
    compare(
        "dumpfile mode (--from-file)",
        entries,
        &ours,
        &theirs,
        &a,
        &b,
    );

    let dir = std::env::var("SEALROOT_BENCH_DIR").unwrap_or_else(|_| "/usr".into());
    if dir != "none" {
        let count = walkdir_count(Path::new(&dir));
        let ours_cmd = [
            os(sealroot),
            os("mkcomposefs"),
            dir.clone().into(),
            a.clone().into(),
        ];
        let ref_cmd = [mkcomposefs.into(), dir.clone().into(), b.clone().into()];
        timed(&refs(&ours_cmd)); // warm-up: file contents into the page cache
        let ours = best(runs, &refs(&ours_cmd));
        let theirs = best(runs, &refs(&ref_cmd));
        compare(
            &format!(
                "directory mode ({dir}, {} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            count,
            &ours,
            &theirs,
            &a,
            &b,
        );
    }
}

fn refs(v: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    v.iter().map(|s| s.as_os_str()).collect()
}

fn walkdir_count(p: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            n += 1;
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    n
}
