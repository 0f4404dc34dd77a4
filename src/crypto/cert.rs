//! X.509 certificates: loading (PEM or DER, one or many per file, or a
//! directory), the identifiers the kernel matches on, fingerprints, and
//! issuer checks.
//!
//! The kernel identifies a certificate's key by three ids
//! (`crypto/asymmetric_keys/x509_public_key.c`, `x509_key_preparse()`):
//! issuer + serial number, subjectKeyIdentifier, and subject. PKCS#7
//! signers and certificate issuers (authorityKeyIdentifier) are looked up
//! by those; [`Cert`] exposes them so `pkcs7::verify` can mirror the
//! kernel's lookups exactly.

use std::fmt;
use std::path::Path;

use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};

use super::algorithm::{Fingerprint, KeyAlgorithm, PublicKey, SignatureAlgorithm, SpkiError};
use super::{Error, pem};

/// Files larger than this are not certificates, keys or signatures.
pub(crate) const MAX_INPUT: u64 = 16 << 20;

/// A parsed certificate whose key and signature algorithm the kernel can
/// use.
#[derive(Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
    public_key: PublicKey,
    signature_algorithm: SignatureAlgorithm,
    fingerprint: Fingerprint,
    origin: String,
    ext: Extensions,
}

#[derive(Clone, Default)]
struct Extensions {
    /// basicConstraints cA.
    ca: bool,
    key_usage: Option<KeyUsage>,
    skid: Option<Vec<u8>>,
    akid_key_id: Option<Vec<u8>>,
    /// authorityKeyIdentifier issuer (first directoryName, DER) + serial.
    akid_issuer_serial: Option<(Vec<u8>, Vec<u8>)>,
}

/// What reports and `--json` output say about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    /// Subject, RFC 4514 form.
    pub subject: String,
    /// Issuer, RFC 4514 form.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// SHA-256 of the DER certificate.
    pub fingerprint: Fingerprint,
    /// Key algorithm and size (e.g. `RSA-2048`).
    pub key: String,
    /// Where it was loaded from.
    pub origin: String,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({})", self.subject, self.fingerprint)
    }
}

impl Cert {
    /// Parses one DER certificate and applies the key policy.
    pub fn from_der(der: &[u8], origin: impl Into<String>) -> Result<Self, Error> {
        let origin = origin.into();
        let cert = Certificate::from_der(der)
            .map_err(|e| Error::malformed(&origin, format!("not a DER X.509 certificate: {e}")))?;
        // Everything downstream (issuer names copied into PKCS#7, key ids
        // compared with the kernel's raw bytes) assumes DER.
        if cert.to_der().ok().as_deref() != Some(der) {
            return Err(Error::malformed(
                &origin,
                "not canonical DER (BER encoding?)",
            ));
        }
        let public_key =
            PublicKey::from_spki(cert.tbs_certificate.subject_public_key_info.owned_to_ref())
                .map_err(|e| match e {
                    SpkiError::Malformed(d) => Error::malformed(&origin, d),
                    SpkiError::Unsupported(reason) => Error::Unsupported {
                        origin: origin.clone(),
                        reason,
                    },
                })?;
        if cert.signature_algorithm != cert.tbs_certificate.signature {
            return Err(Error::malformed(
                &origin,
                "signatureAlgorithm differs from the one inside tbsCertificate (RFC 5280 4.1.1.2)",
            ));
        }
        let signature_algorithm = SignatureAlgorithm::from_x509_oid(&cert.signature_algorithm.oid)
            .map_err(|reason| Error::Unsupported {
                origin: origin.clone(),
                reason,
            })?;
        let ext = Extensions::parse(&cert).map_err(|d| Error::malformed(&origin, d))?;
        Ok(Cert {
            fingerprint: Fingerprint::of(der),
            der: der.to_vec(),
            cert,
            public_key,
            signature_algorithm,
            origin,
            ext,
        })
    }

