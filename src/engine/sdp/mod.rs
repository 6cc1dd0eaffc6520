//! SDP for siaga's audio calls: reading the audio stream out of an offer or answer
//! (RFC 4566 §5, §6; RFC 3551 §6 static payload types) and the offer/answer rules siaga
//! applies as a B2BUA that anchors media ([`negotiate`], RFC 3264 §5, §6).
//!
//! Parsing and writing use the `sdp` crate (webrtc-rs); what this module adds is the view of
//! the one audio stream siaga relays ([`MediaOffer`]) and the codec policy: G.711 A-law
//! (PCMA) and µ-law (PCMU) plus telephone-event (RFC 4733), all at 8000 Hz.
//!
//! Leniency: an attribute siaga cannot read (a broken `a=rtpmap`, `a=ptime`) is ignored, and
//! so is a format token that is not a payload type number; what cannot be relayed at all
//! (no RTP/AVP audio stream, no usable connection address) is an [`SdpError`]. Not
//! supported, by design: multicast and FQDN connection addresses, SRTP (`RTP/SAVP`),
//! `a=rtcp` (RFC 3605: the relay sends RTCP to the RTP port + 1 until it latches) and
//! `a=rtcp-mux` (not forwarded, so neither peer multiplexes).

mod negotiate;

#[cfg(test)]
mod tests;

pub use negotiate::{
    NoCommonCodec, SdpSession, answer_across, answer_inactive, offer_across, offer_inactive,
    reoffer_across,
};

use sdp::description::common::Attribute;
use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;
use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

/// Why an SDP body cannot be used for a relayed audio call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not SDP (RFC 4566 §5 grammar, as the `sdp` crate reads it); the text is
    /// the crate's description.
    #[error("Malformed SDP: {0}")]
    Syntax(String),
    /// No `m=audio` line with the `RTP/AVP` profile (RFC 3551).
    #[error("No RTP/AVP audio stream in SDP")]
    NoAudio,
    /// The audio stream has a port but no `c=` line at media or session level (RFC 4566
    /// §5.7).
    #[error("No connection address for the audio stream")]
    NoConnection,
    /// The `c=` address is not a unicast IPv4 or IPv6 literal (an FQDN, a multicast
    /// `addr/ttl`); the text is the address as written.
    #[error("Unusable connection address in SDP: {0}")]
    BadAddress(String),
}

/// A codec siaga offers and relays: G.711 and RFC 4733 telephone events, all at 8000 Hz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, `PCMU/8000`, static payload type 0 (RFC 3551 §4.5.14).
    Pcmu,
    /// G.711 A-law, `PCMA/8000`, static payload type 8 (RFC 3551 §4.5.14).
    Pcma,
    /// `telephone-event/8000`: DTMF as RTP events (RFC 4733 §2), dynamic payload type.
    TelephoneEvent,
}

impl Codec {
    /// The encoding name as written in `a=rtpmap` (RFC 4566 §6).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::TelephoneEvent => "telephone-event",
        }
    }

    /// The RTP clock rate, in Hz.
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// Whether the codec carries audio (a stream needs one; telephone-event alone is not a
    /// call).
    pub const fn is_audio(self) -> bool {
        !matches!(self, Codec::TelephoneEvent)
    }
}

/// One payload format of the audio stream: its number on the `m=` line and what `a=rtpmap`
/// / `a=fmtp` (RFC 4566 §6) or the static table (RFC 3551 §6) say it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadFormat {
    /// The RTP payload type, 0–127 (RFC 3550 §5.1).
    pub payload_type: u8,
    /// The encoding name from `a=rtpmap`, or from RFC 3551's table for a static payload
    /// type without one; `None` for a dynamic payload type without `a=rtpmap`.
    pub encoding: Option<String>,
    /// The clock rate in Hz, when known as `encoding` is.
    pub clock_rate: Option<u32>,
    /// The channel count from `a=rtpmap` (`PCMA/8000/1`), when written.
    pub channels: Option<u16>,
    /// The `a=fmtp` parameters for this payload type, as written (`0-16`).
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// The supported codec this format is, if any: the encoding name compared without case,
    /// at 8000 Hz, mono.
    pub fn codec(&self) -> Option<Codec> {
        let encoding = self.encoding.as_deref()?;
        if self.clock_rate != Some(8000) || self.channels.is_some_and(|c| c != 1) {
            return None;
        }
        [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent]
            .into_iter()
            .find(|c| encoding.eq_ignore_ascii_case(c.encoding_name()))
    }
}

