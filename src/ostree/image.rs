//! The composefs EROFS of an ostree commit, laid out exactly as ostree's
//! composefs integration lays it out, so that the bytes (and therefore the
//! fs-verity digest) equal ostree's `.ostree.cfs` and its
//! `ostree.composefs.digest.v0` for the same commit.
//!
//! ostree's rules (ostree 2026.4, `src/libostree/ostree-repo-composefs.c`:
//! `checkout_composefs_recurse`, `checkout_one_composefs_file_at`,
//! `_ostree_repo_checkout_composefs`, `ostree_composefs_target_write`):
//!
//! - the image root is the commit's root directory, with its dirmeta's
//!   uid, gid, mode and xattrs; every directory likewise from its dirmeta;
//! - every file takes uid, gid, mode and xattrs from its content object
//!   (per repository mode, [`super::repo::Repo::file_info`]);
//! - no mtimes are set: every inode has mtime 0 (libcomposefs'
//!   `lcfs_node_new` zeroes them), and so does the image;
//! - no hard links: each dirtree entry is its own inode (nlink 1), even
//!   when several entries name the same content object;
//! - every non-empty regular file is external, however small (ostree
//!   never inlines): redirect `/XX/<62 hex>.file`, the content object's
//!   path relative to `objects/` (`_ostree_loose_path` in bare mode), and
//!   metacopy with the object's sha256 fs-verity digest (4 KiB blocks);
//!   empty files have neither;
//! - symlinks carry their target; ostree commits hold no devices, fifos or
//!   sockets (a content object is a regular file or a symlink);
//! - `usr`, `etc`, `boot`, `var` and `sysroot` are added below the root as
//!   empty 0755 root-owned directories where the commit has no entry of
//!   that name ("to work as a rootfs we need some root directories to use
//!   as bind-mounts");
//! - composefs format version 0, raised to 1 only for whiteouts
//!   (`options.version = 0; options.max_version = 1`), i.e.
//!   `mkcomposefs --min-version=0 --max-version=1`.
//!
//! Unlike ostree's checkout, every content object that is hashed here
//! (one without sha256 fs-verity) is also checked against its name: the
//! sha256 of ostree's file header and its content must be its checksum,
//! or the build fails. With the metadata objects checked by
//! [`super::repo`], the image is then the commit's, object for object.
//!
//! The digest recorded for an object is what ostree records with verity
//! required (`composefs.enabled = verity|signed`, `ostree checkout
//! --composefs`, `ostree commit --generate-composefs-metadata`): the
//! kernel's measurement when the object has sha256 fs-verity, else
//! computed from the content. (A deployment made by ostree with
//! `composefs.enabled = yes|maybe` omits the digest of objects without
//! fs-verity; such an image cannot be mounted with `verity=require`.)

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use super::objects::{Checksum, Commit, Meta, file_header};
use super::repo::{FileInfo, Repo, RepoError};
use crate::erofs::{WriteError, WriteOptions};
use crate::tree::{self, InodeId, NewContent, Stat, Tree, mode};
use crate::verity::digest::MerkleHasher;
use crate::verity::{FsVerityDigest, VerityParams};

/// Deepest directory nesting followed (a hostile dirtree chain could
/// otherwise grow the work list without bound; real trees are < 50 deep).
pub const MAX_DEPTH: usize = 1024;

/// The directories ostree adds below the root when the commit lacks them.
pub const ROOT_DIRS: [&str; 5] = ["usr", "etc", "boot", "var", "sysroot"];

/// Why the image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading the commit's objects failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A path the tree model refuses (a name, a duplicate).
    #[error("{path}: {cause}")]
    Tree {
        /// The path in the commit.
        path: String,
        /// Why.
        cause: tree::Error,
    },
    /// Directories nested deeper than [`MAX_DEPTH`].
    #[error("{path}: nested deeper than {MAX_DEPTH} directories")]
    TooDeep {
        /// The directory that is too deep.
        path: String,
    },
    /// A content object that cannot be a file of the image.
    #[error("content object {object}: {reason}")]
    Content {
        /// The object's checksum.
        object: Checksum,
        /// Why.
        reason: String,
    },
    /// Writing the EROFS failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A regular file outside the image: the object it redirects to and the
