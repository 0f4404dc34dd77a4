//! ostree's objects as sealroot reads them from an untrusted repository
//! (`sealroot::ostree::{gvariant, objects}`): never panic. The first byte
//! picks the parser: commit, dirtree, dirmeta, bare-user filemeta, `a{sv}`
//! (detached metadata; whatever is accepted must write back to bytes that
//! read the same), `aay`, or a type string, a NUL and a value of that
//! type, walked in full (every member, element and variant child).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::ostree::gvariant::{self, Type, Value};
use sealroot::ostree::objects::{Commit, DirTree, Meta};

fn walk(v: Value<'_>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v.ty {
        Type::Tuple(_) | Type::DictEntry(..) => {
            if let Ok(m) = v.members() {
                m.into_iter().for_each(|c| walk(c, depth + 1));
            }
        }
        Type::Array(_) => {
            if let Ok(e) = v.elements() {
                e.into_iter().for_each(|c| walk(c, depth + 1));
            }
        }
        Type::Variant => {
            if let Ok((ty, data)) = gvariant::variant_child(v.data) {
                if let Ok(t) = Type::parse(ty) {
                    if let Ok(c) = Value::new(&t, data) {
                        walk(c, depth + 1);
                    }
                }
            }
        }
        Type::Basic(b's' | b'o' | b'g') => {
            let _ = v.str();
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            let _ = Commit::parse(rest);
        }
        1 => {
            let _ = DirTree::parse(rest);
        }
        2 => {
            let _ = Meta::parse_dirmeta(rest);
        }
        3 => {
            let _ = Meta::parse_filemeta(rest);
        }
        4 => {
            if let Ok(entries) = gvariant::read_vardict(rest) {
                let again = gvariant::read_vardict(&gvariant::write_vardict(&entries))
                    .expect("a written a{sv} must read back");
                assert_eq!(again, entries);
            }
        }
        5 => {
            if let Ok(items) = gvariant::read_bytestring_array(rest) {
                let items: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
                let written = gvariant::write_bytestring_array(&items);
                let back = gvariant::read_bytestring_array(&written).expect("written aay reads");
                assert_eq!(back.len(), items.len());
            }
        }
        _ => {
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return;
            };
            let Ok(ty) = std::str::from_utf8(&rest[..nul]) else {
                return;
            };
            if let Ok(t) = Type::parse(ty) {
                if let Ok(v) = Value::new(&t, &rest[nul + 1..]) {
                    walk(v, 0);
                }
            }
        }
    }
});
