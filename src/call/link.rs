//! The link: the two tasks that own the TLS stream's halves during a call.
//!
//! Why two tasks and queues by priority: a large video frame can take a long
//! time to write on a slow link, and a pong or a bye must not wait behind a
//! backlog of frames. The writer owns the write half and, each time it is
//! free, takes the most urgent thing waiting: control messages (bye, camera,
//! ping) first, then the newest pong, then our voice (a queue: every packet
//! counts), then the newest video frame, a large one in parts of about
//! 20 ms of the link so voice goes between them (see [`write_loop`]). The
//! reader owns the read half: video goes straight to the incoming slot, every
//! other message goes to the call's state machine through [`Core`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::pipeline::{Core, Shared, BYE_TIMEOUT};
use super::rate::{LinkReading, SAMPLE_INTERVAL};
use super::state::Event;
use super::stats::{unix_micros, Counters};
use super::CallError;
use crate::protocol::limits::VIDEO_PARTS_VERSION;
use crate::protocol::{
    Connection, FrameAssembler, Message, MessageReader, MessageWriter, ProtocolError, Video,
    VideoPart,
};

/// Told the number of each of our frames as the link takes it to send: how
/// `vchat bench` paces an unpaced source by the link (one frame waits while
/// the one before it is written), where a camera is paced by its clock.
pub type VideoTakenHook = Arc<dyn Fn(u64) + Send + Sync>;

/// How many times per peer timeout the reader looks whether bytes arrived:
/// a peer is gone only after a whole timeout without a single byte.
const LIVENESS_CHECKS_PER_TIMEOUT: u32 = 5;

