//! Running a command under `/usr/bin/time` (Debian package `time`) for the
//! benchmarks: wall time, user+system CPU time, peak RSS; and comparing two
//! commands robustly on a machine that is not quiet: alternating A/B pairs,
//! reported as the median ratio with its spread.

#![allow(dead_code)] // each benchmark uses a different part

use std::ffi::OsStr;
use std::process::Command;
use std::time::Instant;

/// One run's cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measure {
    /// Seconds, wall clock.
    pub wall: f64,
    /// Seconds of user + system CPU time (2.0 × wall = two cores busy).
    pub cpu: f64,
    /// Peak resident set size, MiB (0 when not measured).
    pub rss_mib: f64,
}

/// Runs `argv` (program first) under `/usr/bin/time`; panics when it fails.
/// Wall time is taken here (`time`'s own has 10 ms resolution).
pub fn timed(argv: &[&OsStr]) -> Measure {
    run_timed(Command::new("/usr/bin/time"), argv)
}

/// [`timed`] for a prepared [`Command`]: its program, arguments,
/// environment changes and working directory.
pub fn timed_command(cmd: &Command) -> Measure {
    let argv: Vec<&OsStr> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .collect();
    let mut time = Command::new("/usr/bin/time");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => time.env(k, v),
            None => time.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        time.current_dir(dir);
    }
    run_timed(time, &argv)
}

fn run_timed(mut time: Command, argv: &[&OsStr]) -> Measure {
    let start = Instant::now();
    let out = time
        .args(["-f", "BENCH %e %U %S %M"])
        .args(argv)
        .output()
        .expect("running /usr/bin/time (Debian package `time`)");
    let wall = start.elapsed().as_secs_f64();
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
        wall,
        cpu: f[1] + f[2],
        rss_mib: f[3] / 1024.0,
    }
}

/// The load average, for the report: ratios measured under load are
/// indicative only.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Measures of two contenders run in alternating pairs.
#[derive(Debug, Default)]
pub struct Pairs {
    pub ours: Vec<Measure>,
    pub theirs: Vec<Measure>,
}

/// Runs `pairs` pairs of `ours` and `theirs` back to back, the first of
/// each pair alternating (ours first in even pairs), so drift in the
/// machine's load and the previous run's aftermath (writeback, page cache)
/// fall on both equally. Each closure does its own untimed preparation and
/// returns the measure of the timed part only.
pub fn alternate(
    pairs: usize,
    mut ours: impl FnMut() -> Measure,
    mut theirs: impl FnMut() -> Measure,
) -> Pairs {
    let mut p = Pairs::default();
    for i in 0..pairs.max(1) {
        let (o, t) = if i % 2 == 0 {
            let o = ours();
            (o, theirs())
        } else {
            let t = theirs();
            (ours(), t)
        };
        p.ours.push(o);
        p.theirs.push(t);
    }
    p
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

impl Pairs {
    /// Per pair: theirs' wall time over ours (above 1: ours is faster).
    pub fn speedups(&self) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.theirs)
            .map(|(o, t)| t.wall / o.wall.max(1e-9))
            .collect()
    }

    /// The median pair's measure of ours (by speed-up), for derived figures.
    pub fn median_ours(&self) -> Measure {
        let mut walls: Vec<Measure> = self.ours.clone();
        walls.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        walls[walls.len() / 2]
    }

    /// Two lines of medians and spreads, and the verdict line:
    /// `speed-up median M x (min..max over N pairs)` and peak RSS.
    pub fn report(&self, ours: &str, theirs: &str) -> String {
        let mut out = String::new();
        for (name, m) in [(ours, &self.ours), (theirs, &self.theirs)] {
            let wall: Vec<f64> = m.iter().map(|m| m.wall).collect();
            let cpu: Vec<f64> = m.iter().map(|m| m.cpu).collect();
            let rss: Vec<f64> = m.iter().map(|m| m.rss_mib).collect();
            let (lo, hi) = spread(&wall);
            out.push_str(&format!(
                "  {name:<28} wall median {:>8.3} s ({lo:.3}..{hi:.3})  CPU median {:>7.2} s  peak RSS max {:>7.1} MiB\n",
                median(&wall),
                median(&cpu),
                spread(&rss).1,
            ));
        }
        let s = self.speedups();
        let (lo, hi) = spread(&s);
        let rss_ours = spread(&self.ours.iter().map(|m| m.rss_mib).collect::<Vec<_>>()).1;
        let rss_theirs = spread(&self.theirs.iter().map(|m| m.rss_mib).collect::<Vec<_>>()).1;
        out.push_str(&format!(
            "  => {ours} vs {theirs}: speed-up median {:.2}x (spread {lo:.2}x..{hi:.2}x over {} pairs)",
            median(&s),
            s.len()
        ));
        if rss_theirs > 0.0 {
            out.push_str(&format!(
                ", peak RSS {:.2}x of theirs",
                rss_ours / rss_theirs
            ));
        }
        out.push('\n');
        out
    }
}
