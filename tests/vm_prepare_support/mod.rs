//! Deployed-repository fixtures for the `sealroot-prepare` VM tests.
//!
//! THE ONE PLACE fixtures are made. Until `sealroot deploy` lands, a
//! deployment is assembled here from the merged library pieces, following
//! `docs/repository.md`: OCI layout (tests/oci_support) -> import into a
//! `Tree` with the objects written to `objects/XX/..` -> `erofs::image_bytes`
//! -> `pkcs7::sign_fsverity` of manifest, config and EROFS ->
//! `oci::artifact::build`. fs-verity cannot be enabled on the host's
//! `mkfs.ext4 -d` image, so [`seal_disks`] boots the VM once with every
//! fixture disk attached and enables verity there (with the builtin
//! signature in builtin mode), using the static `sealroot enable`.
//!
//! Interface kept small for the switch to `sealroot deploy`:
//! [`deploy_fixture`]`(sysroot_dir, &ImageSpec, &Signing) -> Deployed`, then
//! [`seal_disks`]`(&[sysroot_dir]) -> Vec<DiskImage>`.
#![allow(dead_code)]

#[path = "../oci_support/fixture.rs"]
mod oci_fixture;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sealroot::crypto::builder::{Issuer, Role as CertRole, issue};
use sealroot::crypto::key::KeySigner;
use sealroot::crypto::{Cert, KeyAlgorithm, PrivateKey};
use sealroot::erofs::{WriteOptions, image_bytes};
use sealroot::oci::artifact::{self, Role, VerityAlgorithm};
use sealroot::oci::import::{apply_layers, import_layers};
use sealroot::oci::layout::ImageLayout;
use sealroot::oci::sink::{ObjectSink, copy_exact};
use sealroot::oci::{Compression, ImageReference, MediaType, Platform, Sha256Digest};
use sealroot::pkcs7::{SignOptions, sign_fsverity};
use sealroot::tree::store::object_path;
use sealroot::tree::{Stat, Timestamp, Tree, mode};
use sealroot::verity::digest::{MerkleHasher, digest_bytes};
use sealroot::verity::{FsVerityDigest, VerityParams};
use sealroot_testbed::{DiskImage, Initramfs, Kernel, MIB, Result, Vm, static_binaries};

pub use oci_fixture::LayerBuilder;

/// A signing key and its (self-signed, ECDSA P-256) certificate.
pub struct Signer {
    pub name: String,
    pub key: PrivateKey,
    pub cert: Cert,
}

impl Signer {
    pub fn generate(name: &str) -> Signer {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = issue(
            &key,
            &format!("CN={name},O=sealroot tests"),
            CertRole::Signer,
            Issuer::SelfSigned,
            30,
        )
        .unwrap();
        Signer {
            name: name.into(),
            key,
            cert,
        }
    }

    fn sign(&self, digest: &FsVerityDigest) -> Vec<u8> {
        let signer = KeySigner::new(self.key.clone(), self.name.clone());
        sign_fsverity(digest, &signer, &self.cert, &SignOptions::default()).unwrap()
    }
}

/// How the deployment carries its signatures (docs/repository.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigMode {
    /// fs-verity enabled with the builtin signature.
    Builtin,
    /// fs-verity enabled without; the PKCS#7 stays in the artifact.
    Detached,
    /// fs-verity not enabled on the three signed files.
    AttachAtBoot,
}

/// Who signs, and how it is deployed.
pub struct Signing<'a> {
    pub signer: &'a Signer,
    /// Signs the merged EROFS instead of `signer` (untrusted-key tests).
    pub erofs_signer: Option<&'a Signer>,
    pub mode: SigMode,
}

impl<'a> Signing<'a> {
    pub fn new(signer: &'a Signer, mode: SigMode) -> Self {
        Signing {
            signer,
            erofs_signer: None,
            mode,
        }
    }
}

