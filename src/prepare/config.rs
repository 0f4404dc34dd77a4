//! `/etc/sealroot/prepare.conf`: the initramfs' own settings.
//!
//! The file lives in the (signed, measured) initramfs, never on the root
//! filesystem, and is optional: without it every setting has its default.
//! The format is INI-like, in the spirit of ostree's `prepare-root.conf`:
//!
//! ```ini
//! # comment (also ';'); blank lines are ignored
//! [sysroot]
//! path = /sysroot            # where the physical root is mounted
//! repository = sealroot      # the repository, relative to path
//!
//! [keyring]
//! seal = reject-all          # or ca-chain
//!
//! [verify]
//! signatures = auto          # auto | kernel | userspace
//! attach-signatures = no     # yes: enable fs-verity with the signature at boot
//! require-binding = yes      # no: also boot images whose config and EROFS no
//!                            #   signature ties together (older seals)
//! min-created = 2026-01-01T00:00:00Z   # rollback floor (default: none)
//!
//! [etc]
//! mode = persistent          # persistent | transient | image
//!
//! [var]
//! mode = persistent          # persistent | transient
//!
//! [mount]
//! erofs-backing = auto       # auto | file | loop
//!
//! [ipe]
//! policy = /etc/sealroot/ipe/policy.p7s   # the signed IPE policy (docs/ipe.md)
//! required = no              # yes: refuse to boot without an active policy
//!
//! [boot]
//! layout = repository        # ostree: boot the ostree deployment `ostree=`
//!                            #   names (docs/boot-chains.md, "ostree");
//!                            # composefs-rs: boot the image composefs-rs or
//!                            #   bootc deployed (docs/boot-chains.md, "bootc")
//! required = yes             # no: stand down when the command line names
//!                            #   no sealroot image (another unit boots)
//!
//! [composefs-rs]
//! require-signature = yes    # no: with layout = composefs-rs, boot an image
//!                            #   whose only anchor is the composefs= digest
//!                            #   (sound only when the command line is sealed)
//! ```
//!
//! The parser is strict: an unknown section or key, a repeated key, a key
//! outside a section, a malformed line or value is an error naming the line.
//! Values run to the end of the line; an inline comment needs whitespace
//! before its `#`/`;`. Booleans are `yes`/`no`/`true`/`false`/`1`/`0`.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::timestamp::Timestamp;

/// Where the file is read from.
pub const CONFIG_PATH: &str = "/etc/sealroot/prepare.conf";
/// Largest config file read.
pub const MAX_CONFIG_SIZE: usize = 64 * 1024;

/// How the `.fs-verity` keyring is sealed after the certificates are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SealMode {
    /// No key can be added any more (`KEYCTL_RESTRICT_KEYRING` without a
    /// restriction).
    RejectAll,
    /// Only certificates signed by a key already in the keyring
    /// (`key_or_keyring:0:chain`), so a CA in `certs.d` can vouch for new
    /// signing certificates later.
    CaChain,
}

/// Which signature checks must have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignaturePolicy {
    /// Use the kernel's check where the kernel supports builtin signatures
    /// and the file carries one; otherwise the userspace check alone.
    Auto,
    /// Every signed file must carry a builtin signature the kernel checked
    /// (needs `CONFIG_FS_VERITY_BUILTIN_SIGNATURES`).
    Kernel,
    /// Userspace verification of the detached signatures against the
    /// kernel-measured digests; kernels without builtin-signature support
    /// are expected.
    Userspace,
}

/// What `/etc` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcMode {
    /// Overlay with the upper layer in the deployment's state directory.
    Persistent,
    /// Overlay with a tmpfs upper layer: changes vanish at shutdown.
    Transient,
    /// The image's `/etc`, read-only like the rest of the root.
    Image,
}

/// What `/var` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VarMode {
    /// Bind mount of the deployment's `var/` state directory.
    Persistent,
    /// An empty tmpfs.
    Transient,
    /// The image's `/var`, read-only (only composefs-rs `[var] mount =
    /// "none"`; not a `prepare.conf` value).
    Image,
}

