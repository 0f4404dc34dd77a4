//! Inline sealing metadata (composefs-rs `sealing_spec.rs`, "Inline
//! composefs metadata"): the digests and signatures live in the image
//! manifest itself instead of a separate artifact.
//!
//! | key | where |
//! | --- | --- |
//! | `composefs.merged.erofs.v1.fsverity-<alg>-<bits>[.sig]` | the manifest's top-level `annotations` |
//! | `composefs.merged.bootable.erofs.v1.fsverity-<alg>-<bits>[.sig]` | the same (optional) |
//! | `composefs.config.fsverity-<alg>-<bits>[.sig]` | the config descriptor's `annotations` |
//! | `composefs.layer.erofs.v1.fsverity-<alg>-<bits>[.sig]` | each layer descriptor (per-layer EROFS; read, not used) |
//!
//! A `.sig` value is base64 DER PKCS#7, the bytes an artifact's signature
//! layer would hold. There is no manifest signature: it would have to sign
//! the bytes it is part of. Trust in an inline manifest comes from its
//! digest (pinned on a trusted kernel command line) or, for the EROFS, from
//! the signed config's `containers.composefs.fsverity` label, which
//! `sealroot oci seal --inline` writes (docs/sealing.md, "Binding").
//!
//! The parser is strict about the `composefs.` namespace: an unknown role,
//! a key on the wrong descriptor, a `.sig` without its digest, mixed
//! algorithms, bad hex or base64 are errors; signatures must cover config
//! and merged EROFS together. Fuzzed through `fuzz/fuzz_targets/oci_json.rs`.

use std::collections::BTreeMap;

use super::artifact::{Role, VerityAlgorithm};
use super::descriptor::Descriptor;
use super::digest::Sha256Digest;
use super::keys::{self, KeyRole};
use super::manifest::ImageManifest;
use super::stored::Stored;
use crate::verity::FsVerityDigest;

/// One inline role: the digest and, when signed, the PKCS#7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineEntry {
    /// Which file it describes.
    pub role: Role,
    /// Its fs-verity digest.
    pub digest: FsVerityDigest,
    /// The DER PKCS#7 from the `.sig` annotation, when signed.
    pub signature: Option<Vec<u8>>,
}

/// The inline metadata of one image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSeal {
    /// The fs-verity algorithm of every entry.
    pub algorithm: VerityAlgorithm,
    /// The config descriptor's entry.
    pub config: InlineEntry,
    /// The merged EROFS's entry (top-level annotations).
    pub merged: InlineEntry,
    /// The boot variant's entry, if any.
    pub bootable: Option<InlineEntry>,
    /// Layer descriptors with a per-layer EROFS digest (sealroot does not
    /// generate per-layer images; they are validated, not used).
    pub layer_digests: usize,
}

/// Malformed inline metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image manifest {manifest}: inline composefs metadata: {reason}")]
pub struct InlineError {
    /// The image manifest's digest.
    pub manifest: Sha256Digest,
    /// What is wrong.
    pub reason: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Config,
    Layer(usize),
}

#[derive(Default)]
struct Found<'a> {
    digest: Option<&'a str>,
    signature: Option<&'a str>,
}

