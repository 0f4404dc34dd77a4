//! `sealroot-prepare`: the initramfs binary (see `src/prepare` and
//! `docs/prepare.md`). Built static, without the `host` feature; no CLI
//! framework: it takes no arguments besides `--help`, `--version` and
//! `--check-switch-root` (the gate `initrd-switch-root.service` runs).

use std::process::ExitCode;
use std::time::Instant;

use sealroot::prepare::{self, exit, log::Log, record};

const HELP: &str = "\
sealroot-prepare: mount the sealed root in the initramfs, or refuse to.

Usage: sealroot-prepare            (no arguments; run as root in the initramfs)
       sealroot-prepare --check-switch-root
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
or, with [boot] layout = ostree in prepare.conf (replacing ostree-prepare-root),
  ostree=/ostree/boot.N/<os>/<bootcsum>/<serial>   (ostree's boot entry)
or, with [boot] layout = composefs-rs (replacing composefs-setup-root),
  composefs=<hex>, composefs.digest=v1-<sha256|sha512>-12:<hex>
  naming an image in <sysroot>/composefs (composefs-rs, bootc)
No selector is an error, unless prepare.conf says [boot] required = no and
the command line names no sealroot parameter at all: then it stands down
(exit 0, result \"not-selected\", marker /run/sealroot/stood-down) and
another unit (ostree-prepare-root, composefs-setup-root) may prepare the root.

It loads erofs/overlay if needed, puts the certificates into the kernel's
.fs-verity keyring and seals it, verifies the deployed manifest, config,
signature artifact and EROFS image in <sysroot>/sealroot (ostree layout: the
deployment's .ostree.cfs and its signed binding record; composefs-rs layout:
the image's fs-verity digest and builtin signature), mounts the root as a
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

--check-switch-root: run right before switching root (systemd:
initrd-switch-root.service, ExecStartPre=). Exit 0 only if the mount at
/sysroot is the sealed root sealroot-prepare recorded, with nothing mounted
below it since (except below the physical root, nosuid,nodev), or if
sealroot-prepare stood down as prepare.conf allows; else exit 1 with the
reason: the switch must not happen.

Example (what an initramfs runs):
  mount /dev/vda2 /sysroot && sealroot-prepare &&
    sealroot-prepare --check-switch-root && exec switch_root /sysroot /sbin/init
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
            Some("--check-switch-root") if args.next().is_none() => check_switch_root(),
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
    let result = result.and_then(|outcome| {
        if outcome == prepare::Outcome::StoodDown {
            record::write_stood_down(std::path::Path::new(record::RUN_DIR)).map_err(|reason| {
                prepare::Error::Marker {
                    path: record::STOOD_DOWN_FILE,
                    reason,
                }
            })?;
        }
        Ok(outcome)
    });
    let code = match &result {
        Ok(prepare::Outcome::Mounted) => {
            status.result = record::RESULT_MOUNTED;
            exit::OK
        }
        Ok(prepare::Outcome::StoodDown) => {
            status.result = record::RESULT_NOT_SELECTED;
            exit::OK
        }
        Err(e) => {
            log.error(&e.to_string());
            status.result = record::RESULT_REFUSED;
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

/// `--check-switch-root`: the gate (see `sealroot::prepare::gate`).
fn check_switch_root() -> u8 {
    let mut log = Log::open();
    let inputs = prepare::Inputs::default();
    match prepare::gate::run(inputs.config_file, inputs.cmdline_file) {
        Ok(prepare::gate::Allowed::Sealed { root }) => {
            log.info(&format!(
                "switch root allowed: /sysroot is the sealed root sealroot-prepare mounted \
                 (mount id {root})"
            ));
            exit::OK
        }
        Ok(prepare::gate::Allowed::StoodDown) => {
            log.notice(
                "switch root allowed: sealroot stood down ([boot] required = no, no sealroot \
                 parameter); /sysroot was not verified by sealroot",
            );
            exit::OK
        }
        Err(e) => {
            log.error(&e.to_string());
            e.exit_code()
        }
    }
}
