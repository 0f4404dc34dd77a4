//! The sealroot VM test bed: a real Linux 6.12 kernel in QEMU.
//!
//! Everything in sealroot that touches the kernel (fs-verity, keyrings,
//! EROFS, overlayfs, mounts, IPE) is proven on a real kernel through this
//! crate. It sets itself up from the package registries (Debian's kernel
//! package via `scripts/debian-fetch`), caches what it downloads and builds
//! under `target/testbed/`, and fails — never skips — with a message naming
//! the missing piece and the command that installs it.
//!
//! ```no_run
//! use sealroot_testbed::{Initramfs, Kernel, Vm, ext4_image, MIB};
//!
//! # fn main() -> sealroot_testbed::Result<()> {
//! let kernel = Kernel::get()?;
//! let src = tempfile::tempdir().unwrap();
//! std::fs::write(src.path().join("hello"), "hello\n").unwrap();
//! let disk = ext4_image(src.path(), 32 * MIB)?;
//! let image = Initramfs::test(kernel, r#"
//!     bed_run read cat /mnt/disk/hello
//!     bed_run missing cat /mnt/disk/nope
//!     bed_value keys "$(cat /proc/keys)"
//!     echo written >/mnt/disk/out
//! "#)?
//! .mount_disk();
//! let log = Vm::new(kernel, image).disk(&disk).run()?;
//! log.result("read")?.assert_ok()?.assert_stdout_eq("hello\n")?;
//! log.result("missing")?.assert_rc(1)?.assert_stderr_contains("No such file")?;
//! assert!(log.value("keys")?.contains(".fs-verity"));
//! assert_eq!(disk.read_to_string("/out")?, "written\n");
//! # Ok(()) }
//! ```
//!
//! See `tests/bed/README.md` for the protocol, caching, environment
//! variables and debugging.

#![deny(unsafe_code)]

pub mod accel;
pub mod bins;
pub mod bootlog;
pub mod bzimage;
pub mod disk;
pub mod error;
pub mod host;
pub mod initramfs;
pub mod kernel;
pub mod ovmf;
pub mod vm;

pub use accel::Accel;
pub use bins::{StaticBins, check_static, static_binaries};
pub use bootlog::{BootLog, Checked, CommandResult, Done, Results};
pub use disk::{DiskImage, MIB, empty_ext4_image, ext4_image};
pub use error::{Error, Result};
pub use initramfs::{Compression, DISK_MOUNTPOINT, Initramfs};
pub use kernel::{Kernel, Module, ModuleForm};
pub use ovmf::{Ovmf, TEST_OWNER_GUID};
pub use vm::{Firmware, KernelImage, Vm};
