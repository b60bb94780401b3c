//! Trusted peers: certificates received out of band and pinned under a name,
//! stored as `DIR/peers/NAME.pem`.
//!
//! The file name is the trust decision: only certificates in this folder (or
//! given explicitly on the command line) are ever accepted in a handshake.

use std::fs;
use std::path::{Path, PathBuf};

use super::store::{create_private_dir, protocol_name_problem, write_atomically, CERT_FILE};
use super::{Certificate, Fingerprint, IdentityError};

/// Sub-directory of the identity directory holding pinned peers.
pub const PEERS_DIR: &str = "peers";

/// Peer names become file names, so they are restricted to a safe alphabet
/// (no path separators, no leading dot) and a sane length.
const MAX_PEER_NAME_LEN: usize = 64;

/// A certificate we accept in a handshake, and the name we know it by.
#[derive(Clone, Debug)]
pub struct PinnedPeer {
    /// The local name (`vchat trust --name`), or for a certificate file given
    /// directly, the file's stem.
    pub name: String,
    /// The pinned certificate.
    pub certificate: Certificate,
}

impl PinnedPeer {
    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.certificate.fingerprint()
    }
}

/// The peer-name rule in words, for errors and help texts.
pub fn peer_name_rule() -> String {
    format!(
        "1 to {MAX_PEER_NAME_LEN} ASCII letters, digits, '.', '_' or '-', not starting with '.' or '-'"
    )
}

/// Checks a peer name is usable as a file name and unambiguous.
pub fn check_peer_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PEER_NAME_LEN
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadPeerName {
            name: name.to_owned(),
        })
    }
}

fn peers_dir(dir: &Path) -> PathBuf {
    dir.join(PEERS_DIR)
}

fn peer_path(dir: &Path, name: &str) -> PathBuf {
    peers_dir(dir).join(format!("{name}.pem"))
}

/// Where a peer's address (`vchat trust --address`) is kept: one line,
/// next to its certificate.
fn address_path(dir: &Path, name: &str) -> PathBuf {
    peers_dir(dir).join(format!("{name}.address"))
}

/// Longest address stored (a v3 onion address with a port is 68 bytes; a
/// DNS name at most 253).
const MAX_ADDRESS_LEN: usize = 300;

/// The address stored for the peer `name`, if any.
pub fn address(dir: &Path, name: &str) -> Result<Option<String>, IdentityError> {
    check_peer_name(name)?;
    let path = address_path(dir, name);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|a| !a.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdentityError::io("read", &path, e)),
    }
}

/// Whether `address` can be stored: one line of sane length (that it is
/// HOST[:PORT] is the command line's check).
pub fn check_address(address: &str) -> Result<(), IdentityError> {
    let bad = |problem: &str| IdentityError::BadPeerAddress {
        address: address.to_owned(),
        problem: problem.to_owned(),
    };
    if address.len() > MAX_ADDRESS_LEN {
        return Err(bad(&format!("longer than {MAX_ADDRESS_LEN} bytes")));
    }
    if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "an address is one word, e.g. ID.onion or host.example.org:7878",
        ));
    }
    Ok(())
}

/// Stores `address` (checked by the caller as HOST[:PORT]) for the pinned
/// peer `name`.
pub fn set_address(dir: &Path, name: &str, address: &str) -> Result<(), IdentityError> {
    check_address(address)?;
    load(dir, name)?;
    let path = address_path(dir, name);
    write_atomically(&path, format!("{address}\n").as_bytes(), 0o644)
}

/// What `vchat call TARGET [--peer PEER]` dials and whom it expects there:
/// with `--peer`, TARGET is the address; without it, TARGET must name a
/// trusted peer whose address is stored (`vchat call bob`).
pub fn callee(
    dir: &Path,
    target: &str,
    peer: Option<&str>,
) -> Result<(String, String), IdentityError> {
    if let Some(peer) = peer {
        return Ok((target.to_owned(), peer.to_owned()));
    }
    let trusted = check_peer_name(target).is_ok() && peer_path(dir, target).exists();
    if !trusted {
        return Err(IdentityError::PeerNeeded {
            target: target.to_owned(),
            known: list(dir)?.into_iter().map(|p| p.name).collect(),
        });
    }
    match address(dir, target)? {
        Some(address) => Ok((address, target.to_owned())),
        None => Err(IdentityError::NoPeerAddress {
            name: target.to_owned(),
        }),
    }
}