/// How the EROFS image is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErofsBacking {
    /// File-backed (`CONFIG_EROFS_FS_BACKED_BY_FILE`, Linux 6.12), else a
    /// loop device.
    Auto,
    /// File-backed only.
    File,
    /// Always through a loop device.
    Loop,
}

/// `[ipe]`: the IPE policy sealroot-prepare loads and activates once the
/// sealed root is mounted (`prepare::ipe`, docs/ipe.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpeConfig {
    /// The signed policy in the initramfs; a missing file means no IPE
    /// unless `required`.
    pub policy: PathBuf,
    /// Refuse to boot unless the policy is loaded and active. A policy file
    /// that exists is always required to work: nothing on the kernel
    /// command line (e.g. `lsm=` without ipe) may switch it off.
    pub required: bool,
}

impl Default for IpeConfig {
    fn default() -> Self {
        IpeConfig {
            policy: PathBuf::from(IPE_POLICY_PATH),
            required: false,
        }
    }
}

/// Why `[boot] required = no` does not stand down when `[ipe] required =
/// yes` (sealroot-prepare and the switch-root gate say the same).
pub const STAND_DOWN_WITH_IPE_REQUIRED: &str = "the kernel command line names no sealroot \
    image and [boot] required = no, but [ipe] required = yes: standing down would boot a root \
    sealroot did not verify, without the IPE policy; refusing (select an image with \
    sealroot=, or set [ipe] required = no in the initramfs)";

/// Where the dracut module and the mkosi integration install the signed
/// policy.
pub const IPE_POLICY_PATH: &str = "/etc/sealroot/ipe/policy.p7s";

/// `[boot]`: whether this initramfs boots only sealed roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BootConfig {
    /// `yes` (default): every boot must select a sealroot image; without
    /// one sealroot-prepare fails and the boot stops (emergency.target).
    /// `no`: when the kernel command line names no `sealroot*` parameter
    /// at all, sealroot-prepare records that it stood down and another
    /// root-preparing unit (ostree-prepare-root, composefs-setup-root) or
    /// the plain physical root boots. Only the initramfs decides this;
    /// the command line can select, never opt out.
    pub required: bool,
    /// What the physical root holds and the command line selects from.
    pub layout: Layout,
}

/// `[boot] layout`: the on-disk layout this initramfs boots. Only the
/// initramfs decides it; the command line then selects within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// sealroot's repository (`[sysroot] repository`), selected by
    /// `sealroot=` and the other digests of [`super::cmdline`].
    Repository,
    /// An ostree deployment, selected by `ostree=` ([`super::ostree`]).
    Ostree,
    /// A composefs-rs / bootc repository (`<sysroot>/composefs`), selected
    /// by `composefs.digest=` / `composefs=` ([`super::composefs_rs`]).
    ComposefsRs,
}

/// `[composefs-rs]`: settings of `[boot] layout = composefs-rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComposefsRsConfig {
    /// `yes` (default): the EROFS image the command line names must carry
    /// an fs-verity builtin signature by a trusted certificate. `no`: the
    /// image's fs-verity digest equal to the command line's is enough (a
    /// signature present is still checked): only as trustworthy as the
    /// command line, i.e. for a UKI whose command line is signed.
    pub require_signature: bool,
}

impl Default for ComposefsRsConfig {
    fn default() -> Self {
        ComposefsRsConfig {
            require_signature: true,
        }
    }
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            required: true,
            layout: Layout::Repository,
        }
    }
}

