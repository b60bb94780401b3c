//! The wire protocol: what the peers say once the pinned TLS channel is up.
//!
//! PROTOCOL.md at the crate root is the byte-exact specification; this
//! module implements it. Each message is a 4-byte big-endian length `N` and
//! one CBOR item of `N` bytes, the array `[type, body]` with a text `type` and
//! a `body` map with text keys.
//!
//! # Layout
//!
//! - [`Message`] and its parts (`message.rs`): plain data.
//! - `codec.rs`: pure encoding and decoding over `bytes` buffers, no I/O and
//!   no clocks: [`encode_frame`], [`decode_frame`], [`decode_message`].
//!   Video payloads are never copied through serde: they travel as
//!   [`bytes::Bytes`] slices of the caller's or the receive buffer.
//! - `limits.rs`: every limit, each with its reason ([`limits`]).
//! - `validate.rs`: [`check_message`] (stateless rules) and [`Session`] (who
//!   may send what when: handshake order, version, capabilities, increasing
//!   sequence numbers) and [`PingMeter`] (the ping flood limit).
//! - `inbox.rs`: the receive buffers, I/O-free: bytes wait there until
//!   they make a frame, and large frames are read into pooled buffers that
//!   are reused once the application drops the frames cut from them.
//! - `parts.rs`: [`FrameAssembler`], joining a frame sent in parts (version 4)
//!   back into one `video`, I/O-free.
//! - `connection.rs`: [`Connection`], owning the stream, the inbox and the
//!   session; [`Connection::into_split`] for a reading and a writing task.
//! - `error.rs`: [`ProtocolError`], and [`ProtocolError::bye`] to tell the
//!   peer what it did wrong.
//!
//! # A call
//!
//! ```text
//!  caller                                     listener
//!    │── hello ────────────────────────────────►│  the caller speaks first
//!    │◄──────────────────────────────── hello ──│  (or bye: busy, old version)
//!    │◄─────────────────────── accept / bye ────│  when the user picks up
//!    │◄══ video, ping/pong, camera (both ways) ═►│
//!    │── bye ──────────────────────────────────►│  either side, then close
//! ```
//!
//! The caller treats the call as connected only when Accept arrives: under
//! TLS 1.3 a listener that rejects the caller's certificate is noticed only on
//! the caller's first read.
//!
//! ```no_run
//! # async fn call(stream: tokio::io::DuplexStream) -> Result<(), vchat::protocol::ProtocolError> {
//! use vchat::protocol::{Connection, Hello, Message, PixelFormat, Receive, Role, PROTOCOL_VERSION};
//!
//! let mut conn = Connection::new(stream, Role::Caller);
//! conn.write_message(&Message::Hello(Hello {
//!     version: PROTOCOL_VERSION,
//!     software_name: "vchat".into(),
//!     software_version: env!("CARGO_PKG_VERSION").into(),
//!     display_name: "Ada".into(),
//!     receive: Receive { codecs: PixelFormat::ALL.to_vec(), max_width: 1920, max_height: 1080, audio: vec![] },
//! }))
//! .await?;
//! loop {
//!     match conn.read_message().await {
//!         Ok(Some(Message::Accept(_))) => break, // connected
//!         Ok(Some(Message::Bye(bye))) => {
//!             println!("refused: {}", bye.text);
//!             return Ok(());
//!         }
//!         Ok(Some(_)) => {}                      // the listener's hello, pings
//!         Ok(None) => return Ok(()),             // the listener hung up
//!         Err(e) if e.is_connection_lost() => return Err(e),
//!         Err(e) => return conn.close(e.bye()).await,
//!     }
//! }
//! let (reader, writer) = conn.into_split(); // one task each
//! # Ok(()) }
//! ```

mod cbor;
mod codec;
mod connection;
pub mod datagram;
mod error;
mod inbox;
pub use inbox::MAX_POOLED_BUFFERS;
pub mod limits;
mod message;
mod parts;
mod pixel_format;
mod validate;

pub use codec::{
    decode_frame, decode_message, encode, encode_frame, encode_head_into, frame_len, message_len,
    Decoded, EncodedFrame,
};
pub use connection::{Connection, MessageReader, MessageWriter};
pub use error::{bye_text, io_in_words, ProtocolError};
pub use limits::{MAX_MESSAGE_LEN, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
pub use message::{
    fit_size, Accept, Audio, AudioFormat, Bye, ByeReason, Hello, Message, Receive, Video, VideoPart,
};
pub use parts::FrameAssembler;
pub use pixel_format::{PixelFormat, UnknownPixelFormat};
pub use validate::{check_message, check_payload_len, PingMeter, Role, Session};
