//! What ostree-prepare-root leaves in `/run` for ostree's tools
//! (`ostree-prepare-root.c`, `otcore.h`, ostree 2026.4):
//!
//! | path | what | read by |
//! | --- | --- | --- |
//! | `/run/ostree/` (0755), `/run/ostree/.private/` (0000) | state directories | ostree |
//! | `/run/ostree-booted` | GVariant `a{sv}`: `backing-root-device-inode` `(tt)` (the deployment directory's device and inode), `root.transient` `b`, `root.transient-ro` `b`, `composefs` `b`, `composefs.verity` `b`, `sysroot-ro` `b` | `ostree_sysroot_load` (finds the booted deployment by the device and inode; older ostree only tests that the file exists) |
//! | `/run/ostree/initramfs-mount-var` | empty: `/var` was mounted in the initramfs | `ostree-system-generator` removes it and then generates no `var.mount` (which would cover sealroot's `nosuid,nodev` `/var`) |
//! | `/run/systemd/volatile-root` → `/dev/block/MAJ:MIN` | the physical root's device, for systemd-gpt-auto-generator | systemd |

use std::io::Write;
use std::path::Path;

use crate::ostree::gvariant::{DictEntry, write_vardict};

/// The facts the markers carry.
#[derive(Debug)]
pub struct Booted {
    /// The deployment directory's device (`backing-root-device-inode`).
    pub dev: u64,
    /// The deployment directory's inode.
    pub ino: u64,
    /// `/sysroot` is mounted read-only (`sysroot-ro`).
    pub sysroot_readonly: bool,
    /// The physical root's device, if it has one.
    pub physical_root_dev: Option<u64>,
}

/// `/run/ostree-booted`'s bytes, entries in ostree-prepare-root's order.
/// GVariant data is in the machine's byte order (ostree writes
/// `g_variant_get_data` as it is).
pub fn booted_bytes(b: &Booted) -> Vec<u8> {
    let boolean = |key: &str, v: bool| DictEntry {
        key: key.into(),
        ty: "b".into(),
        value: vec![u8::from(v)],
    };
    let mut devino = b.dev.to_ne_bytes().to_vec();
    devino.extend_from_slice(&b.ino.to_ne_bytes());
    write_vardict(&[
        DictEntry {
            key: "backing-root-device-inode".into(),
            ty: "(tt)".into(),
            value: devino,
        },
        boolean("root.transient", false),
        boolean("root.transient-ro", false),
        boolean("composefs", true),
        boolean("composefs.verity", true),
        boolean("sysroot-ro", b.sysroot_readonly),
    ])
}

/// Writes the markers below `run` (`/run`). `/run/ostree-booted` goes
/// last and atomically: it is what says "booted by ostree".
pub fn write(run: &Path, b: &Booted) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = |p: &Path, mode: u32| -> std::io::Result<()> {
        match std::fs::DirBuilder::new().mode(mode).create(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
    };
    let ostree = run.join("ostree");
    dir(&ostree, 0o755)?;
    dir(&ostree.join(".private"), 0)?;
    std::fs::File::create(ostree.join("initramfs-mount-var"))?;
    if let Some(dev) = b.physical_root_dev.filter(|d| rustix::fs::major(*d) > 0) {
        let _ = std::fs::create_dir(run.join("systemd"));
        let target = format!(
            "/dev/block/{}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        );
        match std::os::unix::fs::symlink(target, run.join("systemd/volatile-root")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let tmp = run.join(".ostree-booted.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&booted_bytes(b))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, run.join("ostree-booted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ostree::gvariant::read_vardict;

    #[test]
    fn booted_marker_reads_back_as_ostree_expects() {
        let b = Booted {
            dev: 0xfe01,
            ino: 1234567,
            sysroot_readonly: true,
            physical_root_dev: Some(0xfe01),
        };
        let entries = read_vardict(&booted_bytes(&b)).unwrap();
        let keys: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.ty.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("backing-root-device-inode", "(tt)"),
                ("root.transient", "b"),
                ("root.transient-ro", "b"),
                ("composefs", "b"),
                ("composefs.verity", "b"),
                ("sysroot-ro", "b"),
            ]
        );
        assert_eq!(&entries[0].value[..8], &0xfe01u64.to_ne_bytes());
        assert_eq!(&entries[0].value[8..], &1234567u64.to_ne_bytes());
        assert_eq!(entries[5].value, [1]);

        let t = tempfile::tempdir().unwrap();
        write(t.path(), &b).unwrap();
        assert!(t.path().join("ostree/initramfs-mount-var").is_file());
        assert!(t.path().join("ostree/.private").is_dir());
        assert_eq!(
            std::fs::read_link(t.path().join("systemd/volatile-root")).unwrap(),
            Path::new("/dev/block/254:1")
        );
        assert_eq!(
            std::fs::read(t.path().join("ostree-booted")).unwrap(),
            booted_bytes(&b)
        );
    }
}
