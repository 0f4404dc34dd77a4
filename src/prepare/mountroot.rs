//! Mounting the verified image as the new root, with the new mount API.
//!
//! Everything is assembled below a private staging tmpfs
//! (`/run/sealroot/.stage`) and moved onto the sysroot in one
//! `move_mount` at the very end, so a failure at any step leaves the
//! sysroot exactly as it was (the staging mount is detached with all it
//! holds). Private, because `MS_MOVE` refuses to move a mount whose parent
//! is shared, and systemd makes every mount shared in the initrd.
//!
//! ```text
//! .stage/erofs      EROFS (file-backed via /proc/self/fd/N, or a loop device)
//! .stage/root       overlayfs ro (`mount::composefs`, as `sealroot mount`): lowerdir+=.stage/erofs, datadir+=<repo>/objects,
//!                   metacopy=on, redirect_dir=on, verity=require
//! .stage/root/etc   overlayfs: upper in deployments/<m>/etc (persistent) or a tmpfs
//! .stage/root/var   bind of deployments/<m>/var (persistent) or a tmpfs
//!                   (composefs-rs also: none, or an overlay as for /etc)
//! .stage/root/sysroot  recursive bind of the physical root
//! ```
//! then `.stage/root` moves onto the sysroot and the EROFS/tmpfs helper
//! mounts are detached (overlayfs keeps private clones of its layers).
//!
//! Everything but the sealed root itself comes from the untrusted disk (or
//! is writable at run time) and is mounted `nosuid,nodev`
//! ([`UNTRUSTED`]): the /etc overlay, /var, and the physical root with
//! every submount. A set-id program or a device node planted there is
//! inert; only the signed image's own set-id programs keep their bits.
//! The ids of the four mounts are recorded so that the switch-root gate
//! ([`super::gate`]) can tell the sealed root from anything mounted later.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

use super::config::{Config, ErofsBacking, EtcMode, VarMode};
use super::modules::Loader;
use super::repo::{Repo, RepoError};
use crate::mount::composefs::{self, ErofsSource};
use crate::mount::{self, DetachedMount, FsContext, fd_path};

/// Where the staging mount goes.
pub const STAGE: &str = "/run/sealroot/.stage";

/// Mount attributes of everything below the sealed root that comes from
/// the disk or is writable: set-id bits and device nodes there are not
/// honoured (`MS_NOSUID`, `MS_NODEV`: `fs/exec.c` `bprm_fill_uid()`,
/// `fs/namei.c` `may_open_dev()`).
pub const UNTRUSTED: MountAttrFlags =
    MountAttrFlags::MOUNT_ATTR_NOSUID.union(MountAttrFlags::MOUNT_ATTR_NODEV);

/// A mount problem.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount syscall failed.
    #[error(transparent)]
    Mount(#[from] mount::Error),
    /// A state directory (`etc/upper`, `var`) could not be made or opened.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The EROFS passed every check on open (its measured fs-verity digest
    /// is the signed one), but its data does not verify as the kernel
    /// reads it: the file's blocks were altered below fs-verity.
    #[error(
        "refused: the merged EROFS image's data fails fs-verity verification \
         (altered on disk): {0}"
    )]
    AlteredImage(mount::Error),
    /// Anything else, named by what was being done.
    #[error("{what}: {reason}")]
    Other {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl MountError {
    /// Whether this is a refusal of the image rather than a failure of the
    /// system.
    pub fn is_refusal(&self) -> bool {
        matches!(self, MountError::AlteredImage(_))
    }
}

fn other(what: impl Into<String>, reason: impl Into<String>) -> MountError {
    MountError::Other {
        what: what.into(),
        reason: reason.into(),
    }
}

/// What was mounted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mounted {
    /// `file` or `loop:/dev/loopN`.
    pub erofs_backing: String,
    /// What `/etc` is.
    pub etc: EtcMode,
    /// What `/var` is.
    pub var: VarMode,
    /// The physical root, reachable below the new root.
    pub physical_root: String,
    /// Whether it is mounted read-only there (ostree layout,
    /// `sysroot.readonly`).
    pub physical_root_read_only: bool,
    /// Mount ids of what was mounted (`/proc/self/mountinfo`'s first
    /// field), for the switch-root gate.
    pub ids: MountIds,
}

