//! The ping flood limit of PROTOCOL.md 5.4: a peer that sends more than
//! `MAX_PINGS_PER_SECOND` pings within one second may be ended with `bye`
//! `protocol_error`; an honest peer (one ping per `PING_INTERVAL`, or bursts
//! after a stall) never is. `PingMeter` takes the arrival times as arguments,
//! so these tests control the clock instead of sleeping.

use std::time::{Duration, Instant};

use vchat::protocol::limits::{MAX_PINGS_PER_SECOND, PEER_TIMEOUT, PING_INTERVAL};
use vchat::protocol::{ByeReason, PingMeter, ProtocolError};

#[test]
fn more_than_the_limit_within_one_second_is_a_flood() {
    let start = Instant::now();
    let mut meter = PingMeter::new();
    for i in 0..MAX_PINGS_PER_SECOND {
        // All within the same second: the limit itself is allowed.
        meter
            .on_ping(start + Duration::from_millis(u64::from(i) * 19))
            .unwrap_or_else(|e| panic!("ping {i}: {e}"));
    }
    let err = meter
        .on_ping(start + Duration::from_millis(999))
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::PingFlood { count, limit }
            if count == MAX_PINGS_PER_SECOND + 1 && limit == MAX_PINGS_PER_SECOND
    ));
    let bye = err.bye();
    assert_eq!(bye.reason, ByeReason::ProtocolError);
    assert_eq!(
        bye.text,
        format!(
            "the peer sent {} pings within one second, more than the limit of {MAX_PINGS_PER_SECOND}",
            MAX_PINGS_PER_SECOND + 1
        )
    );
}

#[test]
fn honest_peers_are_never_refused() {
    let start = Instant::now();
    // vchat's rate: one per PING_INTERVAL, for an hour.
    let mut meter = PingMeter::new();
    for i in 0..3600u32 {
        meter.on_ping(start + PING_INTERVAL * i).unwrap();
    }
    // The most a sender may send: MAX_PINGS_PER_SECOND per PEER_TIMEOUT,
    // evenly spread, for a minute.
    let mut meter = PingMeter::new();
    let gap = PEER_TIMEOUT / MAX_PINGS_PER_SECOND;
    for i in 0..(60 * MAX_PINGS_PER_SECOND) {
        meter.on_ping(start + gap * i).unwrap();
    }
    // A stalled link delivering a whole PEER_TIMEOUT's worth at once.
    let mut meter = PingMeter::new();
    for _ in 0..MAX_PINGS_PER_SECOND {
        meter.on_ping(start).unwrap();
    }
    // And the count starts again once the second is over.
    for _ in 0..MAX_PINGS_PER_SECOND {
        meter.on_ping(start + Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn a_sustained_flood_is_caught_within_its_first_second() {
    // 1000 pings a second (one per millisecond), as a flooding peer sends.
    let start = Instant::now();
    let mut meter = PingMeter::new();
    let caught = (0..1000u64)
        .position(|ms| meter.on_ping(start + Duration::from_millis(ms)).is_err())
        .expect("the flood is refused");
    assert_eq!(caught, MAX_PINGS_PER_SECOND as usize);
}
