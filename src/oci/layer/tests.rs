use std::io::Write;

use super::*;
use crate::oci::digest::Sha256Digest;

fn header(kind: ::tar::EntryType, size: u64) -> ::tar::Header {
    let mut h = ::tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h
}

/// A small tar with one of each kind.
fn sample_tar() -> Vec<u8> {
    let mut b = ::tar::Builder::new(Vec::new());
    b.append_data(
        &mut header(::tar::EntryType::Directory, 0),
        "./etc/",
        &[][..],
    )
    .unwrap();
    b.append_data(
        &mut header(::tar::EntryType::Regular, 5),
        "etc/hosts",
        &b"hello"[..],
    )
    .unwrap();
    let mut h = header(::tar::EntryType::Symlink, 0);
    b.append_link(&mut h, "etc/link", "hosts").unwrap();
    let mut h = header(::tar::EntryType::Link, 0);
    b.append_link(&mut h, "etc/hard", "etc/hosts").unwrap();
    let mut h = header(::tar::EntryType::Char, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", &[][..]).unwrap();
    b.append_data(&mut header(::tar::EntryType::Fifo, 0), "run/fifo", &[][..])
        .unwrap();
    b.append_data(
        &mut header(::tar::EntryType::Regular, 0),
        "etc/.wh.old",
        &[][..],
    )
    .unwrap();
    b.append_data(
        &mut header(::tar::EntryType::Regular, 0),
        "var/.wh..wh..opq",
        &[][..],
    )
    .unwrap();
    b.append_data(
        &mut header(::tar::EntryType::Regular, 0),
        ".wh..wh.plnk",
        &[][..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn reader<'a>(
    blob: &'a [u8],
    media_type: &str,
    diff_id: DiffId,
) -> Result<LayerReader<&'a [u8]>, LayerError> {
    let desc = Descriptor::for_bytes(media_type, blob);
    let v = VerifyingReader::new(blob, "layer", desc.digest, desc.size);
    LayerReader::new(v, &desc, diff_id)
}

/// Each change with the content read for it.
type Changes = Vec<(Change<u64>, Vec<u8>)>;

fn read_all(mut r: LayerReader<&[u8]>) -> Result<Changes, LayerError> {
    let mut out = Vec::new();
    while let Some(c) = r.next_change()? {
        let mut content = Vec::new();
        r.content().read_to_end(&mut content).unwrap();
        out.push((c, content));
    }
    r.finish()?;
    Ok(out)
}

fn paths(changes: &Changes) -> Vec<String> {
    changes
        .iter()
        .map(|(c, _)| match c {
            Change::Add { path, kind, .. } => format!("{} {path}", kind.type_name()),
            Change::Whiteout(p) => format!("whiteout {p}"),
            Change::Opaque(p) => format!("opaque {p}"),
        })
        .collect()
}

#[test]
fn all_compressions_give_the_same_changes() {
    let tar = sample_tar();
    let diff_id = DiffId(Sha256Digest::of(&tar));
    let plain = read_all(reader(&tar, MediaType::OCI_LAYER_TAR, diff_id).unwrap()).unwrap();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    assert_eq!(
        read_all(reader(&gz, MediaType::OCI_LAYER_TAR_GZIP, diff_id).unwrap()).unwrap(),
        plain
    );
    assert_eq!(
        read_all(reader(&gz, MediaType::DOCKER_LAYER_TAR_GZIP, diff_id).unwrap()).unwrap(),
        plain
    );
    assert_eq!(
        read_all(reader(&zs, MediaType::OCI_LAYER_TAR_ZSTD, diff_id).unwrap()).unwrap(),
        plain
    );
    assert_eq!(
        paths(&plain),
        [
            "directory /etc",
            "regular file /etc/hosts",
            "symlink /etc/link",
            "hardlink /etc/hard",
            "character device /dev/null",
            "fifo /run/fifo",
            "whiteout /etc/old",
            "opaque /var",
        ]
    );
    assert_eq!(plain[1].1, b"hello");
    let Change::Add { meta, .. } = &plain[1].0 else {
        panic!()
    };
    assert_eq!(
        (meta.permissions, meta.uid, meta.mtime.sec),
        (0o755, 1000, 1_700_000_000)
    );
    assert!(matches!(
        &plain[4].0,
        Change::Add {
            kind: EntryKind::CharDevice { major: 1, minor: 3 },
            ..
        }
    ));
}

#[test]
fn diff_id_mismatch_is_reported() {
    let tar = sample_tar();
    let wrong = DiffId(Sha256Digest::of(b"other"));
    let e = read_all(reader(&tar, MediaType::OCI_LAYER_TAR, wrong).unwrap()).unwrap_err();
    assert!(matches!(e, LayerError::DiffId { .. }), "{e}");
    assert!(e.to_string().contains(&wrong.to_string()));
}

#[test]
fn blob_tampering_is_reported_by_digest() {
    let tar = sample_tar();
    let diff_id = DiffId(Sha256Digest::of(&tar));
    let gz = gzip(&tar);
    let desc = Descriptor::for_bytes(MediaType::OCI_LAYER_TAR_GZIP, &gz);
    // Append a byte: the blob no longer matches its descriptor's size.
    let mut longer = gz.clone();
    longer.push(0);
    let v = VerifyingReader::new(&longer[..], "layer 1", desc.digest, desc.size);
    let e = read_all(LayerReader::new(v, &desc, diff_id).unwrap()).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
    // Flip a byte of the uncompressed tar and recompress: same size class,
    // different digest; the blob check names the expected digest.
    let mut t2 = tar.clone();
    t2[600] ^= 1;
    let gz2 = gzip(&t2);
    let v = VerifyingReader::new(&gz2[..], "layer 1", desc.digest, gz2.len() as u64);
    let e = read_all(LayerReader::new(v, &desc, diff_id).unwrap()).unwrap_err();
    assert!(e.to_string().contains(&desc.digest.to_string()), "{e}");
}

#[test]
fn magic_must_match_media_type() {
    let tar = sample_tar();
    let d = DiffId(Sha256Digest::of(&tar));
    let e = reader(&tar, MediaType::OCI_LAYER_TAR_GZIP, d)
        .err()
        .unwrap();
    assert!(matches!(e, LayerError::Magic { .. }), "{e}");
    let gz = gzip(&tar);
    let e = reader(&gz, MediaType::OCI_LAYER_TAR, d).err().unwrap();
    assert!(e.to_string().contains("gzip-compressed"), "{e}");
    let e = reader(&gz, MediaType::OCI_LAYER_TAR_ZSTD, d).err().unwrap();
    assert!(e.to_string().contains("gzip-compressed"), "{e}");
    let e = reader(
        &tar,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        d,
    )
    .err()
    .unwrap();
    assert!(matches!(e, LayerError::MediaType { .. }));
}

fn one_entry_tar(name: &[u8], kind: ::tar::EntryType, link: Option<&[u8]>) -> Vec<u8> {
    // Write the name raw into the header (the tar crate's setters refuse
    // `..`, which is exactly what we need to test).
    let mut h = header(kind, 0);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
    }
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.extend([0u8; 1024]);
    v
}

fn entry_error(tar: &[u8]) -> String {
    let d = DiffId(Sha256Digest::of(tar));
    let mut r = reader(tar, MediaType::OCI_LAYER_TAR, d).unwrap();
    let e = r.next_change().unwrap_err();
    assert!(matches!(e, LayerError::Entry { .. }), "{e}");
    e.to_string()
}

#[test]
fn malicious_entries_are_refused_with_layer_and_entry_named() {
    let e = entry_error(&one_entry_tar(
        b"../../etc/passwd",
        ::tar::EntryType::Regular,
        None,
    ));
    assert!(
        e.contains("\"../../etc/passwd\"") && e.contains("climbs above"),
        "{e}"
    );
    assert!(e.contains("layer sha256:"), "{e}");
    let e = entry_error(&one_entry_tar(b"a", ::tar::EntryType::Link, Some(b"../x")));
    assert!(e.contains("hardlink target"), "{e}");
    let e = entry_error(&one_entry_tar(b"a", ::tar::EntryType::Symlink, Some(b"")));
    assert!(e.contains("empty target"), "{e}");
    let e = entry_error(&one_entry_tar(b"./", ::tar::EntryType::Regular, None));
    assert!(
        e.contains("regular file cannot replace the image root"),
        "{e}"
    );
    let e = entry_error(&one_entry_tar(b"/", ::tar::EntryType::Symlink, Some(b"x")));
    assert!(e.contains("cannot replace the image root"), "{e}");
    let e = entry_error(&one_entry_tar(b"d/.wh..", ::tar::EntryType::Regular, None));
    assert!(e.contains("whiteout names no file"), "{e}");
}

#[test]
fn absolute_names_become_relative() {
    let tar = one_entry_tar(b"/etc/x", ::tar::EntryType::Regular, None);
    let d = DiffId(Sha256Digest::of(&tar));
    let ch = read_all(reader(&tar, MediaType::OCI_LAYER_TAR, d).unwrap()).unwrap();
    assert_eq!(ch[0].0.path().as_bytes(), b"etc/x");
}

#[test]
fn unread_content_is_skipped_and_still_hashed() {
    let tar = sample_tar();
    let d = DiffId(Sha256Digest::of(&tar));
    let mut r = reader(&tar, MediaType::OCI_LAYER_TAR, d).unwrap();
    let mut n = 0;
    while r.next_change().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 8);
    assert_eq!(r.finish().unwrap(), (d, tar.len() as u64));
}
