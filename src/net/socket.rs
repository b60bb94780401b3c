//! The options every call socket gets, on both sides, before the knock:
//! what keeps a call's latency bounded by the link rather than by the
//! kernel's send buffer.
//!
//! Why: the call hands video to the link through a newest-frame slot, so a
//! slow link should cost frames, not delay. But a socket takes whatever fits
//! in its send buffer, which Linux autotunes up to megabytes: on a 2 Mbit/s
//! link that is seconds of video queued behind the frame being written, and
//! the slot never gets to drop anything. With `TCP_NOTSENT_LOWAT` the
//! socket only takes more once its not-yet-sent bytes fall below the mark,
//! so the writer waits at the socket and the slot keeps only the newest
//! frame while it waits (issue 13; the measured difference is in
//! BENCHMARKS.md).

use tokio::net::TcpStream;
use tracing::debug;

/// Bytes not yet sent that a call socket may hold: a few packets, enough to
/// keep the link busy between two writes (what is in flight is not
/// counted), small enough that a frame waits in vchat, not in the kernel.
/// 16 KiB is what the measurements used system-wide (latency p50
/// 954 ms -> 437 ms at 5 Mbit/s before any other change) and what HTTP/2
/// servers commonly use for the same reason.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Sets the call socket's options: no Nagle delay (frames and pings go out
/// at once) and, where the system has it, [`NOTSENT_LOWAT`]. A system
/// that refuses an option still gets a working call, only a slower one to
/// react, so refusals are logged, not fatal.
pub fn tune_for_calls(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!("cannot turn off Nagle's algorithm: {e}");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        debug!("cannot set TCP_NOTSENT_LOWAT: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn call_sockets_hold_few_unsent_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tune_for_calls(&tcp);
        assert!(tcp.nodelay().unwrap());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            socket2::SockRef::from(&tcp).tcp_notsent_lowat().unwrap(),
            NOTSENT_LOWAT
        );
    }
}
