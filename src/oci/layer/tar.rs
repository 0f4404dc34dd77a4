//! Tar framing with bounded memory.
//!
//! Header *fields* are decoded by the `tar` crate's [`tar::Header`] (octal and
//! base-256 numbers, ustar prefix, device numbers). The *framing* — which
//! blocks are headers, extension bodies or data — is done here, because the
//! crate's `Entries` iterator reads GNU long names and PAX headers into
//! memory without any size limit, so a layer declaring a 100 GiB PAX header
//! (a few bytes of zstd) would exhaust memory. Here:
//!
//! - PAX (`x`) and GNU long name/link (`L`/`K`) bodies are capped at 1 MiB,
//!   the limit Go's `archive/tar` uses (`maxSpecialFileSize`);
//! - PAX global headers (`g`) are skipped unread, as containerd does;
//! - two extension headers of one kind for one member are refused;
//! - header-only types (hard/symbolic links, devices, directories, fifos)
//!   carry no data whatever their size field says, exactly like Go's
//!   `archive/tar` (`isHeaderOnlyType`), which containerd and podman use:
//!   reading such an archive any other way would build a different tree
//!   than the runtime that normally consumes it;
//! - both unsigned and signed header checksums are accepted (as Go does);
//! - sparse members (`S`, `GNU.sparse.*`) and multi-volume members are
//!   refused: no image builder writes them.

use std::io::{self, Read};

use super::pax;

/// Largest PAX or GNU long-name body we read.
pub const MAX_EXTENSION_SIZE: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// A framing or header-field error.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading the stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Bytes that are not a tar member the reader accepts.
    #[error("at byte {offset} of the tar stream: {reason}")]
    Malformed {
        /// Where in the uncompressed stream.
        offset: u64,
        /// Why.
        reason: String,
    },
}

/// One tar member after its extension headers were merged in.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// Offset of the member's (first extension) header in the stream.
    pub header_offset: u64,
    /// Offset of the data.
    pub data_offset: u64,
    /// The header's typeflag (`0` file, `5` directory, `2` symlink, ...).
    pub typeflag: u8,
    /// PAX `path`, else GNU long name, else the header name (with ustar prefix).
    pub name: Vec<u8>,
    /// PAX `linkpath`, else GNU long link, else the header link name.
    pub link: Vec<u8>,
    /// Data bytes that follow (0 for header-only types).
    pub size: u64,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner (PAX `uid` or the header's).
    pub uid: u64,
    /// Group (PAX `gid` or the header's).
    pub gid: u64,
    /// Modification time: seconds and nanoseconds (PAX `mtime` keeps the
    /// fraction).
    pub mtime: (i64, u32),
    /// Major and minor of a device node.
    pub device: Option<(u32, u32)>,
    /// `(name, value)` from `SCHILY.xattr.*`.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads tar members one at a time from a stream.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    pos: u64,
    data_left: u64,
    pad_left: u64,
    ended: bool,
}

