//! The pinned mutual-TLS 1.3 channel between two vchat peers.
//!
//! - [`tls`] builds the rustls configurations (TLS 1.3 only, ring, no resumption).
//! - [`danger`] holds the verifiers that accept only pinned certificates.
//! - [`knock`] is the 48-byte proof, sent before TLS, that a caller knows the
//!   listener's certificate; without it a listener sends nothing.
//! - [`dial`] is the caller's side, [`Listener`] the listener's.
//!
//! Both sides end with a [`SecureStream`]: an authenticated stream and the
//! pinned peer it is known to come from.

pub mod danger;
mod dial;
mod error;
pub mod knock;
mod listener;
pub mod tls;

use std::net::SocketAddr;

use tokio::net::TcpStream;

pub use crate::identity::crypto_provider;
pub use danger::{NotPinned, PinSet};
pub use dial::dial;
pub use error::{classify, NetError};
pub use listener::{
    Listener, ListenerOptions, HANDSHAKE_TIMEOUT, KNOCK_TIMEOUT, MAX_PENDING_HANDSHAKES,
    MAX_UNKNOCKED, STRANGER_LINGER_MAX, STRANGER_LINGER_MIN,
};

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
