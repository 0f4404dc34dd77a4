//! Raw kernel interfaces rustix does not wrap.
//!
//! This is the only module allowed to contain `unsafe`. Each wrapper is thin
//! and fd-first in the style of rustix: it takes borrowed file descriptors
//! and typed arguments, returns `rustix::io::Result`, and documents the
//! kernel source that defines the interface. Policy, error messages and
//! retries belong to the callers in `verity`, `keyring`, `mount`, ...
#![allow(unsafe_code)]

pub(crate) mod keyctl;
pub(crate) mod loopdev;
pub(crate) mod mount;
pub mod rusage;
pub mod sha256x2;
pub mod verity;