impl<R: Read> TarReader<R> {
    /// A reader at the start of the (uncompressed) stream `inner`.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            data_left: 0,
            pad_left: 0,
            ended: false,
        }
    }

    /// Bytes consumed from the underlying stream so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The underlying stream, wherever the reader stopped.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> TarError {
        TarError::Malformed {
            offset,
            reason: reason.into(),
        }
    }

    /// Reads until `buf` is full or EOF; returns the count.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = self.read_full(&mut buf[..want])?;
            if got == 0 {
                return Err(self.malformed(self.pos, "the stream ends inside a member's data"));
            }
            n -= got as u64;
        }
        Ok(())
    }

    fn padding(size: u64) -> u64 {
        (BLOCK - size % BLOCK) % BLOCK
    }

    /// Reads an extension body of `size` bytes (capped) plus its padding.
    fn read_extension(&mut self, offset: u64, what: &str, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENSION_SIZE {
            return Err(self.malformed(
                offset,
                format!(
                    "{what} header of {size} bytes exceeds the {MAX_EXTENSION_SIZE}-byte limit"
                ),
            ));
        }
        let mut body = vec![0u8; size as usize];
        if self.read_full(&mut body)? != body.len() {
            return Err(self.malformed(offset, format!("the stream ends inside a {what} header")));
        }
        self.skip(Self::padding(size))?;
        Ok(body)
    }

    /// The next member, or `None` at the end-of-archive marker (or at a clean
    /// EOF on a block boundary, which Go's reader also accepts). Unread data
    /// of the previous member is skipped first.
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.data_left + self.pad_left)?;
        self.data_left = 0;
        self.pad_left = 0;

        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut first_offset: Option<u64> = None;
        loop {
            let offset = self.pos;
            let mut block = [0u8; BLOCK as usize];
            let n = self.read_full(&mut block)?;
            let pending = pax.is_some() || long_name.is_some() || long_link.is_some();
            if n == 0 || block.iter().all(|&b| b == 0) {
                if pending {
                    return Err(self.malformed(
                        offset,
                        "an extension header is not followed by the member it describes",
                    ));
                }
                if n != 0 && n != BLOCK as usize {
                    return Err(self.malformed(offset, "the stream ends inside a header"));
                }
                self.ended = true;
                return Ok(None);
            }
            if n != BLOCK as usize {
                return Err(self.malformed(offset, "the stream ends inside a header"));
            }
            first_offset.get_or_insert(offset);
            let header = tar::Header::from_byte_slice(&block);
            check_checksum(&block).map_err(|r| self.malformed(offset, r))?;
            let typeflag = block[156];
            let size = numeric(&block[124..136])
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| self.malformed(offset, "bad size field"))?;
            match typeflag {
                b'x' | b'X' => {
                    if pax.is_some() {
                        return Err(self.malformed(offset, "two PAX headers for one member"));
                    }
                    pax = Some(self.read_extension(offset, "PAX extended", size)?);
                }
                b'g' => self.skip(size + Self::padding(size))?,
                b'L' => {
                    if long_name.is_some() {
                        return Err(
                            self.malformed(offset, "two GNU long-name headers for one member")
                        );
                    }
                    long_name = Some(cstr(self.read_extension(offset, "GNU long-name", size)?));
                }
                b'K' => {
                    if long_link.is_some() {
                        return Err(
                            self.malformed(offset, "two GNU long-link headers for one member")
                        );
                    }
                    long_link = Some(cstr(self.read_extension(offset, "GNU long-link", size)?));
                }
                _ => {
                    let first = first_offset.unwrap_or(offset);
                    return self
                        .member(first, header, typeflag, size, pax, long_name, long_link)
                        .map(Some);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn member(
        &mut self,
        offset: u64,
        header: &tar::Header,
        typeflag: u8,
        mut size: u64,
        pax: Option<Vec<u8>>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<RawEntry, TarError> {
        let block = header.as_bytes();
        let field = |what: &str, range: std::ops::Range<usize>| {
            numeric(&block[range]).ok_or_else(|| TarError::Malformed {
                offset,
                reason: format!("bad {what} field"),
            })
        };
        let mut name = long_name.unwrap_or_else(|| header.path_bytes().into_owned());
        let mut link = long_link.unwrap_or_else(|| {
            header
                .link_name_bytes()
                .map(|c| c.into_owned())
                .unwrap_or_default()
        });
        let mode = u32::try_from(field("mode", 100..108)?)
            .map_err(|_| self.malformed(offset, "bad mode field"))?;
        let nonneg = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| self.malformed(offset, format!("negative {what}")))
        };
        let mut uid = nonneg(field("uid", 108..116)?, "uid")?;
        let mut gid = nonneg(field("gid", 116..124)?, "gid")?;
        let mut mtime = (field("mtime", 136..148)?, 0u32);
        // ustar and GNU headers carry device numbers at 329..345; v7 headers
        // end at 257 and have none.
        let has_magic = &block[257..262] == b"ustar";
        let device = if has_magic {
            let major = u32::try_from(field("device major", 329..337)?);
            let minor = u32::try_from(field("device minor", 337..345)?);
            match (major, minor) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ if matches!(typeflag, b'3' | b'4') => {
                    return Err(self.malformed(offset, "device number out of range"));
                }
                _ => None,
            }
        } else {
            None
        };

        let mut xattrs = Vec::new();
        if let Some(body) = &pax {
            for rec in pax::records(body) {
                let (key, value) = rec.map_err(|e| self.malformed(offset, e.to_string()))?;
                let bad = |what: &str| TarError::Malformed {
                    offset,
                    reason: format!(
                        "PAX record {} has an invalid {what} value {:?}",
                        key.escape_ascii(),
                        value.escape_ascii().to_string()
                    ),
                };
                match key {
                    b"path" => name = value.to_vec(),
                    b"linkpath" => link = value.to_vec(),
                    b"size" => size = pax::parse_u64(value).ok_or_else(|| bad("size"))?,
                    b"uid" => uid = pax::parse_u64(value).ok_or_else(|| bad("uid"))?,
                    b"gid" => gid = pax::parse_u64(value).ok_or_else(|| bad("gid"))?,
                    b"mtime" => mtime = pax::parse_time(value).ok_or_else(|| bad("mtime"))?,
                    k if k.starts_with(b"SCHILY.xattr.") => {
                        xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), value.to_vec()));
                    }
                    k if k.starts_with(b"GNU.sparse.") => {
                        return Err(
                            self.malformed(offset, "sparse files are not supported in layers")
                        );
                    }
                    // atime, ctime, uname, gname, comment, charset, hdrcharset,
                    // SCHILY.acl.*, ...: POSIX says unknown keywords are ignored,
                    // and none of these end up in a composefs image.
                    // LIBARCHIVE.xattr.* too: Go's archive/tar users (containerd,
                    // containers/storage, umoci) and composefs-rs (tar-core) read
                    // xattrs from SCHILY.xattr.* only, which libarchive also
                    // writes for every xattr.
                    _ => {}
                }
            }
        }

        // Old (v7) tar marks directories by a trailing slash on a regular
        // file ('\0' type), as Go's reader interprets it.
        let typeflag = match typeflag {
            0 if name.ends_with(b"/") => b'5',
            0 | b'7' => b'0',
            t => t,
        };
        let data = match typeflag {
            b'0' => size,
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            b'S' => return Err(self.malformed(offset, "sparse files are not supported in layers")),
            b'M' | b'V' | b'N' => {
                return Err(self.malformed(
                    offset,
                    format!(
                        "GNU multi-volume/volume/old long-name member type '{}' is not supported",
                        typeflag as char
                    ),
                ));
            }
            t => {
                return Err(self.malformed(
                    offset,
                    format!(
                        "unknown member type {:?}",
                        (t as char).escape_default().to_string()
                    ),
                ));
            }
        };
        self.data_left = data;
        self.pad_left = Self::padding(data);
        Ok(RawEntry {
            header_offset: offset,
            data_offset: self.pos,
            typeflag,
            name,
            link,
            size: data,
            mode,
            uid,
            gid,
            mtime,
            device,
            xattrs,
        })
    }

    /// Reads the current member's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.data_left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside a member's data",
            ));
        }
        self.pos += n as u64;
        self.data_left -= n as u64;
        Ok(n)
    }

    /// Data bytes of the current member not read yet.
    pub fn data_left(&self) -> u64 {
        self.data_left
    }
}