/// The image to deploy: one tar layer.
pub struct ImageSpec {
    pub layer: Vec<u8>,
}

/// Content of the big test file of an image tagged `tag`.
pub fn big_content(tag: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u32;
    while v.len() < 20000 {
        v.extend_from_slice(format!("{tag} line {i}\n").as_bytes());
        i += 1;
    }
    v
}

impl ImageSpec {
    /// A small OS-like tree: the directories a root needs, small (inline)
    /// and large (object-store) files whose content names `tag`.
    pub fn standard(tag: &str) -> ImageSpec {
        let mut b = Self::base();
        b.file("etc/os-release", format!("ID={tag}\n").as_bytes(), 0o644)
            .file("usr/share/big.txt", &big_content(tag), 0o644)
            .file(
                "usr/share/other.txt",
                &big_content(&format!("{tag}-other")),
                0o644,
            );
        ImageSpec { layer: b.finish() }
    }

    /// [`Self::standard`] plus a static busybox and an `/sbin/init` that
    /// prints `SEALROOT-SWITCHED <tag>`, for a real switch_root.
    pub fn bootable(tag: &str) -> ImageSpec {
        let mut b = Self::base();
        let busybox = fs::read(&sealroot_testbed::initramfs::busybox().unwrap().path).unwrap();
        b.file("etc/os-release", format!("ID={tag}\n").as_bytes(), 0o644)
            .file("usr/share/big.txt", &big_content(tag), 0o644)
            .file("bin/busybox", &busybox, 0o755)
            .symlink("bin/sh", "busybox")
            .file(
                "sbin/init",
                concat!(
                    "#!/bin/busybox sh\n",
                    "/bin/busybox echo \"SEALROOT-SWITCHED $(/bin/busybox cat /etc/os-release)\"\n",
                    "/bin/busybox mount -t proc proc /proc\n",
                    "/bin/busybox echo \"root: $(/bin/busybox grep ' / ' /proc/mounts)\"\n",
                    "/bin/busybox poweroff -f\n"
                )
                .as_bytes(),
                0o755,
            );
        ImageSpec { layer: b.finish() }
    }

    /// `n` files in 100-file directories: `small` of them inline (<= 64
    /// bytes), the others 4 KiB files drawn from `distinct` contents (the
    /// object store deduplicates, as it does for real images).
    pub fn many_files(tag: &str, n: usize, small: usize, distinct: usize) -> ImageSpec {
        let mut b = Self::base();
        b.file("etc/os-release", format!("ID={tag}\n").as_bytes(), 0o644)
            .file("usr/share/big.txt", &big_content(tag), 0o644);
        for d in 0..n.div_ceil(100) {
            b.dir(&format!("usr/lib/d{d:04}"), 0o755);
        }
        for i in 0..n {
            let path = format!("usr/lib/d{:04}/f{i:06}", i / 100);
            if i < small {
                b.file(&path, format!("small {i}\n").as_bytes(), 0o644);
            } else {
                let mut content = format!("object {} of {tag}\n", i % distinct).into_bytes();
                content.resize(4096, b'.');
                b.file(&path, &content, 0o644);
            }
        }
        ImageSpec { layer: b.finish() }
    }

    fn base() -> LayerBuilder {
        let mut b = LayerBuilder::new();
        for d in [
            "bin",
            "dev",
            "etc",
            "proc",
            "run",
            "sbin",
            "sys",
            "sysroot",
            "tmp",
            "usr",
            "usr/bin",
            "usr/lib",
            "usr/share",
            "var",
        ] {
            b.dir(d, 0o755);
        }
        b.file("etc/hostname", b"sealed\n", 0o644);
        b.symlink("usr/share/link", "big.txt");
        b
    }
}

