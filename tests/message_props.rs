//! Property tests of the message layer: generated requests written with the freedom RFC 3261
//! allows (header-name case, compact forms, LWS around separators, folded lines, any header
//! order) parse back to the values they were built from; a rebuild keeps them; arbitrary and
//! mutated input never panics.

use bytes::Bytes;
use proptest::prelude::*;
use siaga::engine::Transport;
use siaga::engine::sip::builder::rebuild;
use siaga::engine::sip::framing::{MAX_MESSAGE_SIZE, StreamFrame, next_stream_frame};
use siaga::engine::sip::{HeaderName, Method, SipMessage};

#[derive(Clone, Debug)]
struct Spec {
    method: String,
    user: String,
    host: String,
    branch: String,
    via_port: Option<u16>,
    from_tag: String,
    call_id: String,
    cseq: u32,
    max_forwards: u8,
    body: Vec<u8>,
    /// Per header: use the compact form, upper-case the name, fold the value.
    styles: Vec<(bool, bool, bool)>,
    ws_before_colon: bool,
    order: Vec<usize>,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            Just("INVITE".to_owned()),
            Just("OPTIONS".to_owned()),
            "[A-Z]{3,10}"
        ],
        ("[a-z0-9]{1,10}", "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}"),
        "[A-Za-z0-9]{1,16}",
        proptest::option::of(1u16..),
        token(),
        "[A-Za-z0-9.@_-]{1,30}",
        any::<u32>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<(bool, bool, bool)>(), 7),
        any::<bool>(),
        Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(
            |(
                method,
                (user, host),
                branch,
                via_port,
                from_tag,
                call_id,
                cseq,
                max_forwards,
                body,
                styles,
                ws_before_colon,
                order,
            )| Spec {
                method,
                user,
                host,
                branch,
                via_port,
                from_tag,
                call_id,
                cseq,
                max_forwards,
                body,
                styles,
                ws_before_colon,
                order,
            },
        )
}

fn write(spec: &Spec) -> Vec<u8> {
    let port = spec.via_port.map(|p| format!(":{p}")).unwrap_or_default();
    let headers: [(&str, Option<&str>, String); 7] = [
        (
            "Via",
            Some("v"),
            format!(
                "SIP/2.0/UDP {}{port} ; branch = z9hG4bK{}",
                spec.host, spec.branch
            ),
        ),
        (
            "From",
            Some("f"),
            format!(
                "\"Caller\" <sip:caller@{}>;tag={}",
                spec.host, spec.from_tag
            ),
        ),
        (
            "To",
            Some("t"),
            format!("<sip:{}@{}>", spec.user, spec.host),
        ),
        ("Call-ID", Some("i"), spec.call_id.clone()),
        ("CSeq", None, format!("{} {}", spec.cseq, spec.method)),
        ("Max-Forwards", None, spec.max_forwards.to_string()),
        ("Content-Length", Some("l"), spec.body.len().to_string()),
    ];
    let mut out = format!(
        "{} sip:{}@{} SIP/2.0\r\n",
        spec.method, spec.user, spec.host
    )
    .into_bytes();
    for &i in &spec.order {
        let (long, compact, value) = &headers[i];
        let (use_compact, upper, fold) = spec.styles[i];
        let mut name = match (use_compact, compact) {
            (true, Some(c)) => (*c).to_owned(),
            _ => (*long).to_owned(),
        };
        if upper {
            name = name.to_ascii_uppercase();
        }
        let colon = if spec.ws_before_colon { " :" } else { ":" };
        let value = if fold {
            value.replacen(' ', "\r\n   ", 1)
        } else {
            value.clone()
        };
        out.extend_from_slice(format!("{name}{colon} {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&spec.body);
    out
}

fn check(spec: &Spec, msg: &SipMessage) {
    assert_eq!(msg.method().map(Method::as_str), Some(spec.method.as_str()));
    let via = msg.top_via().expect("Via");
    assert_eq!(via.host, spec.host);
    assert_eq!(via.port, spec.via_port);
    assert_eq!(
        via.branch(),
        Some(format!("z9hG4bK{}", spec.branch).as_str())
    );
    let from = msg.from().expect("From");
    assert_eq!(from.tag(), Some(spec.from_tag.as_str()));
    assert_eq!(from.display_name.as_deref(), Some("Caller"));
    assert_eq!(
        msg.to().expect("To").uri.to_string(),
        format!("sip:{}@{}", spec.user, spec.host)
    );
    assert_eq!(msg.call_id(), Ok(spec.call_id.as_str()));
    let cseq = msg.cseq().expect("CSeq");
    assert_eq!(
        (cseq.seq, cseq.method.as_str()),
        (spec.cseq, spec.method.as_str())
    );
    assert_eq!(msg.max_forwards(), Ok(Some(spec.max_forwards)));
    assert_eq!(msg.body(), &spec.body[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_requests_parse_to_their_values(spec in spec()) {
        let bytes = write(&spec);
        for transport in [Transport::Udp, Transport::Tcp] {
            let msg = SipMessage::parse(Bytes::from(bytes.clone()), transport).expect("valid message");
            check(&spec, &msg);
            let again = SipMessage::parse(rebuild(&msg), Transport::Udp).expect("rebuilt message");
            check(&spec, &again);
        }
        // Framed on a stream with trailing bytes of the next message, it is cut exactly.
        let mut stream = bytes.clone();
        stream.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\n");
        prop_assert_eq!(next_stream_frame(&stream, MAX_MESSAGE_SIZE), Ok(StreamFrame::Message { len: bytes.len() }));
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert_eq!(next_stream_frame(&bytes[..cut], MAX_MESSAGE_SIZE), Ok(StreamFrame::NeedMore));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = next_stream_frame(&data, MAX_MESSAGE_SIZE);
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Ok(m) = SipMessage::parse(Bytes::from(data.clone()), transport) {
                touch(&m);
            }
        }
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        file in 0usize..49,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
        let mut names: Vec<_> = std::fs::read_dir(dir).expect("data").filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "dat")).collect();
        names.sort();
        let mut data = std::fs::read(&names[file]).expect("file");
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        for transport in [Transport::Udp, Transport::Tcp] {
            match SipMessage::parse(Bytes::from(data.clone()), transport) {
                Ok(m) => touch(&m),
                Err(e) => if let Some(p) = e.partial { touch(&p) },
            }
        }
    }
}

fn touch(m: &SipMessage) {
    let _ = (
        m.request_uri(),
        m.vias(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (
        m.max_forwards(),
        m.contacts(),
        m.content_type(),
        m.accept(),
        m.expires(),
    );
    let _ = (
        m.name_addrs(HeaderName::Route),
        m.auth_values(HeaderName::Authorization),
    );
    let _ = SipMessage::parse(rebuild(m), Transport::Udp);
}
