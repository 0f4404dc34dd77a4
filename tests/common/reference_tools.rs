//! Running `scripts/reference-tools`, which fetches (once) and prints where
//! the reference tools are, as `KEY=value` lines: shared by the composefs
//! tests, the OCI tests (cfsctl) and the benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The stdout of `scripts/reference-tools ARGS`; panics when it cannot run
/// or fails, with `hint` (what needs the tools, and how else to give them).
pub fn run(args: &[&str], hint: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference-tools");
    let out = Command::new(&script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "`scripts/reference-tools {}` failed ({}): {hint}",
        args.join(" "),
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path of the `KEY=` line of `output`; panics when there is none.
pub fn value(output: &str, key: &str) -> PathBuf {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("scripts/reference-tools printed no {key}="))
}