/// All settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// Where the physical root is mounted (`sysroot`, default `/sysroot`).
    pub sysroot: PathBuf,
    /// The repository (`repository`), relative to `sysroot`.
    pub repository: PathBuf,
    /// How the keyring is sealed (`seal`).
    pub seal: SealMode,
    /// Which signature checks must have run (`signatures`).
    pub signatures: SignaturePolicy,
    /// Signed files without fs-verity get it now, with their signature,
    /// and on a deployment's first boot without it the objects too
    /// (`attach-signatures`).
    pub attach_signatures: bool,
    /// Refuse images whose config and merged EROFS no trusted signature
    /// ties together (docs/sealing.md, "Binding").
    pub require_binding: bool,
    /// Rollback floor: refuse images whose config says they were created
    /// before this.
    pub min_created: Option<Timestamp>,
    /// What `/etc` is (`etc`).
    pub etc: EtcMode,
    /// What `/var` is (`var`).
    pub var: VarMode,
    /// How the EROFS image is mounted (`erofs-backing`).
    pub erofs_backing: ErofsBacking,
    /// The `[ipe]` section.
    pub ipe: IpeConfig,
    /// The `[boot]` section.
    pub boot: BootConfig,
    /// The `[composefs-rs]` section.
    pub composefs_rs: ComposefsRsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sysroot: PathBuf::from("/sysroot"),
            repository: PathBuf::from("sealroot"),
            seal: SealMode::RejectAll,
            signatures: SignaturePolicy::Auto,
            attach_signatures: false,
            require_binding: true,
            min_created: None,
            etc: EtcMode::Persistent,
            var: VarMode::Persistent,
            erofs_backing: ErofsBacking::Auto,
            ipe: IpeConfig::default(),
            boot: BootConfig::default(),
            composefs_rs: ComposefsRsConfig::default(),
        }
    }
}

impl Config {
    /// The repository's absolute path.
    pub fn repository_path(&self) -> PathBuf {
        self.sysroot.join(&self.repository)
    }
}

/// A config file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A line that does not parse, or a value out of range.
    #[error("{file}:{line}: {reason}")]
    Line {
        /// The config file.
        file: String,
        /// The line number, from 1.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The file as a whole: unreadable, or settings that contradict each
    /// other.
    #[error("{file}: {reason}")]
    File {
        /// The config file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// Parses a config file's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut section: Option<Section> = None;
    let mut seen: Vec<(Section, &str)> = Vec::new();
    for (no, raw) in text.split('\n').enumerate() {
        let line_no = no + 1;
        let err = |reason: String| ConfigError::Line {
            file: file.to_owned(),
            line: line_no,
            reason,
        };
        let line = strip_comment(raw.strip_suffix('\r').unwrap_or(raw)).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| err(format!("malformed section header {line:?}")))?
                .trim();
            let s = Section::parse(name).ok_or_else(|| {
                err(format!(
                    "unknown section [{name}] (known: {})",
                    Section::ALL.map(|s| format!("[{s}]")).join(", ")
                ))
            })?;
            section = Some(s);
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            err(format!(
                "expected `key = value` or `[section]`, got {line:?}"
            ))
        })?;
        let (key, value) = (key.trim(), value.trim());
        let s = section.ok_or_else(|| err(format!("`{key}` outside any [section]")))?;
        if value.is_empty() {
            return Err(err(format!("[{s}] {key}: empty value")));
        }
        if seen.contains(&(s, key)) {
            return Err(err(format!("[{s}] {key} is set twice")));
        }
        seen.push((s, key));
        config
            .set(s, key, value)
            .map_err(|reason| err(format!("[{s}] {key}: {reason}")))?;
    }
    // sealroot-prepare replaces ostree-prepare-root in this layout: there
    // is no other unit to stand down for, and `ostree=` is on every ostree
    // command line, so standing down could only boot an unverified root.
    if config.boot.layout == Layout::Ostree && !config.boot.required {
        return Err(ConfigError::File {
            file: file.to_owned(),
            reason: "[boot] layout = ostree needs [boot] required = yes: sealroot-prepare \
                     replaces ostree-prepare-root and never stands down for it"
                .into(),
        });
    }
    if config.boot.layout == Layout::Ostree && config.ipe.required {
        return Err(ConfigError::File {
            file: file.to_owned(),
            reason: OSTREE_WITH_IPE.into(),
        });
    }
    // As for ostree: composefs-setup-root's own selector is on every such
    // command line, so standing down could only boot an unverified root.
    if config.boot.layout == Layout::ComposefsRs && !config.boot.required {
        return Err(ConfigError::File {
            file: file.to_owned(),
            reason: "[boot] layout = composefs-rs needs [boot] required = yes: sealroot-prepare \
                     replaces composefs-setup-root and never stands down for it"
                .into(),
        });
    }
    if config.boot.layout == Layout::ComposefsRs && config.ipe.required {
        return Err(ConfigError::File {
            file: file.to_owned(),
            reason: COMPOSEFS_RS_WITH_IPE.into(),
        });
    }
    Ok(config)
}