/// fs-verity digest the image records for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalObject {
    /// The content object's checksum (its name in `objects/`).
    pub object: Checksum,
    /// Its fs-verity digest (sha256, 4 KiB blocks).
    pub digest: FsVerityDigest,
    /// The digest came from the kernel (the object has sha256 fs-verity).
    pub measured: bool,
}

/// The commit as a composefs tree.
#[derive(Debug)]
pub struct CommitImage {
    /// The commit.
    pub commit: Checksum,
    /// Its root directory as a composefs tree.
    pub tree: Tree,
    /// Every distinct external object, in checksum order.
    pub objects: Vec<ExternalObject>,
}

/// ostree's image options: format version 0, 1 only for whiteouts.
pub const WRITE_OPTIONS: WriteOptions = WriteOptions {
    min_version: 0,
    max_version: 1,
};

impl CommitImage {
    /// Reads commit `commit` of `repo` and builds its tree.
    pub fn build(repo: &Repo, commit: &Checksum) -> Result<CommitImage, ImageError> {
        let c: Commit = repo.commit(commit)?;
        let root_meta = repo.dirmeta(&c.root_meta)?;
        let mut tree = Tree::new(dir_stat(&root_meta)).map_err(tree_err("/"))?;
        let root = tree.root();
        set_xattrs(&mut tree, root, &root_meta.xattrs, "/")?;

        // Pass 1: the shape and metadata. Content objects met more than
        // once are read once.
        let mut infos: HashMap<Checksum, FileInfo> = HashMap::new();
        let mut pending: Vec<(InodeId, Checksum, String)> = Vec::new();
        let mut stack = vec![(root, c.root_tree, String::new(), 0usize)];
        while let Some((dir, tree_csum, path, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(ImageError::TooDeep { path });
            }
            let dt = repo.dirtree(&tree_csum)?;
            for (name, csum) in &dt.files {
                let fpath = format!("{path}/{name}");
                if !infos.contains_key(csum) {
                    infos.insert(*csum, repo.file_info(csum)?);
                }
                let info = &infos[csum];
                let stat = Stat {
                    mode: info.mode,
                    uid: info.uid,
                    gid: info.gid,
                    nlink: 1,
                    rdev: 0,
                    size: info.size,
                    mtime: tree::Timestamp::default(),
                };
                let content = match &info.symlink {
                    Some(target) => NewContent::Symlink(target),
                    None if info.size == 0 => NewContent::None,
                    // The digest is filled in by pass 2.
                    None => NewContent::External {
                        payload: None,
                        digest: None,
                    },
                };
                let id = tree.add_inode(stat, content).map_err(tree_err(&fpath))?;
                set_xattrs(&mut tree, id, &info.xattrs, &fpath)?;
                tree.link(dir, name.as_bytes(), id)
                    .map_err(tree_err(&fpath))?;
                if info.symlink.is_none() && info.size > 0 {
                    pending.push((id, *csum, fpath));
                }
            }
            for (name, sub_tree, sub_meta) in &dt.dirs {
                let dpath = format!("{path}/{name}");
                let meta = repo.dirmeta(sub_meta)?;
                let id = tree
                    .add_inode(dir_stat(&meta), NewContent::Directory)
                    .map_err(tree_err(&dpath))?;
                set_xattrs(&mut tree, id, &meta.xattrs, &dpath)?;
                tree.link(dir, name.as_bytes(), id)
                    .map_err(tree_err(&dpath))?;
                stack.push((id, *sub_tree, dpath, depth + 1));
            }
        }
        for name in ROOT_DIRS {
            if tree.lookup(root, name.as_bytes()).is_none() {
                let stat = Stat {
                    mode: mode::S_IFDIR | 0o755,
                    ..Stat::default()
                };
                let id = tree
                    .add_inode(stat, NewContent::Directory)
                    .map_err(tree_err(name))?;
                tree.link(root, name.as_bytes(), id)
                    .map_err(tree_err(name))?;
            }
        }

        // Pass 2: the objects' fs-verity digests, in parallel.
        let distinct: BTreeSet<Checksum> = pending.iter().map(|p| p.1).collect();
        let distinct: Vec<Checksum> = distinct.into_iter().collect();
        let objects: Vec<ExternalObject> = distinct
            .par_iter()
            .map(|csum| object_digest(repo, csum, &infos[csum]))
            .collect::<Result<_, _>>()?;
        let by_csum: HashMap<Checksum, FsVerityDigest> =
            objects.iter().map(|o| (o.object, o.digest)).collect();
        for (id, csum, fpath) in &pending {
            let payload = csum.loose_path("file");
            tree.set_content(
                *id,
                NewContent::External {
                    payload: Some(payload.as_bytes()),
                    digest: Some(by_csum[csum]),
                },
            )
            .map_err(tree_err(fpath))?;
        }
        tree.recount_nlinks();
        Ok(CommitImage {
            commit: *commit,
            tree,
            objects,
        })
    }

