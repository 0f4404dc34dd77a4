//! Finding PEM blocks (RFC 7468) in a file that may hold several, with text
//! around them (openssl writes "Bag Attributes" or `-text` dumps there).
//! Decoding each block is left to `pem-rfc7468` (via `der::pem`).

/// One decoded PEM block.
#[derive(Debug)]
pub struct PemBlock {
    /// The label (`CERTIFICATE`, `PRIVATE KEY`, ...).
    pub label: String,
    /// The decoded bytes.
    pub der: Vec<u8>,
}

/// True when the bytes look like PEM rather than DER: DER always starts
/// with a SEQUENCE tag, PEM with text.
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    find(bytes, b"-----BEGIN ").is_some()
}

/// Splits `bytes` into PEM blocks and decodes each. Text outside blocks is
/// ignored. Fails on the first block that does not decode, naming it.
pub fn decode_blocks(bytes: &[u8]) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, b"-----BEGIN ") {
        let from_begin = &rest[start..];
        let label_end = find(&from_begin[11..], b"-----")
            .ok_or_else(|| "unterminated PEM BEGIN line".to_string())?;
        let label = String::from_utf8_lossy(&from_begin[11..11 + label_end]).into_owned();
        let end_marker = format!("-----END {label}-----");
        let end = find(from_begin, end_marker.as_bytes())
            .ok_or_else(|| format!("PEM block '{label}' has no '{end_marker}' line"))?;
        let block = &from_begin[..end + end_marker.len()];
        let (decoded_label, der) = der::pem::decode_vec(block)
            .map_err(|e| format!("PEM block '{label}' does not decode: {e}"))?;
        blocks.push(PemBlock {
            label: decoded_label.to_owned(),
            der,
        });
        rest = &from_begin[end + end_marker.len()..];
    }
    Ok(blocks)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_and_ignores_text() {
        let a =
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &[0x30, 0]).unwrap();
        let b =
            der::pem::encode_string("EC PARAMETERS", der::pem::LineEnding::LF, &[6, 0]).unwrap();
        let text = format!("Bag Attributes\n{a}some text\n{b}");
        let blocks = decode_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, [0x30, 0]);
        assert_eq!(blocks[1].label, "EC PARAMETERS");
        assert!(looks_like_pem(text.as_bytes()));
        assert!(!looks_like_pem(&[0x30, 0x82]));
    }

    #[test]
    fn broken_blocks_are_named() {
        let err = decode_blocks(b"-----BEGIN CERTIFICATE-----\nMIIB\n")
            .err()
            .unwrap();
        assert!(err.contains("no '-----END CERTIFICATE-----'"), "{err}");
        let err =
            decode_blocks(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").err();
        assert!(err.unwrap().contains("'CERTIFICATE' does not decode"));
        assert!(decode_blocks(b"-----BEGIN CERT").is_err());
        assert!(decode_blocks(b"no pem here").unwrap().is_empty());
    }
}
