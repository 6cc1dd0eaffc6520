//! Benchmarks of the SIP core on one core: messages parsed and indexed per second (a
//! typical trunk INVITE with SDP; the RFC 4475 valid set) and server transactions created
//! and completed per second through the engine alone. Run: `cargo bench --bench sip`.
//! Criterion reports time per iteration and throughput in elements (messages or
//! transactions) per second.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use siaga::engine::sip::SipMessage;
use siaga::engine::{Engine, EngineConfig, Input, Now, Output, Received, Transport};
use std::hint::black_box;
use std::net::SocketAddr;

/// An INVITE as a telco SBC sends it: Record-Route, P-Asserted-Identity, SDP offer.
pub const TRUNK_INVITE: &str = "INVITE sip:112@siaga.example.id;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-524287-1---a4c5d9e1;rport\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:127.0.0.10;lr;ftag=as1f0c2d9e>\r\n\
Contact: <sip:+6281234567890@127.0.0.10:5060;transport=udp>\r\n\
To: <sip:112@siaga.example.id;user=phone>\r\n\
From: \"+6281234567890\" <sip:+6281234567890@sbc.telco.example;user=phone>;tag=as1f0c2d9e\r\n\
Call-ID: 3848276298220188511@127.0.0.10\r\n\
CSeq: 102 INVITE\r\n\
P-Asserted-Identity: <sip:+6281234567890@sbc.telco.example;user=phone>\r\n\
Privacy: none\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: TelcoSBC 4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 222\r\n\
\r\n\
v=0\r\n\
o=- 20518 0 IN IP4 127.0.0.10\r\n\
s=SBC\r\n\
c=IN IP4 127.0.0.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const VALID_4475: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
];

/// What the engine reads of every request it takes: the index plus these views.
fn parse_like_engine(bytes: Bytes) -> usize {
    match SipMessage::parse(bytes, Transport::Udp) {
        Ok(m) => {
            let mut n = m.headers().count();
            n += usize::from(m.top_via().is_ok());
            n += usize::from(m.from().is_ok());
            n += usize::from(m.to().is_ok());
            n += usize::from(m.call_id().is_ok());
            n += usize::from(m.cseq().is_ok());
            n += usize::from(m.request_uri().is_some_and(|u| u.is_ok()));
            n
        }
        Err(_) => 0,
    }
}

fn parsing(c: &mut Criterion) {
    let invite = Bytes::from_static(TRUNK_INVITE.as_bytes());
    assert!(parse_like_engine(invite.clone()) > 0);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("trunk_invite_index_only", |b| {
        b.iter(|| SipMessage::parse(black_box(invite.clone()), Transport::Udp).is_ok())
    });
    g.bench_function("trunk_invite_with_views", |b| {
        b.iter(|| parse_like_engine(black_box(invite.clone())))
    });
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let set: Vec<Bytes> = VALID_4475
        .iter()
        .map(|n| Bytes::from(std::fs::read(format!("{dir}/{n}.dat")).expect("RFC 4475 file")))
        .collect();
    g.throughput(Throughput::Elements(set.len() as u64));
    g.bench_function("rfc4475_valid_set_with_views", |b| {
        b.iter(|| {
            set.iter()
                .map(|m| parse_like_engine(black_box(m.clone())))
                .sum::<usize>()
        })
    });
    g.finish();
}

/// `n` OPTIONS requests (distinct branches) from one peer, as the shell would hand them in.
fn options_batch(n: usize) -> Vec<Input> {
    let source: SocketAddr = "127.0.0.1:5099".parse().expect("literal");
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("literal");
    (0..n)
        .map(|i| {
            let text = format!(
                "OPTIONS sip:siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{i}\r\nMax-Forwards: 70\r\nFrom: <sip:monitor@127.0.0.1>;tag=m{i}\r\nTo: <sip:siaga.test>\r\nCall-ID: ka-{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            Input::Received(Received {
                transport: Transport::Udp,
                source,
                local,
                connection: None,
                bytes: Bytes::from(text),
            })
        })
        .collect()
}

/// Server transactions created, answered (200 to OPTIONS) and completed (Timer J) per
/// second through the engine alone.
fn transactions(c: &mut Criterion) {
    const N: usize = 1000;
    let config = EngineConfig::for_tests("127.0.0.1:5060".parse().expect("literal"));
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("options_transactions_udp", |b| {
        b.iter_batched(
            || (Engine::with_seed(config.clone(), 1), options_batch(N)),
            |(mut engine, inputs)| {
                let mut sent = 0usize;
                for input in inputs {
                    engine.handle_input(Now::default(), input);
                    while let Output::Transmit(_) = engine.poll_output() {
                        sent += 1;
                    }
                }
                // Timer J (64·T1) ends every transaction.
                engine.handle_timeout(Now::from_millis(40_000));
                assert_eq!(engine.server_transactions(), 0);
                assert_eq!(sent, N);
                sent
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parsing, transactions);
criterion_main!(benches);