/// The stream direction attribute (RFC 4566 §6, RFC 3264 §5.1). Default `sendrecv`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`.
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub const fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(key: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.attribute() == key)
    }
}

/// One `m=` line as written: kept for every stream so that an answer can hold the same
/// streams in the same order, rejecting those siaga does not relay (RFC 3264 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MLine {
    /// The media type (`audio`, `video`, `image` …).
    pub media: String,
    /// The port; 0 for a stream that is disabled or rejected (RFC 3264 §5.1, §6).
    pub port: u16,
    /// The transport protocol (`RTP/AVP`, `udptl` …).
    pub proto: String,
    /// The format tokens, in order.
    pub formats: Vec<String>,
}

/// The audio stream of an SDP offer or answer, as siaga relays it; the other `m=` lines are
/// kept in [`MediaOffer::m_lines`] only to be rejected in an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaOffer {
    /// `o=` sess-id (RFC 4566 §5.2).
    pub session_id: u64,
    /// `o=` sess-version: a changed version means a changed description (RFC 3264 §8).
    pub session_version: u64,
    /// Where the peer receives RTP: the `c=` address (media level, else session level) and
    /// the `m=` port (an IPv4-mapped IPv6 address as its IPv4 address). `None` when the
    /// port is 0: the stream is disabled (in an offer) or
    /// rejected (in an answer). The address may be unspecified (`0.0.0.0`, the old hold
    /// form, RFC 3264 §8.4): the relay sends nothing there.
    pub rtp: Option<SocketAddr>,
    /// The payload formats in `m=` line order (the sender's preference), each payload type
    /// once; tokens that are not 0–127 are skipped.
    pub formats: Vec<PayloadFormat>,
    /// `a=ptime` in ms (RFC 4566 §6), media level, else session level.
    pub ptime: Option<u32>,
    /// The direction attribute, media level, else session level, else `sendrecv`.
    pub direction: Direction,
    /// Every `m=` line of the description, in order.
    pub m_lines: Vec<MLine>,
    /// The index in `m_lines` of the audio stream described above: the first `audio`
    /// `RTP/AVP` line with a port, else the first with port 0.
    pub audio_index: usize,
}

impl MediaOffer {
    /// The `o=` sess-id and sess-version: what tells a changed description from the same
    /// one again (RFC 3264 §8, RFC 4566 §5.2).
    pub fn origin(&self) -> (u64, u64) {
        (self.session_id, self.session_version)
    }

    /// The formats siaga supports, in this description's order, with its payload types.
    pub fn supported_formats(&self) -> impl Iterator<Item = (&PayloadFormat, Codec)> {
        self.formats
            .iter()
            .filter_map(|f| f.codec().map(|codec| (f, codec)))
    }
}

/// The profile siaga relays (RFC 3551).
const RTP_AVP: &str = "RTP/AVP";

