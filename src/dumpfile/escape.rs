//! The escaping of composefs-dump(5) fields.
//!
//! Writers escape `\`, newline, carriage return and tab with the C escapes,
//! every byte outside graphic ASCII (`0x21..=0x7e`, C locale `isgraph`) as
//! `\xHH`, `=` too in xattr names and values, and a field that is exactly
//! `-` as `\x2d` (a lone `-` means "not set"). This is what
//! `composefs-info dump` prints (`print_escaped` in `tools/composefs-info.c`).
//! Readers accept `\\`, `\n`, `\r`, `\t` and `\xHH` (either case), nothing
//! else after a backslash.

use std::io::{self, Write};

/// How a field is escaped; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Paths.
    Standard,
    /// Payloads and content: a lone `-` is escaped.
    LoneDash,
    /// Xattr names and values: `=` is escaped.
    Equal,
    /// `composefs-info ls` paths: like `Standard` but spaces stay.
    KeepSpace,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the escaped form of `bytes` to `out`.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8], style: Style) {
    if style == Style::LoneDash && bytes == b"-" {
        out.extend_from_slice(b"\\x2d");
        return;
    }
    for &c in bytes {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if style == Style::Equal => out.extend_from_slice(b"\\x3d"),
            b' ' if style == Style::KeepSpace => out.push(c),
            0x21..=0x7e => out.push(c),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
    }
}

/// Writes the escaped form of `bytes`.
pub fn write_escaped(w: &mut impl Write, bytes: &[u8], style: Style) -> io::Result<()> {
    let mut buf = Vec::with_capacity(bytes.len() + 8);
    escape_into(&mut buf, bytes, style);
    w.write_all(&buf)
}

/// Why a field does not unescape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    /// A `\` ends the field.
    #[error("backslash at the end of a field (escape a backslash as \\\\)")]
    TrailingBackslash,
    /// `\x` with fewer than two characters after it.
    #[error("\\x needs two hex digits")]
    ShortHex,
    /// `\x` followed by something other than two hex digits.
    #[error("invalid hex digits in \\x escape")]
    BadHex,
    /// A `\` before a byte that has no escape meaning.
    #[error("unsupported escape \\{} (use \\\\, \\n, \\r, \\t or \\xHH)", char::from(*.0).escape_default())]
    Unsupported(u8),
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Unescapes a field into `out` (cleared first).
pub fn unescape_into(out: &mut Vec<u8>, field: &[u8]) -> Result<(), UnescapeError> {
    out.clear();
    out.reserve(field.len());
    let mut i = 0;
    while i < field.len() {
        let c = field[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *field.get(i).ok_or(UnescapeError::TrailingBackslash)?;
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                if i + 2 > field.len() {
                    return Err(UnescapeError::ShortHex);
                }
                let (h, l) = (hexval(field[i]), hexval(field[i + 1]));
                i += 2;
                match (h, l) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(UnescapeError::BadHex),
                }
            }
            other => return Err(UnescapeError::Unsupported(other)),
        }
    }
    Ok(())
}

/// Unescapes a field.
pub fn unescape(field: &[u8]) -> Result<Vec<u8>, UnescapeError> {
    let mut out = Vec::new();
    unescape_into(&mut out, field)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(b: &[u8], s: Style) -> String {
        let mut v = Vec::new();
        escape_into(&mut v, b, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_composefs_info() {
        // Expected strings: `composefs-info dump` output for the same bytes
        // (see tests/composefs_conformance.rs for the end-to-end check).
        assert_eq!(
            esc(b"a b\\c\n\r\t\x7f\x00\xff", Style::Standard),
            "a\\x20b\\\\c\\n\\r\\t\\x7f\\x00\\xff"
        );
        assert_eq!(esc(b"k=v", Style::Equal), "k\\x3dv");
        assert_eq!(esc(b"k=v", Style::Standard), "k=v");
        assert_eq!(esc(b"-", Style::LoneDash), "\\x2d");
        assert_eq!(esc(b"-", Style::Standard), "-");
        assert_eq!(esc(b"--", Style::LoneDash), "--");
        assert_eq!(esc(b"a b", Style::KeepSpace), "a b");
    }

    #[test]
    fn unescape_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for style in [Style::Standard, Style::LoneDash, Style::Equal] {
            let mut v = Vec::new();
            escape_into(&mut v, &all, style);
            assert_eq!(unescape(&v).unwrap(), all);
        }
        assert_eq!(
            unescape(b"\\x2D\\X").unwrap_err(),
            UnescapeError::Unsupported(b'X')
        );
        assert_eq!(
            unescape(b"a\\").unwrap_err(),
            UnescapeError::TrailingBackslash
        );
        assert_eq!(unescape(b"\\x4").unwrap_err(), UnescapeError::ShortHex);
        assert_eq!(unescape(b"\\xzz").unwrap_err(), UnescapeError::BadHex);
        assert_eq!(unescape(b"\\x4A\\x4a").unwrap(), b"JJ");
    }
}
