//! Expected bytes are the worked examples of the GVariant specification
//! ("GVariant Serialisation", section "Examples"; the same tables are in
//! GLib's `docs/reference/glib/gvariant-specification-1.0.rst`), and, for
//! ostree's own objects, `tests/ostree_host.rs` reads what the real
//! `ostree` wrote and has `ostree show` read what this module wrote.

use super::*;

fn ty(s: &str) -> Type {
    Type::parse(s).unwrap()
}

#[test]
fn spec_example_string_array() {
    // ['hi', 'bye'] as `as`: "hi\0bye\0" then offsets 3, 7.
    let t = ty("as");
    let data = b"hi\0bye\0\x03\x07";
    let v = Value::new(&t, data).unwrap();
    let items: Vec<&str> = v
        .elements()
        .unwrap()
        .iter()
        .map(|e| e.str().unwrap())
        .collect();
    assert_eq!(items, ["hi", "bye"]);
    assert_eq!(
        write_variable_array(&[b"hi\0".to_vec(), b"bye\0".to_vec()], 1),
        data
    );
}

#[test]
fn spec_example_tuple_string_int() {
    // ('foo', -1) as `(si)`: "foo\0", -1 aligned to 4, framing offset 4.
    let t = ty("(si)");
    let data = b"foo\0\xff\xff\xff\xff\x04";
    let m = Value::new(&t, data).unwrap().members().unwrap();
    assert_eq!(m[0].str().unwrap(), "foo");
    assert_eq!(m[1].data, b"\xff\xff\xff\xff");
}

#[test]
fn spec_example_dict_entries() {
    // {'a': 1, 'b': 2} as `a{si}`: each entry "x\0" pad to 4, int, offset 2,
    // entries aligned to 4, then the array's end offsets 9 and 21... as the
    // spec lays them out: "a\0\0\0" 01 00 00 00 02, pad, "b\0\0\0" 02 00 00 00 02, 09 15.
    let t = ty("a{si}");
    let data = b"a\0\0\0\x01\0\0\0\x02\0\0\0b\0\0\0\x02\0\0\0\x02\x09\x15";
    let e = Value::new(&t, data).unwrap().elements().unwrap();
    assert_eq!(e.len(), 2);
    let m = e[1].members().unwrap();
    assert_eq!(m[0].str().unwrap(), "b");
    assert_eq!(m[1].data, b"\x02\0\0\0");
}

#[test]
fn fixed_sizes_and_alignment() {
    assert_eq!(ty("(uuu)").fixed_size(), Some(12));
    assert_eq!(ty("(yt)").fixed_size(), Some(16));
    assert_eq!(ty("(ty)").fixed_size(), Some(16));
    assert_eq!(ty("()").fixed_size(), Some(1));
    assert_eq!(ty("(uuua(ayay))").fixed_size(), None);
    assert_eq!(ty("a{sv}").alignment(), 8);
    assert_eq!(ty("(uuua(ayay))").alignment(), 4);
    assert_eq!(
        ty("(a{sv}aya(say)sstayay)").to_string(),
        "(a{sv}aya(say)sstayay)"
    );
    for bad in ["", "(", "a", "{vs}", "(u", "z", "uu", "{sv", "{s}"] {
        assert!(Type::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn vardict_round_trip() {
    let entries = vec![
        DictEntry {
            key: "ostree.composefs.digest.v0".into(),
            ty: "ay".into(),
            value: vec![7; 32],
        },
        DictEntry {
            key: "k".into(),
            ty: "s".into(),
            value: b"value\0".to_vec(),
        },
        DictEntry {
            key: "sigs".into(),
            ty: "aay".into(),
            value: write_bytestring_array(&[vec![1; 300], vec![], vec![2; 5]]),
        },
    ];
    let data = write_vardict(&entries);
    assert_eq!(read_vardict(&data).unwrap(), entries);
    let sigs = read_vardict(&data).unwrap()[2].value.clone();
    assert_eq!(
        read_bytestring_array(&sigs).unwrap(),
        [&[1u8; 300][..], &[][..], &[2u8; 5][..]]
    );
    assert_eq!(read_vardict(&write_vardict(&[])).unwrap(), []);
}

#[test]
fn large_containers_use_wider_offsets() {
    // 70,000 bytes of elements: 4-byte framing offsets.
    let items = vec![vec![9u8; 35_000], vec![8u8; 35_000]];
    let data = write_bytestring_array(&items);
    assert_eq!(data.len(), 70_000 + 2 * 4);
    let back = read_bytestring_array(&data).unwrap();
    assert_eq!(back, [&items[0][..], &items[1][..]]);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let t = ty("(uuua(ayay))");
    for data in [
        &b""[..],
        b"\0\0\0\0",
        b"\0\0\0\0\0\0\0\0\0\0\0\0\xff",
        b"\0\0\0\0\0\0\0\0\0\0\0\0a\0b\x05\x02",
    ] {
        if let Ok(v) = Value::new(&t, data) {
            if let Ok(m) = v.members() {
                if let Ok(xs) = m[3].elements() {
                    for x in xs {
                        let _ = x.members();
                    }
                }
            }
        }
    }
    assert!(read_vardict(b"\x01").is_err());
    assert!(read_vardict(b"k\0\0\0\0\0\0\0\0zz\x02\x0d").is_err());
    assert!(Value::new(&ty("s"), b"ab").unwrap().str().is_err());
    assert!(Value::new(&ty("s"), b"a\0b\0").unwrap().str().is_err());
    assert!(Value::new(&ty("u"), b"abc").is_err());
}
