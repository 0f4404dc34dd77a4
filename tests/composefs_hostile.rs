//! The EROFS reader against hostile images: mutated and truncated valid
//! images, directory cycles, huge counts. It must return an error or a
//! tree, never panic, and finish quickly.

use proptest::prelude::*;
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions, format, reader};

const DUMP: &str = "/ 4096 40755 2 0 0 0 1.0 - - - security.selinux=a\\x00 user.x=1
/d 0 40755 2 1000 1000 0 2.5 - - - user.x=1
/d/big 100000 100644 2 0 0 0 1.0 ab/cdef - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef trusted.overlay.foo=bar
/d/small 5 100644 1 0 0 0 1.0 - hello -
/d/link 3 120777 1 0 0 0 1.0 abc - -
/d/wh 0 20644 1 0 0 0 1.0 - - -
/d/dev 0 60644 1 70000 0 259 1.0 - - -
/hard 100000 @100644 2 0 0 0 1.0 /d/big - -
";

fn image() -> Vec<u8> {
    let t = dumpfile::parse_bytes(DUMP.as_bytes(), ParseOptions { strict: true }).unwrap();
    erofs::image_bytes(&t, &WriteOptions::default()).unwrap()
}

fn read_quickly(data: &[u8]) -> Result<(), String> {
    let start = std::time::Instant::now();
    let r = reader::read_tree(data).map(|t| {
        let dump = dumpfile::to_bytes(&t);
        dumpfile::parse_bytes(&dump, ParseOptions { strict: true })
            .expect("dump of a read image parses");
    });
    let _ = reader::describe_offset(data, data.len() as u64 / 3);
    assert!(
        start.elapsed().as_secs() < 5,
        "reader took {:?}",
        start.elapsed()
    );
    r.map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_images_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut img = image();
        for (i, b) in flips {
            let i = i.index(img.len());
            img[i] = b;
        }
        let _ = read_quickly(&img);
    }

    #[test]
    fn truncated_images_never_panic(len in 0usize..20000) {
        let img = image();
        let _ = read_quickly(&img[..len.min(img.len())]);
    }
}

/// Points the first non-dot entry of the root directory at the root
/// itself: a cycle the reader must refuse, not follow forever.
#[test]
fn directory_cycles_are_errors() {
    let mut img = image();
    let sb = reader::superblock(&img).unwrap();
    // The root directory has 256 whiteouts, so its dirents are in a block:
    // find its raw_blkaddr in the root inode.
    let root_off = (sb.meta_blkaddr as u64 * format::BLOCK_SIZE + sb.root_nid * 32) as usize;
    let blk = format::get_u32(&img, root_off + 16).unwrap() as usize * 4096;
    // Entries: ".", "..", "00", ... ; "d" comes after "ff"? No: sorted
    // bytewise "." ".." "00".."ff" "d"... so patch every non-dot entry.
    let first_nameoff = format::get_u16(&img, blk + 8).unwrap() as usize;
    for i in 2..first_nameoff / 12 {
        format::put_u64(&mut img, blk + i * 12, sb.root_nid);
        img[blk + i * 12 + 10] = format::ft::DIR;
    }
    let err = read_quickly(&img).unwrap_err();
    assert!(err.contains("reached twice"), "{err}");
}

#[test]
fn valid_image_reads() {
    read_quickly(&image()).unwrap();
    assert!(
        read_quickly(b"")
            .unwrap_err()
            .contains("not a composefs image")
    );
    assert!(
        read_quickly(&[0u8; 8192])
            .unwrap_err()
            .contains("not a composefs image")
    );
}