/// What [`deploy_fixture`] deployed.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub manifest_digest: Sha256Digest,
    pub config_digest: Sha256Digest,
    pub image_digest: FsVerityDigest,
    pub artifact_digest: Sha256Digest,
    /// The PKCS#7 blobs of manifest, config, EROFS.
    pub signature_blobs: [Sha256Digest; 3],
    /// Object paths below the repository, in the order written.
    pub objects: Vec<String>,
}

impl Deployed {
    pub fn manifest_path(&self) -> String {
        format!("blobs/sha256/{}", self.manifest_digest.to_hex())
    }
    pub fn config_path(&self) -> String {
        format!("blobs/sha256/{}", self.config_digest.to_hex())
    }
    pub fn image_path(&self) -> String {
        format!("images/{}", self.image_digest.to_hex())
    }
    pub fn deployment_dir(&self) -> String {
        format!("deployments/{}", self.manifest_digest.to_hex())
    }
}

/// Writes objects to `<repo>/objects/XX/<rest>` as the import streams them.
struct RepoSink {
    objects: PathBuf,
    params: VerityParams,
    written: Mutex<Vec<String>>,
}

impl ObjectSink for RepoSink {
    fn params(&self) -> &VerityParams {
        &self.params
    }

    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<FsVerityDigest> {
        let mut data = Vec::with_capacity(size as usize);
        let mut hasher = MerkleHasher::new(&self.params);
        copy_exact(content, size, |chunk| {
            hasher.update(chunk);
            data.extend_from_slice(chunk);
            Ok(())
        })?;
        let digest = hasher.finish();
        let rel = object_path(&digest);
        let path = self.objects.join(&rel);
        fs::create_dir_all(path.parent().unwrap())?;
        if !path.exists() {
            fs::write(&path, &data)?;
            self.written.lock().unwrap().push(format!("objects/{rel}"));
        }
        Ok(digest)
    }
}

/// The repository directory of a sysroot.
pub fn repo_dir(sysroot: &Path) -> PathBuf {
    sysroot.join("sealroot")
}

