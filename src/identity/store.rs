//! The local identity on disk: `DIR/cert.pem` (shared with peers) and
//! `DIR/key.pem` (never leaves the machine).
//!
//! Files are written atomically (temporary file, then rename) so an
//! interrupted `keygen` never leaves half an identity, and with their final
//! permissions from the first byte so the key is never briefly readable.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use super::{Certificate, IdentityError};
use crate::protocol::limits::MAX_DISPLAY_NAME_LEN;

/// File name of the certificate inside an identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key inside an identity directory.
pub const KEY_FILE: &str = "key.pem";

/// The fixed start of an Ed25519 private key in PKCS#8 version 1 (RFC 5208,
/// RFC 8410 section 7), the 48-byte form `openssl genpkey -algorithm ed25519`
/// writes: SEQUENCE { INTEGER 0, AlgorithmIdentifier { id-Ed25519 },
/// OCTET STRING { OCTET STRING (32-byte seed) } }. Version 2 adds the public
/// key, which OpenSSL 3.0 and Python's `cryptography` refuse to load, so we
/// write version 1 and read both.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Length of an Ed25519 private key seed (RFC 8032).
const ED25519_SEED_LEN: usize = 32;

/// How long a new certificate is valid. Trust comes from the pinned
/// fingerprint, not from the dates, so this only needs to outlive the
/// friendship; rotating means a new out-of-band exchange anyway.
const VALIDITY: Duration = Duration::days(20 * 365);

/// Our own identity: certificate and private key, loaded and cross-checked.
pub struct Identity {
    certificate: Certificate,
    key: PrivateKeyDer<'static>,
    dir: PathBuf,
}

// The private key must never reach a log line, so Debug is written by hand.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.certificate.name())
            .field("fingerprint", &self.certificate.fingerprint())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Makes a fresh Ed25519 identity in memory (used by `keygen` and by the
    /// demo's throwaway identities).
    pub fn generate(name: &str) -> Result<Identity, IdentityError> {
        check_display_name(name)?;
        let key = generate_ed25519_pkcs8_v1()?;
        // rcgen (like rustls) reads PKCS#8 v1 and v2 through ring's
        // `from_pkcs8_maybe_unchecked`, which also derives the public key.
        let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        let now = OffsetDateTime::now_utc();
        // A day of slack so a peer whose clock is slightly behind sees a valid date.
        params.not_before = now - Duration::days(1);
        params.not_after = now + VALIDITY;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let certificate = Certificate::from_der(cert.der().clone()).map_err(|e| {
            IdentityError::Generate(format!("rcgen produced a bad certificate: {e}"))
        })?;
        let key = PrivateKeyDer::Pkcs8(key);
        Ok(Identity {
            certificate,
            key,
            dir: PathBuf::new(),
        })
    }

    /// Writes this identity to `dir` (created with mode 0700), refusing to
    /// replace an existing one unless `force`.
    pub fn save(&mut self, dir: &Path, force: bool) -> Result<(), IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if !force {
            for existing in [&cert_path, &key_path] {
                if existing.exists() {
                    return Err(IdentityError::AlreadyExists {
                        path: existing.clone(),
                    });
                }
            }
        }
        create_private_dir(dir)?;
        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", self.key.secret_der()));
        // Key first: a crash between the two leaves no certificate without its key.
        write_atomically(&key_path, key_pem.as_bytes(), 0o600)?;
        write_atomically(&cert_path, self.certificate.to_pem().as_bytes(), 0o644)?;
        self.dir = dir.to_owned();
        Ok(())
    }

    /// Loads the identity in `dir`, refusing a private key that other users
    /// can read and a key that does not belong to the certificate.
    pub fn load(dir: &Path) -> Result<Identity, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if !cert_path.exists() && !key_path.exists() {
            return Err(IdentityError::NoIdentity {
                dir: dir.to_owned(),
            });
        }
        let certificate = Certificate::from_pem_file(&cert_path)?;

        let meta = fs::metadata(&key_path).map_err(|e| IdentityError::io("read", &key_path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyPermissions {
                path: key_path,
                mode,
            });
        }
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| IdentityError::BadKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;

        let identity = Identity {
            certificate,
            key,
            dir: dir.to_owned(),
        };
        identity.check_key_matches(&key_path)?;
        Ok(identity)
    }

    /// Confirms the private key's public half is the certificate's public key.
    fn check_key_matches(&self, key_path: &Path) -> Result<(), IdentityError> {
        let provider = super::crypto_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| IdentityError::BadKey {
                path: key_path.to_owned(),
                reason: format!("unsupported key ({e}); vchat keys are Ed25519"),
            })?;
        CertifiedKey::new(vec![self.certificate.der().clone()], signing_key)
            .keys_match()
            .map_err(|_| IdentityError::KeyMismatch {
                key: key_path.to_owned(),
                cert: self.dir.join(CERT_FILE),
            })
    }

    /// The certificate (shared with peers).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The private key, for building TLS configurations. Never log it.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Path of the certificate to share with peers.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// The key in rustls' signing form.
    pub fn signing_key(
        &self,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        provider.key_provider.load_private_key(self.key.clone_key())
    }
}

