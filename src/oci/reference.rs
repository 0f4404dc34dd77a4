//! Image references in the transport syntax of skopeo and the other
//! containers/image tools (containers-transports(5)):
//!
//! - `oci:DIR` — the only image in the layout at `DIR`;
//! - `oci:DIR:TAG` — the `index.json` entry whose
//!   `org.opencontainers.image.ref.name` annotation is `TAG`;
//! - `oci:DIR@sha256:HEX` — the manifest (or index) with that digest;
//! - `oci-archive:FILE`, `oci-archive:FILE:TAG`, `oci-archive:FILE@sha256:HEX`
//!   — the same, inside a tar of a layout.
//!
//! As in containers/image (`oci/internal/oci_util.go`), the path ends at the
//! first `:` — a path containing `:` cannot be named — and a tag must match
//! the image-spec's `ref.name` grammar (annotations.md):
//! `component ("/" component)*`, `component = alnum+ (sep alnum+)*`,
//! `sep = [-._:@+] | "--"`. The `@sha256:` form is sealroot's addition for
//! selecting by digest, which skopeo's `oci:` transport lacks; it is
//! recognised only as a suffix with exactly 64 hex digits, so it cannot be
//! confused with a tag.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::digest::{ManifestDigest, Sha256Digest};

/// Which image inside a layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// No tag or digest given: the layout must hold exactly one image.
    Only,
    /// A tag (`org.opencontainers.image.ref.name`).
    Tag(String),
    /// A manifest or index digest.
    Digest(ManifestDigest),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Only => Ok(()),
            Selector::Tag(t) => write!(f, ":{t}"),
            Selector::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// An OCI image layout directory.
    Layout,
    /// A tar archive of an OCI image layout.
    Archive,
}

impl Transport {
    /// The transport's name before the first `:`.
    pub fn prefix(&self) -> &'static str {
        match self {
            Transport::Layout => "oci",
            Transport::Archive => "oci-archive",
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// `oci:` or `oci-archive:`.
    pub transport: Transport,
    /// The layout directory or archive file.
    pub path: PathBuf,
    /// Which image in it (tag, digest, or the only one).
    pub selector: Selector,
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}{}",
            self.transport.prefix(),
            self.path.display(),
            self.selector
        )
    }
}

/// Why a reference does not parse. Each variant says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// An empty string.
    #[error(
        "empty image reference: expected oci:DIR[:TAG|@sha256:DIGEST] or oci-archive:FILE[:TAG]"
    )]
    Empty,
    /// No `oci:` / `oci-archive:` prefix.
    #[error(
        "image reference {0:?} has no transport: write oci:{0} for a layout directory or \
         oci-archive:{0} for a tar archive"
    )]
    NoTransport(String),
    /// Another transport (`docker://`, `containers-storage:`, ...).
    #[error(
        "transport {transport:?} in {input:?} is not supported: sealroot reads oci: and \
         oci-archive: only; copy the image first, e.g. `skopeo copy {input} oci:DIR:TAG`"
    )]
    UnsupportedTransport {
        /// The transport named.
        transport: String,
        /// The reference as given.
        input: String,
    },
    /// No path after the transport.
    #[error("image reference {0:?} has an empty path")]
    EmptyPath(String),
    /// A NUL byte.
    #[error("image reference {0:?} contains a NUL byte")]
    Nul(String),
    /// A tag that is not a valid `ref.name`.
    #[error(
        "invalid tag {tag:?} in {input:?}: a tag is letters and digits separated by one of \
         . _ - : @ + or --, in components separated by / (OCI annotations.md, ref.name); \
         note that the path ends at the first ':'"
    )]
    BadTag {
        /// The tag.
        tag: String,
        /// The reference as given.
        input: String,
    },
    /// skopeo's `@N` index position, which sealroot does not take.
    #[error(
        "{input:?} selects an image by index position ({tag:?}), which sealroot does not \
         support: name it by tag or by @sha256:DIGEST"
    )]
    IndexPosition {
        /// The position as written.
        tag: String,
        /// The reference as given.
        input: String,
    },
    /// A `@sha256:` digest that does not parse.
    #[error("invalid digest in {input:?}: {reason}")]
    BadDigest {
        /// The reference as given.
        input: String,
        /// Why.
        reason: String,
    },
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.contains('\0') {
            return Err(ReferenceError::Nul(input.to_owned()));
        }
        let Some((transport, details)) = input.split_once(':') else {
            return Err(ReferenceError::NoTransport(input.to_owned()));
        };
        let transport = match transport {
            "oci" => Transport::Layout,
            "oci-archive" => Transport::Archive,
            other if other.contains('/') => {
                return Err(ReferenceError::NoTransport(input.to_owned()));
            }
            other => {
                return Err(ReferenceError::UnsupportedTransport {
                    transport: other.to_owned(),
                    input: input.to_owned(),
                });
            }
        };

        // `@sha256:<64 hex>` at the very end selects by digest. A path ends
        // at its first ':', so `DIR@sha256:…` with no ':' before the '@' can
        // only mean a digest: a malformed one is refused as such, not read
        // as directory `DIR@sha256` with tag `…`.
        if let Some(at) = details.rfind("@sha256:") {
            let (path, digest) = (&details[..at], &details[at + 1..]);
            if !path.contains(':') {
                let digest: Sha256Digest =
                    digest.parse().map_err(|e: super::digest::DigestError| {
                        ReferenceError::BadDigest {
                            input: input.to_owned(),
                            reason: e.to_string(),
                        }
                    })?;
                return finish(
                    input,
                    transport,
                    path,
                    Selector::Digest(ManifestDigest(digest)),
                );
            }
        }

        let (path, tag) = match details.split_once(':') {
            Some((path, tag)) => (path, tag),
            None => (details, ""),
        };
        let selector = if tag.is_empty() {
            Selector::Only
        } else if tag.starts_with('@') {
            return Err(ReferenceError::IndexPosition {
                tag: tag.to_owned(),
                input: input.to_owned(),
            });
        } else if !valid_ref_name(tag) {
            return Err(ReferenceError::BadTag {
                tag: tag.to_owned(),
                input: input.to_owned(),
            });
        } else {
            Selector::Tag(tag.to_owned())
        };
        finish(input, transport, path, selector)
    }
}

