//! The kernel command line: which deployed image to boot.
//!
//! The command line only *selects* (DESIGN "Trust model" 3): nothing here
//! can weaken verification, so the parser is strict and a malformed value is
//! an error, never ignored.
//!
//! # Splitting
//!
//! As the kernel's `next_arg()` (`lib/cmdline.c`): arguments are separated
//! by whitespace outside double quotes; a quote toggles quoting and there is
//! no escape. Quotes are then removed the way the kernel does it: a leading
//! quote of the whole argument and its closing quote, or a quote right after
//! `=` and the argument's last character if that is a quote
//! (`sealroot="sha256:..."`).
//!
//! # Selectors and precedence
//!
//! | argument | selects |
//! | --- | --- |
//! | `sealroot=sha256:<hex>` | the image whose manifest has this sha256 |
//! | `sealroot.config=sha256:<hex>` | the image whose config has this sha256 |
//! | `sealroot.image=<hex>` | the image whose merged EROFS, or bootable variant, has this fs-verity digest (64 hex: sha256, 128: sha512); that EROFS is mounted |
//! | `composefs.digest=v1-<sha256\|sha512>-12:<hex>` | as `sealroot.image=` (composefs-rs, bootc) |
//! | `composefs=<hex>` | as `sealroot.image=` (composefs-rs legacy form) |
//!
//! - Every one of these arguments must be well formed, even one that is not
//!   used; any other `sealroot.*` argument is an error (a typo must not boot
//!   something unintended).
//! - The `sealroot` family wins: if any `sealroot*` selector is present, all
//!   of them must name the same thing (repeating one verbatim is fine; two
//!   different selectors are an error) and `composefs*` arguments are
//!   ignored.
//! - Otherwise the `composefs` family applies as in composefs-rs
//!   (`crates/composefs-boot/src/cmdline.rs`): `composefs.digest=` entries
//!   in command-line order, then `composefs=`; the first whose algorithm is
//!   the repository's and which is deployed is used. Two different digests
//!   of the same algorithm are an error.
//! - composefs' "insecure" marker (`composefs=?<hex>`) is refused: sealroot
//!   never mounts an unverified image.

use std::fmt;

use crate::oci::{ConfigDigest, ManifestDigest, Sha256Digest};
use crate::verity::{FsVerityDigest, HashAlgorithm};

/// What the command line selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `sealroot=sha256:<hex>`.
    Manifest(ManifestDigest),
    /// `sealroot.config=sha256:<hex>`.
    Config(ConfigDigest),
    /// EROFS digests to try in order (one for `sealroot.image=`, possibly
    /// several of different algorithms for the composefs forms).
    Image(Vec<ImageCandidate>),
}

/// One EROFS digest and the argument that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCandidate {
    /// The merged EROFS's fs-verity digest.
    pub digest: FsVerityDigest,
    /// The argument as written, for messages.
    pub argument: String,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Manifest(d) => write!(f, "sealroot={d}"),
            Selector::Config(d) => write!(f, "sealroot.config={d}"),
            Selector::Image(c) => {
                let args: Vec<&str> = c.iter().map(|c| c.argument.as_str()).collect();
                f.write_str(&args.join(" "))
            }
        }
    }
}

/// Why the command line does not select an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// No sealroot (or composefs) selector at all.
    #[error(
        "no image selected: add sealroot=sha256:<manifest digest> (or sealroot.config=, \
         sealroot.image=, composefs=) to the kernel command line"
    )]
    NoSelector,
    /// The ostree layout, and no `ostree=` argument.
    #[error(
        "no ostree deployment selected: [boot] layout = ostree in prepare.conf, and the kernel \
         command line has no ostree=/ostree/boot.N/<os>/<bootcsum>/<serial> (boot an entry \
         ostree admin deploy wrote)"
    )]
    NoOstreeSelector,
    /// A selector whose value does not parse.
    #[error("{argument}: {reason}")]
    Malformed {
        /// The argument as written.
        argument: String,
        /// Why.
        reason: String,
    },
    /// Two selectors that name different images.
    #[error("{first} and {second} select different images; pass exactly one selector")]
    Conflict {
        /// The first selector, as written.
        first: String,
        /// The second.
        second: String,
    },
    /// A `sealroot.*` parameter sealroot does not know (a typo would
    /// otherwise go unnoticed).
    #[error(
        "{argument}: unknown sealroot parameter (known: sealroot=, sealroot.config=, \
         sealroot.image=)"
    )]
    Unknown {
        /// The argument as written.
        argument: String,
    },
}