/// Why the ostree layout and an IPE policy do not go together (yet): the
/// policy allows only objects with their own builtin signature, and
/// `sealroot ostree` signs the EROFS and binding record, not the objects.
/// Activating the policy would make the root unbootable; skipping it would
/// boot without the enforcement the initramfs asked for.
pub const OSTREE_WITH_IPE: &str = "[boot] layout = ostree cannot enforce an IPE policy: \
    ostree objects carry no per-object signatures (docs/ipe.md), so the policy would refuse \
    every program of the root; remove [ipe] required and the policy file from the initramfs, \
    or boot a sealroot repository (layout = repository)";

/// Why the composefs-rs layout and an IPE policy do not go together:
/// composefs-rs enables fs-verity on its objects without builtin
/// signatures, and the policy admits only signed objects
/// (`fsverity_signature=TRUE`, docs/ipe.md).
pub const COMPOSEFS_RS_WITH_IPE: &str = "[boot] layout = composefs-rs cannot enforce an IPE \
    policy: composefs-rs objects carry no per-object builtin signatures (docs/ipe.md), so the \
    policy would refuse every program of the root; remove [ipe] required and the policy file \
    from the initramfs, or boot a sealroot repository (layout = repository)";

/// Cuts a comment: a line starting with `#`/`;`, or ` #`/` ;` later on.
fn strip_comment(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return "";
    }
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if matches!(bytes[i], b'#' | b';') && matches!(bytes[i - 1], b' ' | b'\t') {
            return &line[..i];
        }
    }
    line
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Sysroot,
    Keyring,
    Verify,
    Etc,
    Var,
    Mount,
    Ipe,
    Boot,
    ComposefsRs,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Sysroot,
        Section::Keyring,
        Section::Verify,
        Section::Etc,
        Section::Var,
        Section::Mount,
        Section::Ipe,
        Section::Boot,
        Section::ComposefsRs,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Sysroot => "sysroot",
            Section::Keyring => "keyring",
            Section::Verify => "verify",
            Section::Etc => "etc",
            Section::Var => "var",
            Section::Mount => "mount",
            Section::Ipe => "ipe",
            Section::Boot => "boot",
            Section::ComposefsRs => "composefs-rs",
        }
    }

    fn parse(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn choice<T: Copy>(value: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!("{value:?} is not one of {}", names.join(", "))
        })
}

fn boolean(value: &str) -> Result<bool, String> {
    choice(
        value,
        &[
            ("yes", true),
            ("true", true),
            ("1", true),
            ("no", false),
            ("false", false),
            ("0", false),
        ],
    )
}

/// An absolute, normal path (no `.`/`..`).
fn absolute_path(value: &str) -> Result<PathBuf, String> {
    let p = Path::new(value);
    if !p.is_absolute() {
        return Err(format!("{value:?} must be an absolute path"));
    }
    normal(p)?;
    Ok(p.to_owned())
}

/// A relative path below the sysroot (no `..`, not absolute).
fn relative_path(value: &str) -> Result<PathBuf, String> {
    let p = Path::new(value);
    if p.is_absolute() {
        return Err(format!(
            "{value:?} must be relative to [sysroot] path, e.g. `sealroot`"
        ));
    }
    normal(p)?;
    Ok(p.to_owned())
}

fn normal(p: &Path) -> Result<(), String> {
    for c in p.components() {
        match c {
            Component::RootDir | Component::Normal(_) => {}
            _ => return Err(format!("{:?} may not contain `.` or `..`", p.display())),
        }
    }
    if p.as_os_str().len() > 1024 {
        return Err("path longer than 1024 bytes".into());
    }
    Ok(())
}

