//! Coverage-guided fuzzing of the SIP message layer: any bytes, over UDP and TCP framing,
//! through the index and every typed view. Nothing may panic. Run with
//! `bash sip-tests/fuzz.sh [SECONDS]`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use siaga::engine::Transport;
use siaga::engine::sip::framing::{MAX_MESSAGE_SIZE, next_stream_frame};
use siaga::engine::sip::{HeaderName, SipMessage, builder};

fuzz_target!(|data: &[u8]| {
    let _ = next_stream_frame(data, MAX_MESSAGE_SIZE);
    for transport in [Transport::Udp, Transport::Tcp] {
        let msg = match SipMessage::parse(Bytes::copy_from_slice(data), transport) {
            Ok(msg) => msg,
            Err(e) => match e.partial {
                Some(partial) => *partial,
                None => continue,
            },
        };
        exercise(&msg);
        // Whatever parsed must survive a rebuild and parse again.
        let again = builder::rebuild(&msg);
        if let Ok(m2) = SipMessage::parse(again, Transport::Udp) {
            exercise(&m2);
        }
    }
});

fn exercise(msg: &SipMessage) {
    let _ = msg.request_uri();
    let _ = msg.vias();
    let _ = msg.top_via();
    let _ = msg.from();
    let _ = msg.to();
    let _ = msg.call_id();
    let _ = msg.cseq();
    let _ = msg.max_forwards();
    let _ = msg.expires();
    let _ = msg.contacts();
    let _ = msg.content_type();
    let _ = msg.accept();
    let _ = msg.allow();
    let _ = msg.privacy();
    for name in [
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::PAssertedIdentity,
    ] {
        let _ = msg.name_addrs(name);
    }
    for name in [
        HeaderName::Require,
        HeaderName::Supported,
        HeaderName::ProxyRequire,
    ] {
        let _ = msg.option_tags(name);
    }
    for name in [HeaderName::Authorization, HeaderName::WwwAuthenticate] {
        let _ = msg.auth_values(name);
    }
    let _ = builder::response_to(
        msg,
        Some(([127, 0, 0, 1], 5060).into()),
        400,
        "Bad Request",
        Some("tag"),
    )
    .build();
}
