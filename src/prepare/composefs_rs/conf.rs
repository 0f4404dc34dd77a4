//! composefs-setup-root's `setup-root-conf.toml`: how `/etc` and `/var` of
//! a composefs-rs deployment are mounted.
//!
//! composefs-setup-root (composefs-rs `crates/composefs-setup-root`) and
//! bootc's initramfs-setup read `/usr/lib/composefs/setup-root-conf.toml`
//! from the root they run in: the *initramfs*, into which bootc's dracut
//! module copies the image's own file when the initramfs is built. It is
//! read from there here too, so it is as trusted as `prepare.conf` (the
//! initramfs is; on a UKI it is signed with it). The disk's copy is never
//! read.
//!
//! ```toml
//! [etc]
//! mount = "overlay"     # none | bind | overlay | transient (default overlay)
//! [var]
//! mount = "bind"        # none | bind | overlay | transient (default bind)
//! transient = false     # with no `mount`: true means transient
//! [root]
//! transient = false     # a tmpfs overlay over the whole root (refused, see below)
//! ```
//!
//! composefs-setup-root parses it with serde and the `toml` crate; here a
//! small parser reads exactly this subset of TOML (the initramfs binary
//! carries no TOML crate): `[table]` headers, `key = value` with dotted
//! keys (`etc.mount = "bind"`), basic and literal strings without escapes,
//! `true`/`false`, `#` comments. Anything else, an unknown table or key, or
//! a repeated key is an error naming the line: a key this parser does not
//! know may be one that changes what is mounted, so it is refused rather
//! than ignored (composefs-setup-root ignores unknown keys).

use std::path::Path;

/// Where composefs-setup-root reads it (in the initramfs).
pub const SETUP_ROOT_CONF: &str = "/usr/lib/composefs/setup-root-conf.toml";
/// Largest file read.
pub const MAX_SIZE: usize = 64 * 1024;

/// `mount = ...` of `[etc]` / `[var]` (composefs-setup-root `MountType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// The image's own directory, read-only.
    None,
    /// A bind mount of `state/deploy/<id>/<dir>`.
    Bind,
    /// overlayfs over the image's directory, upper and work directories in
    /// `state/deploy/<id>/<dir>/{upper,work}`.
    Overlay,
    /// overlayfs over the image's directory with a tmpfs upper layer.
    Transient,
}

impl MountType {
    const ALL: [(&'static str, MountType); 4] = [
        ("none", MountType::None),
        ("bind", MountType::Bind),
        ("overlay", MountType::Overlay),
        ("transient", MountType::Transient),
    ];
}

/// The settings, resolved: what each directory gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SetupRootConf {
    /// `[etc] mount`.
    pub etc: MountType,
    /// `[var] mount`.
    pub var: MountType,
    /// `[root] transient`: sealroot-prepare refuses `true` at boot.
    pub root_transient: bool,
}

impl Default for SetupRootConf {
    /// composefs-setup-root's defaults (`mount_subdir` calls).
    fn default() -> Self {
        SetupRootConf {
            etc: MountType::Overlay,
            var: MountType::Bind,
            root_transient: false,
        }
    }
}

/// A file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct ConfError {
    /// The file (its path in the initramfs).
    pub file: String,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    /// What is wrong, and what to write instead.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Top,
    Etc,
    Var,
    Root,
}

/// One table's raw keys.
#[derive(Debug, Default)]
struct Dir {
    mount: Option<MountType>,
    transient: Option<bool>,
}