/// Deploys `spec` into `<sysroot>/sealroot` (docs/repository.md), signed
/// by `signing`; records in `<sysroot>/.fixture/` what [`seal_disks`]
/// must enable fs-verity on.
pub fn deploy_fixture(sysroot: &Path, spec: &ImageSpec, signing: &Signing<'_>) -> Deployed {
    let repo = repo_dir(sysroot);
    for d in [
        "objects",
        "images",
        "blobs/sha256",
        "deployments",
        "by-config",
        "by-image",
        "tmp",
    ] {
        fs::create_dir_all(repo.join(d)).unwrap();
    }
    let alg = VerityAlgorithm::SHA256_12;
    fs::write(
        repo.join("repo.json"),
        format!("{{\"format\":1,\"algorithm\":\"{alg}\"}}\n"),
    )
    .unwrap();

    // The OCI image, as a registry would hand it over.
    let oci = tempfile::tempdir().unwrap();
    oci_fixture::ImageBuilder::new()
        .layer(spec.layer.clone(), Compression::Gzip)
        .write(oci.path(), "latest");
    let reference: ImageReference = format!("oci:{}:latest", oci.path().display())
        .parse()
        .unwrap();
    let layout = ImageLayout::open(&reference).unwrap();
    let image = layout
        .resolve(&reference.selector, &Platform::host())
        .unwrap();

    // Import: objects into the repository, the merged tree in memory.
    let sink = RepoSink {
        objects: repo.join("objects"),
        params: VerityParams::sha256(),
        written: Mutex::new(Vec::new()),
    };
    let layers = import_layers(&layout, &image, &sink).unwrap();
    let mut tree = Tree::new(Stat {
        mode: mode::S_IFDIR | 0o755,
        nlink: 2,
        mtime: Timestamp {
            sec: oci_fixture::MTIME as i64,
            nsec: 0,
        },
        ..Stat::default()
    })
    .unwrap();
    apply_layers(&mut tree, &layers).unwrap();
    tree.recount_nlinks();
    let erofs = image_bytes(&tree, &WriteOptions::default()).unwrap();

    // Digests and signatures.
    let params = alg.params();
    let manifest = image.manifest.bytes();
    let config = image.config.bytes();
    let (dm, dc, de) = (
        digest_bytes(&params, manifest),
        digest_bytes(&params, config),
        digest_bytes(&params, &erofs),
    );
    let signer = signing.signer;
    let erofs_signer = signing.erofs_signer.unwrap_or(signer);
    let sigs = [
        (Role::Manifest, dm, signer.sign(&dm)),
        (Role::Config, dc, signer.sign(&dc)),
        (Role::Merged, de, erofs_signer.sign(&de)),
    ];
    let subject = image.manifest.descriptor(MediaType::OCI_MANIFEST);
    let built = artifact::build(&subject, alg, &sigs).unwrap();

    // The repository files.
    let blob = |bytes: &[u8]| {
        let d = Sha256Digest::of(bytes);
        fs::write(repo.join("blobs/sha256").join(d.to_hex()), bytes).unwrap();
        d
    };
    let m = blob(manifest);
    let c = blob(config);
    let a = blob(&built.manifest);
    for (_, bytes) in &built.blobs {
        blob(bytes);
    }
    let sig_blobs = [0, 1, 2].map(|i| Sha256Digest::of(&sigs[i].2));
    fs::write(repo.join("images").join(de.to_hex()), &erofs).unwrap();
    let dep = repo.join("deployments").join(m.to_hex());
    for d in ["etc/upper", "etc/work", "var"] {
        fs::create_dir_all(dep.join(d)).unwrap();
    }
    let mode_name = match signing.mode {
        SigMode::Builtin => "builtin",
        SigMode::Detached => "detached",
        SigMode::AttachAtBoot => "attach-at-boot",
    };
    fs::write(
        dep.join("deployment.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "format": 1,
            "manifest": m.to_string(),
            "config": c.to_string(),
            "artifact": a.to_string(),
            "image": de.to_hex(),
            "algorithm": alg.to_string(),
            "signatures": mode_name,
            "source": "oci:fixture:latest",
            "deployed_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap(),
    )
    .unwrap();
    let target = format!("../deployments/{}", m.to_hex());
    let _ = symlink(&target, repo.join("by-config").join(c.to_hex()));
    let _ = symlink(&target, repo.join("by-image").join(de.to_hex()));

    // What the sealing boot must do.
    let objects = sink.written.into_inner().unwrap();
    let mut plan: Vec<String> = objects
        .iter()
        .map(|o| format!("sha256 sealroot/{o} -"))
        .collect();
    let signed = [
        (format!("blobs/sha256/{}", m.to_hex()), sig_blobs[0]),
        (format!("blobs/sha256/{}", c.to_hex()), sig_blobs[1]),
        (format!("images/{}", de.to_hex()), sig_blobs[2]),
    ];
    for (path, sig) in &signed {
        match signing.mode {
            SigMode::Builtin => plan.push(format!(
                "sha256 sealroot/{path} sealroot/blobs/sha256/{}",
                sig.to_hex()
            )),
            SigMode::Detached => plan.push(format!("sha256 sealroot/{path} -")),
            SigMode::AttachAtBoot => {}
        }
    }
    let fixture = sysroot.join(".fixture");
    fs::create_dir_all(fixture.join("certs")).unwrap();
    for s in [signer, erofs_signer] {
        fs::write(
            fixture.join("certs").join(format!("{}.der", s.name)),
            s.cert.der(),
        )
        .unwrap();
    }
    let list = fixture.join("verity.list");
    let mut lines: Vec<String> = fs::read_to_string(&list)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let known: BTreeSet<String> = lines.iter().cloned().collect();
    lines.extend(plan.into_iter().filter(|l| !known.contains(l)));
    fs::write(&list, lines.join("\n") + "\n").unwrap();

    Deployed {
        manifest_digest: m,
        config_digest: c,
        image_digest: de,
        artifact_digest: a,
        signature_blobs: sig_blobs,
        objects,
    }
}

/// Replaces a repository file with other bytes, as an attacker with write
/// access to the disk would: the sealing boot enables fs-verity on it
/// without a signature (nobody can forge one).
pub fn tamper(sysroot: &Path, rel: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let path = repo_dir(sysroot).join(rel);
    let mut bytes = fs::read(&path).unwrap();
    edit(&mut bytes);
    fs::write(&path, bytes).unwrap();
    let list = sysroot.join(".fixture/verity.list");
    let text = fs::read_to_string(&list).unwrap();
    let prefix = format!("sha256 sealroot/{rel} ");
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}-")
            } else {
                l.to_owned()
            }
        })
        .collect();
    fs::write(&list, out.join("\n") + "\n").unwrap();
}

