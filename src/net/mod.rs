//! The pinned mutual-TLS 1.3 channel between two vchat peers.