/// Reads the audio stream of an SDP body (an offer or an answer). Errors: [`SdpError`].
pub fn parse(body: &[u8]) -> Result<MediaOffer, SdpError> {
    let description = SessionDescription::unmarshal(&mut Cursor::new(body))
        .map_err(|e| SdpError::Syntax(e.to_string()))?;
    let m_lines: Vec<MLine> = description
        .media_descriptions
        .iter()
        .map(|m| MLine {
            media: m.media_name.media.clone(),
            // The crate read the port as a u16; anything else would be its bug: port 0.
            port: u16::try_from(m.media_name.port.value).unwrap_or(0),
            proto: m.media_name.protos.join("/"),
            formats: m.media_name.formats.clone(),
        })
        .collect();
    let is_audio = |l: &MLine| l.media == "audio" && l.proto.eq_ignore_ascii_case(RTP_AVP);
    let audio_index = m_lines
        .iter()
        .position(|l| is_audio(l) && l.port != 0)
        .or_else(|| m_lines.iter().position(is_audio))
        .ok_or(SdpError::NoAudio)?;
    let media = &description.media_descriptions[audio_index];
    let port = m_lines[audio_index].port;

    let rtp = if port == 0 {
        None
    } else {
        let connection = media
            .connection_information
            .as_ref()
            .or(description.connection_information.as_ref())
            .and_then(|c| c.address.as_ref())
            .ok_or(SdpError::NoConnection)?;
        let ip: IpAddr = connection
            .address
            .parse()
            .map_err(|_| SdpError::BadAddress(connection.address.clone()))?;
        if ip.is_multicast() {
            return Err(SdpError::BadAddress(connection.address.clone()));
        }
        // `c=IN IP6 ::ffff:192.0.2.2` (RFC 5118 §4.9) is reached as the IPv4 address it
        // maps: that is where an IPv4 relay can send.
        Some(SocketAddr::new(ip.to_canonical(), port))
    };

    let ptime = media_attr(media, "ptime")
        .or_else(|| session_attr(&description.attributes, "ptime"))
        .and_then(|v| v.trim().parse().ok());
    let direction = direction_of(&media.attributes)
        .or_else(|| direction_of(&description.attributes))
        .unwrap_or_default();

    Ok(MediaOffer {
        session_id: description.origin.session_id,
        session_version: description.origin.session_version,
        rtp,
        formats: formats_of(media),
        ptime,
        direction,
        m_lines,
        audio_index,
    })
}

/// The payload formats of an RTP m-line, in order, each payload type once.
fn formats_of(media: &MediaDescription) -> Vec<PayloadFormat> {
    let mut formats: Vec<PayloadFormat> = Vec::new();
    for token in &media.media_name.formats {
        let Ok(pt) = token.parse::<u8>() else {
            continue;
        };
        if pt > 127 || formats.iter().any(|f| f.payload_type == pt) {
            continue;
        }
        let (encoding, clock_rate, channels) = match rtpmap(media, pt) {
            Some((name, rate, channels)) => (Some(name), Some(rate), channels),
            None => match static_payload_type(pt) {
                Some((name, rate)) => (Some(name.to_owned()), Some(rate), None),
                None => (None, None, None),
            },
        };
        formats.push(PayloadFormat {
            payload_type: pt,
            encoding,
            clock_rate,
            channels,
            fmtp: fmtp(media, pt),
        });
    }
    formats
}

/// RFC 3551 §6's static audio payload types siaga may meet (names only serve diagnostics
/// except for 0 and 8).
fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    })
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` for `pt`: the first one that reads.
fn rtpmap(media: &MediaDescription, pt: u8) -> Option<(String, u32, Option<u16>)> {
    attr_for_pt(media, "rtpmap", pt).find_map(|rest| {
        let mut parts = rest.trim().split('/');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.trim().parse().ok()?),
            None => None,
        };
        Some((name.to_owned(), rate, channels))
    })
}

/// `a=fmtp:<pt> <params>` for `pt`: the parameters, trimmed.
fn fmtp(media: &MediaDescription, pt: u8) -> Option<String> {
    attr_for_pt(media, "fmtp", pt)
        .map(|rest| rest.trim().to_owned())
        .find(|p| !p.is_empty())
}

/// The values of `a=<key>:<pt> <rest>` lines for `pt`, each without `<pt> `.
fn attr_for_pt<'a>(
    media: &'a MediaDescription,
    key: &'a str,
    pt: u8,
) -> impl Iterator<Item = &'a str> + 'a {
    media
        .attributes
        .iter()
        .filter(move |a| a.key == key)
        .filter_map(move |a| {
            let value = a.value.as_deref()?.trim_start();
            let (number, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
            (number.parse::<u8>().ok()? == pt).then_some(rest)
        })
}

fn media_attr<'a>(media: &'a MediaDescription, key: &str) -> Option<&'a str> {
    session_attr(&media.attributes, key)
}

fn session_attr<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_deref())
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .find_map(|a| Direction::from_attribute(&a.key))
}