/// Writes control messages first, then the newest pong, then voice, then
/// the newest video frame, until `token` (this link's: cancelled with the call, or
/// when the link is dropped for a new one) is cancelled or a bye is written. A write
/// that fails for a reason the peer should hear about (not a lost
/// connection) is followed by our bye, sent from here because this task owns
/// the writing half.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: MessageWriter<W>,
    mut control: UnboundedReceiver<Message>,
    shared: Arc<Shared>,
    max_frames: Option<u64>,
    peer_timeout: Duration,
    token: CancellationToken,
    done: impl FnOnce(Result<(), CallError>),
) {
    // Frames go in parts only to a peer that speaks version 4.
    let parts = writer
        .session()
        .version()
        .is_some_and(|v| v >= VIDEO_PARTS_VERSION);
    // The frame going out in parts, and how far it has gone.
    let mut in_parts: Option<(u64, Bytes, usize)> = None;
    // The newest voice packet written: the stream's must go in order.
    let mut last_audio: Option<u64> = None;
    let result = async {
        loop {
            let message = tokio::select! {
                biased;
                () = token.cancelled() => return Ok(()),
                () = shared.close_quietly.notified() => {
                    return timed(peer_timeout.min(BYE_TIMEOUT), writer.shutdown()).await;
                }
                Some(message) = control.recv() => message,
                nonce = shared.pong.take() => match nonce {
                    // Stamped now, not when the ping came: the peer's
                    // clock estimate (call/clock.rs) needs the moment it left.
                    Some(nonce) => Message::Pong {
                        nonce,
                        time_us: Some(unix_micros(SystemTime::now())),
                    },
                    None => return Ok(()),
                },
                // Voice before video: late voice breaks a conversation,
                // a late picture only freezes. While the UDP path works,
                // voice goes there instead (call/voice_path.rs); when it
                // stops or comes back, the loop looks again.
                () = shared.voice.path_changed.notified() => continue,
                // A copy is the same packet as one that went by datagram:
                // not counted again, and skipped if the stream has
                // passed it (the stream's packets must keep their order).
                audio = shared.voice.stream_copies.take() => match audio {
                    Some(a) if last_audio.is_some_and(|last| a.seq <= last) => continue,
                    Some(a) if older_than(a.capture_time_us, shared.max_latency) => continue,
                    Some(a) => {
                        last_audio = Some(a.seq);
                        Counters::add(&shared.voice.stream_copies_sent, 1);
                        Message::Audio(a)
                    }
                    None => return Ok(()),
                },
                audio = shared.voice.queue.take(), if !shared.voice.path_up() => match audio {
                    Some(a) => {
                        if older_than(a.capture_time_us, shared.max_latency) {
                            Counters::add(&shared.voice.dropped_out, 1);
                            continue;
                        }
                        if last_audio.is_some_and(|last| a.seq <= last) {
                            continue;
                        }
                        last_audio = Some(a.seq);
                        Counters::add(&shared.voice.packets_sent, 1);
                        Counters::add(&shared.voice.bytes_sent, a.payload.len() as u64);
                        Message::Audio(a)
                    }
                    None => return Ok(()),
                },
                // The rest of a frame in parts, before any new frame.
                () = std::future::ready(()), if in_parts.is_some() => {
                    let Some((seq, payload, sent)) = in_parts.take() else {
                        continue;
                    };
                    let end = (sent + part_size(&shared)).min(payload.len());
                    if end < payload.len() {
                        in_parts = Some((seq, payload.clone(), end));
                    }
                    Counters::add(&shared.counters.bytes_sent, (end - sent) as u64);
                    Message::VideoPart(VideoPart {
                        seq,
                        payload: payload.slice(sent..end),
                    })
                }
                video = shared.outgoing.take(), if in_parts.is_none() => match video {
                    Some(v) => {
                        if let Some(hook) = &shared.on_video_taken {
                            hook(v.seq);
                        }
                        // Waited too long for the socket: the link carries
                        // less than we send (the rate control hears it).
                        if older_than(v.capture_time_us, shared.max_latency) {
                            Counters::add(&shared.counters.late_for_link, 1);
                            // A picture of its own: a newer one will come,
                            // this one would only arrive late. But the
                            // frames after an inter-coded one stand on it:
                            // dropped, it would cost a keyframe, many times
                            // its size, on the link that is already too
                            // slow (and the keyframe's own wait made the
                            // next frame late, and so on: CI once saw 5 fps
                            // that way). It goes, late, and the media thread
                            // skips pictures until the link has room.
                            if !v.format.is_inter_coded() {
                                Counters::add(&shared.counters.too_late, 1);
                                continue;
                            }
                        }
                        let part = part_size(&shared);
                        if parts && v.payload.len() > part {
                            // Voice and control go between the parts.
                            let first = v.payload.slice(..part);
                            in_parts = Some((v.seq, v.payload.clone(), part));
                            Message::Video(Video {
                                total_len: Some(v.payload.len()),
                                payload: first,
                                ..v
                            })
                        } else {
                            Message::Video(v)
                        }
                    }
                    None => return Ok(()),
                },
            };
            if let Message::Bye(bye) = message {
                debug!("sending bye: {}", bye.text);
                return timed(peer_timeout, writer.close(bye)).await;
            }
            let video_len = match &message {
                Message::Video(v) => {
                    let size = u64::from(v.width) << 32 | u64::from(v.height);
                    shared.counters.size_out.store(size, Ordering::Relaxed);
                    Some(v.payload.len() as u64)
                }
                _ => None,
            };
            if let Err(e) = timed(peer_timeout, writer.write_message(&message)).await {
                // Only a message refused before any byte of it was written
                // leaves the stream fit to carry a bye; a timed-out write
                // stopped mid-frame.
                if let (CallError::Protocol(_), Some(bye)) = (&e, e.bye()) {
                    let _ = timed(peer_timeout.min(BYE_TIMEOUT), writer.close(bye)).await;
                }
                return Err(e);
            }
            if let Some(len) = video_len {
                Counters::add(&shared.counters.bytes_sent, len);
                let sent = shared.counters.frames_sent.fetch_add(1, Ordering::Relaxed) + 1;
                if max_frames.is_some_and(|max| sent == max) {
                    shared.frames_reached.notify_one();
                }
            }
        }
    }
    .await;
    done(result);
}

/// Whether a frame captured at `capture_time_us` (Unix µs, our clock) is
/// older than `budget` now.
/// The size of one part of a frame sent in parts: what the link carries in
/// [`PART_TIME`] (so voice waits at most that long behind video), within
/// 4 to 64 KiB; 16 KiB before the link's rate is known.
fn part_size(shared: &Shared) -> usize {
    let rate = Counters::get(&shared.counters.acked_rate);
    if rate == 0 {
        return 16 * 1024;
    }
    let bytes = rate as f64 / 8.0 * PART_TIME.as_secs_f64();
    (bytes as usize).clamp(4 * 1024, 64 * 1024)
}

