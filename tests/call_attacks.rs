//! Attacks on a running `vchat listen` by a peer it has pinned, and the
//! one edge of `vchat call` a script meets (its stdout closed): real vchat
//! processes on 127.0.0.1 with ephemeral ports, the attacker written here
//! with vchat's own library. Memory is read from the listener's
//! /proc/PID/status (VmHWM: the peak resident set), so a bound that does
//! not hold shows as a number in the failure.
//!
//! The attacks run for a bounded time and a bounded count, on loopback only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{paired_identities, spawn_caller, spawn_listener, vchat};
use tokio::io::AsyncWriteExt;
use vchat::identity::{peers, Identity};
use vchat::net::{dial, SecureStream, HANDSHAKE_TIMEOUT};
use vchat::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};
use vchat::protocol::{encode_frame, Connection, Message, PixelFormat, Role, Video};

const EXIT: Duration = Duration::from_secs(30);

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Dials the listener as the peer "b" of [`paired_identities`].
async fn dial_as_b(b_dir: &Path, addr: &str) -> SecureStream {
    let identity = Identity::load(b_dir).expect("b's identity");
    let listener = peers::load(b_dir, "a").expect("b pins a");
    dial(addr, &identity, &listener, HANDSHAKE_TIMEOUT)
        .await
        .expect("a pinned dial succeeds")
}

/// As the caller "b": TLS, then hello/accept; the connection is in the call.
async fn join_call(
    b_dir: &Path,
    addr: &str,
) -> Connection<tokio_rustls::TlsStream<tokio::net::TcpStream>> {
    let secure = dial_as_b(b_dir, addr).await;
    let mut conn = Connection::new(secure.stream, Role::Caller);
    let hello = vchat::call::handshake::local_hello("attacker");
    conn.write_message(&Message::Hello(hello)).await.unwrap();
    let Some(Message::Hello(_)) = conn.read_message().await.unwrap() else {
        panic!("no hello from the listener")
    };
    let Some(Message::Accept(_)) = conn.read_message().await.unwrap() else {
        panic!("no accept from the listener")
    };
    conn
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_ping_flood_from_a_peer_that_does_not_read_cannot_grow_the_listeners_memory() {
    let (a, b) = paired_identities();
    let (listener, addr) = spawn_listener(
        a.path(),
        &["--source", "test", "--size", "160x120", "--headless"],
        &[],
    );
    let pid = listener.child.id();
    let (before, after, pings, bye) = runtime().block_on(async {
        let conn = join_call(b.path(), &addr).await;
        let (mut reader, mut writer) = conn.into_split();
        let before = status_kib(pid, "VmRSS");
        // Ping as fast as the link takes it, for up to 3 s, reading nothing:
        // every ping asks for a pong. The listener may coalesce the pongs or
        // end the call over the flood (PROTOCOL.md 5.4); it must not queue.
        let started = Instant::now();
        let mut pings = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            let sent = tokio::time::timeout(
                Duration::from_millis(200),
                writer.write_message(&Message::Ping { nonce: pings }),
            )
            .await;
            match sent {
                Ok(Ok(())) => pings += 1,
                // The listener stopped reading us, or ended the call.
                Err(_) | Ok(Err(_)) => break,
            }
        }
        let after = status_kib(pid, "VmHWM");
        // What the listener said: read past the pongs and video to its bye.
        let bye = tokio::time::timeout(EXIT, async {
            loop {
                match reader.read_message().await {
                    Ok(Some(Message::Bye(bye))) => return Some(bye),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        (before, after, pings, bye)
    });
    let finished = listener.finish(EXIT);
    let grew = after.saturating_sub(before);
    eprintln!(
        "ping flood: {pings} pings sent; listener RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB); its bye: {bye:?}",
        mib(before),
        mib(after),
        mib(grew)
    );
    assert!(
        pings > 1000,
        "the flood was too small to prove anything: {pings}"
    );
    assert!(
        grew < 50 * 1024,
        "the listener grew by {:.1} MiB under a ping flood (limit 50 MiB)\n{}",
        mib(grew),
        finished.all_output()
    );
    let bye = bye.expect("the listener ends a flooded call with a bye");
    assert_eq!(
        bye.reason,
        vchat::protocol::ByeReason::ProtocolError,
        "{bye:?}"
    );
    assert!(bye.text.contains("ping"), "{bye:?}");
}

/// One video message of the largest size the protocol allows (a 4K RGB24
/// frame, 24.9 MB), as the bytes of a frame.
fn largest_frame(seq: u64) -> (Bytes, Bytes) {
    let len = PixelFormat::Rgb24.raw_len(MAX_WIDTH, MAX_HEIGHT).unwrap();
    let video = Video {
        seq,
        capture_time_us: 0,
        width: MAX_WIDTH,
        height: MAX_HEIGHT,
        format: PixelFormat::Rgb24,
        payload: Bytes::from(vec![0x80; len]),
        total_len: None,
    };
    let frame = encode_frame(&Message::Video(video)).unwrap();
    (frame.head, frame.payload)
}

#[test]
fn a_crowd_of_pinned_connections_during_a_call_costs_little_memory() {
    let (a, b) = paired_identities();
    let (listener, addr) = spawn_listener(
        a.path(),
        &["--source", "test", "--size", "160x120", "--headless"],
        &[],
    );
    let pid = listener.child.id();
    // The real call the crowd tries to disturb.
    let mut caller = spawn_caller(
        b.path(),
        &addr,
        &[
            "--source",
            "test",
            "--size",
            "160x120",
            "--headless",
            "--stats",
            "json",
        ],
        &[],
    );
    caller.wait_for("\"elapsed_s\"", EXIT);
    let hello = encode_frame(&Message::Hello(vchat::call::handshake::local_hello(
        "crowd",
    )))
    .unwrap();
    let (head, payload) = largest_frame(0);
    let before = status_kib(pid, "VmHWM");
    const CROWD: usize = 32;
    let refused = runtime().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CROWD {
            let (addr, dir) = (addr.clone(), b.path().to_owned());
            let (hello, head, payload) = (hello.clone(), head.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                let mut stream = dial_as_b(&dir, &addr).await.stream;
                // Whatever the listener does with them: it may close early.
                let _ = async {
                    stream.write_all(&hello.head).await?;
                    stream.write_all(&head).await?;
                    stream.write_all(&payload).await?;
                    stream.flush().await
                }
                .await;
                let mut conn = Connection::new(stream, Role::Caller);
                matches!(
                    conn.read_message().await,
                    Ok(Some(Message::Bye(bye))) if bye.reason == vchat::protocol::ByeReason::Busy
                )
            }));
        }
        let mut refused = 0;
        for task in tasks {
            if tokio::time::timeout(EXIT, task).await.unwrap().unwrap() {
                refused += 1;
            }
        }
        refused
    });
    let after = status_kib(pid, "VmHWM");
    // The call is still up: the caller goes on receiving, then hangs up.
    caller.wait_for("\"elapsed_s\"", EXIT);
    caller.signal("INT");
    let caller = caller.finish(EXIT);
    let listener = listener.finish(EXIT);
    let grew = after.saturating_sub(before);
    eprintln!(
        "crowd: {CROWD} pinned connections each sending a {:.1} MB frame; {refused} told busy; listener peak {:.1} -> {:.1} MiB (+{:.1} MiB)",
        (head.len() + payload.len()) as f64 / 1e6,
        mib(before),
        mib(after),
        mib(grew)
    );
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
    assert!(refused >= 1, "no connection of the crowd was told busy");
    assert!(
        grew < 32 * 1024,
        "a crowd of {CROWD} pinned connections grew the listener by {:.1} MiB (limit 32 MiB)",
        mib(grew)
    );
}

