//! Typed configuration values and their parsers (parse, don't validate): a value that
//! exists is valid. Each parser returns the [`Problem`] that `check-config` reports.

use super::error::Problem;
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// `node.id`: a short name of this node, 1–32 characters of `[A-Za-z0-9._-]`. Carried by
/// every record later, so several nodes can share one database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// Longest accepted id, in characters.
    pub const MAX_LEN: usize = 32;

    /// Parses an id. Errors: [`Problem::BadName`].
    pub fn parse(s: &str) -> Result<NodeId, Problem> {
        parse_name(s).map(NodeId)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a name of 1–32 characters of `[A-Za-z0-9._-]`: `node.id`, `trunk.name`,
/// `operators[].id`. Errors: [`Problem::BadName`].
pub fn parse_name(s: &str) -> Result<String, Problem> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (1..=NodeId::MAX_LEN).contains(&s.len()) && s.chars().all(ok_char) {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadName)
    }
}

/// A host: an IP address or a lower-cased host name (RFC 3261 §25.1 `host`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name, lower-cased.
    Name(String),
}

impl Host {
    /// Parses a host: an IPv4 address, an IPv6 address with or without brackets, or a
    /// host name (labels of letters, digits and inner hyphens, at most 63 characters each,
    /// 253 in all, the last not all digits). Errors: [`Problem::NotHost`].
    pub fn parse(s: &str) -> Result<Host, Problem> {
        let unbracketed = s.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'));
        if let Some(inner) = unbracketed {
            return Ipv6Addr::from_str(inner)
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| Problem::NotHost);
        }
        if let Ok(ip) = IpAddr::from_str(s) {
            return Ok(Host::Ip(ip));
        }
        if is_hostname(s) {
            Ok(Host::Name(s.to_ascii_lowercase()))
        } else {
            Err(Problem::NotHost)
        }
    }

    /// Whether this is 0.0.0.0 or `::`.
    pub fn is_unspecified(&self) -> bool {
        matches!(self, Host::Ip(ip) if ip.is_unspecified())
    }
}

/// As written in a SIP URI or a Via sent-by: IPv6 in brackets (RFC 3261 §25.1).
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// RFC 3261 §25.1 `hostname`: `*( domainlabel "." ) toplabel`, where a label is letters,
/// digits and inner hyphens and the top label starts with a letter. Also bounded by DNS's
/// 63/253 limits.
fn is_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let top_ok = labels
        .last()
        .is_some_and(|top| top.starts_with(|c: char| c.is_ascii_alphabetic()));
    labels.iter().all(label_ok) && top_ok
}

