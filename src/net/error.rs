//! Network errors, and turning the io::Errors that tokio-rustls returns into
//! messages that say what happened and what to do.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

use super::danger::NotPinned;
use crate::identity::Fingerprint;
use crate::protocol::io_in_words;

/// What went wrong while connecting, listening or handshaking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{input:?} is not an address vchat can call: {problem}; give HOST, HOST:PORT or [IPV6]:PORT, e.g. alice.example.org, 192.0.2.7:7878 or [2001:db8::4]:7878")]
    BadAddress { input: String, problem: String },

    #[error("cannot resolve {addr:?}: {source}; check the name, or give an IP address, e.g. 192.0.2.7 or [2001:db8::4]:7878")]
    Resolve { addr: String, source: io::Error },

    #[error("cannot connect to {addr}: {source}; check the address and that the peer is running `vchat listen`")]
    Connect { addr: String, source: io::Error },

    #[error("the SOCKS5 proxy at {proxy} did not connect us to {target}: {reason}; check that the proxy runs there (for Tor: its SocksPort), and for an onion address that the peer's `vchat listen --onion` is running (a new onion service can take a minute to be reachable)")]
    Proxy {
        proxy: SocketAddr,
        target: String,
        reason: String,
    },

    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },

    #[error("{addr} accepted the connection but never answered (gave up after {:.1} s). A vchat listener stays silent to anyone whose knock it cannot verify, so this means one of: the certificate you pinned for this peer is not the one their listener uses (compare `vchat peers` on your side with `vchat id` on theirs); your clock and theirs differ by more than 2 minutes (check both clocks); the port belongs to another program or an older vchat; or a firewall swallows the connection", .waited.as_secs_f64())]
    NoAnswer { addr: SocketAddr, waited: Duration },

    #[error("the system random number generator failed; vchat cannot make a knock without it")]
    Random,

    #[error("{addr} presented certificate {} ({}), which is not the one you pinned{}. Someone may be intercepting the connection, or the peer made a new identity: compare fingerprints over another channel (`vchat id` on their side) before trusting anything new", .presented.short(), .presented, expected_list(.expected))]
    PeerNotPinned {
        addr: SocketAddr,
        presented: Fingerprint,
        expected: Vec<(String, Fingerprint)>,
    },

    #[error("{addr} refused our certificate (TLS alert {alert:?}): the peer has not pinned it; they must run `vchat trust` on your cert.pem and compare its fingerprint with `vchat id` on your side")]
    RejectedByPeer {
        addr: SocketAddr,
        alert: AlertDescription,
    },

    #[error("{addr} answered, but not with TLS: the port belongs to another program (a web server, an older vchat, ...), not a vchat listener; check the address and port")]
    NotTls { addr: SocketAddr },

    #[error("the connection with {addr} ended abruptly, without TLS's closing message: the peer's vchat stopped, or something on the network between you cut the connection")]
    Cut { addr: SocketAddr },

    #[error("TLS with {addr} failed: {}", io_in_words(.source))]
    Tls { addr: SocketAddr, source: io::Error },

    #[error("invalid TLS configuration: {0}")]
    Config(rustls::Error),
}

fn expected_list(expected: &[(String, Fingerprint)]) -> String {
    match expected {
        [] => String::new(),
        pins => {
            let list: Vec<String> = pins
                .iter()
                .map(|(name, fp)| format!("{name} = {} ({fp})", fp.short()))
                .collect();
            format!(" (expected {})", list.join(" or "))
        }
    }
}

/// The rustls error inside an io::Error from tokio-rustls, if any.
pub fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Classifies an error from a TLS handshake or from reading a TLS stream
/// (TLS 1.3 reports a rejected client certificate on the first read).
pub fn classify(addr: SocketAddr, err: io::Error) -> NetError {
    match rustls_error(&err) {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
            if let Some(not_pinned) = other.0.downcast_ref::<NotPinned>() {
                return NetError::PeerNotPinned {
                    addr,
                    presented: not_pinned.presented,
                    expected: not_pinned.expected.clone(),
                };
            }
        }
        // rustls names this by its internal type ("received corrupt message
        // of type InvalidContentType"); in plain words the other side does
        // not speak TLS at all.
        Some(rustls::Error::InvalidMessage(_)) => return NetError::NotTls { addr },
        Some(rustls::Error::AlertReceived(alert)) if is_certificate_alert(*alert) => {
            return NetError::RejectedByPeer {
                addr,
                alert: *alert,
            };
        }
        _ => {}
    }
    // rustls reports a stream that ended without close_notify (the peer
    // crashed, or the network cut it) as an UnexpectedEof with a link.
    if err.kind() == io::ErrorKind::UnexpectedEof {
        return NetError::Cut { addr };
    }
    NetError::Tls { addr, source: err }
}

fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateRequired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_stream_is_told_in_plain_words() {
        let addr: SocketAddr = "192.0.2.7:7878".parse().unwrap();
        let eof = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        let said = classify(addr, eof).to_string();
        assert!(
            said.starts_with("the connection with 192.0.2.7:7878 ended abruptly"),
            "{said}"
        );
        assert!(!said.contains("http"), "{said}");
    }
}
