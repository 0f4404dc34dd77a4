//! composefs-dump(5) to [`Tree`].
//!
//! Follows `tree_from_dump_line` in `tools/mkcomposefs.c`: eleven fixed
//! fields (PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST)
//! then `KEY=VALUE` xattrs, all space-separated and escaped; a MODE starting
//! with `@` makes the line a hardlink to the path in PAYLOAD (resolved after
//! the whole file is read, so targets may come later), and the inode is
//! placed at the target's (non-`@`) line, as mkcomposefs places it
//! ([`Tree::pin_primary`]). Where mkcomposefs silently accepts nonsense or
//! writes bytes that do not follow from the line (numbers with signs,
//! leading whitespace or garbage `strtoull` skips, digests that are not 64
//! hex digits, an empty DIGEST on an external file, uid/gid beyond 32
//! bits, nanoseconds beyond 999999999) we reject it with the line number:
//! sealroot gives mkcomposefs' bytes or a refusal, never other bytes. *Strict* mode (mkcomposefs:
//! `CFS_PARSE_STRICT`) also rejects a missing final newline, a non-zero
//! RDEV on a non-device and a symlink whose SIZE is not its target length
//! or that has CONTENT.

use std::collections::HashMap;
use std::io::BufRead;

use super::escape::{UnescapeError, unescape_into};
use crate::tree::{self, FileType, InodeId, NewContent, Stat, Timestamp, Tree};
use crate::verity::{FsVerityDigest, HashAlgorithm};

/// Parser options.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// mkcomposefs' `CFS_PARSE_STRICT` rules (see the module documentation).
    pub strict: bool,
}

/// What is wrong with one line.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("embedded NUL byte at column {0}")]
    EmbeddedNul(usize),
    #[error("missing field {0} (a line has 11 space-separated fields before the xattrs)")]
    MissingField(&'static str),
    #[error("field {field}: {source}")]
    Escape {
        field: &'static str,
        source: UnescapeError,
    },
    #[error("field {field}: invalid {what} {value:?}")]
    Number {
        field: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("empty path")]
    EmptyPath,
    #[error("the first line must be the root directory \"/\"")]
    NoRoot,
    #[error("more than one root line")]
    MultipleRoots,
    #[error("the root must be a directory")]
    RootNotDirectory,
    #[error("parent directory of {0} is missing (directories must come before their contents)")]
    MissingParent(String),
    #[error("hardlink without a target path")]
    HardlinkNoTarget,
    #[error("hardlink target {0} does not exist")]
    HardlinkTargetMissing(String),
    #[error("hardlinks form a cycle through {0}")]
    HardlinkCycle(String),
    #[error("CONTENT is {content} bytes but SIZE says {size}")]
    ContentSize { content: usize, size: u64 },
    #[error("non-zero RDEV on a file that is not a device (strict mode)")]
    RdevOnNonDevice,
    #[error("symlink SIZE {size} differs from the target length {len} (strict mode)")]
    SymlinkSize { size: u64, len: usize },
    #[error("a symlink cannot have CONTENT (strict mode)")]
    SymlinkContent,
    #[error("DIGEST must be 64 hex digits (an fs-verity sha256 digest), got {0:?}")]
    Digest(String),
    #[error(
        "DIGEST is empty or missing on a file stored outside the image; write `-` for no \
         digest or the object's 64-hex fs-verity digest (mkcomposefs 1.0.8 records \
         uninitialized memory as the digest of such a line)"
    )]
    EmptyDigest,
    #[error("xattr {0:?} has no '=' (escape '=' in xattr names as \\x3d)")]
    XattrNoEquals(String),
    #[error("xattrs take {0} bytes on one line; mkcomposefs allows at most 65535")]
    XattrsTooLong(usize),
    #[error("missing newline at the end of the file (strict mode)")]
    MissingNewline,
    #[error("{0}")]
    Tree(#[from] tree::Error),
}

/// A dumpfile that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dumpfile line {line}: {error}")]
    Line { line: usize, error: LineError },
    #[error("reading the dumpfile: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dumpfile is empty: it needs at least the root directory line")]
    Empty,
}

const FIELDS: [&str; 11] = [
    "PATH", "SIZE", "MODE", "NLINK", "UID", "GID", "RDEV", "MTIME", "PAYLOAD", "CONTENT", "DIGEST",
];

/// A hardlink line waiting for the whole file to be read.
struct Pending {
    line: usize,
    parent: InodeId,
    name: Vec<u8>,
    target: Vec<u8>,
}