/// `sip.advertise`: the host and optional port siaga writes in Via and Contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port; `None` means "the port of `sip.listen`".
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[IPv6]`, `[IPv6]:port`, or a bare IPv6 address.
    /// Errors: [`Problem::NotHostPort`]; [`Problem::PortZero`] for port 0;
    /// [`Problem::Wildcard`] for 0.0.0.0 or `::`.
    pub fn parse(s: &str) -> Result<HostPort, Problem> {
        let (host, port) = split_host_port(s)?;
        let host = Host::parse(host).map_err(|_| Problem::NotHostPort)?;
        if host.is_unspecified() {
            return Err(Problem::Wildcard);
        }
        Ok(HostPort { host, port })
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), Problem> {
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(0) => Err(Problem::PortZero),
        Ok(port) if p.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(port)),
        _ => Err(Problem::NotHostPort),
    };
    if s.starts_with('[') {
        return match s.find(']') {
            Some(end) if end + 1 == s.len() => Ok((s, None)),
            Some(end) => match s[end + 1..].strip_prefix(':') {
                Some(port) => Ok((&s[..=end], parse_port(port)?)),
                None => Err(Problem::NotHostPort),
            },
            None => Err(Problem::NotHostPort),
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (host, port) = s.split_once(':').ok_or(Problem::NotHostPort)?;
            Ok((host, parse_port(port)?))
        }
        // A bare IPv6 address: no port can follow it unambiguously.
        _ => Ok((s, None)),
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// Parses a listen address `IP:port` (`[IPv6]:port`). Errors: [`Problem::NotSocketAddr`];
/// [`Problem::PortZero`] when `allow_port_zero` is false and the port is 0.
pub fn parse_listen(s: &str, allow_port_zero: bool) -> Result<SocketAddr, Problem> {
    let addr = SocketAddr::from_str(s).map_err(|_| Problem::NotSocketAddr)?;
    if addr.port() == 0 && !allow_port_zero {
        return Err(Problem::PortZero);
    }
    Ok(addr)
}

/// A domain of `sip.domains`: a host name or IP, lower-cased, IPv6 in brackets (as it
/// appears in a SIP URI). Errors: [`Problem::NotHost`].
pub fn parse_domain(s: &str) -> Result<String, Problem> {
    Host::parse(s).map(|host| host.to_string())
}

/// `media.rtp_ports`: an inclusive UDP port range for RTP relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port, even.
    pub low: u16,
    /// Highest port.
    pub high: u16,
}

impl PortRange {
    /// Parses `LOW-HIGH`: both in 1024–65535, `LOW` even, `LOW <= HIGH`. Errors:
    /// [`Problem::NotPortRange`], [`Problem::PortsOutOfRange`], [`Problem::PortRangeReversed`],
    /// [`Problem::OddLowPort`].
    pub fn parse(s: &str) -> Result<PortRange, Problem> {
        let (low, high) = s.split_once('-').ok_or(Problem::NotPortRange)?;
        let number = |p: &str| {
            let p = p.trim();
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Problem::NotPortRange);
            }
            // Digits only: an overflow means "above 65535".
            Ok(p.parse::<u32>().unwrap_or(u32::MAX))
        };
        let (low, high) = (number(low)?, number(high)?);
        let in_range = |p: u32| (1024..=65535).contains(&p);
        if !in_range(low) || !in_range(high) {
            return Err(Problem::PortsOutOfRange);
        }
        if low > high {
            return Err(Problem::PortRangeReversed);
        }
        if low % 2 != 0 {
            return Err(Problem::OddLowPort);
        }
        if low == high {
            return Err(Problem::PortRangeTooSmall);
        }
        let port = |p: u32| u16::try_from(p).map_err(|_| Problem::PortsOutOfRange);
        Ok(PortRange {
            low: port(low)?,
            high: port(high)?,
        })
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.high - self.low) + 1
    }

    /// Always false: a range holds at least its low port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// Which database a [`DatabaseUrl`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    /// SQLite: one file, embedded (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// `database.url`: `sqlite://PATH`, `sqlite::memory:`, `postgres://…` or `postgresql://…`.
///
/// Its `Debug` and `Display` hide a password (`postgres://user:***@host/db`), so it can be
/// logged; [`DatabaseUrl::as_str`] gives the full URL for connecting.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    kind: DatabaseKind,
    url: String,
}

impl DatabaseUrl {
    /// Parses a URL by its scheme. Errors: [`Problem::BadDatabaseUrl`].
    pub fn parse(s: &str) -> Result<DatabaseUrl, Problem> {
        let schemes = [
            ("sqlite://", DatabaseKind::Sqlite),
            ("postgres://", DatabaseKind::Postgres),
            ("postgresql://", DatabaseKind::Postgres),
        ];
        if s == "sqlite::memory:" {
            return Ok(DatabaseUrl {
                kind: DatabaseKind::Sqlite,
                url: s.to_owned(),
            });
        }
        for (scheme, kind) in schemes {
            let rest = s
                .get(..scheme.len())
                .filter(|p| p.eq_ignore_ascii_case(scheme))
                .map(|_| &s[scheme.len()..]);
            if let Some(rest) = rest {
                if rest.trim().is_empty() {
                    return Err(Problem::BadDatabaseUrl);
                }
                return Ok(DatabaseUrl {
                    kind,
                    url: s.to_owned(),
                });
            }
        }
        Err(Problem::BadDatabaseUrl)
    }

