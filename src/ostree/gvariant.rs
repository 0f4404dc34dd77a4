//! The GVariant serialisation format, as far as ostree's objects need it.
//!
//! ostree stores its metadata objects (commit, dirtree, dirmeta, detached
//! commit metadata, the bare-user `user.ostreemeta` xattr) as serialised
//! GVariants (GLib's `gvariant-serialiser.c`; the format is "GVariant
//! Serialisation" by Ryan Lortie, also described in the GLib reference
//! manual). The rules used here:
//!
//! - every type has an alignment (1, 2, 4 or 8) and is either fixed-size
//!   (`y b n q i u h x t d` and tuples of only fixed-size members, padded
//!   to their alignment; `()` is one byte) or variable-size;
//! - a tuple (or dict entry) lays its members out in order, each aligned;
//!   the end offset of every variable-size member except the last is a
//!   *framing offset*, stored at the end of the tuple in reverse order;
//! - an array of fixed-size elements is their concatenation; an array of
//!   variable-size elements is the elements (each aligned) followed by
//!   the end offset of each one;
//! - framing offsets are little-endian, 1, 2, 4 or 8 bytes wide, the
//!   smallest width that can address the whole container;
//! - a string is its bytes and a NUL; a variant (`v`) is the child's
//!   bytes, a NUL and the child's type string.
//!
//! The reader is strict: every offset must lie inside its container and
//! point forward, strings must be NUL-terminated UTF-8 without inner NULs,
//! fixed-size values must have exactly their size. GLib would read such
//! non-normal data leniently (default values); ostree never writes it, so
//! anything else on the disk is an error here, never a panic (fuzzed as
//! `ostree_gvariant`).
//!
//! Numbers inside ostree's objects are big-endian by ostree's own
//! convention (`GUINT32_TO_BE` before serialising); this module hands out
//! the raw bytes and [`be_u32`]/[`be_u64`] read them.

use std::fmt;

/// Nesting limit for type strings (GLib's `G_VARIANT_MAX_RECURSION_DEPTH`
/// is 128; ostree's types nest at most 4 deep).
const MAX_DEPTH: usize = 32;

/// A malformed serialised value or type string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed GVariant {ty}: {reason}")]
pub struct Error {
    /// The type being read.
    pub ty: String,
    /// What is wrong.
    pub reason: String,
}

fn err(ty: &Type, reason: impl Into<String>) -> Error {
    Error {
        ty: ty.to_string(),
        reason: reason.into(),
    }
}

