use super::*;
use crate::tree::Content;

const SAMPLE: &[u8] = b"/ 4096 40755 3 0 0 0 1633950376.5 - - - user.a=1 security.selinux=x\\x00
/dir 0 40700 2 1000 1000 0 1.0 - - -
/dir/file 100 100644 2 0 0 0 2.3 ab/cdef - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
/dir/inline 3 100644 1 0 0 0 2.3 - a\\x20b -
/dir/sym 4 120777 1 0 0 0 2.3 ../x - -
/dir/dev 0 20644 1 0 0 1025 2.3 - - -
/link 100 @100644 2 0 0 0 2.3 /dir/file - -
/w\\x20s\\x3d\\x2d 0 10644 1 0 0 0 -5.0 - - - user.k\\x3d=v=\\x2d
";

#[test]
fn parses_every_file_type() {
    let t = parse_bytes(SAMPLE, ParseOptions { strict: true }).unwrap();
    let file = t.lookup_path(b"/dir/file").unwrap();
    assert_eq!(t.lookup_path(b"/link"), Some(file));
    {
        let root = t.root();
        let p = t.primaries();
        let (k, e) = t
            .entries(root)
            .enumerate()
            .find(|(_, e)| e.name == b"link")
            .unwrap();
        assert!(!p.is_primary(root, k, e.inode));
    }
    match t.content(file) {
        Content::External { payload, digest } => {
            assert_eq!(payload, Some(&b"ab/cdef"[..]));
            assert_eq!(
                digest.unwrap().to_hex(),
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            );
        }
        other => panic!("{other:?}"),
    }
    let inline = t.lookup_path(b"/dir/inline").unwrap();
    assert_eq!(t.content(inline), Content::Inline(b"a b"));
    let odd = t.lookup_path(b"/w s=-").unwrap();
    assert_eq!(t.stat(odd).mtime.sec, -5);
    assert_eq!(t.xattr(odd, b"user.k="), Some(&b"v=-"[..]));
    assert_eq!(t.stat(t.lookup_path(b"/dir/dev").unwrap()).rdev, 1025);
    assert_eq!(t.xattr(t.root(), b"security.selinux"), Some(&b"x\0"[..]));
}

#[test]
fn printing_is_canonical_and_round_trips() {
    let t = parse_bytes(SAMPLE, ParseOptions::default()).unwrap();
    let d1 = to_bytes(&t);
    let t2 = parse_bytes(&d1, ParseOptions { strict: true }).unwrap();
    let d2 = to_bytes(&t2);
    assert_eq!(String::from_utf8_lossy(&d1), String::from_utf8_lossy(&d2));
    // Printing escapes like composefs-info: '=' only in xattrs, lone '-'.
    let text = String::from_utf8(d1).unwrap();
    assert!(
        text.contains("/w\\x20s=- 0 10644 1 0 0 0 -5.0 - - - user.k\\x3d=v\\x3d-\n"),
        "{text}"
    );
    assert!(
        text.contains("/link 100 @100644 2 0 0 0 2.3 /dir/file - 0123"),
        "{text}"
    );
}

