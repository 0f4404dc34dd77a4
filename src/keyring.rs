//! The kernel's `.fs-verity` keyring: find it, add certificates, list them,
//! and seal it.
//!
//! fs-verity checks builtin signatures against the keys in `.fs-verity`
//! (`fs/verity/signature.c`). The keyring belongs to root, is not linked
//! into any keyring a process can search, and so is found through
//! `/proc/keys`. Sealing (`KEYCTL_RESTRICT_KEYRING`) is one-way for the
//! life of the kernel:
//! - [`Restriction::RejectAll`]: no key can be added any more (`EPERM`);
//! - [`Restriction::SignedBy`]: only certificates whose signature verifies
//!   with one given key (a CA already in the keyring) can be added
//!   (`key_or_keyring:<serial>`, `crypto/asymmetric_keys/restrict.c`);
//! - [`Restriction::SignedByKeyring`]: only certificates signed by some key
//!   already in `.fs-verity` (`key_or_keyring:0:chain`). Note that a leaf
//!   certificate in the keyring can then vouch for new keys too.
//!
//! The kernel checks only the signature for these restrictions, not
//! basicConstraints or keyUsage; `sealroot` refuses a non-CA certificate
//! as `--ca`.
//!
//! Every kernel error is reported with its errno name and what it means
//! here, e.g. "EPERM: the .fs-verity keyring is sealed".

use std::ffi::CString;

use rustix::io::Errno;

use crate::crypto::{Cert, CertInfo};
use crate::sys::keyctl::{self, KeySerial};

/// Why a keyring operation failed; kernel errors name the errno and what it
/// means here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel has no `.fs-verity` keyring (or it cannot be seen).
    #[error(
        "no .fs-verity keyring in /proc/keys: the kernel lacks \
         CONFIG_FS_VERITY_BUILTIN_SIGNATURES, /proc is not mounted, or this process \
         is not root"
    )]
    NotFound,
    /// `/proc/keys` could not be read.
    #[error("cannot read /proc/keys: {0}")]
    ProcKeys(std::io::Error),
    /// `add_key(2)` refused a certificate.
    #[error("cannot add {cert} to the {keyring}: {}: {}", errno_name(*errno), add_key_hint(*errno))]
    Add {
        /// The certificate.
        cert: Box<CertInfo>,
        /// The keyring it was to go into.
        keyring: FsVerityKeyring,
        /// What the kernel returned.
        errno: Errno,
    },
    /// `KEYCTL_RESTRICT_KEYRING` failed.
    #[error("cannot seal the {keyring}: {}: {}", errno_name(*errno), restrict_hint(*errno))]
    Seal {
        /// The keyring.
        keyring: FsVerityKeyring,
        /// What the kernel returned.
        errno: Errno,
    },
    /// Reading the keyring's or a key's description failed.
    #[error("cannot list the {keyring} (key {serial}): {}: {}", errno_name(*errno), errno_text(*errno))]
    List {
        /// The keyring.
        keyring: FsVerityKeyring,
        /// The key that could not be read.
        serial: KeySerial,
        /// What the kernel returned.
        errno: Errno,
    },
    /// A certificate that is not a CA was given to restrict the keyring.
    #[error(
        "{cert} cannot restrict the keyring: it is not a CA certificate (basicConstraints \
         cA=TRUE); pass the CA that issued your signing certificates"
    )]
    NotACa {
        /// The certificate.
        cert: Box<CertInfo>,
    },
}

/// How to seal the keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// No key may be added any more.
    RejectAll,
    /// Only certificates signed by this key (a CA certificate's key).
    SignedBy(KeySerial),
    /// Only certificates signed by a key already in the keyring.
    SignedByKeyring,
}

impl Restriction {
    /// The `keyctl restrict_keyring` arguments (type, restriction).
    pub fn arguments(&self) -> Option<(&'static str, String)> {
        match self {
            Restriction::RejectAll => None,
            Restriction::SignedBy(key) => Some(("asymmetric", format!("key_or_keyring:{key}"))),
            Restriction::SignedByKeyring => Some(("asymmetric", "key_or_keyring:0:chain".into())),
        }
    }
}

/// A key linked to the keyring.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyEntry {
    /// The key's serial number.
    pub serial: KeySerial,
    /// Key type, "asymmetric" for certificates.
    pub key_type: String,
    /// The kernel's description: `<subject>: <key id hex>`.
    pub description: String,
    /// The subjectKeyIdentifier (or serial number) in hex, as the kernel
    /// put it in the description.
    pub key_id: Option<String>,
    /// The certificate it was loaded from, when one of the certificates
    /// given to [`FsVerityKeyring::list`] matches.
    pub cert: Option<CertInfo>,
}

/// The `.fs-verity` keyring of the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsVerityKeyring {
    serial: KeySerial,
    /// False for a keyring given by serial (tests, staging).
    is_fs_verity: bool,
}

impl std::fmt::Display for FsVerityKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_fs_verity {
            write!(f, ".fs-verity keyring")
        } else {
            write!(f, "keyring {}", self.serial)
        }
    }
}