/// Pins `certificate` (read from `source`, named in errors) under
/// `given_name`, or when that is `None` under the certificate's own name if
/// that is a valid peer name. Refuses our own certificate, and, unless `force`, a name
/// already in use or a certificate already trusted under another name.
pub fn trust(
    dir: &Path,
    certificate: Certificate,
    source: &Path,
    given_name: Option<&str>,
    force: bool,
) -> Result<PinnedPeer, IdentityError> {
    let name = match given_name {
        Some(name) => name.to_owned(),
        None => certificate.name().to_owned(),
    };
    check_peer_name(&name).map_err(|error| match given_name {
        Some(_) => error,
        None => IdentityError::PeerNameNeeded {
            certificate_name: name.clone(),
        },
    })?;
    let name = name.as_str();
    let own_path = dir.join(CERT_FILE);
    if own_path.exists()
        && Certificate::from_pem_file(&own_path)?.fingerprint() == certificate.fingerprint()
    {
        return Err(IdentityError::OwnCertificate {
            path: source.to_owned(),
        });
    }
    // The certificate's own name is the display name the peer's calls carry
    // by default; one the protocol refuses would make every call fail later.
    if let Some(reason) = protocol_name_problem(certificate.name()) {
        return Err(IdentityError::BadCertificateName {
            path: source.to_owned(),
            name: certificate.name().to_owned(),
            reason,
        });
    }
    let path = peer_path(dir, name);
    if !force {
        if path.exists() {
            return Err(IdentityError::PeerExists {
                name: name.to_owned(),
            });
        }
        if let Some(other) = list(dir)?
            .into_iter()
            .find(|p| p.fingerprint() == certificate.fingerprint())
        {
            return Err(IdentityError::CertificateAlreadyTrusted {
                name: other.name,
                fingerprint: certificate.fingerprint(),
            });
        }
    }
    create_private_dir(&peers_dir(dir))?;
    write_atomically(&path, certificate.to_pem().as_bytes(), 0o644)?;
    Ok(PinnedPeer {
        name: name.to_owned(),
        certificate,
    })
}

/// Removes the peer pinned as `name`.
pub fn untrust(dir: &Path, name: &str) -> Result<PinnedPeer, IdentityError> {
    let peer = load(dir, name)?;
    let path = peer_path(dir, name);
    fs::remove_file(&path).map_err(|e| IdentityError::io("remove", &path, e))?;
    let address = address_path(dir, name);
    match fs::remove_file(&address) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(IdentityError::io("remove", &address, e))
        }
        _ => {}
    }
    Ok(peer)
}

/// Loads the peer pinned as `name`.
pub fn load(dir: &Path, name: &str) -> Result<PinnedPeer, IdentityError> {
    check_peer_name(name)?;
    let path = peer_path(dir, name);
    if !path.exists() {
        return Err(IdentityError::UnknownPeer {
            name: name.to_owned(),
            known: list(dir)?.into_iter().map(|p| p.name).collect(),
        });
    }
    Ok(PinnedPeer {
        name: name.to_owned(),
        certificate: Certificate::from_pem_file(&path)?,
    })
}

/// All pinned peers, sorted by name. A missing peers folder is an empty list.
pub fn list(dir: &Path) -> Result<Vec<PinnedPeer>, IdentityError> {
    let folder = peers_dir(dir);
    let entries = match fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IdentityError::io("read", &folder, e)),
    };
    let mut peers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IdentityError::io("read", &folder, e))?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pem"))
        else {
            continue;
        };
        if check_peer_name(name).is_err() {
            continue; // not ours (editor backups, temporary files)
        }
        peers.push(PinnedPeer {
            name: name.to_owned(),
            certificate: Certificate::from_pem_file(&path)?,
        });
    }
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

/// Resolves a `--peer` argument: a path to a certificate file, or the name of
/// a trusted peer.
pub fn resolve(dir: &Path, name_or_cert: &str) -> Result<PinnedPeer, IdentityError> {
    if let Some(peer) = resolve_if_present(dir, name_or_cert)? {
        return Ok(peer);
    }
    if names_a_file(name_or_cert) {
        return Err(IdentityError::io(
            "read",
            Path::new(name_or_cert),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Err(IdentityError::UnknownPeer {
        name: name_or_cert.to_owned(),
        known: list(dir)?.into_iter().map(|p| p.name).collect(),
    })
}

/// Like [`resolve`], but a certificate that is not there (a peer removed with
/// `vchat untrust`, a deleted file) is `Ok(None)` rather than an error: a
/// listener resolves its `--peer` arguments again for every connection, and
/// a removed peer is simply no longer pinned.
pub fn resolve_if_present(
    dir: &Path,
    name_or_cert: &str,
) -> Result<Option<PinnedPeer>, IdentityError> {
    let (name, path) = if names_a_file(name_or_cert) {
        let path = PathBuf::from(name_or_cert);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("peer")
            .to_owned();
        (name, path)
    } else {
        check_peer_name(name_or_cert)?;
        (name_or_cert.to_owned(), peer_path(dir, name_or_cert))
    };
    match Certificate::from_pem_file(&path) {
        Ok(certificate) => Ok(Some(PinnedPeer { name, certificate })),
        Err(IdentityError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether a `--peer` argument is a certificate file rather than a peer name.
fn names_a_file(name_or_cert: &str) -> bool {
    name_or_cert.contains('/')
        || name_or_cert.ends_with(".pem")
        || (check_peer_name(name_or_cert).is_err() && Path::new(name_or_cert).exists())
}
