//! The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 `rport`; RFC 5118 IPv6 sent-by).

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::scan::{Param, find_param, is_token, parse_params, skip_ws};
use std::net::IpAddr;

const H: HeaderName = HeaderName::Via;

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version as written, e.g. `SIP` and `2.0`.
    pub protocol: (String, String),
    /// The transport token, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, or any token).
    pub transport: String,
    /// sent-by host as written: a host name, IPv4 address or `[IPv6]` reference.
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Every via-param, in order (`branch`, `received`, `rport`, `maddr`, `ttl`, others).
    pub params: Vec<Param>,
}

impl Via {
    /// Parses every Via value of one header field (comma-separated, RFC 3261 §7.3.1).
    ///
    /// Errors: [`ParseError::BadHeader`] naming the part (e.g. an empty value in
    /// `a,,b`, RFC 4475 §3.1.2.1).
    pub fn parse_list(value: &str) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        let mut rest = value;
        loop {
            let (via, used) = Via::parse_one(rest)?;
            out.push(via);
            let after = skip_ws(rest.as_bytes(), used);
            match rest.as_bytes().get(after) {
                None => return Ok(out),
                Some(b',') => rest = &rest[after + 1..],
                Some(_) => return Err(ParseError::bad(H, "junk after value")),
            }
        }
    }

    /// Parses one Via value at the start of `s`; returns it and the bytes it used.
    fn parse_one(s: &str) -> Result<(Via, usize), ParseError> {
        let b = s.as_bytes();
        let mut i = skip_ws(b, 0);
        let mut parts = Vec::with_capacity(3);
        for n in 0..3 {
            let start = i;
            while i < b.len() && super::super::method::is_token_char(b[i]) {
                i += 1;
            }
            if i == start {
                return Err(ParseError::bad(H, "malformed sent-protocol"));
            }
            parts.push(&s[start..i]);
            i = skip_ws(b, i);
            if n < 2 {
                if b.get(i) != Some(&b'/') {
                    return Err(ParseError::bad(H, "malformed sent-protocol"));
                }
                i = skip_ws(b, i + 1);
            }
        }
        // sent-by = host [ COLON port ]
        let host_start = i;
        if b.get(i) == Some(&b'[') {
            i = b[i..]
                .iter()
                .position(|&c| c == b']')
                .map(|p| i + p + 1)
                .ok_or(ParseError::bad(H, "unterminated IPv6 reference"))?;
        } else {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'.') {
                i += 1;
            }
        }
        let host = &s[host_start..i];
        if !is_valid_host(host) {
            return Err(ParseError::bad(H, "malformed sent-by host"));
        }
        let mut port = None;
        let after_host = skip_ws(b, i);
        if b.get(after_host) == Some(&b':') {
            i = skip_ws(b, after_host + 1);
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            port = Some(
                s[start..i]
                    .parse::<u16>()
                    .map_err(|_| ParseError::bad(H, "malformed sent-by port"))?,
            );
        }
        let params_start = i;
        let params_end = param_section_end(b, params_start);
        let params = parse_params(&s[params_start..params_end], H)?;
        let via = Via {
            protocol: (parts[0].to_owned(), parts[1].to_owned()),
            transport: parts[2].to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params,
        };
        via.check_params()?;
        Ok((via, params_end))
    }

    fn check_params(&self) -> Result<(), ParseError> {
        if let Some(branch) = find_param(&self.params, "branch")
            && !branch.is_some_and(is_token)
        {
            return Err(ParseError::bad(H, "malformed branch"));
        }
        if let Some(received) = find_param(&self.params, "received")
            && received.and_then(parse_ip).is_none()
        {
            return Err(ParseError::bad(H, "malformed received"));
        }
        if let Some(Some(rport)) = find_param(&self.params, "rport")
            && rport.parse::<u16>().is_err()
        {
            return Err(ParseError::bad(H, "malformed rport"));
        }
        Ok(())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// Whether the branch starts with the RFC 3261 magic cookie and has more after it
    /// (RFC 4475 §3.2.1: the bare cookie is no transaction id).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter as an address (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<IpAddr> {
        find_param(&self.params, "received")
            .flatten()
            .and_then(parse_ip)
    }

    /// `rport` (RFC 3581): `None` absent, `Some(None)` present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        find_param(&self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The sent-by host as an IP address, when it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        parse_ip(&self.host)
    }

    /// The sent-by port, or the transport's default (5060; 5061 for TLS, RFC 3261 §18.2.2).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.transport == "TLS" { 5061 } else { 5060 })
    }
}

