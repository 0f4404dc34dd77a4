//! ostree's metadata objects, parsed from their GVariant bytes
//! (`src/libostree/ostree-core.h`: `OSTREE_COMMIT_GVARIANT_FORMAT`,
//! `OSTREE_TREE_GVARIANT_FORMAT`, `OSTREE_DIRMETA_GVARIANT_FORMAT`,
//! `OSTREE_FILEMETA_GVARIANT_FORMAT`). Pure functions on bytes: the
//! repository reader ([`super::repo`]) does the I/O.

use std::fmt;
use std::str::FromStr;

use super::gvariant::{self, DictEntry, Type, Value};
use crate::tree::mode;

/// A malformed or unacceptable object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Not the GVariant the object type has (ostree's `src/libostree/ostree-core.h`).
    #[error(transparent)]
    GVariant(#[from] gvariant::Error),
    /// Well-formed, but a value ostree would not write (a checksum's
    /// length, a file name, a mode).
    #[error("{what}: {reason}")]
    Invalid {
        /// The object or field.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// An ostree object checksum (sha256), the name of every object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// The 64 lower-case hex digits ostree names objects with.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn from_bytes(what: &'static str, b: &[u8]) -> Result<Checksum, ObjectError> {
        <[u8; 32]>::try_from(b)
            .map(Checksum)
            .map_err(|_| invalid(what, format!("checksum of {} bytes, expected 32", b.len())))
    }

    /// sha256 of `bytes`: a metadata object's checksum.
    pub fn of(bytes: &[u8]) -> Checksum {
        use sha2::Digest;
        Checksum(sha2::Sha256::digest(bytes).into())
    }

    /// The loose object path below `objects/`: `XX/<62 hex>.<ext>`
    /// (`_ostree_loose_path`).
    pub fn loose_path(&self, ext: &str) -> String {
        let hex = self.to_hex();
        format!("{}/{}.{ext}", &hex[..2], &hex[2..])
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

/// Not 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ostree checksum (64 lower-case hex digits)")]
pub struct ChecksumParseError(pub String);

impl FromStr for Checksum {
    type Err = ChecksumParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ChecksumParseError(s.to_owned());
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Checksum(out))
    }
}

/// Extended attributes as ostree stores them: `a(ayay)`, names as
/// NUL-terminated byte strings.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn xattrs(v: &Value<'_>) -> Result<Xattrs, ObjectError> {
    v.elements()?
        .iter()
        .map(|x| {
            let m = x.members()?;
            let name = m[0].bytes()?;
            // `^&ay` in ostree: a bytestring, NUL-terminated.
            let name = match name.split_last() {
                Some((0, n)) if !n.is_empty() && !n.contains(&0) => n,
                _ => return Err(invalid("xattr", "name is not a NUL-terminated byte string")),
            };
            Ok((name.to_vec(), m[1].bytes()?.to_vec()))
        })
        .collect()
}

/// A file name in a dirtree (`ot_util_filename_validate`): not empty,
/// not `.` or `..`, no `/`.
fn filename(what: &'static str, s: &str) -> Result<String, ObjectError> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') {
        return Err(invalid(what, format!("invalid file name {s:?}")));
    }
    Ok(s.to_owned())
}

/// A commit object: `(a{sv}aya(say)sstayay)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The commit metadata (`a{sv}`), values kept serialised.
    pub metadata: Vec<DictEntry>,
    /// The parent commit, if any.
    pub parent: Option<Checksum>,
    /// The subject line.
    pub subject: String,
    /// The body text.
    pub body: String,
    /// Seconds since the epoch (stored big-endian).
    pub timestamp: u64,
    /// The root directory's dirtree object.
    pub root_tree: Checksum,
    /// The root directory's dirmeta object.
    pub root_meta: Checksum,
}

impl Commit {
    /// Parses a commit object's bytes (untrusted: never panics).
    pub fn parse(data: &[u8]) -> Result<Commit, ObjectError> {
        let ty = Type::parse("(a{sv}aya(say)sstayay)")?;
        let m = Value::new(&ty, data)?.members()?;
        let parent = match m[1].bytes()? {
            [] => None,
            b => Some(Checksum::from_bytes("commit parent", b)?),
        };
        Ok(Commit {
            metadata: gvariant::read_vardict(m[0].data)?,
            parent,
            subject: m[3].str()?.to_owned(),
            body: m[4].str()?.to_owned(),
            timestamp: m[5].be_u64()?,
            root_tree: Checksum::from_bytes("commit root dirtree", m[6].bytes()?)?,
            root_meta: Checksum::from_bytes("commit root dirmeta", m[7].bytes()?)?,
        })
    }