    /// The image bytes and their fs-verity digest with `params`.
    pub fn write(&self, params: &VerityParams) -> Result<(Vec<u8>, FsVerityDigest), ImageError> {
        let bytes = crate::erofs::image_bytes(&self.tree, &WRITE_OPTIONS)?;
        let digest = crate::verity::digest::digest_bytes(params, &bytes);
        Ok((bytes, digest))
    }
}

/// The fs-verity parameters of ostree's content objects: sha256, 4 KiB
/// blocks, no salt, what ostree enables (`_ostree_tmpf_fsverity_core`,
/// `ostree-repo-verity.c`) and records in `.ostree.cfs`. ostree fixes
/// them, whatever a sealroot repository's object algorithm
/// (`crate::repo::RepoConfig::objects`); byte-identity with
/// ostree's image depends on these.
pub fn object_params() -> VerityParams {
    VerityParams::sha256()
}

/// The object's sha256 fs-verity digest: measured when the object has
/// sha256 fs-verity (ostree takes the kernel's word there too: such a file
/// cannot change), else computed from its content, in the same pass that
/// checks the content against the object's name (sha256 of ostree's file
/// header and the content, [`file_header`]), so an object whose bytes are
/// not the commit's is an error, never an image.
fn object_digest(
    repo: &Repo,
    csum: &Checksum,
    info: &FileInfo,
) -> Result<ExternalObject, ImageError> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = repo.open_content(csum)?;
    if let Ok(d) = crate::verity::ioctl::measure(&file) {
        if d.algorithm() == object_params().algorithm {
            return Ok(ExternalObject {
                object: *csum,
                digest: d,
                measured: true,
            });
        }
    }
    let mut checksum = sha2::Sha256::new();
    checksum.update(file_header(
        info.uid,
        info.gid,
        info.mode,
        b"",
        &info.xattrs,
    ));
    let mut merkle = MerkleHasher::new(&object_params());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ImageError::Content {
                    object: *csum,
                    reason: format!("reading it: {e}"),
                });
            }
        };
        checksum.update(&buf[..n]);
        merkle.update(&buf[..n]);
    }
    let actual = Checksum(checksum.finalize().into());
    if actual != *csum {
        return Err(ImageError::Content {
            object: *csum,
            reason: format!(
                "{}: its metadata and content hash to {actual}, not to its name: the object \
                 was altered or planted (run `ostree fsck`)",
                repo.objects().display(csum.loose_path("file")).display()
            ),
        });
    }
    Ok(ExternalObject {
        object: *csum,
        digest: merkle.finish(),
        measured: false,
    })
}

fn dir_stat(meta: &Meta) -> Stat {
    Stat {
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        nlink: 2,
        ..Stat::default()
    }
}

fn tree_err(path: &str) -> impl Fn(tree::Error) -> ImageError + '_ {
    move |cause| ImageError::Tree {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
        cause,
    }
}

fn set_xattrs(
    tree: &mut Tree,
    id: InodeId,
    xattrs: &[(Vec<u8>, Vec<u8>)],
    path: &str,
) -> Result<(), ImageError> {
    for (name, value) in xattrs {
        tree.set_xattr(id, name, value).map_err(tree_err(path))?;
    }
    Ok(())
}