/// A GVariant type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// One of `b y n q i u x t h d s o g`.
    Basic(u8),
    /// `v`: a value that carries its own type.
    Variant,
    /// `aT`: an array of T.
    Array(Box<Type>),
    /// `mT`: a T or nothing.
    Maybe(Box<Type>),
    /// `(T...)`: a structure.
    Tuple(Vec<Type>),
    /// `{KV}`: a dictionary entry (inside an array).
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    /// Parses one complete type string (`"(uuua(ayay))"`).
    pub fn parse(s: &str) -> Result<Type, Error> {
        let bad = |reason: &str| Error {
            ty: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (ty, rest) = Self::parse_one(s.as_bytes(), 0).map_err(bad)?;
        if !rest.is_empty() {
            return Err(bad("more than one complete type"));
        }
        Ok(ty)
    }

    fn parse_one(s: &[u8], depth: usize) -> Result<(Type, &[u8]), &'static str> {
        if depth > MAX_DEPTH {
            return Err("type nested too deeply");
        }
        let (&c, rest) = s.split_first().ok_or("type string ends early")?;
        match c {
            b'b' | b'y' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o'
            | b'g' => Ok((Type::Basic(c), rest)),
            b'v' => Ok((Type::Variant, rest)),
            b'a' => {
                let (t, rest) = Self::parse_one(rest, depth + 1)?;
                Ok((Type::Array(Box::new(t)), rest))
            }
            b'm' => {
                let (t, rest) = Self::parse_one(rest, depth + 1)?;
                Ok((Type::Maybe(Box::new(t)), rest))
            }
            b'(' => {
                let mut members = Vec::new();
                let mut rest = rest;
                loop {
                    match rest.first() {
                        Some(b')') => return Ok((Type::Tuple(members), &rest[1..])),
                        Some(_) => {
                            let (t, r) = Self::parse_one(rest, depth + 1)?;
                            members.push(t);
                            rest = r;
                        }
                        None => return Err("unclosed `(`"),
                    }
                }
            }
            b'{' => {
                let (k, rest) = Self::parse_one(rest, depth + 1)?;
                if !matches!(k, Type::Basic(_)) {
                    return Err("a dict entry's key must be a basic type");
                }
                let (v, rest) = Self::parse_one(rest, depth + 1)?;
                match rest.split_first() {
                    Some((b'}', rest)) => Ok((Type::DictEntry(Box::new(k), Box::new(v)), rest)),
                    _ => Err("unclosed `{`"),
                }
            }
            _ => Err("unknown type character"),
        }
    }

    /// Alignment in bytes.
    pub fn alignment(&self) -> usize {
        match self {
            Type::Basic(b'b' | b'y' | b's' | b'o' | b'g') => 1,
            Type::Basic(b'n' | b'q') => 2,
            Type::Basic(b'i' | b'u' | b'h') => 4,
            Type::Basic(_) | Type::Variant => 8,
            Type::Array(t) | Type::Maybe(t) => t.alignment(),
            Type::Tuple(m) => m.iter().map(Type::alignment).max().unwrap_or(1),
            Type::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// The size of a fixed-size type, `None` for variable-size types.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Type::Basic(b'b' | b'y') => Some(1),
            Type::Basic(b'n' | b'q') => Some(2),
            Type::Basic(b'i' | b'u' | b'h') => Some(4),
            Type::Basic(b'x' | b't' | b'd') => Some(8),
            Type::Basic(_) | Type::Variant | Type::Array(_) | Type::Maybe(_) => None,
            Type::Tuple(m) => Self::fixed_tuple_size(m, self.alignment()),
            Type::DictEntry(k, v) => {
                Self::fixed_tuple_size(&[(**k).clone(), (**v).clone()], self.alignment())
            }
        }
    }

    fn fixed_tuple_size(members: &[Type], alignment: usize) -> Option<usize> {
        if members.is_empty() {
            return Some(1);
        }
        let mut size = 0;
        for m in members {
            size = align(size, m.alignment()) + m.fixed_size()?;
        }
        Some(align(size, alignment))
    }

    /// Members of a tuple or dict entry.
    fn members(&self) -> Option<Vec<&Type>> {
        match self {
            Type::Tuple(m) => Some(m.iter().collect()),
            Type::DictEntry(k, v) => Some(vec![k, v]),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Basic(c) => write!(f, "{}", *c as char),
            Type::Variant => f.write_str("v"),
            Type::Array(t) => write!(f, "a{t}"),
            Type::Maybe(t) => write!(f, "m{t}"),
            Type::Tuple(m) => {
                f.write_str("(")?;
                for t in m {
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
            Type::DictEntry(k, v) => write!(f, "{{{k}{v}}}"),
        }
    }
}

fn align(off: usize, to: usize) -> usize {
    off.div_ceil(to) * to
}

/// Width of the framing offsets of a container of `len` bytes.
fn offset_size(len: usize) -> usize {
    match len {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn read_offset(data: &[u8], at: usize, size: usize) -> usize {
    let mut v: u64 = 0;
    for (i, &b) in data[at..at + size].iter().enumerate() {
        v |= u64::from(b) << (8 * i);
    }
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A serialised value of a known type.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    /// Its type.
    pub ty: &'a Type,
    /// Its serialised bytes (GVariant serialisation, little-endian).
    pub data: &'a [u8],
}

impl<'a> Value<'a> {
    /// `data` as a value of `ty`, checking a fixed-size type's length.
    pub fn new(ty: &'a Type, data: &'a [u8]) -> Result<Value<'a>, Error> {
        if let Some(size) = ty.fixed_size() {
            if data.len() != size {
                return Err(err(
                    ty,
                    format!("{} bytes, the type has {size}", data.len()),
                ));
            }
        }
        Ok(Value { ty, data })
    }

    /// The members of a tuple or dict entry.
    pub fn members(&self) -> Result<Vec<Value<'a>>, Error> {
        let ty = self.ty;
        let members = ty
            .members()
            .ok_or_else(|| err(ty, "not a tuple or dict entry"))?;
        let data = self.data;
        let osz = offset_size(data.len());
        // Framing offsets: one per variable-size member but the last.
        let n_frames = members
            .iter()
            .enumerate()
            .filter(|(i, m)| m.fixed_size().is_none() && i + 1 < members.len())
            .count();
        let frames_start = data
            .len()
            .checked_sub(n_frames * osz)
            .ok_or_else(|| err(ty, "too short for its framing offsets"))?;
        let mut out = Vec::with_capacity(members.len());
        let (mut pos, mut frame) = (0usize, 0usize);
        for (i, m) in members.iter().enumerate() {
            let start = align(pos, m.alignment());
            let end = match m.fixed_size() {
                Some(size) => start + size,
                None if i + 1 == members.len() => frames_start,
                None => {
                    frame += 1;
                    read_offset(data, data.len() - frame * osz, osz)
                }
            };
            if start > end || end > frames_start {
                return Err(err(
                    ty,
                    format!("member {i} ({m}) lies outside the value ({start}..{end})"),
                ));
            }
            out.push(Value::new(m, &data[start..end])?);
            pos = end;
        }
        // Nothing may follow the last member of a variable-size tuple
        // whose last member is fixed (a fixed-size tuple's length, padding
        // included, was checked by `Value::new`).
        // (A variable-size tuple is not padded at its end.)
        if let Some(last) = members.last() {
            if last.fixed_size().is_some() && ty.fixed_size().is_none() && pos != frames_start {
                return Err(err(ty, "bytes after the last member"));
            }
        }
        Ok(out)
    }

    /// The elements of an array.
    pub fn elements(&self) -> Result<Vec<Value<'a>>, Error> {
        let ty = self.ty;
        let Type::Array(elem) = ty else {
            return Err(err(ty, "not an array"));
        };
        let data = self.data;
        if let Some(size) = elem.fixed_size() {
            if data.len() % size != 0 {
                return Err(err(
                    ty,
                    format!(
                        "{} bytes is not a whole number of {size}-byte elements",
                        data.len()
                    ),
                ));
            }
            return data
                .chunks_exact(size)
                .map(|c| Value::new(elem, c))
                .collect();
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let osz = offset_size(data.len());
        if data.len() < osz {
            return Err(err(ty, "too short for a framing offset"));
        }
        let table = read_offset(data, data.len() - osz, osz);
        if table > data.len() || (data.len() - table) % osz != 0 || table == data.len() {
            return Err(err(ty, "framing offsets out of range"));
        }
        let n = (data.len() - table) / osz;
        let mut out = Vec::with_capacity(n);
        let mut pos = 0usize;
        for i in 0..n {
            let start = align(pos, elem.alignment());
            let end = read_offset(data, table + i * osz, osz);
            if start > end || end > table {
                return Err(err(
                    ty,
                    format!("element {i} lies outside the array ({start}..{end})"),
                ));
            }
            out.push(Value::new(elem, &data[start..end])?);
            pos = end;
        }
        Ok(out)
    }

    /// A string (`s`, `o`, `g`).
    pub fn str(&self) -> Result<&'a str, Error> {
        if !matches!(self.ty, Type::Basic(b's' | b'o' | b'g')) {
            return Err(err(self.ty, "not a string"));
        }
        let (&last, body) = self
            .data
            .split_last()
            .ok_or_else(|| err(self.ty, "empty: a string ends with a NUL"))?;
        if last != 0 || body.contains(&0) {
            return Err(err(self.ty, "not one NUL-terminated string"));
        }
        std::str::from_utf8(body).map_err(|_| err(self.ty, "not UTF-8"))
    }

    /// A byte string (`ay`): the raw bytes.
    pub fn bytes(&self) -> Result<&'a [u8], Error> {
        match self.ty {
            Type::Array(e) if **e == Type::Basic(b'y') => Ok(self.data),
            _ => Err(err(self.ty, "not a byte array")),
        }
    }

    /// A `u` as ostree stores it (big-endian).
    pub fn be_u32(&self) -> Result<u32, Error> {
        match (self.ty, <[u8; 4]>::try_from(self.data)) {
            (Type::Basic(b'u'), Ok(b)) => Ok(u32::from_be_bytes(b)),
            _ => Err(err(self.ty, "not a u")),
        }
    }

    /// A `t` as ostree stores it (big-endian).
    pub fn be_u64(&self) -> Result<u64, Error> {
        match (self.ty, <[u8; 8]>::try_from(self.data)) {
            (Type::Basic(b't'), Ok(b)) => Ok(u64::from_be_bytes(b)),
            _ => Err(err(self.ty, "not a t")),
        }
    }
}