    /// Certificates from PEM (any number of 'CERTIFICATE' blocks) or DER
    /// (one or more concatenated) bytes.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Vec<Cert>, Error> {
        let mut certs = Vec::new();
        if pem::looks_like_pem(bytes) {
            let blocks = pem::decode_blocks(bytes).map_err(|d| Error::malformed(origin, d))?;
            for (i, block) in blocks.iter().enumerate() {
                if block.label != "CERTIFICATE" {
                    return Err(Error::malformed(
                        origin,
                        format!(
                            "expected PEM 'CERTIFICATE' blocks, found '{}' (block {})",
                            block.label,
                            i + 1
                        ),
                    ));
                }
                let name = if blocks.len() > 1 {
                    format!("{origin} (certificate {})", i + 1)
                } else {
                    origin.to_owned()
                };
                certs.push(Cert::from_der(&block.der, name)?);
            }
        } else {
            let mut rest = bytes;
            let mut i = 0;
            while !rest.is_empty() {
                i += 1;
                let len = der_len(rest).ok_or_else(|| {
                    Error::malformed(
                        origin,
                        if i == 1 {
                            "neither PEM nor DER: expected a PEM 'CERTIFICATE' block or a DER \
                             X.509 certificate"
                                .to_string()
                        } else {
                            format!("garbage after DER certificate {}", i - 1)
                        },
                    )
                })?;
                let name = if i > 1 || len < rest.len() {
                    format!("{origin} (certificate {i})")
                } else {
                    origin.to_owned()
                };
                certs.push(Cert::from_der(&rest[..len], name)?);
                rest = &rest[len..];
            }
        }
        if certs.is_empty() {
            return Err(Error::NoCertificates {
                origin: origin.to_owned(),
            });
        }
        Ok(certs)
    }

    /// Loads certificates from a file, or from every `*.pem`, `*.crt`,
    /// `*.cer`, `*.cert` and `*.der` file in a directory (sorted by name;
    /// other files, and PEM files without a certificate such as private
    /// keys, are ignored). Duplicates are dropped.
    pub fn load(path: &Path) -> Result<Vec<Cert>, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
        let mut certs = Vec::new();
        if meta.is_dir() {
            for file in cert_files_in(path)? {
                let bytes = read_limited(&file)?;
                // Key files often sit next to certificates: a PEM file
                // without any certificate block is not ours to read.
                if pem::looks_like_pem(&bytes)
                    && pem::decode_blocks(&bytes)
                        .is_ok_and(|b| b.iter().all(|b| b.label != "CERTIFICATE"))
                {
                    continue;
                }
                certs.extend(Cert::from_bytes(&bytes, &file.display().to_string())?);
            }
            if certs.is_empty() {
                return Err(Error::NoCertificates {
                    origin: format!(
                        "{} (directory; looked at *.pem, *.crt, *.cer, *.cert, *.der)",
                        path.display()
                    ),
                });
            }
        } else {
            certs = Cert::from_bytes(&read_limited(path)?, &path.display().to_string())?;
        }
        dedup(&mut certs);
        Ok(certs)
    }

    /// Loads and concatenates several files/directories, dropping duplicates.
    pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Cert>, Error> {
        let mut certs = Vec::new();
        for p in paths {
            certs.extend(Cert::load(p.as_ref())?);
        }
        dedup(&mut certs);
        Ok(certs)
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The subject public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Kind and size of the key.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.public_key.algorithm()
    }

    /// SHA-256 of the DER.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Where it was loaded from (file, or "certificate #N embedded in ...").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// RFC 4514 form, e.g. `CN=sealroot test CA`.
    pub fn subject(&self) -> String {
        super::names::name_to_string(&self.cert.tbs_certificate.subject)
    }

    /// The issuer, RFC 4514 form.
    pub fn issuer(&self) -> String {
        super::names::name_to_string(&self.cert.tbs_certificate.issuer)
    }

    /// DER of the issuer Name, as copied into a PKCS#7 issuerAndSerialNumber.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .issuer
            .to_der()
            .unwrap_or_default()
    }

    /// The subject Name, DER.
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .subject
            .to_der()
            .unwrap_or_default()
    }

    /// Serial number content bytes (as the kernel's `raw_serial`).
    pub fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    /// The subjectKeyIdentifier extension, if present.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.ext.skid.as_deref()
    }

    /// authorityKeyIdentifier.keyIdentifier (the kernel's `auth_ids[1]`).
    pub fn authority_key_id(&self) -> Option<&[u8]> {
        self.ext.akid_key_id.as_deref()
    }

    /// authorityKeyIdentifier issuer+serial (the kernel's `auth_ids[0]`).
    pub fn authority_issuer_serial(&self) -> Option<(&[u8], &[u8])> {
        self.ext
            .akid_issuer_serial
            .as_ref()
            .map(|(i, s)| (i.as_slice(), s.as_slice()))
    }

    /// True when this certificate is the one named by issuer + serial.
    pub fn has_issuer_serial(&self, issuer_der: &[u8], serial: &[u8]) -> bool {
        self.serial() == serial && self.issuer_der() == issuer_der
    }

    /// The kernel's key description for this certificate once added to a
    /// keyring: `<subject>: <skid hex or serial hex>` (`x509_key_preparse`),
    /// minus the subject, which the kernel abbreviates its own way.
    pub fn kernel_key_id_hex(&self) -> String {
        hex::encode(self.subject_key_id().unwrap_or(self.serial()))
    }

    /// basicConstraints cA=TRUE.
    pub fn is_ca(&self) -> bool {
        self.ext.ca
    }

    /// Subject and issuer are the same name.
    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    /// Summary for messages and JSON.
    pub fn info(&self) -> CertInfo {
        CertInfo {
            subject: self.subject(),
            issuer: self.issuer(),
            serial: hex::encode(self.serial()),
            fingerprint: self.fingerprint,
            key: self.key_algorithm().to_string(),
            origin: self.origin.clone(),
        }
    }

    /// May this certificate's key sign other certificates? RFC 5280
    /// 4.2.1.9/4.2.1.3: basicConstraints cA=TRUE, and keyCertSign if
    /// keyUsage is present. (The kernel's `key_or_keyring` restriction and
    /// PKCS#7 trust walk do not check this; sealroot does.)
    pub fn check_can_issue(&self, subject: &Cert) -> Result<(), Error> {
        let why = if !self.ext.ca {
            Some("basicConstraints cA is not TRUE")
        } else if self.ext.key_usage.is_some_and(|ku| !ku.key_cert_sign()) {
            Some("its keyUsage lacks keyCertSign")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::NotACa {
                issuer: self.info().to_string(),
                subject: subject.info().to_string(),
                why,
            }),
            None => Ok(()),
        }
    }

    /// May this certificate's key sign data? keyUsage, when present, must
    /// include digitalSignature (RFC 5280 4.2.1.3).
    pub fn can_sign_data(&self) -> bool {
        self.ext.key_usage.is_none_or(|ku| ku.digital_signature())
    }

    /// Verifies this certificate's signature with `issuer`'s public key and
    /// that `issuer` may issue certificates.
    pub fn verify_issued_by(&self, issuer: &Cert) -> Result<(), Error> {
        issuer.check_can_issue(self)?;
        self.verify_signature_by(issuer.public_key())
            .map_err(|reason| Error::CertSignature {
                subject: self.info().to_string(),
                issuer: issuer.info().to_string(),
                reason,
            })
    }

    /// Verifies the certificate's signature with a public key (no CA
    /// checks), e.g. a self-signature.
    pub fn verify_signature_by(&self, key: &PublicKey) -> Result<(), super::SignatureError> {
        // The signature covers the TBSCertificate bytes as they are in the
        // file, not a re-encoding.
        let tbs = first_inner_element(&self.der).ok_or(super::SignatureError::Invalid)?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or(super::SignatureError::Invalid)?;
        key.verify(self.signature_algorithm, tbs, sig)
    }

    /// The kernel's notion of self-signed (`x509_check_for_self_signed`):
    /// subject == issuer, an authorityKeyIdentifier (if any) naming this
    /// certificate, and a signature that verifies with its own key. The
    /// kernel refuses to add a self-signed certificate whose signature
    /// does not verify (EKEYREJECTED).
    pub fn is_self_signed(&self) -> Result<bool, super::SignatureError> {
        if !self.is_self_issued() {
            return Ok(false);
        }
        let by_skid =
            self.authority_key_id().is_some() && self.authority_key_id() == self.subject_key_id();
        let by_id = self
            .authority_issuer_serial()
            .is_some_and(|(i, s)| self.has_issuer_serial(i, s));
        let has_akid =
            self.authority_key_id().is_some() || self.authority_issuer_serial().is_some();
        if has_akid && !by_skid && !by_id {
            return Ok(false);
        }
        self.verify_signature_by(&self.public_key)?;
        Ok(true)
    }
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cert({}, {})", self.subject(), self.fingerprint)
    }
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Cert {}

