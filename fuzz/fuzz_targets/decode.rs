//! Fuzz target `decode`: arbitrary bytes from a peer, through the frame
//! decoder and the session rules, exactly as `Connection::read_message`
//! applies them.
//!
//! The first input byte picks our role; the rest is the byte stream. Besides
//! "never panics", it checks two properties on whatever decodes:
//! - every decoded message re-encodes and decodes to the same message;
//! - every error turns into a Bye that itself encodes (the Bye we would send).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vchat::protocol::{
    decode_frame, encode, Accept, Decoded, Hello, Message, PixelFormat, ProtocolError, Receive,
    Role, Session, PROTOCOL_VERSION,
};

fuzz_target!(|data: &[u8]| {
    let Some((first, stream)) = data.split_first() else {
        return;
    };
    let role = if first & 1 == 0 {
        Role::Caller
    } else {
        Role::Listener
    };
    let mut session = Session::new(role);
    if role == Role::Caller {
        session
            .on_send(&Message::Hello(local_hello()))
            .expect("the caller speaks first");
    }

    let mut buf = BytesMut::from(stream);
    loop {
        let result = match decode_frame(&mut buf) {
            Ok(Some(Decoded::Message(message))) => {
                assert_round_trip(&message);
                let result = session.on_receive(&message);
                if result.is_ok() && role == Role::Listener && matches!(message, Message::Hello(_))
                {
                    session
                        .on_send(&Message::Hello(local_hello()))
                        .expect("answering the caller's hello");
                    let version = session.version().expect("both hellos are in");
                    session
                        .on_send(&Message::Accept(Accept { version }))
                        .expect("accepting after the caller's hello is allowed");
                }
                result
            }
            Ok(Some(Decoded::Unknown { kind })) => session.on_receive_unknown(&kind),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            assert_bye_encodes(&e);
            return;
        }
    }
});

fn local_hello() -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        software_name: "vchat".into(),
        software_version: "fuzz".into(),
        display_name: "fuzzer".into(),
        receive: Receive {
            codecs: PixelFormat::ALL.to_vec(),
            max_width: 64,
            max_height: 64,
            audio: vec![],
        },
    }
}

fn assert_round_trip(message: &Message) {
    let mut out = BytesMut::new();
    encode(message, &mut out).expect("a decoded message re-encodes");
    match decode_frame(&mut out) {
        Ok(Some(Decoded::Message(again))) => assert_eq!(&again, message),
        other => panic!("re-encoded message did not decode: {other:?}"),
    }
    assert!(out.is_empty());
}

fn assert_bye_encodes(error: &ProtocolError) {
    let mut out = BytesMut::new();
    encode(&Message::Bye(error.bye()), &mut out).expect("the bye for an error encodes");
}
