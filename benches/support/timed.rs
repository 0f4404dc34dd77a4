//! Running a command under `/usr/bin/time` (Debian package `time`) for the
//! benchmarks: wall time, user+system CPU time, peak RSS.

use std::ffi::OsStr;
use std::process::Command;

/// One run's cost.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// Seconds, wall clock.
    pub wall: f64,
    /// Seconds of user + system CPU time (2.0 × wall = two cores busy).
    pub cpu: f64,
    /// Peak resident set size, MiB.
    pub rss_mib: f64,
}

/// Runs `argv` (program first) under `/usr/bin/time`; panics when it fails.
pub fn timed(argv: &[&OsStr]) -> Measure {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "BENCH %e %U %S %M"])
        .args(argv)
        .output()
        .expect("running /usr/bin/time (Debian package `time`)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{argv:?} failed:\n{err}");
    let line = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("BENCH "))
        .expect("time output");
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Measure {
        wall: f[0],
        cpu: f[1] + f[2],
        rss_mib: f[3] / 1024.0,
    }
}

/// [`timed`] for a prepared [`Command`] (its program and arguments only).
#[allow(dead_code)] // not every benchmark builds Commands
pub fn timed_command(cmd: &Command) -> Measure {
    let argv: Vec<&OsStr> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .collect();
    timed(&argv)
}
