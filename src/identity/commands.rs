//! The identity subcommands (`keygen`, `id`, `trust`, `peers`, `untrust`):
//! what they do and exactly what they print.

use std::io::Write;
use std::path::Path;

use time::OffsetDateTime;

use super::{peers, Certificate, Identity, IdentityError};

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
        dir.join(super::KEY_FILE).display()
    );
    Ok(())
}

/// `vchat id`: shows the local identity.
pub fn id(dir: &Path, out: &mut impl Write) -> Result<(), IdentityError> {
    let identity = Identity::load(dir)?;
    let cert = identity.certificate();
    let _ = writeln!(out, "Name:                  {}", cert.name());
    let _ = writeln!(out, "Fingerprint (SHA-256): {}", cert.fingerprint());
    let _ = writeln!(out, "Short fingerprint:     {}", cert.fingerprint().short());
    let _ = writeln!(
        out,
        "Certificate:           {}",
        identity.cert_path().display()
    );
    let _ = writeln!(out, "Valid:                 {}", validity(cert));
    Ok(())
}

/// `vchat trust`: pins a peer's certificate under a name.
pub fn trust(
    dir: &Path,
    cert_file: &Path,
    name: &str,
    force: bool,
    out: &mut impl Write,
) -> Result<(), IdentityError> {
    let peer = peers::trust(dir, cert_file, name, force)?;
    let cert = &peer.certificate;
    let _ = writeln!(
        out,
        "Trusted {:?} (certificate name {:?})",
        peer.name,
        cert.name()
    );
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
