//! vchat's side of tor's SAFECOOKIE authentication (control-spec 3.24),
//! against a control port played by this test on a real socket: vchat must
//! prove it read the cookie without ever sending the cookie itself, and
//! must refuse a port that cannot prove it knows the cookie (something
//! other than the tor that wrote the file) before sending anything derived
//! from it. The real tor path is in tests/tor_calls.rs.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread::JoinHandle;

use ring::hmac;
use vchat::net::tor::TorControl;

const SERVER_KEY: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const CLIENT_KEY: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// What the fake control port saw.
struct Seen {
    lines: Vec<String>,
    authenticated: bool,
}

/// A control port offering only SAFECOOKIE with `cookie` (in a file it
/// names); with `honest` false it answers the challenge with a hash made
/// from another cookie, as a port that never read the file would.
fn fake_control_port(
    cookie_path: &Path,
    cookie: [u8; 32],
    honest: bool,
) -> (SocketAddr, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cookie_path = cookie_path.display().to_string();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut seen = Seen {
            lines: Vec::new(),
            authenticated: false,
        };
        let server_nonce = [7u8; 32];
        let mut client_nonce = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                return seen;
            }
            let line = line.trim_end().to_owned();
            seen.lines.push(line.clone());
            let mut words = line.split_whitespace();
            let reply = match (words.next(), words.next(), words.next()) {
                (Some("PROTOCOLINFO"), _, _) => format!(
                    "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=SAFECOOKIE COOKIEFILE=\"{cookie_path}\"\r\n\
                     250-VERSION Tor=\"0.4.8.0\"\r\n250 OK\r\n"
                ),
                (Some("AUTHCHALLENGE"), Some("SAFECOOKIE"), Some(nonce)) => {
                    client_nonce = unhex(nonce);
                    let known = if honest { cookie } else { [0xEE; 32] };
                    let message = [&known[..], &client_nonce, &server_nonce].concat();
                    let hash = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SERVER_KEY), &message);
                    format!(
                        "250 AUTHCHALLENGE SERVERHASH={} SERVERNONCE={}\r\n",
                        hex(hash.as_ref()),
                        hex(&server_nonce)
                    )
                }
                (Some("AUTHENTICATE"), Some(given), _) => {
                    let message = [&cookie[..], &client_nonce, &server_nonce].concat();
                    let key = hmac::Key::new(hmac::HMAC_SHA256, CLIENT_KEY);
                    if hmac::verify(&key, &message, &unhex(given)).is_ok() {
                        seen.authenticated = true;
                        "250 OK\r\n".to_owned()
                    } else {
                        "515 Authentication failed: Safe cookie response did not match expected value.\r\n".to_owned()
                    }
                }
                _ => "510 Unrecognized command\r\n".to_owned(),
            };
            writer.write_all(reply.as_bytes()).unwrap();
        }
    });
    (addr, server)
}

fn cookie_file(dir: &Path) -> (std::path::PathBuf, [u8; 32]) {
    let cookie: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let path = dir.join("control_auth_cookie");
    std::fs::write(&path, cookie).unwrap();
    (path, cookie)
}

#[tokio::test]
async fn safecookie_proves_the_cookie_without_sending_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cookie) = cookie_file(dir.path());
    let (addr, server) = fake_control_port(&path, cookie, true);
    let control = TorControl::connect(addr).await;
    assert!(control.is_ok(), "{:?}", control.err());
    drop(control);
    let seen = server.join().unwrap();
    assert!(
        seen.authenticated,
        "the client's hash was right: {:?}",
        seen.lines
    );
    let cookie_hex = hex(&cookie);
    assert!(
        seen.lines
            .iter()
            .all(|l| !l.to_uppercase().contains(&cookie_hex)),
        "the cookie itself never crossed the socket: {:?}",
        seen.lines
    );
}

#[tokio::test]
async fn a_port_that_does_not_know_the_cookie_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cookie) = cookie_file(dir.path());
    let (addr, server) = fake_control_port(&path, cookie, false);
    let error = TorControl::connect(addr).await.err().expect("refused");
    let words = error.to_string();
    assert!(
        words.contains("not the tor that wrote the cookie file"),
        "{words}"
    );
    let seen = server.join().unwrap();
    assert!(
        !seen.lines.iter().any(|l| l.starts_with("AUTHENTICATE")),
        "nothing derived from the cookie was sent to it: {:?}",
        seen.lines
    );
}
