//! Interned extended attributes.
//!
//! A root filesystem has a million inodes but only a handful of distinct
//! xattrs (SELinux labels, file capabilities, ACLs). Each distinct name and
//! value is stored once, and each distinct *list* of (name, value) pairs is
//! stored once too; an inode holds a 4-byte [`XattrSetId`].

use std::collections::HashMap;

/// Index of an interned xattr list; `XattrSetId::EMPTY` is the empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct XattrSetId(u32);

impl XattrSetId {
    pub const EMPTY: XattrSetId = XattrSetId(0);
}

/// Byte strings stored once each, addressed by a dense `u32`.
#[derive(Debug, Default, Clone)]
struct Interner {
    strings: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, u32>,
}

impl Interner {
    fn intern(&mut self, s: &[u8]) -> u32 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.index.insert(s.into(), id);
        id
    }

    fn get(&self, id: u32) -> &[u8] {
        &self.strings[id as usize]
    }
}

/// One (name, value) pair, as interned ids.
type Pair = (u32, u32);

/// All xattr names, values and lists of one tree.
#[derive(Debug, Clone)]
pub(crate) struct XattrPool {
    names: Interner,
    values: Interner,
    sets: Vec<Box<[Pair]>>,
    set_index: HashMap<Box<[Pair]>, u32>,
}

impl Default for XattrPool {
    fn default() -> Self {
        let mut pool = XattrPool {
            names: Interner::default(),
            values: Interner::default(),
            sets: Vec::new(),
            set_index: HashMap::new(),
        };
        pool.intern_set(Vec::new());
        pool
    }
}

impl XattrPool {
    fn intern_set(&mut self, pairs: Vec<Pair>) -> XattrSetId {
        if let Some(&id) = self.set_index.get(pairs.as_slice()) {
            return XattrSetId(id);
        }
        let id = self.sets.len() as u32;
        let boxed: Box<[Pair]> = pairs.into();
        self.sets.push(boxed.clone());
        self.set_index.insert(boxed, id);
        XattrSetId(id)
    }

    /// The list `set` with `name` set to `value` (replacing an existing
    /// value in place, or appended).
    pub(crate) fn with(&mut self, set: XattrSetId, name: &[u8], value: &[u8]) -> XattrSetId {
        let n = self.names.intern(name);
        let v = self.values.intern(value);
        let mut pairs = self.sets[set.0 as usize].to_vec();
        match pairs.iter_mut().find(|(pn, _)| *pn == n) {
            Some(pair) => pair.1 = v,
            None => pairs.push((n, v)),
        }
        self.intern_set(pairs)
    }

    /// The list `set` without `name`; `None` if it had no such xattr.
    pub(crate) fn without(&mut self, set: XattrSetId, name: &[u8]) -> Option<XattrSetId> {
        let pairs = &self.sets[set.0 as usize];
        let pos = pairs.iter().position(|&(n, _)| self.names.get(n) == name)?;
        let mut pairs = pairs.to_vec();
        pairs.remove(pos);
        Some(self.intern_set(pairs))
    }

    /// The list `set` with only the names `keep` accepts.
    pub(crate) fn retain(&mut self, set: XattrSetId, keep: &dyn Fn(&[u8]) -> bool) -> XattrSetId {
        let pairs: Vec<Pair> = self.sets[set.0 as usize]
            .iter()
            .copied()
            .filter(|&(n, _)| keep(self.names.get(n)))
            .collect();
        self.intern_set(pairs)
    }

    pub(crate) fn iter(&self, set: XattrSetId) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.sets[set.0 as usize]
            .iter()
            .map(|&(n, v)| (self.names.get(n), self.values.get(v)))
    }

    pub(crate) fn get(&self, set: XattrSetId, name: &[u8]) -> Option<&[u8]> {
        self.iter(set).find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Number of distinct lists (for statistics and memory tests).
    pub(crate) fn distinct_sets(&self) -> usize {
        self.sets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lists_share_an_id() {
        let mut pool = XattrPool::default();
        let a = pool.with(XattrSetId::EMPTY, b"user.a", b"1");
        let a = pool.with(a, b"user.b", b"2");
        let b = pool.with(XattrSetId::EMPTY, b"user.a", b"1");
        let b = pool.with(b, b"user.b", b"2");
        assert_eq!(a, b);
        let c = pool.with(b, b"user.a", b"3");
        assert_ne!(a, c);
        assert_eq!(pool.get(c, b"user.a"), Some(&b"3"[..]));
        assert_eq!(
            pool.without(c, b"user.a").map(|s| pool.iter(s).len()),
            Some(1)
        );
        assert_eq!(pool.without(c, b"user.zz"), None);
        let only_b = pool.without(c, b"user.a").unwrap();
        assert_eq!(pool.without(only_b, b"user.b"), Some(XattrSetId::EMPTY));
    }
}
