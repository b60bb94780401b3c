//! The program's one crypto provider (ring), in the lowest module that needs it.
//!
//! Identities check that a private key matches its certificate, and the TLS
//! configurations in `net` sign and verify with the same provider. It lives
//! here, below both, so identity never reaches up into the network layer;
//! `net` re-exports it for its callers.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The one crypto provider of the program (ring), built once and shared.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
