//! The spoken check: six digits that both ends of a call derive from their
//! TLS session, for the two people to read aloud to each other.
//!
//! Pinned certificates prove who is on the other end only if the
//! certificates were swapped honestly. If someone in the middle had swapped
//! them in transit, each side would run TLS with that someone instead, two
//! sessions with different secrets. The code comes from the session's
//! secret through the TLS exporter (RFC 8446 section 7.5, with a label of
//! vchat's own), so it is equal on both ends of one session by
//! construction, and unrelated between the two sessions of an interception:
//! a person in the middle who cannot choose the secrets matches the codes
//! with probability one in a million per call. It changes with every
//! connection. ZRTP's short authentication string (RFC 6189) works the same
//! way; Signal's safety numbers compare keys instead of sessions.

use std::fmt;

/// The exporter label: vchat's, and versioned, so no other protocol on the
/// same session could produce the same bytes.
pub const SPOKEN_CODE_LABEL: &[u8] = b"EXPORTER-vchat-spoken-code-v1";

/// Six decimal digits, shown as "123 456".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpokenCode(u32);

impl SpokenCode {
    /// From eight bytes of exporter output. 2^64 is not a multiple of a
    /// million: the skew is one part in 10^13, nothing against 10^-6.
    pub fn from_keying_material(bytes: [u8; 8]) -> Self {
        SpokenCode((u64::from_be_bytes(bytes) % 1_000_000) as u32)
    }

    /// The code of a finished TLS session (client or server side).
    pub fn of(stream: &tokio_rustls::TlsStream<tokio::net::TcpStream>) -> Option<Self> {
        let exported = match stream {
            tokio_rustls::TlsStream::Client(s) => {
                s.get_ref()
                    .1
                    .export_keying_material([0u8; 8], SPOKEN_CODE_LABEL, None)
            }
            tokio_rustls::TlsStream::Server(s) => {
                s.get_ref()
                    .1
                    .export_keying_material([0u8; 8], SPOKEN_CODE_LABEL, None)
            }
        };
        exported.ok().map(SpokenCode::from_keying_material)
    }
}

impl fmt::Display for SpokenCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_in_two_groups_leading_zeros_kept() {
        assert_eq!(SpokenCode(42).to_string(), "000 042");
        assert_eq!(SpokenCode(123_456).to_string(), "123 456");
        let top = SpokenCode::from_keying_material([0xff; 8]);
        assert!(top.0 < 1_000_000);
        assert_eq!(top.to_string().len(), 7);
    }
}
