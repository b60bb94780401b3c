//! Connecting to a name that resolves to several addresses, the Happy
//! Eyeballs way (RFC 8305).
//!
//! A host often has an IPv6 and an IPv4 address and only one of them works
//! from here (no IPv6 route, a firewall, a listener on one family). Trying
//! them one after the other makes the caller wait for a whole TCP timeout per
//! dead address; trying all at once floods. RFC 8305 takes the middle: the
//! families alternate (IPv6, IPv4, IPv6, ...), a new attempt starts
//! [`CONNECTION_ATTEMPT_DELAY`] after the previous one unless that one has
//! already failed (then at once), and the first TCP connection wins: the
//! others are dropped, which closes their sockets. The knock and TLS run
//! only on the winner.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

/// RFC 8305's recommended "Connection Attempt Delay": long enough for a
/// working address nearby to answer, short enough that a dead one costs the
/// caller a quarter of a second, not a TCP timeout.
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The order of attempts: the family of the first address (the resolver's
/// preference) first, then alternating with the other family, each family
/// in its resolved order (RFC 8305 section 4).
pub fn interleave_families(addresses: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return Vec::new();
    };
    let (mut preferred, mut other): (VecDeque<SocketAddr>, VecDeque<SocketAddr>) = addresses
        .iter()
        .copied()
        .partition(|addr| addr.is_ipv6() == first.is_ipv6());
    let mut ordered = Vec::with_capacity(addresses.len());
    loop {
        match (preferred.pop_front(), other.pop_front()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

/// Connects to the first of `addresses` that answers, in the Happy Eyeballs
/// way (see the module notes). The error, when none answers, names every
/// address and what happened there.
pub async fn connect_first(addresses: &[SocketAddr]) -> io::Result<(TcpStream, SocketAddr)> {
    race(addresses, CONNECTION_ATTEMPT_DELAY, TcpStream::connect).await
}

/// [`connect_first`] with the delay and the way of connecting given: the
/// scheduling is tested on its own with tokio's paused clock.
async fn race<T, C, F>(
    addresses: &[SocketAddr],
    attempt_delay: Duration,
    connect: C,
) -> io::Result<(T, SocketAddr)>
where
    T: Send + 'static,
    C: Fn(SocketAddr) -> F,
    F: Future<Output = io::Result<T>> + Send + 'static,
{
    let mut waiting: VecDeque<SocketAddr> = interleave_families(addresses).into();
    // Dropping the set (on return) aborts the attempts still running.
    let mut attempts: JoinSet<(SocketAddr, io::Result<T>)> = JoinSet::new();
    let mut failures: Vec<String> = Vec::new();
    let mut last_kind = io::ErrorKind::NotFound;
    let mut next_start = Instant::now();
    loop {
        if attempts.is_empty() && waiting.is_empty() {
            let detail = if failures.is_empty() {
                "the name resolved to no address".to_owned()
            } else {
                failures.join("; ")
            };
            return Err(io::Error::new(last_kind, detail));
        }
        tokio::select! {
            // A finished attempt is looked at before a new one is started.
            biased;
            Some(finished) = attempts.join_next(), if !attempts.is_empty() => match finished {
                Ok((address, Ok(stream))) => return Ok((stream, address)),
                Ok((address, Err(error))) => {
                    last_kind = error.kind();
                    failures.push(format!("{address}: {error}"));
                    // A failed attempt frees the way for the next one now.
                    next_start = Instant::now();
                }
                Err(join_error) => {
                    last_kind = io::ErrorKind::Other;
                    failures.push(format!("a connection attempt ended abnormally: {join_error}"));
                }
            },
            () = sleep_until(next_start), if !waiting.is_empty() => {
                if let Some(address) = waiting.pop_front() {
                    let attempt = connect(address);
                    attempts.spawn(async move { (address, attempt.await) });
                }
                next_start = Instant::now() + attempt_delay;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_starting_with_the_resolvers_first() {
        let resolved = addrs(&[
            "[2001:db8::1]:1",
            "[2001:db8::2]:1",
            "192.0.2.1:1",
            "192.0.2.2:1",
            "192.0.2.3:1",
        ]);
        assert_eq!(
            interleave_families(&resolved),
            addrs(&[
                "[2001:db8::1]:1",
                "192.0.2.1:1",
                "[2001:db8::2]:1",
                "192.0.2.2:1",
                "192.0.2.3:1"
            ])
        );
        let v4_first = addrs(&["192.0.2.1:1", "[2001:db8::1]:1"]);
        assert_eq!(interleave_families(&v4_first), v4_first);
        assert!(interleave_families(&[]).is_empty());
    }

    /// What the scripted connector does for one address.
    #[derive(Clone, Copy)]
    enum Outcome {
        /// Never answers (a dropped SYN).
        Hang,
        /// Refused after this long.
        FailAfter(u64),
        /// Connects after this long.
        ConnectAfter(u64),
    }

    /// Runs `race` on paused time; returns the winner (or error text), the
    /// time it took and when each attempt started, in milliseconds.
    async fn run(
        script: &[(&str, Outcome)],
    ) -> (Result<SocketAddr, String>, u64, Vec<(SocketAddr, u64)>) {
        let script: Vec<(SocketAddr, Outcome)> = script
            .iter()
            .map(|(a, o)| (a.parse().unwrap(), *o))
            .collect();
        let started = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let addresses: Vec<SocketAddr> = script.iter().map(|(a, _)| *a).collect();
        let result = race(&addresses, CONNECTION_ATTEMPT_DELAY, |address| {
            let outcome = script.iter().find(|(a, _)| *a == address).unwrap().1;
            starts
                .lock()
                .unwrap()
                .push((address, started.elapsed().as_millis() as u64));
            async move {
                match outcome {
                    Outcome::Hang => std::future::pending().await,
                    Outcome::FailAfter(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                    }
                    Outcome::ConnectAfter(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(())
                    }
                }
            }
        })
        .await;
        let took = started.elapsed().as_millis() as u64;
        let starts = starts.lock().unwrap().clone();
        (
            result.map(|((), a)| a).map_err(|e| e.to_string()),
            took,
            starts,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_costs_one_attempt_delay() {
        let (winner, took, starts) = run(&[
            ("[2001:db8::1]:7878", Outcome::Hang),
            ("192.0.2.1:7878", Outcome::ConnectAfter(10)),
        ])
        .await;
        assert_eq!(winner, Ok("192.0.2.1:7878".parse().unwrap()));
        assert_eq!(starts.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 250]);
        assert_eq!(took, 260);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_attempt_starts_the_next_at_once() {
        let (winner, took, starts) = run(&[
            ("[::1]:7878", Outcome::FailAfter(5)),
            ("127.0.0.1:7878", Outcome::ConnectAfter(1)),
        ])
        .await;
        assert_eq!(winner, Ok("127.0.0.1:7878".parse().unwrap()));
        assert_eq!(starts.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 5]);
        assert_eq!(took, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_connection_wins_even_if_started_later() {
        let (winner, took, starts) = run(&[
            ("[2001:db8::1]:7878", Outcome::ConnectAfter(1000)),
            ("192.0.2.1:7878", Outcome::ConnectAfter(100)),
            ("[2001:db8::2]:7878", Outcome::Hang),
        ])
        .await;
        assert_eq!(winner, Ok("192.0.2.1:7878".parse().unwrap()));
        assert_eq!(took, 350);
        // The third attempt started at 500 ms only if nothing had won by
        // then; here the second won at 350 ms, so it never started.
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_address_fails_the_error_names_each() {
        let (result, _, _) = run(&[
            ("[::1]:7878", Outcome::FailAfter(1)),
            ("127.0.0.1:7878", Outcome::FailAfter(1)),
        ])
        .await;
        let message = result.unwrap_err();
        assert!(
            message.contains("[::1]:7878: connection refused"),
            "{message}"
        );
        assert!(
            message.contains("127.0.0.1:7878: connection refused"),
            "{message}"
        );
        let (result, _, _) = run(&[]).await;
        assert_eq!(result.unwrap_err(), "the name resolved to no address");
    }
}
