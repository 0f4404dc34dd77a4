//! Seeding a new deployment's `var/` from the image's `/var`.
//!
//! Decision (docs/repository.md, "/var"): like bootc (and ostree for
//! content it finds in the commit's /var at first deploy), the image's
//! /var is copied into the deployment's persistent `var/` **once**, when
//! the deployment is created; a re-deploy of the same image never touches
//! it, and later image updates do not merge into it (systemd-tmpfiles is
//! the tool for that). Without the copy, directories an image ships in
//! /var (e.g. /var/lib/<pkg> with specific owners) would be missing on the
//! first boot.
//!
//! Everything is copied with its mode, owner, mtime and xattrs: regular
//! files (inline content, or a copy of the object — not a hardlink: /var is
//! writable and objects must stay immutable), directories, symlinks,
//! hardlink groups, fifos and device nodes.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType as RFileType, Gid, Mode, Timespec, Timestamps, Uid};

use crate::tree::{Content, FileType, InodeId, Tree};

use super::Error;
use super::store::Repository;

/// Copies the tree's `/var` (if any) to `dest` (created); returns the
/// number of entries copied.
pub fn seed(repo: &Repository, tree: &Tree, dest: &Path) -> Result<u64, Error> {
    fs::create_dir(dest).map_err(Error::io("creating", dest))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
        .map_err(Error::io("setting permissions of", dest))?;
    let Some(var) = tree.lookup(tree.root(), b"var") else {
        return Ok(0);
    };
    if !tree.is_dir(var) {
        return Ok(0);
    }
    let mut copier = Copier {
        repo,
        tree,
        links: HashMap::new(),
        count: 0,
    };
    copier.meta(var, dest)?;
    copier.dir(var, dest)?;
    Ok(copier.count)
}

struct Copier<'a> {
    repo: &'a Repository,
    tree: &'a Tree,
    links: HashMap<InodeId, PathBuf>,
    count: u64,
}

impl Copier<'_> {
    fn dir(&mut self, dir: InodeId, path: &Path) -> Result<(), Error> {
        let entries: Vec<(Vec<u8>, InodeId)> = self
            .tree
            .entries(dir)
            .map(|e| (e.name.to_vec(), e.inode))
            .collect();
        for (name, inode) in entries {
            let p = path.join(std::ffi::OsStr::from_bytes(&name));
            self.entry(inode, &p)?;
        }
        // Directory mtimes last: creating children changes them.
        self.times(dir, path)
    }

    fn entry(&mut self, inode: InodeId, p: &Path) -> Result<(), Error> {
        self.count += 1;
        if let Some(first) = self.links.get(&inode) {
            return fs::hard_link(first, p).map_err(Error::io("hardlinking", p));
        }
        let st = *self.tree.stat(inode);
        match (self.tree.file_type(inode), self.tree.content(inode)) {
            (FileType::Directory, _) => {
                fs::create_dir(p).map_err(Error::io("creating", p))?;
                self.meta(inode, p)?;
                return self.dir(inode, p);
            }
            (FileType::Symlink, Content::Symlink(target)) => {
                symlink(std::ffi::OsStr::from_bytes(target), p)
                    .map_err(Error::io("creating symlink", p))?;
            }
            (FileType::Regular, Content::Inline(data)) => {
                fs::write(p, data).map_err(Error::io("writing", p))?;
            }
            (
                FileType::Regular,
                Content::External {
                    digest: Some(d), ..
                },
            ) => {
                let obj = self.repo.object_path(&d);
                let mut src = fs::File::open(&obj).map_err(Error::io("opening object", &obj))?;
                let mut out = fs::File::create(p).map_err(Error::io("creating", p))?;
                io::copy(&mut src, &mut out).map_err(Error::io("copying into", p))?;
            }
            (FileType::Regular, _) => {
                fs::File::create(p).map_err(Error::io("creating", p))?;
            }
            (t, _) => {
                let kind = match t {
                    FileType::Fifo => RFileType::Fifo,
                    FileType::CharDevice => RFileType::CharacterDevice,
                    FileType::BlockDevice => RFileType::BlockDevice,
                    _ => RFileType::Socket,
                };
                if kind == RFileType::Socket {
                    // A socket in an image is a leftover; nothing can use it.
                    return Ok(());
                }
                rustix::fs::mknodat(CWD, p, kind, Mode::from_raw_mode(st.mode & 0o7777), st.rdev)
                    .map_err(|e| Error::io("creating node", p)(e.into()))?;
            }
        }
        if st.nlink > 1 {
            self.links.insert(inode, p.to_owned());
        }
        self.meta(inode, p)?;
        self.times(inode, p)
    }

    /// Owner, mode and xattrs (not for symlinks' mode).
    fn meta(&self, inode: InodeId, p: &Path) -> Result<(), Error> {
        let st = self.tree.stat(inode);
        rustix::fs::chownat(
            CWD,
            p,
            Some(Uid::from_raw(st.uid)),
            Some(Gid::from_raw(st.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::io("changing the owner of", p)(e.into()))?;
        if self.tree.file_type(inode) != FileType::Symlink {
            fs::set_permissions(p, fs::Permissions::from_mode(st.mode & 0o7777))
                .map_err(Error::io("setting permissions of", p))?;
        }
        for (name, value) in self.tree.xattrs(inode) {
            rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
                .map_err(|e| Error::io("setting an xattr on", p)(e.into()))?;
        }
        Ok(())
    }

    fn times(&self, inode: InodeId, p: &Path) -> Result<(), Error> {
        let m = self.tree.stat(inode).mtime;
        let t = Timespec {
            tv_sec: m.sec,
            tv_nsec: m.nsec.into(),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("setting the mtime of", p)(e.into()))
    }
}
