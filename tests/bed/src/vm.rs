//! The VM runner: QEMU with a kernel, an initramfs, virtio disks and a
//! firmware; captures the console and the result channel, enforces a time
//! limit and returns a [`BootLog`].
//!
//! Serial ports: `ttyS0` is the console (kernel and init output, captured
//! from QEMU's stdout); `ttyS1` is the result channel, written only by
//! `/lib/bed.sh` and captured by QEMU into a file, so kernel messages can
//! never interleave with result lines.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accel::{self, Accel};
use crate::bootlog::{BootLog, Results, TAIL_LINES};
use crate::disk::DiskImage;
use crate::error::{Error, IoContext, Result};
use crate::host::{self, tail_lines};
use crate::initramfs::Initramfs;
use crate::kernel::Kernel;
use crate::ovmf::Ovmf;

/// Default time limit: generous for a loaded machine; a boot normally
/// takes about 5 s (SeaBIOS) or 10 s (OVMF) under TCG.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The kernel command line every VM gets (extra arguments are appended).
/// `quiet` keeps the console to errors; `panic=-1` reboots at once on a
/// panic, and `-no-reboot` turns that reboot into QEMU exiting.
/// `no_timer_check`: under TCG on a loaded host the kernel's early check
/// that the 8254 timer ticks through the IO-APIC can miss its window and
/// panic ("IO-APIC + timer doesn't work!", seen in a full test run); the
/// check only guards against broken real chipsets
/// (arch/x86/kernel/apic/io_apic.c, `no_timer_check`).
pub const BASE_CMDLINE: &str = "console=ttyS0 quiet panic=-1 no_timer_check";

/// Which firmware starts the kernel.
#[derive(Debug, Clone, Default)]
pub enum Firmware {
    /// QEMU's default BIOS with `-kernel` (fastest).
    #[default]
    SeaBios,
    /// UEFI (OVMF), still with `-kernel`; see [`Ovmf`].
    Ovmf(Ovmf),
}

/// How a SeaBIOS VM gets its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelImage {
    /// The decompressed vmlinux through its PVH entry point (default):
    /// saves the guest's own decompression, 1.5-6 s of emulated CPU.
    #[default]
    Pvh,
    /// The bzImage through the regular x86 boot protocol (real mode setup,
    /// self-decompression), as a boot loader would start it.
    BzImage,
}

#[derive(Debug, Clone)]
enum Initrd {
    Image(Box<Initramfs>),
    File(PathBuf),
}

#[derive(Debug, Clone)]
struct Disk {
    image: DiskImage,
    readonly: bool,
}

/// A VM to boot; see the crate docs for an example.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: &'static Kernel,
    initrd: Initrd,
    disks: Vec<Disk>,
    cmdline: Vec<String>,
    memory_mb: u32,
    timeout: Duration,
    firmware: Firmware,
    accel: Option<Accel>,
    name: Option<String>,
    abort_on: Vec<String>,
    kernel_image: KernelImage,
}

impl Vm {
    /// A VM booting `kernel` with `initramfs` (written to a temporary file
    /// at each run).
    pub fn new(kernel: &'static Kernel, initramfs: Initramfs) -> Vm {
        Vm::with_initrd(kernel, Initrd::Image(Box::new(initramfs)))
    }

    /// A VM booting `kernel` with a prebuilt initrd file (cpio, optionally
    /// compressed; e.g. one that `sealroot` itself produced).
    pub fn with_initrd_file(kernel: &'static Kernel, initrd: impl Into<PathBuf>) -> Vm {
        Vm::with_initrd(kernel, Initrd::File(initrd.into()))
    }

    fn with_initrd(kernel: &'static Kernel, initrd: Initrd) -> Vm {
        Vm {
            kernel,
            initrd,
            disks: Vec::new(),
            cmdline: Vec::new(),
            memory_mb: 512,
            timeout: DEFAULT_TIMEOUT,
            firmware: Firmware::SeaBios,
            accel: None,
            name: None,
            abort_on: Vec::new(),
            kernel_image: KernelImage::Pvh,
        }
    }

    /// Names the VM (log file name); default: the current test's name.
    pub fn name(mut self, name: &str) -> Vm {
        self.name = Some(name.to_string());
        self
    }

