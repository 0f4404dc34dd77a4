//! Dumpfiles at the edges of what mkcomposefs 1.0.8 accepts: for each,
//! sealroot must write mkcomposefs' bytes or refuse with a clear reason —
//! never other bytes. Each refusal case is first shown to be accepted by
//! mkcomposefs (so the case is real), and what mkcomposefs makes of it is
//! documented in docs/sealing.md ("Dumpfiles").

mod common;

use common::*;
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions};

const ROOT: &str = "/ 4096 40755 2 0 0 0 0.0 - - -\n";

/// mkcomposefs' image of `dump` (default versions, lenient parsing), or
/// its error message.
fn mkcomposefs(dump: &str) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let (src, img) = (dir.path().join("in.dump"), dir.path().join("out.cfs"));
    std::fs::write(&src, dump).unwrap();
    let out = tool("mkcomposefs")
        .arg("--from-file")
        .arg(&src)
        .arg(&img)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(std::fs::read(&img).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn ours(dump: &str) -> Result<Vec<u8>, String> {
    let tree = dumpfile::parse_bytes(dump.as_bytes(), ParseOptions::default())
        .map_err(|e| e.to_string())?;
    erofs::image_bytes(&tree, &WriteOptions::default()).map_err(|e| e.to_string())
}

/// Lines both accept, where both must write the same image.
const SAME: &[(&str, &str)] = &[
    (
        "DIGEST `-` on an external file: empty metacopy",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - -\n",
    ),
    (
        "DIGEST in upper case",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ),
    (
        "DIGEST without PAYLOAD",
        "/f 100 100644 1 0 0 0 0.0 - - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ),
    (
        "empty PAYLOAD: no redirect",
        "/f 100 100644 1 0 0 0 0.0  - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ),
    ("empty file, CONTENT missing", "/f 0 100644 1 0 0 0 0.0 -\n"),
    ("empty file, CONTENT empty", "/f 0 100644 1 0 0 0 0.0 - \n"),
    (
        "empty file, empty DIGEST",
        "/f 0 100644 1 0 0 0 0.0 ab/cd - \n",
    ),
    (
        "inline file, empty DIGEST",
        "/f 3 100644 1 0 0 0 0.0 - abc \n",
    ),
    (
        "inline file with PAYLOAD and DIGEST",
        "/f 3 100644 1 0 0 0 0.0 ab/cd abc 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ),
    ("directory, empty DIGEST", "/d 0 40755 2 0 0 0 0.0 - - \n"),
    ("directory, DIGEST missing", "/d 0 40755 2 0 0 0 0.0 - -\n"),
    (
        "directory with PAYLOAD, CONTENT and SIZE",
        "/d 3 40755 2 0 0 0 0.0 foo abc -\n",
    ),
    (
        "symlink, empty DIGEST",
        "/s 6 120777 1 0 0 0 0.0 target - \n",
    ),
    ("fifo with SIZE", "/p 3 10644 1 0 0 0 0.0 - - -\n"),
    ("fifo with CONTENT", "/p 3 10644 1 0 0 0 0.0 - abc -\n"),
    (
        "character device with SIZE",
        "/c 3 20644 1 0 0 5 0.0 - - -\n",
    ),
    (
        "character device with CONTENT",
        "/c 3 20644 1 0 0 5 0.0 - abc -\n",
    ),
    ("negative mtime", "/f 0 100644 1 0 0 0 -5.0 - - -\n"),
    (
        "hardlink line before its target, another file between",
        "/a 0 @100644 2 0 0 0 0.0 /c - -\n/b 0 100644 1 0 0 0 0.0 - - -\n/c 0 100644 2 0 0 0 0.0 - - -\n",
    ),
    (
        "chain of hardlinks to hardlinks",
        "/a 0 @100644 3 0 0 0 0.0 /b - -\n/b 0 @100644 3 0 0 0 0.0 /c - -\n/c 0 100644 3 0 0 0 0.0 - - -\n/aa 0 100644 1 0 0 0 0.0 - - -\n",
    ),
    (
        "hardlink in a subdirectory, target at the root",
        "/a 4096 40755 2 0 0 0 0.0 - - -\n/a/x 0 @100644 2 0 0 0 0.0 /z - -\n/a/y 0 100644 1 0 0 0 0.0 - - -\n/z 0 100644 2 0 0 0 0.0 - - -\n",
    ),
];

/// Lines mkcomposefs accepts but writes from something the line does not
/// say; sealroot refuses them with this reason.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "DIGEST missing on an external file",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef -\n",
        "DIGEST is empty or missing",
    ),
    (
        "DIGEST empty on an external file",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - \n",
        "DIGEST is empty or missing",
    ),
    (
        "DIGEST missing, no PAYLOAD",
        "/f 100 100644 1 0 0 0 0.0 - -\n",
        "DIGEST is empty or missing",
    ),
    (
        "DIGEST too short",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - 0123\n",
        "DIGEST must be 64 hex digits",
    ),
    (
        "DIGEST of 128 hex digits (sha512)",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab\n",
        "DIGEST must be 64 hex digits",
    ),
    (
        "DIGEST not hex",
        "/f 100 100644 1 0 0 0 0.0 ab/cdef - zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n",
        "DIGEST must be 64 hex digits",
    ),
    (
        "SIZE +5",
        "/f +5 100644 1 0 0 0 0.0 - hello -\n",
        "field SIZE: invalid size \"+5\"",
    ),
    (
        "SIZE -1",
        "/f -1 100644 1 0 0 0 0.0 ab/cdef - -\n",
        "field SIZE: invalid size \"-1\"",
    ),
    (
        "SIZE with a leading tab",
        "/f \t5 100644 1 0 0 0 0.0 - hello -\n",
        "field SIZE: invalid size",
    ),
    (
        "MODE +100644",
        "/f 0 +100644 1 0 0 0 0.0 - - -\n",
        "field MODE: invalid octal mode \"+100644\"",
    ),
    (
        "hardlink MODE @+100644",
        "/f 0 100644 1 0 0 0 0.0 - - -\n/g 0 @+100644 1 0 0 0 0.0 /f - -\n",
        "field MODE: invalid octal mode \"+100644\"",
    ),
    (
        "NLINK +1",
        "/f 0 100644 +1 0 0 0 0.0 - - -\n",
        "field NLINK: invalid link count \"+1\"",
    ),
    (
        "UID -1",
        "/f 0 100644 1 -1 0 0 0.0 - - -\n",
        "field UID: invalid uid \"-1\"",
    ),
    (
        "UID 2^32",
        "/f 0 100644 1 4294967296 0 0 0.0 - - -\n",
        "field UID: invalid uid \"4294967296\"",
    ),
    (
        "GID -1",
        "/f 0 100644 1 0 -1 0 0.0 - - -\n",
        "field GID: invalid gid \"-1\"",
    ),
    (
        "RDEV -1",
        "/d 0 20644 1 0 0 -1 0.0 - - -\n",
        "field RDEV: invalid device number \"-1\"",
    ),
    (
        "MTIME +5.0",
        "/f 0 100644 1 0 0 0 +5.0 - - -\n",
        "field MTIME: invalid time",
    ),
    (
        "MTIME nanoseconds 10^9",
        "/f 0 100644 1 0 0 0 5.1000000000 - - -\n",
        "field MTIME: invalid time",
    ),
    (
        "MTIME nanoseconds -1",
        "/f 0 100644 1 0 0 0 5.-1 - - -\n",
        "field MTIME: invalid time",
    ),
];

#[test]
fn accepted_edge_cases_give_mkcomposefs_bytes() {
    for (what, line) in SAME {
        let dump = format!("{ROOT}{line}");
        let theirs = mkcomposefs(&dump).unwrap_or_else(|e| panic!("{what}: mkcomposefs: {e}"));
        let mine = ours(&dump).unwrap_or_else(|e| panic!("{what}: sealroot refused: {e}"));
        if let Some(d) = first_difference(&mine, &theirs) {
            panic!("{what}: {d}");
        }
    }
}

#[test]
fn edge_cases_mkcomposefs_would_misread_are_refused() {
    for (what, line, reason) in REFUSED {
        let dump = format!("{ROOT}{line}");
        assert!(
            mkcomposefs(&dump).is_ok(),
            "{what}: mkcomposefs 1.0.8 refuses it too; the case is not an edge any more"
        );
        let err = ours(&dump).expect_err(what);
        assert!(err.contains("dumpfile line"), "{what}: {err}");
        assert!(err.contains(reason), "{what}: {err}");
    }
}

/// Why an empty DIGEST is refused rather than read as "no digest": to
/// mkcomposefs it is not `-` — it records a digest (whatever its
/// `digest_to_raw` buffer held, uninitialized), which composefs-info then
/// prints, where `-` gives none.
#[test]
fn mkcomposefs_records_a_digest_for_an_empty_digest_field() {
    let line = |digest: &str| format!("{ROOT}/f 100 100644 1 0 0 0 0.0 ab/cdef - {digest}\n");
    let dump = |img: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.cfs");
        std::fs::write(&p, img).unwrap();
        String::from_utf8_lossy(&run(tool("composefs-info").arg("dump").arg(&p)).stdout)
            .into_owned()
    };
    let none = dump(&mkcomposefs(&line("-")).unwrap());
    let empty = dump(&mkcomposefs(&line("")).unwrap());
    let last_field = |d: &str| {
        d.lines()
            .last()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(last_field(&none), "-", "{none}");
    let recorded = last_field(&empty);
    assert_eq!(recorded.len(), 64, "{empty}");
    assert!(recorded.bytes().all(|b| b.is_ascii_hexdigit()), "{empty}");
}
