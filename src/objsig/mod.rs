//! Per-object signatures: an fs-verity builtin signature for every content
//! object of a sealed image, so that IPE's `fsverity_signature=TRUE` holds
//! for each file of the sealed root (docs/ipe.md). They travel as one extra
//! layer of the sealing artifact, a *bundle* (media type
//! [`MEDIA_TYPE`], a sealroot extension other readers may ignore; byte
//! layout in docs/sealing.md, "Object signatures"):
//!
//! ```text
//! magic "SRObjSig" | version 1 | fs-verity hash alg | log2 block size | 0
//! | u32le entry count N | u32le template length T | template (T bytes)
//! | N x { digest | u16le signature length | signature }   sorted by digest
//! ```
//!
//! Every object's PKCS#7 is the template (the complete builtin signature
//! of the first entry) with its SignerInfo signature replaced ([`splice`]):
//! only what varies is stored, ~104 bytes per object for ECDSA P-256,
//! ~290 for RSA-2048, instead of the whole message (plus the signer
//! certificate, when embedded) each time.
//!
//! Nothing in a bundle is trusted: each rebuilt message is checked by the
//! kernel when it is attached (`FS_IOC_ENABLE_VERITY` against the sealed
//! `.fs-verity` keyring) and by `sealroot oci verify` / `repo fsck` in
//! userspace. A bundle lacking entries, or with entries of another image,
//! can only leave objects unsigned (IPE then refuses to execute them), never
//! make an unsigned object pass.
//!
//! The parser takes untrusted bytes (the repository on the disk): strict,
//! bounded, fuzzed (`fuzz/fuzz_targets/object_signatures.rs`).

#[cfg(feature = "host")]
pub mod build;
#[cfg(feature = "host")]
pub mod check;
#[cfg(feature = "host")]
pub mod repo;
pub mod splice;

use std::ops::Range;

use crate::pkcs7::profile;
use crate::verity::{BlockSize, FsVerityDigest, HashAlgorithm};
use splice::Template;

/// The artifact layer's media type.
pub const MEDIA_TYPE: &str = crate::oci::MediaType::SEALROOT_OBJECT_SIGNATURES;
/// The annotation on that layer: the number of entries (informational).
pub const COUNT_ANNOTATION: &str = crate::oci::keys::OBJECT_SIGNATURES_COUNT;

const MAGIC: &[u8; 8] = b"SRObjSig";
const VERSION: u8 = 1;
const HEADER: usize = 20;
/// The kernel's limit on a builtin signature (`FS_VERITY_MAX_SIGNATURE_SIZE`).
pub const MAX_TEMPLATE: usize = 16128;
/// More than any RSA-8192 signature; the u16 length allows no more anyway.
pub const MAX_SIGNATURE: usize = 1024;
/// A bundle larger than this is refused (about 3.5 million RSA-2048
/// entries).
pub const MAX_BUNDLE: usize = 1 << 30;

/// Why bytes are not a valid bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The header, the template or the entry table is malformed
    /// (docs/sealing.md, "Per-object signatures").
    #[error("object signature bundle: {0}")]
    Format(String),
    /// One entry is malformed or out of order.
    #[error("object signature bundle, entry {index}: {reason}")]
    Entry {
        /// The entry's position, from 0.
        index: usize,
        /// Why.
        reason: String,
    },
}

fn format(m: impl Into<String>) -> BundleError {
    BundleError::Format(m.into())
}

/// A parsed bundle: the template and an index of the entries (the bytes
/// stay in one buffer).
#[derive(Debug, Clone)]
pub struct Bundle {
    bytes: Vec<u8>,
    algorithm: HashAlgorithm,
    block_size: BlockSize,
    template: Template,
    /// (digest range, signature range) per entry, sorted by digest.
    entries: Vec<(Range<usize>, Range<usize>)>,
}

