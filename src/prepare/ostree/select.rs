//! `ostree=` on the kernel command line, and the deployment it names.
//!
//! # Grammar
//!
//! `ostree=/ostree/boot.<N>/<os>/<bootcsum>/<serial>`, exactly as `ostree
//! admin deploy` writes it into the boot entry (`ostree-sysroot-deploy.c`,
//! `install_deployment_kernel`):
//!
//! | part | form |
//! | --- | --- |
//! | `N` | the boot version, `0` or `1` |
//! | `os` | the stateroot: 1 to 255 of `A-Za-z0-9._-`, not starting with `.` |
//! | `bootcsum` | 64 lower-case hex digits (the kernel and initramfs checksum) |
//! | `serial` | a decimal number without leading zeros (the boot serial) |
//!
//! With `[boot] layout = ostree` the argument must be there, well formed,
//! and appear once (repeating the same value is fine). `sealroot*`
//! selectors belong to the repository layout and are an error here, as is
//! `ostree.prepare-root.*` (ostree's way to change composefs from the
//! command line: nothing there may change verification).
//!
//! # Resolution
//!
//! The path is resolved below the physical root with `openat2(RESOLVE_IN_ROOT
//! | RESOLVE_NO_MAGICLINKS)`: ostree's relative links (`boot.N` → `boot.N.M`,
//! `<serial>` → `../../../deploy/<os>/deploy/<commit>.<serial>`) are
//! followed, and nothing, absolute or `..`, leads out of the physical root.
//! The directory reached must then be an entry `<commit>.<serial>` of
//! `ostree/deploy/<os>/deploy` (opened without following any symlink) with
//! the same device and inode: the deployment's name, and thus the commit
//! the signature is checked for, is read from the deployment directory,
//! never from a link target.

use std::fmt;
use std::str::FromStr;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::super::cmdline::{CmdlineError, is_sealroot_key, split};
use super::super::repo::{Repo, RepoError};
use crate::ostree::objects::Checksum;

/// A parsed `ostree=` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArg {
    /// `N` of `boot.N` (0 or 1: ostree swaps between them).
    pub boot_version: u8,
    /// The stateroot.
    pub os: String,
    /// The boot checksum (of the kernel and initramfs).
    pub bootcsum: String,
    /// The boot serial (not the deployment's).
    pub serial: u32,
}

impl BootArg {
    /// The path below the physical root.
    pub fn relative_path(&self) -> String {
        format!(
            "ostree/boot.{}/{}/{}/{}",
            self.boot_version, self.os, self.bootcsum, self.serial
        )
    }
}

impl fmt::Display for BootArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ostree=/{}", self.relative_path())
    }
}

/// A stateroot name as ostree accepts it in `ostree=` (see the module
/// comment).
fn valid_os(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A decimal number without leading zeros that fits a `u32`.
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Parses one `ostree=` value.
pub fn parse_value(value: &str) -> Result<BootArg, String> {
    let rest = value.strip_prefix("/ostree/boot.").ok_or_else(|| {
        "must be /ostree/boot.<0|1>/<os>/<bootcsum>/<serial> (as ostree admin deploy writes it)"
            .to_string()
    })?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [version, os, bootcsum, serial] = parts[..] else {
        return Err(format!(
            "has {} path components after /ostree/, expected boot.N/<os>/<bootcsum>/<serial>",
            parts.len()
        ));
    };
    let boot_version = match version {
        "0" => 0,
        "1" => 1,
        v => return Err(format!("boot version {v:?} is not 0 or 1")),
    };
    if !valid_os(os) {
        return Err(format!(
            "stateroot {os:?} is not a name of 1 to 255 characters A-Z a-z 0-9 . _ - \
             (not starting with .)"
        ));
    }
    if bootcsum.len() != 64
        || !bootcsum
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!(
            "boot checksum {bootcsum:?} is not 64 lower-case hex digits"
        ));
    }
    let serial =
        decimal(serial).ok_or_else(|| format!("boot serial {serial:?} is not a decimal number"))?;
    Ok(BootArg {
        boot_version,
        os: os.to_owned(),
        bootcsum: bootcsum.to_owned(),
        serial,
    })
}

