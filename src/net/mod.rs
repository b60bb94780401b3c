//! The pinned mutual-TLS 1.3 channel between two vchat peers.
//!
//! - [`tls`] builds the rustls configurations (TLS 1.3 only, ring, no resumption).
//! - [`danger`] holds the verifiers that accept only pinned certificates.
//! - [`knock`] is the 48-byte proof, sent before TLS, that a caller knows the
//!   listener's certificate; without it a listener sends nothing.
//! - [`dial`] is the caller's side, [`Listener`] the listener's.
//! - `addresses`: what `vchat call ARG` means ([`parse_target`], default
//!   port [`DEFAULT_PORT`]) and where a listener can be reached
//!   ([`usable_addresses`]).
//! - `happy_eyeballs`: [`connect_first`] races a host's IPv6 and IPv4
//!   addresses (RFC 8305) so a dead family costs 250 ms, not a TCP timeout.
//!
//! - `voice_keys`: the keys of the voice datagrams, exported from the
//!   TLS session ([`voice_datagram_keys`]).
//!
//! Both sides end with a [`SecureStream`]: an authenticated stream and the
//! pinned peer it is known to come from.

mod addresses;
pub mod danger;
mod dial;
mod error;
mod happy_eyeballs;
pub mod knock;
mod listener;
pub mod socket;
mod spoken_code;
pub mod tls;
pub mod tor;
mod voice_keys;

use std::net::SocketAddr;

use tokio::net::TcpStream;

pub use crate::identity::crypto_provider;
pub use addresses::{parse_target, usable_addresses, Target, DEFAULT_PORT};
pub use danger::{NotPinned, PinSet};
pub use dial::{dial, dial_via, Route};
pub use error::{classify, NetError};
pub use happy_eyeballs::{connect_first, interleave_families, CONNECTION_ATTEMPT_DELAY};
pub use listener::{
    bind_udp, Listener, ListenerOptions, HANDSHAKE_TIMEOUT, KNOCK_TIMEOUT, MAX_PENDING_HANDSHAKES,
    MAX_UNKNOCKED, STRANGER_LINGER_MAX, STRANGER_LINGER_MIN,
};
pub use spoken_code::{SpokenCode, SPOKEN_CODE_LABEL};
pub use voice_keys::voice_datagram_keys;

use crate::identity::PinnedPeer;

/// A TLS stream whose peer proved ownership of a pinned certificate.
pub struct SecureStream {
    /// Who is on the other end.
    pub peer: PinnedPeer,
    /// Their address.
    pub remote: SocketAddr,
    /// The encrypted stream (client or server side).
    pub stream: tokio_rustls::TlsStream<TcpStream>,
}

impl SecureStream {
    /// The spoken check of this connection (see [`SpokenCode`]).
    pub fn spoken_code(&self) -> Option<SpokenCode> {
        SpokenCode::of(&self.stream)
    }
}
