//! The parsed SIP message: a zero-copy index over the received bytes (RFC 3261 §7).
//!
//! [`SipMessage::parse`] finds the start line, every header's name and value span (names
//! matched case-insensitively, compact forms mapped, folded lines kept as one header) and
//! the body, framed by Content-Length (RFC 3261 §18.3). Nothing else is interpreted:
//! typed views of single headers are parsed on demand (see the `view` modules).
//!
//! Leniency (RFC 4475): runs of SP between request-line elements and trailing SP are
//! accepted (§3.1.2.9, §3.1.2.10); whitespace before a header colon is accepted; bare LF
//! line ends are accepted; over UDP, a header section that runs to the end of the datagram
//! without an empty line is accepted (§3.1.2.15's choice). Strict: a Request-URI with
//! embedded spaces (§3.1.2.8), repeated, negative or non-numeric Content-Length, a body
//! shorter than Content-Length, a status code outside 100–699.

use super::error::ParseError;
use super::framing::find_header_end;
use super::header::HeaderName;
use super::method::{Method, is_token_char};
use crate::engine::Transport;
use bytes::Bytes;
use std::borrow::Cow;

/// A byte range into the message buffer. `u32` keeps the index small; messages are at
/// most 64 KiB (datagrams) or [`super::framing::MAX_MESSAGE_SIZE`] (streams).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Callers only build spans within a buffer whose length fits in u32 (checked in
        // `parse`), so these conversions cannot saturate.
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StartLine {
    Request {
        method: Method,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderEntry {
    name: HeaderName,
    raw_name: Span,
    value: Span,
    folded: bool,
}

/// A parsed SIP request or response: the bytes and an index into them.
///
/// Cheap to clone (the bytes are reference-counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMessage {
    buf: Bytes,
    start: StartLine,
    headers: Vec<HeaderEntry>,
    body: Span,
}

/// A message that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// What is wrong; its text becomes the 400's reason phrase.
    pub error: ParseError,
    /// The start line and headers when those could be indexed (the body is then empty),
    /// so a 400 can still be addressed by its Via and echo its Call-ID, From, To and CSeq.
    pub partial: Option<Box<SipMessage>>,
}

impl From<ParseError> for Malformed {
    fn from(error: ParseError) -> Self {
        Malformed {
            error,
            partial: None,
        }
    }
}

/// One header field of a message, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct HeaderField<'a> {
    buf: &'a [u8],
    entry: &'a HeaderEntry,
}

impl<'a> HeaderField<'a> {
    /// The header's known name ([`HeaderName::Other`] for extension headers).
    pub fn name(&self) -> HeaderName {
        self.entry.name
    }

    /// The name as written (e.g. `v`, `ViA`).
    pub fn raw_name(&self) -> &'a [u8] {
        &self.buf[self.entry.raw_name.range()]
    }

    /// The value as written, leading and trailing whitespace removed; folds included.
    pub fn raw_value(&self) -> &'a [u8] {
        &self.buf[self.entry.value.range()]
    }

    /// Whether the value was folded over several lines.
    pub fn is_folded(&self) -> bool {
        self.entry.folded
    }

    /// The value with every line fold (CRLF or LF, then whitespace) replaced by one SP
    /// (RFC 3261 §7.3.1). Borrowed unless the header was folded.
    pub fn value(&self) -> Cow<'a, [u8]> {
        let raw = self.raw_value();
        if !self.entry.folded {
            return Cow::Borrowed(raw);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'\r' | b'\n' => {
                    while i < raw.len() && matches!(raw[i], b'\r' | b'\n' | b' ' | b'\t') {
                        i += 1;
                    }
                    while out.last().is_some_and(|&b| b == b' ' || b == b'\t') {
                        out.pop();
                    }
                    out.push(b' ');
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Cow::Owned(out)
    }

    /// [`HeaderField::value`] as UTF-8 text (RFC 3261 header text is UTF-8).
    ///
    /// Errors: [`ParseError::BadHeader`] when it is not UTF-8.
    pub fn value_str(&self) -> Result<Cow<'a, str>, ParseError> {
        match self.value() {
            Cow::Borrowed(b) => std::str::from_utf8(b).map(Cow::Borrowed),
            Cow::Owned(v) => String::from_utf8(v)
                .map(Cow::Owned)
                .map_err(|e| e.utf8_error()),
        }
        .map_err(|_| ParseError::bad(self.entry.name, "not UTF-8"))
    }
}

