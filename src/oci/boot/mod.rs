//! The bootable variant of an image's merged filesystem: what composefs-rs
//! boots (bootc's sealed UKIs pin its digest as `composefs=`), and what the
//! composefs sealing spec's `composefs.merged.bootable.erofs.v1` role signs.
//!
//! composefs-boot 0.9.4, `BootOps::transform_for_boot`
//! (`src/integration.rs`), applied by `cfsctl oci compute-id --bootable`,
//! `cfsctl oci prepare-boot` and `cfsctl oci pull --bootable` to the
//! canonical OCI tree ([`super::canonical`]):
//!
//! 1. `get_boot_resources`: reads the boot entries (BLS, UKIs, kernels in
//!    `/usr/lib/modules`); it changes nothing in the tree (sealroot does not
//!    parse them: cfsctl may refuse an image whose entries it cannot
//!    parse, sealroot does not);
//! 2. `empty_toplevel_dirs`: `/boot` and `/sysroot` are emptied and take
//!    `/usr`'s mtime (the UKI in `/boot` pins this very digest, so it
//!    cannot be inside; `/sysroot` holds ostree content in
//!    ostree-container images). `/usr`, `/boot` and `/sysroot` must all be
//!    directories: composefs-rs refuses the image otherwise, and so does
//!    sealroot ([`BootError::NotBootable`]);
//! 3. `compact`: leaves no entry names any more are dropped (sealroot's
//!    writers never see unreachable inodes: nothing to do);
//! 4. `selabel::selabel` ([`selinux`]): with a policy in the image
//!    (`/etc/selinux/config` naming a type), every inode gets the
//!    `security.selinux` the policy gives its path, or loses it. A
//!    hardlinked file keeps its inode for its first name in depth-first,
//!    name-sorted order; every later name whose label differs from that
//!    first name's gets an inode of its own (a copy, even when two such
//!    names agree with each other). Without `/etc/selinux` or without a type in its
//!    config, every `security.selinux` is removed (after the canonical form
//!    there is none left anyway).

pub mod objects;
pub mod selinux;

use std::collections::HashMap;
use std::io;

use crate::tree::{Content, FileType, InodeId, Tree};
use crate::verity::FsVerityDigest;
use selinux::{
    MAX_POLICY_FILE, Policy, PolicyError, PolicyFiles, RULE_FILES, SUBS_FILES, XATTR_SELINUX,
};

/// Reads the content of a regular file stored outside the EROFS (an
/// object), for the policy files the transformation reads.
pub trait ObjectReader {
    /// The `size` bytes whose fs-verity digest is `digest`; an error when
    /// they cannot be found or do not hash to `digest`.
    fn read_object(&self, digest: &FsVerityDigest, size: u64) -> io::Result<Vec<u8>>;
}

/// Why the bootable variant could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// `/usr`, `/boot` or `/sysroot` is missing or not a directory.
    #[error(
        "the image has no bootable variant: /{dir} is {found}, and composefs-rs's boot \
         transformation (cfsctl --bootable) needs /usr, /boot and /sysroot directories; add them \
         to the image (`RUN mkdir -p /boot /sysroot`) or seal it without --bootable"
    )]
    NotBootable {
        /// `usr`, `boot` or `sysroot`.
        dir: &'static str,
        /// "missing" or the file type found.
        found: String,
    },
    /// The SELinux policy files are not where composefs-rs reads them.
    #[error("SELinux policy of the image: {path}: {reason}")]
    PolicyPath {
        /// The path in the image.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A policy file could not be read.
    #[error("SELinux policy of the image: reading {path} (object {digest}): {error}")]
    Read {
        /// The path in the image.
        path: String,
        /// Its object.
        digest: String,
        /// Why (in the message, not a `source`: printed once).
        error: io::Error,
    },
    /// The policy does not parse or compile.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A label the tree cannot hold, or too many inodes.
    #[error("labelling {path}: {error}")]
    Tree {
        /// The path.
        path: String,
        /// Why (in the message).
        error: crate::tree::Error,
    },
}

/// What [`transform`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootReport {
    /// The SELinux policy type applied (`None`: labels removed).
    pub selinux_policy: Option<String>,
    /// Hardlinks split because their names got different labels.
    pub split_links: usize,
}