/// The identity directory: `--dir`, else `$VCHAT_DIR` (clap reads both), else
/// the platform's config directory (`~/.config/vchat` on Linux).
pub fn resolve_dir(explicit: Option<&Path>) -> Result<PathBuf, IdentityError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    directories::ProjectDirs::from("", "", "vchat")
        .map(|dirs| dirs.config_dir().to_owned())
        .ok_or(IdentityError::NoConfigDir)
}

/// A fresh Ed25519 key as PKCS#8 v1: the fixed prefix and 32 random bytes
/// from ring's system random source (the seed is all there is to the key).
fn generate_ed25519_pkcs8_v1() -> Result<PrivatePkcs8KeyDer<'static>, IdentityError> {
    let mut seed = [0u8; ED25519_SEED_LEN];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| IdentityError::Generate("the system random source failed".into()))?;
    let mut der = Vec::with_capacity(ED25519_PKCS8_V1_PREFIX.len() + ED25519_SEED_LEN);
    der.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    der.extend_from_slice(&seed);
    Ok(PrivatePkcs8KeyDer::from(der))
}

/// A display name we choose ourselves (`keygen --name`, `--name` of a call):
/// not blank, and within the protocol's rules for the hello's name.
pub fn check_display_name(name: &str) -> Result<(), IdentityError> {
    let reason = if name.trim().is_empty() {
        Some("it is empty; choose a name your peers will recognise".to_owned())
    } else {
        protocol_name_problem(name).map(|problem| format!("{problem}; choose another name"))
    };
    match reason {
        Some(reason) => Err(IdentityError::BadName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// What breaks the protocol's rules for a display name (PROTOCOL.md,
/// `hello.name`): more than [`MAX_DISPLAY_NAME_LEN`] bytes of UTF-8, or a
/// control character. A peer refuses a hello carrying such a name, so every
/// call would fail; the limit is the protocol's own, counted in bytes.
pub(crate) fn protocol_name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_DISPLAY_NAME_LEN {
        // Cyrillic, Greek and Arabic letters take 2 bytes in UTF-8, CJK 3.
        return Some(format!(
            "it is {} bytes in UTF-8; the limit is {MAX_DISPLAY_NAME_LEN} bytes, \
             about {} Cyrillic or {} CJK characters",
            name.len(),
            MAX_DISPLAY_NAME_LEN / 2,
            MAX_DISPLAY_NAME_LEN / 3
        ));
    }
    name.chars()
        .find(|c| c.is_control())
        .map(|c| format!("it contains the control character {c:?}"))
}

/// The display-name rule in words, for help texts.
pub fn display_name_rule() -> String {
    format!(
        "at most {MAX_DISPLAY_NAME_LEN} bytes of UTF-8 (about {} Cyrillic or {} CJK \
         characters), no control characters",
        MAX_DISPLAY_NAME_LEN / 2,
        MAX_DISPLAY_NAME_LEN / 3
    )
}

/// `check_display_name` as a clap value parser, so a bad `--name` is refused
/// before anything else happens.
pub fn parse_display_name(name: &str) -> Result<String, IdentityError> {
    check_display_name(name)?;
    Ok(name.to_owned())
}

/// Creates `dir` (and parents) and makes `dir` itself mode 0700, whatever the umask.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| IdentityError::io("create directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| IdentityError::io("set permissions on", dir, e))
}

/// Writes `contents` to `path` through a temporary file in the same directory,
/// created with `mode` so the data is never exposed with looser permissions.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<(), IdentityError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // An explicit chmod because `mode` above is filtered through the umask,
        // which could only make it stricter, but a 0644 certificate should stay 0644.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IdentityError::io("write", path, e));
    }
    Ok(())
}
