//! PAX extended header records (POSIX.1-2008 `pax`, "pax Extended Header"):
//! `"%d %s=%s\n"`, length, keyword, value — where the length counts the whole
//! record including itself and the newline.
//!
//! We parse records by their length, not by splitting on newlines: values
//! such as `SCHILY.xattr.security.capability` are binary and may contain
//! `\n` (the `tar` crate's `PaxExtensions` splits on newlines and so rejects
//! such headers, which is why this small parser exists).

/// A malformed PAX record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed PAX extended header at byte {offset}: {reason}")]
pub struct PaxError {
    /// Where in the header body.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Iterates over `(keyword, value)` pairs of a PAX header body.
pub fn records(body: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8]), PaxError>> {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= body.len() {
            return None;
        }
        // Some writers pad the body with NULs; stop at the first one.
        if body[pos] == 0 {
            return None;
        }
        let r = record_at(body, pos);
        match r {
            Ok((key, value, next)) => {
                pos = next;
                Some(Ok((key, value)))
            }
            Err(reason) => {
                failed = true;
                Some(Err(PaxError {
                    offset: pos,
                    reason,
                }))
            }
        }
    })
}

fn record_at(body: &[u8], pos: usize) -> Result<(&[u8], &[u8], usize), &'static str> {
    let rest = &body[pos..];
    let space = rest
        .iter()
        .take(20)
        .position(|&b| b == b' ')
        .ok_or("no length field")?;
    let len_str = &rest[..space];
    if len_str.is_empty() || !len_str.iter().all(u8::is_ascii_digit) {
        return Err("length is not a decimal number");
    }
    let len: usize = std::str::from_utf8(len_str)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("length out of range")?;
    if len <= space + 1 || len > rest.len() {
        return Err("length does not fit the header");
    }
    let record = &rest[space + 1..len];
    let Some((&b'\n', kv)) = record.split_last() else {
        return Err("record does not end with a newline");
    };
    let eq = kv
        .iter()
        .position(|&b| b == b'=')
        .ok_or("record has no '='")?;
    if eq == 0 {
        return Err("empty keyword");
    }
    Ok((&kv[..eq], &kv[eq + 1..], pos + len))
}

/// Parses a PAX time value `[-]seconds[.fraction]` into seconds and
/// nanoseconds (nanoseconds always counting forward, so -1.5 is (-2, 5e8)).
pub fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    // Nanoseconds: the first nine fraction digits, right-padded.
    let mut nanos: u32 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + u32::from(b - b'0');
    }
    if !neg {
        return Some((secs, nanos));
    }
    if nanos == 0 {
        Some((secs.checked_neg()?, 0))
    } else {
        Some((secs.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nanos))
    }
}

/// Parses a PAX decimal integer (`size`, `uid`, `gid`).
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &[u8]) -> Vec<u8> {
        // length counts its own digits: find the fixed point.
        let base = k.len() + v.len() + 3;
        let mut len = base + 1;
        while len != base + len.to_string().len() {
            len = base + len.to_string().len();
        }
        let mut out = format!("{len} {k}=").into_bytes();
        out.extend_from_slice(v);
        out.push(b'\n');
        out
    }

    #[test]
    fn binary_values_with_newlines() {
        let mut body = rec("SCHILY.xattr.security.capability", b"\x01\n\x00\n");
        body.extend(rec("path", b"a/b"));
        let got: Vec<_> = records(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got[0],
            (
                &b"SCHILY.xattr.security.capability"[..],
                &b"\x01\n\x00\n"[..]
            )
        );
        assert_eq!(got[1], (&b"path"[..], &b"a/b"[..]));
    }

    #[test]
    fn malformed_records_fail() {
        for bad in [
            &b"5 a=b\n"[..],
            b"99 path=x\n",
            b"x path=x\n",
            b"9 path=x ",
            b"7 =abc\n",
            b"12345678901234567890123 a=b\n",
        ] {
            assert!(
                records(bad).any(|r| r.is_err()),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
        assert_eq!(records(b"\0\0\0").count(), 0);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(b"1700000000.5"), Some((1700000000, 500_000_000)));
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"1.123456789999"), Some((1, 123_456_789)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"-3"), Some((-3, 0)));
        for bad in [
            &b""[..],
            b".5",
            b"1.x",
            b"--1",
            b"1e3",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_time(bad), None);
        }
    }
}