/// Finds the one `ostree=` of a command line (see the module comment).
pub fn parse(cmdline: &str) -> Result<BootArg, CmdlineError> {
    let mut found: Option<(String, BootArg)> = None;
    for (key, value) in split(cmdline) {
        let argument = match &value {
            Some(v) => format!("{key}={v}"),
            None => key.clone(),
        };
        if is_sealroot_key(&key) {
            return Err(CmdlineError::Malformed {
                argument,
                reason: "sealroot selectors do not apply with [boot] layout = ostree in \
                         prepare.conf: the deployment is selected by ostree="
                    .into(),
            });
        }
        if key.starts_with("ostree.prepare-root.") {
            return Err(CmdlineError::Malformed {
                argument,
                reason: "the command line cannot change how sealroot-prepare mounts an ostree \
                         deployment (always the signed composefs, verity=require); remove it"
                    .into(),
            });
        }
        if key != "ostree" {
            continue;
        }
        let Some(value) = value else {
            return Err(CmdlineError::Malformed {
                argument,
                reason: "needs a value".into(),
            });
        };
        let arg = parse_value(&value).map_err(|reason| CmdlineError::Malformed {
            argument: argument.clone(),
            reason,
        })?;
        match &found {
            Some((first, a)) if *a != arg => {
                return Err(CmdlineError::Conflict {
                    first: first.clone(),
                    second: argument,
                });
            }
            Some(_) => {}
            None => found = Some((argument, arg)),
        }
    }
    found.map(|(_, a)| a).ok_or(CmdlineError::NoOstreeSelector)
}

/// The deployment `ostree=` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The stateroot.
    pub os: String,
    /// The commit it checks out.
    pub commit: Checksum,
    /// The deployment serial (`<commit>.<serial>`), not the boot serial.
    pub serial: u32,
    /// Device and inode of the deployment directory (ostree's
    /// `backing-root-device-inode`).
    pub dev: u64,
    /// The inode.
    pub ino: u64,
}

impl Deployment {
    /// `<commit>.<serial>`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.commit.to_hex(), self.serial)
    }

    /// The stateroot directory below the physical root.
    pub fn stateroot(&self) -> String {
        format!("ostree/deploy/{}", self.os)
    }

    /// The deployment directory below the physical root.
    pub fn relative_path(&self) -> String {
        format!("{}/deploy/{}", self.stateroot(), self.name())
    }
}

/// Parses a deployment directory name, `<64 hex>.<decimal>`.
pub fn parse_deployment_name(name: &str) -> Option<(Checksum, u32)> {
    let (commit, serial) = name.split_once('.')?;
    Some((Checksum::from_str(commit).ok()?, decimal(serial)?))
}

/// Why `ostree=` names no deployment.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The path `ostree=` names does not resolve.
    #[error(
        "{arg}: no such deployment below {sysroot} ({}): the boot entry names a \
         deployment that does not exist (removed by ostree admin cleanup?) or a symlink on \
         the disk leads nowhere; boot another entry or fix the command line",
        crate::errno::errno_name(*errno)
    )]
    Missing {
        /// The `ostree=` argument.
        arg: String,
        /// The physical root.
        sysroot: String,
        /// What resolving it said.
        errno: Errno,
    },
    /// The path resolves, but to no deployment directory of its stateroot.
    #[error(
        "{arg}: resolves to a directory that is not a deployment in {deploy_dir} (no entry \
         <commit>.<serial> there is that directory): its symlinks on the disk were changed; \
         refusing"
    )]
    NotADeployment {
        /// The `ostree=` argument.
        arg: String,
        /// The stateroot's `deploy` directory.
        deploy_dir: String,
    },
    /// Reading the physical root failed.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Resolves `arg` below `sysroot` (a [`Repo::open`] of the physical root:
