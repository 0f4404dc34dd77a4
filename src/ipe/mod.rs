//! IPE (Integrity Policy Enforcement, Linux 6.12 `security/ipe/`) for a
//! sealed system: the policy text ([`policy`]: model and the kernel's
//! grammar), the policy sealroot recommends ([`generate`]), signed
//! policies ([`signed`]: what the initramfs loads; [`sign`]: signing on the
//! host). The initramfs side (loading and activating through securityfs)
//! is `prepare::ipe`; docs/ipe.md is the user's view.

pub mod generate;
pub mod policy;
#[cfg(feature = "host")]
pub mod sign;
pub mod signed;

pub use generate::{SealedPolicy, Trust};
pub use policy::{
    Action, DigestValue, Op, Policy, PolicyError, PolicyName, Property, Rule, Version,
};
pub use signed::{SignedPolicy, SignedPolicyError};

#[cfg(all(test, feature = "host"))]
mod tests;
