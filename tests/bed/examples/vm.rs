//! Boot a test bed VM by hand: for debugging a scenario, poking around in
//! the test kernel interactively, or timing boots.
//!
//! ```text
//! cargo run -p sealroot-testbed --example vm -- [OPTIONS] [SCENARIO]
//!   -i, --interactive   console on this terminal; a shell after the scenario
//!                       (exit it to power off; Ctrl-A X kills QEMU)
//!   --disk DIR          attach an ext4 image made from DIR, mounted at /mnt/disk
//!   --ovmf              boot through OVMF (UEFI) instead of SeaBIOS
//!   --bzimage           boot the bzImage instead of vmlinux via PVH (SeaBIOS)
//!   --static            add static /bin/sealroot and /bin/sealroot-prepare
//!   --gzip              gzip the initramfs
//!   --cmdline ARGS      extra kernel command line (e.g. "loglevel=7")
//!   SCENARIO            shell commands for /etc/bed/scenario.sh
//! ```

use std::process::ExitCode;

use sealroot_testbed::{
    Compression, Firmware, Initramfs, Kernel, KernelImage, MIB, Ovmf, Result, Vm, ext4_image,
    static_binaries,
};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vm: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let (mut interactive, mut ovmf, mut with_static, mut gzip) = (false, false, false, false);
    let mut bzimage = false;
    let (mut disk_dir, mut cmdline, mut scenario) = (None, None, String::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-i" | "--interactive" => interactive = true,
            "--ovmf" => ovmf = true,
            "--static" => with_static = true,
            "--gzip" => gzip = true,
            "--bzimage" => bzimage = true,
            "--disk" => disk_dir = args.next(),
            "--cmdline" => cmdline = args.next(),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("vm.rs")
                        .lines()
                        .skip(4)
                        .take(11)
                        .map(|l| &l[4..])
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                return Ok(ExitCode::SUCCESS);
            }
            _ => scenario = arg,
        }
    }

    let kernel = Kernel::get()?;
    let mut image = Initramfs::test(kernel, &scenario)?;
    if gzip {
        image = image.compression(Compression::Gzip);
    }
    if with_static {
        image = image.static_binaries(static_binaries()?);
    }
    let disk = match &disk_dir {
        Some(dir) => {
            image = image.mount_disk();
            Some(ext4_image(std::path::Path::new(dir), 256 * MIB)?)
        }
        None => None,
    };
    let mut vm = Vm::new(kernel, image).name("example-vm");
    if let Some(disk) = &disk {
        vm = vm.disk(disk);
    }
    if let Some(args) = &cmdline {
        vm = vm.cmdline(args);
    }
    if bzimage {
        vm = vm.kernel_image(KernelImage::BzImage);
    }
    if ovmf {
        vm = vm.firmware(Firmware::Ovmf(Ovmf::system()?));
    }

    if interactive {
        let dir = sealroot_testbed::host::cache_subdir("interactive")?;
        let mut cmd = vm.interactive_command(&dir)?;
        eprintln!("vm: {}", sealroot_testbed::host::display_command(&cmd));
        let status = cmd
            .status()
            .map_err(|e| sealroot_testbed::Error::Invalid(format!("cannot run QEMU: {e}")))?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    let log = vm.run_unchecked()?;
    print!("{}", log.console());
    let r = log.results();
    println!(
        "\nvm: {:.2} s wall; /init at {:?} ms uptime, scenario done at {:?} ms; {:?}; log {}",
        log.elapsed.as_secs_f64(),
        r.init_ms,
        r.done_ms,
        r.done,
        log.log_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
