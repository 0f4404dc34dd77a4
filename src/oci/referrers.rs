//! Finding the artifacts that refer to an image in a layout.
//!
//! OCI image-spec 1.1 defines referrers (manifests with a `subject`) and the
//! registry API to list them, but not how a *layout* lists them. Two
//! conventions exist, and we read both:
//!
//! - **index.json entries** (what oras-go and oras ≥ 1.0 do, and what
//!   sealroot writes): the referrer's manifest is listed untagged in
//!   index.json with its `artifactType`; a reader scans index.json for
//!   manifests whose `subject` is the image. No tag namespace is used and
//!   existing tools ignore untagged entries.
//! - **the referrers tag schema** (distribution-spec "Referrers Tag
//!   Schema", the fallback for registries without the API): an image index
//!   tagged `sha256-<subject hex>` listing the referrers. Read for
//!   interoperability, not written: it needs a read-modify-write of a
//!   shared index blob per subject and pollutes the tag list.

use std::collections::BTreeSet;
use std::path::Path;

use super::artifact::{ArtifactError, SealArtifact};
use super::descriptor::Descriptor;
use super::digest::Sha256Digest;
use super::index::ImageIndex;
use super::layout::{ImageLayout, LayoutError};
use super::manifest::ImageManifest;
use super::media_type::MediaType;
use super::stored::Stored;

/// An artifact whose `subject` is the image asked about.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// Its descriptor in the layout.
    pub descriptor: Descriptor,
    /// Its manifest, as stored.
    pub manifest: Stored<ImageManifest>,
}

/// Lists the manifests in `layout` whose subject is `subject`, optionally
/// only those of `artifact_type`, in index.json order.
pub fn list_referrers(
    layout: &ImageLayout,
    subject: &Sha256Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Referrer>, LayoutError> {
    let index = layout.index()?;
    let mut candidates: Vec<Descriptor> = Vec::new();
    let fallback_tag = format!("sha256-{}", subject.to_hex());
    for d in &index.manifests {
        if d.ref_name() == Some(fallback_tag.as_str()) && d.media_type.is_index() {
            let idx: Stored<ImageIndex> = layout.read_json(d, "referrers index")?;
            candidates.extend(idx.manifests.iter().cloned());
        } else if d.media_type.is_manifest() {
            candidates.push(d.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for d in candidates {
        if !d.media_type.is_manifest() || !seen.insert(d.digest) {
            continue;
        }
        // An entry that states its artifactType can be filtered unread.
        if let (Some(want), Some(have)) = (artifact_type, &d.artifact_type) {
            if have != want {
                continue;
            }
        }
        let manifest: Stored<ImageManifest> =
            layout.read_json(&d, "manifest listed in index.json")?;
        if manifest.subject.as_ref().map(|s| s.digest) != Some(*subject) {
            continue;
        }
        if let Some(want) = artifact_type {
            if manifest.artifact_type.as_ref().map(MediaType::as_str) != Some(want) {
                continue;
            }
        }
        out.push(Referrer {
            descriptor: d,
            manifest,
        });
    }
    Ok(out)
}

/// A sealing artifact found in index.json: its descriptor and either the
/// validated artifact or why it is not valid.
pub type FoundArtifact = (Descriptor, Result<SealArtifact, ArtifactError>);

/// The composefs sealing artifacts (both formats) attached to `image`,
/// each parsed and checked against it. Invalid ones are returned as errors
/// so a caller can report them next to the valid ones.
pub fn seal_artifacts(
    layout: &ImageLayout,
    image: &Stored<ImageManifest>,
) -> Result<Vec<FoundArtifact>, LayoutError> {
    let mut out = Vec::new();
    for r in list_referrers(layout, &image.digest(), None)? {
        let t = r.manifest.artifact_type.as_ref().map(MediaType::as_str);
        if t != Some(MediaType::COMPOSEFS_METADATA_V1)
            && t != Some(MediaType::COMPOSEFS_SIGNATURE_V1)
        {
            continue;
        }
        let parsed = SealArtifact::parse(&r.manifest)
            .and_then(|a| a.check_subject(r.manifest.digest(), image).map(|()| a));
        out.push((r.descriptor, parsed));
    }
    Ok(out)
}

/// What adding a referrer to index.json did to skopeo's view of the layout,
/// as one line for the user, or `None` when nothing changed for it.
///
/// skopeo (containers/image, `oci/layout` `getManifestDescriptor`) resolves
/// `oci:DIR` without a tag only while index.json has exactly one entry; with
/// two it fails with "more than one image in oci, choose an image" (checked
/// with skopeo 1.9.3 and 1.18.0). So the note applies when `before` had one
/// entry and `after` has more: a tagged image is then named `oci:DIR:TAG`;
/// an untagged one `oci:DIR:@N` (its position in index.json), which skopeo
/// 1.18 accepts and 1.9 does not. umoci names images only by tag, before and
/// after sealing alike; sealroot skips referrers (`Selector::Only`).
pub fn skopeo_reference_note(
    dir: &Path,
    before: &ImageIndex,
    after: &ImageIndex,
) -> Option<String> {
    let [entry] = before.manifests.as_slice() else {
        return None;
    };
    if after.manifests.len() < 2 {
        return None;
    }
    let dir = dir.display();
    Some(match entry.ref_name() {
        Some(tag) => format!(
            "note: skopeo now needs the tag: oci:{dir}:{tag} (without it, it finds more than \
             one index.json entry now that the artifact is listed)"
        ),
        None => {
            let position = after
                .manifests
                .iter()
                .position(|d| d.digest == entry.digest)?;
            format!(
                "note: skopeo no longer resolves the untagged oci:{dir} (index.json lists the \
                 artifact too): name the image oci:{dir}:@{position} (skopeo 1.18; bookworm's \
                 skopeo 1.9 needs a tagged image, docs/oci.md)"
            )
        }
    })
}
