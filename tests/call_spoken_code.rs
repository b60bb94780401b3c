//! The spoken check (PROTOCOL.md 2.4): two real `vchat`
//! processes on loopback print the same six digits, derived from their TLS
//! session, and a second call prints another code. Each end's code is
//! also recomputed here from the definition alone (TLS exporter, label,
//! big-endian modulo), so a peer written from PROTOCOL.md shows the same.

mod common;

use std::time::Duration;

use common::{
    finish_both, guard, identity, listen, paired_identities, pin, spawn_caller, spawn_listener,
    spoken_code,
};
use vchat::net::{dial, HANDSHAKE_TIMEOUT};

const CALL_LIMIT: Duration = Duration::from_secs(60);

fn one_call() -> (String, String) {
    let (a, b) = paired_identities();
    let args = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--frames",
        "5",
    ];
    let (listener, addr) = spawn_listener(a.path(), &args, &[]);
    let caller = spawn_caller(b.path(), &addr, &args, &[]);
    let (listener, caller) = finish_both(listener, caller, CALL_LIMIT);
    (spoken_code(&listener), spoken_code(&caller))
}

#[test]
fn both_ends_print_the_same_code_and_each_call_has_its_own() {
    let (listener_1, caller_1) = one_call();
    assert_eq!(listener_1, caller_1, "the two ends of one call");
    let (listener_2, caller_2) = one_call();
    assert_eq!(listener_2, caller_2);
    // One in a million to be equal by chance.
    assert_ne!(listener_1, listener_2, "two calls, two sessions, two codes");
}

#[tokio::test]
async fn the_code_is_the_documented_function_of_the_exporter() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    let addr = listener.local_addr().to_string();
    let alice_pin = pin(&alice, "alice");
    let (dialed, accepted) = tokio::join!(
        dial(&addr, &bob, &alice_pin, HANDSHAKE_TIMEOUT),
        guard("accept", listener.accept())
    );
    let (dialed, accepted) = (dialed.expect("dial"), accepted.expect("accepted"));
    // PROTOCOL.md: 8 bytes of the TLS exporter with this label and no
    // context, read as a big-endian unsigned integer, modulo 1,000,000,
    // zero-padded to six digits and split 3 + 3. Computed here from rustls
    // directly, not through vchat.
    let tokio_rustls::TlsStream::Client(client) = &dialed.stream else {
        panic!("the caller's stream is a TLS client");
    };
    let bytes = client
        .get_ref()
        .1
        .export_keying_material([0u8; 8], b"EXPORTER-vchat-spoken-code-v1", None)
        .expect("exporter");
    let n = u64::from_be_bytes(bytes) % 1_000_000;
    let expected = format!("{:03} {:03}", n / 1000, n % 1000);
    assert_eq!(dialed.spoken_code().unwrap().to_string(), expected);
    assert_eq!(accepted.spoken_code().unwrap().to_string(), expected);
}
