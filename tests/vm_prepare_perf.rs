//! How long `sealroot-prepare` takes for an image of 50,000 files, as the
//! binary itself measures it (`/run/sealroot/status.json` `timings_us`),
//! and how long reading every file of the sealed root takes afterwards
//! (the kernel's fs-verity checks of EROFS metadata and objects).
//!
//! The image is sealed and deployed with the real `sealroot oci seal` and
//! `sealroot deploy` on the host, and gets its fs-verity (builtin
//! signatures) from `sealroot repo enable-verity` in a sealing boot.
//!
//! A measurement, not a pass/fail timing: `#[ignore]`d so the default run
//! stays short. Run with
//! `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo nextest run --test vm_prepare_perf --run-ignored all --success-output final`
//! (or `cargo test --test vm_prepare_perf -- --ignored --nocapture`).

mod oci_support;
mod repo_support;
mod vm_prepare_support;

use sealroot_testbed::{Initramfs, Kernel, MIB, Result, Vm, static_binaries};
use vm_prepare_support::*;

#[test]
#[ignore = "measurement: ~1.5-2 min under TCG (seal, deploy, two boots); run explicitly"]
fn prepare_timings_for_50000_files() -> Result<()> {
    let signer = Signer::generate("perf");
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec::many_files("perf", 50_000, 25_000, 2_000);
    let d = deploy_fixture(dir.path(), &spec, &Signing::new(&signer, SigMode::Builtin));
    let erofs = std::fs::metadata(repo_dir(dir.path()).join(d.image_path()))
        .unwrap()
        .len();
    println!(
        "EROFS image: {erofs} bytes for 50,000 files (+ {} objects)",
        d.objects_added
    );
    let disk = seal_disks(&[dir.path()], 256 * MIB)?.remove(0);

    let kernel = Kernel::get()?;
    let scenario = r#"
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
bed_run count sh -c 'find /sysroot/usr/lib -type f | wc -l'
bed_run read-all sh -c 'find /sysroot/usr/lib -type f -exec cat {} + | wc -c'
cd / && umount -l /sysroot
"#;
    let image = Initramfs::test(kernel, scenario)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(static_binaries()?)
        .mount("/dev/vda", "/sysroot", "ext4", "")
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/perf.der",
            signer.cert.der().to_vec(),
            0o644,
        );
    let log = Vm::new(kernel, image)
        .name("prepare-perf-50000")
        .cmdline(&format!("sealroot=sha256:{}", d.manifest_digest.to_hex()))
        .timeout(std::time::Duration::from_secs(900))
        .disk(&disk)
        .run()?;
    log.result("prepare")?.assert_ok()?;
    log.result("count")?.assert_stdout_eq("50000\n")?;
    let status: serde_json::Value = serde_json::from_str(log.value("status")?).unwrap();
    println!("prepare: {} ms wall (bed)", log.result("prepare")?.ms);
    println!("timings_us: {}", status["timings_us"]);
    println!(
        "find: {} ms; read all: {} ms ({} bytes)",
        log.result("count")?.ms,
        log.result("read-all")?.ms,
        log.result("read-all")?.stdout.trim()
    );
    Ok(())
}

