//! Normalising tar member names into paths relative to the image root.
//!
//! Tar names are bytes (not necessarily UTF-8) and come from untrusted
//! layers. The rules, chosen to agree with what containerd and umoci produce
//! while refusing what only an attack would contain:
//!
//! - a leading `/` is dropped (`/etc/passwd` is `etc/passwd`), as GNU tar and
//!   containerd do;
//! - empty components and `.` are dropped (`./usr//bin/` is `usr/bin`);
//! - `..` removes the previous component lexically, like Go's
//!   `filepath.Clean` that containerd applies; a `..` that would climb above
//!   the root is **refused** (containerd silently clamps it; a layer that
//!   does this is broken or hostile, and we would rather say so);
//! - NUL bytes, components longer than 255 bytes (`NAME_MAX`, also the
//!   EROFS limit) and paths longer than 4096 bytes (`PATH_MAX`) are refused.
//!
//! Symlinks are not resolved here: that needs the tree, see `oci::apply`.

use std::fmt;

/// Longest file name Linux (and EROFS) accepts.
pub const NAME_MAX: usize = 255;
/// Longest path Linux accepts.
pub const PATH_MAX: usize = 4096;

/// Why a member name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An empty name.
    #[error("the name is empty")]
    Empty,
    /// A NUL byte.
    #[error("the name contains a NUL byte")]
    Nul,
    /// `..` above the root.
    #[error("the name climbs above the image root with '..'")]
    Escapes,
    /// A component longer than NAME_MAX (its length).
    #[error("a component is {0} bytes long; Linux allows at most 255 (NAME_MAX)")]
    ComponentTooLong(usize),
    /// A path longer than PATH_MAX (its length).
    #[error("the name is {0} bytes long; Linux allows at most 4096 (PATH_MAX)")]
    TooLong(usize),
}

/// A normalised path relative to the image root: components separated by
/// single `/`, none empty, `.` or `..`. The root itself is the empty path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntryPath(Vec<u8>);

impl EntryPath {
    /// Normalises a raw tar name.
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        if raw.len() > PATH_MAX {
            return Err(PathError::TooLong(raw.len()));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes);
                    }
                }
                c if c.len() > NAME_MAX => return Err(PathError::ComponentTooLong(c.len())),
                c => parts.push(c),
            }
        }
        Ok(EntryPath(parts.join(&b'/')))
    }

    /// The image root.
    pub fn root() -> Self {
        EntryPath(Vec::new())
    }

    /// The image root itself (no components).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The normalized path, `/`-separated, without a leading `/`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, root first.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Parent path and final name; `None` for the root.
    pub fn split_last(&self) -> Option<(EntryPath, &[u8])> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Some((EntryPath(self.0[..i].to_vec()), &self.0[i + 1..])),
            None => Some((EntryPath::root(), &self.0[..])),
        }
    }

    /// `self/name` (name must be a single valid component).
    pub fn join(&self, name: &[u8]) -> EntryPath {
        let mut v = self.0.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        EntryPath(v)
    }
}

impl fmt::Display for EntryPath {
    /// `/`-rooted, with non-UTF-8 bytes escaped, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryPath({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, PathError> {
        EntryPath::parse(s.as_bytes()).map(|p| String::from_utf8(p.0).unwrap())
    }

    #[test]
    fn normalises() {
        assert_eq!(n("./usr//bin/").unwrap(), "usr/bin");
        assert_eq!(n("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(n("a/b/../c").unwrap(), "a/c");
        assert_eq!(n("./").unwrap(), "");
        assert_eq!(n("/").unwrap(), "");
        assert_eq!(n("a/..").unwrap(), "");
    }

    #[test]
    fn refuses() {
        assert_eq!(n(""), Err(PathError::Empty));
        assert_eq!(n("../etc"), Err(PathError::Escapes));
        assert_eq!(n("a/../../etc"), Err(PathError::Escapes));
        assert_eq!(n("/.."), Err(PathError::Escapes));
        assert_eq!(n("a\0b"), Err(PathError::Nul));
        assert_eq!(n(&"x".repeat(256)), Err(PathError::ComponentTooLong(256)));
        assert!(n(&"x".repeat(255)).is_ok());
        assert_eq!(n(&"a/".repeat(2049)), Err(PathError::TooLong(4098)));
    }

    #[test]
    fn split_and_join() {
        let p = EntryPath::parse(b"a/b/c").unwrap();
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent.as_bytes(), name), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(parent.join(name), p);
        assert_eq!(EntryPath::root().join(b"x").as_bytes(), b"x");
        assert!(EntryPath::root().split_last().is_none());
        assert_eq!(p.components().count(), 3);
        assert_eq!(EntryPath::parse(b"\xff/x").unwrap().to_string(), "/\\xff/x");
    }
}
