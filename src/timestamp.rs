//! RFC 3339 timestamps (section 5.6, `date-time`), as the OCI image config's
//! `created` field is written (image-spec `config.md`: "combined date and
//! time at which the image was created, formatted as defined by RFC 3339,
//! section 5.6") and as `[verify] min-created` is set in `prepare.conf`.
//!
//! Only what is needed to *compare* two instants: the text is parsed into
//! seconds since the Unix epoch (UTC) and nanoseconds. No time zone
//! database, no formatting, no clock: a few dozen lines instead of a date
//! crate in the initramfs binary. Fuzzed as `fuzz/fuzz_targets/timestamp.rs`.
//!
//! Accepted (RFC 3339 5.6, with its case-insensitive `T`/`Z`):
//! `YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)`. The fraction may have
//! any number of digits (Go writes up to 9, Python 6); digits beyond the
//! ninth are dropped. A leap second (`:60`) counts as the following second
//! (RFC 3339 5.7 allows it; only the order of instants matters here).
//! Everything else is an error saying what was expected.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// An instant, parsed from RFC 3339 text (the text is kept for messages).
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    nanos: u32,
    text: String,
}

/// Text that is not an RFC 3339 `date-time`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an RFC 3339 timestamp ({reason}); expected e.g. \
     2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00"
)]
pub struct TimestampError {
    pub text: String,
    pub reason: &'static str,
}

/// Longest text considered (a fraction of 1000 digits is not a timestamp).
const MAX_LEN: usize = 64;

impl Timestamp {
    /// Seconds since the Unix epoch, UTC.
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let err = |reason| TimestampError {
            text: text.chars().take(MAX_LEN).collect(),
            reason,
        };
        if text.len() > MAX_LEN {
            return Err(err("too long"));
        }
        let mut c = Cursor(text.as_bytes());
        let year = c.digits(4).ok_or_else(|| err("a 4-digit year first"))?;
        c.expect(b'-').ok_or_else(|| err("'-' after the year"))?;
        let month = c.digits(2).ok_or_else(|| err("a 2-digit month"))?;
        c.expect(b'-').ok_or_else(|| err("'-' after the month"))?;
        let day = c.digits(2).ok_or_else(|| err("a 2-digit day"))?;
        if !(c.expect(b'T').is_some() || c.expect(b't').is_some()) {
            return Err(err("'T' between date and time"));
        }
        let hour = c.digits(2).ok_or_else(|| err("a 2-digit hour"))?;
        c.expect(b':').ok_or_else(|| err("':' after the hour"))?;
        let minute = c.digits(2).ok_or_else(|| err("2-digit minutes"))?;
        c.expect(b':').ok_or_else(|| err("':' after the minutes"))?;
        let second = c.digits(2).ok_or_else(|| err("2-digit seconds"))?;
        let mut nanos = 0u32;
        if c.expect(b'.').is_some() {
            let digits = c.take_while(|b| b.is_ascii_digit());
            if digits.is_empty() {
                return Err(err("digits after the decimal point"));
            }
            for i in 0..9 {
                let d = digits.get(i).map_or(0, |b| u32::from(b - b'0'));
                nanos = nanos * 10 + d;
            }
        }
        let offset_secs: i64 = match c.next() {
            Some(b'Z' | b'z') => 0,
            Some(sign @ (b'+' | b'-')) => {
                let h = c.digits(2).ok_or_else(|| err("a 2-digit offset hour"))?;
                c.expect(b':').ok_or_else(|| err("':' in the offset"))?;
                let m = c.digits(2).ok_or_else(|| err("2-digit offset minutes"))?;
                if h > 23 || m > 59 {
                    return Err(err("offset out of range"));
                }
                let off = i64::from(h * 3600 + m * 60);
                if sign == b'+' { off } else { -off }
            }
            _ => return Err(err("a time zone: 'Z' or +hh:mm/-hh:mm")),
        };
        if !c.0.is_empty() {
            return Err(err("nothing after the time zone"));
        }
        if !(1..=12).contains(&month) {
            return Err(err("month out of range"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(err("day out of range for the month"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("time out of range"));
        }
        let days = days_from_civil(i64::from(year), month, day);
        let local = days * 86400 + i64::from(hour * 3600 + minute * 60 + second);
        Ok(Timestamp {
            secs: local - offset_secs,
            nanos,
            text: text.to_owned(),
        })
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, TimestampError> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Instants compare; the spelling (offset, fraction digits) does not matter.
impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.secs, self.nanos).cmp(&(other.secs, other.nanos))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.0.first() == Some(&want)).then(|| self.0 = &self.0[1..])
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let head = self.0.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(head.iter().fold(0, |v, b| v * 10 + u32::from(b - b'0')))
    }

    fn take_while(&mut self, f: impl Fn(&u8) -> bool) -> &[u8] {
        let n = self.0.iter().take_while(|b| f(b)).count();
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, "chrono-Compatible Low-Level Date Algorithms").
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unix_seconds_match_gnu_date() {
        // Expected values: `date -u -d <text> +%s` (GNU coreutils 9.1).
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2026-01-31T12:00:00Z", 1_769_860_800),
            ("1969-12-31T23:59:59Z", -1),
            ("0001-01-01T00:00:00Z", -62_135_596_800),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
            ("2024-03-01T01:00:00+01:00", 1_709_251_200),
            ("2024-02-29T19:00:00-05:00", 1_709_251_200),
        ] {
            assert_eq!(ts(text).unix_seconds(), secs, "{text}");
        }
    }

    #[test]
    fn fractions_offsets_and_case() {
        let a = ts("2024-05-01T12:34:56.123456789Z");
        assert_eq!(a.nanos(), 123_456_789);
        assert_eq!(ts("2024-05-01T12:34:56.5Z").nanos(), 500_000_000);
        // Digits beyond nanoseconds are dropped.
        assert_eq!(
            ts("2024-05-01T12:34:56.1234567891234Z").nanos(),
            123_456_789
        );
        assert_eq!(ts("2024-05-01t14:34:56.123456789+02:00"), a);
        assert_eq!(ts("2024-05-01T12:34:56.123456789z"), a);
        assert!(ts("2024-05-01T12:34:56.123456788Z") < a);
        assert!(ts("2024-05-01T12:34:57Z") > a);
        // A leap second sorts after :59.
        assert!(ts("2016-12-31T23:59:60Z") > ts("2016-12-31T23:59:59.999Z"));
        assert_eq!(a.to_string(), "2024-05-01T12:34:56.123456789Z");
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "24-05-01T12:00:00Z",
            "2024-5-01T12:00:00Z",
            "2024-13-01T12:00:00Z",
            "2024-00-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-04-31T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:00:61Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0100",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00Z ",
            "+2024-05-01T12:00:00Z",
            "２０２４-05-01T12:00:00Z",
        ] {
            let e = Timestamp::parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("not an RFC 3339 timestamp"),
                "{bad}: {e}"
            );
        }
        let long = format!("2024-05-01T12:00:00.{}Z", "1".repeat(100));
        assert_eq!(Timestamp::parse(&long).unwrap_err().reason, "too long");
    }
}