impl FsVerityKeyring {
    /// Finds the keyring's serial in `/proc/keys`.
    pub fn find() -> Result<Self, Error> {
        let text = std::fs::read_to_string("/proc/keys").map_err(Error::ProcKeys)?;
        find_in_proc_keys(&text)
            .map(|serial| FsVerityKeyring {
                serial,
                is_fs_verity: true,
            })
            .ok_or(Error::NotFound)
    }

    /// Another keyring by serial, for tests and staging (not `.fs-verity`).
    pub fn from_serial(serial: KeySerial) -> Self {
        FsVerityKeyring {
            serial,
            is_fs_verity: false,
        }
    }

    /// The keyring's serial number.
    pub fn serial(&self) -> KeySerial {
        self.serial
    }

    /// Adds a certificate (`add_key("asymmetric", "", DER, .fs-verity)`);
    /// returns the new key's serial. The kernel derives the description.
    pub fn add(&self, cert: &Cert) -> Result<KeySerial, Error> {
        keyctl::add_key(c"asymmetric", c"", cert.der(), self.serial).map_err(|errno| Error::Add {
            cert: Box::new(cert.info()),
            keyring: *self,
            errno,
        })
    }

    /// Lists the keys in the keyring; `known` certificates are matched to
    /// them by key id and subject so fingerprints can be shown.
    pub fn list(&self, known: &[Cert]) -> Result<Vec<KeyEntry>, Error> {
        let members = keyctl::keyring_members(self.serial).map_err(|errno| Error::List {
            keyring: *self,
            serial: self.serial,
            errno,
        })?;
        let mut entries = Vec::new();
        for serial in members {
            let desc = match keyctl::describe(serial) {
                Ok(d) => d,
                // Revoked or expired keys vanish between READ and DESCRIBE.
                Err(Errno::KEYREVOKED | Errno::KEYEXPIRED | Errno::NOKEY) => continue,
                Err(errno) => {
                    return Err(Error::List {
                        keyring: *self,
                        serial,
                        errno,
                    });
                }
            };
            entries.push(KeyEntry::from_description(serial, &desc, known));
        }
        Ok(entries)
    }

    /// Seals the keyring. Irreversible until reboot.
    pub fn seal(&self, restriction: Restriction) -> Result<(), Error> {
        let args = restriction
            .arguments()
            .map(|(t, r)| (CString::new(t), CString::new(r)));
        let result = match args {
            None => keyctl::restrict_keyring(self.serial, None),
            Some((Ok(t), Ok(r))) => keyctl::restrict_keyring(self.serial, Some((&t, &r))),
            Some(_) => Err(Errno::INVAL),
        };
        result.map_err(|errno| Error::Seal {
            keyring: *self,
            errno,
        })
    }

    /// Seals so that only certificates signed by `ca` can be added: adds
    /// `ca` (a CA certificate) if needed and restricts to its key.
    pub fn seal_to_ca(&self, ca: &Cert) -> Result<KeySerial, Error> {
        if !ca.is_ca() {
            return Err(Error::NotACa {
                cert: Box::new(ca.info()),
            });
        }
        let key = self.add(ca)?;
        self.seal(Restriction::SignedBy(key))?;
        Ok(key)
    }
}

/// Finds the `.fs-verity` keyring's serial in `/proc/keys` text. Lines are
/// `serial flags usage expiry perm uid gid type description`
/// (`security/keys/proc.c`, `proc_keys_show()`); a keyring's description
/// is `<name>: <count>` or `<name>: empty`.
pub fn find_in_proc_keys(text: &str) -> Option<KeySerial> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let serial = fields.next()?;
        let key_type = fields.nth(6)?;
        let name = fields.next()?;
        (key_type == "keyring" && name == ".fs-verity:")
            .then(|| u32::from_str_radix(serial, 16).ok().map(|s| s as KeySerial))
            .flatten()
    })
}

impl KeyEntry {
    /// Parses `type;uid;gid;perm;description` (`KEYCTL_DESCRIBE`); `known`
    /// certificates are matched by the key id in the description.
    pub fn from_description(serial: KeySerial, desc: &str, known: &[Cert]) -> KeyEntry {
        let mut parts = desc.splitn(5, ';');
        let key_type = parts.next().unwrap_or_default().to_owned();
        let description = parts.nth(3).unwrap_or_default().to_owned();
        // x509_key_preparse(): "<subject>: <hex of skid, or of serial>".
        let key_id = description
            .rsplit_once(": ")
            .map(|(_, id)| id.to_owned())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()));
        let cert = key_id.as_ref().and_then(|id| {
            known
                .iter()
                .find(|c| &c.kernel_key_id_hex() == id)
                .map(|c| c.info())
        });
        KeyEntry {
            serial,
            key_type,
            description,
            key_id,
            cert,
        }
    }
}

pub use crate::errno::errno_name;

fn errno_text(errno: Errno) -> String {
    std::io::Error::from(errno).to_string()
}