impl SipMessage {
    /// Parses one message from `buf`: one whole UDP datagram, or exactly one frame cut by
    /// [`super::framing::next_stream_frame`] for TCP.
    ///
    /// Over UDP a missing Content-Length means the body runs to the end of the datagram,
    /// and octets after the body are ignored (RFC 3261 §18.3, RFC 4475 §3.1.1.8). Over TCP
    /// Content-Length is required.
    ///
    /// Errors: see [`ParseError`]; [`Malformed::partial`] carries the header index when the
    /// error is in the body framing or the Request-URI, so the caller can answer 400.
    pub fn parse(buf: Bytes, transport: Transport) -> Result<SipMessage, Malformed> {
        if buf.len() > u32::MAX as usize / 2 {
            return Err(ParseError::TooLarge {
                limit: u32::MAX as usize / 2,
            }
            .into());
        }
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if lead == buf.len() {
            return Err(ParseError::Empty.into());
        }
        let head_end = find_header_end(&buf[lead..]).map(|e| e + lead);
        let head_limit = match (head_end, transport) {
            (Some(end), _) => end,
            (None, Transport::Udp) => buf.len(),
            (None, Transport::Tcp) => return Err(ParseError::UnterminatedHeaders.into()),
        };
        let line_end = buf[lead..head_limit]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head_limit, |p| p + lead);
        let (start, uri_error) = parse_start_line(&buf, lead, line_end)?;
        let (headers, header_error) = index_headers(&buf, line_end + 1, head_limit);
        let mut msg = SipMessage {
            buf,
            start,
            headers,
            body: Span::new(head_limit, head_limit),
        };
        let partial = |msg: SipMessage, error| Malformed {
            error,
            partial: Some(Box::new(msg)),
        };
        if let Some(error) = header_error.or(uri_error) {
            return Err(partial(msg, error));
        }
        let (declared, repeated) = {
            let mut lengths = msg.headers_named(HeaderName::ContentLength);
            let declared = lengths.next().map(|f| parse_content_length(f.raw_value()));
            (declared, lengths.next().is_some())
        };
        if repeated {
            return Err(partial(msg, ParseError::RepeatedContentLength));
        }
        let available = msg.buf.len() - head_limit;
        let body_len = match declared {
            Some(Ok(n)) if n > available => return Err(partial(msg, ParseError::TruncatedBody)),
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(partial(msg, e)),
            None if transport == Transport::Tcp => {
                return Err(partial(msg, ParseError::MissingContentLength));
            }
            None => available,
        };
        msg.body = Span::new(head_limit, head_limit + body_len);
        msg.buf.truncate(head_limit + body_len);
        Ok(msg)
    }

    /// The whole message as received (trailing datagram octets cut off).
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text as written; `None` for a response. Parse it with
    /// [`super::uri::Uri::parse`].
    pub fn request_uri_raw(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => std::str::from_utf8(&self.buf[uri.range()]).ok(),
            StartLine::Response { .. } => None,
        }
    }

    /// The SIP-Version token of the start line, e.g. `SIP/2.0`.
    pub fn version(&self) -> &[u8] {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                &self.buf[version.range()]
            }
        }
    }

    /// Whether the version is SIP/2.0 (case-insensitive, RFC 3261 §7.1); others draw 505.
    pub fn is_sip_2_0(&self) -> bool {
        self.version().eq_ignore_ascii_case(b"SIP/2.0")
    }

    /// The status code of a response (100–699); `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response as written (may be empty or UTF-8).
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(&self.buf[reason.range()]),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header field, in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderField<'_>> {
        self.headers.iter().map(|entry| HeaderField {
            buf: &self.buf,
            entry,
        })
    }

    /// Every field of one known header, in order (compact and long names alike).
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = HeaderField<'_>> {
        self.headers().filter(move |h| h.name() == name)
    }

    /// Every field of an extension header, by name (case-insensitive).
    pub fn headers_raw_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = HeaderField<'a>> + 'a {
        self.headers()
            .filter(move |h| h.raw_name().eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The first field of a known header.
    pub fn header(&self, name: HeaderName) -> Option<HeaderField<'_>> {
        self.headers_named(name).next()
    }

    /// The one field of a single-valued header (RFC 3261 §7.3.1).
    ///
    /// Errors: [`ParseError::MissingHeader`], [`ParseError::RepeatedHeader`].
    pub fn single(&self, name: HeaderName) -> Result<HeaderField<'_>, ParseError> {
        let mut it = self.headers_named(name);
        let first = it.next().ok_or(ParseError::MissingHeader(name))?;
        match it.next() {
            Some(_) => Err(ParseError::RepeatedHeader(name)),
            None => Ok(first),
        }
    }

    /// The body (exactly Content-Length bytes; may hold NULs and bare LFs).
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.range()]
    }
}

