//! Deployed-repository fixtures for the `sealroot-prepare` VM tests.
//!
//! THE ONE PLACE fixtures are made, with the real tools: an OCI layout
//! (tests/oci_support) is sealed with `sealroot oci seal` and deployed with
//! `sealroot deploy --sysroot` on the host, exactly as a build host would.
//! The host has no fs-verity, so every deployment says `"verity": false`;
//! [`seal_disks`] then boots the VM once with every fixture disk attached
//! and runs `sealroot repo enable-verity` there, after loading the
//! signers' certificates into `.fs-verity` (builtin deployments get the
//! artifact's PKCS#7s as builtin signatures, as on a real target).
//!
//! Refusal tests need states the real tools refuse to produce; those are
//! forged here ON TOP of a real deployment, and say so: [`resign_erofs`]
//! (an EROFS signature by another key), [`strip_binding`] (the artifact as
//! sealroot wrote it before binding records), [`pair_with_erofs_of`] (the
//! issue-10 attack: an artifact pairing one image's manifest and config
//! with another image's EROFS), [`point_at_artifact`] (a hint
//! naming another image's artifact), [`tamper`] (a signed file replaced by
//! other bytes with unsigned fs-verity, as an attacker with write access to
//! the disk would: applied in the sealing boot after enable-verity),
//! [`skip_enable_verity`] (a host deployment never given fs-verity), and a
//! signature blob the test removes.
//!
//! Interface: [`deploy_fixture`]`(sysroot_dir, &ImageSpec, &Signing) ->
//! Deployed`, then [`seal_disks`]`(&[sysroot_dir]) -> Vec<DiskImage>`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sealroot::crypto::builder::{Issuer, Role as CertRole, issue};
use sealroot::crypto::key::KeySigner;
use sealroot::crypto::{Cert, KeyAlgorithm, PrivateKey};
use sealroot::oci::artifact::{self, Role, SealArtifact};
use sealroot::oci::binding::SignedBinding;
use sealroot::oci::{Compression, ImageManifest, MediaType, Sha256Digest, Stored};
use sealroot::pkcs7::{SignOptions, sign_fsverity};
use sealroot::repo::json::Deployment;
use sealroot::verity::FsVerityDigest;
use sealroot_testbed::{DiskImage, Initramfs, Kernel, MIB, Result, Vm, static_binaries};

use crate::oci_support::fixture as oci_fixture;
use crate::repo_support::sr_ok;

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

    /// A PKCS#7 over `digest` (only for forging: real signatures come from
    /// `sealroot oci seal`).
    fn sign(&self, digest: &FsVerityDigest) -> Vec<u8> {
        let signer = KeySigner::new(self.key.clone(), self.name.clone());
        sign_fsverity(digest, &signer, &self.cert, &SignOptions::default()).unwrap()
    }

    /// Writes `<name>.key.pem` and `<name>.der` into `dir`; returns their
    /// paths, for `sealroot oci seal --key --cert`.
    pub fn write_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let key = dir.join(format!("{}.key.pem", self.name));
        let cert = dir.join(format!("{}.der", self.name));
        fs::write(&key, self.key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        fs::write(&cert, self.cert.der()).unwrap();
        (key, cert)
    }
}

/// How the deployment carries its signatures (docs/repository.md):
/// `sealroot deploy --signatures=<mode>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigMode {
    /// fs-verity enabled with the builtin signature.
    Builtin,
    /// fs-verity enabled without; the PKCS#7 stays in the artifact.
    Detached,
    /// fs-verity not enabled on the three signed files.
    AttachAtBoot,
}

impl SigMode {
    fn as_arg(self) -> &'static str {
        match self {
            SigMode::Builtin => "builtin",
            SigMode::Detached => "detached",
            SigMode::AttachAtBoot => "attach-at-boot",
        }
    }
}

/// Who signs, how (`sealroot oci seal` with or without `--inline`), and
/// how it is deployed.
pub struct Signing<'a> {
    pub signer: &'a Signer,
    pub mode: SigMode,
    /// `sealroot oci seal --object-signatures` (per-object signatures for
    /// IPE).
    pub objects: bool,
    /// `sealroot oci seal --inline --tag sealed`, then deploy that tag.
    pub inline: bool,
    /// `--algorithm` of `sealroot oci seal` and of the new repository
    /// (`sealroot deploy --algorithm`); `None`: the default (sha256).
    pub algorithm: Option<&'static str>,
}

