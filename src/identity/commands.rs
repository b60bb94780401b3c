//! The identity subcommands (`keygen`, `id`, `trust`, `peers`, `untrust`):
//! what they do and exactly what they print.

use std::io::{Read, Write};
use std::path::Path;

use time::OffsetDateTime;

use super::{peers, Certificate, Identity, IdentityError, CERT_FILE, KEY_FILE};

/// `vchat keygen`: makes and saves a new identity, prints what to share.
pub fn keygen(
    dir: &Path,
    name: &str,
    force: bool,
    out: &mut impl Write,
) -> Result<(), IdentityError> {
    let mut identity = Identity::generate(name)?;
    identity.save(dir, force)?;
    let cert = identity.certificate();
    let _ = writeln!(
        out,
        "Created identity {:?} in {}",
        cert.name(),
        dir.display()
    );
    let _ = writeln!(out, "Fingerprint (SHA-256): {}", cert.fingerprint());
    let _ = writeln!(out, "Short fingerprint:     {}", cert.fingerprint().short());
    let _ = writeln!(
        out,
        "Share this file with your peer: {}",
        identity.cert_path().display()
    );
    let _ = writeln!(
        out,
        "Keep {} private: it never needs to leave this machine.",
        dir.join(KEY_FILE).display()
    );
    Ok(())
}

/// `vchat id`: shows the local identity. It needs only `cert.pem`: what is
/// shown is public, so a machine that holds just the certificate can still
/// show which identity lives there. When `key.pem` is there too it is
/// checked as for a call (private, matching the certificate), so `id` is
/// also the quick way to find out whether calls from here will work.
pub fn id(dir: &Path, out: &mut impl Write) -> Result<(), IdentityError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let cert = if key_path.exists() {
        Identity::load(dir)?.certificate().clone()
    } else if cert_path.exists() {
        Certificate::from_pem_file(&cert_path)?
    } else {
        return Err(IdentityError::NoIdentity {
            dir: dir.to_owned(),
        });
    };
    let _ = writeln!(out, "Name:                  {}", cert.name());
    let _ = writeln!(out, "Fingerprint (SHA-256): {}", cert.fingerprint());
    let _ = writeln!(out, "Short fingerprint:     {}", cert.fingerprint().short());
    let _ = writeln!(out, "Certificate:           {}", cert_path.display());
    let _ = writeln!(out, "Valid:                 {}", validity(&cert));
    // Written by `vchat listen --onion` once tor published the service.
    if let Ok(onion) = std::fs::read_to_string(dir.join("onion_address")) {
        let _ = writeln!(out, "Onion address:         {}:7878", onion.trim());
    }
    if !key_path.exists() {
        let _ = writeln!(
            out,
            "Private key:           missing ({}): peers can trust this identity, \
             but calls from this machine need the key",
            key_path.display()
        );
    }
    Ok(())
}

/// What `vchat trust` reads as standard input instead of a file.
pub const STDIN_ARG: &str = "-";

/// `vchat trust`: pins a peer's certificate under a name (by default the
/// certificate's own). `cert_arg` is a file, or [`STDIN_ARG`] to read the
/// certificate from `stdin` (e.g. pasted, or piped from `ssh peer cat`).
pub fn trust(
    dir: &Path,
    cert_arg: &Path,
    name: Option<&str>,
    address: Option<&str>,
    force: bool,
    stdin: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), IdentityError> {
    let (certificate, source) = if cert_arg == Path::new(STDIN_ARG) {
        let source = Path::new("standard input");
        (Certificate::from_pem_reader(stdin, source)?, source)
    } else {
        (Certificate::from_pem_file(cert_arg)?, cert_arg)
    };
    if let Some(address) = address {
        peers::check_address(address)?;
    }
    let peer = peers::trust(dir, certificate, source, name, force)?;
    if let Some(address) = address {
        peers::set_address(dir, &peer.name, address)?;
    }
    let cert = &peer.certificate;
    let _ = writeln!(
        out,
        "Trusted {:?} (certificate name {:?})",
        peer.name,
        cert.name()
    );
    if let Some(address) = peers::address(dir, &peer.name)? {
        let _ = writeln!(
            out,
            "Address: {address} (`vchat call {}` dials it)",
            peer.name
        );
    }
    let _ = writeln!(out, "Fingerprint (SHA-256): {}", cert.fingerprint());
    let _ = writeln!(out, "Short fingerprint:     {}", cert.fingerprint().short());
    let _ = writeln!(
        out,
        "Now compare this fingerprint with {} over another channel (phone, in person):\n\
         they see theirs with `vchat id`. If it differs, run `vchat untrust {}`: someone \
         may have swapped the file.",
        peer.name, peer.name
    );
    Ok(())
}

/// `vchat peers`: lists pinned peers.
pub fn list_peers(dir: &Path, out: &mut impl Write) -> Result<(), IdentityError> {
    let peers = peers::list(dir)?;
    if peers.is_empty() {
        let _ = writeln!(
            out,
            "No trusted peers in {}. Add one with `vchat trust CERT.pem --name NAME`.",
            dir.display()
        );
        return Ok(());
    }
    for peer in peers {
        let cert = &peer.certificate;
        let _ = writeln!(out, "{}", peer.name);
        let _ = writeln!(out, "  certificate name: {}", cert.name());
        let _ = writeln!(out, "  short:            {}", cert.fingerprint().short());
        let _ = writeln!(out, "  SHA-256:          {}", cert.fingerprint());
        let _ = writeln!(out, "  valid:            {}", validity(cert));
        if let Some(address) = peers::address(dir, &peer.name)? {
            let _ = writeln!(out, "  address:          {address}");
        }
    }
    Ok(())
}

/// `vchat untrust`: removes a pinned peer.
pub fn untrust(dir: &Path, name: &str, out: &mut impl Write) -> Result<(), IdentityError> {
    let peer = peers::untrust(dir, name)?;
    let _ = writeln!(
        out,
        "Removed {:?} ({}); vchat will no longer accept its certificate.",
        peer.name,
        peer.certificate.fingerprint().short()
    );
    Ok(())
}

fn validity(cert: &Certificate) -> String {
    let now = OffsetDateTime::now_utc();
    let state = if now < cert.not_before() {
        " (not yet valid: check this machine's clock)"
    } else if now > cert.not_after() {
        " (expired: make a new identity with `vchat keygen --force` and exchange certificates again)"
    } else {
        ""
    };
    format!(
        "{} to {}{state}",
        cert.not_before().date(),
        cert.not_after().date()
    )
}