    /// Which database it names.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The full URL, password included: for connecting, never for logs.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some(scheme_end) = self.url.find("://").map(|i| i + 3) else {
            return self.url.clone();
        };
        let rest = &self.url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else {
            return self.url.clone();
        };
        match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &self.url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => self.url.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The SQLite database file `url` names, when it names one (not `sqlite::memory:`,
/// `:memory:` or `mode=memory`; query parameters stripped).
fn sqlite_file(url: &DatabaseUrl) -> Option<PathBuf> {
    if url.kind() != DatabaseKind::Sqlite || url.as_str() == "sqlite::memory:" {
        return None;
    }
    let rest = url.as_str().get("sqlite://".len()..)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The default `database.journal` for `url`: beside a SQLite file, its name with the
/// extension `journal` (`sqlite://data/siaga.db` → `data/siaga.journal`); for PostgreSQL
/// `data/siaga.journal`; none for an in-memory SQLite database.
pub fn default_journal_path(url: &DatabaseUrl) -> Option<PathBuf> {
    match url.kind() {
        DatabaseKind::Postgres => Some(PathBuf::from("data/siaga.journal")),
        DatabaseKind::Sqlite => sqlite_file(url).map(|db| db.with_extension("journal")),
    }
}

/// Parses `database.journal`: a file path, not empty, not ending in a separator, without
/// control characters, and not the SQLite database file of `url`. Errors:
/// [`Problem::BadJournalPath`].
pub fn parse_journal_path(s: &str, url: &DatabaseUrl) -> Result<PathBuf, Problem> {
    if s.trim().is_empty() || s.ends_with('/') || s.chars().any(char::is_control) {
        return Err(Problem::BadJournalPath);
    }
    let path = PathBuf::from(s);
    if sqlite_file(url).is_some_and(|db| db == path) {
        return Err(Problem::BadJournalPath);
    }
    Ok(path)
}

/// Parses an entry of `trunk.sources`: an IP address (one host: /32 or /128) or a network
/// `ADDRESS/PREFIX`, IPv4 or IPv6 (no brackets). Errors: [`Problem::NotIpNet`];
/// [`Problem::HostBitsSet`] for a network with bits set past its prefix (`127.0.0.1/8`).
pub fn parse_ip_net(s: &str) -> Result<IpNet, Problem> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Ok(IpNet::from(ip));
    }
    let net = IpNet::from_str(s).map_err(|_| Problem::NotIpNet)?;
    if net.trunc() != net {
        return Err(Problem::HostBitsSet {
            network: net.trunc().to_string(),
        });
    }
    Ok(net)
}

/// Parses an entry of `trunk.gateways`: a SIP URI whose host is an IP literal, with an
/// optional port (default 5060) and `;transport=udp` (default) or `;transport=tcp`, e.g.
/// `sip:192.0.2.10:5060` or `sip:[2001:db8::1];transport=tcp`. Host names are refused:
/// siaga does no DNS (RFC 3263) yet. Errors: [`Problem::BadGateway`].
pub fn parse_gateway(s: &str) -> Result<crate::engine::trunk_health::Gateway, Problem> {
    let (address, transport) = ip_sip_uri(s).ok_or(Problem::BadGateway)?;
    Ok(crate::engine::trunk_health::Gateway {
        uri: s.to_owned(),
        address,
        transport,
    })
}

/// Parses `queues[].overflow_uri`: a `sip:` URI, with or without a user part, whose host
/// is an IP literal, e.g. `sip:112@192.0.2.20:5060` or
/// `sip:112@[2001:db8::20];transport=tcp`; kept as written. Host names are refused: siaga
/// does no DNS (RFC 3263) yet. Errors: [`Problem::BadOverflowUri`].
pub fn parse_overflow_uri(s: &str) -> Result<String, Problem> {
    ip_sip_uri(s).ok_or(Problem::BadOverflowUri)?;
    Ok(s.to_owned())
}

/// The address and transport of `s` when it is a `sip:` (not `sips:`) URI without
/// headers whose host is an IP literal other than a wildcard, with a port other than 0
/// (5060 when absent, RFC 3261 §19.1.2) and no `transport` parameter but `udp` or `tcp`.
fn ip_sip_uri(s: &str) -> Option<(SocketAddr, crate::engine::Transport)> {
    // The engine's rule, so that what the configuration accepts the engine can call.
    let destination = crate::engine::call::ip_sip_destination(s).ok()?;
    Some((destination.address, destination.transport))
}

/// Longest accepted emergency number, in characters (the `+` included).
pub const MAX_EMERGENCY_NUMBER_LEN: usize = 32;

/// Parses an entry of `trunk.emergency_numbers`: 1–32 characters, ASCII digits after an
/// optional leading `+` (`112`, `+62112`). Errors: [`Problem::BadEmergencyNumber`].
pub fn parse_emergency_number(s: &str) -> Result<String, Problem> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if s.len() <= MAX_EMERGENCY_NUMBER_LEN
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadEmergencyNumber)
    }
}