fn finish(
    input: &str,
    transport: Transport,
    path: &str,
    selector: Selector,
) -> Result<ImageReference, ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::EmptyPath(input.to_owned()));
    }
    Ok(ImageReference {
        transport,
        path: PathBuf::from(path),
        selector,
    })
}

/// The `org.opencontainers.image.ref.name` grammar (annotations.md).
pub fn valid_ref_name(s: &str) -> bool {
    !s.is_empty() && s.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    // alnum+ (sep alnum+)*, sep = one of - . _ : @ + or "--"
    let b = c.as_bytes();
    let mut i = 0;
    let alnum_run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_alphanumeric() {
            *i += 1;
        }
        *i > start
    };
    if !alnum_run(&mut i) {
        return false;
    }
    while i < b.len() {
        if b[i..].starts_with(b"--") {
            i += 2;
        } else if matches!(b[i], b'-' | b'.' | b'_' | b':' | b'@' | b'+') {
            i += 1;
        } else {
            return false;
        }
        if !alnum_run(&mut i) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn p(s: &str) -> Result<ImageReference, ReferenceError> {
        s.parse()
    }

    #[test]
    fn layout_forms() {
        let r = p("oci:/srv/img").unwrap();
        assert_eq!(
            (r.transport.clone(), r.path.to_str().unwrap()),
            (Transport::Layout, "/srv/img")
        );
        assert_eq!(r.selector, Selector::Only);
        let r = p("oci:img:latest").unwrap();
        assert_eq!(r.selector, Selector::Tag("latest".into()));
        let r = p("oci:img:").unwrap();
        assert_eq!(r.selector, Selector::Only);
        let r = p(&format!("oci:./a@b/img@sha256:{HEX}")).unwrap();
        assert_eq!(r.path.to_str(), Some("./a@b/img"));
        assert_eq!(r.selector.to_string(), format!("@sha256:{HEX}"));
        let r = p("oci:img:quay.io/fedora/fedora-bootc:41").unwrap();
        assert_eq!(
            r.selector,
            Selector::Tag("quay.io/fedora/fedora-bootc:41".into())
        );
    }

    #[test]
    fn archive_forms() {
        let r = p("oci-archive:/tmp/x.tar:v1.0").unwrap();
        assert_eq!(r.transport, Transport::Archive);
        assert_eq!(r.to_string(), "oci-archive:/tmp/x.tar:v1.0");
    }

    #[test]
    fn display_round_trips() {
        for s in ["oci:a", "oci:a:b", &format!("oci-archive:x@sha256:{HEX}")] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        assert_eq!(p(""), Err(ReferenceError::Empty));
        assert!(matches!(p("/tmp/img"), Err(ReferenceError::NoTransport(_))));
        let e = p("docker://quay.io/x").unwrap_err();
        assert!(
            e.to_string()
                .contains("skopeo copy docker://quay.io/x oci:DIR:TAG"),
            "{e}"
        );
        assert!(matches!(p("oci:"), Err(ReferenceError::EmptyPath(_))));
        assert!(matches!(p("oci::tag"), Err(ReferenceError::EmptyPath(_))));
        assert!(matches!(
            p("oci:d:-bad"),
            Err(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(p("oci:d:a b"), Err(ReferenceError::BadTag { .. })));
        assert!(matches!(
            p("oci:d:a//b"),
            Err(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            p("oci:d:@0"),
            Err(ReferenceError::IndexPosition { .. })
        ));
        assert!(matches!(
            p(&format!("oci:d@sha256:{}", HEX.to_uppercase())),
            Err(ReferenceError::BadDigest { .. })
        ));
        assert!(matches!(p("oci:d\0:x"), Err(ReferenceError::Nul(_))));
        // A short digest is a bad digest, not directory `d@sha256`, tag `1234`.
        let e = p("oci:d@sha256:1234").unwrap_err();
        assert!(matches!(e, ReferenceError::BadDigest { .. }), "{e:?}");
        // With a ':' before it, `@sha256:` is part of a tag.
        let r = p("oci:img:v1@sha256:ab").unwrap();
        assert_eq!(r.selector, Selector::Tag("v1@sha256:ab".into()));
    }

    #[test]
    fn ref_name_grammar() {
        for ok in ["latest", "v1.0", "a--b", "a/b/c", "x:y@z+w", "A_1"] {
            assert!(valid_ref_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a---b", "a/", "/a", "a..b", "ä"] {
            assert!(!valid_ref_name(bad), "{bad}");
        }
    }
}
