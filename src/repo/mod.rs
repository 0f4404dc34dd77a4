//! The sealroot repository: content objects, merged EROFS images and exact
//! OCI bytes on the target root filesystem, plus deployments that the
//! initramfs finds by manifest, config or EROFS digest. The on-disk contract
//! is `docs/repository.md`; this module writes it (`deploy`), checks it
//! (`fsck`) and prunes it (`gc`).
//!
//! Map: [`dir`] (every path inside the repository, resolved so that no
//! symlink, hard link or special file leads outside it; no host
//! dependencies), [`json`] (`repo.json`, `deployment.json`; no host
//! dependencies, the initramfs parses them too), `store` (the repository
//! directory, its lock, atomic content-addressed writes, the object sink
//! that imports stream into), `scan` (listing the layout's directories for
//! fsck, gc and enable-verity), `image` (OCI image -> merged composefs
//! EROFS), `seal` (signing an image into a sealing artifact),
//! `seal_inline` (signing it into a new, annotated manifest), `source`
//! (where a sealed image's signatures come from, and what binds it),
//! `check` (offline verification of sealed images), `deploy`, `fsck`,
//! `gc`, `enable` (`repo enable-verity`); `command_signer` lives in
//! [`crate::crypto`].

pub mod dir;
pub mod json;

#[cfg(feature = "host")]
pub mod check;
#[cfg(feature = "host")]
pub mod deploy;
#[cfg(feature = "host")]
pub mod enable;
#[cfg(feature = "host")]
pub mod fsck;
#[cfg(feature = "host")]
pub mod gc;
#[cfg(feature = "host")]
pub mod image;
#[cfg(feature = "host")]
pub mod scan;
#[cfg(feature = "host")]
pub mod seal;
#[cfg(feature = "host")]
pub mod seal_inline;
#[cfg(feature = "host")]
pub mod source;
#[cfg(feature = "host")]
pub mod store;
#[cfg(feature = "host")]
mod var;

pub use json::{Deployment, JsonError, RepoConfig, SignatureMode};

#[cfg(feature = "host")]
pub use store::{Access, Location, Repository};

/// The repository directory inside a sysroot (docs/repository.md).
pub const SYSROOT_DIR: &str = "sealroot";

#[cfg(feature = "host")]
pub use error::Error;

#[cfg(feature = "host")]
mod error {
    use std::path::PathBuf;

    use crate::oci::artifact::VerityAlgorithm;

    /// Why a repository operation failed.
    #[derive(Debug, thiserror::Error)]
    pub enum Error {
        /// A file system operation failed.
        #[error("{action} {path}: {error}")]
        Io {
            /// What was being done.
            action: &'static str,
            /// On which path.
            path: PathBuf,
            /// What the system said.
            error: std::io::Error,
        },
        /// A JSON file of the repository that does not parse.
        #[error("{path}: {error}")]
        Json {
            /// The file.
            path: PathBuf,
            /// Why.
            error: super::JsonError,
        },
        /// The directory has no `repo.json`.
        #[error(
            "{path} is not a sealroot repository (no repo.json); create one with \
             `sealroot repo init {location}`, or let `sealroot deploy IMAGE {location}` \
             create it"
        )]
        NotARepository {
            /// The directory.
            path: PathBuf,
            /// How the user named it (for the suggested command).
            location: String,
        },
        /// The repository's parent directory (or the sysroot) is missing.
        #[error(
            "{path} does not exist: sealroot creates only the repository inside an existing \
             {what}, never its parents; check the path (for --sysroot: mount the target's \
             root filesystem there first)"
        )]
        NoParent {
            /// The missing directory.
            path: PathBuf,
            /// What it should have been (`sysroot`, `directory`).
            what: &'static str,
        },
        /// A path in the repository that is unsafe to use (a symlink,
        /// special file or hard link where the layout has none) or could
        /// not be resolved.
        #[error(transparent)]
        Path(#[from] super::dir::PathError),
        /// A command that must see the whole repository found entries that
        /// are unsafe to work through; it did nothing.
        #[error(
            "{command} refused, nothing was changed: {first}{}",
            if *more > 0 {
                format!(" ({more} more such entries: `sealroot repo fsck` lists them all)")
            } else {
                String::new()
            }
        )]
        Unsafe {
            /// The command (`gc`, ...).
            command: String,
            /// The first unsafe entry found.
            first: super::dir::PathError,
            /// How many more there are.
            more: usize,
        },
        /// The repository's fs-verity algorithm is not the one asked for.
        #[error(
            "repository {path} uses {found}, not {wanted}: the algorithm is fixed when a \
             repository is created; seal with --algorithm={found} or use another repository"
        )]
        AlgorithmMismatch {
            /// The repository.
            path: PathBuf,
            /// Its algorithm (`repo.json`).
            found: VerityAlgorithm,
            /// The one asked for.
            wanted: VerityAlgorithm,
        },
        /// Enabling fs-verity on a file failed.
        #[error("enabling fs-verity on {path}: {error}")]
        Verity {
            /// The file.
            path: PathBuf,
            /// What the ioctl said.
            error: crate::verity::ioctl::Error,
        },
        /// The OCI image layout could not be read.
        #[error(transparent)]
        Layout(#[from] crate::oci::layout::LayoutError),
        /// Importing the image's layers failed.
        #[error(transparent)]
        Import(#[from] crate::oci::import::ImportError),
        /// The bootable variant could not be made (`oci::boot`).
        #[error(transparent)]
        Boot(#[from] crate::oci::boot::BootError),
        /// Writing the merged EROFS failed.
        #[error("writing the composefs EROFS image: {0}")]
        Erofs(crate::erofs::WriteError),
        /// The signature artifact is malformed or does not match.
        #[error(transparent)]
        Artifact(#[from] crate::oci::artifact::ArtifactError),
        /// Signing failed.
        #[error("signing: {0}")]
        Sign(crate::pkcs7::SignError),
        /// Writing the artifact into the image layout failed.
        #[error("writing into the image layout: {0}")]
        LayoutWrite(crate::oci::write::WriteError),
        /// The repository or image refuses the operation (the message says
        /// why and what to do).
        #[error("{0}")]
        Refused(String),
    }

    // Not `#[from]`: that would make the cause a `source` as well, and the
    // message already names it (printed once, see `verity::ioctl::Error`).
    impl From<crate::oci::write::WriteError> for Error {
        fn from(error: crate::oci::write::WriteError) -> Self {
            Error::LayoutWrite(error)
        }
    }

    impl From<crate::pkcs7::SignError> for Error {
        fn from(error: crate::pkcs7::SignError) -> Self {
            Error::Sign(error)
        }
    }

    impl From<crate::erofs::WriteError> for Error {
        fn from(error: crate::erofs::WriteError) -> Self {
            Error::Erofs(error)
        }
    }

    impl Error {
        /// A path error that says the repository is unsafe to work on
        /// becomes [`Error::Unsafe`] for `command` (which did nothing).
        pub fn refusing(self, command: &str) -> Error {
            match self {
                Error::Path(first) if first.is_unsafe() => Error::Unsafe {
                    command: command.to_owned(),
                    first,
                    more: 0,
                },
                e => e,
            }
        }

        pub(crate) fn io(
            action: &'static str,
            path: impl Into<PathBuf>,
        ) -> impl FnOnce(std::io::Error) -> Error {
            let path = path.into();
            move |source| Error::Io {
                action,
                path,
                error: source,
            }
        }
    }
}
