//! The switch-root gate: `sealroot-prepare --check-switch-root`.
//!
//! `initrd-switch-root.service` runs it (`ExecStartPre=`, drop-in
//! `systemd/initrd-switch-root.service.d/50-sealroot.conf`) right before
//! systemd switches into `/sysroot`. A non-zero exit fails that unit, whose
//! own `OnFailure=emergency.target` stops the boot. This is the second line
//! behind `sealroot-prepare.service`: whatever the kernel command line did
//! to the initrd's units (`rd.systemd.mask=sealroot-prepare.service`,
//! `mount.usr=`, an `x-initrd.mount` line in the disk's /etc/fstab), the
//! switch only happens
//! into the root sealroot-prepare mounted, or after it explicitly stood down
//! because the trusted initramfs allows that (`[boot] required = no`).
//!
//! What "the root sealroot-prepare mounted" means, from the kernel's view
//! (`/proc/self/mountinfo`, `statx(STATX_MNT_ID)`), against the mount ids
//! prepare recorded in `/run/sealroot/status.json`:
//! - the mount visible at the sysroot is the recorded composefs overlay
//!   (an overlay with `verity=require`), so nothing was mounted over it;
//! - every mount below it is one prepare made (/etc, /var, the physical
//!   root at `sysroot/`) or lies below the physical root's bind (untrusted
//!   storage, reachable only there), and carries `nosuid,nodev`; anything
//!   else (e.g. systemd's `/sysroot/usr` bind for `mount.usr=`) would
//!   shadow signed content and is refused.
//!
//! The decision ([`check`]) is a pure function of those inputs, so it is
//! tested without a kernel; [`run`] gathers them.

use std::path::Path;

use serde::Deserialize;

use super::cmdline;
use super::config::Config;
use super::mountroot::MountIds;
use super::record;

/// Why the switch is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// The sealed root (mount id `root`) is at the sysroot, untouched.
    Sealed {
        /// The mount id of the sealed root.
        root: u64,
    },
    /// sealroot stood down: `[boot] required = no` and no sealroot
    /// parameter on the command line.
    StoodDown,
}

/// What the gate looks at.
#[derive(Debug)]
pub struct Facts<'a> {
    /// prepare.conf (from the initramfs).
    pub config: &'a Config,
    /// `/proc/cmdline`.
    pub cmdline: &'a str,
    /// `/run/sealroot/status.json`, `None` if it does not exist.
    pub status: Option<&'a [u8]>,
    /// Whether `/run/sealroot/stood-down` exists.
    pub stood_down_marker: bool,
    /// `/proc/self/mountinfo`.
    pub mountinfo: &'a str,
    /// The id of the mount visible at the sysroot (`statx`).
    pub sysroot_mount_id: u64,
}

/// The part of status.json the gate reads.
#[derive(Debug, Deserialize)]
struct Recorded {
    result: String,
    error: Option<String>,
    mount: Option<RecordedMount>,
}

#[derive(Debug, Deserialize)]
struct RecordedMount {
    ids: MountIds,
}

