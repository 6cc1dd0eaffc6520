//! Offer/answer across siaga's two legs (RFC 3264 §5, §6, §8), with the relay's address
//! written in place of each peer's (media anchoring). The same two steps serve the initial
//! call and every later offer, from either side (a hold or resume re-INVITE or UPDATE):
//!
//! 1. One side's offer arrives (the trunk's INVITE; later a re-INVITE/UPDATE from either
//!    side). [`offer_across`] writes siaga's offer to the other side: the relay's address
//!    on that side, and the offerer's supported formats ([`Codec`]) in its order with its
//!    payload type numbers. Nothing else is offered, so the relay can forward RTP
//!    unchanged on both legs.
//! 2. The other side's answer arrives. [`answer_across`] writes siaga's answer to the
//!    offerer: the formats the answerer chose, in its order, with the offerer's numbers,
//!    and the relay's address on the offerer's side. Every other `m=` line of the offer is
//!    rejected with port 0 (RFC 3264 §6).
//!
//! Hold (RFC 3264 §8.4): the direction attribute crosses unchanged (`sendonly`,
//! `recvonly`, `inactive`). The legacy hold form — an offer with connection address
//! `0.0.0.0` — cannot cross as written, since siaga writes the relay's address: it
//! becomes the direction it means (the offerer receives nothing: `sendrecv` becomes
//! `sendonly`, `recvonly` becomes `inactive`).
//!
//! Payload type numbers: RFC 3264 §6.1 says an answerer SHOULD use the offer's numbers for
//! dynamic payload types. Because payloads are relayed unchanged, siaga accepts an answered
//! format only when its number was offered for the same codec; one answered with another
//! number (say telephone-event as 96 when 101 was offered) counts as not in common. An
//! answer with no G.711 codec left is [`NoCommonCodec`]: for the first answer that operator
//! leg fails and the next operator is tried; for a later offer the offerer gets 488 and the
//! session goes on as it was (RFC 3264 §8).

use super::{Codec, Direction, MediaOffer, PayloadFormat};
use bytes::Bytes;
use rand::Rng;
use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};
use std::net::{IpAddr, SocketAddr};

/// The SDP origin siaga writes on one leg (RFC 4566 §5.2): `o=siaga <id> <version> IN IP4
/// <relay ip>`. One per dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdpSession {
    /// sess-id: fixed for the dialog.
    pub id: u64,
    /// sess-version the next description will carry; each description written increments
    /// it (RFC 3264 §8: a changed description carries a higher version).
    pub version: u64,
}

impl SdpSession {
    /// A session with id `id`, whose first description carries version 1.
    pub const fn new(id: u64) -> SdpSession {
        SdpSession { id, version: 1 }
    }

    /// A session with a random id in 1‥2⁶², small enough for parsers that read it as a
    /// signed 64-bit number. `rng` is the engine's.
    pub fn random(rng: &mut impl Rng) -> SdpSession {
        SdpSession::new(rng.random_range(1..1u64 << 62))
    }

    fn next_version(&mut self) -> u64 {
        let version = self.version;
        self.version = self.version.wrapping_add(1);
        version
    }
}

/// Why no audio can be set up on a leg: the trunk's offer (answer it 488, RFC 3264 §6) or an
/// operator's answer (fail that leg, try the next operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoCommonCodec {
    /// The offer holds no PCMA or PCMU format.
    #[error("No G.711 codec offered")]
    NoneOffered,
    /// The audio stream has port 0: disabled in the offer, or rejected by the answerer.
    #[error("Audio stream rejected")]
    Rejected,
    /// The answer holds no offered G.711 format with its offered payload type number.
    #[error("No offered G.711 codec in the answer")]
    NoneAnswered,
}

/// siaga's offer to the other side for `offer`, one side's offer (RFC 3264 §5): one
/// `m=audio` line at `relay` (the relay's address on the other side) with the offer's
/// supported formats, its `a=ptime` and its direction (the legacy hold form mapped, see
/// the module doc). Increments `session.version`.
///
/// Errors: [`NoCommonCodec::Rejected`] when the offer's audio port is 0,
/// [`NoCommonCodec::NoneOffered`] when no PCMA/PCMU is left (the offerer gets 488).
pub fn offer_across(
    offer: &MediaOffer,
    relay: SocketAddr,
    session: &mut SdpSession,
) -> Result<Bytes, NoCommonCodec> {
    let audio = offered_audio(offer, relay)?;
    Ok(write(relay.ip(), session, vec![audio]))
}

