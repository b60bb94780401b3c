//! Addresses as people type them and as peers can use them.
//!
//! Two questions about addresses come up at the edges of a call:
//! - what does `vchat call ARG` mean? [`parse_target`] splits `HOST`,
//!   `HOST:PORT`, `[V6]:PORT` and a bare IPv6 address into a host and a port,
//!   the port defaulting to [`DEFAULT_PORT`], the one `vchat listen` uses;
//! - where can a peer reach a listener? A socket bound to `[::]` or `0.0.0.0`
//!   is no answer to give a person: [`usable_addresses`] lists the machine's
//!   own addresses instead, loopback last.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::NetError;

/// The port `vchat listen` binds and `vchat call HOST` dials when none is given.
pub const DEFAULT_PORT: u16 = 7878;

/// A host (a name or an IP address, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Splits what the user typed after `vchat call` into a host and a port.
///
/// Accepted: `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` and a bare IPv6 address
/// such as `2001:db8::4` or `fe80::1%eth0` (two or more colons mean the whole
/// text is the address; a port then needs the brackets).
pub fn parse_target(input: &str) -> Result<Target, NetError> {
    let invalid = |problem: String| NetError::BadAddress {
        input: input.to_owned(),
        problem,
    };
    let text = input.trim();
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("the '[' of an IPv6 address has no closing ']'".to_owned()))?;
        let port =
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    invalid(format!("expected ':PORT' after ']', found {after:?}"))
                })?),
            };
        if host.parse::<Ipv6Addr>().is_err() && !host.contains('%') {
            return Err(invalid(format!(
                "{host:?} inside brackets is not an IPv6 address"
            )));
        }
        (host, port)
    } else if text.matches(':').count() >= 2 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("the host is missing".to_owned()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(invalid(format!(
                    "the port {port:?} is not a number from 1 to 65535"
                )))
            }
        },
    };
    Ok(Target {
        host: host.to_owned(),
        port,
    })
}

/// The addresses a peer can dial to reach a socket bound to `bound`.
///
/// A specific address is returned as it is. For an unspecified one (`[::]`,
/// which on vchat's dual-stack listener takes IPv4 as well, or `0.0.0.0`) it
/// is every address of the machine's interfaces in that family, never the
/// unspecified address itself: other machines' addresses first (IPv4 before
/// IPv6, as people read them more easily), loopback last. Link-local IPv6
/// addresses (`fe80::`) are left out: they need an interface name that only
/// the caller's side knows. If the interfaces cannot be listed, loopback is
/// all that is certain.
pub fn usable_addresses(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.iter().map(if_addrs::Interface::ip).collect(),
        Err(error) => {
            tracing::debug!("cannot list the network interfaces: {error}");
            Vec::new()
        }
    };
    usable_among(bound, &interfaces)
}

