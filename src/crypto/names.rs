//! Names for messages: X.509 distinguished names as RFC 4514 strings, and
//! the registered names of the object identifiers sealroot reports.
//!
//! `x509-cert` formats names, and `const-oid` names OIDs, from const-oid's
//! database of 845 registered names (LDAP schema, S/MIME, PKIX, ...), some
//! 66 KB that every binary formatting a name links in: a tenth of
//! `sealroot-prepare` (docs/prepare.md, "Size"). Messages need only the
//! attribute types certificates use and the algorithms and PKCS#7 types a
//! signature can name, so these small tables take their names from that
//! database (the tests compare every entry with it) and anything else is
//! written in the numeric forms RFC 4514 (section 2.4) and messages already
//! use for OIDs the database does not know.

use std::fmt::Write as _;

use const_oid::ObjectIdentifier;
use der::Encode;
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use der::{Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

/// Attribute types a certificate's subject or issuer uses, by the names
/// `x509-cert` prints: const-oid's shortest name, upper-cased (RFC 4519,
/// RFC 4524 for UID/DC/MAIL, PKCS#9 for the e-mail address).
const ATTRIBUTE_TYPES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "TITLE"),
    ("2.5.4.13", "DESCRIPTION"),
    ("2.5.4.15", "BUSINESSCATEGORY"),
    ("2.5.4.16", "POSTALADDRESS"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.18", "POSTOFFICEBOX"),
    ("2.5.4.20", "TELEPHONENUMBER"),
    ("2.5.4.41", "NAME"),
    ("2.5.4.42", "GIVENNAME"),
    ("2.5.4.43", "INITIALS"),
    ("2.5.4.44", "GENERATIONQUALIFIER"),
    ("2.5.4.45", "X500UNIQUEIDENTIFIER"),
    ("2.5.4.46", "DNQUALIFIER"),
    ("2.5.4.65", "PSEUDONYM"),
    ("2.5.4.72", "ID-AT-ROLE"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.3", "MAIL"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAIL"),
];

/// Algorithms, PKCS#7 content types and CMS attributes a certificate or a
/// signature can name, by const-oid's first name for them (what
/// `Database::by_oid` returns). The database has no name for some OIDs
/// sealroot knows (`ecdsa-with-SHA1`, the Authenticode attributes); those
/// are missing here too, so messages stay what they were.
const OBJECT_NAMES: &[(&str, &str)] = &[
    // digests (RFC 5912, NIST CSOR)
    ("1.2.840.113549.2.2", "id-md2"),
    ("1.2.840.113549.2.5", "id-md5"),
    ("1.3.14.3.2.26", "id-sha1"),
    ("2.16.840.1.101.3.4.2.1", "id-sha256"),
    ("2.16.840.1.101.3.4.2.2", "id-sha384"),
    ("2.16.840.1.101.3.4.2.3", "id-sha512"),
    ("2.16.840.1.101.3.4.2.4", "id-sha224"),
    // keys and signatures (RFC 5912, RFC 5480, RFC 8410)
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.7", "id-RSAES-OAEP"),
    ("1.2.840.113549.1.1.10", "id-RSASSA-PSS"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.10040.4.1", "id-dsa"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
    ("2.16.840.1.101.3.4.3.1", "dsa-with-sha224"),
    ("2.16.840.1.101.3.4.3.2", "dsa-with-sha256"),
    ("1.2.840.10045.2.1", "id-ecPublicKey"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.110", "id-X25519"),
    ("1.3.101.111", "id-X448"),
    ("1.3.101.112", "id-Ed25519"),
    ("1.3.101.113", "id-Ed448"),
    // curves (RFC 5480)
    ("1.2.840.10045.3.1.7", "secp256r1"),
    ("1.3.132.0.33", "secp224r1"),
    ("1.3.132.0.34", "secp384r1"),
    ("1.3.132.0.35", "secp521r1"),
    // PKCS#7 / CMS content types (RFC 5652, RFC 3274)
    ("1.2.840.113549.1.7.1", "id-data"),
    ("1.2.840.113549.1.7.2", "id-signedData"),
    ("1.2.840.113549.1.7.3", "id-envelopedData"),
    ("1.2.840.113549.1.7.5", "id-digestedData"),
    ("1.2.840.113549.1.7.6", "id-encryptedData"),
    ("1.2.840.113549.1.9.16.1.2", "id-ct-authData"),
    ("1.2.840.113549.1.9.16.1.9", "id-ct-compressedData"),
    ("1.2.840.113549.1.9.16.1.23", "id-ct-authEnvelopedData"),
    // CMS attributes (RFC 5652, RFC 8551)
    ("1.2.840.113549.1.9.3", "id-contentType"),
    ("1.2.840.113549.1.9.4", "id-messageDigest"),
    ("1.2.840.113549.1.9.5", "id-signingTime"),
    ("1.2.840.113549.1.9.6", "id-countersignature"),
    ("1.2.840.113549.1.9.15", "smimeCapabilities"),
    ("1.2.840.113549.1.9.16.2.12", "id-aa-signingCertificate"),
    ("1.2.840.113549.1.9.16.2.47", "id-aa-signingCertificateV2"),
];

fn lookup(
    table: &'static [(&'static str, &'static str)],
    oid: &ObjectIdentifier,
) -> Option<&'static str> {
    // Compared as dotted text: the tables stay readable, and the few
    // lookups happen only when a message is written.
    let dotted = oid.to_string();
    table
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, name)| *name)
}