/// How long one part of a frame holds the link at its current rate.
const PART_TIME: Duration = Duration::from_millis(20);

pub(super) fn older_than(capture_time_us: u64, budget: Duration) -> bool {
    let now = unix_micros(SystemTime::now());
    Duration::from_micros(now.saturating_sub(capture_time_us)) > budget
}

/// A write that the peer does not take within `limit` means the peer stopped
/// reading: treat it like a vanished peer rather than hang.
async fn timed(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), ProtocolError>>,
) -> Result<(), CallError> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_connection_lost() => Err(CallError::ConnectionLost(e.to_string())),
        Ok(Err(e)) => Err(CallError::Protocol(e)),
        Err(_) => Err(CallError::PeerVanished(limit)),
    }
}

/// Reads until `token` (this link's) is cancelled or the link ends, telling the state
/// machine what arrived. After the peer's bye or its protocol error it reads
/// on to the peer's close, discarding (bounded): closing with its bytes
/// unread would reset the connection, which can destroy our last words
/// before the peer reads them.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: MessageReader<R>,
    core: Arc<Core>,
    peer_timeout: Duration,
    token: CancellationToken,
    link: u64,
) {
    let discard = tokio::select! {
        discard = read_messages(&mut reader, &core, peer_timeout, link) => discard,
        () = token.cancelled() => false,
    };
    if discard {
        tokio::select! {
            _ = tokio::time::timeout(BYE_TIMEOUT, reader.discard_until_closed()) => {}
            () = token.cancelled() => {}
        }
    }
}

/// The reading itself; true when the peer's close is still to be awaited.
async fn read_messages<R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
    core: &Core,
    peer_timeout: Duration,
    link: u64,
) -> bool {
    // Events go to the machine only while this is the call's link: a link
    // dropped for a new one must not report its death as the new one's.
    let handle = |event| core.handle_link(link, event);
    let shared = &core.shared;
    let check_every = peer_timeout / LIVENESS_CHECKS_PER_TIMEOUT;
    let mut heard = reader.bytes_received();
    // The session has checked each part's seq and length against what is
    // left of the open frame.
    let mut assembler = FrameAssembler::new();
    loop {
        // Liveness counts bytes, not whole messages: a large frame on a slow
        // link may take longer than the timeout to arrive in full. The state
        // machine decides when silence means the peer is gone.
        let message = match tokio::time::timeout(check_every, reader.read_message()).await {
            Err(_) => {
                if reader.bytes_received() != heard {
                    heard = reader.bytes_received();
                    handle(Event::Heard);
                }
                continue;
            }
            Ok(Ok(Some(message))) => {
                heard = reader.bytes_received();
                message
            }
            Ok(Ok(None)) => {
                let why = "the peer closed the connection without saying bye";
                handle(Event::LinkLost(why.into()));
                return false;
            }
            Ok(Err(e)) if e.is_connection_lost() => {
                handle(Event::LinkLost(e.to_string()));
                return false;
            }
            Ok(Err(e)) => {
                handle(Event::Failed(CallError::Protocol(e)));
                return true;
            }
        };
        // A frame in parts comes out whole, once its last part is in.
        let Some(message) = assembler.feed(message) else {
            handle(Event::Heard);
            continue;
        };
        match message {
            Message::Video(video) => {
                Counters::add(&shared.counters.frames_received, 1);
                Counters::add(&shared.counters.bytes_received, video.payload.len() as u64);
                // An inter-coded frame must not replace one the decoder has
                // not taken (the frames after it would be garbage until the
                // next keyframe): wait, and let TCP slow the sender instead.
                if video.format.is_inter_coded() {
                    shared.incoming.wait_empty().await;
                }
                shared.incoming.put((video, std::time::Instant::now()));
                handle(Event::Heard);
            }
            Message::Audio(audio) => {
                // A second copy (it came by datagram first) is dropped.
                let _ = shared.voice.receive(audio);
                handle(Event::Heard);
            }
            Message::Bye(bye) => {
                handle(Event::Received(Message::Bye(bye)));
                return true;
            }
            other => handle(Event::Received(other)),
        }
    }
}