/// [`usable_addresses`] for a given list of interface addresses.
fn usable_among(bound: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let port = bound.port();
    // [::] on vchat's listener is dual-stack; 0.0.0.0 takes IPv4 only.
    let takes = |ip: &IpAddr| bound.is_ipv6() || ip.is_ipv4();
    let mut usable: Vec<IpAddr> = interfaces
        .iter()
        .copied()
        .filter(|ip| takes(ip) && !ip.is_unspecified() && !is_link_local_v6(ip))
        .collect();
    if usable.iter().all(IpAddr::is_loopback) {
        // Nothing listed (or only loopback): loopback always works locally.
        usable.push(IpAddr::from([127, 0, 0, 1]));
        if bound.is_ipv6() {
            usable.push(IpAddr::from(Ipv6Addr::LOCALHOST));
        }
    }
    // Loopback last, then IPv4 before IPv6; the sort is stable, so the
    // system's order stays within each group.
    usable.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
    let mut seen = Vec::new();
    usable.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    usable
        .into_iter()
        .map(|ip| match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, port),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
        })
        .collect()
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16) -> Target {
        Target {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn every_accepted_spelling_of_a_target() {
        let cases = [
            ("example.org", target("example.org", DEFAULT_PORT)),
            ("example.org:9000", target("example.org", 9000)),
            ("192.0.2.7", target("192.0.2.7", DEFAULT_PORT)),
            ("192.0.2.7:7000", target("192.0.2.7", 7000)),
            ("[2001:db8::4]:7000", target("2001:db8::4", 7000)),
            ("[2001:db8::4]", target("2001:db8::4", DEFAULT_PORT)),
            ("2001:db8::4", target("2001:db8::4", DEFAULT_PORT)),
            ("::1", target("::1", DEFAULT_PORT)),
            ("fe80::1%eth0", target("fe80::1%eth0", DEFAULT_PORT)),
            ("[fe80::1%eth0]:7001", target("fe80::1%eth0", 7001)),
            (" localhost ", target("localhost", DEFAULT_PORT)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_target(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let cases = [
            ("", "the host is missing"),
            (":7878", "the host is missing"),
            (
                "host:http",
                "the port \"http\" is not a number from 1 to 65535",
            ),
            ("host:0", "is not a number from 1 to 65535"),
            ("host:70000", "is not a number from 1 to 65535"),
            ("[2001:db8::4", "has no closing ']'"),
            ("[2001:db8::4]7000", "expected ':PORT' after ']'"),
            ("[example.org]:7000", "is not an IPv6 address"),
        ];
        for (input, expected) in cases {
            let message = parse_target(input).unwrap_err().to_string();
            assert!(message.contains(expected), "{input}: {message}");
            assert!(
                message.contains("e.g."),
                "{input}: gives an example: {message}"
            );
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn texts(addresses: &[SocketAddr]) -> Vec<String> {
        addresses.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_specific_bind_is_its_own_answer() {
        assert_eq!(
            usable_addresses(addr("192.0.2.7:7878")),
            [addr("192.0.2.7:7878")]
        );
        assert_eq!(usable_addresses(addr("[::1]:9")), [addr("[::1]:9")]);
    }

    #[test]
    fn dual_stack_lists_both_families_loopback_last_link_local_skipped() {
        let interfaces = ips(&[
            "127.0.0.1",
            "::1",
            "192.168.1.4",
            "fe80::1c2b:3ff:fe4d:5e6f",
            "2001:db8::4",
            "10.0.0.5",
        ]);
        let usable = usable_among(addr("[::]:7878"), &interfaces);
        assert_eq!(
            texts(&usable),
            [
                "192.168.1.4:7878",
                "10.0.0.5:7878",
                "[2001:db8::4]:7878",
                "127.0.0.1:7878",
                "[::1]:7878"
            ]
        );
    }

    #[test]
    fn an_ipv4_bind_lists_only_ipv4_and_never_the_unspecified_address() {
        let interfaces = ips(&["127.0.0.1", "::1", "192.168.1.4", "2001:db8::4", "0.0.0.0"]);
        let usable = usable_among(addr("0.0.0.0:7000"), &interfaces);
        assert_eq!(texts(&usable), ["192.168.1.4:7000", "127.0.0.1:7000"]);
    }

    #[test]
    fn without_interfaces_loopback_remains() {
        assert_eq!(
            texts(&usable_among(addr("[::]:7878"), &[])),
            ["127.0.0.1:7878", "[::1]:7878"]
        );
        assert_eq!(
            texts(&usable_among(addr("0.0.0.0:7878"), &ips(&["127.0.0.1"]))),
            ["127.0.0.1:7878"]
        );
    }

    #[test]
    fn this_machine_has_at_least_loopback_and_no_unspecified_address() {
        let usable = usable_addresses(addr("[::]:7878"));
        assert!(!usable.is_empty());
        assert!(
            usable.iter().all(|a| !a.ip().is_unspecified()),
            "{usable:?}"
        );
        assert!(usable.iter().all(|a| a.port() == 7878));
        let first_loopback = usable.iter().position(|a| a.ip().is_loopback());
        if let Some(first) = first_loopback {
            assert!(
                usable[first..].iter().all(|a| a.ip().is_loopback()),
                "{usable:?}"
            );
        }
    }
}