fn add_key_hint(errno: Errno) -> String {
    match errno {
        Errno::PERM => "the .fs-verity keyring is sealed (restricted); certificates must be \
                        added before sealing, in the initramfs"
            .into(),
        Errno::ACCESS => "no write permission on the .fs-verity keyring (run as root)".into(),
        Errno::NOKEY => "the keyring is sealed to a CA (or, after `seal --chain`, to the keys \
                         in it) and none of the keys the restriction allows signed this \
                         certificate; issue it from that CA"
            .into(),
        Errno::KEYREJECTED => "the kernel rejected the certificate: its signature does not verify \
                               with the restricting CA key, its self-signature is invalid, or it \
                               is blacklisted"
            .into(),
        Errno::BADMSG => "the kernel could not parse the certificate as X.509 DER".into(),
        Errno::NOPKG => "the kernel lacks the crypto for this certificate's key or signature \
                         algorithm (CONFIG_CRYPTO_ECDSA/RSA, or a module not loaded)"
            .into(),
        // crypto_alloc_sig() cannot find the algorithm to check a
        // self-signed certificate's signature.
        Errno::NOENT => "the kernel lacks the crypto algorithm to check this certificate's \
                         signature (for ECDSA: CONFIG_CRYPTO_ECDSA, or modprobe ecdsa_generic)"
            .into(),
        // key_type_lookup() failed.
        Errno::NODEV => {
            "the kernel has no \"asymmetric\" key type (CONFIG_ASYMMETRIC_KEY_TYPE)".into()
        }
        Errno::DQUOT => "root's key quota is exhausted (/proc/sys/kernel/keys/root_maxkeys)".into(),
        Errno::OPNOTSUPP => "the keyring's restriction does not accept this key type".into(),
        Errno::INVAL => "the kernel refused the certificate (e.g. a signature it could not \
                         check against the restricting key, or an RSA size it does not support)"
            .into(),
        other => errno_text(other),
    }
}

fn restrict_hint(errno: Errno) -> String {
    match errno {
        Errno::EXIST => "the keyring is already sealed (restricted); a keyring can be \
                         restricted only once (for .fs-verity: once per boot)"
            .into(),
        Errno::ACCESS => "no setattr permission on the .fs-verity keyring (run as root)".into(),
        Errno::NOKEY => "the restricting key does not exist".into(),
        Errno::INVAL => "the kernel did not accept the restriction".into(),
        Errno::NOENT | Errno::NODEV | Errno::OPNOTSUPP => {
            "the kernel has no \"asymmetric\" key restriction (CONFIG_ASYMMETRIC_KEY_TYPE)".into()
        }
        Errno::DEADLK => "the restriction would form a cycle".into(),
        other => errno_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_keyring_in_proc_keys() {
        // Lines as security/keys/proc.c prints them (6.12).
        let text = "\
00995846 I------     1 perm 0f0b0000     0     0 keyring   .blacklist: empty
1d2a1c6b I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: empty
3fb1c6a8 I--Q---     2 perm 1f3f0000     0 65534 keyring   _uid.0: empty
";
        assert_eq!(find_in_proc_keys(text), Some(0x1d2a1c6b));
        let text = "8a2a1c6b I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: 2\n";
        assert_eq!(find_in_proc_keys(text), Some(0x8a2a1c6bu32 as i32));
        assert_eq!(
            find_in_proc_keys("00995846 I------ 1 perm 0f0b0000 0 0 user .fs-verity: 2\n"),
            None
        );
        assert_eq!(find_in_proc_keys("garbage\n\n"), None);
    }

    #[test]
    fn parses_key_descriptions() {
        let e = KeyEntry::from_description(
            5,
            "asymmetric;0;0;39010000;sealroot test: 0a1b2c3d4e5f",
            &[],
        );
        assert_eq!(e.key_type, "asymmetric");
        assert_eq!(e.description, "sealroot test: 0a1b2c3d4e5f");
        assert_eq!(e.key_id.as_deref(), Some("0a1b2c3d4e5f"));
        assert!(e.cert.is_none());
        let e = KeyEntry::from_description(5, "keyring;0;0;3f010000;inner", &[]);
        assert_eq!(e.key_id, None);
    }

    #[test]
    fn restrictions_spell_like_keyctl() {
        assert_eq!(Restriction::RejectAll.arguments(), None);
        assert_eq!(
            Restriction::SignedBy(42).arguments(),
            Some(("asymmetric", "key_or_keyring:42".to_string()))
        );
        assert_eq!(
            Restriction::SignedByKeyring.arguments(),
            Some(("asymmetric", "key_or_keyring:0:chain".to_string()))
        );
    }

    #[test]
    fn errors_name_the_errno() {
        let e = Error::Seal {
            keyring: FsVerityKeyring {
                serial: 1,
                is_fs_verity: true,
            },
            errno: Errno::EXIST,
        };
        assert!(
            e.to_string().contains(
                "cannot seal the .fs-verity keyring: EEXIST: the keyring is already sealed"
            )
        );
        assert_eq!(errno_name(Errno::KEYREJECTED), "EKEYREJECTED");
    }
}