/// A second handle on the TCP socket under `connection`, for reading
/// TCP_INFO while the link's tasks own the stream; `None` when the stream
/// is not TLS over TCP (the in-memory streams of tests).
///
/// The handle is a duplicate descriptor: it must not outlive the link, or
/// the socket would stay open after the link closed it. [`sample_loop`]
/// drops it when the link's token is cancelled.
pub(super) fn kernel_probe<S: 'static>(connection: &Connection<S>) -> Option<socket2::Socket> {
    let stream: &dyn std::any::Any = connection.get_ref();
    let tls = stream.downcast_ref::<tokio_rustls::TlsStream<tokio::net::TcpStream>>()?;
    socket2::SockRef::from(tls.get_ref().0).try_clone().ok()
}

/// Every [`SAMPLE_INTERVAL`], reads what the kernel knows about the link
/// into the call's stats (RTT, delivery rate) and its rate control (the
/// encoder's target bitrate), until the link's token is cancelled.
pub(super) async fn sample_loop(
    probe: socket2::Socket,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    let start = {
        let mut rate = shared.rate();
        rate.new_link();
        rate.pacing_rate()
    };
    let mut paced = None;
    let mut pace = |bits_per_second: u64| {
        let rate = u32::try_from(bits_per_second / 8).unwrap_or(u32::MAX);
        if shared.pace_video && paced != Some(rate) {
            match vchat_ffi::set_max_pacing_rate(&probe, rate) {
                Ok(()) => paced = Some(rate),
                Err(e) => debug!("cannot pace the call's socket: {e}"),
            }
        }
    };
    // From the first frame: a link starts with a keyframe.
    pace(start);
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Ok(info) = vchat_ffi::tcp_info(&probe) else {
            return;
        };
        let counters = &shared.counters;
        let reading = LinkReading {
            at: Instant::now(),
            rtt: info.rtt,
            min_rtt: info.min_rtt,
            delivery_rate: info.delivery_rate,
            app_limited: info.delivery_rate_app_limited,
            notsent_bytes: info.notsent_bytes.unwrap_or(0),
            bytes_acked: info.bytes_acked,
            pictures_skipped: Counters::get(&counters.link_busy),
            pictures_encoded: Counters::get(&counters.frames_sent),
            bytes_sent: Counters::get(&counters.bytes_sent),
            keyframes_sent: Counters::get(&counters.keyframes_sent),
            pictures_rate_skipped: Counters::get(&counters.rate_skipped),
            pictures_late: Counters::get(&counters.late_for_link),
        };
        let micros = |d: Duration| d.as_micros().min(u128::from(u64::MAX)) as u64;
        let (target, state, pacing, acked, content_limited, starting, link_rate) = {
            let mut rate = shared.rate();
            (
                rate.update(reading),
                rate.state(),
                rate.pacing_rate(),
                rate.acked_rate(),
                rate.content_limited(),
                rate.starting(),
                rate.link_rate(),
            )
        };
        // For a lab run's timeline (RUST_LOG=vchat::call::link=trace).
        tracing::trace!(
            rtt_us = micros(info.rtt),
            cwnd = info.congestion_window,
            unacked = info.unacked,
            notsent = reading.notsent_bytes,
            delivery_rate = info.delivery_rate.unwrap_or(0),
            app_limited = info.delivery_rate_app_limited,
            retransmits = info.total_retransmits,
            acked_bits = acked.unwrap_or(0),
            target,
            ?state,
            pacing,
            link_rate = link_rate.unwrap_or(0),
            video_bytes = reading.bytes_sent,
            "link sample"
        );
        shared.rate_starting.store(starting, Ordering::Relaxed);
        shared
            .content_limited
            .store(content_limited, Ordering::Relaxed);
        counters
            .kernel_rtt_us
            .store(micros(info.rtt).max(1), Ordering::Relaxed);
        counters
            .acked_rate
            .store(acked.unwrap_or(0), Ordering::Relaxed);
        shared
            .rate_target
            .store(u64::from(target), Ordering::Relaxed);
        pace(pacing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_late_only_past_the_budget() {
        let now = unix_micros(SystemTime::now());
        let budget = Duration::from_millis(400);
        assert!(older_than(now - 500_000, budget));
        assert!(!older_than(now - 100_000, budget));
        // A capture time from a clock ahead of ours is not late.
        assert!(!older_than(now + 1_000_000, budget));
    }
}
