//! Tests of SDP reading and offer/answer with SDP as real peers write it: SIPp's default
//! UAC, baresip, a telco SBC, a G.729-only gateway, IPv6.

use super::*;
use bytes::Bytes;
use proptest::prelude::*;

/// SIPp's built-in `uac` scenario body (`-sn uac`), filled in.
const SIPP_UAC: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// baresip 3.x with opus, G.711 and telephone-event; media-level b= and extra attributes.
const BARESIP: &str = "v=0\r\n\
o=- 1391862209 3486329785 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10942 RTP/AVP 96 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2502216133 cname:d3c7a3e1-6b2e-4c02-9a53-6d0a8a0f7e9b\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

/// A telco SBC's offer: PCMA first, PCMU, telephone-event 101, CN (dropped).
const TRUNK: &str = "v=0\r\n\
o=- 20518 0 IN IP4 127.0.0.10\r\n\
s=SBC\r\n\
c=IN IP4 127.0.0.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 8 0 101 13\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const G729_ONLY: &str = "v=0\r\n\
o=gw 1 1 IN IP4 10.1.1.1\r\n\
s=-\r\n\
c=IN IP4 10.1.1.1\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 18 101\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

const IPV6: &str = "v=0\r\n\
o=- 7 7 IN IP6 2001:db8::10\r\n\
s=-\r\n\
c=IN IP6 2001:db8::10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8\r\n";

fn relay(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn parsed(sdp: &str) -> MediaOffer {
    parse(sdp.as_bytes()).expect("valid SDP")
}

fn text(b: Bytes) -> String {
    String::from_utf8(b.to_vec()).expect("SDP is ASCII")
}

fn pts(offer: &MediaOffer) -> Vec<u8> {
    offer.formats.iter().map(|f| f.payload_type).collect()
}

#[test]
fn reads_sipp_default_uac_offer() {
    let offer = parsed(SIPP_UAC);
    assert_eq!(offer.rtp, Some(relay("127.0.0.1:6000")));
    assert_eq!(pts(&offer), [0]);
    assert_eq!(offer.formats[0].codec(), Some(Codec::Pcmu));
    assert_eq!(offer.direction, Direction::SendRecv);
    assert_eq!(offer.ptime, None);
    assert_eq!(
        (offer.session_id, offer.session_version),
        (53655765, 2353687637)
    );
}

#[test]
fn reads_baresip_offer_and_drops_opus() {
    let offer = parsed(BARESIP);
    assert_eq!(offer.rtp, Some(relay("192.168.1.20:10942")));
    assert_eq!(pts(&offer), [96, 0, 8, 101]);
    assert_eq!(offer.formats[0].channels, Some(2));
    assert_eq!(offer.formats[0].codec(), None);
    assert_eq!(offer.formats[3].fmtp.as_deref(), Some("0-15"));
    assert_eq!(offer.ptime, Some(20));

    let mut session = SdpSession::new(42);
    let sdp = text(offer_across(&offer, relay("10.0.0.1:30002"), &mut session).expect("G.711"));
    assert!(sdp.contains("m=audio 30002 RTP/AVP 0 8 101\r\n"), "{sdp}");
    assert!(!sdp.contains("opus"), "{sdp}");
}

#[test]
fn offer_across_keeps_trunk_order_and_numbers() {
    let trunk = parsed(TRUNK);
    let mut session = SdpSession::new(1234);
    let sdp = offer_across(&trunk, relay("10.0.0.1:30002"), &mut session).expect("G.711");
    assert_eq!(
        text(sdp),
        "v=0\r\n\
o=siaga 1234 1 IN IP4 10.0.0.1\r\n\
s=siaga\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 30002 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    assert_eq!(session.version, 2);
}

#[test]
fn g729_only_has_no_common_codec() {
    let trunk = parsed(G729_ONLY);
    assert_eq!(pts(&trunk), [18, 101]);
    assert_eq!(trunk.formats[0].encoding.as_deref(), Some("G729"));
    let mut session = SdpSession::new(1);
    assert_eq!(
        offer_across(&trunk, relay("10.0.0.1:30002"), &mut session),
        Err(NoCommonCodec::NoneOffered)
    );
    assert_eq!(session.version, 1, "no description was sent");
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let trunk = parsed(IPV6);
    assert_eq!(trunk.rtp, Some(relay("[2001:db8::10]:49170")));
    assert_eq!(trunk.formats[0].codec(), Some(Codec::Pcma));
    assert!(trunk.formats[0].fmtp.is_none());
}

#[test]
fn writes_ipv6_relay_address() {
    let trunk = parsed(IPV6);
    let mut session = SdpSession::new(9);
    let sdp = text(offer_across(&trunk, relay("[2001:db8::1]:30000"), &mut session).expect("PCMA"));
    assert!(sdp.contains("o=siaga 9 1 IN IP6 2001:db8::1\r\n"), "{sdp}");
    assert!(sdp.contains("c=IN IP6 2001:db8::1\r\n"), "{sdp}");
    assert!(sdp.contains("m=audio 30000 RTP/AVP 8\r\n"), "{sdp}");
}

#[test]
fn media_level_connection_and_attributes_win() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
a=sendonly\r\na=ptime:30\r\n\
m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.8\r\na=recvonly\r\na=ptime:20\r\n";
    let offer = parsed(sdp);
    assert_eq!(offer.rtp, Some(relay("10.0.0.8:4000")));
    assert_eq!(offer.direction, Direction::RecvOnly);
    assert_eq!(offer.ptime, Some(20));

    let session_only = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(parsed(session_only).direction, Direction::SendOnly);
}

#[test]
fn lf_line_endings_and_lower_case_names_are_read() {
    let sdp = "v=0\no=- 1 1 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n\
m=audio 4000 RTP/AVP 97\na=rtpmap:97 pcma/8000\n";
    let offer = parsed(sdp);
    assert_eq!(offer.formats[0].codec(), Some(Codec::Pcma));
}

#[test]
fn malformed_and_unusable_bodies_are_errors() {
    assert!(matches!(parse(b"hello"), Err(SdpError::Syntax(_))));
    assert!(matches!(parse(b""), Err(SdpError::Syntax(_))));
    assert!(matches!(
        parse(&[0xff, 0xfe, b'=', 0x00]),
        Err(SdpError::Syntax(_))
    ));
    let head = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\n";
    let no_c = format!("{head}t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(parse(no_c.as_bytes()), Err(SdpError::NoConnection));
    let video = format!("{head}c=IN IP4 10.0.0.9\r\nt=0 0\r\nm=video 4000 RTP/AVP 31\r\n");
    assert_eq!(parse(video.as_bytes()), Err(SdpError::NoAudio));
    let srtp = format!("{head}c=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n");
    assert_eq!(parse(srtp.as_bytes()), Err(SdpError::NoAudio));
    let fqdn = format!("{head}c=IN IP4 media.example\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(
        parse(fqdn.as_bytes()),
        Err(SdpError::BadAddress("media.example".to_owned()))
    );
    let multicast = format!("{head}c=IN IP4 224.2.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert!(matches!(
        parse(multicast.as_bytes()),
        Err(SdpError::BadAddress(_))
    ));
}

#[test]
fn bad_attributes_and_format_tokens_are_skipped() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 300 x 8 8 98\r\na=rtpmap:98\r\na=rtpmap:8 PCMA/eight\r\na=ptime:abc\r\n";
    let offer = parsed(sdp);
    assert_eq!(pts(&offer), [8, 98]);
    // The broken rtpmap is ignored: the static table still names 8.
    assert_eq!(offer.formats[0].codec(), Some(Codec::Pcma));
    assert_eq!(offer.formats[1].encoding, None);
    assert_eq!(offer.ptime, None);
}