struct Parser {
    opts: ParseOptions,
    tree: Option<Tree>,
    pending: Vec<Pending>,
    /// The last parent directory looked up: dumpfiles list siblings together.
    last_parent: (Vec<u8>, Option<InodeId>),
    scratch: Vec<u8>,
    lineno: usize,
}

/// Parses a dumpfile from a reader.
pub fn parse(mut input: impl BufRead, opts: ParseOptions) -> Result<Tree, Error> {
    let mut p = Parser {
        opts,
        tree: None,
        pending: Vec::new(),
        last_parent: (Vec::new(), None),
        scratch: Vec::new(),
        lineno: 0,
    };
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        p.lineno = n;
        let text = match line.strip_suffix(b"\n") {
            Some(t) => t,
            None if opts.strict => {
                return Err(Error::Line {
                    line: n,
                    error: LineError::MissingNewline,
                });
            }
            None => &line[..],
        };
        p.line(text)
            .map_err(|error| Error::Line { line: n, error })?;
    }
    p.finish()
}

/// Parses a dumpfile held in memory.
pub fn parse_bytes(input: &[u8], opts: ParseOptions) -> Result<Tree, Error> {
    parse(input, opts)
}

fn split_field<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    match rest.iter().position(|&b| b == b' ') {
        Some(i) => {
            let f = &rest[..i];
            *rest = &rest[i + 1..];
            f
        }
        None => std::mem::take(rest),
    }
}

fn number<T>(
    field: &'static str,
    what: &'static str,
    raw: &[u8],
    radix8: bool,
) -> Result<T, LineError>
where
    T: TryFrom<u64>,
{
    let bad = || LineError::Number {
        field,
        what,
        value: String::from_utf8_lossy(raw).into_owned(),
    };
    if raw.is_empty() || !raw.iter().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let s = std::str::from_utf8(raw).map_err(|_| bad())?;
    let v = u64::from_str_radix(s, if radix8 { 8 } else { 10 }).map_err(|_| bad())?;
    T::try_from(v).map_err(|_| bad())
}

fn mtime(raw: &[u8]) -> Result<Timestamp, LineError> {
    let bad = || LineError::Number {
        field: "MTIME",
        what: "time (SECONDS.NANOSECONDS)",
        value: String::from_utf8_lossy(raw).into_owned(),
    };
    let dot = raw.iter().position(|&b| b == b'.').ok_or_else(bad)?;
    let (sec, nsec) = (&raw[..dot], &raw[dot + 1..]);
    let digits = sec.strip_prefix(b"-").unwrap_or(sec);
    if digits.is_empty() || !digits.iter().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let sec: i64 = std::str::from_utf8(sec)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let nsec: u32 = number("MTIME", "nanoseconds", nsec, false).map_err(|_| bad())?;
    if nsec >= 1_000_000_000 {
        return Err(bad());
    }
    Ok(Timestamp { sec, nsec })
}

/// The directory and name of the entry `path` names, if its directory
/// exists (trailing slashes ignored, as [`Tree::lookup_path`] does).
fn entry_of<'p>(tree: &Tree, path: &'p [u8]) -> Option<(InodeId, &'p [u8])> {
    let mut p = path;
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    let (dir, name) = split_path(p);
    Some((tree.lookup_path(dir)?, name))
}

