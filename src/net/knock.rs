//! The knock: 48 bytes a caller sends before its TLS ClientHello to prove it
//! knows the listener's certificate, so the listener can stay silent to
//! everyone else (port scanners, probes, replays).
//!
//! It exists because a TLS server answers any ClientHello with a ServerHello,
//! which tells a scanner that something listens and, with a few more probes,
//! that it is vchat. With the knock, a listener sends not one byte to anyone
//! who cannot prove they hold its certificate (the property obfs4 bridges and
//! WireGuard have).
//!
//! Wire format (PROTOCOL.md section 2 is the normative text):
//!
//! ```text
//! K     = SHA-256("vchat knock v2" || DER of the listener's certificate)
//! epoch = floor(unix_time_seconds / 30), as a u64 big-endian
//! tag   = HMAC-SHA256(K, nonce || epoch)
//! knock = nonce (16 random bytes) || tag (32 bytes)
//! ```
//!
//! This module is pure: no sockets, and time is a parameter, so every rule
//! (window edges, replays, wrong keys) is unit tested without a clock.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use ring::{digest, hmac};

/// Bytes in a knock: nonce then tag.
pub const KNOCK_LEN: usize = NONCE_LEN + TAG_LEN;

/// Random bytes that make every knock unique (so the replay cache can tell
/// a replay from a new caller); 128 bits never collide by chance.
pub const NONCE_LEN: usize = 16;

/// HMAC-SHA256 output, sent untruncated.
pub const TAG_LEN: usize = 32;

/// Length of one time step. Coarse enough that the listener checks only a
/// few candidate epochs, fine enough that a captured knock goes stale soon.
pub const EPOCH_SECS: u64 = 30;

/// Epochs accepted on either side of the listener's current one: 4 x 30 s,
/// so the two clocks may differ by up to 2 minutes.
pub const EPOCH_TOLERANCE: u64 = 4;

/// Accepted nonces remembered to refuse replays. Only someone who holds the
/// listener's certificate can make a valid knock, so only they could push a
/// nonce out early; 4096 is far more than any honest caller makes in the
/// 4.5-minute window, and costs 64 KiB.
pub const REPLAY_CACHE_CAPACITY: usize = 4096;

/// Domain separation: a knock key is never the hash of a certificate alone,
/// which other protocols might use for something else. The `v2` is the
/// transport version (v1 had no knock).
const KEY_CONTEXT: &[u8] = b"vchat knock v2";

/// The 16 random bytes at the start of a knock.
pub type Nonce = [u8; NONCE_LEN];

/// `K`: the SHA-256 of the context string and the listener's certificate.
/// Public so the PROTOCOL.md test vector can show the intermediate value.
pub fn key_bytes(listener_certificate_der: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(KEY_CONTEXT);
    ctx.update(listener_certificate_der);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The epoch a Unix time (seconds) falls in.
pub fn epoch_of(unix_secs: u64) -> u64 {
    unix_secs / EPOCH_SECS
}

/// Seconds since the Unix epoch now; a clock set before 1970 counts as 0
/// (its knocks will then fail the window check, which the caller's error
/// message covers: "clocks more than 2 minutes apart").
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The HMAC key for knocking at one listener, derived from its certificate.
pub struct KnockKey(hmac::Key);

impl fmt::Debug for KnockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret in the strict sense (anyone with the certificate can
        // derive it), but there is no reason to print it.
        f.write_str("KnockKey(..)")
    }
}

/// Why a knock was not accepted. Both cases get the same treatment on the
/// wire (silence); the difference is only for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnockRefused {
    /// The tag matches no epoch in the window: garbage, another listener's
    /// certificate, or a clock more than 2 minutes off.
    BadTag,
    /// A valid knock whose nonce was already used.
    Replayed,
}

impl fmt::Display for KnockRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KnockRefused::BadTag => {
                "no valid knock (not a vchat caller, a caller that pinned another \
                 certificate for us, or a clock more than 2 minutes off)"
            }
            KnockRefused::Replayed => "replayed knock (its nonce was already used)",
        })
    }
}

impl std::error::Error for KnockRefused {}

