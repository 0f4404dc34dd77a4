//! The test bed's one error type.
//!
//! Every message is written for the person reading a failed test: what
//! failed, where, why, and what to do about it. `Debug` prints the same text
//! as `Display`, so a test returning `Result<(), Error>` (or `anyhow`, or
//! `Box<dyn Error>`) shows the full message instead of a struct dump.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `scripts/install-deps` is called in hints.
pub const INSTALL_DEPS: &str = "scripts/install-deps";

#[derive(thiserror::Error)]
pub enum Error {
    /// A host tool, file or download the bed needs is not there.
    #[error(
        "VM test bed cannot be set up: {what}\n  fix: {fix}\n  (`{INSTALL_DEPS}` installs every host dependency of the test bed)"
    )]
    Missing { what: String, fix: String },

    /// A filesystem operation on the host failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A host command (mkfs.ext4, cargo, debian-fetch, ...) failed.
    #[error("`{command}` failed ({status}){}\n{output}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Command {
        command: String,
        status: String,
        output: String,
        hint: Option<String>,
    },

    /// A one-time setup step failed earlier in this process; the original
    /// message is repeated for every test that needs it.
    #[error("{0}")]
    Setup(String),

    /// The VM did not power off within its time limit and was killed.
    /// The message names the limit (not the measured time, which rounds
    /// differently from one run to the next).
    #[error(
        "VM `{name}` timed out after {:.1} s and was killed\n  console log: {}\n--- console tail ---\n{tail}\n--- end of console ---",
        limit.as_secs_f64(),
        log.display()
    )]
    Timeout {
        name: String,
        limit: Duration,
        log: PathBuf,
        tail: String,
    },

    /// QEMU exited before the scenario reported completion (kernel panic,
    /// init died, setup in the VM failed).
    #[error(
        "VM `{name}` stopped before its scenario finished: {reason}\n  console log: {}\n--- console tail ---\n{tail}\n--- end of console ---",
        log.display()
    )]
    Incomplete {
        name: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },

    /// A check on a boot's results did not hold.
    #[error("{0}")]
    Assertion(String),

    /// Input the bed was given does not make sense (bad name, bad path).
    #[error("invalid test bed input: {0}")]
    Invalid(String),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the failing path and action to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}
