//! Coverage-guided fuzzing of the whole engine in virtual time: a sequence of inputs
//! (datagrams, TCP frames, unframeable heads, closed connections, passing time) cut from
//! the fuzzer's bytes. Nothing may panic, every message the engine sends must parse, and it
//! never answers a response. Run with `bash sip-tests/fuzz.sh SECONDS engine`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use siaga::engine::sip::{ParseError, SipMessage};
use siaga::engine::{
    ConnectionId, Engine, EngineConfig, Input, MonoTime, Now, Output, Received, Transport, UtcTime,
};
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let local: SocketAddr = ([127, 0, 0, 1], 5060).into();
    let mut config = EngineConfig::for_tests(local);
    config.domains = vec!["siaga.test".into(), "example.com".into()];
    config.max_held_bytes = 4096;
    let mut engine = Engine::with_seed(config, 1);
    let mut ms = 0u64;
    // Inputs are separated by 0xFF; the first byte of each picks the kind and the time step.
    for chunk in data.split(|&b| b == 0xFF) {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        ms += u64::from(op >> 3) * 250;
        let now = Now {
            mono: MonoTime::from_millis(ms),
            utc: UtcTime(ms as i64),
        };
        let connection = ConnectionId(u64::from(op & 0x04 != 0));
        let source: SocketAddr = ([127, 0, 0, 1], 5000 + u16::from(op & 0x04)).into();
        let input = match op & 0x03 {
            0 => received(Transport::Udp, None, source, local, body),
            1 => received(Transport::Tcp, Some(connection), source, local, body),
            2 => Input::Unframeable {
                connection,
                source,
                error: ParseError::BadContentLength,
                head: Bytes::copy_from_slice(body),
            },
            _ => Input::ConnectionClosed(connection),
        };
        engine.handle_input(now, input);
        drain(&mut engine);
        engine.handle_timeout(now);
        drain(&mut engine);
    }
    // Let every timer run out: all transactions end.
    let end = MonoTime::from_millis(ms + 100_000);
    engine.handle_timeout(Now {
        mono: end,
        utc: UtcTime(0),
    });
    drain(&mut engine);
    assert_eq!(engine.server_transactions(), 0);
});

fn received(
    transport: Transport,
    connection: Option<ConnectionId>,
    source: SocketAddr,
    local: SocketAddr,
    body: &[u8],
) -> Input {
    Input::Received(Received {
        transport,
        source,
        local,
        connection,
        bytes: Bytes::copy_from_slice(body),
    })
}

fn drain(engine: &mut Engine) {
    loop {
        match engine.poll_output() {
            Output::Transmit(t) => {
                let msg = SipMessage::parse(t.bytes, Transport::Udp)
                    .unwrap_or_else(|e| panic!("siaga sent an unparseable message: {:?}", e.error));
                assert!(msg.status().is_some(), "siaga only answers requests");
            }
            Output::Close { .. } => {}
            Output::Wait { .. } => return,
        }
    }
}