/// A numeric header field the way Go's `archive/tar` reads it
/// (`reader.go`, `parseNumeric`): base-256 when the top bit of the first
/// byte is set (two's complement, so negative times work), otherwise octal
/// surrounded by optional spaces and NULs, an empty field meaning 0.
fn numeric(field: &[u8]) -> Option<i64> {
    if let Some(&first) = field.first().filter(|&&b| b & 0x80 != 0) {
        let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let mut c = b ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None; // would overflow 64 bits
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        let x = x as i64;
        return Some(if inv == 0xff { !x } else { x });
    }
    let trimmed: &[u8] = {
        let f = |b: &u8| *b != b' ' && *b != 0;
        match (field.iter().position(f), field.iter().rposition(f)) {
            (Some(a), Some(b)) => &field[a..=b],
            _ => return Some(0),
        }
    };
    if !trimmed.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    i64::from_str_radix(std::str::from_utf8(trimmed).ok()?, 8).ok()
}

/// The header checksum (POSIX ustar `chksum`): the sum of all header bytes
/// with the checksum field read as spaces. Historic writers summed signed
/// chars; both are accepted.
fn check_checksum(block: &[u8; 512]) -> Result<(), String> {
    let field = &block[148..156];
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| i64::from_str_radix(s, 8).ok())
        .ok_or_else(|| "the header checksum field is not an octal number".to_owned())?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored == signed {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored:o}, computed {unsigned:o}): not a tar \
             stream, or corrupted"
        ))
    }
}