impl KnockKey {
    /// The key for the listener whose certificate is `der` (its DER bytes).
    pub fn for_certificate(der: &[u8]) -> Self {
        KnockKey(hmac::Key::new(hmac::HMAC_SHA256, &key_bytes(der)))
    }

    /// The knock for `nonce` at `unix_secs`. Deterministic: use
    /// [`KnockKey::fresh`] to knock for real.
    pub fn knock(&self, nonce: &Nonce, unix_secs: u64) -> [u8; KNOCK_LEN] {
        let tag = self.tag(nonce, epoch_of(unix_secs));
        let mut out = [0u8; KNOCK_LEN];
        out[..NONCE_LEN].copy_from_slice(nonce);
        out[NONCE_LEN..].copy_from_slice(tag.as_ref());
        out
    }

    /// A knock with a fresh random nonce.
    pub fn fresh(
        &self,
        rng: &dyn SecureRandom,
        unix_secs: u64,
    ) -> Result<[u8; KNOCK_LEN], ring::error::Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        Ok(self.knock(&nonce, unix_secs))
    }

    /// Checks the tag against every epoch within [`EPOCH_TOLERANCE`] of
    /// `unix_secs`, in constant time per comparison; returns the nonce.
    /// Does not look at replays: see [`KnockGate`].
    pub fn verify(&self, knock: &[u8; KNOCK_LEN], unix_secs: u64) -> Result<Nonce, KnockRefused> {
        let (nonce, tag) = knock.split_at(NONCE_LEN);
        let mut message = [0u8; NONCE_LEN + 8];
        message[..NONCE_LEN].copy_from_slice(nonce);
        let now = epoch_of(unix_secs);
        let first = now.saturating_sub(EPOCH_TOLERANCE);
        let last = now.saturating_add(EPOCH_TOLERANCE);
        // Every candidate is tried even after a match would have been found,
        // so the time taken does not say which epoch (if any) matched.
        let mut ok = false;
        for epoch in first..=last {
            message[NONCE_LEN..].copy_from_slice(&epoch.to_be_bytes());
            ok |= hmac::verify(&self.0, &message, tag).is_ok();
        }
        if !ok {
            return Err(KnockRefused::BadTag);
        }
        let mut out = [0u8; NONCE_LEN];
        out.copy_from_slice(nonce);
        Ok(out)
    }

    fn tag(&self, nonce: &Nonce, epoch: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(nonce);
        ctx.update(&epoch.to_be_bytes());
        ctx.sign()
    }
}