/// Mount ids of the sealed root and the mounts prepare put below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountIds {
    /// The composefs overlay (the new root).
    pub root: u64,
    /// The /etc overlay (`None` with `[etc] mode = image`).
    pub etc: Option<u64>,
    /// /var (bind, overlay or tmpfs; `None` when the image's own /var
    /// stays, composefs-rs `[var] mount = "none"`).
    pub var: Option<u64>,
    /// The bind of the physical root at `<root>/sysroot` (its submounts
    /// are below it).
    pub physical_root: u64,
}

/// The staging area; detached (with everything below it) unless
/// committed.
struct Stage {
    path: PathBuf,
    mounted: bool,
}

impl Stage {
    fn new() -> Result<Stage, MountError> {
        let path = PathBuf::from(STAGE);
        std::fs::create_dir_all(&path)
            .map_err(|e| other(format!("creating {STAGE}"), e.to_string()))?;
        let mut stage = Stage {
            path,
            mounted: false,
        };
        let ctx = FsContext::new("tmpfs")?;
        ctx.set("mode", "0700")?;
        ctx.set("source", "sealroot-stage")?;
        ctx.mount(MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID)?
            .attach(&stage.path)?;
        stage.mounted = true;
        mount::make_private(&stage.path)?;
        Ok(stage)
    }

    fn dir(&self, name: &str) -> Result<PathBuf, MountError> {
        let p = self.path.join(name);
        std::fs::create_dir(&p)
            .map_err(|e| other(format!("creating {}", p.display()), e.to_string()))?;
        Ok(p)
    }

