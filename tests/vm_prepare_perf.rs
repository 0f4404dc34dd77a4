//! How long `sealroot-prepare` takes for an image of 50,000 files, as the
//! binary itself measures it (`/run/sealroot/status.json` `timings_us`),
//! and how long reading every file of the sealed root takes afterwards
//! (the kernel's fs-verity checks of EROFS metadata and objects).
//!
//! A measurement, not a pass/fail timing: `#[ignore]`d so the default run
//! stays short. Run with
//! `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo test --test vm_prepare_perf -- --ignored --nocapture`.

mod vm_prepare_support;

use sealroot_testbed::{Initramfs, Kernel, MIB, Result, Vm, static_binaries};
use vm_prepare_support::*;

#[test]
#[ignore = "measurement: ~5 min under TCG; run explicitly"]
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
        d.objects.len()
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