impl Via {
    /// This value as a response must carry it (RFC 3261 §18.2.1, RFC 3581 §4): with
    /// `received=<source IP>` when the sent-by host is not that IP (or when `rport` was
    /// asked for), and `rport=<source port>` filled in when `rport` came without a value.
    /// An IPv6 `received` is written without brackets (RFC 5118 §4.5).
    pub fn stamped(&self, source: std::net::SocketAddr) -> Via {
        let mut via = self.clone();
        let asked_rport = matches!(via.rport(), Some(None));
        if asked_rport {
            for p in via.params.iter_mut().filter(|p| p.is("rport")) {
                p.value = Some(source.port().to_string());
            }
        }
        let host_is_source = via.host_ip() == Some(source.ip());
        if asked_rport || !host_is_source {
            // What the sender wrote as `received` is replaced: only siaga saw the source.
            via.params.retain(|p| !p.is("received"));
            via.params.push(Param {
                name: "received".to_owned(),
                value: Some(source.ip().to_string()),
            });
        }
        via
    }
}

impl std::fmt::Display for Via {
    /// `SIP/2.0/UDP host[:port];param[=value]…`, normalised (no LWS).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, version) = &self.protocol;
        write!(f, "{name}/{version}/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for p in &self.params {
            match &p.value {
                Some(v) => write!(f, ";{}={v}", p.name)?,
                None => write!(f, ";{}", p.name)?,
            }
        }
        Ok(())
    }
}

/// Where the via-params of a value end: at the comma starting the next value (outside
/// quoted strings) or the end.
fn param_section_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b',' => return i,
            b'"' => i = super::scan::skip_quoted(b, i).unwrap_or(b.len()),
            _ => i += 1,
        }
    }
    i
}

/// An IPv4 address, or an IPv6 address with or without brackets.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse().ok()
}

/// Whether `host` is a host name, an IPv4 address or a bracketed IPv6 address.
fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_list_with_lws() {
        let v = Via::parse_list(
            "SIP  /   2.0  /  TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
        )
        .expect("valid");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].host, "spindle.example.com");
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].transport, "UDP");
        assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn ipv6_rport_received() {
        let v = Via::parse_list(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;rport;received=[2001:db8::9:255]",
        )
        .expect("valid");
        assert_eq!(v[0].host, "[2001:db8::9:1]");
        assert_eq!(v[0].port, Some(5070));
        assert_eq!(v[0].rport(), Some(None));
        assert_eq!(v[0].received(), "2001:db8::9:255".parse().ok());
        assert!(v[0].has_rfc3261_branch());
    }

    #[test]
    fn malformed_values() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDP [2001:db8::1:5060",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;received=notanip",
            "SIP/2.0/UDP host,",
        ] {
            assert!(Via::parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stamped_adds_received_and_fills_rport() {
        let src: std::net::SocketAddr = "127.0.0.1:40000".parse().expect("literal");
        let v =
            &Via::parse_list("SIP/2.0/UDP 192.0.2.1:5099;branch=z9hG4bKx;rport").expect("valid")[0];
        assert_eq!(
            v.stamped(src).to_string(),
            "SIP/2.0/UDP 192.0.2.1:5099;branch=z9hG4bKx;rport=40000;received=127.0.0.1"
        );
        let same =
            &Via::parse_list("SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKx").expect("valid")[0];
        assert_eq!(
            same.stamped(src).to_string(),
            "SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKx"
        );
        let forged = &Via::parse_list("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;Received=1.2.3.4")
            .expect("valid")[0];
        assert_eq!(
            forged.stamped(src).to_string(),
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;received=127.0.0.1"
        );
        let name =
            &Via::parse_list("SIP/2.0/UDP pc.example.com;branch=z9hG4bKx").expect("valid")[0];
        assert!(
            name.stamped(src)
                .to_string()
                .ends_with(";received=127.0.0.1")
        );
        let v6: std::net::SocketAddr = "[2001:db8::9:255]:5060".parse().expect("literal");
        let v =
            &Via::parse_list("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3").expect("valid")[0];
        assert!(
            v.stamped(v6)
                .to_string()
                .ends_with(";received=2001:db8::9:255")
        );
    }

    #[test]
    fn bare_cookie_is_not_an_rfc3261_branch() {
        let v = Via::parse_list("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").expect("valid");
        assert!(!v[0].has_rfc3261_branch());
    }
}