impl Config {
    fn set(&mut self, section: Section, key: &str, value: &str) -> Result<(), String> {
        match (section, key) {
            (Section::Sysroot, "path") => self.sysroot = absolute_path(value)?,
            (Section::Sysroot, "repository") => self.repository = relative_path(value)?,
            (Section::Keyring, "seal") => {
                self.seal = choice(
                    value,
                    &[
                        ("reject-all", SealMode::RejectAll),
                        ("ca-chain", SealMode::CaChain),
                    ],
                )?
            }
            (Section::Verify, "signatures") => {
                self.signatures = choice(
                    value,
                    &[
                        ("auto", SignaturePolicy::Auto),
                        ("kernel", SignaturePolicy::Kernel),
                        ("userspace", SignaturePolicy::Userspace),
                    ],
                )?
            }
            (Section::Verify, "attach-signatures") => self.attach_signatures = boolean(value)?,
            (Section::Verify, "require-binding") => self.require_binding = boolean(value)?,
            (Section::Verify, "min-created") => {
                self.min_created = Some(Timestamp::parse(value).map_err(|e| e.to_string())?)
            }
            (Section::Etc, "mode") => {
                self.etc = choice(
                    value,
                    &[
                        ("persistent", EtcMode::Persistent),
                        ("transient", EtcMode::Transient),
                        ("image", EtcMode::Image),
                    ],
                )?
            }
            (Section::Var, "mode") => {
                self.var = choice(
                    value,
                    &[
                        ("persistent", VarMode::Persistent),
                        ("transient", VarMode::Transient),
                    ],
                )?
            }
            (Section::Mount, "erofs-backing") => {
                self.erofs_backing = choice(
                    value,
                    &[
                        ("auto", ErofsBacking::Auto),
                        ("file", ErofsBacking::File),
                        ("loop", ErofsBacking::Loop),
                    ],
                )?
            }
            (Section::Ipe, "policy") => self.ipe.policy = absolute_path(value)?,
            (Section::Ipe, "required") => self.ipe.required = boolean(value)?,
            (Section::Boot, "required") => self.boot.required = boolean(value)?,
            (Section::Boot, "layout") => {
                self.boot.layout = choice(
                    value,
                    &[
                        ("repository", Layout::Repository),
                        ("ostree", Layout::Ostree),
                        ("composefs-rs", Layout::ComposefsRs),
                    ],
                )?
            }
            (Section::ComposefsRs, "require-signature") => {
                self.composefs_rs.require_signature = boolean(value)?
            }
            _ => {
                let known: &[&str] = match section {
                    Section::Sysroot => &["path", "repository"],
                    Section::Keyring => &["seal"],
                    Section::Verify => &[
                        "signatures",
                        "attach-signatures",
                        "require-binding",
                        "min-created",
                    ],
                    Section::Etc | Section::Var => &["mode"],
                    Section::Mount => &["erofs-backing"],
                    Section::Ipe => &["policy", "required"],
                    Section::Boot => &["required", "layout"],
                    Section::ComposefsRs => &["require-signature"],
                };
                return Err(format!("unknown key (known: {})", known.join(", ")));
            }
        }
        Ok(())
    }
}