impl Extensions {
    fn parse(cert: &Certificate) -> Result<Self, String> {
        let mut ext = Extensions::default();
        let mut seen = Vec::new();
        for e in cert.tbs_certificate.extensions.iter().flatten() {
            if seen.contains(&e.extn_id) {
                return Err(format!("extension {} appears twice", e.extn_id));
            }
            seen.push(e.extn_id);
            let value = e.extn_value.as_bytes();
            let bad = |what: &str, err: der::Error| format!("malformed {what} extension: {err}");
            match e.extn_id {
                const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS => {
                    ext.ca = BasicConstraints::from_der(value)
                        .map_err(|err| bad("basicConstraints", err))?
                        .ca;
                }
                const_oid::db::rfc5280::ID_CE_KEY_USAGE => {
                    ext.key_usage =
                        Some(KeyUsage::from_der(value).map_err(|err| bad("keyUsage", err))?);
                }
                const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER => {
                    let skid = SubjectKeyIdentifier::from_der(value)
                        .map_err(|err| bad("subjectKeyIdentifier", err))?;
                    ext.skid = Some(skid.0.as_bytes().to_vec());
                }
                const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    let akid = AuthorityKeyIdentifier::from_der(value)
                        .map_err(|err| bad("authorityKeyIdentifier", err))?;
                    ext.akid_key_id = akid.key_identifier.map(|k| k.as_bytes().to_vec());
                    let issuer =
                        akid.authority_cert_issuer
                            .iter()
                            .flatten()
                            .find_map(|n| match n {
                                GeneralName::DirectoryName(name) => name.to_der().ok(),
                                _ => None,
                            });
                    if let (Some(issuer), Some(serial)) =
                        (issuer, akid.authority_cert_serial_number)
                    {
                        ext.akid_issuer_serial = Some((issuer, serial.as_bytes().to_vec()));
                    }
                }
                _ => {}
            }
        }
        Ok(ext)
    }
}

