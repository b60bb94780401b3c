//! `Connection`: the protocol over a byte stream (in vchat, the TLS stream).
//!
//! It owns the stream, the receive buffers ([`Inbox`]) and the [`Session`]
//! state. Reading fills the inbox until the codec finds a whole frame; writing sends a
//! frame's small head and then the payload straight from its `Bytes`. Every
//! message, in and out, passes the session's checks, so a peer that breaks
//! the protocol surfaces as a [`ProtocolError`] whose [`ProtocolError::bye`]
//! names the problem.
//!
//! A call sends and receives video at once, and a peer blocked writing a
//! large frame stops reading: one task doing both could deadlock against a
//! peer doing the same. So after the handshake, [`Connection::into_split`]
//! gives a [`MessageReader`] and a [`MessageWriter`] for two tasks, sharing
//! the session.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::codec::{encode_head_into, Decoded};
use super::inbox::Inbox;
use super::{Bye, Message, ProtocolError, Role, Session};

/// Bytes read at a time by [`Connection::discard_until_closed`].
const DISCARD_CHUNK: usize = 4096;

/// Room for any message's head (a hello is the largest, well under 1 KiB);
/// the buffer grows if ever needed.
const HEAD_CAPACITY: usize = 1024;

/// The protocol over one stream: read and write whole, checked messages.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    inbox: Inbox,
    head: BytesMut,
    session: Session,
}

impl<S> Connection<S> {
    /// Starts the protocol on `stream` (right after the TLS handshake).
    pub fn new(stream: S, role: Role) -> Self {
        Connection {
            stream,
            inbox: Inbox::default(),
            head: BytesMut::with_capacity(HEAD_CAPACITY),
            session: Session::new(role),
        }
    }

    /// The call's protocol state (peer's Hello, version, whether connected).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The stream, e.g. to ask the TLS layer for the peer's certificate.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Reads the next message. Returns `Ok(None)` when the peer closed the
    /// stream cleanly between messages, and
    /// [`ProtocolError::Truncated`] when it closed mid-message. Messages of
    /// unknown types are skipped (and counted in the session).
    ///
    /// Cancel-safe: if the future is dropped before it completes, no message
    /// is lost; bytes read so far stay in the buffer.
    pub async fn read_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        read_message(&mut self.stream, &mut self.inbox, &mut self.session).await
    }

    /// Writes one message and flushes the stream, so it is on its way when
    /// this returns (video is latency-bound; frames are not batched).
    ///
    /// Not cancel-safe: dropping the future mid-write leaves a partial frame
    /// on the stream, after which the connection must be closed.
    pub async fn write_message(&mut self, message: &Message) -> Result<(), ProtocolError> {
        write_message(&mut self.stream, &mut self.head, message, &mut self.session).await
    }

    /// Sends `bye` and shuts down our sending side (the TLS close_notify).
    /// Read on until `Ok(None)` to see the peer's end, or drop the connection.
    pub async fn close(&mut self, bye: Bye) -> Result<(), ProtocolError> {
        self.write_message(&Message::Bye(bye)).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Reads and throws away whatever the peer still sends, through one
    /// small buffer and without parsing it, until it closes: for a
    /// connection we are refusing, whose messages we will never read but
    /// whose unread bytes would otherwise make our close a reset.
    pub async fn discard_until_closed(&mut self) -> Result<(), ProtocolError> {
        let mut sink = [0u8; DISCARD_CHUNK];
        while self.stream.read(&mut sink).await? > 0 {}
        Ok(())
    }

    /// Shuts down our sending side (TLS close_notify) without a bye: for
    /// when the peer already said bye, or the connection cannot carry one.
    pub async fn shutdown(&mut self) -> Result<(), ProtocolError> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Splits into a reader and a writer for two tasks. Bytes already
    /// buffered stay with the reader; both halves share the session.
    pub fn into_split(self) -> (MessageReader<ReadHalf<S>>, MessageWriter<WriteHalf<S>>) {
        let (read, write) = tokio::io::split(self.stream);
        let session = Arc::new(Mutex::new(self.session));
        (
            MessageReader {
                stream: read,
                inbox: self.inbox,
                session: Arc::clone(&session),
            },
            MessageWriter {
                stream: write,
                head: self.head,
                session,
            },
        )
    }
}