impl<'a> Signing<'a> {
    pub fn new(signer: &'a Signer, mode: SigMode) -> Self {
        Signing {
            signer,
            mode,
            objects: false,
            inline: false,
            algorithm: None,
        }
    }

    /// Also signs every content object.
    pub fn with_object_signatures(mut self) -> Self {
        self.objects = true;
        self
    }

    pub fn inline(signer: &'a Signer, mode: SigMode) -> Self {
        Signing {
            signer,
            mode,
            objects: false,
            inline: true,
            algorithm: None,
        }
    }

    /// Seals with, and creates the repository for, `fsverity-sha512-12`.
    pub fn sha512(mut self) -> Self {
        self.algorithm = Some("fsverity-sha512-12");
        self
    }
}

/// The `created` time of every fixture image's config (for the rollback
/// floor tests).
pub const CREATED: &str = "2026-03-01T00:00:00Z";

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

    /// [`Self::standard`] that boots in composefs-rs's sense: a kernel in
    /// `/usr/lib/modules`, content in `/boot` (which the bootable variant
    /// empties) and an SELinux policy (whose labels it applies), so `oci
    /// seal` signs a bootable variant too.
    pub fn with_boot(tag: &str) -> ImageSpec {
        let mut b = Self::base();
        b.file("etc/os-release", format!("ID={tag}\n").as_bytes(), 0o644)
            .file("usr/share/big.txt", &big_content(tag), 0o644)
            .dir("usr/lib/modules", 0o755)
            .dir("usr/lib/modules/6.12.0", 0o755)
            .file("usr/lib/modules/6.12.0/vmlinuz", &big_content("kernel"), 0o644)
            .dir("boot", 0o755)
            .file("boot/boot-marker", b"in /boot of the image\n", 0o644)
            .dir("etc/selinux", 0o755)
            .file("etc/selinux/config", b"SELINUXTYPE=targeted\n", 0o644)
            .dir("etc/selinux/targeted", 0o755)
            .dir("etc/selinux/targeted/contexts", 0o755)
            .dir("etc/selinux/targeted/contexts/files", 0o755)
            .file(
                "etc/selinux/targeted/contexts/files/file_contexts",
                b"/.*\tsystem_u:object_r:default_t:s0\n/usr/share(/.*)?\t--\tsystem_u:object_r:usr_t:s0\n",
                0o644,
            );
        ImageSpec { layer: b.finish() }
    }

    /// For IPE: a static busybox as `/bin/busybox` and again as
    /// `/etc/busybox` (the same object, reached through the /etc overlay), and
    /// the test kernel's uncompressed `loop.ko` as
    /// `/usr/lib/modules-test/loop.ko` (a kernel module from the sealed
    /// root).
    pub fn ipe(tag: &str) -> ImageSpec {
        let mut b = Self::base();
        let busybox = fs::read(&sealroot_testbed::initramfs::busybox().unwrap().path).unwrap();
        let kernel = Kernel::get().unwrap();
        let loop_ko = fs::read(
            kernel
                .module("loop")
                .unwrap()
                .file(sealroot_testbed::ModuleForm::Plain),
        )
        .unwrap();
        b.file("etc/os-release", format!("ID={tag}\n").as_bytes(), 0o644)
            .file("usr/share/big.txt", &big_content(tag), 0o644)
            .file("bin/busybox", &busybox, 0o755)
            .symlink("bin/sh", "busybox")
            .file("etc/busybox", &busybox, 0o755)
            .dir("usr/lib/modules-test", 0o755)
            .file("usr/lib/modules-test/loop.ko", &loop_ko, 0o644);
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

/// What [`deploy_fixture`] deployed (from the deployment's
/// `deployment.json`, read with the contract's parser, and the artifact).
#[derive(Debug, Clone)]
pub struct Deployed {
    pub manifest_digest: Sha256Digest,
    pub config_digest: Sha256Digest,
    pub image_digest: FsVerityDigest,
    /// The bootable variant, when the artifact signs one (deployment.json
    /// format 3).
    pub bootable_digest: Option<FsVerityDigest>,
    /// `None` for an image sealed inline.
    pub artifact_digest: Option<Sha256Digest>,
    /// The PKCS#7 blobs of manifest, config, EROFS (none inline).
    pub signature_blobs: Vec<Sha256Digest>,
    /// Objects `sealroot deploy` added to the repository.
    pub objects_added: u64,
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
    fn deployment_json(&self, sysroot: &Path) -> PathBuf {
        repo_dir(sysroot)
            .join(self.deployment_dir())
            .join("deployment.json")
    }
}

/// The repository directory of a sysroot.
pub fn repo_dir(sysroot: &Path) -> PathBuf {
    sysroot.join(sealroot::repo::SYSROOT_DIR)
}

/// Seals `spec` with `signing.signer` (`sealroot oci seal`) and deploys it
/// into `<sysroot>/sealroot` (`sealroot deploy --signatures=<mode>`).
/// The signer's certificate goes to `<sysroot>/.fixture/certs/`, for the
/// sealing boot to load into `.fs-verity`.
pub fn deploy_fixture(sysroot: &Path, spec: &ImageSpec, signing: &Signing<'_>) -> Deployed {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let mut builder = oci_fixture::ImageBuilder::new().layer(spec.layer.clone(), Compression::Gzip);
    builder.created = Some(CREATED.into());
    builder.write(&layout, "latest");
    let mut image = format!("oci:{}:latest", layout.display());
    let (key, cert) = signing.signer.write_files(work.path());
    let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
    let algorithm: Vec<&str> = match signing.algorithm {
        Some(a) => vec!["--algorithm", a],
        None => Vec::new(),
    };
    let mut seal = vec!["oci", "seal", &image, "--key", key, "--cert", cert];
    seal.extend_from_slice(&algorithm);
    if signing.inline {
        seal.extend_from_slice(&["--inline", "--tag", "sealed"]);
    }
    if signing.objects {
        seal.push("--object-signatures");
    }
    sr_ok(&seal);
    if signing.inline {
        image = format!("oci:{}:sealed", layout.display());
    }
    let mut deploy = vec![
        "deploy",
        &image,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--signatures",
        signing.mode.as_arg(),
        "--cert",
        cert,
        "--json",
    ];
    deploy.extend_from_slice(&algorithm);
    let report = sr_ok(&deploy);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let repo = repo_dir(sysroot);
    let manifest: Sha256Digest = report["deployment"]["manifest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dj = repo
        .join("deployments")
        .join(manifest.to_hex())
        .join("deployment.json");
    let d = Deployment::parse(&fs::read(&dj).unwrap()).unwrap();
    assert_eq!(d.signatures.as_str(), signing.mode.as_arg(), "{report}");
    add_cert(sysroot, signing.signer);
    assert_eq!(d.artifact.is_none(), signing.inline, "{report}");
    let signature_blobs = match d.artifact {
        None => Vec::new(),
        Some(a) => {
            let artifact = read_artifact(&repo, &a);
            assert!(
                artifact.binding.is_some(),
                "new seals carry a binding record"
            );
            [Role::Manifest, Role::Config, Role::Merged]
                .map(|r| artifact.entry(r).unwrap().blob.digest)
                .to_vec()
        }
    };
    Deployed {
        manifest_digest: d.manifest.0,
        config_digest: d.config.0,
        image_digest: d.image,
        bootable_digest: d.bootable,
        artifact_digest: d.artifact,
        signature_blobs,
        objects_added: report["objects"]["added"].as_u64().unwrap(),
    }
}

fn add_cert(sysroot: &Path, signer: &Signer) {
    let certs = sysroot.join(".fixture/certs");
    fs::create_dir_all(&certs).unwrap();
    fs::write(
        certs.join(format!("{}.der", signer.name)),
        signer.cert.der(),
    )
    .unwrap();
}

fn read_artifact(repo: &Path, digest: &Sha256Digest) -> SealArtifact {
    let bytes = fs::read(repo.join("blobs/sha256").join(digest.to_hex())).unwrap();
    SealArtifact::parse(&Stored::<ImageManifest>::parse(bytes).unwrap()).unwrap()
}

/// FORGED: replaces the artifact of deployment `d` by one built from it
/// with `edit` applied to its (role, digest, PKCS#7) entries and binding
/// record, writes its blobs into the repository and points
/// `deployment.json` at it (done before the sealing boot, so
/// `enable-verity` attaches the edited signatures as builtin ones).
fn rebuild_artifact(
    sysroot: &Path,
    d: &Deployed,
    edit: impl FnOnce(&mut Vec<(Role, FsVerityDigest, Vec<u8>)>, &mut Option<SignedBinding>),
) -> Deployed {
    let repo = repo_dir(sysroot);
    let blob = |digest: &Sha256Digest| fs::read(repo.join("blobs/sha256").join(digest.to_hex()));
    let old = read_artifact(&repo, &d.artifact_digest.expect("an artifact deployment"));
    let mut sigs: Vec<(Role, FsVerityDigest, Vec<u8>)> = old
        .entries
        .iter()
        .map(|e| (e.role, e.digest, blob(&e.blob.digest).unwrap()))
        .collect();
    let mut binding = old.binding.clone();
    edit(&mut sigs, &mut binding);
    let manifest = Stored::<ImageManifest>::parse(blob(&d.manifest_digest).unwrap()).unwrap();
    let built = artifact::build(
        &manifest.descriptor(MediaType::OCI_MANIFEST),
        old.algorithm,
        &sigs,
        binding.as_ref(),
    )
    .unwrap();
    for bytes in std::iter::once(&built.manifest).chain(built.blobs.iter().map(|(_, b)| b)) {
        let digest = Sha256Digest::of(bytes);
        fs::write(repo.join("blobs/sha256").join(digest.to_hex()), bytes).unwrap();
    }
    let mut dep = Deployment::parse(&fs::read(d.deployment_json(sysroot)).unwrap()).unwrap();
    dep.artifact = Some(built.descriptor.digest);
    fs::write(d.deployment_json(sysroot), dep.to_json()).unwrap();
    let mut forged = d.clone();
    forged.artifact_digest = dep.artifact;
    forged.signature_blobs = sigs
        .iter()
        .map(|(_, _, der)| Sha256Digest::of(der))
        .collect();
    forged
}

/// FORGED on top of a real deployment (no real tool signs one file of an
/// image with another key): the EROFS signature is by `signer`; manifest
/// and config signatures and the binding record stay the deployed ones.
pub fn resign_erofs(sysroot: &Path, d: &Deployed, signer: &Signer) -> Deployed {
    add_cert(sysroot, signer);
    rebuild_artifact(sysroot, d, |sigs, _| {
        for (role, digest, der) in sigs.iter_mut() {
            if *role == Role::Merged {
                *der = signer.sign(digest);
            }
        }
    })
}

/// The artifact as sealroot wrote it before binding records (every
/// signature genuine, nothing tying them together): FORGED from a new
/// seal by dropping the record.
pub fn strip_binding(sysroot: &Path, d: &Deployed) -> Deployed {
    rebuild_artifact(sysroot, d, |_, binding| *binding = None)
}

/// FORGED, the attack of issue 10: an artifact for image `d` whose merged
/// EROFS entry and signature are `other`'s (another image signed by the
/// same key, deployed in the same repository). `keep_record`: keep `d`'s
/// binding record (which names `d`'s own EROFS); else drop it, as an
/// artifact from before binding records would look.
pub fn pair_with_erofs_of(
    sysroot: &Path,
    d: &Deployed,
    other: &Deployed,
    keep_record: bool,
) -> Deployed {
    let repo = repo_dir(sysroot);
    let theirs = read_artifact(&repo, &other.artifact_digest.unwrap());
    let merged = theirs.entry(Role::Merged).unwrap();
    let der = fs::read(repo.join("blobs/sha256").join(merged.blob.digest.to_hex())).unwrap();
    let mut forged = rebuild_artifact(sysroot, d, |sigs, binding| {
        for (role, digest, sig) in sigs.iter_mut() {
            if *role == Role::Merged {
                *digest = merged.digest;
                *sig = der.clone();
            }
        }
        if !keep_record {
            *binding = None;
        }
    });
    // The attacker rewrites the hint too (enable-verity attaches EROFS
    // signatures to the image deployment.json names).
    let mut dep = Deployment::parse(&fs::read(d.deployment_json(sysroot)).unwrap()).unwrap();
    dep.image = merged.digest;
    fs::write(d.deployment_json(sysroot), dep.to_json()).unwrap();
    forged.image_digest = merged.digest;
    forged
}

/// Points the deployment's `deployment.json` at `artifact` (FORGED: a
/// hint naming another image's artifact, which deploy never writes).
/// Only for detached deployments: `enable-verity` would attach the other
/// image's signatures to a builtin one, which the kernel refuses.
pub fn point_at_artifact(sysroot: &Path, d: &Deployed, artifact: Sha256Digest) {
    let mut dep = Deployment::parse(&fs::read(d.deployment_json(sysroot)).unwrap()).unwrap();
    dep.artifact = Some(artifact);
    fs::write(d.deployment_json(sysroot), dep.to_json()).unwrap();
}

/// FORGED after the real deployment got its fs-verity: the sealing boot
/// replaces the repository file `rel` with these edited bytes, with
/// fs-verity enabled without a signature (nobody can forge one), as an
/// attacker with write access to the disk would.
pub fn tamper(sysroot: &Path, rel: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(repo_dir(sysroot).join(rel)).unwrap();
    edit(&mut bytes);
    let dir = sysroot.join(".fixture/tamper");
    fs::create_dir_all(&dir).unwrap();
    let n = fs::read_dir(&dir).unwrap().count();
    fs::write(dir.join(n.to_string()), bytes).unwrap();
    let list = sysroot.join(".fixture/tamper.list");
    let mut text = fs::read_to_string(&list).unwrap_or_default();
    text.push_str(&format!("{n} {rel}\n"));
    fs::write(&list, text).unwrap();
}

/// Makes the sealing boot leave this sysroot as `sealroot deploy` wrote
/// it on the host: no fs-verity anywhere, `"verity": false` (the step a
/// real installation must not forget).
pub fn skip_enable_verity(sysroot: &Path) {
    fs::create_dir_all(sysroot.join(".fixture")).unwrap();
    fs::write(sysroot.join(".fixture/no-enable-verity"), "").unwrap();
}

/// Turns each sysroot directory into an ext4 disk and, in one VM boot with
/// all disks attached (`/dev/vda`, `/dev/vdb`, ...), loads the fixture
/// certificates into `.fs-verity`, runs `sealroot repo enable-verity`
/// (unless [`skip_enable_verity`]) and applies the [`tamper`] list.
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
    if [ -e .fixture/no-enable-verity ]; then
        echo "left as deployed on the host"
    else
        /bin/sealroot repo enable-verity --sysroot $dir || return 1
    fi
    if [ -f .fixture/tamper.list ]; then
        while read -r n rel; do
            cp .fixture/tamper/$n sealroot/tmp/forged &&
            /bin/sealroot enable --hash-alg=sha256 sealroot/tmp/forged &&
            mv sealroot/tmp/forged "sealroot/$rel" || return 1
            echo "tampered with $rel"
        done < .fixture/tamper.list
    fi
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

/// Sealed fixture disks shared by all test processes of one test binary
/// (nextest runs each test in its own process, and every one would seal
/// the same fixtures again): the first process builds them with `build`
/// and stores signers, deployment facts and disks under
/// `CARGO_TARGET_TMPDIR/sealed-<set>/`, keyed by the test executable and
/// the static binaries; the others wait on the lock and load them.
pub fn sealed_set(
    set: &str,
    build: impl FnOnce() -> (Vec<Signer>, Vec<(String, DiskImage, Deployed)>),
) -> (Vec<Signer>, BTreeMap<String, (DiskImage, Deployed)>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sealed-{set}"));
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.join("lock")).unwrap();
    // Released when `lock` is closed, at return.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let bins = static_binaries().expect("static binaries");
    let stamp = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        format!("{} {} {:?}", p.display(), m.len(), m.modified().unwrap())
    };
    let key = [
        std::env::current_exe().unwrap(),
        bins.sealroot.clone(),
        bins.sealroot_prepare.clone(),
    ]
    .iter()
    .map(|p| stamp(p))
    .collect::<Vec<_>>()
    .join("\n");
    let index = dir.join("index.json");
    if fs::read_to_string(dir.join("key")).ok().as_deref() == Some(key.as_str()) {
        let j: serde_json::Value = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
        let signers = j["signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(Signer::from_json)
            .collect();
        let disks = j["disks"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, d)| {
                let disk = DiskImage::open(dir.join(format!("{name}.ext4")));
                (name.clone(), (disk, Deployed::from_json(d)))
            })
            .collect();
        return (signers, disks);
    }
    let _ = fs::remove_file(dir.join("key"));
    let (signers, built) = build();
    let mut disks = BTreeMap::new();
    let mut jdisks = serde_json::Map::new();
    for (name, disk, d) in built {
        let copy = disk
            .copy_to(&dir.join(format!("{name}.ext4")))
            .expect("copying a fixture disk");
        jdisks.insert(name.clone(), d.to_json());
        disks.insert(name, (copy, d));
    }
    let j = serde_json::json!({
        "signers": signers.iter().map(Signer::to_json).collect::<Vec<_>>(),
        "disks": jdisks,
    });
    fs::write(&index, serde_json::to_vec(&j).unwrap()).unwrap();
    fs::write(dir.join("key"), key).unwrap();
    (signers, disks)
}

