//! The switch-root gate of `sealroot-prepare` (`--check-switch-root`) on
//! arbitrary inputs: `/proc/self/mountinfo` (mount points can carry names
//! chosen on the disk, e.g. by an fstab line) and the status record. Never
//! panics; allowing a sealed root needs the record's root id to be the
//! mount at the sysroot, an overlay with verity=require.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::prepare::config::Config;
use sealroot::prepare::gate::{self, Allowed, Facts};

fuzz_target!(|data: &[u8]| {
    // Layout: status JSON, a 0 byte, then mountinfo text.
    let (status, mountinfo) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mountinfo = String::from_utf8_lossy(mountinfo);
    let entries = gate::parse_mountinfo(&mountinfo);
    let config = Config::default();
    for top in [0u64, 1, 40] {
        let facts = Facts {
            config: &config,
            cmdline: "root=/dev/vda",
            status: Some(status),
            stood_down_marker: true,
            mountinfo: &mountinfo,
            sysroot_mount_id: top,
        };
        if let Ok(Allowed::Sealed { root }) = gate::check(&facts) {
            assert_eq!(root, top);
            let entries = entries.as_ref().expect("allowed from parsed mountinfo");
            let e = entries.iter().find(|e| e.id == root).expect("root listed");
            assert_eq!(e.fstype, "overlay");
            assert!(e.super_options.iter().any(|o| o == "verity=require"));
        }
        // [boot] required = yes (the default) never allows a stand-down.
        assert_ne!(gate::check(&facts), Ok(Allowed::StoodDown));
    }
});