fn err_of(input: &str, strict: bool) -> String {
    parse_bytes(input.as_bytes(), ParseOptions { strict })
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_line_and_the_problem() {
    let root = "/ 0 40755 2 0 0 0 0.0 - - -\n";
    let cases: &[(&str, &str)] = &[
        (
            "/x 0 100644 1 0 0 0 0.0 - - -\n",
            "line 1: the first line must be the root",
        ),
        ("", "empty"),
        (
            "/ 0 100644 1 0 0 0 0.0 - - -\n",
            "line 1: the root must be a directory",
        ),
    ];
    for (input, want) in cases {
        let e = err_of(input, false);
        assert!(e.contains(want), "{input:?}: {e}");
    }
    let after_root: &[(&str, &str)] = &[
        (
            "/. 0 40755 2 0 0 0 0.0 - - -\n",
            "line 2: invalid file name \".\"",
        ),
        (
            "/a/b 0 100644 1 0 0 0 0.0 - - -\n",
            "line 2: parent directory of /a/b is missing",
        ),
        ("/a 0 644 1 0 0 0 0.0 - - -\n", "line 2: invalid mode 644"),
        ("/a 0 100644 1 0 0 0 0.0 - - - user.x\n", "has no '='"),
        (
            "/a 0 100644 1 0 0 0 0.0 - - - =v\n",
            "xattr names cannot be empty",
        ),
        (
            "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
            "line 3: /a: already exists",
        ),
        (
            "/a 0 @100644 1 0 0 0 0.0 /a - -\n",
            "line 2: /a: a hardlink cannot point to itself",
        ),
        (
            "/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n",
            "cycle",
        ),
        (
            "/a 0 @100644 1 0 0 0 0.0 / - -\n",
            "directories cannot be hardlinked",
        ),
        (
            "/a 0 @40755 1 0 0 0 0.0 /x - -\n",
            "directories cannot be hardlinked",
        ),
        (
            "/a 0 @100644 1 0 0 0 0.0 /nope - -\n",
            "line 2: hardlink target /nope does not exist",
        ),
        (
            "/a 5 100644 1 0 0 0 0.0 - abc -\n",
            "CONTENT is 3 bytes but SIZE says 5",
        ),
        ("/a 0 120777 1 0 0 0 0.0 - - -\n", "non-empty target"),
        (
            "/a 1 100644 1 0 0 0 0.0 - - abc\n",
            "DIGEST must be 64 hex digits",
        ),
        (
            "/a 1 100644 1 0 0 0 0.0 \\q - -\n",
            "unsupported escape \\q",
        ),
        ("/a 1 100644 1 0 0 0\n", "missing field MTIME"),
        (
            "/a x 100644 1 0 0 0 0.0 - - -\n",
            "field SIZE: invalid size \"x\"",
        ),
        ("/a 0 100644 1 0 0 0 0 - - -\n", "field MTIME"),
        ("/a 0 100644 1 0 0 0 0.1000000000 - - -\n", "field MTIME"),
        ("/a 0 100644 1 0 4294967296 0 0.0 - - -\n", "field GID"),
        (
            "/a\0 0 100644 1 0 0 0 0.0 - - -\n",
            "embedded NUL byte at column 2",
        ),
    ];
    for (line, want) in after_root {
        let e = err_of(&format!("{root}{line}"), false);
        assert!(e.contains(want), "{line:?}: {e}");
    }
    let strict_only: &[(&str, &str)] = &[
        ("/a 0 100644 1 0 0 7 0.0 - - -\n", "non-zero RDEV"),
        (
            "/a 9 120777 1 0 0 0 0.0 abc - -\n",
            "symlink SIZE 9 differs from the target length 3",
        ),
        ("/a 0 100644 1 0 0 0 0.0 - - -", "line 2: missing newline"),
    ];
    for (line, want) in strict_only {
        let input = format!("{root}{line}");
        assert!(
            parse_bytes(input.as_bytes(), ParseOptions::default()).is_ok(),
            "{line:?}"
        );
        let e = err_of(&input, true);
        assert!(e.contains(want), "{line:?}: {e}");
    }
}

/// The 65535-byte limit applies to a line's xattrs as written, so raw
/// bytes that printing escapes (`\xNN`, four times longer) can make a
/// parsed tree's dump unreadable. mkcomposefs 1.0.8 and composefs-info
/// behave the same: `mkcomposefs --from-file` accepts this line, and the
/// `composefs-info dump` of the image fails with "Too many xattrs".
#[test]
fn escaping_can_push_xattrs_past_the_line_limit() {
    let mut line = b"/ 4096 40755 2 0 0 0 0.0 - - - user.a=".to_vec();
    line.extend([0x95; 20_000]);
    line.push(b'\n');
    let tree = parse_bytes(&line, ParseOptions { strict: true }).unwrap();
    let dump = to_bytes(&tree);
    assert!(dump.len() > 80_000, "{} bytes", dump.len());
    match parse_bytes(&dump, ParseOptions { strict: true }) {
        Err(Error::Line {
            line: 1,
            error: LineError::XattrsTooLong(n),
        }) => assert!(n > u16::MAX as usize),
        other => panic!("{other:?}"),
    }
}

/// A hardlink to a symlink is valid (mkcomposefs 1.0.8 builds it; found by
/// the erofs_read fuzz target: the reader's dump of such an image did not
/// parse back).
#[test]
fn hardlinks_to_symlinks_parse_and_round_trip() {
    let dump = b"/ 4096 40755 2 0 0 0 0.0 - - -\n/s 3 120777 1 0 0 0 0.0 abc - -\n\
                 /t 3 @120777 1 0 0 0 0.0 /s - -\n";
    let t = parse_bytes(dump, ParseOptions { strict: true }).unwrap();
    let d1 = to_bytes(&t);
    assert!(
        String::from_utf8_lossy(&d1).contains("/t 3 @120777 1 0 0 0 0.0 /s - -"),
        "{}",
        String::from_utf8_lossy(&d1)
    );
    let t2 = parse_bytes(&d1, ParseOptions { strict: true }).unwrap();
    assert_eq!(to_bytes(&t2), d1);
}

/// mkcomposefs places a hardlinked inode at its non-`@` line, even when an
/// `@` line comes first depth-first; the dump printed back keeps that.
#[test]
fn the_non_at_line_is_the_primary_wherever_it_is() {
    let dump = b"/ 4096 40755 2 0 0 0 0.0 - - -
/a 0 @100644 3 0 0 0 0.0 /b - -
/b 0 @100644 3 0 0 0 0.0 /c - -
/c 0 100644 3 0 0 0 0.0 - - -
";
    let t = parse_bytes(dump, ParseOptions { strict: true }).unwrap();
    let root = t.root();
    let p = t.primaries();
    let c = t.lookup(root, b"c").unwrap();
    assert!(p.is_primary(root, 2, c));
    assert!(!p.is_primary(root, 0, c));
    let printed = String::from_utf8(to_bytes(&t)).unwrap();
    assert!(
        printed.contains("/a 0 @100644 3 0 0 0 0.0 /c - -\n"),
        "{printed}"
    );
    assert!(
        printed.contains("/c 0 100644 3 0 0 0 0.0 - - -\n"),
        "{printed}"
    );
}

#[test]
fn an_empty_digest_on_an_external_file_is_refused() {
    let e = err_of(
        "/ 4096 40755 2 0 0 0 0.0 - - -\n/f 9 100644 1 0 0 0 0.0 ab/cd - \n",
        false,
    );
    assert!(e.contains("line 2: DIGEST is empty or missing"), "{e}");
    // Where the digest is unused (inline or empty files), it is harmless.
    parse_bytes(
        b"/ 4096 40755 2 0 0 0 0.0 - - -\n/f 0 100644 1 0 0 0 0.0 ab/cd - \n",
        ParseOptions::default(),
    )
    .unwrap();
}
