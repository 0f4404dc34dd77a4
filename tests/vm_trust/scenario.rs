//! Building a scenario (a busybox `sh` script of `bed_run` steps), booting
//! it with the static `sealroot` and a verity-capable ext4 disk, and
//! asserting kernel outcomes in the terms sealroot reports them.

use std::fmt::Write as _;
use std::path::Path;

use sealroot_testbed::{
    BootLog, Checked, DiskImage, Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries,
};

/// Where the bed mounts the first disk in the VM.
pub const DISK: &str = "/mnt/disk";

/// A scenario script under construction.
#[derive(Default)]
pub struct Script {
    text: String,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// `bed_run NAME CMD`: one reported step. `cmd` is shell text.
    pub fn run(&mut self, name: &str, cmd: impl AsRef<str>) -> &mut Script {
        writeln!(self.text, "bed_run {name} {}", cmd.as_ref()).unwrap();
        self
    }

    /// `bed_run NAME sealroot ARGS`.
    pub fn sealroot(&mut self, name: &str, args: impl AsRef<str>) -> &mut Script {
        self.run(name, format!("/bin/sealroot {}", args.as_ref()))
    }

    /// Any shell line (helper functions, setup without a result).
    pub fn line(&mut self, line: impl AsRef<str>) -> &mut Script {
        writeln!(self.text, "{}", line.as_ref()).unwrap();
        self
    }

    /// Reports the fs-verity and keyring lines of the kernel log as value
    /// `dmesg`.
    pub fn dmesg(&mut self) -> &mut Script {
        self.line(r#"bed_value dmesg "$(dmesg | grep -iE 'verity|key|x509|pkcs7')""#)
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The ext4 (`-O verity`) disk holding `dir`.
pub fn disk_from(dir: &Path) -> Result<DiskImage> {
    ext4_image(dir, 64 * MIB)
}

/// Boots `script` with the static binaries and `disks` (the first mounted
/// at [`DISK`]), named `name`.
pub fn boot(name: &str, script: &Script, disks: &[&DiskImage]) -> Result<BootLog> {
    boot_with(name, script, disks, |image| image)
}

/// [`boot`], with extra changes to the initramfs (more mounts).
pub fn boot_with(
    name: &str,
    script: &Script,
    disks: &[&DiskImage],
    customize: impl FnOnce(Initramfs) -> Initramfs,
) -> Result<BootLog> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    // Only the disk driver: no EROFS/overlay/loop needed here.
    let image = Initramfs::test(kernel, script.text())?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(bins)
        .mount_disk();
    let mut vm = Vm::new(kernel, customize(image)).name(name);
    for disk in disks {
        vm = vm.disk(disk);
    }
    // `run` requires the scenario to finish; its exit code is that of its
    // last step, which may be an expected failure.
    vm.run()
}

/// The kernel call `op` (e.g. `FS_IOC_ENABLE_VERITY`) of step `name` failed
/// with `errno`, and sealroot said so in its usual form:
/// `sealroot: error: OP failed on 'FILE': ERRNO: explanation`, exit 1.
pub fn assert_kernel_errno<'a>(
    log: &'a BootLog,
    name: &str,
    op: &str,
    errno: &str,
) -> Result<Checked<'a>> {
    log.result(name)?
        .assert_rc(1)?
        .assert_stderr_contains(&format!("sealroot: error: {op} failed on '"))?
        .assert_stderr_contains(&format!("': {errno}: "))
}

/// `sealroot enable` of step `name` was refused by the kernel with `errno`.
pub fn assert_enable_refused<'a>(log: &'a BootLog, name: &str, errno: &str) -> Result<Checked<'a>> {
    assert_kernel_errno(log, name, "FS_IOC_ENABLE_VERITY", errno)
}

/// The kernel log (value `dmesg`) contains every line in `needles`.
pub fn assert_dmesg_contains(log: &BootLog, needles: &[&str]) -> Result<()> {
    let dmesg = log.value("dmesg")?;
    for needle in needles {
        if !dmesg.contains(needle) {
            return Err(log.failure(&format!(
                "kernel log lacks {needle:?}; fs-verity/key lines:\n{dmesg}"
            )));
        }
    }
    Ok(())
}