/// The child of a `v`: its type string and its bytes.
pub fn variant_child(data: &[u8]) -> Result<(&str, &[u8]), Error> {
    let v = Type::Variant;
    let nul = data
        .iter()
        .rposition(|&b| b == 0)
        .ok_or_else(|| err(&v, "no NUL before the type string"))?;
    let ty = std::str::from_utf8(&data[nul + 1..]).map_err(|_| err(&v, "type is not UTF-8"))?;
    Type::parse(ty)?;
    Ok((ty, &data[..nul]))
}

/// An entry of an `a{sv}` dictionary, kept as serialised bytes so that
/// values of any type survive a read-modify-write unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictEntry {
    /// The key.
    pub key: String,
    /// The value's type string.
    pub ty: String,
    /// The value's serialised bytes.
    pub value: Vec<u8>,
}

/// Reads an `a{sv}` (ostree's commit metadata and detached metadata).
pub fn read_vardict(data: &[u8]) -> Result<Vec<DictEntry>, Error> {
    let ty = Type::parse("a{sv}")?;
    let mut out = Vec::new();
    for e in Value::new(&ty, data)?.elements()? {
        let m = e.members()?;
        let key = m[0].str()?.to_owned();
        let (vty, value) = variant_child(m[1].data)?;
        // The child must itself be well-formed at its declared type's size.
        let child_ty = Type::parse(vty)?;
        Value::new(&child_ty, value)?;
        out.push(DictEntry {
            key,
            ty: vty.to_owned(),
            value: value.to_vec(),
        });
    }
    Ok(out)
}