/// The receiving half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageReader<R> {
    stream: R,
    inbox: Inbox,
    session: Arc<Mutex<Session>>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// As [`Connection::read_message`] (cancel-safe).
    pub async fn read_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        read_message(&mut self.stream, &mut self.inbox, &*self.session).await
    }

    /// A copy of the shared session state.
    pub fn session(&self) -> Session {
        lock(&self.session).clone()
    }

    /// As [`Connection::discard_until_closed`]: after the peer's bye or a
    /// protocol error, read on to the peer's close without parsing, so our
    /// close is not a reset that could destroy our last words.
    pub async fn discard_until_closed(&mut self) -> Result<(), ProtocolError> {
        let mut sink = [0u8; DISCARD_CHUNK];
        while self.stream.read(&mut sink).await? > 0 {}
        Ok(())
    }

    /// Bytes read from the peer so far, whole messages or not.
    pub fn bytes_received(&self) -> u64 {
        self.inbox.received()
    }

    /// Large receive buffers allocated so far, and how many times a free one
    /// was reused instead (see `protocol/inbox.rs`).
    pub fn receive_buffer_counts(&self) -> (u64, u64) {
        self.inbox.pool_counts()
    }
}

/// The sending half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageWriter<W> {
    stream: W,
    /// Reused for every message's head, so a frame costs no allocation.
    head: BytesMut,
    session: Arc<Mutex<Session>>,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    /// As [`Connection::write_message`] (writes and flushes; not cancel-safe).
    pub async fn write_message(&mut self, message: &Message) -> Result<(), ProtocolError> {
        write_message(&mut self.stream, &mut self.head, message, &*self.session).await
    }

    /// As [`Connection::close`]: sends `bye`, then shuts down the sending side.
    pub async fn close(&mut self, bye: Bye) -> Result<(), ProtocolError> {
        self.write_message(&Message::Bye(bye)).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// A copy of the shared session state.
    pub fn session(&self) -> Session {
        lock(&self.session).clone()
    }

    /// Shuts down the sending side (TLS close_notify) without a bye: after
    /// the peer's bye, which is not answered with one.
    pub async fn shutdown(&mut self) -> Result<(), ProtocolError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Locks the shared session. A panic elsewhere while holding it cannot leave
/// it half-updated in a way that matters more than the panic itself.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the read and write loops find the session: owned by an unsplit
/// connection, shared behind a mutex by split halves (locked only between
/// awaits, never across one).
trait SessionAccess {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T;
}

impl SessionAccess for &mut Session {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(self)
    }
}

impl SessionAccess for &Mutex<Session> {
    fn with<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(&mut lock(self))
    }
}

async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    inbox: &mut Inbox,
    mut session: impl SessionAccess,
) -> Result<Option<Message>, ProtocolError> {
    loop {
        match inbox.next_frame()? {
            Some(Decoded::Message(message)) => {
                session.with(|s| s.on_receive(&message))?;
                return Ok(Some(message));
            }
            Some(Decoded::Unknown { kind }) => {
                tracing::debug!(kind, "ignoring a message of unknown type");
                session.with(|s| s.on_receive_unknown(&kind))?;
                continue;
            }
            None => {}
        }
        let n = stream.read_buf(&mut inbox.spare()).await?;
        inbox.count_received(n);
        if n == 0 {
            return match inbox.truncated() {
                None => Ok(None),
                Some(error) => Err(error),
            };
        }
    }
}

async fn write_message<W: AsyncWrite + Unpin>(
    stream: &mut W,
    head: &mut BytesMut,
    message: &Message,
    mut session: impl SessionAccess,
) -> Result<(), ProtocolError> {
    let payload = encode_head_into(message, head)?;
    session.with(|s| s.on_send(message))?;
    stream.write_all(head).await?;
    if !payload.is_empty() {
        stream.write_all(&payload).await?;
    }
    stream.flush().await?;
    Ok(())
}
