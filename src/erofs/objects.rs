//! The content objects a composefs EROFS references, and the one fs-verity
//! algorithm they use.
//!
//! A composefs image names each external file's backing object by the
//! digest it records in `trusted.overlay.metacopy` (36 bytes for sha256,
//! 68 for sha512: fs/overlayfs/util.c, `ovl_get_verity_xattr()`), and
//! overlayfs `verity=require` compares that digest, algorithm included,
//! with the object's measured fs-verity digest at open
//! (`ovl_validate_verity()`). So the algorithm a booted image needs for its
//! objects is written in the image itself: once the EROFS is verified
//! (signed, measured), this is the trusted answer to "which fs-verity
//! algorithm, and which object names", whatever a repository's JSON hints
//! claim. sealroot-prepare uses it for the first-boot enabling of a
//! sealroot repository (`prepare::objects`); a composefs-rs repository
//! (whose `meta.json` is just as attacker-writable) can use it the same
//! way.
//!
//! An image mixing algorithms is refused: no repository writes one, and
//! its objects could not all live in one object store.

use crate::tree::{Content, Tree};
use crate::verity::{FsVerityDigest, HashAlgorithm, VerityParams};

use super::reader::{ReadError, read_tree};

/// Why an image's objects cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The image does not parse.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Two files record digests of different algorithms.
    #[error(
        "the image records {first} object digests and a {other} one (at {path}): a composefs \
         image uses one fs-verity algorithm for all its objects; it was not written by \
         sealroot or composefs-rs"
    )]
    Mixed {
        /// The algorithm of the first file found.
        first: HashAlgorithm,
        /// The other one.
        other: HashAlgorithm,
        /// The file recording it.
        path: String,
    },
    /// An external file without a digest: overlayfs `verity=require`
    /// would refuse it, and its object cannot be named.
    #[error(
        "{path} is stored outside the image without an fs-verity digest \
         (trusted.overlay.metacopy): overlayfs verity=require refuses such a file"
    )]
    NoDigest {
        /// The file.
        path: String,
    },
}

/// The objects of one image: their digests (sorted, each once) and
/// algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageObjects {
    algorithm: Option<HashAlgorithm>,
    digests: Vec<FsVerityDigest>,
}

impl ImageObjects {
    /// Reads the objects of the composefs EROFS `erofs` (untrusted bytes
    /// are fine: the reader refuses malformed images; only a *verified*
    /// image's answer is trusted).
    pub fn read(erofs: &[u8]) -> Result<Self, ObjectsError> {
        Self::of_tree(&read_tree(erofs)?)
    }

    /// The objects `tree` references.
    pub fn of_tree(tree: &Tree) -> Result<Self, ObjectsError> {
        let mut algorithm: Option<HashAlgorithm> = None;
        let mut digests = Vec::new();
        let mut error = None;
        let _ = crate::dumpfile::print::walk(tree, |path, id, is_link| {
            if is_link {
                return Ok(());
            }
            let Content::External { digest, .. } = tree.content(id) else {
                return Ok(());
            };
            let path = || String::from_utf8_lossy(path).into_owned();
            let Some(d) = digest else {
                error = Some(ObjectsError::NoDigest { path: path() });
                return Err(std::io::ErrorKind::InvalidData.into());
            };
            match algorithm {
                None => algorithm = Some(d.algorithm()),
                Some(first) if first != d.algorithm() => {
                    error = Some(ObjectsError::Mixed {
                        first,
                        other: d.algorithm(),
                        path: path(),
                    });
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                Some(_) => {}
            }
            digests.push(d);
            Ok(())
        });
        if let Some(e) = error {
            return Err(e);
        }
        digests.sort_unstable();
        digests.dedup();
        Ok(ImageObjects { algorithm, digests })
    }

    /// The objects' hash algorithm; `None` when the image has no external
    /// file.
    pub fn algorithm(&self) -> Option<HashAlgorithm> {
        self.algorithm
    }

    /// The parameters to enable fs-verity on the objects with: the
    /// recorded algorithm, 4096-byte blocks and no salt (the composefs
    /// repository convention of C composefs and composefs-rs; the
    /// metacopy xattr records no block size, and an object hashed with
    /// another would measure a different digest).
    pub fn params(&self) -> Option<VerityParams> {
        self.algorithm.map(VerityParams::with_algorithm)
    }

    /// Every object's digest, sorted, each once.
    pub fn digests(&self) -> &[FsVerityDigest] {
        &self.digests
    }
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use super::*;
    use crate::tree::{NewContent, Stat, mode};
    use crate::verity::digest::digest_bytes;

    fn stat(m: u32) -> Stat {
        Stat {
            mode: m,
            nlink: 1,
            size: 100_000,
            ..Stat::default()
        }
    }

    /// A tree with external files whose digests are of `algs` (in order;
    /// the first two have the same content, so one object).
    fn image(algs: &[HashAlgorithm]) -> Vec<u8> {
        let mut t = Tree::new(stat(mode::S_IFDIR | 0o755)).unwrap();
        for (i, alg) in algs.iter().enumerate() {
            let content = format!("content {}", i.max(1));
            let d = digest_bytes(&VerityParams::with_algorithm(*alg), content.as_bytes());
            let hex = d.to_hex();
            let payload = format!("{}/{}", &hex[..2], &hex[2..]);
            let f = t
                .add_inode(
                    stat(mode::S_IFREG | 0o644),
                    NewContent::External {
                        payload: Some(payload.as_bytes()),
                        digest: Some(d),
                    },
                )
                .unwrap();
            t.link(t.root(), format!("f{i}").as_bytes(), f).unwrap();
        }
        crate::erofs::image_bytes(&t, &crate::erofs::WriteOptions::default()).unwrap()
    }

    #[test]
    fn the_image_says_which_algorithm_and_which_objects() {
        for alg in HashAlgorithm::ALL {
            let o = ImageObjects::read(&image(&[alg, alg, alg])).unwrap();
            assert_eq!(o.algorithm(), Some(alg));
            assert_eq!(o.params(), Some(VerityParams::with_algorithm(alg)));
            let want: Vec<FsVerityDigest> = ["content 1", "content 2"]
                .iter()
                .map(|c| digest_bytes(&VerityParams::with_algorithm(alg), c.as_bytes()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(o.digests(), want.as_slice());
        }
        let none = ImageObjects::read(&image(&[])).unwrap();
        assert_eq!((none.algorithm(), none.params()), (None, None));
        assert!(none.digests().is_empty());
    }

    #[test]
    fn an_image_mixing_algorithms_is_refused() {
        let e = ImageObjects::read(&image(&[HashAlgorithm::Sha256, HashAlgorithm::Sha512]))
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ObjectsError::Mixed {
                    first: HashAlgorithm::Sha256,
                    other: HashAlgorithm::Sha512,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/f1"), "{e}");
    }
}
