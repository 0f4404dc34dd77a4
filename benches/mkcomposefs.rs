//! EROFS generation speed and memory against the reference mkcomposefs
//! (Debian's composefs 1.0.8, set up by scripts/reference-tools), in one run:
//!
//! 1. dumpfile mode: a generated dumpfile of SEALROOT_BENCH_ENTRIES entries
//!    (default 1,000,000; realistic shape: nested directories, external
//!    files with digests, small inline files, symlinks, SELinux labels);
//! 2. directory mode: SEALROOT_BENCH_DIR (default /usr; `none` skips it),
//!    hashing every file larger than 64 bytes on all cores.
//!
//! Each tool runs as a process under /usr/bin/time (wall time, CPU, peak
//! RSS), after a warm-up, in SEALROOT_BENCH_PAIRS (default 5) alternating
//! pairs (the first of each pair alternates, so load drift falls on both);
//! the report gives the median speed-up and its spread. The images must be
//! byte-identical. Run: `cargo bench --bench mkcomposefs`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/timed.rs"]
mod timed;

use std::fmt::Write as _;
use std::path::Path;

use timed::{Pairs, alternate, loadavg, timed};

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

fn compare(what: &str, entries: usize, pairs: &Pairs, a: &Path, b: &Path) {
    let same = std::fs::read(a).unwrap() == std::fs::read(b).unwrap();
    println!(
        "{what}: {entries} entries, images {}",
        if same { "byte-identical" } else { "DIFFERENT" }
    );
    print!(
        "{}",
        pairs.report("sealroot mkcomposefs", "mkcomposefs 1.0.8")
    );
    assert!(same, "{what}: images differ");
}

fn main() {
    let sealroot = env!("CARGO_BIN_EXE_sealroot");
    let mkcomposefs = common::reference().bin.join("mkcomposefs");
    let pairs: usize = std::env::var("SEALROOT_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("load average at start: {}", loadavg());
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
    let p = alternate(pairs, || timed(&refs(&ours_cmd)), || timed(&refs(&ref_cmd)));
    compare("dumpfile mode (--from-file)", entries, &p, &a, &b);

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
        let p = alternate(pairs, || timed(&refs(&ours_cmd)), || timed(&refs(&ref_cmd)));
        compare(
            &format!(
                "directory mode ({dir}, {} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            count,
            &p,
            &a,
            &b,
        );
    }
    println!("load average at end: {}", loadavg());
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
