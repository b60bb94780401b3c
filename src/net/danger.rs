//! Certificate verifiers that replace the web PKI with pinning.
//!
//! This lives under a `danger` name, as in rustls, because a verifier decides
//! whom we talk to: a mistake here is a man-in-the-middle. The rules:
//!
//! 1. The end-entity certificate's SHA-256 must be in the pin set; there is
//!    no chain, no CA and no name check. Intermediates are ignored.
//! 2. The TLS 1.3 CertificateVerify signature is really verified against the
//!    presented certificate's public key, so holding a copy of a pinned
//!    certificate is not enough: the peer must own its private key.
//! 3. TLS 1.2 signatures are refused (the configs only enable TLS 1.3 anyway).
//!
//! Dates are not checked: trust comes from the pin, which a person set up
//! deliberately, and an expiry would only lock friends out on a wrong clock.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use crate::identity::{Fingerprint, PinnedPeer};

/// The set of certificates one side accepts.
#[derive(Clone, Debug)]
pub struct PinSet {
    peers: Vec<PinnedPeer>,
}

impl PinSet {
    /// Pins exactly these peers.
    pub fn new(peers: Vec<PinnedPeer>) -> Self {
        PinSet { peers }
    }

    /// The peer whose certificate has this fingerprint, if pinned.
    pub fn find(&self, fingerprint: &Fingerprint) -> Option<&PinnedPeer> {
        self.peers.iter().find(|p| &p.fingerprint() == fingerprint)
    }

    /// All pinned peers.
    pub fn peers(&self) -> &[PinnedPeer] {
        &self.peers
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        if self.find(&presented).is_some() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotPinned {
                    presented,
                    expected: self
                        .peers
                        .iter()
                        .map(|p| (p.name.clone(), p.fingerprint()))
                        .collect(),
                })),
            )))
        }
    }
}

/// The peer presented a certificate that is not pinned. Carried inside the
/// rustls error so the side that noticed can say exactly what it saw.
#[derive(Debug, Clone)]
pub struct NotPinned {
    /// SHA-256 of the certificate the peer presented.
    pub presented: Fingerprint,
    /// The pins it was checked against.
    pub expected: Vec<(String, Fingerprint)>,
}

impl fmt::Display for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate {} ({}) is not pinned",
            self.presented.short(),
            self.presented
        )
    }
}

impl std::error::Error for NotPinned {}

/// Shared by both directions: the pin check and real signature verification.
#[derive(Debug)]
struct PinVerifier {
    pins: PinSet,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::SupportedVersionsExtensionRequired)
}

/// Used by the caller to check the listener's certificate.
#[derive(Debug)]
pub struct PinnedServerVerifier(PinVerifier);

impl PinnedServerVerifier {
    /// Accepts only certificates in `pins`.
    pub fn new(pins: PinSet, provider: Arc<CryptoProvider>) -> Self {
        PinnedServerVerifier(PinVerifier { pins, provider })
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.pins.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// Used by the listener to check the caller's certificate.
#[derive(Debug)]
pub struct PinnedClientVerifier(PinVerifier);

impl PinnedClientVerifier {
    /// Accepts only certificates in `pins`; a client without one is refused.
    pub fn new(pins: PinSet, provider: Arc<CryptoProvider>) -> Self {
        PinnedClientVerifier(PinVerifier { pins, provider })
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.pins.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}