/// The userspace share of `sealroot-prepare`'s work, natively on the host:
/// what the binary computes itself once the kernel has measured the files
/// (command line, config, certificates, the three JSON documents, the
/// artifact, three PKCS#7 checks). The kernel's part (module loading,
/// add_key, fs-verity measuring and hashing, mounts) is not included.
#[test]
#[ignore = "measurement; run explicitly (release: cargo test --release ...)"]
fn userspace_work_natively() {
    use sealroot::oci::artifact::{Role, SealArtifact};
    use sealroot::oci::{ImageConfig, ImageManifest, Stored};
    use sealroot::prepare::{cmdline, config};
    use sealroot::verity::digest::digest_bytes;
    use std::time::Instant;

    let signer = Signer::generate("native");
    let dir = tempfile::tempdir().unwrap();
    let d = deploy_fixture(
        dir.path(),
        &ImageSpec::standard("native"),
        &Signing::new(&signer, SigMode::Detached),
    );
    let repo = repo_dir(dir.path());
    let certs_dir = dir.path().join("certs.d");
    std::fs::create_dir(&certs_dir).unwrap();
    std::fs::write(certs_dir.join("a.der"), signer.cert.der()).unwrap();
    let read = |rel: String| std::fs::read(repo.join(rel)).unwrap();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        let sel = cmdline::parse(&format!(
            "BOOT_IMAGE=/vmlinuz root=/dev/vda rw quiet sealroot=sha256:{}",
            d.manifest_digest.to_hex()
        ))
        .unwrap();
        std::hint::black_box(sel);
        config::parse(
            "[verify]\nsignatures = kernel\n[etc]\nmode = persistent\n",
            "c",
        )
        .unwrap();
        let certs = sealroot::crypto::Cert::load(&certs_dir).unwrap();
        let artifact = Stored::<ImageManifest>::parse(read(format!(
            "blobs/sha256/{}",
            d.artifact_digest.unwrap().to_hex()
        )))
        .unwrap();
        let artifact = SealArtifact::parse(&artifact).unwrap();
        let manifest = Stored::<ImageManifest>::parse(read(d.manifest_path())).unwrap();
        let config = read(d.config_path());
        let _ = Stored::<ImageConfig>::parse(config).unwrap();
        artifact
            .check_subject(d.artifact_digest.unwrap(), &manifest)
            .unwrap();
        for (role, blob) in [Role::Manifest, Role::Config, Role::Merged]
            .into_iter()
            .zip(d.signature_blobs.iter())
        {
            let entry = artifact.entry(role).unwrap();
            let sig = read(format!("blobs/sha256/{}", blob.to_hex()));
            sealroot::pkcs7::verify_fsverity(&sig, &entry.digest, &certs).unwrap();
        }
    }
    let per_run = start.elapsed() / runs;
    // For scale: the kernel hashes the (small) manifest; what the userspace
    // digest of the EROFS would cost is shown, though prepare never does it.
    let erofs = read(d.image_path());
    let t = Instant::now();
    digest_bytes(&sealroot::verity::VerityParams::sha256(), &erofs);
    println!(
        "userspace work per boot: {per_run:?} (ECDSA P-256, {} byte EROFS would hash in {:?})",
        erofs.len(),
        t.elapsed()
    );
}

/// The first boot of an image deployed on a build host (mkosi's
/// `attach-at-boot`: no fs-verity anywhere) and sealed with per-object
/// signatures: how long `sealroot-prepare` takes to give 20,000 objects
/// fs-verity with their builtin signatures (`timings_us.objects`; the
/// kernel checks each PKCS#7 as it enables fs-verity), the one-time cost
/// docs/ipe.md and docs/boot-chains.md speak of.
#[test]
#[ignore = "measurement: ~3-6 min under TCG (seal 20,000 object signatures, deploy, two boots); run explicitly"]
fn first_boot_attach_with_object_signatures() -> Result<()> {
    let signer = Signer::generate("perf-objects");
    let dir = tempfile::tempdir().unwrap();
    // 20,000 distinct 4 KiB objects (no small files): one signature each.
    let spec = ImageSpec::many_files("perf-objects", 20_000, 0, 20_000);
    let d = deploy_fixture(
        dir.path(),
        &spec,
        &Signing::new(&signer, SigMode::AttachAtBoot).with_object_signatures(),
    );
    skip_enable_verity(dir.path());
    let disk = seal_disks(&[dir.path()], 256 * MIB)?.remove(0);

    let kernel = Kernel::get()?;
    let scenario = r#"
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
cd / && umount -l /sysroot
"#;
    let image = Initramfs::test(kernel, scenario)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(static_binaries()?)
        .mount("/dev/vda", "/sysroot", "ext4", "")
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/perf.der",
            signer.cert.der().to_vec(),
            0o644,
        )
        .file(
            "/etc/sealroot/prepare.conf",
            "[verify]\nattach-signatures = yes\n",
            0o644,
        );
    let log = Vm::new(kernel, image)
        .name("prepare-perf-attach-objects")
        .cmdline(&format!("sealroot=sha256:{}", d.manifest_digest.to_hex()))
        .timeout(std::time::Duration::from_secs(1200))
        .disk(&disk)
        .run()?;
    log.result("prepare")?.assert_ok()?;
    let status: serde_json::Value = serde_json::from_str(log.value("status")?).unwrap();
    let objects = &status["objects_verity"];
    assert!(objects["signed"].as_u64().unwrap() >= 20_000, "{objects}");
    println!(
        "first boot: {} objects given fs-verity ({} with their builtin signature) in {} ms; \
         prepare total {} ms; timings_us: {}",
        objects["enabled"],
        objects["signed"],
        status["timings_us"]["objects"].as_u64().unwrap_or(0) / 1000,
        status["timings_us"]["total"].as_u64().unwrap_or(0) / 1000,
        status["timings_us"]
    );
    Ok(())
}
