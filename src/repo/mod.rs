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
        #[error("{action} {path}: {error}")]
        Io {
            action: &'static str,
            path: PathBuf,
            error: std::io::Error,
        },
        #[error("{path}: {error}")]
        Json {
            path: PathBuf,
            error: super::JsonError,
        },
        #[error(
            "{path} is not a sealroot repository (no repo.json); create one with \
             `sealroot repo init {location}`, or let `sealroot deploy IMAGE {location}` \
             create it"
        )]
        NotARepository { path: PathBuf, location: String },
        #[error(
            "{path} does not exist: sealroot creates only the repository inside an existing \
             {what}, never its parents; check the path (for --sysroot: mount the target's \
             root filesystem there first)"
        )]
        NoParent { path: PathBuf, what: &'static str },
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
            command: String,
            first: super::dir::PathError,
            more: usize,
        },
        #[error(
            "repository {path} uses {found}, not {wanted}: the algorithm is fixed when a \
             repository is created; seal with --algorithm={found} or use another repository"
        )]
        AlgorithmMismatch {
            path: PathBuf,
            found: VerityAlgorithm,
            wanted: VerityAlgorithm,
        },
        #[error("enabling fs-verity on {path}: {error}")]
        Verity {
            path: PathBuf,
            error: crate::verity::ioctl::Error,
        },
        #[error(transparent)]
        Layout(#[from] crate::oci::layout::LayoutError),
        #[error(transparent)]
        Import(#[from] crate::oci::import::ImportError),
        /// The bootable variant could not be made (`oci::boot`).
        #[error(transparent)]
        Boot(#[from] crate::oci::boot::BootError),
        #[error("writing the composefs EROFS image: {0}")]
        Erofs(crate::erofs::WriteError),
        #[error(transparent)]
        Artifact(#[from] crate::oci::artifact::ArtifactError),
        #[error("signing: {0}")]
        Sign(crate::pkcs7::SignError),
        #[error("writing into the image layout: {0}")]
        LayoutWrite(crate::oci::write::WriteError),
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