/// Parses the file's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<SetupRootConf, ConfError> {
    let (mut etc, mut var) = (Dir::default(), Dir::default());
    let mut root_transient: Option<bool> = None;
    let mut table = Table::Top;
    let mut tables_seen: Vec<Table> = Vec::new();
    for (no, raw) in text.split('\n').enumerate() {
        let err = |reason: String| ConfError {
            file: file.to_owned(),
            line: no + 1,
            reason,
        };
        let line = strip_comment(raw.strip_suffix('\r').unwrap_or(raw)).map_err(err)?;
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .filter(|n| !n.starts_with('['))
                .ok_or_else(|| {
                    err(format!(
                        "malformed or unsupported table header {line:?} (expected [etc], [var] \
                         or [root])"
                    ))
                })?
                .trim_matches([' ', '\t']);
            table = table_named(name).ok_or_else(|| {
                err(format!(
                    "unknown table [{name}] (known: [etc], [var], [root])"
                ))
            })?;
            if tables_seen.contains(&table) {
                return Err(err(format!("table [{name}] is defined twice")));
            }
            tables_seen.push(table);
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err(format!("expected `key = value` or `[table]`, got {line:?}")))?;
        let mut path: Vec<&str> = key
            .split('.')
            .map(|k| k.trim_matches([' ', '\t']))
            .collect();
        if path.iter().any(|k| !is_bare_key(k)) {
            return Err(err(format!(
                "unsupported key {:?} (bare keys only: letters, digits, '-', '_')",
                key.trim()
            )));
        }
        let mut t = table;
        if t == Table::Top && path.len() == 2 {
            t = table_named(path[0]).ok_or_else(|| {
                err(format!(
                    "unknown table {:?} in key {:?} (known: etc, var, root)",
                    path[0],
                    key.trim()
                ))
            })?;
            path.remove(0);
        }
        let [name] = path.as_slice() else {
            return Err(err(format!(
                "unknown key {:?}{}",
                key.trim(),
                table_hint(table)
            )));
        };
        let value = value.trim_matches([' ', '\t']);
        let dup = || err(format!("{} is set twice", describe(t, name)));
        match (t, *name) {
            (Table::Etc | Table::Var, "mount") => {
                let dir = if t == Table::Etc { &mut etc } else { &mut var };
                if dir.mount.is_some() {
                    return Err(dup());
                }
                let s = string(value).map_err(|r| err(format!("{}: {r}", describe(t, name))))?;
                let m = MountType::ALL
                    .iter()
                    .find(|(n, _)| *n == s)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| {
                        err(format!(
                            "{}: {s:?} is not one of none, bind, overlay, transient",
                            describe(t, name)
                        ))
                    })?;
                dir.mount = Some(m);
            }
            (Table::Etc | Table::Var, "transient") => {
                let dir = if t == Table::Etc { &mut etc } else { &mut var };
                if dir.transient.is_some() {
                    return Err(dup());
                }
                dir.transient =
                    Some(boolean(value).map_err(|r| err(format!("{}: {r}", describe(t, name))))?);
            }
            (Table::Root, "transient") => {
                if root_transient.is_some() {
                    return Err(dup());
                }
                root_transient =
                    Some(boolean(value).map_err(|r| err(format!("{}: {r}", describe(t, name))))?);
            }
            _ => {
                return Err(err(format!(
                    "unknown key {}{}",
                    describe(t, name),
                    table_hint(t)
                )));
            }
        }
    }
    // composefs-setup-root `mount_subdir`: `mount` wins; else `transient`
    // picks transient; else the directory's default.
    let resolve = |d: &Dir, default: MountType| match (d.mount, d.transient) {
        (Some(m), _) => m,
        (None, Some(true)) => MountType::Transient,
        (None, _) => default,
    };
    let defaults = SetupRootConf::default();
    Ok(SetupRootConf {
        etc: resolve(&etc, defaults.etc),
        var: resolve(&var, defaults.var),
        root_transient: root_transient.unwrap_or(false),
    })
}