/// Turns each sysroot directory into an ext4 disk and enables fs-verity
/// on the files [`deploy_fixture`] listed, in one VM boot with all disks
/// attached (`/dev/vda`, `/dev/vdb`, ...).
pub fn seal_disks(sysroots: &[&Path], size: u64) -> Result<Vec<DiskImage>> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let mut disks = Vec::new();
    for s in sysroots {
        disks.push(sealroot_testbed::ext4_image(s, size)?);
    }
    let scenario = r#"
seal_one() {
    dev=$1; dir=/mnt/$(basename $dev)
    mkdir -p $dir && mount -t ext4 $dev $dir || return 1
    cd $dir || return 1
    for c in .fixture/certs/*; do
        /bin/sealroot keyring add "$c" >/dev/null || return 1
    done
    n=0
    while read -r alg path sig; do
        [ -n "$path" ] || continue
        if [ "$sig" = - ]; then
            /bin/sealroot enable --hash-alg=$alg "$path" || return 1
        else
            /bin/sealroot enable --hash-alg=$alg --signature="$sig" "$path" || return 1
        fi
        n=$((n + 1))
    done < .fixture/verity.list
    echo "$n files"
    cd / && umount $dir
}
for dev in /dev/vd?; do
    bed_run "seal:$(basename $dev)" seal_one $dev || exit 1
done
"#;
    let image = Initramfs::test(kernel, scenario)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(bins);
    let mut vm = Vm::new(kernel, image)
        .name("seal-fixture-disks")
        .timeout(std::time::Duration::from_secs(600));
    for d in &disks {
        vm = vm.disk(d);
    }
    let log = vm.run()?;
    log.assert_scenario_ok()?;
    for i in 0..disks.len() {
        let name = format!("seal:vd{}", (b'a' + i as u8) as char);
        log.result(&name)?.assert_ok()?;
    }
    Ok(disks)
}

/// A private copy of a sealed disk for one test (tests write to disks).
pub fn copy_disk(disk: &DiskImage) -> DiskImage {
    let dir = tempfile::tempdir().unwrap().keep();
    let dest = dir.join("disk.ext4");
    let status = std::process::Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(disk.path())
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success(), "cp of {} failed", disk.path().display());
    DiskImage::open(dest)
}

/// Flips one byte inside the data of `rel` (a file below the repository)
/// directly in the disk image, below ext4 and fs-verity: finds the file's
/// first physical block with `debugfs -R "bmap <path> 0"`.
pub fn corrupt_on_disk(disk: &DiskImage, rel: &str, offset_in_block: u64) {
    let out = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap /sealroot/{rel} 0"))
        .arg(disk.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let block: u64 = text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "debugfs bmap {rel}: {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk.path())
        .unwrap();
    let at = block * 4096 + offset_in_block;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x55;
    f.write_all_at(&b, at).unwrap();
}

/// Default disk size for fixtures.
pub const DISK_SIZE: u64 = 96 * MIB;
