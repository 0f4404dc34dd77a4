//! What the kernel command line selects in the composefs-rs layout:
//! `composefs.digest=v1-<alg>-12:<hex>` / `composefs=<hex>`, as
//! composefs-setup-root reads them (composefs-rs
//! `crates/composefs-setup-root/src/main.rs` `parse_composefs_kargs`,
//! `crates/composefs-boot/src/cmdline.rs`).
//!
//! The syntax is [`super::super::cmdline`]'s composefs family (one parser
//! for both layouts): every such argument must be well formed, the
//! insecure marker `?` is refused (sealroot never mounts an image it did
//! not verify), `composefs.digest=` entries come first in command-line
//! order, then `composefs=`; the first candidate present in the repository
//! is booted, as composefs-setup-root does. sealroot's own selectors
//! (`sealroot=`, ...) name images of sealroot's repository and are an error
//! here, not ignored: the command line must not be able to pick a layout.

use std::fmt;

use super::super::cmdline::{self, CmdlineError, ImageCandidate, Selector};

/// The EROFS digests to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Each `composefs.digest=`/`composefs=` argument, in command-line order.
    pub candidates: Vec<ImageCandidate>,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args: Vec<&str> = self
            .candidates
            .iter()
            .map(|c| c.argument.as_str())
            .collect();
        f.write_str(&args.join(" "))
    }
}

/// Why nothing was selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Neither `composefs.digest=` nor `composefs=` is on the command line.
    #[error(
        "no composefs image selected: [boot] layout = composefs-rs in prepare.conf, and the \
         kernel command line has no composefs.digest=v1-<sha256|sha512>-12:<hex> or \
         composefs=<hex> (boot an entry bootc or `cfsctl oci prepare-boot` wrote)"
    )]
    NoSelector,
    /// A `sealroot*` argument, which this layout does not read.
    #[error(
        "{argument}: sealroot's selectors do not apply with [boot] layout = composefs-rs \
         (the image is selected by composefs.digest= or composefs=)"
    )]
    SealrootSelector {
        /// The argument, as written.
        argument: String,
    },
    /// A malformed `composefs` argument.
    #[error("kernel command line: {0}")]
    Cmdline(CmdlineError),
}

/// Parses `/proc/cmdline` for this layout.
pub fn parse(text: &str) -> Result<Selection, SelectError> {
    if let Some((key, value)) = cmdline::split(text)
        .into_iter()
        .find(|(key, _)| cmdline::is_sealroot_key(key))
    {
        return Err(SelectError::SealrootSelector {
            argument: match value {
                Some(v) => format!("{key}={v}"),
                None => key,
            },
        });
    }
    match cmdline::parse(text) {
        Ok(Selector::Image(candidates)) => Ok(Selection { candidates }),
        // Without a sealroot key only the composefs family can select.
        Ok(other) => Err(SelectError::SealrootSelector {
            argument: other.to_string(),
        }),
        Err(CmdlineError::NoSelector) => Err(SelectError::NoSelector),
        Err(e) => Err(SelectError::Cmdline(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::HashAlgorithm;

    // Digests from composefs-rs' own tests (crates/composefs-boot/src/cmdline.rs).
    const SHA256_HEX: &str = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52";
    const SHA512_HEX: &str = "6f06b5e82420abec546d6e6d3ddd612c50cfa9b707c129345b7ec16f456b92fe\
                              35df68999b042e1a6a70dfe75f2fed8cf9f67afd0bf08d2374678d75e2f65a02";

    #[test]
    fn composefs_setup_roots_forms_in_its_order() {
        let s = parse(&format!(
            "root=UUID=abc composefs={SHA256_HEX} composefs.digest=v1-sha512-12:{SHA512_HEX} rw"
        ))
        .unwrap();
        let algs: Vec<_> = s.candidates.iter().map(|c| c.digest.algorithm()).collect();
        assert_eq!(algs, [HashAlgorithm::Sha512, HashAlgorithm::Sha256]);
        assert_eq!(s.candidates[1].digest.to_hex(), SHA256_HEX);
        assert_eq!(
            s.to_string(),
            format!("composefs.digest=v1-sha512-12:{SHA512_HEX} composefs={SHA256_HEX}")
        );
        assert_eq!(parse(&s.to_string()).unwrap(), s);
        let s = parse(&format!("composefs.digest=v2-sha256-12:{SHA256_HEX}")).unwrap();
        assert_eq!(s.candidates.len(), 1);
    }

    #[test]
    fn refuses_insecure_malformed_foreign_and_missing() {
        for (cmdline, want) in [
            (format!("composefs=?{SHA256_HEX}"), "insecure marker"),
            (
                format!("composefs.digest=?v1-sha256-12:{SHA256_HEX}"),
                "insecure marker",
            ),
            ("composefs=foo".to_string(), "64 (sha256) or 128"),
            (
                format!("composefs.digest=v1-sha256-8:{SHA256_HEX}"),
                "unknown algorithm \"sha256-8\"",
            ),
            (
                format!("composefs.digest=v3-sha256-12:{SHA256_HEX}"),
                "unknown composefs format version",
            ),
            (
                format!("composefs={SHA256_HEX} sealroot.image={SHA256_HEX}"),
                "do not apply with [boot] layout = composefs-rs",
            ),
            ("rd.sealroot=1".to_string(), "do not apply"),
            (
                "root=/dev/vda quiet".to_string(),
                "no composefs image selected",
            ),
            (
                format!(
                    "composefs={SHA256_HEX} composefs=1111111111111111111111111111111111111111111111111111111111111111"
                ),
                "select different images",
            ),
        ] {
            let e = parse(&cmdline).unwrap_err().to_string();
            assert!(e.contains(want), "{cmdline}: {e}");
        }
    }
}