/// Length of the DER element at the start of `bytes` (header + content),
/// if it is a complete SEQUENCE.
fn der_len(bytes: &[u8]) -> Option<usize> {
    let mut reader = der::SliceReader::new(bytes).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    if header.tag != der::Tag::Sequence {
        return None;
    }
    let total = (header.encoded_len().ok()? + header.length).ok()?;
    let total = usize::try_from(total).ok()?;
    (total <= bytes.len()).then_some(total)
}

/// The first element inside the outer SEQUENCE of `der` (for a
/// certificate: the TBSCertificate), header included.
fn first_inner_element(der: &[u8]) -> Option<&[u8]> {
    let mut reader = der::SliceReader::new(der).ok()?;
    let outer = der::Header::decode(&mut reader).ok()?;
    let offset = usize::try_from(outer.encoded_len().ok()?).ok()?;
    let inner = der.get(offset..)?;
    inner.get(..der_len(inner)?)
}

fn dedup(certs: &mut Vec<Cert>) {
    let mut seen = std::collections::HashSet::new();
    certs.retain(|c| seen.insert(c.fingerprint));
}

/// Reads a small input file, refusing anything over [`MAX_INPUT`].
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Error::malformed(
            path.display().to_string(),
            format!(
                "larger than {} MiB; not a certificate, key or signature",
                MAX_INPUT >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// The file name extensions of certificate files in a directory
/// ([`Cert::load`], and so `sealroot-prepare`'s `certs.d`). The dracut
/// module and `mkosi.postinst` install exactly these (tests compare).
pub const CERT_EXTENSIONS: &[&str] = &["pem", "crt", "cer", "cert", "der"];

/// Certificate files in a directory, sorted by name.
pub(crate) fn cert_files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))? {
        let entry = entry.map_err(|e| Error::read(dir, e))?;
        let path = entry.path();
        let is_cert = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CERT_EXTENSIONS.contains(&e));
        let is_file = std::fs::metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        if is_cert && is_file {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