/// One line of `/proc/self/mountinfo` (`Documentation/filesystems/proc.rst`,
/// "3.5 `/proc/<pid>/mountinfo`").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount id.
    pub id: u64,
    /// The parent mount's id.
    pub parent: u64,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,nodev,...`).
    pub options: Vec<String>,
    /// The filesystem type.
    pub fstype: String,
    /// The mount source (device, or what the filesystem reports).
    pub source: String,
    /// Per-superblock options.
    pub super_options: Vec<String>,
}

impl MountEntry {
    fn has_option(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} from {}, mount id {})",
            self.mount_point, self.fstype, self.source, self.id
        )
    }
}

/// Undoes the kernel's octal escapes in mountinfo paths (`\040` space,
/// `\011` tab, `\012` newline, `\134` backslash: `fs/proc_namespace.c`
/// `show_mountinfo()`, `mangle()`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo`; a line that does not have the documented
/// shape is an error (the kernel writes it, so that would be a bug or a
/// format this code does not know: refuse rather than guess).
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "/proc/self/mountinfo line {}: unexpected format: {line:?}",
                n + 1
            )
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-").ok_or_else(bad)?;
        if sep < 6 || fields.len() < sep + 4 {
            return Err(bad());
        }
        out.push(MountEntry {
            id: fields[0].parse().map_err(|_| bad())?,
            parent: fields[1].parse().map_err(|_| bad())?,
            mount_point: unescape(fields[4]),
            options: fields[5].split(',').map(str::to_owned).collect(),
            fstype: fields[sep + 1].to_owned(),
            source: unescape(fields[sep + 2]),
            super_options: fields[sep + 3].split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// Whether `id` is `ancestor` or lies below it (parent links; a cycle or a
/// missing parent ends the walk).
fn is_below(entries: &[MountEntry], id: u64, ancestor: u64) -> bool {
    let mut current = id;
    for _ in 0..=entries.len() {
        if current == ancestor {
            return true;
        }
        match entries.iter().find(|e| e.id == current) {
            Some(e) if e.parent != e.id => current = e.parent,
            _ => return false,
        }
    }
    false
}

/// Decides whether systemd may switch into the sysroot. The error is the
/// reason, one line.
pub fn check(facts: &Facts<'_>) -> Result<Allowed, String> {
    let sysroot = facts.config.sysroot.display();
    let Some(status) = facts.status else {
        return Err(format!(
            "sealroot-prepare has not run in this boot (no {}): sealroot-prepare.service was \
             masked, skipped or never started (rd.systemd.mask=, rd.systemd.unit= or similar on \
             the kernel command line?); {sysroot} holds nothing verified",
            record::STATUS_FILE
        ));
    };
    let recorded: Recorded = serde_json::from_slice(status).map_err(|e| {
        format!(
            "{} is not sealroot-prepare's record ({e}); {sysroot} holds nothing verified",
            record::STATUS_FILE
        )
    })?;
    match recorded.result.as_str() {
        record::RESULT_MOUNTED => {}
        record::RESULT_NOT_SELECTED => return check_stood_down(facts),
        other => {
            return Err(format!(
                "sealroot-prepare did not mount a sealed root (result {other:?}{})",
                recorded
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    let ids = recorded.mount.map(|m| m.ids).ok_or_else(|| {
        format!(
            "{} says mounted but records no mount ids; refusing to guess what {sysroot} is",
            record::STATUS_FILE
        )
    })?;
    let entries = parse_mountinfo(facts.mountinfo)?;
    if facts.sysroot_mount_id != ids.root {
        let found = entries
            .iter()
            .find(|e| e.id == facts.sysroot_mount_id)
            .map(MountEntry::describe)
            .unwrap_or_else(|| format!("mount id {}", facts.sysroot_mount_id));
        return Err(format!(
            "{sysroot} is no longer the sealed root sealroot-prepare mounted (mount id {}): {found} \
             was mounted over it afterwards",
            ids.root
        ));
    }
    let root = entries.iter().find(|e| e.id == ids.root).ok_or_else(|| {
        format!(
            "the sealed root (mount id {}) is not in /proc/self/mountinfo",
            ids.root
        )
    })?;
    if root.fstype != "overlay" || !root.super_options.iter().any(|o| o == "verity=require") {
        return Err(format!(
            "the mount at {sysroot} is {}, not a composefs overlay with verity=require",
            root.describe()
        ));
    }
    let ours = [ids.var, Some(ids.physical_root), ids.etc];
    for e in entries
        .iter()
        .filter(|e| e.id != ids.root && is_below(&entries, e.id, ids.root))
    {
        let recorded = ours.contains(&Some(e.id));
        if !recorded && !is_below(&entries, e.id, ids.physical_root) {
            return Err(format!(
                "{} was mounted below the sealed root after sealroot-prepare ran (by \
                 mount.usr=, systemd.mount-extra=, an x-initrd.mount line in /etc/fstab, or \
                 another unit); it would shadow signed content",
                e.describe()
            ));
        }
        if !e.has_option("nosuid") || !e.has_option("nodev") {
            return Err(format!(
                "{} below the sealed root is not nosuid,nodev: set-id programs or device \
                 nodes on it would work",
                e.describe()
            ));
        }
    }
    Ok(Allowed::Sealed { root: ids.root })
}

/// The stand-down case: allowed only when the trusted initramfs allows it
/// and nothing on the command line asks for sealroot.
fn check_stood_down(facts: &Facts<'_>) -> Result<Allowed, String> {
    if facts.config.boot.required {
        return Err(format!(
            "sealroot-prepare stood down, but {} says [boot] required = yes",
            super::config::CONFIG_PATH
        ));
    }
    if facts.config.ipe.required {
        return Err(format!(
            "sealroot-prepare stood down, but {}",
            super::config::STAND_DOWN_WITH_IPE_REQUIRED
        ));
    }
    if cmdline::names_sealroot(facts.cmdline) {
        return Err(
            "sealroot-prepare stood down, but the kernel command line names a sealroot \
             parameter"
                .into(),
        );
    }
    if !facts.stood_down_marker {
        return Err(format!(
            "{} says sealroot stood down, but {} is missing",
            record::STATUS_FILE,
            record::STOOD_DOWN_FILE
        ));
    }
    Ok(Allowed::StoodDown)
}

/// Gathers the facts from the running system and decides. `config_file`
/// is prepare.conf; the other inputs are fixed paths.
pub fn run(config_file: &Path, cmdline_file: &Path) -> Result<Allowed, super::Error> {
    let config = super::config::load(config_file)?;
    let cmdline = std::fs::read_to_string(cmdline_file).map_err(super::Error::ProcCmdline)?;
    let status = match std::fs::read(record::STATUS_FILE) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(super::Error::Gate(format!(
                "cannot read {}: {e}",
                record::STATUS_FILE
            )));
        }
    };
    let marker = Path::new(record::STOOD_DOWN_FILE).exists();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| super::Error::Gate(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let sysroot_mount_id = crate::mount::mount_id(&config.sysroot).map_err(|e| {
        super::Error::Gate(format!(
            "cannot find the mount at {}: {e}",
            config.sysroot.display()
        ))
    })?;
    check(&Facts {
        config: &config,
        cmdline: &cmdline,
        status: status.as_deref(),
        stood_down_marker: marker,
        mountinfo: &mountinfo,
        sysroot_mount_id,
    })
    .map_err(super::Error::Gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/mountinfo` after sealroot-prepare mounted the sealed
    /// root. The `/sysroot` lines are verbatim from a run on the test
    /// kernel (6.12, `vm_prepare::planted_setuid_programs_and_device_nodes_in_etc_and_var_are_inert`):
    /// the physical root 30, covered by the sealed root 35, with /etc 37,
    /// /var 38 and the physical root's bind 39 below it. The first two
    /// lines and the submount 44 of the bind are added in the same form.
    const SEALED: &str = "\
1 0 0:2 / / rw - rootfs rootfs rw
20 1 0:5 / /run rw,nosuid,nodev shared:2 - tmpfs tmpfs rw,mode=755
30 1 254:0 / /sysroot rw,relatime - ext4 /dev/vda rw
35 30 0:28 / /sysroot ro,relatime - overlay composefs ro,lowerdir+=/run/sealroot/.stage/erofs,datadir+=/proc/self/fd/5,redirect_dir=on,metacopy=on,verity=require
37 35 0:31 / /sysroot/etc rw,nosuid,nodev,relatime - overlay sealroot-etc rw,lowerdir+=/run/sealroot/.stage/root/etc,upperdir=/proc/self/fd/6,workdir=/proc/self/fd/7,uuid=on
38 35 254:0 /sealroot/deployments/e5095691ba024e3b2a86999faeec6ded57d52d6474080c3f0540e30fbaa8f4c0/var /sysroot/var rw,nosuid,nodev,relatime - ext4 /dev/vda rw
39 35 254:0 / /sysroot/sysroot rw,nosuid,nodev,relatime - ext4 /dev/vda rw
44 39 0:45 / /sysroot/sysroot/boot rw,nosuid,nodev - vfat /dev/vda1 rw
";

    const IDS: &str = r#""ids": {"root": 35, "etc": 37, "var": 38, "physical_root": 39}"#;

    fn status(result: &str) -> String {
        format!(
            r#"{{"result": "{result}", "error": null, "mount": {{"erofs_backing": "file", {IDS}}}}}"#
        )
    }

    fn facts<'a>(
        config: &'a Config,
        status: Option<&'a str>,
        mountinfo: &'a str,
        top: u64,
    ) -> Facts<'a> {
        Facts {
            config,
            cmdline: "root=/dev/vda rw sealroot=sha256:00",
            status: status.map(str::as_bytes),
            stood_down_marker: false,
            mountinfo,
            sysroot_mount_id: top,
        }
    }

    #[test]
    fn parses_mountinfo_with_escapes_and_optional_fields() {
        let e = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:3 - ext3 /dev/ro\\134ot rw,errors=continue\n",
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].id, e[0].parent), (36, 35));
        assert_eq!(e[0].mount_point, "/mnt 2");
        assert_eq!(e[0].source, "/dev/ro\\ot");
        assert_eq!(e[0].fstype, "ext3");
        assert!(e[0].has_option("noatime"));
        assert_eq!(e[0].super_options, ["rw", "errors=continue"]);
        assert!(parse_mountinfo("36 35 98:0 / /x rw\n").is_err());
        assert!(parse_mountinfo("x 35 98:0 / /x rw - ext3 a rw\n").is_err());
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\777x"), "\\777x");
    }

    #[test]
    fn allows_the_untouched_sealed_root() {
        let c = Config::default();
        let s = status("mounted");
        assert_eq!(
            check(&facts(&c, Some(&s), SEALED, 35)),
            Ok(Allowed::Sealed { root: 35 })
        );
    }

    #[test]
    fn refuses_without_a_record_or_after_a_refusal() {
        let c = Config::default();
        let e = check(&facts(&c, None, SEALED, 30)).unwrap_err();
        assert!(
            e.contains("sealroot-prepare has not run in this boot"),
            "{e}"
        );
        assert!(e.contains("rd.systemd.mask="), "{e}");
        let refused = r#"{"result": "refused", "error": "kernel command line: no image selected", "mount": null}"#;
        let e = check(&facts(&c, Some(refused), SEALED, 30)).unwrap_err();
        assert!(e.contains("did not mount a sealed root (result \"refused\": kernel command line: no image selected)"), "{e}");
        let e = check(&facts(&c, Some("{"), SEALED, 30)).unwrap_err();
        assert!(e.contains("is not sealroot-prepare's record"), "{e}");
        let e = check(&facts(
            &c,
            Some(r#"{"result": "mounted", "error": null, "mount": null}"#),
            SEALED,
            35,
        ))
        .unwrap_err();
        assert!(e.contains("records no mount ids"), "{e}");
    }

    #[test]
    fn refuses_a_mount_over_the_sealed_root() {
        let c = Config::default();
        let s = status("mounted");
        let over = format!("{SEALED}50 35 254:0 / /sysroot rw,relatime - ext4 /dev/vda rw\n");
        let e = check(&facts(&c, Some(&s), &over, 50)).unwrap_err();
        assert!(e.contains("/sysroot is no longer the sealed root sealroot-prepare mounted (mount id 35): /sysroot (ext4 from /dev/vda, mount id 50)"), "{e}");
        // The physical root still on top (the sealed root never moved there).
        let e = check(&facts(&c, Some(&s), SEALED, 30)).unwrap_err();
        assert!(e.contains("no longer the sealed root"), "{e}");
    }

    #[test]
    fn refuses_mounts_below_the_sealed_root_that_prepare_did_not_make() {
        let c = Config::default();
        let s = status("mounted");
        // What systemd makes of mount.usr=/dev/vdb: a bind of /sysusr/usr.
        let usr = format!("{SEALED}51 35 254:16 / /sysroot/usr rw,relatime - ext4 /dev/vdb rw\n");
        let e = check(&facts(&c, Some(&s), &usr, 35)).unwrap_err();
        assert!(
            e.contains(
                "/sysroot/usr (ext4 from /dev/vdb, mount id 51) was mounted below the sealed root"
            ),
            "{e}"
        );
        // Even nosuid,nodev, and even below /etc or /var.
        let etc =
            format!("{SEALED}52 37 0:50 / /sysroot/etc/ssh rw,nosuid,nodev - tmpfs tmpfs rw\n");
        assert!(check(&facts(&c, Some(&s), &etc, 35)).is_err());
        // Below the physical root: allowed if nosuid,nodev.
        let phys =
            format!("{SEALED}53 39 0:51 / /sysroot/sysroot/srv rw,nosuid,nodev - tmpfs tmpfs rw\n");
        assert!(check(&facts(&c, Some(&s), &phys, 35)).is_ok());
        let phys = format!("{SEALED}53 39 0:51 / /sysroot/sysroot/srv rw - tmpfs tmpfs rw\n");
        let e = check(&facts(&c, Some(&s), &phys, 35)).unwrap_err();
        assert!(e.contains("is not nosuid,nodev"), "{e}");
        // Mounts below the covered physical root are unreachable: ignored.
        let hidden = format!("{SEALED}54 30 0:52 / /sysroot/usr rw - tmpfs tmpfs rw\n");
        assert!(check(&facts(&c, Some(&s), &hidden, 35)).is_ok());
    }

    #[test]
    fn refuses_our_own_mounts_without_nosuid_nodev() {
        let c = Config::default();
        let s = status("mounted");
        let suid_var = SEALED.replace(
            "38 35 254:0 /sealroot/deployments/e5095691ba024e3b2a86999faeec6ded57d52d6474080c3f0540e30fbaa8f4c0/var /sysroot/var rw,nosuid,nodev,relatime",
            "38 35 254:0 /sealroot/deployments/e5095691ba024e3b2a86999faeec6ded57d52d6474080c3f0540e30fbaa8f4c0/var /sysroot/var rw,relatime",
        );
        let e = check(&facts(&c, Some(&s), &suid_var, 35)).unwrap_err();
        assert!(e.contains("/sysroot/var (ext4 from /dev/vda, mount id 38) below the sealed root is not nosuid,nodev"), "{e}");
    }

    #[test]
    fn refuses_a_root_that_is_not_a_verity_overlay() {
        let c = Config::default();
        let s = status("mounted");
        let plain = SEALED.replace(",verity=require", "");
        let e = check(&facts(&c, Some(&s), &plain, 35)).unwrap_err();
        assert!(
            e.contains("not a composefs overlay with verity=require"),
            "{e}"
        );
    }

    #[test]
    fn stand_down_needs_the_initramfs_setting_the_marker_and_no_sealroot_parameter() {
        let not_selected = r#"{"result": "not-selected", "error": null, "mount": null}"#;
        let optional = crate::prepare::config::parse("[boot]\nrequired = no\n", "f").unwrap();
        let mut f = facts(&optional, Some(not_selected), SEALED, 30);
        f.cmdline = "root=/dev/vda rw";
        f.stood_down_marker = true;
        assert_eq!(check(&f), Ok(Allowed::StoodDown));
        f.stood_down_marker = false;
        assert!(
            check(&f)
                .unwrap_err()
                .contains("/run/sealroot/stood-down is missing")
        );
        f.stood_down_marker = true;
        f.cmdline = "root=/dev/vda rw sealroot.conf=x";
        assert!(
            check(&f)
                .unwrap_err()
                .contains("names a sealroot parameter")
        );
        let required = Config::default();
        let mut f = facts(&required, Some(not_selected), SEALED, 30);
        f.cmdline = "root=/dev/vda rw";
        f.stood_down_marker = true;
        assert!(check(&f).unwrap_err().contains("[boot] required = yes"));
    }

    /// `[ipe] required = yes` makes standing down a refusal even with
    /// `[boot] required = no`, the marker and a command line without
    /// sealroot: the root would run without the IPE policy.
    #[test]
    fn stand_down_is_refused_when_ipe_is_required() {
        let not_selected = r#"{"result": "not-selected", "error": null, "mount": null}"#;
        let ipe =
            crate::prepare::config::parse("[boot]\nrequired = no\n[ipe]\nrequired = yes\n", "f")
                .unwrap();
        let mut f = facts(&ipe, Some(not_selected), SEALED, 30);
        f.cmdline = "root=/dev/vda rw";
        f.stood_down_marker = true;
        let e = check(&f).unwrap_err();
        assert!(e.contains("[ipe] required = yes"), "{e}");
        assert!(e.contains("without the IPE policy"), "{e}");
    }
}
