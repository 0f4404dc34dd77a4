//! ostree's `prepare-root.conf`, read from the initramfs.
//!
//! ostree-prepare-root reads `/usr/lib/ostree/prepare-root.conf`, then
//! `/etc/ostree/prepare-root.conf`, each load replacing the previous one
//! (`otcore_load_config`: `g_key_file_load_from_data` clears the key
//! file), so the `/etc` file, when present, is the whole configuration.
//! sealroot-prepare does the same, from the initramfs only (never from the
//! disk), and takes the settings as follows:
//!
//! | setting | sealroot-prepare |
//! | --- | --- |
//! | `[composefs] enabled = yes\|true\|1\|verity\|maybe` | mapped: always the signed composefs with `verity=require` (stricter than `yes`/`maybe`) |
//! | `[composefs] enabled = signed` | refused: that is ostree's ed25519 commit signature, which sealroot does not check; sealroot checks its X.509 signature of the binding record instead (set `verity`) |
//! | `[composefs] enabled = no\|false\|0` | refused: sealroot never boots an unverified root |
//! | `[composefs] keypath` | refused (only for `signed`) |
//! | `[sysroot] readonly = true\|false` | honoured; default `true` (composefs implies it in ostree) |
//! | `[etc] transient = false` | honoured (the deployment's `/etc`, bind-mounted) |
//! | `[etc] transient = true` | refused (not supported yet) |
//! | `[root] transient`, `[root] transient-ro` = `false` | honoured |
//! | `[root] transient`, `[root] transient-ro` = `true` | refused: a writable layer over the signed root |
//! | any other group or key | refused (a setting sealroot does not know could matter) |
//!
//! The syntax is GLib's key file (`GKeyFile`): `# comment` lines, blank
//! lines, `[group]`, `key = value` (whitespace around `=` ignored);
//! booleans `true`/`false`/`1`/`0`. A repeated key is an error here.

use std::path::Path;

/// Where ostree keeps it in the initramfs, in load order.
pub const PATHS: [&str; 2] = [
    "/usr/lib/ostree/prepare-root.conf",
    "/etc/ostree/prepare-root.conf",
];
/// Largest file read.
pub const MAX_SIZE: usize = 64 * 1024;

/// What sealroot-prepare takes from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PrepareRootConf {
    /// The file read (`None`: neither exists; defaults).
    pub file: Option<String>,
    /// `[composefs] enabled` as written (`None`: unset).
    pub composefs_enabled: Option<String>,
    /// `[sysroot] readonly`.
    pub sysroot_readonly: bool,
}

impl Default for PrepareRootConf {
    fn default() -> Self {
        PrepareRootConf {
            file: None,
            composefs_enabled: None,
            sysroot_readonly: true,
        }
    }
}

/// A `prepare-root.conf` that does not parse or asks for what sealroot
/// refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ConfError {
    /// The configuration file.
    pub file: String,
    /// 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        v => Err(format!(
            "{v:?} is not a key-file boolean (true, false, 1, 0)"
        )),
    }
}

/// Parses the text of `file`.
pub fn parse(text: &str, file: &str) -> Result<PrepareRootConf, ConfError> {
    let mut conf = PrepareRootConf {
        file: Some(file.to_owned()),
        ..Default::default()
    };
    let mut group: Option<&str> = None;
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (no, raw) in text.split('\n').enumerate() {
        let err = |reason: String| ConfError {
            file: file.to_owned(),
            line: no + 1,
            reason,
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| err(format!("malformed group header {line:?}")))?;
            if !matches!(name, "composefs" | "sysroot" | "etc" | "root") {
                return Err(err(format!(
                    "group [{name}] is not one sealroot-prepare knows (composefs, sysroot, etc, \
                     root); refusing rather than ignoring it"
                )));
            }
            group = Some(name);
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err(format!("expected `key = value` or `[group]`, got {line:?}")))?;
        let (key, value) = (key.trim(), value.trim());
        let g = group.ok_or_else(|| err(format!("`{key}` outside any [group]")))?;
        if seen.contains(&(g, key)) {
            return Err(err(format!("{g}.{key} is set twice")));
        }
        seen.push((g, key));
        let reason = |r: &str| err(format!("{g}.{key} = {value}: {r}"));
        match (g, key) {
            ("composefs", "enabled") => match value {
                "yes" | "true" | "1" | "verity" | "maybe" => {
                    conf.composefs_enabled = Some(value.to_owned())
                }
                "signed" => {
                    return Err(reason(
                        "refused: that is ostree's ed25519 commit signature, which \
                         sealroot-prepare does not check (it checks the X.509 signature of \
                         the binding record, docs/ostree.md); set composefs.enabled = verity",
                    ));
                }
                "no" | "false" | "0" => {
                    return Err(reason(
                        "refused: sealroot-prepare always mounts the signed composefs image \
                         with verity=require, never the plain deployment",
                    ));
                }
                _ => return Err(reason("not one of yes, verity, maybe, signed, no")),
            },
            ("composefs", "keypath") => {
                return Err(reason(
                    "refused: ed25519 keys are for composefs.enabled = signed; sealroot's \
                     certificates are in /etc/sealroot/certs.d",
                ));
            }
            ("sysroot", "readonly") => {
                conf.sysroot_readonly = boolean(value).map_err(|r| reason(&r))?
            }
            ("etc", "transient") => {
                if boolean(value).map_err(|r| reason(&r))? {
                    return Err(reason("refused: a transient /etc is not supported yet"));
                }
            }
            ("root", "transient" | "transient-ro") => {
                if boolean(value).map_err(|r| reason(&r))? {
                    return Err(reason(
                        "refused: a writable layer over the signed root is not sealed",
                    ));
                }
            }
            _ => {
                return Err(err(format!(
                    "{g}.{key} is not a setting sealroot-prepare knows; refusing rather than \
                     ignoring it"
                )));
            }
        }
    }
    Ok(conf)
}

