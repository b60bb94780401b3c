//! `vchat call --proxy socks5://...`: a real call between two `vchat`
//! processes through a SOCKS5 proxy, with the listener's host given as a
//! name that does not resolve anywhere (`.invalid`, RFC 6761). The proxy
//! here is a minimal SOCKS5 server (no authentication, CONNECT only) that
//! records each request and connects every name to the listener; the call
//! succeeding proves the name went to the proxy unresolved (ATYP 3), and
//! the recorded request shows it byte for byte. An onion address without a
//! proxy goes to a tor of vchat's own, never to DNS.
//!
//! The real Tor path (an onion service on a private Tor network) is in
//! tests/tor_calls.rs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{finish_both, paired_identities, run_err, spawn_caller, spawn_listener};

const CALL_LIMIT: Duration = Duration::from_secs(60);

/// What the proxy was asked: (address type, host, port).
type Requests = Arc<Mutex<Vec<(u8, String, u16)>>>;

/// A SOCKS5 proxy on an ephemeral port that sends every CONNECT to `to`.
fn start_proxy(to: SocketAddr) -> (SocketAddr, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = serve(client, to, &seen);
            });
        }
    });
    (addr, requests)
}

fn serve(mut client: TcpStream, to: SocketAddr, seen: &Requests) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?; // version 5, number of methods
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    client.write_all(&[5, 0])?; // no authentication
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?; // 5, CONNECT, 0, address type
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip)?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    seen.lock()
        .unwrap()
        .push((request[3], host, u16::from_be_bytes(port)));
    let upstream = TcpStream::connect(to)?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
    let (mut client, mut upstream) = (client, upstream);
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = forward.join();
    Ok(())
}

#[test]
fn a_call_through_a_socks5_proxy_sends_the_name_unresolved() {
    let (a, b) = paired_identities();
    let args = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--frames",
        "20",
    ];
    let (listener, addr) = spawn_listener(a.path(), &args, &[]);
    let listener_addr: SocketAddr = addr.parse().unwrap();
    let (proxy, requests) = start_proxy(listener_addr);
    let target = format!("alice.vchat-test.invalid:{}", listener_addr.port());
    let proxy_url = format!("socks5://{proxy}");
    let mut caller_args = args.to_vec();
    caller_args.extend(["--proxy", &proxy_url]);
    let caller = spawn_caller(b.path(), &target, &caller_args, &[]);
    finish_both(caller, listener, CALL_LIMIT);
    let requests = requests.lock().unwrap().clone();
    assert_eq!(
        requests.first(),
        Some(&(
            3,
            "alice.vchat-test.invalid".to_owned(),
            listener_addr.port()
        )),
        "the first request names the host (ATYP 3): {requests:?}"
    );
}

/// Without --proxy an onion address goes to a tor vchat starts, never to
/// a DNS resolver: with no tor on PATH the call stops there, saying how to
/// install it, before any lookup (a lookup would fail with "cannot
/// resolve").
#[test]
fn an_onion_address_without_a_proxy_goes_to_tor_not_to_dns() {
    let (_a, b) = paired_identities();
    let empty = tempfile::tempdir().unwrap();
    let out = common::run_in_env(
        b.path(),
        &[
            "call",
            "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion",
            "--peer",
            "a",
            "--headless",
            "--source",
            "test",
        ],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tor is not installed") && err.contains("apt-get install tor"),
        "{err}"
    );
    assert!(!err.contains("resolve"), "{err}");
}

#[test]
fn a_proxy_that_is_not_socks5_is_refused_at_parse() {
    let (_a, b) = paired_identities();
    let err = run_err(
        b.path(),
        &[
            "call",
            "127.0.0.1",
            "--peer",
            "a",
            "--proxy",
            "http://127.0.0.1:8080",
        ],
    );
    assert!(err.contains("socks5://HOST:PORT"), "{err}");
}
