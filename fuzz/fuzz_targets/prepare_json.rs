//! The JSON `sealroot-prepare` reads from the untrusted disk: repo.json and
//! deployment.json (the parsers `sealroot deploy` shares, as in `repo_json`),
//! the image manifest and config (as `verify` uses them) and the sealing
//! artifact. Never panics; what parses keeps its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::artifact::{Role, SealArtifact};
use sealroot::oci::{ImageConfig, ImageManifest, Stored};
use sealroot::repo::json::{Deployment, RepoConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let _ = RepoConfig::parse(json);
        }
        1 => {
            let _ = Deployment::parse(json);
        }
        2 => {
            if let Ok(m) = Stored::<ImageManifest>::parse(json.to_vec()) {
                assert_eq!(m.bytes(), json);
                let _ = (m.is_image(), m.config_digest());
                if let Ok(a) = SealArtifact::parse(&m) {
                    for role in [Role::Manifest, Role::Config, Role::Merged] {
                        let _ = a.entry(role).map(|e| e.digest.to_hex());
                    }
                    let _ = a.check_subject(m.digest(), &m);
                    let _ = a.algorithm.params();
                }
            }
        }
        _ => {
            if let Ok(c) = Stored::<ImageConfig>::parse(json.to_vec()) {
                let _ = c.config.as_ref().and_then(|c| c.labels.as_ref()).map(|l| l.len());
            }
        }
    }
});
