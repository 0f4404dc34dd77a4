//! Reference tools for cross-checks (shared by the tests and benches): `openssl`, `fsverity`
//! (fsverity-utils) and `keyctl` (keyutils), from PATH or, failing that,
//! unpacked from Debian bookworm with `scripts/debian-fetch` into
//! `target/cache/reference-tools-bookworm` (no root needed). Fails loudly, never skips.

#![allow(dead_code)] // each user needs only some of the tools

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Tool {
    exe: PathBuf,
    lib_dir: Option<PathBuf>,
}

impl Tool {
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        if let Some(dir) = &self.lib_dir {
            cmd.env("LD_LIBRARY_PATH", dir);
        }
        cmd
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

fn locate(name: &str, packages: &[&str]) -> Tool {
    if let Some(exe) = in_path(name) {
        return Tool { exe, lib_dir: None };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = root.join("target/cache/reference-tools-bookworm");
    let exe = [
        dest.join("root/usr/bin").join(name),
        dest.join("root/bin").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file());
    let exe = exe.unwrap_or_else(|| {
        let status = Command::new(root.join("scripts/debian-fetch"))
            .arg("bookworm")
            .arg(&dest)
            .args(packages)
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "`{name}` is needed for these cross-checks and could not be fetched ({status:?}): \
             install Debian package(s) {packages:?}"
        );
        [
            dest.join("root/usr/bin").join(name),
            dest.join("root/bin").join(name),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in {packages:?}"))
    });
    Tool {
        exe,
        lib_dir: Some(dest.join("root/usr/lib/x86_64-linux-gnu")),
    }
}

pub fn openssl() -> &'static Tool {
    static T: OnceLock<Tool> = OnceLock::new();
    T.get_or_init(|| locate("openssl", &["openssl", "libssl3"]))
}

pub fn fsverity() -> &'static Tool {
    static T: OnceLock<Tool> = OnceLock::new();
    T.get_or_init(|| locate("fsverity", &["fsverity", "libfsverity0"]))
}

pub fn keyctl() -> &'static Tool {
    static T: OnceLock<Tool> = OnceLock::new();
    T.get_or_init(|| locate("keyctl", &["keyutils", "libkeyutils1"]))
}
