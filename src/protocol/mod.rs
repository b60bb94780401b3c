//! The wire protocol: length-prefixed CBOR messages (see PROTOCOL.md).
