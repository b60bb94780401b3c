//! The rustls configurations for both ends of a call.
//!
//! Both are built with an explicit provider (ring, the only one compiled in)
//! and TLS 1.3 only. Session resumption, tickets and 0-RTT are off so every
//! connection performs a full handshake and is checked against the pins as
//! they are now, not as they were when a ticket was issued. The caller sends
//! no SNI and offers no ALPN, and the listener negotiates none, so the
//! ClientHello (in the clear) carries nothing that says vchat.

use std::sync::Arc;

use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};

use super::danger::{PinSet, PinnedClientVerifier, PinnedServerVerifier};
use super::NetError;
use crate::identity::{crypto_provider, Identity};

/// The name rustls wants for a client connection. It is never sent (SNI is
/// off) and never checked (pinning ignores names); it only satisfies the
/// API. Nothing vchat-specific appears in the ClientHello: no SNI, no ALPN.
pub const SERVER_NAME: &str = "peer.invalid";

/// The caller's configuration: presents `identity`, accepts only `pins`.
pub fn client_config(identity: &Identity, pins: PinSet) -> Result<Arc<ClientConfig>, NetError> {
    let provider = crypto_provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(pins, provider)))
        .with_client_auth_cert(
            vec![identity.certificate().der().clone()],
            identity.private_key(),
        )
        .map_err(NetError::Config)?;
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    // No SNI and no ALPN: either would be a vchat-specific string in the
    // clear for any observer on the path (PROTOCOL.md section 2).
    config.enable_sni = false;
    config.alpn_protocols = Vec::new();
    Ok(Arc::new(config))
}

/// The listener's configuration: presents `identity`, requires a client
/// certificate and accepts only `pins`.
pub fn server_config(identity: &Identity, pins: PinSet) -> Result<Arc<ServerConfig>, NetError> {
    let provider = crypto_provider();
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Config)?
        .with_client_cert_verifier(Arc::new(PinnedClientVerifier::new(pins, provider)))
        .with_single_cert(
            vec![identity.certificate().der().clone()],
            identity.private_key(),
        )
        .map_err(NetError::Config)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    // No ALPN negotiation: whatever a client offers (one value, several, or
    // none) is ignored and none is selected. The knock already told us the
    // caller speaks vchat.
    config.alpn_protocols = Vec::new();
    Ok(Arc::new(config))
}