/// Reads the configuration below `root` (the initramfs: `/`): the last of
/// [`PATHS`] that exists.
pub fn load(root: &Path) -> Result<PrepareRootConf, ConfError> {
    for path in PATHS.iter().rev() {
        let full = root.join(path.trim_start_matches('/'));
        let file = full.display().to_string();
        let whole = |reason: String| ConfError {
            file: file.clone(),
            line: 0,
            reason,
        };
        let bytes = match std::fs::read(&full) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(whole(format!("cannot read: {e}"))),
        };
        if bytes.len() > MAX_SIZE {
            return Err(whole(format!("larger than {MAX_SIZE} bytes")));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| whole(format!("not UTF-8 (byte {})", e.valid_up_to())))?;
        return parse(text, &file);
    }
    Ok(PrepareRootConf::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_ostree_ships() {
        // Fedora's /usr/lib/ostree/prepare-root.conf (ostree.spec), and
        // the settings of docs/ostree.md.
        let c = parse(
            "[composefs]\nenabled = yes\n[sysroot]\nreadonly = true\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.composefs_enabled.as_deref(), Some("yes"));
        assert!(c.sysroot_readonly);
        let c = parse(
            "# comment\n\n[composefs]\nenabled=verity\r\n[sysroot]\nreadonly=false\n[etc]\ntransient = false\n[root]\ntransient = 0\ntransient-ro = false\n",
            "f",
        )
        .unwrap();
        assert!(!c.sysroot_readonly);
        assert!(parse("", "f").unwrap().sysroot_readonly);
    }

    #[test]
    fn refuses_what_would_weaken_or_what_it_does_not_know() {
        let e = |t: &str| {
            parse(t, "/etc/ostree/prepare-root.conf")
                .unwrap_err()
                .to_string()
        };
        assert!(e("[composefs]\nenabled = signed\n").contains("ed25519 commit signature"));
        assert!(e("[composefs]\nenabled = no\n").contains("never the plain deployment"));
        assert!(e("[composefs]\nenabled = sometimes\n").contains("not one of"));
        assert!(e("[composefs]\nkeypath = /etc/k\n").contains("keypath = /etc/k: refused"));
        assert!(e("[etc]\ntransient = true\n").contains("not supported yet"));
        assert!(e("[root]\ntransient-ro = 1\n").contains("writable layer"));
        assert!(e("[sysroot]\nreadonly = yes\n").contains("not a key-file boolean"));
        assert!(
            e("[sysroot]\nbootloader = none\n").contains("sysroot.bootloader is not a setting")
        );
        assert!(e("[prepare]\n").contains("group [prepare] is not one"));
        assert!(e("enabled = yes\n").contains(":1: `enabled` outside any [group]"));
        assert!(e("[composefs\n").contains("malformed group header"));
        assert!(e("[composefs]\nenabled\n").contains("expected `key = value`"));
        assert!(
            e("[composefs]\nenabled = yes\nenabled = yes\n")
                .contains(":3: composefs.enabled is set twice")
        );
    }

    #[test]
    fn the_etc_file_replaces_the_usr_lib_one() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(load(t.path()).unwrap(), PrepareRootConf::default());
        std::fs::create_dir_all(t.path().join("usr/lib/ostree")).unwrap();
        std::fs::write(
            t.path().join("usr/lib/ostree/prepare-root.conf"),
            "[sysroot]\nreadonly = false\n",
        )
        .unwrap();
        assert!(!load(t.path()).unwrap().sysroot_readonly);
        std::fs::create_dir_all(t.path().join("etc/ostree")).unwrap();
        std::fs::write(
            t.path().join("etc/ostree/prepare-root.conf"),
            "[composefs]\nenabled = verity\n",
        )
        .unwrap();
        let c = load(t.path()).unwrap();
        assert!(c.sysroot_readonly, "the /usr/lib file is not merged");
        assert!(c.file.unwrap().ends_with("etc/ostree/prepare-root.conf"));
    }
}