/// Reads `path` (normally [`SETUP_ROOT_CONF`] in the initramfs); a missing
/// file means composefs-setup-root's defaults, as there.
pub fn load(path: &Path) -> Result<SetupRootConf, ConfError> {
    let file = path.display().to_string();
    let whole = |reason: String| ConfError {
        file: file.clone(),
        line: 0,
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SetupRootConf::default());
        }
        Err(e) => {
            return Err(whole(format!(
                "cannot read: {}: {e}",
                crate::errno::io_errno_name(&e)
            )));
        }
    };
    if bytes.len() > MAX_SIZE {
        return Err(whole(format!(
            "{} bytes, more than the {MAX_SIZE} read",
            bytes.len()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| whole("not UTF-8 (TOML is UTF-8)".into()))?;
    parse(&text, &file)
}

fn table_named(name: &str) -> Option<Table> {
    match name {
        "etc" => Some(Table::Etc),
        "var" => Some(Table::Var),
        "root" => Some(Table::Root),
        _ => None,
    }
}

fn describe(t: Table, key: &str) -> String {
    match t {
        Table::Top => format!("`{key}`"),
        Table::Etc => format!("[etc] {key}"),
        Table::Var => format!("[var] {key}"),
        Table::Root => format!("[root] {key}"),
    }
}

fn table_hint(t: Table) -> &'static str {
    match t {
        Table::Top => " outside any table (known tables: [etc], [var], [root])",
        Table::Etc | Table::Var => " (known: mount, transient)",
        Table::Root => " (known: transient)",
    }
}

fn is_bare_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Cuts a `#` comment that is not inside a string.
fn strip_comment(line: &str) -> Result<&str, String> {
    let mut quote: Option<u8> = None;
    for (i, b) in line.bytes().enumerate() {
        match (quote, b) {
            (None, b'#') => return Ok(&line[..i]),
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("unterminated string".into());
    }
    Ok(line)
}

/// A basic (`"..."`) or literal (`'...'`) string without escapes.
fn string(value: &str) -> Result<&str, String> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .filter(|v| v.len() + 2 == value.len())
        .ok_or_else(|| format!("expected a quoted string, got {value:?}"))?;
    if inner.contains(['"', '\'', '\\']) {
        return Err(format!(
            "unsupported string {value:?} (quotes or escapes inside)"
        ));
    }
    Ok(inner)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<SetupRootConf, ConfError> {
        parse(s, "setup-root-conf.toml")
    }

    #[test]
    fn defaults_are_composefs_setup_roots() {
        // composefs-setup-root main.rs: mount_subdir(.., "etc", .., Overlay)
        // and (.., "var", .., Bind); root.transient defaults to false.
        let d = p("").unwrap();
        assert_eq!(d, SetupRootConf::default());
        assert_eq!(d.etc, MountType::Overlay);
        assert_eq!(d.var, MountType::Bind);
        assert!(!d.root_transient);
        assert_eq!(p("# only a comment\n\n").unwrap(), d);
    }

    #[test]
    fn reads_every_form_composefs_setup_root_accepts() {
        let c = p("[etc]\nmount = \"bind\"\n[var]\nmount = 'none' # c\n[root]\ntransient = true\n")
            .unwrap();
        assert_eq!(
            c,
            SetupRootConf {
                etc: MountType::Bind,
                var: MountType::None,
                root_transient: true
            }
        );
        // Dotted keys at the top level, CRLF, tabs.
        let c = p("etc.mount = \"transient\"\r\n\tvar . transient\t=\ttrue\r\n").unwrap();
        assert_eq!((c.etc, c.var), (MountType::Transient, MountType::Transient));
        // `mount` wins over `transient`.
        let c = p("[var]\ntransient = true\nmount = \"overlay\"\n").unwrap();
        assert_eq!(c.var, MountType::Overlay);
        let c = p("[etc]\ntransient = false\n").unwrap();
        assert_eq!(c.etc, MountType::Overlay);
        // A '#' inside a string is not a comment.
        let e = p("[etc]\nmount = \"no#ne\"\n").unwrap_err();
        assert!(e.reason.contains("\"no#ne\" is not one of"), "{e}");
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for (text, line, want) in [
            ("[etc]\nmount = \"copy\"\n", 2, "is not one of none, bind"),
            ("[etc]\nmount = bind\n", 2, "expected a quoted string"),
            (
                "[etc]\nmount = \"bind\"\nmount = \"none\"\n",
                3,
                "[etc] mount is set twice",
            ),
            (
                "[etc]\nx = 1\n",
                2,
                "unknown key [etc] x (known: mount, transient)",
            ),
            ("[boot]\n", 1, "unknown table [boot]"),
            ("[etc]\n[etc]\n", 2, "defined twice"),
            ("mount = \"bind\"\n", 1, "outside any table"),
            ("[root]\ntransient = yes\n", 2, "expected true or false"),
            (
                "[root]\nmount = \"bind\"\n",
                2,
                "unknown key [root] mount (known: transient)",
            ),
            ("[[etc]]\n", 1, "unsupported table header"),
            ("[etc]\nmount = \"bind\n", 2, "unterminated string"),
            ("[etc]\n\"mount\" = \"bind\"\n", 2, "unsupported key"),
            ("[etc]\nmount = \"b\\u0069nd\"\n", 2, "escapes inside"),
            ("x.y.z = true\n", 1, "unknown key"),
            ("etc\n", 1, "expected `key = value`"),
        ] {
            let e = p(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.reason.contains(want), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("setup-root-conf.toml:{line}: "))
            );
        }
    }

    #[test]
    fn a_missing_file_means_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        assert_eq!(load(&path).unwrap(), SetupRootConf::default());
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(load(&path).unwrap_err().reason.contains("not UTF-8"));
        std::fs::write(&path, "[var]\nmount = \"overlay\"\n").unwrap();
        assert_eq!(load(&path).unwrap().var, MountType::Overlay);
    }
}
