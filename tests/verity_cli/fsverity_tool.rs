//! Locates fsverity-utils' `fsverity` for cross-checks (shared by
//! `tests/verity_cli.rs` and `benches/verity.rs`).
//!
//! Uses `fsverity` from PATH (Debian package `fsverity`), or else unpacks
//! Debian bookworm's `fsverity` + `libfsverity0` with `scripts/debian-fetch`
//! into `target/cache/fsverity-utils` (no root needed). Fails loudly, never
//! skips, when neither works.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// How to run the reference tool.
pub struct FsverityTool {
    pub exe: PathBuf,
    /// `LD_LIBRARY_PATH` for a tool unpacked from Debian (libfsverity.so.0).
    pub lib_dir: Option<PathBuf>,
}

impl FsverityTool {
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

/// The reference `fsverity`, fetched once per process if needed.
pub fn fsverity() -> &'static FsverityTool {
    static TOOL: OnceLock<FsverityTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        if let Some(exe) = in_path("fsverity") {
            return FsverityTool { exe, lib_dir: None };
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dest = root.join("target/cache/fsverity-utils");
        let exe = dest.join("root/usr/bin/fsverity");
        let lib_dir = dest.join("root/usr/lib/x86_64-linux-gnu");
        if !exe.is_file() {
            let status = Command::new(root.join("scripts/debian-fetch"))
                .arg("bookworm")
                .arg(&dest)
                .args(["fsverity", "libfsverity0"])
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()) && exe.is_file(),
                "fsverity-utils is needed for these cross-checks and could not be fetched \
                 ({status:?}): install it with `apt-get install fsverity`, or run \
                 `scripts/debian-fetch bookworm {} fsverity libfsverity0`",
                dest.display()
            );
        }
        FsverityTool {
            exe,
            lib_dir: Some(lib_dir),
        }
    })
}