/// Splits a command line into `(key, value)` pairs, removing quotes as the
/// kernel does. `value` is `None` for a bare word.
pub fn split(cmdline: &str) -> Vec<(String, Option<String>)> {
    let bytes = cmdline.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The kernel's isspace(): space, \t, \n, \v, \f, \r.
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    while i < bytes.len() {
        while i < bytes.len() && space(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut in_quote = false;
        let mut equals = None;
        while i < bytes.len() && (in_quote || !space(bytes[i])) {
            if equals.is_none() && bytes[i] == b'=' {
                equals = Some(i);
            }
            if bytes[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let mut arg = &cmdline[start..i];
        let mut equals = equals.map(|e| e - start);
        // next_arg(): a leading quote is skipped, and the matching quote at
        // the end of the argument removed.
        if let Some(rest) = arg.strip_prefix('"') {
            arg = rest.strip_suffix('"').unwrap_or(rest);
            equals = equals.map(|e| e - 1);
        }
        match equals {
            Some(e) if e < arg.len() => {
                let key = &arg[..e];
                let mut val = &arg[e + 1..];
                if let Some(v) = val.strip_prefix('"') {
                    val = v.strip_suffix('"').unwrap_or(v);
                }
                out.push((key.to_owned(), Some(val.to_owned())));
            }
            _ => out.push((arg.to_owned(), None)),
        }
    }
    out
}

/// Whether `key` is in sealroot's namespace: `sealroot`, `sealroot.*`,
/// and the look-alikes a user may type for them (`sealroot_*`,
/// `sealroot-*`: systemd treats `-` and `_` in its own keys alike;
/// `rd.sealroot*`: dracut's prefix for initrd-only options). Any of them
/// that is not a known selector is an error, never ignored.
pub(crate) fn is_sealroot_key(key: &str) -> bool {
    let key = key.strip_prefix("rd.").unwrap_or(key);
    match key.strip_prefix("sealroot") {
        Some(rest) => rest.is_empty() || rest.starts_with(['.', '_', '-']),
        None => false,
    }
}

/// Whether the command line names anything in sealroot's namespace
/// (`sealroot`, `sealroot.*`, `sealroot_*`, `sealroot-*`, `rd.sealroot*`),
/// well-formed or not. With `[boot] required = no`
/// this alone decides whether sealroot-prepare acts: a present but
/// malformed or misspelled selector must be refused, not stood down for.
/// `composefs=`/`composefs.digest=` do not count: without a sealroot key
/// they belong to composefs-setup-root.
pub fn names_sealroot(cmdline: &str) -> bool {
    split(cmdline).iter().any(|(key, _)| is_sealroot_key(key))
}

/// Parses a command line (the contents of `/proc/cmdline`).
pub fn parse(cmdline: &str) -> Result<Selector, CmdlineError> {
    let mut sealroot: Vec<(String, Selector)> = Vec::new();
    let mut composefs_digest: Vec<ImageCandidate> = Vec::new();
    let mut composefs_legacy: Vec<ImageCandidate> = Vec::new();

    for (key, value) in split(cmdline) {
        let argument = match &value {
            Some(v) => format!("{key}={v}"),
            None => key.clone(),
        };
        let malformed = |reason: String| CmdlineError::Malformed {
            argument: argument.clone(),
            reason,
        };
        let is_ours = matches!(
            key.as_str(),
            "sealroot" | "sealroot.config" | "sealroot.image" | "composefs" | "composefs.digest"
        );
        if !is_ours {
            if is_sealroot_key(&key) {
                return Err(CmdlineError::Unknown { argument });
            }
            continue;
        }
        let Some(value) = value else {
            return Err(malformed("needs a value".into()));
        };
        match key.as_str() {
            "sealroot" => {
                let d = parse_sha256(&value).map_err(malformed)?;
                sealroot.push((argument.clone(), Selector::Manifest(ManifestDigest(d))));
            }
            "sealroot.config" => {
                let d = parse_sha256(&value).map_err(malformed)?;
                sealroot.push((argument.clone(), Selector::Config(ConfigDigest(d))));
            }
            "sealroot.image" => {
                let digest = parse_verity_hex(&value).map_err(malformed)?;
                sealroot.push((
                    argument.clone(),
                    Selector::Image(vec![ImageCandidate {
                        digest,
                        argument: argument.clone(),
                    }]),
                ));
            }
            "composefs" => {
                refuse_insecure(&value).map_err(malformed)?;
                let digest = parse_verity_hex(&value).map_err(malformed)?;
                add_candidate(&mut composefs_legacy, digest, argument)?;
            }
            _ => {
                // composefs.digest
                refuse_insecure(&value).map_err(malformed)?;
                let digest = parse_composefs_digest(&value).map_err(malformed)?;
                add_candidate(&mut composefs_digest, digest, argument)?;
            }
        }
    }

    if let Some((first_arg, first)) = sealroot.first() {
        if let Some((arg, _)) = sealroot.iter().find(|(_, s)| s != first) {
            return Err(CmdlineError::Conflict {
                first: first_arg.clone(),
                second: arg.clone(),
            });
        }
        return Ok(first.clone());
    }
    let mut candidates = composefs_digest;
    for c in composefs_legacy {
        if !candidates.iter().any(|x| x.digest == c.digest) {
            add_candidate(&mut candidates, c.digest, c.argument)?;
        }
    }
    if candidates.is_empty() {
        return Err(CmdlineError::NoSelector);
    }
    Ok(Selector::Image(candidates))
}

/// Adds a candidate unless it repeats one; two different digests of one
/// algorithm conflict.
fn add_candidate(
    list: &mut Vec<ImageCandidate>,
    digest: FsVerityDigest,
    argument: String,
) -> Result<(), CmdlineError> {
    if let Some(other) = list
        .iter()
        .find(|c| c.digest.algorithm() == digest.algorithm())
    {
        if other.digest == digest {
            return Ok(());
        }
        return Err(CmdlineError::Conflict {
            first: other.argument.clone(),
            second: argument,
        });
    }
    list.push(ImageCandidate { digest, argument });
    Ok(())
}

fn refuse_insecure(value: &str) -> Result<(), String> {
    if value.starts_with('?') {
        return Err(
            "the insecure marker '?' is not supported: sealroot never mounts an \
                    image without verifying it; remove the '?'"
                .into(),
        );
    }
    Ok(())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `sha256:<64 lower-case hex digits>`.
fn parse_sha256(value: &str) -> Result<Sha256Digest, String> {
    let hex = value.strip_prefix("sha256:").ok_or_else(|| {
        "expected sha256:<64 lower-case hex digits> (the OCI digest, as `skopeo inspect` \
         prints it)"
            .to_string()
    })?;
    if hex.len() != 64 || !is_lower_hex(hex) {
        return Err(format!(
            "expected 64 lower-case hex digits after sha256:, got {} characters{}",
            hex.len(),
            if is_lower_hex(hex) {
                ""
            } else {
                " (not all lower-case hex)"
            }
        ));
    }
    Sha256Digest::from_hex(hex).map_err(|e| e.to_string())
}

/// A bare fs-verity digest; its length says the algorithm.
fn parse_verity_hex(hex: &str) -> Result<FsVerityDigest, String> {
    let algorithm = match hex.len() {
        64 => HashAlgorithm::Sha256,
        128 => HashAlgorithm::Sha512,
        n => {
            return Err(format!(
                "expected an fs-verity digest of 64 (sha256) or 128 (sha512) lower-case hex \
                 digits, got {n} characters"
            ));
        }
    };
    if !is_lower_hex(hex) {
        return Err("the digest must be lower-case hex digits".into());
    }
    FsVerityDigest::from_hex(algorithm, hex).map_err(|e| e.to_string())
}

/// `v1-<sha256|sha512>-12:<hex>` (composefs-rs `parse_digest_value`). The
/// version names the EROFS format; sealroot writes the C composefs format
/// (`v1`), but the digest alone identifies the bytes, so `v2` is accepted
/// and simply will not match a sealroot image.
fn parse_composefs_digest(value: &str) -> Result<FsVerityDigest, String> {
    let shape = "expected v1-<sha256|sha512>-12:<hex>";
    let (descriptor, hex) = value.split_once(':').ok_or(shape)?;
    let (version, alg) = descriptor.split_once('-').ok_or(shape)?;
    if version != "v1" && version != "v2" {
        return Err(format!(
            "unknown composefs format version {version:?} ({shape})"
        ));
    }
    let alg: crate::oci::artifact::VerityAlgorithm = format!("fsverity-{alg}")
        .parse()
        .map_err(|_| format!("unknown algorithm {alg:?} ({shape})"))?;
    if alg.block_size != crate::verity::BlockSize::DEFAULT {
        return Err(format!(
            "block size 2^{} is not supported: composefs images use 4096-byte blocks (-12)",
            alg.block_size.log2()
        ));
    }
    let digest = parse_verity_hex(hex)?;
    if digest.algorithm() != alg.hash {
        return Err(format!(
            "{} hex digits do not make a {} digest",
            hex.len(),
            alg.hash
        ));
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const C: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn pairs(s: &str) -> Vec<(String, Option<String>)> {
        split(s)
    }

    #[test]
    fn splits_like_the_kernel() {
        // Cases from lib/cmdline.c next_arg(): quotes group words, a quote
        // after '=' and the final quote are removed, inner quotes kept.
        assert_eq!(
            pairs("  console=ttyS0  quiet\tro\n"),
            vec![
                ("console".into(), Some("ttyS0".into())),
                ("quiet".into(), None),
                ("ro".into(), None),
            ]
        );
        assert_eq!(
            pairs(r#"a="b c" "d=e f" g=h"i j"k"#),
            vec![
                ("a".into(), Some("b c".into())),
                ("d".into(), Some("e f".into())),
                ("g".into(), Some(r#"h"i j"k"#.into())),
            ]
        );
        assert_eq!(
            pairs("x= =y"),
            vec![("x".into(), Some("".into())), ("".into(), Some("y".into()))]
        );
        assert_eq!(
            pairs(r#"unterminated="a b"#),
            vec![("unterminated".into(), Some("a b".into()))]
        );
        assert!(pairs("").is_empty());
    }

    #[test]
    fn selects_by_manifest_config_image() {
        let s = parse(&format!("quiet sealroot=sha256:{M} rw")).unwrap();
        assert_eq!(
            s,
            Selector::Manifest(ManifestDigest(Sha256Digest::from_hex(M).unwrap()))
        );
        let s = parse(&format!("sealroot.config=\"sha256:{C}\"")).unwrap();
        assert_eq!(
            s,
            Selector::Config(ConfigDigest(Sha256Digest::from_hex(C).unwrap()))
        );
        let s = parse(&format!("sealroot.image={M}")).unwrap();
        let Selector::Image(c) = s else { panic!() };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].digest.algorithm(), HashAlgorithm::Sha256);
        assert_eq!(c[0].digest.to_hex(), M);
    }

    #[test]
    fn composefs_forms() {
        let s512 = "ab".repeat(64);
        let s = parse(&format!(
            "composefs={M} composefs.digest=v1-sha512-12:{s512} composefs.digest=v1-sha256-12:{M}"
        ))
        .unwrap();
        let Selector::Image(c) = s else { panic!() };
        // composefs.digest entries first, in order; composefs= repeats one.
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].digest.algorithm(), HashAlgorithm::Sha512);
        assert_eq!(c[1].digest.to_hex(), M);
        // The sealroot family wins.
        let s = parse(&format!("composefs={C} sealroot=sha256:{M}")).unwrap();
        assert!(matches!(s, Selector::Manifest(_)));
    }

    #[test]
    fn refusals() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert!(err("quiet").contains("no image selected"));
        assert!(err(&format!("sealroot=sha256:{}", &M[..63])).contains("64 lower-case hex"));
        assert!(
            err(&format!("sealroot=sha256:{}", M.to_uppercase())).contains("not all lower-case")
        );
        assert!(err(&format!("sealroot={M}")).contains("expected sha256:"));
        assert!(err("sealroot").contains("needs a value"));
        assert!(
            err(&format!("sealroot.manifest=sha256:{M}")).contains("unknown sealroot parameter")
        );
        assert!(
            err(&format!("sealroot=sha256:{M} sealroot.config=sha256:{C}"))
                .contains("select different images")
        );
        assert!(
            err(&format!("sealroot=sha256:{M} sealroot=sha256:{C}"))
                .contains("select different images")
        );
        assert!(parse(&format!("sealroot=sha256:{M} sealroot=sha256:{M}")).is_ok());
        assert!(err(&format!("composefs=?{M}")).contains("insecure marker"));
        assert!(err(&format!("composefs.digest=v3-sha256-12:{M}")).contains("format version"));
        assert!(err(&format!("composefs.digest=v1-sha256-16:{M}")).contains("block size"));
        assert!(
            err(&format!("composefs.digest=v1-sha512-12:{M}")).contains("do not make a sha512")
        );
        assert!(err(&format!("composefs={M} composefs={C}")).contains("select different images"));
        // A malformed composefs argument is an error even when sealroot= wins.
        assert!(err(&format!("sealroot=sha256:{M} composefs=xyz")).contains("composefs=xyz"));
        assert!(err("sealroot.image=abc").contains("64 (sha256) or 128"));
        // Misspellings and look-alikes of our keys are refused, not ignored.
        for key in [
            "sealroot.conf",
            "sealroot_image",
            "sealroot-config",
            "rd.sealroot",
            "rd.sealroot.image",
        ] {
            assert!(
                err(&format!("{key}=sha256:{M}")).contains("unknown sealroot parameter"),
                "{key}"
            );
        }
        // Other keys that merely start with the same letters are not ours.
        assert!(parse(&format!("sealrootfs=1 sealroot=sha256:{M}")).is_ok());
    }

    #[test]
    fn names_sealroot_counts_any_key_of_ours() {
        assert!(!names_sealroot("root=/dev/vda rw quiet"));
        assert!(!names_sealroot(&format!(
            "composefs={M} ostree=/ostree/boot.1/x"
        )));
        assert!(!names_sealroot("sealrootfs=1 xsealroot=1"));
        for cmdline in [
            format!("sealroot=sha256:{M}"),
            "sealroot".to_string(),
            "sealroot=".to_string(),
            "sealroot.conf=x".to_string(),
            "sealroot_image=x".to_string(),
            "\"sealroot.config=a b\"".to_string(),
            "rd.sealroot=x".to_string(),
        ] {
            assert!(names_sealroot(&cmdline), "{cmdline}");
        }
    }
}
