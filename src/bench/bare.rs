//! The bare reference: what the machine's loopback mutual TLS can carry with
//! nothing of vchat on top.
//!
//! The same rustls configurations as a call (`net::tls`: TLS 1.3, ring, the
//! pinned verifiers, the same throwaway identities), the same TCP_NODELAY,
//! the same bytes: the payloads of the frames the vchat runs send
//! ([`super::frames::wire_payloads`]), cycled in the same order. The writer
//! sends each with one `write_all` and a flush, as the protocol writer does;
//! the reader fills one reused buffer with `read_exact`. No framing, no CBOR, no pixel work, no
//! slots or threads. vchat's raw throughput divided by this is how close the
//! pipeline comes to the limit set by encryption and the kernel.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::usage;
use super::Peers;
use crate::net::{tls, NetError, PinSet};

/// What the bare stream did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BareRun {
    pub frames: u64,
    /// Payload bytes sent, all frames.
    pub bytes: u64,
    pub elapsed: Duration,
    pub cpu: Option<Duration>,
}

impl BareRun {
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Errors of the reference run, which shares no code with a call past TLS.
#[derive(Debug, thiserror::Error)]
pub enum BareError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("bare TLS reference: {0}")]
    Io(#[from] io::Error),
    #[error("bare TLS reference: the reader task failed: {0}")]
    Task(String),
}

/// Sends `frames` frames, cycling through `payloads`, over a fresh loopback
/// mutual-TLS stream and times them from the first byte written to the last
/// byte read.
pub async fn run(peers: &Peers, payloads: &[Bytes], frames: u64) -> Result<BareRun, BareError> {
    if payloads.is_empty() {
        return Err(BareError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no payloads to send",
        )));
    }
    let lens: Vec<usize> = payloads.iter().map(Bytes::len).collect();
    let largest = lens.iter().copied().max().unwrap_or(0);
    let bytes = (0..frames)
        .map(|i| lens[i as usize % lens.len()] as u64)
        .sum();
    let server = tls::server_config(&peers.receiver, PinSet::new(vec![peers.sender_pin()]))?;
    let client = tls::client_config(&peers.sender, PinSet::new(vec![peers.receiver_pin()]))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let accept = async {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        TlsAcceptor::from(server).accept(tcp).await
    };
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(tls::SERVER_NAME)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(client).connect(name, tcp).await
    };
    let (mut reading, mut writing) = tokio::try_join!(accept, connect)?;

    let cpu_before = usage::cpu_time();
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let mut buffer = vec![0u8; largest];
        for i in 0..frames {
            let len = lens[i as usize % lens.len()];
            reading.read_exact(&mut buffer[..len]).await?;
        }
        Ok::<_, io::Error>(started.elapsed())
    });
    for i in 0..frames {
        writing
            .write_all(&payloads[i as usize % payloads.len()])
            .await?;
        writing.flush().await?;
    }
    let elapsed = reader.await.map_err(|e| BareError::Task(e.to_string()))??;
    let cpu = usage::cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let _ = writing.shutdown().await;
    Ok(BareRun {
        frames,
        bytes,
        elapsed,
        cpu,
    })
}