impl Bundle {
    /// Parses and checks a bundle: header, template (a PKCS#7 in the kernel's
    /// profile whose digest algorithm is the fs-verity hash, carrying entry
    /// 0's signature), entries strictly sorted, nothing trailing.
    pub fn parse(bytes: Vec<u8>) -> Result<Bundle, BundleError> {
        if bytes.len() > MAX_BUNDLE {
            return Err(format(format!(
                "{} bytes: larger than {MAX_BUNDLE}",
                bytes.len()
            )));
        }
        let head = bytes
            .get(..HEADER)
            .ok_or_else(|| format(format!("{} bytes: shorter than its header", bytes.len())))?;
        if &head[..8] != MAGIC {
            return Err(format(
                "no \"SRObjSig\" magic: not an object signature bundle",
            ));
        }
        if head[8] != VERSION {
            return Err(format(format!(
                "format version {}; this sealroot reads version {VERSION}",
                head[8]
            )));
        }
        let algorithm = HashAlgorithm::from_kernel_id(head[9])
            .map_err(|_| format(format!("unknown fs-verity hash algorithm {}", head[9])))?;
        let block_size = BlockSize::from_log2(head[10])
            .map_err(|_| format(format!("invalid log2 block size {}", head[10])))?;
        if head[11] != 0 {
            return Err(format("reserved byte 11 is not 0"));
        }
        let count = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
        let tlen = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
        if count == 0 {
            return Err(format("no entries"));
        }
        if tlen == 0 || tlen > MAX_TEMPLATE {
            return Err(format(format!(
                "template of {tlen} bytes (1 to {MAX_TEMPLATE} allowed)"
            )));
        }
        let template_bytes = bytes
            .get(HEADER..HEADER + tlen)
            .ok_or_else(|| format("truncated template"))?
            .to_vec();
        let msg = profile::parse(&template_bytes)
            .map_err(|e| format(format!("template is not a builtin signature: {e}")))?;
        let expected = crate::crypto::DigestAlgorithm::for_fsverity(algorithm);
        if msg.digest_algorithm != expected {
            return Err(format(format!(
                "template signs with {}, the objects' fs-verity hash is {algorithm}",
                msg.digest_algorithm
            )));
        }
        if msg.signed_attributes.is_some() {
            return Err(format("template has signed attributes"));
        }
        let template = Template::new(template_bytes).map_err(|e| format(e.to_string()))?;
        let dlen = algorithm.digest_size();
        // Each entry takes at least dlen + 3 bytes: bound the allocation.
        let rest = bytes.len() - HEADER - tlen;
        if count > rest / (dlen + 3) {
            return Err(format(format!(
                "{count} entries cannot fit in the remaining {rest} bytes"
            )));
        }
        let mut entries = Vec::with_capacity(count);
        let mut pos = HEADER + tlen;
        for index in 0..count {
            let entry = |reason: &str| BundleError::Entry {
                index,
                reason: reason.to_owned(),
            };
            let d = pos..pos + dlen;
            let len_at = d.end;
            let len = bytes
                .get(len_at..len_at + 2)
                .ok_or_else(|| entry("truncated"))?;
            let slen = u16::from_le_bytes([len[0], len[1]]) as usize;
            if slen == 0 || slen > MAX_SIGNATURE {
                return Err(entry(&format!(
                    "signature of {slen} bytes (1 to {MAX_SIGNATURE} allowed)"
                )));
            }
            let s = len_at + 2..len_at + 2 + slen;
            if s.end > bytes.len() {
                return Err(entry("truncated"));
            }
            if let Some((prev, _)) = entries.last() {
                let prev: &Range<usize> = prev;
                if bytes[prev.clone()] >= bytes[d.clone()] {
                    return Err(entry("digests are not strictly increasing"));
                }
            }
            pos = s.end;
            entries.push((d, s));
        }
        if pos != bytes.len() {
            return Err(format(format!(
                "{} bytes after the last entry",
                bytes.len() - pos
            )));
        }
        if template.signature() != &bytes[entries[0].1.clone()] {
            return Err(format("the template does not carry entry 0's signature"));
        }
        Ok(Bundle {
            bytes,
            algorithm,
            block_size,
            template,
            entries,
        })
    }

    /// Encodes a bundle. `entries` must be sorted by digest without
    /// duplicates, all of `algorithm`; `template` carries entry 0's
    /// signature.
    pub fn encode(
        algorithm: HashAlgorithm,
        block_size: BlockSize,
        template: &[u8],
        entries: &[(FsVerityDigest, Vec<u8>)],
    ) -> Result<Vec<u8>, BundleError> {
        let mut out = Vec::with_capacity(
            HEADER + template.len() + entries.len() * (algorithm.digest_size() + 2 + 72),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, algorithm.kernel_id(), block_size.log2(), 0]);
        let count = u32::try_from(entries.len()).map_err(|_| format("too many entries"))?;
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&(template.len() as u32).to_le_bytes());
        out.extend_from_slice(template);
        for (index, (digest, sig)) in entries.iter().enumerate() {
            if digest.algorithm() != algorithm {
                return Err(BundleError::Entry {
                    index,
                    reason: format!("digest {digest} is not {algorithm}"),
                });
            }
            let len = u16::try_from(sig.len()).map_err(|_| BundleError::Entry {
                index,
                reason: "signature too long".into(),
            })?;
            out.extend_from_slice(digest.as_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(sig);
        }
        // What was written must read back (sorting, template, limits).
        Bundle::parse(out.clone())?;
        Ok(out)
    }

    /// The fs-verity hash algorithm of every object in the bundle.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The fs-verity block size of every object in the bundle.
    pub fn block_size(&self) -> BlockSize {
        self.block_size
    }

    /// The number of entries (signed objects).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the bundle signs no object.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The template message (entry 0's complete builtin signature).
    pub fn template(&self) -> &[u8] {
        self.template.der()
    }

    /// The encoded bundle.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Entry `i`: its digest and raw signature.
    pub fn entry(&self, i: usize) -> Option<(FsVerityDigest, &[u8])> {
        let (d, s) = self.entries.get(i)?;
        let digest = FsVerityDigest::new(self.algorithm, &self.bytes[d.clone()]).ok()?;
        Some((digest, &self.bytes[s.clone()]))
    }

    /// Every entry, in digest order.
    pub fn iter(&self) -> impl Iterator<Item = (FsVerityDigest, &[u8])> + '_ {
        (0..self.entries.len()).filter_map(move |i| self.entry(i))
    }

    /// The raw signature for `digest` (binary search).
    pub fn signature(&self, digest: &FsVerityDigest) -> Option<&[u8]> {
        if digest.algorithm() != self.algorithm {
            return None;
        }
        let want = digest.as_bytes();
        let i = self
            .entries
            .binary_search_by(|(d, _)| self.bytes[d.clone()].cmp(want))
            .ok()?;
        Some(&self.bytes[self.entries[i].1.clone()])
    }

    /// The complete builtin signature (DER PKCS#7) for `digest`, as the
    /// kernel takes it in `FS_IOC_ENABLE_VERITY`.
    pub fn pkcs7(&self, digest: &FsVerityDigest) -> Option<Vec<u8>> {
        self.signature(digest)
            .map(|s| self.template.with_signature(s))
    }
}

#[cfg(all(test, feature = "host"))]
mod tests;