/// Nonces of accepted knocks, oldest first, bounded: the oldest is forgotten
/// when a new one would exceed the capacity.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashSet<Nonce>,
    order: VecDeque<Nonce>,
    capacity: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` nonces (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ReplayCache {
            seen: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records `nonce`; false if it was already there (a replay).
    pub fn insert(&mut self, nonce: Nonce) -> bool {
        if self.seen.contains(&nonce) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(nonce);
        self.order.push_back(nonce);
        true
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered yet.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The listener's check: a valid tag within the window and a nonce not seen
/// before. A nonce is remembered only once its tag verified, so strangers
/// cannot fill the cache.
#[derive(Debug)]
pub struct KnockGate {
    key: KnockKey,
    replays: std::sync::Mutex<ReplayCache>,
}

impl KnockGate {
    /// The gate of the listener whose certificate is `der`.
    pub fn new(der: &[u8], replay_capacity: usize) -> Self {
        KnockGate {
            key: KnockKey::for_certificate(der),
            replays: std::sync::Mutex::new(ReplayCache::new(replay_capacity)),
        }
    }

    /// Accepts `knock` at `unix_secs` or says why not.
    pub fn admit(&self, knock: &[u8; KNOCK_LEN], unix_secs: u64) -> Result<(), KnockRefused> {
        let nonce = self.key.verify(knock, unix_secs)?;
        // A poisoned lock only means another connection's task panicked
        // mid-insert; the cache itself is still a valid set.
        let mut replays = self
            .replays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if replays.insert(nonce) {
            Ok(())
        } else {
            Err(KnockRefused::Replayed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md section 2's test vector (a throwaway Ed25519 certificate
    /// whose key was discarded); `tests/net_knock_vector.rs` checks that the
    /// document shows these same values.
    const VECTOR_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBOTCB7KADAgECAgEBMAUGAytlcDAcMRowGAYDVQQDDBFLbm9jayBUZXN0IFZl
Y3RvcjAeFw0yNjEyMDEwMjA3NDdaFw00NjExMjYwMjA3NDdaMBwxGjAYBgNVBAMM
EUtub2NrIFRlc3QgVmVjdG9yMCowBQYDK2VwAyEAP4zhU6PNOztktgBrnvXS9POH
bDFUED42nXplpo3W0y6jUzBRMB0GA1UdDgQWBBQHmET1m7yYNFcQUnzv2WR8Jxb/
ejAfBgNVHSMEGDAWgBQHmET1m7yYNFcQUnzv2WR8Jxb/ejAPBgNVHRMBAf8EBTAD
AQH/MAUGAytlcANBAKW8bLxR32q7HLqfKSO3IB0pKhyO83XKq/xl7Q30p0+PAPlI
bjh1qB5SY58vnOZxU9fPPwl0CHoM0Lfp5+b+0gE=
-----END CERTIFICATE-----
";
    const VECTOR_NONCE: Nonce = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ];
    const VECTOR_TIME: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const EXPECTED_K: &str = "61465d7116c41fd1dc891c9428db3b22ba49288a9bde3c9125174eb62330c37c";
    const EXPECTED_KNOCK: &str = concat!(
        "000102030405060708090a0b0c0d0e0f",
        "0335e4288b5d46cbd8c8ade43ffbaca2b0179b2b07f0e9cf746fe9d045e04458"
    );

    fn vector_cert() -> Vec<u8> {
        pem::parse(VECTOR_CERT_PEM).unwrap().into_contents()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn key() -> KnockKey {
        KnockKey::for_certificate(b"listener certificate")
    }

    #[test]
    fn a_knock_is_nonce_then_tag_and_verifies() {
        let nonce = [7u8; NONCE_LEN];
        let knock = key().knock(&nonce, VECTOR_TIME);
        assert_eq!(&knock[..NONCE_LEN], &nonce);
        assert_eq!(key().verify(&knock, VECTOR_TIME), Ok(nonce));
    }

    #[test]
    fn key_and_tag_follow_the_formula() {
        // Recompute K and the tag from the primitives, independently of the
        // module's helpers, exactly as PROTOCOL.md writes them.
        let cert = vector_cert();
        let mut input = b"vchat knock v2".to_vec();
        input.extend_from_slice(&cert);
        let k = digest::digest(&digest::SHA256, &input);
        assert_eq!(key_bytes(&cert), k.as_ref());
        let mut msg = VECTOR_NONCE.to_vec();
        msg.extend_from_slice(&(VECTOR_TIME / 30).to_be_bytes());
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()), &msg);
        let knock = KnockKey::for_certificate(&cert).knock(&VECTOR_NONCE, VECTOR_TIME);
        assert_eq!(&knock[NONCE_LEN..], tag.as_ref());
    }

    #[test]
    fn protocol_test_vector() {
        let cert = vector_cert();
        assert_eq!(cert.len(), 317);
        assert_eq!(epoch_of(VECTOR_TIME), 58_907_520);
        assert_eq!(hex(&key_bytes(&cert)), EXPECTED_K);
        let knock = KnockKey::for_certificate(&cert).knock(&VECTOR_NONCE, VECTOR_TIME);
        assert_eq!(hex(&knock), EXPECTED_KNOCK);
    }

    #[test]
    fn window_edges_are_exactly_four_epochs_each_side() {
        let k = key();
        let nonce = [1u8; NONCE_LEN];
        // Listener at the start of epoch E; knocks made in E-4 and E+4 pass,
        // E-5 and E+5 fail.
        let listener_now = 1000 * EPOCH_SECS;
        for (offset, ok) in [(-5i64, false), (-4, true), (0, true), (4, true), (5, false)] {
            let made_at = (listener_now as i64 + offset * EPOCH_SECS as i64) as u64;
            let knock = k.knock(&nonce, made_at);
            assert_eq!(
                k.verify(&knock, listener_now).is_ok(),
                ok,
                "knock made {offset} epochs from the listener's"
            );
        }
        // The edges inside an epoch: the last second of E+4 still passes,
        // the first of E+5 does not.
        let last_ok = listener_now + 5 * EPOCH_SECS - 1;
        assert!(k.verify(&k.knock(&nonce, last_ok), listener_now).is_ok());
        assert!(k
            .verify(&k.knock(&nonce, last_ok + 1), listener_now)
            .is_err());
    }

    #[test]
    fn window_near_time_zero_does_not_underflow() {
        let k = key();
        let knock = k.knock(&[2u8; NONCE_LEN], 0);
        assert!(k.verify(&knock, 0).is_ok());
        assert!(k.verify(&knock, 4 * EPOCH_SECS).is_ok());
        assert!(k.verify(&knock, 5 * EPOCH_SECS).is_err());
    }

    #[test]
    fn wrong_key_or_any_flipped_bit_is_refused() {
        let nonce = [3u8; NONCE_LEN];
        let knock = key().knock(&nonce, VECTOR_TIME);
        let other = KnockKey::for_certificate(b"another certificate");
        assert_eq!(other.verify(&knock, VECTOR_TIME), Err(KnockRefused::BadTag));
        for i in 0..KNOCK_LEN {
            let mut bad = knock;
            bad[i] ^= 0x01;
            assert_eq!(
                key().verify(&bad, VECTOR_TIME),
                Err(KnockRefused::BadTag),
                "byte {i}"
            );
        }
        assert_eq!(
            key().verify(&[0u8; KNOCK_LEN], VECTOR_TIME),
            Err(KnockRefused::BadTag)
        );
    }

    #[test]
    fn the_gate_refuses_a_replay_but_not_a_fresh_nonce() {
        let gate = KnockGate::new(b"listener certificate", 8);
        let knock = key().knock(&[4u8; NONCE_LEN], VECTOR_TIME);
        assert_eq!(gate.admit(&knock, VECTOR_TIME), Ok(()));
        assert_eq!(gate.admit(&knock, VECTOR_TIME), Err(KnockRefused::Replayed));
        // Even a minute later, inside the window.
        assert_eq!(
            gate.admit(&knock, VECTOR_TIME + 60),
            Err(KnockRefused::Replayed)
        );
        let fresh = key().knock(&[5u8; NONCE_LEN], VECTOR_TIME);
        assert_eq!(gate.admit(&fresh, VECTOR_TIME), Ok(()));
    }

    #[test]
    fn invalid_knocks_do_not_enter_the_replay_cache() {
        let gate = KnockGate::new(b"listener certificate", 8);
        let stranger = KnockKey::for_certificate(b"another certificate");
        for i in 0..100u8 {
            let knock = stranger.knock(&[i; NONCE_LEN], VECTOR_TIME);
            assert_eq!(gate.admit(&knock, VECTOR_TIME), Err(KnockRefused::BadTag));
        }
        assert!(gate.replays.lock().unwrap().is_empty());
    }

    #[test]
    fn the_replay_cache_is_bounded_and_forgets_the_oldest() {
        let mut cache = ReplayCache::new(3);
        for i in 0..3u8 {
            assert!(cache.insert([i; NONCE_LEN]));
        }
        assert!(!cache.insert([0; NONCE_LEN]));
        assert!(cache.insert([9; NONCE_LEN]));
        assert_eq!(cache.len(), 3);
        // 0 was the oldest and is forgotten; 1 and 2 and 9 are remembered.
        assert!(!cache.insert([9; NONCE_LEN]));
        assert!(!cache.insert([2; NONCE_LEN]));
        assert!(cache.insert([0; NONCE_LEN]));
    }

    #[test]
    fn fresh_knocks_have_distinct_random_nonces() {
        let rng = ring::rand::SystemRandom::new();
        let a = key().fresh(&rng, VECTOR_TIME).unwrap();
        let b = key().fresh(&rng, VECTOR_TIME).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert!(key().verify(&a, VECTOR_TIME).is_ok());
    }
}