/// Reads [`CONFIG_PATH`] (or another file); a missing file means defaults.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => {
            return Err(ConfigError::File {
                file,
                reason: format!("cannot read: {}: {e}", crate::errno::io_errno_name(&e)),
            });
        }
    };
    if bytes.len() > MAX_CONFIG_SIZE {
        return Err(ConfigError::File {
            file,
            reason: format!("larger than {MAX_CONFIG_SIZE} bytes"),
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::File {
        file: file.clone(),
        reason: format!("not UTF-8 text (byte {})", e.valid_up_to()),
    })?;
    parse(text, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(parse("", "f").unwrap(), Config::default());
        assert_eq!(
            parse("# only\n\n ; comments\n", "f").unwrap(),
            Config::default()
        );
        assert_eq!(
            Config::default().repository_path(),
            PathBuf::from("/sysroot/sealroot")
        );
    }

    #[test]
    fn every_setting() {
        let c = parse(
            "[sysroot]\npath = /mnt/root # inline comment\nrepository=os/repo\r\n\
             [keyring]\nseal = ca-chain\n[verify]\nsignatures = kernel\nattach-signatures = yes\n\
             require-binding = no\nmin-created = 2026-01-31T12:00:00+01:00 # floor\n\
             [etc]\nmode = transient\n[var]\nmode=transient\n[mount]\nerofs-backing = loop\n\
             [ipe]\npolicy = /etc/ipe.p7s\nrequired = yes\n[boot]\nrequired = no\n\
             [composefs-rs]\nrequire-signature = no\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                sysroot: "/mnt/root".into(),
                repository: "os/repo".into(),
                seal: SealMode::CaChain,
                signatures: SignaturePolicy::Kernel,
                attach_signatures: true,
                require_binding: false,
                min_created: Some(Timestamp::parse("2026-01-31T11:00:00Z").unwrap()),
                etc: EtcMode::Transient,
                var: VarMode::Transient,
                erofs_backing: ErofsBacking::Loop,
                ipe: IpeConfig {
                    policy: "/etc/ipe.p7s".into(),
                    required: true,
                },
                boot: BootConfig {
                    required: false,
                    layout: Layout::Repository,
                },
                composefs_rs: ComposefsRsConfig {
                    require_signature: false,
                },
            }
        );
        assert_eq!(c.repository_path(), PathBuf::from("/mnt/root/os/repo"));
        // '#' without whitespace before it is part of the value.
        let e = parse("[etc]\nmode = image#x\n", "f").unwrap_err();
        assert!(e.to_string().contains("\"image#x\" is not one of"), "{e}");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = |t: &str| {
            parse(t, "/etc/sealroot/prepare.conf")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("\n[etc]\nmode = sometimes\n"),
            "/etc/sealroot/prepare.conf:3: [etc] mode: \"sometimes\" is not one of persistent, transient, image"
        );
        assert!(e("mode = image\n").contains(":1: `mode` outside any [section]"));
        assert!(e("[bootloader]\n").contains(":1: unknown section [bootloader]"));
        assert!(e("[etc\n").contains("malformed section header"));
        assert!(e("[etc]\nmode\n").contains(":2: expected `key = value`"));
        assert!(e("[etc]\nmode = image\nmode = image\n").contains(":3: [etc] mode is set twice"));
        assert!(e("[etc]\nmodes = image\n").contains("unknown key (known: mode)"));
        assert!(e("[etc]\nmode =\n").contains("empty value"));
        assert!(e("[sysroot]\npath = sysroot\n").contains("must be an absolute path"));
        assert!(e("[sysroot]\npath = /a/../b\n").contains("may not contain"));
        assert!(e("[sysroot]\nrepository = /abs\n").contains("must be relative"));
        assert!(e("[sysroot]\nrepository = ../x\n").contains("may not contain"));
        assert!(e("[verify]\nattach-signatures = maybe\n").contains("not one of yes, true"));
        assert!(e("[ipe]\npolicy = ipe.p7s\n").contains("must be an absolute path"));
        assert!(e("[ipe]\nenforce = yes\n").contains("unknown key (known: policy, required)"));
        assert!(e("[verify]\nrequire-binding = maybe\n").contains("not one of yes, true"));
        assert_eq!(
            e("[verify]\nmin-created = 2026-01-31\n"),
            "/etc/sealroot/prepare.conf:2: [verify] min-created: \"2026-01-31\" is not an RFC \
             3339 timestamp ('T' between date and time); expected e.g. 2026-01-31T12:00:00Z or \
             2026-01-31T13:00:00.5+01:00"
        );
    }

    #[test]
    fn boot_required_defaults_to_yes() {
        assert!(Config::default().boot.required);
        assert!(
            parse("[boot]\nrequired = yes\n", "f")
                .unwrap()
                .boot
                .required
        );
        assert!(!parse("[boot]\nrequired = no\n", "f").unwrap().boot.required);
        let e = parse("[boot]\nrequired = maybe\n", "f").unwrap_err();
        assert!(e.to_string().contains("[boot] required: \"maybe\""), "{e}");
        let e = parse("[boot]\noptional = yes\n", "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key (known: required, layout)"),
            "{e}"
        );
    }

    #[test]
    fn ostree_layout_is_the_initramfs_choice_and_never_stands_down() {
        assert_eq!(Config::default().boot.layout, Layout::Repository);
        let c = parse("[boot]\nlayout = ostree\n", "f").unwrap();
        assert_eq!(c.boot.layout, Layout::Ostree);
        assert!(c.boot.required);
        let e = parse("[boot]\nlayout = ostree\n[ipe]\nrequired = yes\n", "f").unwrap_err();
        assert!(e.to_string().contains(OSTREE_WITH_IPE), "{e}");
        let e = parse("[boot]\nlayout = ostree\nrequired = no\n", "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("[boot] layout = ostree needs [boot] required = yes"),
            "{e}"
        );
        let e = parse("[boot]\nlayout = bootc\n", "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("\"bootc\" is not one of repository, ostree, composefs-rs"),
            "{e}"
        );
    }

    #[test]
    fn composefs_rs_layout_requires_signatures_by_default_and_never_stands_down() {
        assert!(Config::default().composefs_rs.require_signature);
        let c = parse("[boot]\nlayout = composefs-rs\n", "f").unwrap();
        assert_eq!(c.boot.layout, Layout::ComposefsRs);
        assert!(c.boot.required && c.composefs_rs.require_signature);
        let c = parse(
            "[composefs-rs]\nrequire-signature = no\n[boot]\nlayout = composefs-rs\n",
            "f",
        )
        .unwrap();
        assert!(!c.composefs_rs.require_signature);
        let e = parse("[boot]\nlayout = composefs-rs\nrequired = no\n", "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("layout = composefs-rs needs [boot] required = yes"),
            "{e}"
        );
        let e = parse(
            "[boot]\nlayout = composefs-rs\n[ipe]\nrequired = yes\n",
            "f",
        )
        .unwrap_err();
        assert!(e.to_string().contains(COMPOSEFS_RS_WITH_IPE), "{e}");
        let e = parse("[composefs-rs]\nrequire-signatures = no\n", "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key (known: require-signature)"),
            "{e}"
        );
    }

    /// `[ipe]`, `[boot]` and `[verify]` (the three sections the IPE and
    /// boot-edge work added keys to) in one file, in any order; an unknown
    /// key in any of them is refused with that section's own key list, and
    /// a key of one section is not accepted in another.
    #[test]
    fn ipe_boot_verify_sections_together() {
        let c = parse(
            "[boot]\nrequired = no\n[ipe]\nrequired = yes\npolicy = /etc/sealroot/ipe/p.p7s\n\
             [verify]\nrequire-binding = yes\nmin-created = 2026-02-01T00:00:00Z\n",
            "f",
        )
        .unwrap();
        assert!(!c.boot.required);
        assert!(c.ipe.required);
        assert_eq!(c.ipe.policy, PathBuf::from("/etc/sealroot/ipe/p.p7s"));
        assert!(c.require_binding);
        assert_eq!(
            c.min_created,
            Some(Timestamp::parse("2026-02-01T00:00:00Z").unwrap())
        );
        // Defaults of the three sections when the file names none of them.
        let d = Config::default();
        assert!(d.boot.required && !d.ipe.required && d.require_binding);
        assert_eq!(d.ipe.policy, PathBuf::from(IPE_POLICY_PATH));
        assert_eq!(d.min_created, None);

        let e = |t: &str| parse(t, "f").unwrap_err().to_string();
        let valid =
            "[boot]\nrequired = no\n[ipe]\nrequired = yes\n[verify]\nrequire-binding = no\n";
        for (extra, known) in [
            (
                "[ipe]\nmin-created = 2026-02-01T00:00:00Z\n",
                "policy, required",
            ),
            ("[boot]\npolicy = /p\n", "required, layout"),
            (
                "[verify]\nrequired = yes\n",
                "signatures, attach-signatures, require-binding, min-created",
            ),
        ] {
            let err = e(&format!("{valid}{extra}"));
            assert!(
                err.contains(&format!("unknown key (known: {known})")),
                "{extra:?}: {err}"
            );
            // The line number points at the unknown key (after the valid part).
            assert!(err.starts_with("f:8: "), "{extra:?}: {err}");
        }
        // A repeated section header does not allow setting a key twice.
        assert!(
            e("[ipe]\nrequired = yes\n[boot]\nrequired = no\n[ipe]\nrequired = no\n")
                .contains("[ipe] required is set twice")
        );
    }

    #[test]
    fn missing_file_is_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&dir.path().join("none")).unwrap(), Config::default());
        let f = dir.path().join("bad");
        std::fs::write(&f, b"[etc]\nmode = \xff\n").unwrap();
        assert!(load(&f).unwrap_err().to_string().contains("not UTF-8"));
    }
}
