//! Reading certificates from PEM files people hand us, with errors that say
//! what is wrong with the file rather than "parse error".

use std::fs;
use std::io::Read;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::{Fingerprint, IdentityError};

/// A certificate file larger than this is not a vchat certificate (ours are
/// about 500 bytes); refusing early keeps a mistaken path such as a video file
/// from being read into memory.
const MAX_CERT_FILE_LEN: u64 = 64 * 1024;

/// A parsed certificate and the facts about it we show to people.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: CertificateDer<'static>,
    fingerprint: Fingerprint,
    name: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Certificate {
    /// Parses one DER certificate, checking that it really is X.509.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, String> {
        let (rest, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_owned();
        let validity = parsed.validity();
        let not_before = validity.not_before.to_datetime();
        let not_after = validity.not_after.to_datetime();
        let fingerprint = Fingerprint::of_der(der.as_ref());
        Ok(Certificate {
            der,
            fingerprint,
            name,
            not_before,
            not_after,
        })
    }

    /// Reads a PEM file holding exactly one certificate.
    pub fn from_pem_file(path: &Path) -> Result<Self, IdentityError> {
        let bad = |reason: String| IdentityError::BadCertificate {
            path: path.to_owned(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| IdentityError::io("read", path, e))?;
        if !meta.is_file() {
            return Err(bad("it is not a regular file".into()));
        }
        if meta.len() > MAX_CERT_FILE_LEN {
            return Err(bad(format!(
                "it is {} bytes, larger than any certificate ({} bytes at most)",
                meta.len(),
                MAX_CERT_FILE_LEN
            )));
        }
        let contents = fs::read(path).map_err(|e| IdentityError::io("read", path, e))?;
        Certificate::from_pem(&contents, path)
    }

    /// Reads one PEM certificate from `input` (e.g. standard input, for
    /// `vchat trust -`), at most as many bytes as a certificate file may
    /// have; `source` names it in errors.
    pub fn from_pem_reader(input: &mut impl Read, source: &Path) -> Result<Self, IdentityError> {
        let mut contents = Vec::new();
        input
            .take(MAX_CERT_FILE_LEN + 1)
            .read_to_end(&mut contents)
            .map_err(|e| IdentityError::io("read", source, e))?;
        if contents.len() as u64 > MAX_CERT_FILE_LEN {
            return Err(IdentityError::BadCertificate {
                path: source.to_owned(),
                reason: format!(
                    "it is larger than any certificate ({MAX_CERT_FILE_LEN} bytes at most)"
                ),
            });
        }
        Certificate::from_pem(&contents, source)
    }

    /// Parses PEM text holding exactly one certificate; `source` names it in errors.
    fn from_pem(contents: &[u8], source: &Path) -> Result<Self, IdentityError> {
        let bad = |reason: String| IdentityError::BadCertificate {
            path: source.to_owned(),
            reason,
        };
        if contents
            .windows(b"PRIVATE KEY-----".len())
            .any(|w| w == b"PRIVATE KEY-----")
        {
            return Err(bad(
                "it contains a PRIVATE KEY: never share or accept key.pem; \
                 the file to exchange is cert.pem"
                    .into(),
            ));
        }
        let mut certs = Vec::new();
        for item in CertificateDer::pem_slice_iter(contents) {
            certs.push(item.map_err(|e| bad(format!("malformed PEM ({e})")))?);
        }
        match certs.len() {
            0 => Err(bad("it holds no '-----BEGIN CERTIFICATE-----' block; \
                 ask your peer for the cert.pem that `vchat keygen` wrote"
                .into())),
            1 => Certificate::from_der(certs.remove(0)).map_err(bad),
            n => Err(bad(format!(
                "it holds {n} certificates; a vchat identity is exactly one"
            ))),
        }
    }

    /// The DER encoding, as sent in the TLS handshake.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// SHA-256 of the DER encoding.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The subject common name: the display name chosen at `vchat keygen`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The certificate as PEM text, re-encoded from the DER so that whatever
    /// else was in the file it came from is not carried along.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.as_ref()))
    }
}
