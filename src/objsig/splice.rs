//! Rebuilding a per-object PKCS#7 from the bundle's template: the builtin
//! signatures of one signer over different fs-verity digests differ only
//! in the SignerInfo's `signature` OCTET STRING (content detached, no
//! signed attributes: `pkcs7::sign`), so the template with that one value
//! replaced — and the lengths of the five DER containers around it
//! adjusted — is byte for byte the message `sealroot sign` would have
//! written for the other digest (`tests` check this against
//! `pkcs7::sign_fsverity` for RSA and ECDSA keys).
//!
//! The path to the signature (RFC 5652 / RFC 2315):
//! `ContentInfo SEQUENCE > [0] EXPLICIT > SignedData SEQUENCE > signerInfos
//! SET > SignerInfo SEQUENCE > signature OCTET STRING`.

use std::ops::Range;

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature template: {0}")]
pub struct TemplateError(pub String);

/// One DER element: tag, where its header starts, where its content is.
#[derive(Debug, Clone, Copy)]
struct Tlv {
    tag: u8,
    start: usize,
    content: (usize, usize),
}

impl Tlv {
    fn end(&self) -> usize {
        self.content.1
    }
}

fn err(m: impl Into<String>) -> TemplateError {
    TemplateError(m.into())
}

/// Reads the element at `pos` (definite, minimal DER lengths, one-byte
/// tags), which must end by `limit`.
fn read_tlv(buf: &[u8], pos: usize, limit: usize) -> Result<Tlv, TemplateError> {
    let short = || err("truncated DER element");
    let tag = *buf.get(pos).ok_or_else(short)?;
    if tag & 0x1f == 0x1f {
        return Err(err("multi-byte DER tag"));
    }
    let first = *buf.get(pos + 1).ok_or_else(short)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(err("indefinite or oversized DER length"));
        }
        let bytes = buf.get(pos + 2..pos + 2 + n).ok_or_else(short)?;
        if bytes[0] == 0 {
            return Err(err("non-minimal DER length"));
        }
        let len = bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        if len < 0x80 {
            return Err(err("non-minimal DER length"));
        }
        (len, 2 + n)
    };
    let start = pos + header;
    let end = start.checked_add(len).ok_or_else(short)?;
    if end > limit {
        return Err(short());
    }
    Ok(Tlv {
        tag,
        start: pos,
        content: (start, end),
    })
}

/// The children of a constructed element.
fn children(buf: &[u8], parent: &Tlv) -> Result<Vec<Tlv>, TemplateError> {
    let mut out = Vec::new();
    let mut pos = parent.content.0;
    while pos < parent.content.1 {
        let t = read_tlv(buf, pos, parent.content.1)?;
        pos = t.end();
        out.push(t);
    }
    Ok(out)
}

/// DER length octets of `len`.
fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn header_len(len: usize) -> usize {
    let mut v = Vec::with_capacity(6);
    encode_len(len, &mut v);
    1 + v.len()
}

/// A template message with the position of its signature located.
#[derive(Debug, Clone)]
pub struct Template {
    der: Vec<u8>,
    /// The five containers, outermost first.
    containers: [Tlv; 5],
    signature: Tlv,
}

impl Template {
    /// Locates the signature in `der` (a PKCS#7 with exactly one
    /// SignerInfo).
    pub fn new(der: Vec<u8>) -> Result<Template, TemplateError> {
        let top = read_tlv(&der, 0, der.len())?;
        if top.tag != 0x30 || top.end() != der.len() {
            return Err(err("not one DER SEQUENCE"));
        }
        let find = |parent: &Tlv, tag: u8, what: &str, last: bool| -> Result<Tlv, TemplateError> {
            let kids = children(&der, parent)?;
            let mut it = kids.into_iter().filter(|t| t.tag == tag);
            let found = if last { it.next_back() } else { it.next() };
            found.ok_or_else(|| err(format!("no {what}")))
        };
        let explicit = find(&top, 0xa0, "[0] content of the ContentInfo", false)?;
        let signed_data = find(&explicit, 0x30, "SignedData", false)?;
        let signer_infos = find(&signed_data, 0x31, "signerInfos SET", true)?;
        let infos = children(&der, &signer_infos)?;
        let [signer_info] = infos.as_slice() else {
            return Err(err(format!("{} SignerInfos, expected one", infos.len())));
        };
        if signer_info.tag != 0x30 {
            return Err(err("SignerInfo is not a SEQUENCE"));
        }
        let signature = find(signer_info, 0x04, "signature OCTET STRING", false)?;
        Ok(Template {
            containers: [top, explicit, signed_data, signer_infos, *signer_info],
            signature,
            der,
        })
    }

    /// The template message.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The signature value the template carries.
    pub fn signature(&self) -> &[u8] {
        &self.der[self.signature_range()]
    }

    fn signature_range(&self) -> Range<usize> {
        self.signature.content.0..self.signature.content.1
    }

    /// The template with its signature value replaced by `signature`.
    pub fn with_signature(&self, signature: &[u8]) -> Vec<u8> {
        let old_sig = self.signature.end() - self.signature.start;
        let new_sig = header_len(signature.len()) + signature.len();
        // New content lengths, innermost container first.
        let mut delta = new_sig as isize - old_sig as isize;
        let mut lens = [0usize; 5];
        for i in (0..5).rev() {
            let c = &self.containers[i];
            let old_content = c.content.1 - c.content.0;
            let new_content = (old_content as isize + delta) as usize;
            lens[i] = new_content;
            let old_total = c.end() - c.start;
            let new_total = header_len(new_content) + new_content;
            delta = new_total as isize - old_total as isize;
        }
        let mut out = Vec::with_capacity((self.der.len() as isize + delta) as usize);
        let mut pos = 0;
        for (c, len) in self.containers.iter().zip(lens) {
            out.extend_from_slice(&self.der[pos..c.start]);
            out.push(c.tag);
            encode_len(len, &mut out);
            pos = c.content.0;
        }
        out.extend_from_slice(&self.der[pos..self.signature.start]);
        out.push(0x04);
        encode_len(signature.len(), &mut out);
        out.extend_from_slice(signature);
        out.extend_from_slice(&self.der[self.signature.end()..]);
        out
    }
}
