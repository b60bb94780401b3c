//! Certificate fingerprints: what people compare out of band to know they
//! pinned the right certificate.
//!
//! The fingerprint is the SHA-256 of the certificate's DER encoding, the same
//! value `openssl x509 -noout -fingerprint -sha256` prints. Two renderings:
//! the full colon-separated hex (for copy and paste, and to check against
//! openssl), and a short form for reading aloud over a phone call.

use std::fmt;

use data_encoding::BASE32_NOPAD;

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

/// How many characters of base32 the short form carries: 20 characters of 5
/// bits each are the first 100 bits of the SHA-256. Forging a different
/// certificate with the same 100-bit prefix is a second-preimage search of
/// about 2^100 hash evaluations, far out of reach, while 20 characters are
/// still quick to read aloud.
const SHORT_CHARS: usize = 20;

/// The short form is shown in groups of this many characters.
const SHORT_GROUP: usize = 4;

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Upper-case hex bytes joined by colons, exactly as openssl prints it:
    /// `AB:12:...` (95 characters).
    pub fn colon_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{byte:02X}"));
        }
        out
    }

    /// The short form for reading aloud: the first 100 bits of the SHA-256 in
    /// RFC 4648 base32 (letters A-Z and digits 2-7, so no 0/O or 1/I/L
    /// confusion), in five dash-separated groups of four: `ABCD-EFGH-IJKL-MNOP-QRST`.
    pub fn short(&self) -> String {
        // 13 bytes = 104 bits encode to 21 characters; keep the first 20.
        let encoded = BASE32_NOPAD.encode(&self.0[..13]);
        let chars: Vec<char> = encoded.chars().take(SHORT_CHARS).collect();
        chars
            .chunks(SHORT_GROUP)
            .map(|group| group.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.colon_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_renders_as_openssl_would() {
        // SHA-256("") is a well-known constant.
        let fp = Fingerprint::of_der(b"");
        assert_eq!(
            fp.colon_hex(),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:\
             27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn short_form_is_five_groups_of_base32() {
        let short = Fingerprint::of_der(b"").short();
        assert_eq!(short.len(), 24);
        let groups: Vec<&str> = short.split('-').collect();
        assert_eq!(groups.len(), 5);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert!(short
            .chars()
            .all(|c| c == '-' || c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        // base32 of E3 B0 C4 42 98 ... starts "4OYMIQU".
        assert!(short.starts_with("4OYM-IQU"));
    }

    #[test]
    fn different_certificates_have_different_short_forms() {
        assert_ne!(
            Fingerprint::of_der(b"a").short(),
            Fingerprint::of_der(b"b").short()
        );
    }
}
