//! Dialing and listening across address families, over real sockets: the
//! dual-stack listener takes IPv4 and IPv6 callers, the dialer races a
//! host's addresses (RFC 8305) so a dead or silent address costs at most the
//! 250 ms attempt delay, and `usable_addresses` never offers `[::]`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{guard, identity, pin};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use vchat::net::{
    connect_first, dial, usable_addresses, Listener, ListenerOptions, PinSet,
    CONNECTION_ATTEMPT_DELAY,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this machine can bind an IPv6 loopback socket; tests of IPv6
/// paths say so and stop where it cannot (a container without IPv6).
/// Whether this machine has IPv6 loopback. Only a developer's machine may
/// lack it: under CI (`.ci/run` sets `CI`) a missing IPv6 fails the test
/// instead of letting it pass untested.
async fn ipv6_loopback_works() -> bool {
    let works = TcpListener::bind("[::1]:0").await.is_ok();
    assert!(
        works || std::env::var_os("CI").is_none(),
        "CI must run the IPv6 tests, but ::1 cannot be bound here"
    );
    works
}

#[tokio::test]
async fn the_default_style_bind_takes_ipv4_and_ipv6_callers() {
    let alice = identity("Alice");
    let bob = identity("Bob");
    let listener = match Listener::bind(
        "[::]:0",
        &alice,
        PinSet::new(vec![pin(&bob, "bob")]),
        ListenerOptions::default(),
    )
    .await
    {
        Ok(listener) => listener,
        Err(error) => panic!("binding [::]:0 failed instead of falling back: {error}"),
    };
    let port = listener.local_addr().port();
    let mut listener = listener;
    let mut targets = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    if listener.local_addr().is_ipv6() {
        targets.push(format!("[::1]:{port}"));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the IPv6 half of this test, but [::] fell back to IPv4"
        );
        eprintln!("IPv6 is unavailable here: the listener fell back to IPv4 only");
    }
    let alice_pin = pin(&alice, "alice");
    for target in targets {
        let dialing = dial(&target, &bob, &alice_pin, TIMEOUT);
        let (dialed, accepted) =
            guard(&target, async { tokio::join!(dialing, listener.accept()) }).await;
        let dialed = dialed.unwrap_or_else(|e| panic!("dial {target}: {e}"));
        let accepted = accepted.expect("listener still running");
        assert_eq!(dialed.remote.port(), port, "{target}");
        assert_eq!(accepted.peer.name, "bob");
        // IPv4 callers on the dual-stack socket are shown as IPv4, not ::ffff:…
        if target.starts_with("127.") {
            assert_eq!(accepted.remote.ip().to_string(), "127.0.0.1");
        }
    }
}

#[tokio::test]
async fn with_only_ipv4_listening_the_ipv6_address_costs_nothing() {
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    // ::1 first, as a resolver that prefers IPv6 lists it: nothing listens
    // there on this port, so that attempt is refused and the next starts at once.
    let candidates: Vec<SocketAddr> = vec![
        format!("[::1]:{port}").parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    ];
    let started = Instant::now();
    let (_stream, winner) = guard("connect", connect_first(&candidates)).await.unwrap();
    assert_eq!(winner, candidates[1]);
    assert!(
        started.elapsed() < CONNECTION_ATTEMPT_DELAY,
        "a refused address must not cost the attempt delay: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_only_ipv6_listening_the_ipv6_address_wins() {
    if !ipv6_loopback_works().await {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let v6 = TcpListener::bind("[::1]:0").await.unwrap();
    let port = v6.local_addr().unwrap().port();
    let candidates: Vec<SocketAddr> = vec![
        format!("127.0.0.1:{port}").parse().unwrap(),
        format!("[::1]:{port}").parse().unwrap(),
    ];
    let (_stream, winner) = guard("connect", connect_first(&candidates)).await.unwrap();
    assert_eq!(winner, candidates[1]);
}

/// A listening socket whose accept queue is full: the kernel drops further
/// SYNs, so a connection attempt to it hangs, like an address behind a
/// firewall that swallows packets.
async fn silent_address() -> (TcpListener, TcpStream, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue with one connection that is never accepted.
    let filler = guard("fill the queue", TcpStream::connect(addr))
        .await
        .unwrap();
    (listener, filler, addr)
}

#[tokio::test]
async fn a_silent_first_address_delays_the_call_by_the_attempt_delay_only() {
    let (_silent_listener, _filler, silent) = silent_address().await;
    // Check the premise: an attempt to the silent address really hangs.
    let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(silent)).await;
    assert!(
        probe.is_err(),
        "premise: connecting to a full accept queue should hang"
    );

    let working = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let working_addr = working.local_addr().unwrap();
    let started = Instant::now();
    let (_stream, winner) = guard("connect", connect_first(&[silent, working_addr]))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(winner, working_addr);
    assert!(
        took >= CONNECTION_ATTEMPT_DELAY,
        "the silent address was tried first: {took:?}"
    );
    // The attempt delay plus a loopback connect; the margin is for a loaded machine.
    assert!(
        took < CONNECTION_ATTEMPT_DELAY + Duration::from_millis(750),
        "no more than the attempt delay: {took:?}"
    );
}

#[tokio::test]
async fn usable_addresses_of_a_real_dual_stack_bind() {
    let alice = identity("Alice");
    let listener = Listener::bind(
        "[::]:0",
        &alice,
        PinSet::new(vec![]),
        ListenerOptions::default(),
    )
    .await
    .unwrap();
    let bound = listener.local_addr();
    let usable = usable_addresses(bound);
    assert!(!usable.is_empty());
    for addr in &usable {
        assert!(!addr.ip().is_unspecified(), "{usable:?}");
        assert_eq!(addr.port(), bound.port());
    }
    assert!(usable.iter().any(|a| a.ip().is_loopback()), "{usable:?}");
    // Every listed address really reaches the listener.
    for addr in usable {
        guard("connect to a listed address", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
}