    /// Attaches a raw disk image read-write as the next virtio disk
    /// (`/dev/vda`, then `/dev/vdb`, ...).
    pub fn disk(mut self, image: &DiskImage) -> Vm {
        self.disks.push(Disk {
            image: image.clone(),
            readonly: false,
        });
        self
    }

    /// Attaches a raw disk image read-only.
    pub fn disk_readonly(mut self, image: &DiskImage) -> Vm {
        self.disks.push(Disk {
            image: image.clone(),
            readonly: true,
        });
        self
    }

    /// Appends arguments to the kernel command line.
    pub fn cmdline(mut self, args: &str) -> Vm {
        self.cmdline.push(args.to_string());
        self
    }

    /// Guest memory in MiB (default 512).
    pub fn memory_mb(mut self, mb: u32) -> Vm {
        self.memory_mb = mb;
        self
    }

    /// Time limit for the whole boot (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Vm {
        self.timeout = timeout;
        self
    }

    /// Boots through this firmware (default SeaBIOS).
    pub fn firmware(mut self, firmware: Firmware) -> Vm {
        self.firmware = firmware;
        self
    }

    /// Chooses how a SeaBIOS VM starts the kernel (default PVH).
    pub fn kernel_image(mut self, image: KernelImage) -> Vm {
        self.kernel_image = image;
        self
    }

    /// Forces an accelerator (default: KVM only if the cached probe boot
    /// succeeded, else TCG; `SEALROOT_TESTBED_ACCEL=tcg|kvm` overrides).
    pub fn accel(mut self, accel: Accel) -> Vm {
        self.accel = Some(accel);
        self
    }

    /// Stops the VM as soon as its console or QEMU's stderr shows `pattern`
    /// (for states that would otherwise only end at the time limit, like a
    /// KVM "emulation failure", which pauses the guest forever). The boot
    /// then counts as not finished.
    pub fn abort_on(mut self, pattern: &str) -> Vm {
        self.abort_on.push(pattern.to_string());
        self
    }

    /// Boots, and requires the scenario to have finished (`@@bed done`):
    /// a timeout, a kernel panic, a dead init or a failed setup step in the
    /// VM is an error carrying the console tail.
    pub fn run(&self) -> Result<BootLog> {
        let log = self.run_unchecked()?;
        log.require_done()?;
        Ok(log)
    }

    /// Boots and returns whatever came out, finished or not (for tests that
    /// expect a panic or a custom /init). A timeout is still an error.
    pub fn run_unchecked(&self) -> Result<BootLog> {
        self.boot()
    }

    /// Prepares this VM in `dir` (initrd, OVMF variables) and returns the
    /// QEMU command to run it by hand: the console on the terminal (Ctrl-A X
    /// quits QEMU), `bed.shell=1` so /init opens a shell after the scenario,
    /// the result channel in `dir/results`.
    pub fn interactive_command(&self, dir: &Path) -> Result<Command> {
        let accel = match self.accel {
            Some(accel) => accel,
            None => accel::select(self.kernel)?,
        };
        let files = self.prepare_files(dir)?;
        let mut vm = self.clone();
        vm.cmdline.push("bed.shell=1".into());
        vm.qemu_command(accel, &files, true)
    }

    /// Writes the per-run files into `dir`.
    fn prepare_files(&self, dir: &Path) -> Result<RunFiles> {
        let initrd = match &self.initrd {
            Initrd::File(path) => path.clone(),
            Initrd::Image(image) => {
                let path = dir.join("initrd.cpio");
                image.write_to(&path)?;
                path
            }
        };
        let vars = match &self.firmware {
            Firmware::SeaBios => None,
            Firmware::Ovmf(ovmf) => {
                let vars = dir.join("OVMF_VARS.fd");
                fs::copy(&ovmf.vars, &vars).ctx("cannot copy OVMF variables", &ovmf.vars)?;
                Some(vars)
            }
        };
        Ok(RunFiles {
            initrd,
            results: dir.join("results"),
            vars,
        })
    }

    /// The QEMU command for this VM with the given files.
    fn qemu_command(&self, accel: Accel, files: &RunFiles, interactive: bool) -> Result<Command> {
        let qemu = host::tool(
            "qemu-system-x86_64",
            "qemu-system-x86 (on bookworm: apt-get install -t bookworm-backports qemu-system-x86)",
        )?;
        let mut cmd = Command::new(qemu);
        cmd.args(accel.qemu_args())
            .args(["-smp", "1", "-m", &self.memory_mb.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"]);
        if interactive {
            cmd.args(["-serial", "mon:stdio"]);
        } else {
            cmd.args([
                "-chardev",
                "stdio,id=console,signal=off",
                "-serial",
                "chardev:console",
            ]);
        }
        cmd.arg("-chardev")
            .arg(format!("file,id=bed,path={}", qemu_path(&files.results)?))
            .args(["-serial", "chardev:bed"])
            .arg("-kernel")
            .arg(self.kernel_file())
            .arg("-initrd")
            .arg(&files.initrd)
            .arg("-append")
            .arg(self.full_cmdline());
        for disk in &self.disks {
            let readonly = if disk.readonly { ",readonly=on" } else { "" };
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio{readonly}",
                qemu_path(disk.image.path())?
            ));
        }
        if let (Firmware::Ovmf(ovmf), Some(vars)) = (&self.firmware, &files.vars) {
            cmd.arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    qemu_path(&ovmf.code)?
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    qemu_path(vars)?
                ));
        }
        Ok(cmd)
    }

    /// PVH (uncompressed vmlinux) for SeaBIOS boots unless the bzImage was
    /// asked for; OVMF always starts the bzImage's EFI stub.
    fn kernel_file(&self) -> PathBuf {
        match (&self.firmware, self.kernel_image) {
            (Firmware::SeaBios, KernelImage::Pvh) => self.kernel.vmlinux(),
            _ => self.kernel.vmlinuz(),
        }
    }

    fn full_cmdline(&self) -> String {
        std::iter::once(BASE_CMDLINE)
            .chain(self.cmdline.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn boot(&self) -> Result<BootLog> {
        let name = unique_name(self.name.as_deref());
        let accel = match self.accel {
            Some(accel) => accel,
            None => accel::select(self.kernel)?,
        };
        let dir = tempfile::Builder::new()
            .prefix("sealroot-vm-")
            .tempdir()
            .ctx("cannot create a temporary directory", Path::new("/tmp"))?;
        let files = self.prepare_files(dir.path())?;
        let mut cmd = self.qemu_command(accel, &files, false)?;
        let shown = host::display_command(&cmd);
        let log_path = host::cache_subdir("logs")?.join(format!("{name}.log"));
        let mut log_file = fs::File::create(&log_path).ctx("cannot create log", &log_path)?;
        let initrd_size = fs::metadata(&files.initrd).map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(
            log_file,
            "# sealroot-testbed VM `{name}`\n# {}\n# accel: {accel}, initrd: {initrd_size} bytes\n# {shown}\n",
            self.kernel.describe()
        );

        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Command {
                command: shown.clone(),
                status: format!("could not start: {e}"),
                output: String::new(),
                hint: None,
            })?;
        let console = Arc::new(Mutex::new(Vec::new()));
        let console_reader = spawn_reader(
            child.stdout.take(),
            Arc::clone(&console),
            log_file.try_clone().ok(),
        );
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = spawn_reader(child.stderr.take(), Arc::clone(&stderr_buf), None);

        let ending = wait_for_qemu(
            &mut child,
            self.timeout,
            &self.abort_on,
            &[&console, &stderr_buf],
        );
        let elapsed = started.elapsed();
        for reader in [console_reader, stderr_reader] {
            let _ = reader.join();
        }
        let console = String::from_utf8_lossy(&console.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned();
        let qemu_stderr =
            String::from_utf8_lossy(&stderr_buf.lock().unwrap_or_else(|e| e.into_inner()))
                .into_owned();
        let channel = fs::read(&files.results).unwrap_or_default();
        let channel = String::from_utf8_lossy(&channel).into_owned();
        let exit = match &ending {
            Ending::Exited(status) => status.to_string(),
            Ending::Aborted(pattern) => format!("killed: the console showed {pattern:?}"),
            Ending::TimedOut => "killed after the time limit".into(),
        };
        let _ = writeln!(
            log_file,
            "\n# QEMU: {exit} after {:.2} s\n# QEMU stderr:\n{qemu_stderr}# result channel (ttyS1):\n{channel}",
            elapsed.as_secs_f64()
        );
        if std::env::var_os("SEALROOT_TESTBED_KEEP").is_some_and(|v| v == "1") {
            let kept = dir.keep();
            let _ = writeln!(log_file, "# kept VM files in {}", kept.display());
            eprintln!(
                "sealroot-testbed: kept VM files of `{name}` in {}",
                kept.display()
            );
        }

        let mut console_with_errors = console;
        if !qemu_stderr.trim().is_empty() {
            console_with_errors.push_str("\n[qemu stderr]\n");
            console_with_errors.push_str(&qemu_stderr);
        }
        let results = Results::parse(&channel);
        eprintln!(
            "sealroot-testbed: VM `{name}`: kernel {}, {accel}, {}, {:.1} s, initrd {} KiB, log {}",
            results.release.as_deref().unwrap_or(&self.kernel.release),
            match self.firmware {
                Firmware::SeaBios => "SeaBIOS",
                Firmware::Ovmf(_) => "OVMF",
            },
            elapsed.as_secs_f64(),
            initrd_size / 1024,
            log_path.display()
        );
        if let Ending::TimedOut = ending {
            return Err(Error::Timeout {
                name,
                limit: self.timeout,
                log: log_path,
                tail: tail_lines(&console_with_errors, TAIL_LINES),
            });
        }
        Ok(BootLog::new(
            name,
            strip_ansi(&console_with_errors),
            results,
            elapsed,
            log_path,
            exit,
        ))
    }
}

/// Removes ANSI escape sequences (OVMF clears the screen and moves the
/// cursor on the serial console) so consoles read as plain text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// The files one run of a VM uses.
struct RunFiles {
    initrd: PathBuf,
    results: PathBuf,
    vars: Option<PathBuf>,
}

/// QEMU's `-drive file=` splits on commas: refuse paths that contain one.
fn qemu_path(path: &Path) -> Result<String> {
    let text = path.to_string_lossy();
    if text.contains(',') {
        return Err(Error::Invalid(format!(
            "QEMU cannot take paths with commas: {text}"
        )));
    }
    Ok(text.into_owned())
}

fn spawn_reader(
    source: Option<impl Read + Send + 'static>,
    sink: Arc<Mutex<Vec<u8>>>,
    mut log: Option<fs::File>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut source) = source else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n) = source.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(log) = log.as_mut() {
                let _ = log.write_all(&buf[..n]);
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// How a QEMU run ended.
enum Ending {
    Exited(std::process::ExitStatus),
    /// Killed because the console or QEMU's stderr showed this pattern.
    Aborted(String),
    /// Killed at the time limit.
    TimedOut,
}

/// Waits for QEMU to exit; kills it after `timeout`, or as soon as one of
/// `abort_on` shows up in `watched` (console and stderr buffers).
fn wait_for_qemu(
    child: &mut Child,
    timeout: Duration,
    abort_on: &[String],
    watched: &[&Arc<Mutex<Vec<u8>>>],
) -> Ending {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ending::Exited(status);
        }
        let seen = abort_on.iter().find(|pattern| {
            watched.iter().any(|buf| {
                let buf = buf.lock().unwrap_or_else(|e| e.into_inner());
                buf.windows(pattern.len()).any(|w| w == pattern.as_bytes())
            })
        });
        let ending = match seen {
            Some(pattern) => Ending::Aborted(pattern.clone()),
            None if Instant::now() >= deadline => Ending::TimedOut,
            None => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        return ending;
    }
}

/// A log-file-safe name: the given one or the current test's (the test
/// harness names each test's thread after it), made unique per process.
fn unique_name(given: Option<&str>) -> String {
    static SEEN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    let thread = std::thread::current();
    let base = given
        .or(thread.name().filter(|n| *n != "main"))
        .unwrap_or("vm");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let count = seen
        .get_or_insert_with(HashMap::new)
        .entry(base.clone())
        .or_insert(0);
    *count += 1;
    if *count == 1 {
        base
    } else {
        format!("{base}-{count}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(
            strip_ansi("\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: ok\x1b[0m\n"),
            "BdsDxe: ok\n"
        );
        assert_eq!(strip_ansi("plain [1] text"), "plain [1] text");
    }

    #[test]
    fn names_are_sanitised_and_unique() {
        assert_eq!(unique_name(Some("a::b c")), "a__b_c");
        assert_eq!(unique_name(Some("a::b c")), "a__b_c-2");
    }
}