    /// Detaches the staging mount (everything still below it goes too).
    fn remove(&mut self) -> Result<(), MountError> {
        if self.mounted {
            mount::detach(&self.path)?;
            self.mounted = false;
        }
        let _ = std::fs::remove_dir(&self.path);
        Ok(())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// What goes where below the sealed root: the layout's part of the mount
/// (sealroot's repository: [`mount_root`]; ostree deployments:
/// `super::ostree`). Every handle was opened below the physical root
/// without following anything out of it.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The verified EROFS, open: mount exactly this.
    pub image: &'a File,
    /// The directory the EROFS's redirects point into.
    pub objects: OwnedFd,
    /// How `/etc` is mounted.
    pub etc: EtcPlan,
    /// How `/var` is mounted.
    pub var: VarPlan,
    /// Whether the physical root at `<root>/sysroot` is read-only (ostree's
    /// `sysroot.readonly`); its submounts keep their own setting.
    pub physical_read_only: bool,
}

/// How `/etc` is mounted.
#[derive(Debug)]
pub enum EtcPlan {
    /// The image's `/etc`, read-only.
    Image,
    /// overlayfs over the image's `/etc` with this upper and work directory.
    Overlay {
        /// The upper directory (`etc/upper` of the deployment).
        upper: OwnedFd,
        /// overlayfs's work directory, on the same filesystem.
        work: OwnedFd,
    },
    /// overlayfs over the image's `/etc` with a tmpfs upper layer.
    Transient,
    /// A bind mount of this directory (ostree's deployment `etc`).
    Bind(OwnedFd),
}

/// How `/var` is mounted.
#[derive(Debug)]
pub enum VarPlan {
    /// A bind mount of this directory.
    Bind(OwnedFd),
    /// An empty tmpfs.
    Transient,
    /// The image's `/var`, read-only (composefs-rs `mount = "none"`).
    Image,
    /// overlayfs over the image's `/var` with this upper and work
    /// directory (composefs-rs `mount = "overlay"`).
    Overlay {
        /// The upper directory (`state/deploy/<hex>/var/upper`).
        upper: OwnedFd,
        /// overlayfs' work directory beside it (`.../var/work`).
        work: OwnedFd,
    },
    /// overlayfs over the image's `/var` with a tmpfs upper layer
    /// (composefs-rs `mount = "transient"`).
    OverlayTransient,
}

/// Mounts the verified image of sealroot's repository onto
/// `config.sysroot`.
pub fn mount_root(
    config: &Config,
    repo: &Repo,
    image: &File,
    deployment: &str,
    loader: &mut Loader,
) -> Result<Mounted, MountError> {
    let etc = match config.etc {
        EtcMode::Image => EtcPlan::Image,
        EtcMode::Transient => EtcPlan::Transient,
        EtcMode::Persistent => {
            let upper = format!("{deployment}/etc/upper");
            let work = format!("{deployment}/etc/work");
            repo.create_dirs(&upper, 0o755)?;
            repo.create_dirs(&work, 0o700)?;
            EtcPlan::Overlay {
                upper: repo.open_dir(&upper, "cannot open the /etc state")?,
                work: repo.open_dir(&work, "cannot open the /etc state")?,
            }
        }
    };
    let var = match config.var {
        VarMode::Transient => VarPlan::Transient,
        // Not a prepare.conf value (composefs-rs `mount = "none"` only).
        VarMode::Image => VarPlan::Image,
        VarMode::Persistent => {
            let var = format!("{deployment}/var");
            repo.create_dirs(&var, 0o755)?;
            VarPlan::Bind(repo.open_dir(&var, "cannot open the /var state")?)
        }
    };
    let plan = Plan {
        image,
        objects: repo.open_dir("objects", "cannot open the object store")?,
        etc,
        var,
        physical_read_only: false,
    };
    let (erofs_backing, ids) = assemble(&config.sysroot, config.erofs_backing, plan, loader)?;
    Ok(Mounted {
        erofs_backing,
        etc: config.etc,
        var: config.var,
        physical_root: format!("{}/sysroot", config.sysroot.display()),
        physical_root_read_only: false,
        ids,
    })
}

/// Mounts `plan` onto `sysroot` in one step (see the module comment);
/// returns the EROFS backing and the mount ids.
pub fn assemble(
    sysroot: &Path,
    erofs_backing: ErofsBacking,
    plan: Plan<'_>,
    loader: &mut Loader,
) -> Result<(String, MountIds), MountError> {
    let mut stage = Stage::new()?;

    // The EROFS, then the composefs overlay over it and the object store.
    let erofs_dir = stage.dir("erofs")?;
    let (erofs, backing) = mount_erofs(plan.image, erofs_backing, loader).map_err(|e| match e {
        // fs-verity turns a block that does not match its Merkle tree
        // into EIO (fs/verity/verify.c), and the EROFS superblock is the
        // first thing read.
        MountError::Mount(e) if e.errno == Errno::IO => MountError::AlteredImage(e),
        e => e,
    })?;
    erofs.attach(&erofs_dir)?;
    let root_dir = stage.dir("root")?;
    composefs::overlay(&erofs_dir, &[fd_path(plan.objects.as_fd())])?.attach(&root_dir)?;
    mount::detach(&erofs_dir)?;

    for dir in ["etc", "var", "sysroot"] {
        let wanted = match dir {
            "etc" => !matches!(plan.etc, EtcPlan::Image),
            "var" => !matches!(plan.var, VarPlan::Image),
            _ => true,
        };
        if wanted && !root_dir.join(dir).is_dir() {
            return Err(other(
                "the sealed image",
                format!(
                    "has no /{dir} directory to mount on; the image must contain /etc, /var and \
                     /sysroot (e.g. `RUN mkdir -p /sysroot` in its Containerfile)"
                ),
            ));
        }
    }

    // /etc.
    let etc_mounted = match &plan.etc {
        EtcPlan::Image => false,
        EtcPlan::Overlay { upper, work } => {
            dir_overlay(
                &root_dir,
                "etc",
                &fd_path(upper.as_fd()),
                &fd_path(work.as_fd()),
            )?;
            true
        }
        EtcPlan::Transient => {
            transient_overlay(&stage, &root_dir, "etc")?;
            true
        }
        EtcPlan::Bind(fd) => {
            bind_untrusted(fd, &root_dir.join("etc"))?;
            true
        }
    };

    // /var.
    let var_mounted = match &plan.var {
        VarPlan::Image => false,
        VarPlan::Bind(fd) => {
            bind_untrusted(fd, &root_dir.join("var"))?;
            true
        }
        VarPlan::Transient => {
            tmpfs("0755")?.attach(&root_dir.join("var"))?;
            true
        }
        VarPlan::Overlay { upper, work } => {
            dir_overlay(
                &root_dir,
                "var",
                &fd_path(upper.as_fd()),
                &fd_path(work.as_fd()),
            )?;
            true
        }
        VarPlan::OverlayTransient => {
            transient_overlay(&stage, &root_dir, "var")?;
            true
        }
    };

    // The physical root stays reachable at /sysroot of the new root; the
    // clone and every submount of it nosuid,nodev (the originals keep
    // their flags).
    let physical = DetachedMount::clone_of(rustix::fs::CWD, sysroot, true)?;
    physical.set_attrs(UNTRUSTED, true)?;
    if plan.physical_read_only {
        // Only the top mount, as ostree-prepare-root's
        // `MS_BIND | MS_REMOUNT | MS_RDONLY` of "sysroot": ostree's tools
        // remount it read-write in a private namespace to deploy.
        physical.set_attrs(MountAttrFlags::MOUNT_ATTR_RDONLY, false)?;
    }
    physical.attach(&root_dir.join("sysroot"))?;
    // Private: as a peer of the physical root mount, the clone would
    // receive a copy of the new root when it is mounted on top of that
    // mount below (with systemd's shared mounts: the whole tree again at
    // /sysroot/sysroot).
    mount::make_private_recursive(&root_dir.join("sysroot"))?;

    // Mount ids do not change when the tree moves.
    let id = |sub: &str| {
        let path = root_dir.join(sub);
        mount::mount_id(&path).map_err(|e| {
            other(
                format!("statx(STATX_MNT_ID) of {}", path.display()),
                e.to_string(),
            )
        })
    };
    let ids = MountIds {
        root: id("")?,
        etc: if etc_mounted { Some(id("etc")?) } else { None },
        var: if var_mounted { Some(id("var")?) } else { None },
        physical_root: id("sysroot")?,
    };

    // The one step that changes what the caller sees.
    mount::move_mount(&root_dir, sysroot)?;
    // Failing to clean up the (now empty) staging area is harmless.
    let _ = stage.remove();
    Ok((backing, ids))
}

/// A bind mount of `dir` at `target`, `nosuid,nodev`, private (not a peer
/// of the physical root, see `make_private_recursive`).
fn bind_untrusted(dir: &OwnedFd, target: &Path) -> Result<(), MountError> {
    let bind = DetachedMount::clone_of(dir.as_fd(), Path::new(""), false)?;
    bind.set_attrs(UNTRUSTED, false)?;
    bind.attach(target)?;
    mount::make_private_recursive(target)?;
    Ok(())
}

/// A fresh tmpfs with the given root mode, `nosuid,nodev`.
fn tmpfs(mode: &str) -> Result<DetachedMount, MountError> {
    let ctx = FsContext::new("tmpfs")?;
    ctx.set("mode", mode)?;
    ctx.set("source", "tmpfs")?;
    Ok(ctx.mount(UNTRUSTED)?)
}

/// A writable overlay over the image's `dir` (/etc, or /var for
/// composefs-rs), `nosuid,nodev`: its upper layer is the disk's (or a
/// tmpfs).
fn dir_overlay(root: &Path, dir: &str, upper: &Path, work: &Path) -> Result<(), MountError> {
    let ctx = FsContext::new("overlay")?;
    ctx.set("source", &format!("sealroot-{dir}"))?;
    ctx.set_path("lowerdir+", &root.join(dir))?;
    ctx.set_path("upperdir", upper)?;
    ctx.set_path("workdir", work)?;
    ctx.mount(UNTRUSTED)?.attach(&root.join(dir))?;
    Ok(())
}

/// [`dir_overlay`] with a fresh tmpfs as upper layer: changes vanish at
/// shutdown.
fn transient_overlay(stage: &Stage, root: &Path, dir: &str) -> Result<(), MountError> {
    let tmp = stage.dir(&format!("{dir}-tmp"))?;
    tmpfs("0755")?.attach(&tmp)?;
    for d in ["upper", "work"] {
        std::fs::create_dir(tmp.join(d))
            .map_err(|e| other(format!("creating {}/{d}", tmp.display()), e.to_string()))?;
    }
    dir_overlay(root, dir, &tmp.join("upper"), &tmp.join("work"))?;
    mount::detach(&tmp)?;
    Ok(())
}

/// The EROFS mount: file-backed where the kernel can, else a loop device.
fn mount_erofs(
    image: &File,
    backing: ErofsBacking,
    loader: &mut Loader,
) -> Result<(DetachedMount, String), MountError> {
    let acl = composefs::has_acl(image);
    if backing != ErofsBacking::Loop {
        // The path names exactly the verified open file.
        match composefs::erofs(ErofsSource::File(image), acl) {
            Ok(m) => return Ok((m, "file".into())),
            Err(e) if e.errno == Errno::NOTBLK && backing == ErofsBacking::Auto => {}
            Err(e) => return Err(e.into()),
        }
    }
    loader
        .ensure_module("loop")
        .map_err(|e| other("loop device fallback", e.to_string()))?;
    // Keep the device open until mounted: with AUTOCLEAR, closing the last
    // reference before the mount holds one would detach it.
    let (device, _open) = attach_loop(image)?;
    let m = composefs::erofs(ErofsSource::Device(&device), acl)?;
    Ok((m, format!("loop:{}", device.display())))
}

/// Attaches `image` read-only to a free loop device (auto-clearing, so it
/// goes away with the mount).
fn attach_loop(image: &File) -> Result<(PathBuf, File), MountError> {
    use crate::sys::loopdev;
    let err = |what: &str, e: Errno| {
        other(
            "loop device fallback",
            format!(
                "{what}: {}: {}",
                crate::errno::errno_name(e),
                std::io::Error::from(e)
            ),
        )
    };
    let control = File::open("/dev/loop-control").map_err(|e| {
        other(
            "loop device fallback",
            format!("cannot open /dev/loop-control: {e} (is devtmpfs mounted on /dev?)"),
        )
    })?;
    // Another process may grab the device between GET_FREE and CONFIGURE.
    for _ in 0..8 {
        let n = loopdev::get_free(&control).map_err(|e| err("LOOP_CTL_GET_FREE", e))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = File::open(&path).map_err(|e| {
            other(
                "loop device fallback",
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        match loopdev::configure(
            &dev,
            image,
            loopdev::LO_FLAGS_READ_ONLY | loopdev::LO_FLAGS_AUTOCLEAR,
        ) {
            Ok(()) => return Ok((path, dev)),
            Err(Errno::BUSY) => continue,
            Err(e) => return Err(err("LOOP_CONFIGURE", e)),
        }
    }
    Err(other(
        "loop device fallback",
        "every free loop device was taken before it could be configured",
    ))
}
