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
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType as RFileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};

use crate::tree::{Content, FileType, InodeId, Tree};

use super::Error;
use super::dir::{Dir, PathError};
use super::store::Repository;

/// Copies the tree's `/var` (if any) to `var` in `parent` (created);
/// returns the number of entries copied. Every entry is created by name
/// relative to the handle of the directory it goes into (`*at` calls,
/// `O_NOFOLLOW`), so nothing is written outside the new directory.
pub fn seed(repo: &Repository, tree: &Tree, parent: &Dir) -> Result<u64, Error> {
    parent.create_dir("var", 0o755)?;
    let dest = parent.open_dir("var")?;
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
    copier.meta(var, parent, OsStr::new("var"))?;
    copier.dir(var, &dest)?;
    copier.times(var, parent, OsStr::new("var"))?;
    Ok(copier.count)
}

struct Copier<'a> {
    repo: &'a Repository,
    tree: &'a Tree,
    /// First copy of each hardlinked inode: its directory and name.
    links: HashMap<InodeId, (Dir, Vec<u8>)>,
    count: u64,
}

fn err(dir: &Dir, name: &OsStr, action: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    let path = dir.display(name);
    move |errno| {
        Error::Path(PathError::Io {
            path,
            action,
            errno,
        })
    }
}

impl Copier<'_> {
    /// Copies the entries of tree directory `dir` into `out`.
    fn dir(&mut self, dir: InodeId, out: &Dir) -> Result<(), Error> {
        let entries: Vec<(Vec<u8>, InodeId)> = self
            .tree
            .entries(dir)
            .map(|e| (e.name.to_vec(), e.inode))
            .collect();
        for (name, inode) in entries {
            self.entry(inode, out, &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, inode: InodeId, out: &Dir, name: &[u8]) -> Result<(), Error> {
        let n = OsStr::from_bytes(name);
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            // The tree model never holds such a name; never act on one.
            return Err(Error::Refused(format!(
                "the image's /var has an entry named {n:?}, which is not a file name"
            )));
        }
        self.count += 1;
        if let Some((first_dir, first)) = self.links.get(&inode) {
            return rustix::fs::linkat(
                first_dir.fd(),
                first.as_slice(),
                out.fd(),
                n,
                AtFlags::empty(),
            )
            .map_err(err(out, n, "cannot create hard link"));
        }
        let st = *self.tree.stat(inode);
        let file_type = self.tree.file_type(inode);
        match (file_type, self.tree.content(inode)) {
            (FileType::Directory, _) => {
                out.create_dir(n, 0o700)?;
                let sub = out.open_dir(Path::new(n))?;
                self.meta(inode, out, n)?;
                self.dir(inode, &sub)?;
                // Directory mtimes last: creating children changes them.
                return self.times(inode, out, n);
            }
            (FileType::Symlink, Content::Symlink(target)) => {
                out.symlink(Path::new(OsStr::from_bytes(target)), n)?;
            }
            (FileType::Regular, content) => {
                let fd = rustix::fs::openat(
                    out.fd(),
                    n,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(err(out, n, "cannot create"))?;
                let mut file = std::fs::File::from(fd);
                let written = match content {
                    Content::Inline(data) => io::Write::write_all(&mut file, data),
                    Content::External {
                        digest: Some(d), ..
                    } => {
                        let mut src = self.repo.open_file(self.repo.object_rel(&d))?;
                        io::copy(&mut src, &mut file).map(|_| ())
                    }
                    _ => Ok(()),
                };
                written.map_err(Error::io("writing", out.display(n)))?;
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
                rustix::fs::mknodat(
                    out.fd(),
                    n,
                    kind,
                    Mode::from_raw_mode(st.mode & 0o7777),
                    st.rdev,
                )
                .map_err(err(out, n, "cannot create node"))?;
            }
        }
        if st.nlink > 1 {
            self.links.insert(inode, (out.clone(), name.to_vec()));
        }
        self.meta(inode, out, n)?;
        self.times(inode, out, n)
    }

    /// Owner, mode and xattrs of `name` in `dir` (not a symlink's mode).
    fn meta(&self, inode: InodeId, dir: &Dir, name: &OsStr) -> Result<(), Error> {
        let st = self.tree.stat(inode);
        rustix::fs::chownat(
            dir.fd(),
            name,
            Some(Uid::from_raw(st.uid)),
            Some(Gid::from_raw(st.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(err(dir, name, "cannot change the owner of"))?;
        let is_link = self.tree.file_type(inode) == FileType::Symlink;
        if !is_link {
            // After chown, which clears setuid/setgid bits. The entry was
            // just created here as this type, so no symlink is followed.
            rustix::fs::chmodat(
                dir.fd(),
                name,
                Mode::from_raw_mode(st.mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(err(dir, name, "cannot set the mode of"))?;
        }
        let xattrs: Vec<_> = self.tree.xattrs(inode).collect();
        if xattrs.is_empty() {
            return Ok(());
        }
        let set = |r: rustix::io::Result<()>| r.map_err(err(dir, name, "cannot set an xattr on"));
        match self.tree.file_type(inode) {
            // Created here just now as this type: open it (O_NOFOLLOW).
            FileType::Regular | FileType::Directory => {
                let fd = rustix::fs::openat(
                    dir.fd(),
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(err(dir, name, "cannot open"))?;
                for (xname, value) in xattrs {
                    set(rustix::fs::fsetxattr(
                        &fd,
                        xname,
                        value,
                        rustix::fs::XattrFlags::empty(),
                    ))?;
                }
            }
            // Symlinks and device nodes cannot be opened for this, and
            // there is no setxattrat() before Linux 6.13: name the entry
            // through the directory handle's /proc link (the opened
            // directory itself, not a path resolved again).
            _ => {
                let mut p = format!("/proc/self/fd/{}/", dir.fd().as_raw_fd()).into_bytes();
                p.extend_from_slice(name.as_bytes());
                for (xname, value) in xattrs {
                    set(rustix::fs::lsetxattr(
                        p.as_slice(),
                        xname,
                        value,
                        rustix::fs::XattrFlags::empty(),
                    ))?;
                }
            }
        }
        Ok(())
    }

    fn times(&self, inode: InodeId, dir: &Dir, name: &OsStr) -> Result<(), Error> {
        let m = self.tree.stat(inode).mtime;
        let t = Timespec {
            tv_sec: m.sec,
            tv_nsec: m.nsec.into(),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(dir.fd(), name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err(
            dir,
            name,
            "cannot set the mtime of",
        ))
    }
}