    /// A metadata value that is a byte string (`ay`), e.g.
    /// `ostree.composefs.digest.v0`.
    pub fn metadata_bytes(&self, key: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|e| e.key == key && e.ty == "ay")
            .map(|e| e.value.as_slice())
    }
}

/// A dirtree object: `(a(say)a(sayay))`, the files (name, content
/// checksum) and subdirectories (name, dirtree, dirmeta) of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirTree {
    /// Files: name and content object.
    pub files: Vec<(String, Checksum)>,
    /// Subdirectories: name, dirtree and dirmeta objects.
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

impl DirTree {
    /// Parses a dirtree object's bytes (untrusted: never panics).
    pub fn parse(data: &[u8]) -> Result<DirTree, ObjectError> {
        let ty = Type::parse("(a(say)a(sayay))")?;
        let m = Value::new(&ty, data)?.members()?;
        let files = m[0]
            .elements()?
            .iter()
            .map(|f| {
                let f = f.members()?;
                Ok((
                    filename("dirtree file", f[0].str()?)?,
                    Checksum::from_bytes("dirtree file", f[1].bytes()?)?,
                ))
            })
            .collect::<Result<_, ObjectError>>()?;
        let dirs = m[1]
            .elements()?
            .iter()
            .map(|d| {
                let d = d.members()?;
                Ok((
                    filename("dirtree subdirectory", d[0].str()?)?,
                    Checksum::from_bytes("dirtree subdirectory", d[1].bytes()?)?,
                    Checksum::from_bytes("dirtree subdirectory", d[2].bytes()?)?,
                ))
            })
            .collect::<Result<_, ObjectError>>()?;
        Ok(DirTree { files, dirs })
    }
}

/// Ownership, mode and xattrs: a dirmeta object and the bare-user
/// `user.ostreemeta` xattr share the shape `(uuua(ayay))`, numbers
/// big-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl Meta {
    fn parse(data: &[u8]) -> Result<Meta, ObjectError> {
        let ty = Type::parse("(uuua(ayay))")?;
        let m = Value::new(&ty, data)?.members()?;
        Ok(Meta {
            uid: m[0].be_u32()?,
            gid: m[1].be_u32()?,
            mode: m[2].be_u32()?,
            xattrs: xattrs(&m[3])?,
        })
    }

    /// A dirmeta object; its mode must be a directory's
    /// (`ostree_validate_structureof_dirmeta`).
    pub fn parse_dirmeta(data: &[u8]) -> Result<Meta, ObjectError> {
        let meta = Meta::parse(data)?;
        if meta.mode & mode::S_IFMT != mode::S_IFDIR {
            return Err(invalid(
                "dirmeta",
                format!("mode {:o} is not a directory's", meta.mode),
            ));
        }
        Ok(meta)
    }

    /// The `user.ostreemeta` xattr of a bare-user content object; its mode
    /// must be a regular file's or a symlink's
    /// (`ostree_validate_structureof_file_mode`).
    pub fn parse_filemeta(data: &[u8]) -> Result<Meta, ObjectError> {
        let meta = Meta::parse(data)?;
        check_file_mode(meta.mode)?;
        Ok(meta)
    }
}

/// Content objects are regular files or symlinks, nothing else.
pub fn check_file_mode(m: u32) -> Result<(), ObjectError> {
    match m & mode::S_IFMT {
        mode::S_IFREG | mode::S_IFLNK => Ok(()),
        _ => Err(invalid(
            "content object",
            format!("mode {m:o} is neither a regular file's nor a symlink's"),
        )),
    }
}

