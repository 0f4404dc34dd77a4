//! fs-verity builtin signatures: PKCS#7 in the profile the kernel accepts.
//!
//! - [`profile`]: what the kernel accepts, and a parser that checks it;
//! - [`verify`]: verification against trusted certificates, mirroring the
//!   kernel's trust decision (available in the initramfs);
//! - [`sign`]: creation, byte-identical to `fsverity sign` for RSA keys
//!   (host only).

pub mod profile;
#[cfg(feature = "host")]
pub mod sign;
pub mod verify;

pub use profile::{ProfileError, SignedMessage, SignerId};
#[cfg(feature = "host")]
pub use sign::{SignError, SignOptions, sign, sign_attached, sign_fsverity};
pub use verify::{Verified, VerifyError, verify, verify_attached, verify_fsverity};

#[cfg(all(test, feature = "host"))]
mod tests;
