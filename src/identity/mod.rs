//! Identities: who we are (a self-signed certificate and its private key) and
//! whom we trust (peers' certificates pinned by name), plus the fingerprints
//! people compare out of band.
//!
//! There is no certificate authority: a peer is trusted because its owner
//! handed us its certificate over another channel and we compared the
//! fingerprint, like an SSH `known_hosts` entry made deliberately.

mod certificate;
pub mod commands;
mod crypto;
mod fingerprint;
pub mod peers;
mod store;

use std::path::{Path, PathBuf};

pub use certificate::Certificate;
pub use crypto::crypto_provider;
pub use fingerprint::Fingerprint;
pub use peers::PinnedPeer;
pub(crate) use store::write_atomically;
pub use store::{
    check_display_name, display_name_rule, parse_display_name, resolve_dir, Identity, CERT_FILE,
    KEY_FILE,
};

/// Everything that can go wrong with identities and trusted peers. Each
/// message says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no identity in {dir}: create one with `vchat keygen` (or point --dir / VCHAT_DIR at an existing one)")]
    NoIdentity { dir: PathBuf },

    #[error("{path} already exists: an identity is already there; pass --force to replace it (peers who pinned the old certificate will no longer accept you)")]
    AlreadyExists { path: PathBuf },

    #[error("private key {path} is accessible by other users (mode {mode:04o}); run `chmod 600 {path}` and, if others could have read it, make a new identity")]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error("private key {path} is not usable: {reason}")]
    BadKey { path: PathBuf, reason: String },

    #[error("private key {key} does not belong to certificate {cert}: restore the matching pair or make a new identity with `vchat keygen --force`")]
    KeyMismatch { key: PathBuf, cert: PathBuf },

    #[error("{path} is not a usable certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },

    #[error("invalid display name {name:?}: {reason}")]
    BadName { name: String, reason: String },

    #[error("{path} names its owner {name:?}, which peers refuse as a display name ({reason}); ask them for a certificate made with a shorter name (`vchat keygen --force --name NAME`)")]
    BadCertificateName {
        path: PathBuf,
        name: String,
        reason: String,
    },

    #[error("invalid peer name {name:?}: use {}", peers::peer_name_rule())]
    BadPeerName { name: String },

    #[error("the certificate's own name {certificate_name:?} cannot name a peer (a peer name is {}); choose one with --name, e.g. --name alice", peers::peer_name_rule())]
    PeerNameNeeded { certificate_name: String },

    #[error("{path} is your own certificate (the one in this identity directory): trust your peer's cert.pem, not yours; they get yours to trust on their side")]
    OwnCertificate { path: PathBuf },

    #[error("a peer named {name:?} is already trusted; pick another name, or pass --force to replace it")]
    PeerExists { name: String },

    #[error("this certificate ({fingerprint}) is already trusted as {name:?}; pass --force to trust it under a second name")]
    CertificateAlreadyTrusted {
        name: String,
        fingerprint: Fingerprint,
    },

    #[error("no trusted peer named {name:?}{}", known_peers(.known))]
    UnknownPeer { name: String, known: Vec<String> },

    #[error("{name} has no stored address: call it with `vchat call HOST --peer {name}`, or store its address with `vchat trust CERT --name {name} --address HOST --force`")]
    NoPeerAddress { name: String },

    #[error("{target:?} is not a trusted peer's name, so say whom you expect there: `vchat call {target} --peer NAME`{}", known_peers(.known))]
    PeerNeeded { target: String, known: Vec<String> },

    #[error("{address:?} cannot be stored as an address: {problem}")]
    BadPeerAddress { address: String, problem: String },

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot find a home directory for the identity: pass --dir DIR or set VCHAT_DIR")]
    NoConfigDir,

    #[error("cannot generate an identity: {0}")]
    Generate(String),
}

impl IdentityError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        IdentityError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

fn known_peers(known: &[String]) -> String {
    if known.is_empty() {
        "; no peers are trusted yet: add one with `vchat trust CERT.pem --name NAME`, or pass the certificate file".into()
    } else {
        format!("; trusted peers: {}", known.join(", "))
    }
}