/// Whether an image is meant to boot, for `oci seal`'s default
/// (`--bootable=auto`): `/usr`, `/boot` and `/sysroot` are directories
/// (the transformation needs them) and it carries a kernel, either
/// `/usr/lib/modules/<version>/vmlinuz` (where bootc images keep it, and
/// where composefs-boot's `UsrLibModulesVmlinuz` looks) or anything in
/// `/boot` (BLS entries, UKIs).
pub fn looks_bootable(tree: &Tree) -> bool {
    let dir = |p: &[u8]| tree.lookup_path(p).filter(|&d| tree.is_dir(d));
    let (Some(_), Some(boot), Some(_)) = (dir(b"usr"), dir(b"boot"), dir(b"sysroot")) else {
        return false;
    };
    if tree.entries(boot).len() > 0 {
        return true;
    }
    let Some(modules) = dir(b"usr/lib/modules") else {
        return false;
    };
    tree.entries(modules).any(|e| {
        tree.is_dir(e.inode)
            && tree
                .lookup(e.inode, b"vmlinuz")
                .is_some_and(|k| tree.file_type(k) == FileType::Regular)
    })
}

/// Turns the canonical merged tree into its bootable variant (the rules of
/// the module documentation), reading the policy's files through
/// `objects`. Link counts are settled again.
pub fn transform(tree: &mut Tree, objects: &dyn ObjectReader) -> Result<BootReport, BootError> {
    empty_toplevel_dirs(tree)?;
    let mut report = BootReport::default();
    match read_policy(tree, objects)? {
        Some((name, mut policy)) => {
            report.split_links = relabel(tree, &mut policy)?;
            report.selinux_policy = Some(name);
        }
        None => tree.retain_xattrs(|n| n != XATTR_SELINUX),
    }
    tree.recount_nlinks();
    Ok(report)
}

fn describe(tree: &Tree, id: Option<InodeId>) -> String {
    match id.map(|i| tree.file_type(i)) {
        None => "missing",
        Some(FileType::Regular) => "a regular file",
        Some(FileType::Directory) => "a directory",
        Some(FileType::Symlink) => "a symlink",
        Some(FileType::BlockDevice) => "a block device",
        Some(FileType::CharDevice) => "a character device",
        Some(FileType::Fifo) => "a fifo",
        Some(FileType::Socket) => "a socket",
    }
    .into()
}

fn empty_toplevel_dirs(tree: &mut Tree) -> Result<(), BootError> {
    let root = tree.root();
    let dir = |tree: &Tree, name: &'static str| {
        let id = tree.lookup(root, name.as_bytes());
        id.filter(|&d| tree.is_dir(d))
            .ok_or_else(|| BootError::NotBootable {
                dir: name,
                found: describe(tree, id),
            })
    };
    let usr = dir(tree, "usr")?;
    let mtime = tree.stat(usr).mtime;
    for name in ["boot", "sysroot"] {
        let d = dir(tree, name)?;
        tree.stat_mut(d).mtime = mtime;
        tree.clear_dir(d);
    }
    Ok(())
}

/// Looks `path` (components relative to `from`) up as composefs-rs's
/// `Directory::get_directory_opt` does: `..` anywhere or a leading `.` is
/// invalid, other `.` and empty components are skipped; a component that
/// is not a directory is an error; a missing one gives `None`.
fn directory(
    tree: &Tree,
    from: InodeId,
    base: &str,
    path: &str,
) -> Result<Option<InodeId>, BootError> {
    let invalid = |reason: &str| BootError::PolicyPath {
        path: format!("{base}/{path}"),
        reason: reason.to_string(),
    };
    if path == "." || path.starts_with("./") {
        return Err(invalid("not a valid path (it starts with `.`)"));
    }
    let mut cur = from;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(invalid("not a valid path (it has `..`)"));
        }
        match tree.lookup(cur, comp.as_bytes()) {
            None => return Ok(None),
            Some(d) if tree.is_dir(d) => cur = d,
            Some(_) => return Err(invalid(&format!("{comp} is not a directory"))),
        }
    }
    Ok(Some(cur))
}

/// The content of regular file `name` in `dir`, `None` if there is no such
/// entry (composefs-rs's `get_file_opt`: another file type is an error).
fn read_file(
    tree: &Tree,
    dir: InodeId,
    path: &str,
    name: &str,
    objects: &dyn ObjectReader,
) -> Result<Option<Vec<u8>>, BootError> {
    let path = format!("{path}/{name}");
    let Some(id) = tree.lookup(dir, name.as_bytes()) else {
        return Ok(None);
    };
    if tree.file_type(id) != FileType::Regular {
        return Err(BootError::PolicyPath {
            reason: format!("is {}, not a regular file", describe(tree, Some(id))),
            path,
        });
    }
    let size = tree.stat(id).size;
    if size > MAX_POLICY_FILE {
        return Err(BootError::PolicyPath {
            path,
            reason: format!("{size} bytes, more than the {MAX_POLICY_FILE} sealroot reads"),
        });
    }
    match tree.content(id) {
        Content::Inline(bytes) => Ok(Some(bytes.to_vec())),
        Content::External {
            digest: Some(d), ..
        } => objects
            .read_object(&d, size)
            .map(Some)
            .map_err(|error| BootError::Read {
                path,
                digest: d.to_string(),
                error,
            }),
        Content::External { digest: None, .. } => Err(BootError::PolicyPath {
            path,
            reason: "an external file without a digest".into(),
        }),
        _ => Ok(Some(Vec::new())),
    }
}

