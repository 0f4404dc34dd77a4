//! A tiny "OS" for the root the initramfs switches to: the host's static
//! busybox with its applets, the bed's result-channel library, and an
//! `/sbin/init` that reports through the bed protocol (ttyS1), runs a
//! scenario and powers off. Reaching it proves systemd in the initramfs
//! mounted a root and switched into it; `Vm::run` then sees `@@bed done`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use sealroot_testbed::Result;
use sealroot_testbed::initramfs::{BED_SH, busybox};

use crate::kmods::io_error;

/// `/sbin/init` of the tiny OS. After switch-root, systemd has already
/// mounted /proc, /sys, /dev and /run (moved from the initramfs), so the
/// init only reports, runs the scenario and powers off.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin HOME=/
# A sealed root is read-only; bed_run needs a writable /tmp.
mount -t tmpfs -o mode=1777 tmpfs /tmp
. /lib/bed.sh
echo >>"$BED_CHANNEL"
bed__emit "start - release=$(uname -r) ms=$(bed__ms)"
bed_log "os init: pid $$, up $(bed__ms) ms, marker=$(cat /etc/os-marker)"
bed_value os-marker "$(cat /etc/os-marker)"
bed_value pid "$$"
(cd / && . /etc/os-scenario.sh)
rc=$?
sync
bed__emit "done - rc=$rc ms=$(bed__ms)"
bed_log "done: rc=$rc"
poweroff -f
"#;

const OS_RELEASE: &str = "ID=sealroot-test\nNAME=\"sealroot test OS\"\n";

/// Writes the tiny OS into `dir` (which becomes `/`): `marker` lands in
/// `/etc/os-marker`, `scenario` (busybox sh, bed.sh loaded) in
/// `/etc/os-scenario.sh`.
pub fn write_tree(dir: &Path, marker: &str, scenario: &str) -> Result<()> {
    let busybox = busybox()?;
    // sealroot-prepare mounts the deployment's /etc and /var and the
    // physical root (/sysroot) onto directories of the sealed image.
    // /usr as every real OS has one (mount.usr= binds onto it).
    for sub in [
        "bin", "sbin", "etc", "lib", "proc", "sys", "dev", "run", "tmp", "var", "sysroot", "usr",
    ] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(|e| io_error("cannot create", &path, e))?;
    }
    let bin = dir.join("bin/busybox");
    fs::copy(&busybox.path, &bin).map_err(|e| io_error("cannot copy busybox to", &bin, e))?;
    for applet in &busybox.applets {
        let link = dir.join("bin").join(applet);
        symlink("busybox", &link).map_err(|e| io_error("cannot create symlink", &link, e))?;
    }
    // systemd's switch-root refuses a target that is not an OS tree: it
    // needs /etc/os-release or /usr/lib/os-release (os-release(5)).
    let files: [(&str, &str, u32); 5] = [
        ("etc/os-release", OS_RELEASE, 0o644),
        ("sbin/init", INIT, 0o755),
        ("lib/bed.sh", BED_SH, 0o644),
        ("etc/os-marker", marker, 0o644),
        ("etc/os-scenario.sh", scenario, 0o644),
    ];
    for (rel, text, mode) in files {
        let path = dir.join(rel);
        fs::write(&path, text).map_err(|e| io_error("cannot write", &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("cannot chmod", &path, e))?;
    }
    let tmp = dir.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|e| io_error("cannot chmod", &tmp, e))?;
    Ok(())
}