/// Serialises an array of variable-size elements given as already
/// serialised bytes, each aligned to `alignment`.
pub(crate) fn write_variable_array(elements: &[Vec<u8>], alignment: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut ends = Vec::with_capacity(elements.len());
    for e in elements {
        body.resize(align(body.len(), alignment), 0);
        body.extend_from_slice(e);
        ends.push(body.len());
    }
    append_offsets(body, &ends)
}

/// Appends framing offsets `ends` (in the order given) to `body`, choosing
/// the width as GLib does (`gvs_calculate_total_size`).
pub(crate) fn append_offsets(mut body: Vec<u8>, ends: &[usize]) -> Vec<u8> {
    if ends.is_empty() {
        return body;
    }
    let n = ends.len();
    let osz = [1usize, 2, 4, 8]
        .into_iter()
        .find(|&w| offset_size(body.len() + n * w) <= w)
        .unwrap_or(8);
    for &end in ends {
        body.extend_from_slice(&(end as u64).to_le_bytes()[..osz]);
    }
    body
}

/// Serialises an `a{sv}` from its entries, in the order given.
pub fn write_vardict(entries: &[DictEntry]) -> Vec<u8> {
    let serialised: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            // {sv}: key, NUL, pad to 8, variant (value, NUL, type), then
            // the key's framing offset.
            let mut body = e.key.as_bytes().to_vec();
            body.push(0);
            let key_end = body.len();
            body.resize(align(body.len(), 8), 0);
            body.extend_from_slice(&e.value);
            body.push(0);
            body.extend_from_slice(e.ty.as_bytes());
            append_offsets(body, &[key_end])
        })
        .collect();
    write_variable_array(&serialised, 8)
}

/// Serialises an `aay` (a list of byte strings).
pub fn write_bytestring_array(items: &[Vec<u8>]) -> Vec<u8> {
    write_variable_array(items, 1)
}

/// Reads an `aay`.
pub fn read_bytestring_array(data: &[u8]) -> Result<Vec<&[u8]>, Error> {
    static AAY: std::sync::LazyLock<Type> = std::sync::LazyLock::new(|| {
        Type::Array(Box::new(Type::Array(Box::new(Type::Basic(b'y')))))
    });
    Value::new(&AAY, data)?
        .elements()?
        .iter()
        .map(|v| v.bytes())
        .collect()
}

#[cfg(test)]
mod tests;
