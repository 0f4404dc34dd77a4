//! `sealroot-prepare`: the initramfs binary (see `src/prepare` and
//! `docs/prepare.md`). Built static, without the `host` feature; no CLI
//! framework: it takes no arguments besides `--help` and `--version`.

use std::process::ExitCode;
use std::time::Instant;

use sealroot::prepare::{self, exit, log::Log, record};

const HELP: &str = "\
sealroot-prepare: mount the sealed root in the initramfs, or refuse to.

Usage: sealroot-prepare            (no arguments; run as root in the initramfs)
       sealroot-prepare --help | --version

Runs between \"the physical root is mounted at /sysroot\" and \"switch root\".
Everything it trusts comes from the initramfs:
  /etc/sealroot/certs.d/       trusted certificates (DER or PEM), required
  /etc/sealroot/prepare.conf   optional settings (see docs/prepare.md)
The kernel command line only selects the image, one of:
  sealroot=sha256:<manifest digest>
  sealroot.config=sha256:<config digest>
  sealroot.image=<EROFS fs-verity digest>
  composefs=<hex>, composefs.digest=v1-sha256-12:<hex>   (composefs-rs forms)

It loads erofs/overlay if needed, puts the certificates into the kernel's
.fs-verity keyring and seals it, verifies the deployed manifest, config,
signature artifact and EROFS image in <sysroot>/sealroot, mounts the root as a
composefs (read-only, overlayfs verity=require) with /etc, /var and the
physical root at /sysroot, and moves it onto /sysroot.

Records what it verified in /run/sealroot/status.json. Messages go to the
kernel log and stderr, one line each, prefixed \"sealroot:\".

Exit status:
  0  the sealed root is mounted at /sysroot
  1  refused: not deployed, altered, or not signed by a trusted key
  2  configuration: prepare.conf, certs.d or the kernel command line
  3  system: kernel features, modules, keyring, mounts
On any failure nothing new is mounted at /sysroot.

Example (what an initramfs runs):
  mount /dev/vda2 /sysroot && sealroot-prepare && exec switch_root /sysroot /sbin/init
";

fn main() -> ExitCode {
    let started = Instant::now();
    let uptime_start = record::uptime_ms();
    let mut args = std::env::args_os().skip(1);
    if let Some(arg) = args.next() {
        let code = match arg.to_str() {
            Some("--help" | "-h") => {
                print!("{HELP}");
                exit::OK
            }
            Some("--version" | "-V") => {
                println!("sealroot-prepare {}", env!("CARGO_PKG_VERSION"));
                exit::OK
            }
            _ => {
                eprintln!(
                    "sealroot: sealroot-prepare takes no arguments (got {arg:?}); its settings \
                     come from /etc/sealroot/prepare.conf and the kernel command line; see \
                     --help"
                );
                exit::CONFIG
            }
        };
        return ExitCode::from(code);
    }

    let mut log = Log::open();
    let mut status = record::Status::default();
    let result = prepare::run(&prepare::Inputs::default(), &mut log, &mut status, started);
    status.uptime_ms = record::Uptime {
        start: uptime_start,
        end: record::uptime_ms(),
    };
    status.cpu_us = sealroot::prepare::cpu_time();
    if status.timings_us.total == 0 {
        status.timings_us.total = started.elapsed().as_micros() as u64;
    }
    let code = match &result {
        Ok(()) => {
            status.result = "mounted";
            exit::OK
        }
        Err(e) => {
            log.error(&e.to_string());
            status.result = "refused";
            status.error = Some(e.to_string());
            e.exit_code()
        }
    };
    status.exit_code = code;
    if let Err(e) = record::write(std::path::Path::new(record::RUN_DIR), &status) {
        log.warn(&format!("cannot write {}: {e}", record::STATUS_FILE));
    }
    ExitCode::from(code)
}