/// Parses the start line `buf[from..to]` (`to` at the LF or the end). Returns the start
/// line and, for a request whose method, Request-URI or version is malformed, the error to
/// report once the headers are indexed.
fn parse_start_line(
    buf: &[u8],
    from: usize,
    to: usize,
) -> Result<(StartLine, Option<ParseError>), ParseError> {
    let line = &buf[from..to];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let end = from + line.len();
    if line.starts_with(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (RFC 3261 §7.2).
        let version_end = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseError::BadStartLine)?;
        let rest = &line[version_end + 1..];
        let code_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let code = &rest[..code_len];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadStatusCode);
        }
        let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        let reason_start = (from + version_end + 1 + code_len + 1).min(end);
        let version = Span::new(from, from + version_end);
        if !is_version(&buf[version.range()]) {
            return Err(ParseError::BadVersion);
        }
        return Ok((
            StartLine::Response {
                version,
                code,
                reason: Span::new(reason_start, end),
            },
            None,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (RFC 3261 §7.1). Runs of SP and
    // trailing SP are tolerated (RFC 4475 §3.1.2.9, §3.1.2.10).
    let tokens: Vec<(usize, usize)> = split_sp(line).map(|(s, e)| (from + s, from + e)).collect();
    let Some(&(ms, me)) = tokens.first() else {
        return Err(ParseError::BadStartLine);
    };
    if tokens.len() < 3 {
        // Too few elements (or TAB separators): still a request, answered 400 by its Via.
        let uri = tokens
            .get(1)
            .map_or(Span::new(end, end), |&(s, e)| Span::new(s, e));
        let method = Method::from_token(&buf[ms..me])
            .unwrap_or_else(|| Method::Extension(String::from_utf8_lossy(&buf[ms..me]).into()));
        return Ok((
            StartLine::Request {
                method,
                uri,
                version: Span::new(end, end),
            },
            Some(ParseError::BadStartLine),
        ));
    }
    let (vs, ve) = tokens[tokens.len() - 1];
    // A malformed method, version or Request-URI is reported once the headers are indexed,
    // so the 400 can still be addressed by the Via.
    let (method, method_error) = match Method::from_token(&buf[ms..me]) {
        Some(m) => (m, None),
        None => (
            Method::Extension(String::from_utf8_lossy(&buf[ms..me]).into()),
            Some(ParseError::BadMethod),
        ),
    };
    let version_error = (!is_version(&buf[vs..ve])).then_some(ParseError::BadVersion);
    let uri_error = (tokens.len() != 3).then_some(ParseError::BadRequestUri);
    let uri_start = tokens[1].0;
    let uri_end = tokens[tokens.len() - 2].1;
    Ok((
        StartLine::Request {
            method,
            uri: Span::new(uri_start, uri_end),
            version: Span::new(vs, ve),
        },
        method_error.or(version_error).or(uri_error),
    ))
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT` (RFC 3261 §25.1, case-insensitive).
fn is_version(v: &[u8]) -> bool {
    let Some(rest) = v.get(4..).filter(|_| v[..4].eq_ignore_ascii_case(b"SIP/")) else {
        return false;
    };
    let mut parts = rest.split(|&b| b == b'.');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// The (start, end) offsets of the SP-separated tokens of `line`.
fn split_sp(line: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
        if i >= line.len() {
            return None;
        }
        let s = i;
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
        Some((s, i))
    })
}

/// Indexes the header lines in `buf[from..to]` (`to` is just past the empty line, or the
/// end of a UDP datagram without one). A malformed line is skipped and the first such
/// error returned beside the index, so a 400 can still be built from the other headers.
/// The continuation lines of a skipped line are skipped with it: they never extend the
/// header before it (whose value a 400 echoes).
fn index_headers(buf: &[u8], from: usize, to: usize) -> (Vec<HeaderEntry>, Option<ParseError>) {
    let mut headers: Vec<HeaderEntry> = Vec::with_capacity(16);
    let mut error = None;
    let mut pos = from;
    let mut skipping = false;
    while pos < to {
        let line_end = buf[pos..to]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(to, |p| p + pos);
        let line = &buf[pos..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Continuation (RFC 3261 §7.3.1): extends the previous header's value.
            let last = headers.last_mut().filter(|_| !skipping);
            let Some(last) = last else {
                error.get_or_insert(ParseError::OrphanContinuation);
                pos = line_end + 1;
                continue;
            };
            if !trim(line).is_empty() {
                let content_end = pos + trim_end_len(line);
                if last.value.start == last.value.end {
                    let lead = line.iter().take_while(|b| b.is_ascii_whitespace()).count();
                    last.value = Span::new(pos + lead, content_end);
                } else {
                    last.value = Span::new(last.value.range().start, content_end);
                    last.folded = true;
                }
            }
        } else {
            let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
            let name = trim(&line[..colon]);
            skipping = name.is_empty() || !name.iter().all(|&b| is_token_char(b));
            if skipping {
                error.get_or_insert(ParseError::BadHeaderLine);
                pos = line_end + 1;
                continue;
            }
            let name_start = pos + (name.as_ptr() as usize - line.as_ptr() as usize);
            let value_part = &line[colon + 1..];
            let lead = value_part
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            let value_start = pos + colon + 1 + lead;
            let value_end = (pos + trim_end_len(line)).max(value_start);
            headers.push(HeaderEntry {
                name: HeaderName::from_bytes(name),
                raw_name: Span::new(name_start, name_start + name.len()),
                value: Span::new(value_start, value_end),
                folded: false,
            });
        }
        pos = line_end + 1;
    }
    (headers, error)
}

/// Length of `line` without trailing whitespace.
fn trim_end_len(line: &[u8]) -> usize {
    line.iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1)
}

/// The Content-Length of a header section (`head` runs up to and including the empty
/// line): `Ok(None)` when the header is absent.
///
/// Errors: [`ParseError::BadContentLength`] for a negative, non-numeric or absurd value,
/// [`ParseError::RepeatedContentLength`] when it appears twice.
pub fn content_length_of(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if HeaderName::from_bytes(trim(&line[..colon])) != HeaderName::ContentLength {
            continue;
        }
        if found.is_some() {
            return Err(ParseError::RepeatedContentLength);
        }
        // The value may be folded onto the next lines (RFC 3261 §7.3.1 LWS).
        let mut value = trim(&line[colon + 1..]).to_vec();
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        {
            if !value.is_empty() {
                value.push(b' ');
            }
            value.extend_from_slice(trim(next));
        }
        found = Some(parse_content_length(trim(&value))?);
    }
    Ok(found)
}

/// Parses a Content-Length value (`1*DIGIT`, RFC 3261 §20.14): leading zeros allowed, at
/// most 9 significant digits.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<usize, ParseError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadContentLength);
    }
    let zeros = value.iter().take_while(|&&d| d == b'0').count();
    let value = &value[zeros..];
    if value.len() > 9 {
        return Err(ParseError::BadContentLength);
    }
    Ok(value
        .iter()
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')))
}

/// `s` without leading and trailing SP, HTAB, CR and LF.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}
