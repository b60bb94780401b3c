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
//! 4. A listener's pins are read from disk for every connection (once by the
//!    verifier, again by [`PinSet::find`] when the listener names the peer),
//!    so `vchat untrust` takes effect at once, and a peer untrusted in the
//!    middle of a handshake is refused rather than let in under a stale name.
//!
//! Dates are not checked: trust comes from the pin, which a person set up
//! deliberately, and an expiry would only lock friends out on a wrong clock.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use tracing::{info, warn};

use crate::identity::{peers, Fingerprint, IdentityError, PinnedPeer};

/// The set of certificates one side accepts: either fixed when it is made, or
/// (a listener's `--peer` arguments) read from disk again for every
/// connection, so `vchat untrust` and `vchat trust` take effect on a running
/// listener at once.
#[derive(Clone, Debug)]
pub struct PinSet {
    source: Arc<Source>,
}

#[derive(Debug)]
enum Source {
    Fixed(Vec<PinnedPeer>),
    Live(LivePins),
}

/// `--peer` arguments resolved per connection. Reading a few small PEM files
/// per handshake costs far less than the handshake itself.
#[derive(Debug)]
struct LivePins {
    dir: PathBuf,
    specs: Vec<String>,
    /// What the arguments resolved to when the listener started, for the
    /// "waiting for ..." lines.
    at_start: Vec<PinnedPeer>,
    handed_out: HandedOut,
}

impl PinSet {
    /// Pins exactly these peers, for as long as the set lives.
    pub fn new(peers: Vec<PinnedPeer>) -> Self {
        PinSet {
            source: Arc::new(Source::Fixed(peers)),
        }
    }

    /// Pins the peers named by `specs` (trusted peer names, or certificate
    /// files; see [`peers::resolve`]) in the identity directory `dir`, read
    /// again for every connection: a peer untrusted since is refused, a
    /// certificate trusted since under one of these names is accepted. Fails
    /// if a spec does not resolve now, so a typo is caught at start. Later, a
    /// removed file means "not pinned", and an unreadable or invalid one too
    /// (with a warning each time a connection is checked against it).
    pub fn live(dir: &Path, specs: &[String]) -> Result<Self, IdentityError> {
        let at_start = specs
            .iter()
            .map(|spec| peers::resolve(dir, spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PinSet {
            source: Arc::new(Source::Live(LivePins {
                dir: dir.to_owned(),
                specs: specs.to_vec(),
                at_start,
                handed_out: HandedOut::default(),
            })),
        })
    }

    /// The peer whose certificate has this fingerprint, if pinned. A live set
    /// reads the pins again, so a peer untrusted between the certificate check
    /// and this call is not found (the connection is then refused) and a
    /// renamed one is found under its current name.
    pub fn find(&self, fingerprint: &Fingerprint) -> Option<&PinnedPeer> {
        match &*self.source {
            Source::Fixed(peers) => peers.iter().find(|p| &p.fingerprint() == fingerprint),
            Source::Live(live) => {
                // Quiet: the certificate check of this connection already
                // logged any unusable pin file.
                let now = live.resolve(false);
                let peer = now.into_iter().find(|p| &p.fingerprint() == fingerprint)?;
                Some(live.handed_out.keep(peer))
            }
        }
    }

    /// All pinned peers; for a live set, as they were when it was made.
    pub fn peers(&self) -> &[PinnedPeer] {
        match &*self.source {
            Source::Fixed(peers) => peers,
            Source::Live(live) => &live.at_start,
        }
    }

    /// The pins as they are now: one resolution per certificate check.
    fn current(&self) -> Cow<'_, [PinnedPeer]> {
        match &*self.source {
            Source::Fixed(peers) => Cow::Borrowed(peers),
            Source::Live(live) => Cow::Owned(live.resolve(true)),
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        let pins = self.current();
        if pins.iter().any(|p| p.fingerprint() == presented) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotPinned {
                    presented,
                    expected: pins
                        .iter()
                        .map(|p| (p.name.clone(), p.fingerprint()))
                        .collect(),
                })),
            )))
        }
    }
}

impl LivePins {
    /// Reads every `--peer` argument from disk. Anything that does not
    /// resolve is not pinned; with `log`, says why (once per connection).
    fn resolve(&self, log: bool) -> Vec<PinnedPeer> {
        let mut pinned = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            match peers::resolve_if_present(&self.dir, spec) {
                Ok(Some(peer)) => pinned.push(peer),
                Ok(None) if log => {
                    info!("--peer {spec} is no longer trusted (its certificate file is gone)")
                }
                Err(e) if log => warn!("--peer {spec} is not pinned for this connection: {e}"),
                _ => {}
            }
        }
        pinned
    }
}

/// The peers a live set's [`PinSet::find`] has returned. `find` lends a
/// reference (the listener clones what it needs), but a live set builds a
/// fresh list per call; each distinct (name, certificate) is kept here once so
/// the reference outlives the call. An append-only chain of `OnceLock`s needs
/// no lock and no unsafe code. It grows only when the user pins something new
/// (each entry is a `vchat trust`), so it stays a handful of entries.
#[derive(Debug, Default)]
struct HandedOut {
    head: OnceLock<Box<Kept>>,
}

#[derive(Debug)]
struct Kept {
    peer: PinnedPeer,
    next: OnceLock<Box<Kept>>,
}

impl HandedOut {
    fn keep(&self, peer: PinnedPeer) -> &PinnedPeer {
        let mut slot = &self.head;
        loop {
            let kept = slot.get_or_init(|| {
                Box::new(Kept {
                    peer: peer.clone(),
                    next: OnceLock::new(),
                })
            });
            if kept.peer.name == peer.name && kept.peer.fingerprint() == peer.fingerprint() {
                return &kept.peer;
            }
            slot = &kept.next;
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

/// The handshake-signature half of both verifier traits, which rustls
/// declares twice with the same signatures: TLS 1.2 refused, TLS 1.3 checked
/// by [`PinVerifier`] with the provider's algorithms. One body for both sides,
/// so the caller's and the listener's checks cannot drift apart.
macro_rules! signature_checks_of_pin_verifier {
    () => {
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
    };
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

    signature_checks_of_pin_verifier!();
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

    signature_checks_of_pin_verifier!();
}