impl InlineSeal {
    /// Reads the inline metadata of `manifest`; `Ok(None)` when it has
    /// no `composefs.` annotations at all.
    pub fn parse(manifest: &Stored<ImageManifest>) -> Result<Option<Self>, InlineError> {
        let err = |reason: String| InlineError {
            manifest: manifest.digest(),
            reason,
        };
        let mut places: Vec<(Place, &BTreeMap<String, String>)> = vec![
            (Place::Top, &manifest.annotations),
            (Place::Config, &manifest.config.annotations),
        ];
        for (i, l) in manifest.layers.iter().enumerate() {
            places.push((Place::Layer(i), &l.annotations));
        }
        let mut algorithm: Option<(VerityAlgorithm, String)> = None;
        // A handful of keys: a list, not a map (the initramfs links this).
        let mut found: Vec<((KeyRole, usize), Found<'_>)> = Vec::new();
        for (place, annotations) in places {
            for (key, value) in annotations {
                // Only the spec's namespace is inline metadata.
                if !key.starts_with(keys::COMPOSEFS) {
                    continue;
                }
                let Some(k) = keys::parse(key).map_err(err)? else {
                    continue;
                };
                check_place(k.role, place).map_err(|why| err(format!("{key}: {why}")))?;
                match &algorithm {
                    None => algorithm = Some((k.algorithm, key.clone())),
                    Some((first, first_key)) if *first != k.algorithm => {
                        return Err(err(format!(
                            "mixed algorithms: {key} uses {}, {first_key} uses {first}; all \
                             entries of one image use one algorithm",
                            k.algorithm
                        )));
                    }
                    Some(_) => {}
                }
                let index = match place {
                    Place::Layer(i) => i,
                    _ => 0,
                };
                let at = match found.iter().position(|(id, _)| *id == (k.role, index)) {
                    Some(at) => at,
                    None => {
                        found.push(((k.role, index), Found::default()));
                        found.len() - 1
                    }
                };
                let slot = &mut found[at].1;
                if k.signature {
                    slot.signature = Some(value);
                } else {
                    slot.digest = Some(value);
                }
            }
        }
        let Some((algorithm, _)) = algorithm else {
            return Ok(None);
        };
        let (mut config, mut merged, mut bootable) = (None, None, None);
        let mut layer_digests = 0;
        let mut any_signature = false;
        for ((role, _), f) in &found {
            let key = role.digest_key(algorithm);
            let hex = f.digest.ok_or_else(|| {
                err(format!(
                    "{key}.sig without {key}: a signature needs the digest it signs"
                ))
            })?;
            let digest =
                keys::parse_digest(algorithm, hex).map_err(|e| err(format!("{key}: {e}")))?;
            let signature = f
                .signature
                .map(keys::decode_signature)
                .transpose()
                .map_err(|e| err(format!("{key}.sig: {e}")))?;
            any_signature |= signature.is_some();
            let (slot, role) = match role {
                // Validated above; not used (no per-layer images here).
                KeyRole::Layer => {
                    layer_digests += 1;
                    continue;
                }
                KeyRole::Config => (&mut config, Role::Config),
                KeyRole::Merged => (&mut merged, Role::Merged),
                KeyRole::MergedBootable => (&mut bootable, Role::MergedBootable),
                // check_place() let no other role through.
                KeyRole::Manifest | KeyRole::Binding => continue,
            };
            *slot = Some(InlineEntry {
                role,
                digest,
                signature,
            });
        }
        let (Some(config), Some(merged)) = (config, merged) else {
            return Err(err(format!(
                "{} (top-level annotations) and {} (config descriptor) are both required \
                 (sealing spec: \"at minimum merged (plus config)\")",
                KeyRole::Merged.digest_key(algorithm),
                KeyRole::Config.digest_key(algorithm)
            )));
        };
        if any_signature {
            for e in std::iter::once(&config)
                .chain(std::iter::once(&merged))
                .chain(bootable.as_ref())
            {
                if e.signature.is_none() {
                    return Err(err(format!(
                        "{} has no .sig while other entries are signed: signatures cover config \
                         and merged EROFS together",
                        KeyRole::from(e.role).digest_key(algorithm)
                    )));
                }
            }
        }
        Ok(Some(InlineSeal {
            algorithm,
            config,
            merged,
            bootable,
            layer_digests,
        }))
    }

    /// Whether config and merged EROFS (and the boot variant) are signed.
    pub fn is_signed(&self) -> bool {
        self.entries().all(|e| e.signature.is_some())
    }

    /// Config, merged and (if present) bootable, in the spec's order.
    pub fn entries(&self) -> impl Iterator<Item = &InlineEntry> {
        [
            Some(&self.config),
            Some(&self.merged),
            self.bootable.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The entry for `role`, if present.
    pub fn entry(&self, role: Role) -> Option<&InlineEntry> {
        self.entries().find(|e| e.role == role)
    }
}

/// Which descriptor each role's keys belong on.
fn check_place(role: KeyRole, place: Place) -> Result<(), &'static str> {
    match (role, place) {
        (KeyRole::Merged | KeyRole::MergedBootable, Place::Top)
        | (KeyRole::Config, Place::Config)
        | (KeyRole::Layer, Place::Layer(_)) => Ok(()),
        (KeyRole::Manifest, _) => Err(
            "inline mode has no manifest digest or signature (it would sign the bytes it is part \
             of); manifest signatures exist only in a sealing artifact",
        ),
        (KeyRole::Binding, _) => Err("not a composefs role"),
        (KeyRole::Merged | KeyRole::MergedBootable, _) => {
            Err("belongs in the manifest's top-level annotations")
        }
        (KeyRole::Config, _) => Err("belongs on the config descriptor"),
        (KeyRole::Layer, _) => Err("belongs on a layer descriptor"),
    }
}

/// Returns `annotations` without the spec's inline keys (for re-sealing).
fn without_composefs_keys(value: &mut serde_json::Value) {
    if let Some(map) = value.as_object_mut() {
        map.retain(|k, _| !k.starts_with(keys::COMPOSEFS));
    }
}

/// The config with the composefs-rs seal label
/// (`config.Labels["containers.composefs.fsverity"]` = the merged EROFS
/// digest in hex; composefs-rs `crates/composefs-oci/src/oci_image.rs`
/// checks it). Everything else is kept; the JSON is re-serialised (keys in
/// sorted order), so the result is a new blob.
pub fn label_config(config: &[u8], merged: &FsVerityDigest) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("image config: {e}"))?;
    let root = v
        .as_object_mut()
        .ok_or("image config is not a JSON object")?;
    let runtime = root
        .entry("config")
        .or_insert_with(|| serde_json::json!({}));
    if runtime.is_null() {
        *runtime = serde_json::json!({});
    }
    let runtime = runtime
        .as_object_mut()
        .ok_or("image config: \"config\" is not an object")?;
    let labels = runtime
        .entry("Labels")
        .or_insert_with(|| serde_json::json!({}));
    if labels.is_null() {
        *labels = serde_json::json!({});
    }
    labels
        .as_object_mut()
        .ok_or("image config: \"config.Labels\" is not an object")?
        .insert(
            super::config::COMPOSEFS_SEAL_LABEL.to_owned(),
            merged.to_hex().into(),
        );
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

/// The manifest with `config` as its config descriptor (digest and size;
/// media type kept) and `seal`'s entries as inline annotations. Earlier
/// `composefs.` keys are replaced on the manifest and its config
/// descriptor and dropped from layer descriptors (per-layer EROFS digests,
/// which sealroot neither makes nor checks, possibly of another
/// algorithm); everything else is kept. `seal` must be signed.
pub fn annotate_manifest(
    manifest: &[u8],
    config: &Descriptor,
    seal: &InlineSeal,
) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("image manifest: {e}"))?;
    let root = v
        .as_object_mut()
        .ok_or("image manifest is not a JSON object")?;
    let alg = seal.algorithm;
    let pairs = |e: &InlineEntry| -> Result<[(String, serde_json::Value); 2], String> {
        let sig = e
            .signature
            .as_deref()
            .ok_or_else(|| format!("the {} entry is not signed", e.role))?;
        let role = KeyRole::from(e.role);
        Ok([
            (role.digest_key(alg), e.digest.to_hex().into()),
            (role.signature_key(alg), keys::encode_signature(sig).into()),
        ])
    };
    let c = root
        .get_mut("config")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("image manifest has no config descriptor")?;
    c.insert("digest".into(), config.digest.to_string().into());
    c.insert("size".into(), config.size.into());
    let ann = c
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    without_composefs_keys(ann);
    let ann = ann
        .as_object_mut()
        .ok_or("config descriptor annotations are not an object")?;
    ann.extend(pairs(&seal.config)?);
    let top = root
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    without_composefs_keys(top);
    let top = top
        .as_object_mut()
        .ok_or("manifest annotations are not an object")?;
    top.extend(pairs(&seal.merged)?);
    if let Some(b) = &seal.bootable {
        top.extend(pairs(b)?);
    }
    if let Some(layers) = root
        .get_mut("layers")
        .and_then(serde_json::Value::as_array_mut)
    {
        for l in layers {
            if let Some(ann) = l.get_mut("annotations") {
                without_composefs_keys(ann);
            }
        }
    }
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
