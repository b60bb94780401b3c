//! The pinned mutual-TLS 1.3 channel between two vchat peers.
//!
//! - [`tls`] builds the rustls configurations (TLS 1.3 only, ring, no resumption).
//! - [`danger`] holds the verifiers that accept only pinned certificates.
//! - [`dial`] is the caller's side, [`Listener`] the listener's.
//!
//! Both sides end with a [`SecureStream`]: an authenticated stream and the
//! pinned peer it is known to come from.

pub mod danger;
mod dial;
mod error;
mod listener;
pub mod tls;

use std::net::SocketAddr;

use tokio::net::TcpStream;

pub use danger::{NotPinned, PinSet};
pub use dial::dial;
pub use error::{classify, NetError};
pub use listener::{Listener, ListenerOptions, HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES};
pub use tls::crypto_provider;

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