impl Signer {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "key": self.key.to_pkcs8_pem().unwrap().as_str(),
            "cert": hex::encode(self.cert.der()),
        })
    }

    fn from_json(j: &serde_json::Value) -> Signer {
        let name = j["name"].as_str().unwrap().to_owned();
        Signer {
            key: PrivateKey::from_bytes(j["key"].as_str().unwrap().as_bytes(), &name).unwrap(),
            cert: Cert::from_der(&hex::decode(j["cert"].as_str().unwrap()).unwrap(), &name)
                .unwrap(),
            name,
        }
    }
}

/// An fs-verity digest in hex, sha256 or sha512 by its length.
fn verity_hex(v: &serde_json::Value) -> FsVerityDigest {
    let hex = v.as_str().unwrap();
    let algorithm = if hex.len() == 128 {
        sealroot::verity::HashAlgorithm::Sha512
    } else {
        sealroot::verity::HashAlgorithm::Sha256
    };
    FsVerityDigest::from_hex(algorithm, hex).unwrap()
}

impl Deployed {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "manifest": self.manifest_digest.to_string(),
            "config": self.config_digest.to_string(),
            "image": self.image_digest.to_hex(),
            "bootable": self.bootable_digest.map(|d| d.to_hex()),
            "artifact": self.artifact_digest.map(|d| d.to_string()),
            "signature_blobs": self.signature_blobs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "objects_added": self.objects_added,
        })
    }

    fn from_json(j: &serde_json::Value) -> Deployed {
        let sha = |v: &serde_json::Value| -> Sha256Digest { v.as_str().unwrap().parse().unwrap() };
        Deployed {
            manifest_digest: sha(&j["manifest"]),
            config_digest: sha(&j["config"]),
            image_digest: verity_hex(&j["image"]),
            bootable_digest: (!j["bootable"].is_null()).then(|| verity_hex(&j["bootable"])),
            artifact_digest: (!j["artifact"].is_null()).then(|| sha(&j["artifact"])),
            signature_blobs: j["signature_blobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(sha)
                .collect(),
            objects_added: j["objects_added"].as_u64().unwrap(),
        }
    }
}

/// A private copy of a sealed disk for one test (tests write to disks).
pub fn copy_disk(disk: &DiskImage) -> DiskImage {
    let dir = tempfile::tempdir().unwrap().keep();
    disk.copy_to(&dir.join("disk.ext4"))
        .expect("copying a fixture disk")
}

/// Default disk size for fixtures.
pub const DISK_SIZE: u64 = 96 * MIB;