/// An operator's answer to [`TRUNK`]'s derived offer, as baresip writes it.
fn operator_answer(m_line: &str, extra: &str) -> MediaOffer {
    parsed(&format!(
        "v=0\r\no=- 99 100 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n\
{m_line}\r\n{extra}"
    ))
}

#[test]
fn answer_across_takes_operator_choice_with_trunk_numbers() {
    let trunk = parsed(TRUNK);
    let answer = operator_answer(
        "m=audio 10942 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=ptime:20\r\na=sendrecv\r\n",
    );
    assert_eq!(answer.rtp, Some(relay("192.168.1.20:10942")));
    let mut session = SdpSession::new(77);
    session.version = 5;
    let sdp = answer_across(&trunk, &answer, relay("10.0.0.1:30000"), &mut session)
        .expect("PCMU in common");
    assert_eq!(
        text(sdp),
        "v=0\r\n\
o=siaga 77 5 IN IP4 10.0.0.1\r\n\
s=siaga\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    assert_eq!(session.version, 6);
}

#[test]
fn answer_with_other_event_number_drops_dtmf_only() {
    let trunk = parsed(TRUNK);
    let answer = operator_answer(
        "m=audio 10942 RTP/AVP 8 96",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
    );
    let mut session = SdpSession::new(1);
    let sdp =
        text(answer_across(&trunk, &answer, relay("10.0.0.1:30000"), &mut session).expect("PCMA"));
    assert!(sdp.contains("m=audio 30000 RTP/AVP 8\r\n"), "{sdp}");
    assert!(!sdp.contains("telephone-event"), "{sdp}");
}

#[test]
fn answers_without_a_common_codec_fail_the_leg() {
    let trunk = parsed(TRUNK);
    let mut session = SdpSession::new(1);
    let at = relay("10.0.0.1:30000");
    // Only telephone-event, at the offered number: no audio.
    let events = operator_answer(
        "m=audio 10942 RTP/AVP 101",
        "a=rtpmap:101 telephone-event/8000\r\n",
    );
    assert_eq!(
        answer_across(&trunk, &events, at, &mut session),
        Err(NoCommonCodec::NoneAnswered)
    );
    // A codec that was never offered.
    let g729 = operator_answer("m=audio 10942 RTP/AVP 18", "");
    assert_eq!(
        answer_across(&trunk, &g729, at, &mut session),
        Err(NoCommonCodec::NoneAnswered)
    );
    // An offered number reused for another codec.
    let remapped = operator_answer("m=audio 10942 RTP/AVP 8", "a=rtpmap:8 PCMU/8000\r\n");
    assert_eq!(
        answer_across(&trunk, &remapped, at, &mut session),
        Err(NoCommonCodec::NoneAnswered)
    );
    // The stream rejected.
    let rejected = operator_answer("m=audio 0 RTP/AVP 8", "");
    assert_eq!(rejected.rtp, None);
    assert_eq!(
        answer_across(&trunk, &rejected, at, &mut session),
        Err(NoCommonCodec::Rejected)
    );
    assert_eq!(session.version, 1, "no description was sent");
}

#[test]
fn other_streams_are_rejected_in_the_answer_in_order() {
    let trunk = parsed(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=video 5000 RTP/AVP 31 34\r\na=rtpmap:31 H261/90000\r\n\
m=audio 0 RTP/AVP 0\r\n\
m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n\
m=image 6000 udptl t38\r\n",
    );
    assert_eq!(trunk.audio_index, 2);
    assert_eq!(trunk.m_lines.len(), 4);
    assert_eq!(trunk.direction, Direction::SendOnly);

    let mut session = SdpSession::new(5);
    let offer = text(offer_across(&trunk, relay("10.0.0.1:30002"), &mut session).expect("PCMA"));
    assert_eq!(offer.matches("m=").count(), 1, "{offer}");
    assert!(offer.contains("a=sendonly\r\n"), "{offer}");

    let answer = operator_answer("m=audio 10942 RTP/AVP 8", "a=recvonly\r\n");
    let sdp =
        text(answer_across(&trunk, &answer, relay("10.0.0.1:30000"), &mut session).expect("PCMA"));
    let m_lines: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=video 0 RTP/AVP 31 34",
            "m=audio 0 RTP/AVP 0",
            "m=audio 30000 RTP/AVP 8",
            "m=image 0 udptl t38",
        ]
    );
    assert!(sdp.contains("a=recvonly\r\n"), "{sdp}");
    // What siaga writes reads back as the same stream.
    let back = parsed(&sdp);
    assert_eq!(back.audio_index, 2);
    assert_eq!(back.rtp, Some(relay("10.0.0.1:30000")));
    assert_eq!(back.direction, Direction::RecvOnly);
}

