//! Identities: the local certificate and key, trusted peers, fingerprints.
