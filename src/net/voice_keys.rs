//! The keys of a call's voice datagrams, from its TLS session.
//!
//! The UDP path (protocol/datagram.rs) has no handshake of its own: both
//! ends take its keys from the session whose peer proved a pinned
//! certificate, through the TLS exporter (RFC 8446, section 7.5), so the
//! datagrams are as authentic as the stream. Each connection exports
//! different bytes, and the bytes never leave this process.

use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use crate::protocol::datagram::{DatagramKeys, DATAGRAM_KEYING_LEN, DATAGRAM_KEYS_LABEL};

/// The voice datagram keys of a finished TLS session, as this end uses
/// them (the client is the caller). `None` if the session cannot export
/// (it always can once the handshake is complete).
pub fn voice_datagram_keys(stream: &TlsStream<TcpStream>) -> Option<DatagramKeys> {
    let material = [0u8; DATAGRAM_KEYING_LEN];
    let (exported, caller) = match stream {
        TlsStream::Client(s) => (
            s.get_ref()
                .1
                .export_keying_material(material, DATAGRAM_KEYS_LABEL, None),
            true,
        ),
        TlsStream::Server(s) => (
            s.get_ref()
                .1
                .export_keying_material(material, DATAGRAM_KEYS_LABEL, None),
            false,
        ),
    };
    let material = exported.ok()?;
    Some(DatagramKeys::from_keying_material(&material, caller))
}