/// The bytes a content object's checksum starts with
/// (`_ostree_file_header_new` and `variant_to_lenprefixed_buffer` in
/// `ostree-core.c`): the serialised `(uuuusa(ayay))` header — uid, gid,
/// mode (big-endian), rdev 0, the symlink target (empty for a regular
/// file), the xattrs sorted by name, names NUL-terminated — prefixed by
/// its length (big-endian u32) and 4 zero bytes. The object's checksum is
/// the sha256 of these bytes followed by a regular file's content
/// (`ostree_checksum_file_from_input`).
pub fn file_header(
    uid: u32,
    gid: u32,
    mode: u32,
    symlink: &[u8],
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = xattrs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let elements: Vec<Vec<u8>> = sorted
        .iter()
        .map(|(name, value)| {
            // (ayay): the name with its NUL, the value, the name's end.
            let mut body = name.clone();
            body.push(0);
            let end = body.len();
            body.extend_from_slice(value);
            gvariant::append_offsets(body, &[end])
        })
        .collect();
    let mut body = Vec::new();
    for n in [uid, gid, mode, 0] {
        body.extend_from_slice(&n.to_be_bytes());
    }
    body.extend_from_slice(symlink);
    body.push(0);
    let target_end = body.len();
    body.extend_from_slice(&gvariant::write_variable_array(&elements, 1));
    let header = gvariant::append_offsets(body, &[target_end]);
    let mut out = Vec::with_capacity(header.len() + 8);
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&header);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_parse_and_paths() {
        let hex = "07bab0648769d53291011315ea97ad067874ffdac064337e262f3fddd39b538d";
        let c: Checksum = hex.parse().unwrap();
        assert_eq!(c.to_hex(), hex);
        assert_eq!(
            c.loose_path("file"),
            "07/bab0648769d53291011315ea97ad067874ffdac064337e262f3fddd39b538d.file"
        );
        for bad in [
            "",
            "07",
            &hex.to_uppercase(),
            &format!("{hex}0"),
            &hex.replace('0', "g"),
        ] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad}");
        }
    }

    /// sha256 of the header and the content, as ostree names the object.
    fn content_checksum(header: &[u8], content: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(
            sha2::Sha256::new()
                .chain_update(header)
                .chain_update(content)
                .finalize(),
        )
    }

    #[test]
    fn file_header_gives_ostrees_checksums() {
        // Expected names from Debian bookworm's ostree 2022.7: `ostree
        // init --mode=bare` / `bare-user-only`, `ostree commit` of the
        // files described, `ostree ls -C -X`.
        // "hello\n", 0644, root, no xattrs (bare-user-only repository).
        assert_eq!(
            content_checksum(&file_header(0, 0, 0o100644, b"", &[]), b"hello\n"),
            "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
        );
        // The same with xattrs set in the other order (bare repository):
        // the header sorts them by name.
        let xattrs = vec![
            (b"user.zeta".to_vec(), b"1".to_vec()),
            (b"user.alpha".to_vec(), b"value".to_vec()),
        ];
        assert_eq!(
            content_checksum(&file_header(0, 0, 0o100644, b"", &xattrs), b"hello\n"),
            "c4fd263e2c2c288433a9bc4fb58d716189acf35be0884f02f13d9a3c0b3d2a18"
        );
        // A symlink `l -> ../target`: the target is in the header, no content.
        assert_eq!(
            content_checksum(&file_header(0, 0, 0o120777, b"../target", &[]), b""),
            "420b73367f8f4ce4809a96cdbdb0b4b447cc428f819ffb1ab3000e00e75654cd"
        );
    }

    #[test]
    fn dirmeta_round_trip_through_the_writer_shapes() {
        // (uuua(ayay)): 0, 0, 040755, [("user.a\0", "b")], serialised by
        // hand following the spec: three u32 (BE by ostree), then the
        // array of (ayay) with its framing, as the last member.
        let mut data = Vec::new();
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(&0o40755u32.to_be_bytes());
        // element (ayay): "user.a\0" "b" + framing offset 7 -> 9 bytes
        let elem = [b"user.a\0".as_slice(), b"b", &[7]].concat();
        data.extend_from_slice(&elem);
        data.push(9); // the array's framing offset
        let meta = Meta::parse_dirmeta(&data).unwrap();
        assert_eq!(meta.mode, 0o40755);
        assert_eq!(meta.xattrs, vec![(b"user.a".to_vec(), b"b".to_vec())]);
        assert!(Meta::parse_filemeta(&data).is_err());
    }
}