/// [`offer_across`] on a leg where siaga already sent `previous` (its last offer or
/// answer there): RFC 3264 §8 — a later offer holds every `m=` line of the previous SDP,
/// in order. The audio stream takes the place it had; every other line stays, with port
/// 0 (not used, RFC 3264 §8.2).
///
/// Errors: those of [`offer_across`].
pub fn reoffer_across(
    offer: &MediaOffer,
    relay: SocketAddr,
    session: &mut SdpSession,
    previous: &MediaOffer,
) -> Result<Bytes, NoCommonCodec> {
    let mut audio = Some(offered_audio(offer, relay)?);
    let mut media: Vec<MediaDescription> = previous
        .m_lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let own = if i == previous.audio_index {
                audio.take()
            } else {
                None
            };
            own.unwrap_or_else(|| rejected(line))
        })
        .collect();
    media.extend(audio);
    Ok(write(relay.ip(), session, media))
}

/// The audio line of siaga's offer for `offer` at `relay` (see [`offer_across`]).
fn offered_audio(offer: &MediaOffer, relay: SocketAddr) -> Result<MediaDescription, NoCommonCodec> {
    if offer.rtp.is_none() {
        return Err(NoCommonCodec::Rejected);
    }
    let formats: Vec<&PayloadFormat> = offer.supported_formats().map(|(f, _)| f).collect();
    if !offer.supported_formats().any(|(_, c)| c.is_audio()) {
        return Err(NoCommonCodec::NoneOffered);
    }
    let direction = match (offer.rtp.map(|a| a.ip().is_unspecified()), offer.direction) {
        (Some(true), Direction::SendRecv) => Direction::SendOnly,
        (Some(true), Direction::RecvOnly) => Direction::Inactive,
        (_, direction) => direction,
    };
    Ok(audio_description(
        relay.port(),
        &formats,
        offer.ptime,
        direction,
    ))
}

/// siaga's answer to the offerer once the other side answered `answer` to the offer
/// [`offer_across`] made from `offer` (RFC 3264 §6): the answerer's formats that line up
/// with the offer (same payload type, same codec), in the answerer's order, with
/// `a=rtpmap` as the offerer wrote it and `a=fmtp`, `a=ptime` and the direction as
/// answered; the audio at `relay` (the relay's address on the offerer's side); the offer's
/// other `m=` lines rejected with port 0. Increments `session.version`.
///
/// Errors: [`NoCommonCodec::Rejected`] when the answerer answered port 0,
/// [`NoCommonCodec::NoneAnswered`] when no offered G.711 format is in the answer, and the
/// errors of [`offer_across`] for the offer.
pub fn answer_across(
    offer: &MediaOffer,
    answer: &MediaOffer,
    relay: SocketAddr,
    session: &mut SdpSession,
) -> Result<Bytes, NoCommonCodec> {
    if offer.rtp.is_none() || answer.rtp.is_none() {
        return Err(NoCommonCodec::Rejected);
    }
    let mut chosen: Vec<PayloadFormat> = Vec::new();
    for (answered, codec) in answer.supported_formats() {
        let offered = offer
            .supported_formats()
            .find(|(f, c)| f.payload_type == answered.payload_type && *c == codec);
        if let Some((offered, _)) = offered {
            chosen.push(PayloadFormat {
                fmtp: answered.fmtp.clone(),
                ..offered.clone()
            });
        }
    }
    if !chosen
        .iter()
        .any(|f| f.codec().is_some_and(Codec::is_audio))
    {
        return Err(NoCommonCodec::NoneAnswered);
    }
    let chosen: Vec<&PayloadFormat> = chosen.iter().collect();
    let media = offer
        .m_lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == offer.audio_index {
                audio_description(relay.port(), &chosen, answer.ptime, answer.direction)
            } else {
                rejected(line)
            }
        })
        .collect();
    Ok(write(relay.ip(), session, media))
}

/// siaga's answer to `offer` in a call that wants no media (an operator's feature code):
/// the audio stream accepted `a=inactive` at `at` (RFC 3264 §5.1, §6: neither side sends)
/// with the offer's supported formats, the offer's other `m=` lines rejected with port 0;
/// when the audio cannot be accepted (port 0, no G.711) every stream is rejected (§6).
/// Increments `session.version`.
pub fn answer_inactive(offer: &MediaOffer, at: SocketAddr, session: &mut SdpSession) -> Bytes {
    let inactive = MediaOffer {
        direction: Direction::Inactive,
        ..offer.clone()
    };
    answer_across(offer, &inactive, at, session).unwrap_or_else(|_| {
        write(
            at.ip(),
            session,
            offer.m_lines.iter().map(rejected).collect(),
        )
    })
}