/// The registered name of an algorithm, content type or CMS attribute, if
/// it is one sealroot's messages name.
pub fn object_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    lookup(OBJECT_NAMES, oid)
}

/// A distinguished name in RFC 4514 form (`CN=sealroot test CA,O=Example`):
/// the last RDN first, multi-valued RDNs joined by `+`, the same text as
/// `x509-cert`'s `Display` for the attribute types certificates use;
/// other types as `<dotted OID>=#<hex DER value>` (RFC 4514 2.4).
pub fn name_to_string(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name.0.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.0.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_attribute(&mut out, atv);
        }
    }
    out
}

fn write_attribute(out: &mut String, atv: &AttributeTypeAndValue) {
    let value = match atv.value.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(&atv.value)
            .ok()
            .map(|s| s.as_str()),
        Tag::Utf8String => Utf8StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
        Tag::Ia5String => Ia5StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
        Tag::TeletexString => TeletexStringRef::try_from(&atv.value)
            .ok()
            .map(|s| s.as_str()),
        _ => None,
    };
    match (lookup(ATTRIBUTE_TYPES, &atv.oid), value) {
        (Some(key), Some(value)) => {
            out.push_str(key);
            out.push('=');
            escape_value(out, value);
        }
        _ => {
            let _ = write!(out, "{}=#", atv.oid);
            for b in atv.value.to_der().unwrap_or_default() {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// RFC 4514 2.4 escaping, as `x509-cert` does it: a leading `#`, leading
/// or trailing spaces, the special characters, and control characters
/// (as `\hh`).
fn escape_value(out: &mut String, value: &str) {
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || chars.peek().is_none() => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\{:02x}", c as u8);
            }
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use const_oid::db::DB;
    use der::asn1::{Any, SetOfVec};
    use std::str::FromStr;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

    fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new(s).unwrap()
    }

    /// The reference: const-oid's database, as x509-cert's `Display`
    /// consults it (`attr.rs`, `shortest_name_by_oid`, upper-cased).
    fn shortest_db_name(o: &ObjectIdentifier) -> Option<String> {
        DB.find_names_for_oid(*o)
            .fold(None::<&str>, |best, n| match best {
                Some(b) if b.len() <= n.len() => Some(b),
                _ => Some(n),
            })
            .map(str::to_ascii_uppercase)
    }

    #[test]
    fn object_names_are_const_oids() {
        for (dotted, name) in OBJECT_NAMES {
            assert_eq!(DB.by_oid(&oid(dotted)), Some(*name), "{dotted}");
        }
    }

    #[test]
    fn every_oid_sealroot_knows_is_named_as_before() {
        use crate::crypto::algorithm::oid as o;
        for known in [
            o::RSA_ENCRYPTION,
            o::RSASSA_PSS,
            o::SHA1_WITH_RSA,
            o::SHA256_WITH_RSA,
            o::SHA384_WITH_RSA,
            o::SHA512_WITH_RSA,
            o::SHA224_WITH_RSA,
            o::EC_PUBLIC_KEY,
            o::ECDSA_WITH_SHA1,
            o::ECDSA_WITH_SHA224,
            o::ECDSA_WITH_SHA256,
            o::ECDSA_WITH_SHA384,
            o::ECDSA_WITH_SHA512,
            o::P256,
            o::P384,
            o::ED25519,
            o::ED448,
            o::SHA1,
            o::SHA256,
            o::SHA384,
            o::SHA512,
            o::SHA224,
            o::ID_DATA,
            o::ID_SIGNED_DATA,
            o::CONTENT_TYPE,
            o::MESSAGE_DIGEST,
            o::SIGNING_TIME,
            o::SMIME_CAPABILITIES,
            o::MS_SP_OPUS_INFO,
            o::MS_STATEMENT_TYPE,
        ] {
            assert_eq!(object_name(&known), DB.by_oid(&known), "{known}");
        }
    }

    #[test]
    fn attribute_types_are_x509_certs() {
        for (dotted, name) in ATTRIBUTE_TYPES {
            assert_eq!(
                shortest_db_name(&oid(dotted)).as_deref(),
                Some(*name),
                "{dotted}"
            );
        }
    }

    fn utf8(s: &str) -> Any {
        Any::new(Tag::Utf8String, s.as_bytes()).unwrap()
    }

    fn atv(dotted: &str, value: Any) -> AttributeTypeAndValue {
        AttributeTypeAndValue {
            oid: oid(dotted),
            value,
        }
    }

    fn rdn(atvs: Vec<AttributeTypeAndValue>) -> RelativeDistinguishedName {
        RelativeDistinguishedName(SetOfVec::try_from(atvs).unwrap())
    }

    /// Same text as x509-cert's `Display` (the reference) for every
    /// attribute type in the table, string types, escapes, multi-valued
    /// RDNs, and types neither knows.
    #[test]
    fn names_read_as_x509_cert_writes_them() {
        let mut names: Vec<Name> = ATTRIBUTE_TYPES
            .iter()
            .map(|(dotted, _)| RdnSequence(vec![rdn(vec![atv(dotted, utf8("a value"))])]))
            .collect();
        for value in [
            "#leading hash",
            " leading and trailing space ",
            "spe\"ci+al,ch;ar<s>\\",
            "control\x01\x1f\x7fchars",
            "ünïcödé",
            "",
        ] {
            names.push(RdnSequence(vec![rdn(vec![atv("2.5.4.3", utf8(value))])]));
        }
        names.push(RdnSequence::from_str("CN=leaf,OU=unit+O=org,C=DE,DC=example,DC=org").unwrap());
        for (tag, bytes) in [
            (Tag::PrintableString, &b"Printable"[..]),
            (Tag::Ia5String, b"ia5@example.org"),
            (Tag::TeletexString, b"teletex"),
            (Tag::BmpString, b"\0b\0m\0p"),
            (Tag::OctetString, b"\x01\x02"),
        ] {
            let value = Any::new(tag, bytes).unwrap();
            names.push(RdnSequence(vec![rdn(vec![atv("2.5.4.10", value)])]));
        }
        // An OID no database knows.
        names.push(RdnSequence(vec![rdn(vec![atv("1.2.3.4.5", utf8("x"))])]));
        names.push(RdnSequence(Vec::new()));
        for name in &names {
            assert_eq!(name_to_string(name), name.to_string());
        }
    }

    /// Attribute types outside the table keep their value, in the
    /// numeric form (x509-cert would name them from the database).
    #[test]
    fn other_attribute_types_are_numeric() {
        let name = RdnSequence(vec![rdn(vec![atv("2.5.4.14", utf8("guide"))])]);
        assert_eq!(name_to_string(&name), "2.5.4.14=#0c056775696465");
    }
}