#[test]
fn a_pinned_peer_sending_only_the_largest_frames_stays_within_the_stated_bound() {
    let (a, b) = paired_identities();
    let (listener, addr) = spawn_listener(
        a.path(),
        &["--source", "test", "--size", "160x120", "--headless"],
        &[],
    );
    let pid = listener.child.id();
    let (before, after, sent) = runtime().block_on(async {
        let conn = join_call(b.path(), &addr).await;
        let (mut reader, mut writer) = conn.into_split();
        // Read (and drop) what the listener sends, so it stays in the call.
        let drain =
            tokio::spawn(async move { while let Ok(Some(_)) = reader.read_message().await {} });
        let before = status_kib(pid, "VmHWM");
        let started = Instant::now();
        let mut sent = 0u64;
        let (_, payload) = largest_frame(0);
        while started.elapsed() < Duration::from_secs(4) {
            let video = Video {
                seq: sent,
                capture_time_us: 0,
                width: MAX_WIDTH,
                height: MAX_HEIGHT,
                format: PixelFormat::Rgb24,
                payload: payload.clone(),
                total_len: None,
            };
            writer.write_message(&Message::Video(video)).await.unwrap();
            sent += 1;
        }
        let after = status_kib(pid, "VmHWM");
        writer
            .close(vchat::protocol::Bye::new(
                vchat::protocol::ByeReason::Hangup,
                "done",
            ))
            .await
            .unwrap();
        let _ = tokio::time::timeout(EXIT, drain).await;
        (before, after, sent)
    });
    let listener = listener.finish(EXIT);
    let grew = after.saturating_sub(before);
    let bound_mib = vchat::call::MAX_PEER_BUFFERED as f64 / (1024.0 * 1024.0);
    eprintln!(
        "largest frames: {sent} frames of 24.9 MB in 4 s; listener peak {:.1} -> {:.1} MiB (+{:.1} MiB, bound {bound_mib:.1} MiB)",
        mib(before),
        mib(after),
        mib(grew)
    );
    assert!(listener.status.success(), "{}", listener.all_output());
    assert!(sent >= 10, "too few frames to fill the buffers: {sent}");
    assert!(
        mib(grew) <= bound_mib,
        "a pinned peer grew the listener by {:.1} MiB, above the stated {bound_mib:.1} MiB",
        mib(grew)
    );
}

#[test]
fn a_closed_stdout_hangs_up_cleanly_instead_of_panicking() {
    let (a, b) = paired_identities();
    let (listener, addr) = spawn_listener(
        a.path(),
        &["--source", "test", "--size", "160x120", "--headless"],
        &[],
    );
    // `vchat call ... --stats json | head -1`: read one line, then close the pipe.
    let mut caller = vchat()
        .args([
            "--dir",
            b.path().to_str().unwrap(),
            "call",
            &addr,
            "--peer",
            "a",
        ])
        .args([
            "--source",
            "test",
            "--size",
            "160x120",
            "--headless",
            "--stats",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(caller.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"elapsed_s\""), "{first}");
    // The reader is dropped here: stdout is now a closed pipe.
    let stderr = caller.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = caller.wait();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
        let _ = tx.send((status, err));
    });
    let (status, stderr) = rx
        .recv_timeout(EXIT)
        .expect("vchat call exits after its stdout closed");
    let status = status.unwrap();
    let listener = listener.finish(EXIT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("standard output closed"), "{stderr}");
    // The peer heard a bye, not a dropped connection.
    assert!(listener.status.success(), "{}", listener.all_output());
    assert!(
        listener.all_output().contains("standard output closed"),
        "{}",
        listener.all_output()
    );
}