/// siaga's offer in the 2xx to an INVITE without one (RFC 3261 §13.2.1) in a call that
/// wants no media: one `m=audio` at `at` with PCMA, PCMU and telephone-event, `a=inactive`
/// (RFC 3264 §5.1). Increments `session.version`.
pub fn offer_inactive(at: SocketAddr, session: &mut SdpSession) -> Bytes {
    let format = |payload_type: u8, encoding: &str, fmtp: Option<&str>| PayloadFormat {
        payload_type,
        encoding: Some(encoding.to_owned()),
        clock_rate: Some(8000),
        channels: None,
        fmtp: fmtp.map(str::to_owned),
    };
    let formats = [
        format(8, "PCMA", None),
        format(0, "PCMU", None),
        format(101, "telephone-event", Some("0-16")),
    ];
    let formats: Vec<&PayloadFormat> = formats.iter().collect();
    let audio = audio_description(at.port(), &formats, None, Direction::Inactive);
    write(at.ip(), session, vec![audio])
}

/// `m=audio <port> RTP/AVP <pts>` with an `a=rtpmap` per format (static ones too: common
/// practice, and what SIPp and baresip write), `a=fmtp`, `a=ptime`, the direction.
fn audio_description(
    port: u16,
    formats: &[&PayloadFormat],
    ptime: Option<u32>,
    direction: Direction,
) -> MediaDescription {
    let mut attributes = Vec::new();
    for f in formats {
        // Only supported formats reach here: they have an encoding and a rate.
        if let (Some(encoding), Some(rate)) = (&f.encoding, f.clock_rate) {
            let channels = f.channels.map(|c| format!("/{c}")).unwrap_or_default();
            attributes.push(value_attr(
                "rtpmap",
                format!("{} {encoding}/{rate}{channels}", f.payload_type),
            ));
        }
    }
    for f in formats {
        if let Some(fmtp) = &f.fmtp {
            attributes.push(value_attr("fmtp", format!("{} {fmtp}", f.payload_type)));
        }
    }
    if let Some(ptime) = ptime {
        attributes.push(value_attr("ptime", ptime.to_string()));
    }
    attributes.push(Attribute::new(direction.attribute().to_owned(), None));
    MediaDescription {
        media_name: MediaName {
            media: "audio".to_owned(),
            port: RangedPort {
                value: isize::try_from(port).expect("isize holds a u16 on 32/64-bit targets"),
                range: None,
            },
            protos: vec!["RTP".to_owned(), "AVP".to_owned()],
            formats: formats.iter().map(|f| f.payload_type.to_string()).collect(),
        },
        attributes,
        ..MediaDescription::default()
    }
}

/// A rejected stream: the offer's `m=` line with port 0 (RFC 3264 §6), no attributes.
fn rejected(line: &super::MLine) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: line.media.clone(),
            port: RangedPort {
                value: 0,
                range: None,
            },
            protos: line.proto.split('/').map(str::to_owned).collect(),
            formats: line.formats.clone(),
        },
        ..MediaDescription::default()
    }
}

fn value_attr(key: &str, value: String) -> Attribute {
    Attribute::new(key.to_owned(), Some(value))
}

/// The whole description: `v=0`, `o=siaga …`, `s=siaga`, session-level `c=`, `t=0 0`, then
/// `media` (RFC 4566 §5: the order the grammar requires).
fn write(ip: IpAddr, session: &mut SdpSession, media: Vec<MediaDescription>) -> Bytes {
    let address_type = match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let description = SessionDescription {
        version: 0,
        origin: Origin {
            username: "siaga".to_owned(),
            session_id: session.id,
            session_version: session.next_version(),
            network_type: "IN".to_owned(),
            address_type: address_type.to_owned(),
            unicast_address: ip.to_string(),
        },
        session_name: "siaga".to_owned(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".to_owned(),
            address_type: address_type.to_owned(),
            address: Some(Address {
                address: ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: Vec::new(),
        }],
        media_descriptions: media,
        ..SessionDescription::default()
    };
    Bytes::from(description.marshal())
}