/// A GNU long name/link body is NUL-terminated.
fn cstr(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(i) = v.iter().position(|&b| b == 0) {
        v.truncate(i);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(data: &[u8]) -> Result<Vec<(RawEntry, Vec<u8>)>, TarError> {
        let mut r = TarReader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut content = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = r.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                content.extend_from_slice(&buf[..n]);
            }
            out.push((e, content));
        }
        Ok(out)
    }

    fn builder() -> tar::Builder<Vec<u8>> {
        tar::Builder::new(Vec::new())
    }

    fn file_header(size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    #[test]
    fn long_names_and_pax_records() {
        let mut b = builder();
        let long = format!("{}/file", "d".repeat(200));
        b.append_data(&mut file_header(3), &long, &b"abc"[..])
            .unwrap();
        b.append_pax_extensions([
            ("path", &b"pax/name"[..]),
            ("mtime", b"1700000000.25"),
            ("SCHILY.xattr.user.bin", b"\n\x00\n"),
            ("LIBARCHIVE.xattr.user.a%3Db", b"aGk"),
            ("uid", b"4294967295"),
        ])
        .unwrap();
        b.append_data(&mut file_header(1), "short", &b"x"[..])
            .unwrap();
        let data = b.into_inner().unwrap();
        let es = entries(&data).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].0.name, long.as_bytes());
        assert_eq!(es[0].1, b"abc");
        let e = &es[1].0;
        assert_eq!(e.name, b"pax/name");
        assert_eq!(e.mtime, (1700000000, 250_000_000));
        assert_eq!(e.uid, 4294967295);
        assert_eq!(e.xattrs[0], (b"user.bin".to_vec(), b"\n\x00\n".to_vec()));
        // LIBARCHIVE.xattr.* is ignored, as containerd and composefs-rs do.
        assert_eq!(e.xattrs.len(), 1);
        assert_eq!(es[1].1, b"x");
    }

    #[test]
    fn giant_pax_header_is_refused_without_reading_it() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(100 << 30);
        h.set_path("pax").unwrap();
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[b'9'; 4096]);
        let e = entries(&data).unwrap_err().to_string();
        assert!(e.contains("exceeds the 1048576-byte limit"), "{e}");
    }

    #[test]
    fn header_only_types_carry_no_data() {
        // A symlink whose size field claims 512 bytes: the next header follows
        // immediately, as in Go's archive/tar.
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path("l").unwrap();
        h.set_link_name("t").unwrap();
        h.set_size(512);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        let mut b = builder();
        b.append_data(&mut file_header(2), "f", &b"hi"[..]).unwrap();
        data.extend(b.into_inner().unwrap());
        let es = entries(&data).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].0.link, b"t");
        assert_eq!(es[1].1, b"hi");
    }

    #[test]
    fn corrupt_and_truncated_streams() {
        let mut b = builder();
        b.append_data(&mut file_header(600), "f", &[1u8; 600][..])
            .unwrap();
        let data = b.into_inner().unwrap();
        let mut bad = data.clone();
        bad[0] ^= 1;
        assert!(entries(&bad).unwrap_err().to_string().contains("checksum"));
        let e = entries(&data[..700]).unwrap_err().to_string();
        assert!(e.contains("ends inside"), "{e}");
        let e = entries(&data[..100]).unwrap_err().to_string();
        assert!(e.contains("ends inside a header"), "{e}");
        // Clean EOF at a block boundary after a complete member is accepted.
        assert_eq!(entries(&data[..512 + 1024]).unwrap().len(), 1);
    }

    #[test]
    fn dangling_extension_header() {
        let mut b = builder();
        b.append_pax_extensions([("path", &b"x"[..])]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(
            entries(&data)
                .unwrap_err()
                .to_string()
                .contains("not followed")
        );
    }

    #[test]
    fn sparse_refused() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_path("s").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend([0u8; 1024]);
        assert!(entries(&data).unwrap_err().to_string().contains("sparse"));
    }
}

#[cfg(test)]
mod numeric_tests {
    use super::numeric;

    #[test]
    fn go_compatible_numbers() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"  644 \0"), Some(0o644));
        assert_eq!(numeric(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(numeric(b"12x"), None);
        // base-256 positive and negative (GNU tar writes -1 as all 0xff).
        assert_eq!(
            numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(numeric(&[0xff; 12]), Some(-1));
        assert_eq!(
            numeric(&[
                0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]),
            None
        );
    }
}
