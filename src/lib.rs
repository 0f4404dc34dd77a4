//! sealroot: sealed Linux boot chains.
//!
//! A root filesystem is *sealed* when every byte the machine boots from is
//! covered by fs-verity and traced back, by a signature the kernel itself
//! checks, to a certificate shipped in the (measured) initramfs.
//!
//! The library is organised so that data flows one way:
//!
//! - trust core: [`verity`] (digests, kernel ioctls), [`pkcs7`] (the kernel's
//!   signature profile), [`keyring`] (the `.fs-verity` keyring);
//! - input formats -> [`tree`] -> writers: [`dumpfile`], [`erofs`], [`oci`];
//! - repository -> verification -> mount: [`repo`], [`mount`], [`prepare`].
//!
//! All `unsafe` code lives in the private `sys` module (Cargo.toml's
//! `[lints]` denies it everywhere else).

// Lints for the library only (Cargo.toml's [lints] holds those for every
// target): public items are documented and debuggable, and the library never
// prints (the binaries do; sealroot-prepare's log is a `prepare::log::Log`
// its binary opens).
#![warn(missing_docs, missing_debug_implementations)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod atomic;
pub mod crypto;
pub mod dumpfile;
pub mod erofs;
pub mod errno;
pub mod ipe;
pub mod keyring;
pub mod mount;
pub mod objsig;
pub mod oci;
pub mod ostree;
pub mod pkcs7;
pub mod prepare;
pub mod repo;
pub mod timestamp;
pub mod tree;
pub mod verity;

mod sys;

/// Process-level behaviour shared by the binaries.
pub mod process {
    pub use crate::sys::signal::exit_by_sigpipe;
}
