//! Host-side plumbing: where the workspace and the cache are, finding host
//! tools (with install hints), running commands with useful errors, and
//! cross-process locks for the cache.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, IoContext, Result};

/// The sealroot workspace root (two levels above this crate).
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = here.join("../..");
        root.canonicalize().unwrap_or(root)
    })
}

/// The test bed's cache: `$SEALROOT_TESTBED_CACHE`, else
/// `<workspace>/target/testbed`. Created on first use.
pub fn cache_dir() -> Result<&'static Path> {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    let dir = CACHE.get_or_init(|| match std::env::var_os("SEALROOT_TESTBED_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/testbed"),
    });
    fs::create_dir_all(dir).ctx("cannot create the test bed cache", dir)?;
    Ok(dir)
}

/// A subdirectory of the cache, created if missing.
pub fn cache_subdir(name: &str) -> Result<PathBuf> {
    let dir = cache_dir()?.join(name);
    fs::create_dir_all(&dir).ctx("cannot create cache directory", &dir)?;
    Ok(dir)
}

/// An exclusive lock on `<cache>/locks/<name>.lock`, held until dropped.
/// Serialises one-time setup (downloads, builds, probes) between test
/// threads and between test processes (nextest runs one process per test).
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    pub fn acquire(name: &str) -> Result<CacheLock> {
        let path = cache_subdir("locks")?.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("cannot open lock file", &path)?;
        file.lock().ctx("cannot lock", &path)?;
        Ok(CacheLock { _file: file })
    }
}

/// Finds an executable on `$PATH` or in the sbin directories (which a
/// non-root `$PATH` often lacks: mkfs.ext4, debugfs).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds a host tool from a Debian package, or says which package to install.
pub fn tool(name: &str, debian_package: &str) -> Result<PathBuf> {
    which(name).ok_or_else(|| Error::Missing {
        what: format!("`{name}` is not installed (looked in $PATH, /usr/sbin, /sbin)"),
        fix: format!("apt-get install {debian_package}"),
    })
}

/// Renders a command for messages: program and arguments, space separated.
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion with stdin closed and its output captured;
/// a non-zero exit becomes [`Error::Command`] carrying the output's tail.
pub fn run(cmd: &mut Command, hint: Option<&str>) -> Result<Output> {
    let shown = display_command(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: shown.clone(),
            status: format!("could not start: {e}"),
            output: String::new(),
            hint: hint.map(str::to_owned),
        })?;
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::Command {
        command: shown,
        status: output.status.to_string(),
        output: tail_lines(&text, 40),
        hint: hint.map(str::to_owned),
    })
}

/// The last `n` lines of `text`, with a note when lines were left out.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} earlier lines omitted ...]\n"));
    }
    for line in &lines[skip..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Replaces `dest` by the file at `tmp` atomically (same directory).
pub fn rename(tmp: &Path, dest: &Path) -> Result<()> {
    fs::rename(tmp, dest).ctx("cannot rename into place", dest)
}

/// Writes `bytes` to `dest` via a temporary file in the same directory and a
/// rename, so concurrent readers never see a partial file.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).ctx("cannot create a temporary file in", dir)?;
    std::io::Write::write_all(&mut tmp, bytes).ctx("cannot write", tmp.path())?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .ctx("cannot rename into place", dest)?;
    Ok(())
}

/// A throwaway self-signed P-256 certificate and its key, as PEM, made by
/// the reference tool (`openssl req -x509`, valid two days): what tests
/// seal with and put into an initramfs's `certs.d`.
pub fn self_signed_p256(key: &Path, cert: &Path, common_name: &str) -> Result<()> {
    let openssl = tool("openssl", "openssl")?;
    run(
        Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .arg("-subj")
            .arg(format!("/CN={common_name}"))
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert),
        None,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_keeps_the_end_and_says_what_it_cut() {
        let text = "a\nb\nc\nd\n";
        assert_eq!(
            tail_lines(text, 2),
            "[... 2 earlier lines omitted ...]\nc\nd\n"
        );
        assert_eq!(tail_lines(text, 10), "a\nb\nc\nd\n");
    }

    #[test]
    fn missing_tool_names_the_package() {
        let err = tool("sealroot-no-such-tool", "sealroot-pkg").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install sealroot-pkg"), "{msg}");
        assert!(msg.contains("scripts/install-deps"), "{msg}");
    }

    #[test]
    fn failed_command_reports_status_and_output() {
        let err = run(
            Command::new("sh").args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]),
            Some("try again"),
        )
        .unwrap_err();
        let msg = err.to_string();
        for needle in [
            "exit status: 3",
            "to-stdout",
            "to-stderr",
            "hint: try again",
            "sh -c",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in {msg}");
        }
    }
}
