//! The pinned mutual-TLS channel in a few lines: Alice listens and pins Bob;
//! Bob connects (his `dial` knocks with Alice's certificate first) and they
//! exchange a greeting; Mallory, whom nobody pinned but who has Alice's
//! certificate, completes her half of the handshake but is refused on her
//! first read; a stranger without Alice's certificate gets no byte at all.
//!
//! Run with `cargo run --example pinned_channel`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vchat::identity::{Identity, PinnedPeer};
use vchat::net::{classify, dial, Listener, ListenerOptions, PinSet};

fn pin(identity: &Identity, name: &str) -> PinnedPeer {
    PinnedPeer {
        name: name.into(),
        certificate: identity.certificate().clone(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let alice = Identity::generate("Alice")?;
    let bob = Identity::generate("Bob")?;
    let mallory = Identity::generate("Mallory")?;
    for who in [&alice, &bob, &mallory] {
        let cert = who.certificate();
        println!("{:8} {}", cert.name(), cert.fingerprint().short());
    }

    let pins = PinSet::new(vec![pin(&bob, "bob")]);
    let mut listener =
        Listener::bind("127.0.0.1:0", &alice, pins, ListenerOptions::default()).await?;
    let addr = listener.local_addr().to_string();
    let timeout = Duration::from_secs(5);

    let alice_pin = pin(&alice, "alice");
    let (caller, accepted) =
        tokio::join!(dial(&addr, &bob, &alice_pin, timeout), listener.accept());
    let mut caller = caller?;
    let mut accepted = accepted.ok_or_else(|| anyhow::anyhow!("listener stopped"))?;
    caller.stream.write_all(b"hello from bob").await?;
    let mut greeting = [0u8; 14];
    accepted.stream.read_exact(&mut greeting).await?;
    println!(
        "alice accepted {:?} and read {:?}",
        accepted.peer.name,
        String::from_utf8_lossy(&greeting)
    );

    let mut impostor = dial(&addr, &mallory, &alice_pin, timeout).await?;
    let mut byte = [0u8; 1];
    match impostor.stream.read(&mut byte).await {
        Err(e) => println!("mallory refused: {}", classify(impostor.remote, e)),
        Ok(n) => println!("unexpected: mallory read {n} bytes"),
    }

    // A stranger (no knock) sends a request and reads until the listener
    // closes, 4-11 s later: nothing comes back.
    let mut stranger = TcpStream::connect(&addr).await?;
    stranger.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
    let mut reply = Vec::new();
    let _ = stranger.read_to_end(&mut reply).await;
    println!("a stranger received {} bytes", reply.len());
    Ok(())
}