#[test]
fn disabled_trunk_audio_cannot_be_offered() {
    let trunk = parsed("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\n");
    assert_eq!(trunk.rtp, None);
    let mut session = SdpSession::new(1);
    assert_eq!(
        offer_across(&trunk, relay("10.0.0.1:30002"), &mut session),
        Err(NoCommonCodec::Rejected)
    );
}

#[test]
fn random_session_ids_fit_signed_parsers() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..100 {
        let s = SdpSession::random(&mut rng);
        assert!(s.id > 0 && s.id < 1 << 62);
        assert_eq!(s.version, 1);
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&body);
    }

    #[test]
    fn parse_never_panics_on_edited_sdp(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        cut in 0usize..20,
        insert in "[a-z0-9=:/ .\r\n-]{0,12}",
    ) {
        let base = [SIPP_UAC, BARESIP, TRUNK, IPV6][which];
        let at = at.index(base.len());
        let end = (at + cut).min(base.len());
        let edited = format!("{}{insert}{}", &base[..at], &base[end..]);
        if let Ok(offer) = parse(edited.as_bytes()) {
            let mut session = SdpSession::new(1);
            let at = SocketAddr::from(([10, 0, 0, 1], 30000));
            if let Ok(sdp) = offer_across(&offer, at, &mut session) {
                // What siaga writes always reads back.
                prop_assert!(parse(&sdp).is_ok(), "{:?}", sdp);
            }
            let _ = answer_across(&offer, &offer, at, &mut session);
        }
    }
}
