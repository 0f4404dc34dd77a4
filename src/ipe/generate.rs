//! The IPE policy for a sealed system (`sealroot ipe policy`).
//!
//! Everything defaults to DENY; what runs must come from the initramfs
//! (`boot_verified=TRUE`: the kernel marks the superblock it unpacked the
//! initramfs into, `security/ipe/hooks.c` `ipe_unpack_initramfs()`) or be a
//! file with fs-verity and a builtin signature the kernel checked against
//! the sealed `.fs-verity` keyring (`fsverity_signature=TRUE`). On 6.12 IPE
//! judges the real inode behind an overlayfs file (`d_real_inode()` in
//! `security/ipe/eval.c`), so a composefs file passes exactly when its
//! object in the repository carries its own builtin signature — which
//! `sealroot oci seal` (per-object signatures) and `sealroot deploy` /
//! `sealroot-prepare` (attaching them) provide. docs/ipe.md explains each
//! operation's choice.

use super::policy::{Action, Op, Policy, PolicyName, Property, Rule, Version};

/// What an operation other than EXECUTE accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Files from the initramfs or with a trusted builtin fs-verity
    /// signature; nothing else (in particular no buffers from userspace,
    /// e.g. `init_module(2)` of a module decompressed in userspace).
    Signed,
    /// Whatever the kernel's own checks accept (e.g. module signatures).
    Any,
    /// Nothing.
    Deny,
}

impl Trust {
    /// The keyword `sealroot ipe policy` and prepare.conf use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Signed => "signed",
            Trust::Any => "any",
            Trust::Deny => "deny",
        }
    }
}

impl std::str::FromStr for Trust {
    type Err = String;
    fn from_str(s: &str) -> Result<Trust, String> {
        match s {
            "signed" => Ok(Trust::Signed),
            "any" => Ok(Trust::Any),
            "deny" => Ok(Trust::Deny),
            other => Err(format!("{other:?} is not one of signed, any, deny")),
        }
    }
}

/// The choices of a sealed-system policy; [`SealedPolicy::default`] is what
/// docs/ipe.md recommends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPolicy {
    /// The policy's name (`policy_name=`).
    pub name: PolicyName,
    /// Its version (`policy_version=`); the kernel only updates to a newer one.
    pub version: Version,
    /// KMODULE: kernel modules loaded from files.
    pub kernel_modules: Trust,
    /// FIRMWARE: firmware the kernel loads from files.
    pub firmware: Trust,
    /// KEXEC_IMAGE and KEXEC_INITRAMFS.
    pub kexec: Trust,
    /// POLICY (policies the kernel reads from files, e.g. IMA's).
    pub policy_files: Trust,
    /// X509_CERT: certificates the kernel loads from files into keyrings.
    pub x509_certs: Trust,
}

impl Default for SealedPolicy {
    fn default() -> Self {
        SealedPolicy {
            name: PolicyName::default_name(),
            version: Version {
                major: 1,
                minor: 0,
                revision: 0,
            },
            kernel_modules: Trust::Signed,
            firmware: Trust::Signed,
            kexec: Trust::Deny,
            policy_files: Trust::Signed,
            x509_certs: Trust::Signed,
        }
    }
}

fn signed_rules(op: Op) -> [Rule; 2] {
    [
        Rule {
            op,
            properties: vec![Property::BootVerified(true)],
            action: Action::Allow,
        },
        Rule {
            op,
            properties: vec![Property::FsVeritySignature(true)],
            action: Action::Allow,
        },
    ]
}

impl SealedPolicy {
    /// The policy. EXECUTE is always "signed"; a global `DEFAULT
    /// action=DENY` covers operations a later kernel may add (the policy
    /// still loads there, and denies them until a new policy says
    /// otherwise).
    pub fn policy(&self) -> Policy {
        let mut op_defaults = [None; 7];
        let mut rules = Vec::new();
        let choices = [
            (Op::Execute, Trust::Signed),
            (Op::Firmware, self.firmware),
            (Op::KernelModule, self.kernel_modules),
            (Op::KexecImage, self.kexec),
            (Op::KexecInitramfs, self.kexec),
            (Op::Policy, self.policy_files),
            (Op::X509Cert, self.x509_certs),
        ];
        for (i, (op, trust)) in choices.into_iter().enumerate() {
            op_defaults[i] = Some(match trust {
                Trust::Any => Action::Allow,
                Trust::Signed | Trust::Deny => Action::Deny,
            });
            if trust == Trust::Signed {
                rules.extend(signed_rules(op));
            }
        }
        Policy {
            name: self.name.clone(),
            version: self.version,
            global_default: Some(Action::Deny),
            op_defaults,
            rules,
            comments: vec![
                "IPE policy for a sealroot sealed system (sealroot ipe policy; docs/ipe.md)."
                    .into(),
                "Runs: files of the initramfs, and files with a builtin fs-verity signature".into(),
                "the kernel verified against the sealed .fs-verity keyring.".into(),
                format!(
                    "KMODULE={} FIRMWARE={} KEXEC={} POLICY={} X509_CERT={}",
                    self.kernel_modules.as_str(),
                    self.firmware.as_str(),
                    self.kexec.as_str(),
                    self.policy_files.as_str(),
                    self.x509_certs.as_str()
                ),
            ],
        }
    }
}