/// `(directory, name)` of a path, ignoring leading slashes.
fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    let mut p = path;
    while let Some(rest) = p.strip_prefix(b"/") {
        p = rest;
    }
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&b""[..], p),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Parser {
    fn unescape(&mut self, field: &'static str, raw: &[u8]) -> Result<Vec<u8>, LineError> {
        unescape_into(&mut self.scratch, raw)
            .map_err(|source| LineError::Escape { field, source })?;
        Ok(self.scratch.clone())
    }

    fn optional(&mut self, field: &'static str, raw: &[u8]) -> Result<Option<Vec<u8>>, LineError> {
        if raw == b"-" {
            Ok(None)
        } else {
            self.unescape(field, raw).map(Some)
        }
    }

    /// The parent directory of `path` and the entry name.
    fn parent_of(&mut self, path: &[u8]) -> Result<(InodeId, Vec<u8>), LineError> {
        let tree = self.tree.as_ref().ok_or(LineError::NoRoot)?;
        let (dir, name) = split_path(path);
        let parent = if self.last_parent.1.is_some() && self.last_parent.0 == dir {
            self.last_parent.1
        } else {
            let found = tree.lookup_path(dir);
            self.last_parent = (dir.to_vec(), found);
            found
        };
        let parent = parent.ok_or_else(|| LineError::MissingParent(lossy(path)))?;
        if !tree.is_dir(parent) {
            return Err(tree::Error::NotADirectory { path: lossy(dir) }.into());
        }
        Ok((parent, name.to_vec()))
    }

    fn line(&mut self, line: &[u8]) -> Result<(), LineError> {
        if let Some(i) = line.iter().position(|&b| b == 0) {
            return Err(LineError::EmbeddedNul(i));
        }
        let mut rest = line;
        let mut f: [&[u8]; 11] = [&[]; 11];
        for (i, slot) in f.iter_mut().enumerate() {
            // Like mkcomposefs, missing trailing PAYLOAD/CONTENT/DIGEST
            // fields read as empty strings.
            if rest.is_empty() && (1..8).contains(&i) {
                return Err(LineError::MissingField(FIELDS[i]));
            }
            *slot = split_field(&mut rest);
        }
        let path = self.unescape("PATH", f[0])?;
        if path.is_empty() {
            return Err(LineError::EmptyPath);
        }
        let (is_hardlink, mode_raw) = match f[2].strip_prefix(b"@") {
            Some(m) => (true, m),
            None => (false, f[2]),
        };
        let st_mode: u32 = number("MODE", "octal mode", mode_raw, true)?;
        let ft = FileType::from_mode(st_mode).ok_or(tree::Error::InvalidMode { mode: st_mode })?;

        if is_hardlink {
            if ft == FileType::Directory {
                return Err(tree::Error::DirectoryHardlink { path: lossy(&path) }.into());
            }
            let target = self
                .optional("PAYLOAD", f[8])?
                .ok_or(LineError::HardlinkNoTarget)?;
            let (parent, name) = self.parent_of(&path)?;
            let tree = self.tree.as_mut().ok_or(LineError::NoRoot)?;
            // A stand-in until `finish` links the name to its target: a
            // plain file, whatever the line's mode (a symlink inode without
            // a target would not validate; the target may be a symlink).
            let stat = Stat {
                mode: crate::tree::mode::S_IFREG | (st_mode & 0o7777),
                ..Stat::default()
            };
            let placeholder = tree.add_inode(stat, NewContent::None)?;
            tree.link(parent, &name, placeholder).map_err(|e| match e {
                tree::Error::Exists { .. } => tree::Error::Exists { path: lossy(&path) },
                e => e,
            })?;
            self.pending.push(Pending {
                line: self.lineno,
                parent,
                name,
                target,
            });
            return Ok(());
        }

        let size: u64 = number("SIZE", "size", f[1], false)?;
        let nlink: u32 = number("NLINK", "link count", f[3], false)?;
        let uid: u32 = number("UID", "uid", f[4], false)?;
        let gid: u32 = number("GID", "gid", f[5], false)?;
        let mut rdev: u64 = number("RDEV", "device number", f[6], false)?;
        let mtime = mtime(f[7])?;
        let payload = self.optional("PAYLOAD", f[8])?;
        let content = self.optional("CONTENT", f[9])?;
        let mut empty_digest = false;
        let digest = match self.optional("DIGEST", f[10])? {
            None => None,
            Some(hex) if hex.is_empty() => {
                empty_digest = true;
                None
            }
            Some(hex) => Some(
                std::str::from_utf8(&hex)
                    .ok()
                    .filter(|s| s.len() == 64)
                    .and_then(|s| FsVerityDigest::from_hex(HashAlgorithm::Sha256, s).ok())
                    .ok_or_else(|| LineError::Digest(lossy(&hex)))?,
            ),
        };
        if let Some(c) = &content {
            if c.len() as u64 != size {
                return Err(LineError::ContentSize {
                    content: c.len(),
                    size,
                });
            }
        }
        if !matches!(ft, FileType::CharDevice | FileType::BlockDevice) && rdev != 0 {
            if self.opts.strict {
                return Err(LineError::RdevOnNonDevice);
            }
            rdev = 0;
        }
        let new = match ft {
            FileType::Directory => NewContent::Directory,
            FileType::Symlink => {
                let target = payload.as_deref().unwrap_or_default();
                if self.opts.strict {
                    if size != target.len() as u64 {
                        return Err(LineError::SymlinkSize {
                            size,
                            len: target.len(),
                        });
                    }
                    if content.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(LineError::SymlinkContent);
                    }
                }
                NewContent::Symlink(target)
            }
            FileType::Regular => match &content {
                Some(c) if !c.is_empty() => NewContent::Inline(c),
                // mkcomposefs hex-decodes an empty DIGEST into an
                // uninitialized buffer (`digest_to_raw` writes nothing) and
                // records that buffer as the object's digest; the image
                // would differ from ours, so refuse.
                _ if size > 0 && empty_digest => return Err(LineError::EmptyDigest),
                _ if payload.is_some() || digest.is_some() => NewContent::External {
                    payload: payload.as_deref(),
                    digest,
                },
                _ => NewContent::None,
            },
            _ => NewContent::None,
        };
        let stat = Stat {
            mode: st_mode,
            uid,
            gid,
            nlink,
            rdev,
            size,
            mtime,
        };
        let remaining = rest.len();
        if remaining > u16::MAX as usize {
            return Err(LineError::XattrsTooLong(remaining));
        }

        let is_root = path == b"/";
        let id = if is_root {
            if self.tree.is_some() {
                return Err(LineError::MultipleRoots);
            }
            if ft != FileType::Directory {
                return Err(LineError::RootNotDirectory);
            }
            let t = Tree::new(stat)?;
            let root = t.root();
            self.tree = Some(t);
            root
        } else {
            let (parent, name) = self.parent_of(&path)?;
            let tree = self.tree.as_mut().ok_or(LineError::NoRoot)?;
            let id = tree.add_inode(stat, new)?;
            tree.link(parent, &name, id).map_err(|e| match e {
                tree::Error::Exists { .. } => tree::Error::Exists { path: lossy(&path) },
                e => e,
            })?;
            id
        };

        while !rest.is_empty() {
            let x = split_field(&mut rest);
            let eq = x
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| LineError::XattrNoEquals(lossy(x)))?;
            let name = self.unescape("xattr name", &x[..eq])?;
            let value = self.unescape("xattr value", &x[eq + 1..])?;
            let tree = self.tree.as_mut().ok_or(LineError::NoRoot)?;
            tree.set_xattr(id, &name, &value)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Tree, Error> {
        let mut tree = self.tree.take().ok_or(Error::Empty)?;
        let err = |line, error| Error::Line { line, error };
        // The `@` lines by their entry, to follow chains of links to links
        // to the non-`@` line (libcomposefs `follow_links`).
        let at_lines: HashMap<(InodeId, &[u8]), usize> = self
            .pending
            .iter()
            .enumerate()
            .map(|(j, p)| ((p.parent, &p.name[..]), j))
            .collect();
        // Resolve in reverse order of appearance, as mkcomposefs does, so
        // the same error wins when several lines are wrong.
        for i in (0..self.pending.len()).rev() {
            let p = &self.pending[i];
            let own = tree.lookup(p.parent, &p.name);
            let mut target_path = &p.target[..];
            let mut steps = 0;
            let (target, entry) = loop {
                let t = tree.lookup_path(target_path).ok_or_else(|| {
                    err(p.line, LineError::HardlinkTargetMissing(lossy(target_path)))
                })?;
                if steps == 0 && Some(t) == own {
                    return Err(err(
                        p.line,
                        tree::Error::SelfHardlink {
                            path: lossy(&p.target),
                        }
                        .into(),
                    ));
                }
                let entry = entry_of(&tree, target_path);
                match entry.and_then(|(dir, name)| at_lines.get(&(dir, name))) {
                    Some(&j) => {
                        steps += 1;
                        if steps > self.pending.len() {
                            return Err(err(p.line, LineError::HardlinkCycle(lossy(&p.target))));
                        }
                        target_path = &self.pending[j].target;
                    }
                    None => break (t, entry),
                }
            };
            if tree.is_dir(target) {
                return Err(err(
                    p.line,
                    tree::Error::DirectoryHardlink {
                        path: lossy(&p.target),
                    }
                    .into(),
                ));
            }
            tree.retarget(p.parent, &p.name, target);
            // mkcomposefs places the inode at its non-`@` line, wherever
            // that is in depth-first order.
            let (dir, name) = entry
                .ok_or_else(|| err(p.line, LineError::HardlinkTargetMissing(lossy(target_path))))?;
            tree.pin_primary(dir, name)
                .map_err(|e| err(p.line, e.into()))?;
        }
        Ok(tree)
    }
}