/// Parses an entry of `routes[].numbers`: an emergency number's syntax (1–32 characters,
/// ASCII digits after an optional leading `+`) once RFC 3966 §5.1.1's visual separators
/// `- . ( )` are removed, which the result is without (`+62-21-110` gives `+6221110`).
/// Errors: [`Problem::BadRouteNumber`].
pub fn parse_route_number(s: &str) -> Result<String, Problem> {
    let bare: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    parse_emergency_number(&bare).map_err(|_| Problem::BadRouteNumber)
}

/// Longest accepted feature code, in characters.
pub const MAX_FEATURE_CODE_LEN: usize = 16;

/// Parses a `[feature_codes]` entry: 1–16 characters of `0-9 * #`, what a phone's keypad
/// dials (`*70`). Errors: [`Problem::BadFeatureCode`].
pub fn parse_feature_code(s: &str) -> Result<String, Problem> {
    let keypad = |b: u8| b.is_ascii_digit() || b == b'*' || b == b'#';
    if (1..=MAX_FEATURE_CODE_LEN).contains(&s.len()) && s.bytes().all(keypad) {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadFeatureCode)
    }
}

/// Parses a skill of `routes[].skills` or `operators[].skills`: 1–32 characters of
/// `[A-Za-z0-9._-]`, lower-cased so that `EN` and `en` are one skill. Errors:
/// [`Problem::BadName`].
pub fn parse_skill(s: &str) -> Result<String, Problem> {
    parse_name(s).map(|name| name.to_ascii_lowercase())
}

/// `trunk.other_sources`: what becomes of an INVITE to an emergency number from a source
/// that is not in `trunk.sources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherSources {
    /// `reject` (the default): answered 403 Forbidden, and logged.
    Reject,
    /// `accept`: taken as an emergency call anyway, for a centre without a fixed trunk
    /// address. The shell warns at start.
    Accept,
}

impl OtherSources {
    /// The accepted words, as [`Problem::NotOneOf`] lists them.
    pub const CHOICES: &'static str = "\"reject\", \"accept\"";

    /// Parses `reject` or `accept` (exactly, lower case). Errors: [`Problem::NotOneOf`].
    pub fn parse(s: &str) -> Result<OtherSources, Problem> {
        match s {
            "reject" => Ok(OtherSources::Reject),
            "accept" => Ok(OtherSources::Accept),
            _ => Err(Problem::NotOneOf {
                choices: Self::CHOICES,
            }),
        }
    }
}

impl fmt::Display for OtherSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtherSources::Reject => "reject",
            OtherSources::Accept => "accept",
        })
    }
}

/// An operator's digest credential (`operators[].ha1` or `operators[].password`).
///
/// Its `Debug` never shows the secret (`Ha1(***)`, `Password(***)`), so a [`super::Config`]
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum OperatorSecret {
    /// `ha1`: MD5(`id:realm:password`) (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2), the realm
    /// being the first `sip.domains` entry. Only MD5 digests can be verified with it.
    Ha1([u8; 16]),
    /// `password`: the plain password (accepted with a warning at start). Any digest
    /// algorithm can be verified with it.
    Password(String),
}

impl OperatorSecret {
    /// Whether this is a plain password.
    pub fn is_password(&self) -> bool {
        matches!(self, OperatorSecret::Password(_))
    }
}

impl fmt::Debug for OperatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OperatorSecret::Ha1(_) => "Ha1(***)",
            OperatorSecret::Password(_) => "Password(***)",
        })
    }
}

/// Parses `operators[].ha1`: 32 hex digits, either case. Errors: [`Problem::BadHa1`].
pub fn parse_ha1(s: &str) -> Result<[u8; 16], Problem> {
    let bytes = s.as_bytes();
    if bytes.len() != 32 {
        return Err(Problem::BadHa1);
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(Problem::BadHa1),
    };
    let mut ha1 = [0u8; 16];
    for (byte, pair) in ha1.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(ha1)
}

/// Longest accepted operator display name, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;

/// Parses `operators[].name`: 1–64 characters, none a control character. Errors:
/// [`Problem::BadDisplayName`].
pub fn parse_display_name(s: &str) -> Result<String, Problem> {
    let len = s.chars().count();
    if (1..=MAX_DISPLAY_NAME_LEN).contains(&len) && !s.chars().any(char::is_control) {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadDisplayName)
    }
}