/// The image's policy (composefs-boot's `selabel`, `build_policy`), or
/// `None` when it has none.
fn read_policy(
    tree: &Tree,
    objects: &dyn ObjectReader,
) -> Result<Option<(String, Policy)>, BootError> {
    let Some(etc_selinux) = directory(tree, tree.root(), "", "etc/selinux")? else {
        return Ok(None);
    };
    let base = "/etc/selinux";
    let Some(config) = read_file(tree, etc_selinux, base, "config", objects)? else {
        return Ok(None);
    };
    let Some(name) = selinux::policy_type(&config)? else {
        return Ok(None);
    };
    let missing = |p: &str| BootError::PolicyPath {
        path: format!("{base}/{p}"),
        reason: "no such directory (named by SELINUXTYPE in /etc/selinux/config)".into(),
    };
    let policy_dir = directory(tree, etc_selinux, base, &name)?.ok_or_else(|| missing(&name))?;
    let files_path = format!("{base}/{name}/contexts/files");
    let files_dir = directory(
        tree,
        policy_dir,
        &format!("{base}/{name}"),
        "contexts/files",
    )?
    .ok_or_else(|| missing(&format!("{name}/contexts/files")))?;
    let mut files = PolicyFiles::default();
    for file in RULE_FILES.into_iter().chain(SUBS_FILES) {
        if let Some(text) = read_file(tree, files_dir, &files_path, file, objects)? {
            files.files.push((file, text));
        }
    }
    Ok(Some((name, Policy::build(&files)?)))
}

/// `PathBuf::push`: a separator unless `path` ends with one.
fn child_path(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1 + name.len());
    p.extend_from_slice(path);
    if !p.is_empty() && !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn type_letter(t: FileType) -> u8 {
    match t {
        FileType::Regular => b'-',
        FileType::Directory => b'd',
        FileType::Symlink => b'l',
        FileType::BlockDevice => b'b',
        FileType::CharDevice => b'c',
        FileType::Fifo => b'p',
        FileType::Socket => b's',
    }
}

fn set_label(
    tree: &mut Tree,
    id: InodeId,
    path: &[u8],
    label: Option<&[u8]>,
) -> Result<(), BootError> {
    match label {
        Some(l) => tree
            .set_xattr(id, XATTR_SELINUX, l)
            .map_err(|error| BootError::Tree {
                path: String::from_utf8_lossy(path).into_owned(),
                error,
            }),
        None => {
            tree.remove_xattr(id, XATTR_SELINUX);
            Ok(())
        }
    }
}

/// composefs-boot's `relabel_dir`, depth first in name order (without
/// recursion: the tree's depth is the attacker's). Returns the number of
/// hardlinks split.
fn relabel(tree: &mut Tree, policy: &mut Policy) -> Result<usize, BootError> {
    let root = tree.root();
    let label = policy.label(b"/", b'd')?.map(|l| l.as_bytes().to_vec());
    set_label(tree, root, b"/", label.as_deref())?;
    // The label each leaf got from its first name (None: no label).
    let mut labelled: HashMap<InodeId, Option<Vec<u8>>> = HashMap::new();
    let mut split = 0;
    // (directory, its effective path, next entry)
    let mut stack: Vec<(InodeId, Vec<u8>, usize)> = vec![(root, b"/".to_vec(), 0)];
    while let Some(top) = stack.last_mut() {
        let (dir, idx) = (top.0, top.2);
        let Some(entry) = tree.entry(dir, idx) else {
            stack.pop();
            continue;
        };
        top.2 += 1;
        let (name, inode) = (entry.name.to_vec(), entry.inode);
        let mut path = child_path(&top.1, &name);
        if let Some(original) = policy.alias(&path) {
            path = original.to_vec();
        }
        let kind = type_letter(tree.file_type(inode));
        let label = policy.label(&path, kind)?.map(|l| l.as_bytes().to_vec());
        if tree.is_dir(inode) {
            set_label(tree, inode, &path, label.as_deref())?;
            stack.push((inode, path, 0));
            continue;
        }
        let target = match labelled.get(&inode) {
            Some(first) if *first == label => inode,
            Some(_) => {
                let clone = tree.clone_inode(inode).map_err(|error| BootError::Tree {
                    path: String::from_utf8_lossy(&path).into_owned(),
                    error,
                })?;
                tree.retarget(dir, &name, clone);
                split += 1;
                clone
            }
            None => inode,
        };
        set_label(tree, target, &path, label.as_deref())?;
        labelled.entry(target).or_insert(label);
    }
    Ok(split)
}

#[cfg(test)]
mod tests;
