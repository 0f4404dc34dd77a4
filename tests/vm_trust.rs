//! The fs-verity trust core on a real kernel (Linux 6.12 in QEMU, see
//! `tests/bed`): builtin signatures accepted and refused by
//! FS_IOC_ENABLE_VERITY and at open, the `.fs-verity` keyring (add, list,
//! seal, CA-restricted seal), the digests and metadata the kernel reports,
//! and the errno of every failure path `sealroot` explains — each compared
//! with what `sealroot` (and fsverity-utils, openssl) compute on the host.
//!
//! Run: `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo test --test vm_trust`.
//! Each test is one or two boots (5-20 s each under TCG).

#[path = "vm_trust/digests.rs"]
mod digests;
#[path = "vm_trust/errors.rs"]
mod errors;
#[path = "vm_trust/fixtures.rs"]
mod fixtures;
#[path = "vm_trust/keyring.rs"]
mod keyring;
#[path = "vm_trust/persistence.rs"]
mod persistence;
#[path = "vm_trust/scenario.rs"]
mod scenario;
#[path = "vm_trust/signatures.rs"]
mod signatures;