/// `RESOLVE_IN_ROOT`).
pub fn locate(sysroot: &Repo, arg: &BootArg) -> Result<Deployment, LocateError> {
    let rel = arg.relative_path();
    let target = match sysroot.open_dir(&rel, "cannot resolve ostree=") {
        Ok(fd) => fd,
        Err(RepoError::Io { errno, .. }) if matches!(errno, Errno::NOENT | Errno::NOTDIR) => {
            return Err(LocateError::Missing {
                arg: arg.to_string(),
                sysroot: sysroot.path().display().to_string(),
                errno,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let io = |errno| RepoError::Io {
        path: sysroot.display(&rel),
        what: "cannot stat the deployment",
        errno,
    };
    let st = rustix::fs::fstat(&target).map_err(io)?;
    let deploy_dir = format!("ostree/deploy/{}/deploy", arg.os);
    let deploys = Repo::open_beneath(&sysroot.display(&deploy_dir))?;
    let not_a_deployment = || LocateError::NotADeployment {
        arg: arg.to_string(),
        deploy_dir: sysroot.display(&deploy_dir).display().to_string(),
    };
    for name in deploys.list_dir(".", "cannot list the deployments")? {
        let Some((commit, serial)) = parse_deployment_name(&name) else {
            continue;
        };
        let entry =
            match rustix::fs::statat(deploys.dir(), name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(e) => e,
                Err(Errno::NOENT) => continue,
                Err(errno) => {
                    return Err(RepoError::Io {
                        path: deploys.display(&name),
                        what: "cannot stat",
                        errno,
                    }
                    .into());
                }
            };
        if FileType::from_raw_mode(entry.st_mode) == FileType::Directory
            && entry.st_dev == st.st_dev
            && entry.st_ino == st.st_ino
        {
            return Ok(Deployment {
                os: arg.os.clone(),
                commit,
                serial,
                dev: st.st_dev,
                ino: st.st_ino,
            });
        }
    }
    Err(not_a_deployment())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const CSUM: &str = "0f5c2d6e3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d";
    const COMMIT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn parses_the_argument_ostree_writes() {
        let a = parse(&format!(
            "root=/dev/vda ostree=/ostree/boot.1/fedora/{CSUM}/0 rw"
        ))
        .unwrap();
        assert_eq!(
            a,
            BootArg {
                boot_version: 1,
                os: "fedora".into(),
                bootcsum: CSUM.into(),
                serial: 0
            }
        );
        assert_eq!(a.relative_path(), format!("ostree/boot.1/fedora/{CSUM}/0"));
        // Repeated verbatim, and quoted: fine.
        let line =
            format!("ostree=/ostree/boot.0/os/{CSUM}/12 \"ostree=/ostree/boot.0/os/{CSUM}/12\"");
        assert_eq!(parse(&line).unwrap().serial, 12);
    }

    #[test]
    fn refuses_what_ostree_would_not_write() {
        let bad = |v: &str, why: &str| {
            let e = parse(&format!("ostree={v}")).unwrap_err().to_string();
            assert!(e.contains(why), "{v}: {e}");
        };
        bad("/sysroot/ostree/boot.1/os/x/0", "must be /ostree/boot.");
        bad(&format!("/ostree/boot.2/os/{CSUM}/0"), "boot version \"2\"");
        bad(&format!("/ostree/boot.1/../{CSUM}/0"), "stateroot \"..\"");
        bad(&format!("/ostree/boot.1/.hidden/{CSUM}/0"), "stateroot");
        bad(&format!("/ostree/boot.1/a+b/{CSUM}/0"), "stateroot");
        bad("/ostree/boot.1/os/ABC/0", "boot checksum");
        bad(
            &format!("/ostree/boot.1/os/{}/0", CSUM.to_uppercase()),
            "boot checksum",
        );
        bad(
            &format!("/ostree/boot.1/os/{CSUM}/01"),
            "boot serial \"01\"",
        );
        bad(&format!("/ostree/boot.1/os/{CSUM}/-1"), "boot serial");
        bad(
            &format!("/ostree/boot.1/os/{CSUM}/99999999999"),
            "boot serial",
        );
        bad(&format!("/ostree/boot.1/os/{CSUM}/0/"), "5 path components");
        bad(&format!("/ostree/boot.1/os/{CSUM}"), "3 path components");
        assert!(
            parse("ostree")
                .unwrap_err()
                .to_string()
                .contains("needs a value")
        );
        assert_eq!(
            parse("root=/dev/vda").unwrap_err(),
            CmdlineError::NoOstreeSelector
        );
        let two = format!("ostree=/ostree/boot.1/os/{CSUM}/0 ostree=/ostree/boot.0/os/{CSUM}/0");
        assert!(matches!(parse(&two), Err(CmdlineError::Conflict { .. })));
        let ok = format!("ostree=/ostree/boot.1/os/{CSUM}/0");
        for extra in [
            "sealroot=sha256:00",
            "rd.sealroot.image=x",
            "ostree.prepare-root.composefs=0",
        ] {
            let e = parse(&format!("{ok} {extra}")).unwrap_err().to_string();
            assert!(e.starts_with(extra), "{e}");
        }
        // composefs= belongs to composefs-setup-root, not to this layout.
        assert!(parse(&format!("{ok} composefs=00")).is_ok());
    }

    #[test]
    fn deployment_names() {
        let (c, s) = parse_deployment_name(&format!("{COMMIT}.3")).unwrap();
        assert_eq!((c.to_hex().as_str(), s), (COMMIT, 3));
        for bad in [
            COMMIT.to_string(),
            format!("{COMMIT}.03"),
            format!("{COMMIT}.x"),
            "ab.0".into(),
        ] {
            assert!(parse_deployment_name(&bad).is_none(), "{bad}");
        }
    }

    /// A sysroot as `ostree admin deploy` lays it out, in a temporary
    /// directory.
    fn sysroot() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("sysroot");
        let dep = root.join(format!("ostree/deploy/os/deploy/{COMMIT}.0"));
        std::fs::create_dir_all(&dep).unwrap();
        std::fs::create_dir_all(root.join("ostree/boot.1.1/os").join(CSUM)).unwrap();
        symlink("boot.1.1", root.join("ostree/boot.1")).unwrap();
        symlink(
            format!("../../../deploy/os/deploy/{COMMIT}.0"),
            root.join(format!("ostree/boot.1.1/os/{CSUM}/0")),
        )
        .unwrap();
        (t, root)
    }

    fn arg(serial: u32) -> BootArg {
        BootArg {
            boot_version: 1,
            os: "os".into(),
            bootcsum: CSUM.into(),
            serial,
        }
    }

    #[test]
    fn follows_ostrees_links_to_the_deployment() {
        let (_t, root) = sysroot();
        let d = locate(&Repo::open(&root).unwrap(), &arg(0)).unwrap();
        assert_eq!(
            d.relative_path(),
            format!("ostree/deploy/os/deploy/{COMMIT}.0")
        );
        assert_eq!(d.commit.to_hex(), COMMIT);
    }

    #[test]
    fn a_missing_deployment_is_named() {
        let (_t, root) = sysroot();
        let e = locate(&Repo::open(&root).unwrap(), &arg(1)).unwrap_err();
        assert!(matches!(e, LocateError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("no such deployment"), "{e}");
    }

    #[test]
    fn links_never_lead_out_of_the_physical_root() {
        let (t, root) = sysroot();
        // A deployment reachable only from outside the physical root (its
        // parent): `..` past the root, and an absolute link, stay inside.
        let outside = t
            .path()
            .join(format!("escape/ostree/deploy/os/deploy/{COMMIT}.0"));
        std::fs::create_dir_all(&outside).unwrap();
        let link = root.join(format!("ostree/boot.1.1/os/{CSUM}/0"));
        for target in [
            format!("../../../../../escape/ostree/deploy/os/deploy/{COMMIT}.0"),
            format!("{}", outside.display()),
        ] {
            std::fs::remove_file(&link).unwrap();
            symlink(&target, &link).unwrap();
            let e = locate(&Repo::open(&root).unwrap(), &arg(0)).unwrap_err();
            assert!(matches!(e, LocateError::Missing { .. }), "{target}: {e}");
        }
        // A link to a directory inside the root that is not a deployment.
        std::fs::remove_file(&link).unwrap();
        symlink("../../../deploy/os", &link).unwrap();
        let e = locate(&Repo::open(&root).unwrap(), &arg(0)).unwrap_err();
        assert!(matches!(e, LocateError::NotADeployment { .. }), "{e}");
        // The deploy directory itself a symlink: refused, not followed.
        std::fs::remove_file(&link).unwrap();
        symlink(format!("../../../deploy/os/deploy/{COMMIT}.0"), &link).unwrap();
        std::fs::rename(
            root.join("ostree/deploy/os/deploy"),
            root.join("ostree/deploy/os/real"),
        )
        .unwrap();
        symlink("real", root.join("ostree/deploy/os/deploy")).unwrap();
        let e = locate(&Repo::open(&root).unwrap(), &arg(0)).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }
}
