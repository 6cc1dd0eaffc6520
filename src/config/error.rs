//! [`ConfigError`]: what is wrong with a configuration, always naming the key (or the
//! environment variable) and the problem, so `siaga check-config` can say it in one line.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a configuration value came from: a key of the TOML file, a key of one entry of
/// an array of tables, or an environment variable that overrides a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A key of the file, dotted (`sip.listen`).
    Key(&'static str),
    /// A key whose name is built while validating: a key of one entry of an array of
    /// tables, its index counted from 0 as in the shape errors (`operators[2].id`), or a
    /// key of a table checked by code shared with such entries (`queue.wrap_up_s`).
    Entry(String),
    /// An environment variable (`SIAGA_SIP_LISTEN`) overriding the file's `key`.
    Env {
        /// The variable's name.
        var: &'static str,
        /// The key it overrides.
        key: &'static str,
    },
}

impl Source {
    /// The key of the file the value belongs to (also for an override).
    pub fn key(&self) -> &str {
        match self {
            Source::Key(key) | Source::Env { key, .. } => key,
            Source::Entry(key) => key,
        }
    }
}

/// A key of the file.
impl From<&'static str> for Source {
    fn from(key: &'static str) -> Self {
        Source::Key(key)
    }
}

/// A key named while validating ([`Source::Entry`]).
impl From<String> for Source {
    fn from(key: String) -> Self {
        Source::Entry(key)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Key(key) => f.write_str(key),
            Source::Entry(key) => f.write_str(key),
            Source::Env { var, key } => write!(f, "{var} (overrides {key})"),
        }
    }
}

/// A position in the TOML text, both counted from 1 (columns in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text` (clamped to the text's end).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Renders an optional position as ` (line L, column C)`, or nothing.
struct At(Option<Position>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(position) => write!(f, " ({position})"),
            None => Ok(()),
        }
    }
}

/// What is wrong with one value. The `Display` text follows the value in
/// [`ConfigError::Invalid`]: `sip.listen: "127.0.0.1:99999" is not an address:port …`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not `IP:port` (`127.0.0.1:5060`, `[::1]:5060`).
    #[error("is not an address:port (e.g. 127.0.0.1:5060 or [::1]:5060)")]
    NotSocketAddr,
    /// Port 0 where siaga must know (and advertise) its real port.
    #[error("has port 0; give the port siaga should listen on")]
    PortZero,
    /// Not `host`, `host:port`, `[IPv6]` or `[IPv6]:port`.
    #[error("is not a host, host:port, [IPv6] or [IPv6]:port")]
    NotHostPort,
    /// A wildcard address (0.0.0.0, ::) where peers need a reachable one.
    #[error("is a wildcard address; give an address peers can reach")]
    Wildcard,
    /// Not a host name (RFC 3261 §25.1 `hostname`) or an IP address.
    #[error("is not a host name or IP address")]
    NotHost,
    /// A list holds the same entry twice.
    #[error("is listed twice")]
    Duplicate,
    /// A list that must name at least one entry is empty.
    #[error("is empty; list at least one")]
    EmptyList,
    /// `node.id`, `trunk.name` or `operators[].id` is not 1–32 characters of
    /// `[A-Za-z0-9._-]`.
    #[error("must be 1 to 32 characters of A-Z a-z 0-9 . _ -")]
    BadName,
    /// An entry that repeats an earlier one of the same list (operator ids are compared
    /// without case).
    #[error("repeats {key}")]
    Repeats {
        /// The earlier entry's key, e.g. `operators[0].id`.
        key: String,
    },
    /// Not `LOW-HIGH`.
    #[error("is not a port range LOW-HIGH (e.g. 30000-30999)")]
    NotPortRange,
    /// A port range reaching outside 1024–65535.
    #[error("must lie within 1024-65535")]
    PortsOutOfRange,
    /// A port range whose low end is above its high end.
    #[error("has its low port above its high port")]
    PortRangeReversed,
    /// An RTP port range starting on an odd port (RTP takes the even port, RTCP the next
    /// odd one: RFC 3550 §11).
    #[error("must start on an even port (RTP even, RTCP odd: RFC 3550 §11)")]
    OddLowPort,
    /// An RTP port range without room for one RTP/RTCP pair.
    #[error("must hold at least one RTP/RTCP port pair (e.g. 30000-30001)")]
    PortRangeTooSmall,
    /// A port another listener already uses on the same address.
    #[error("clashes with {other} ({transport} port {port})")]
    PortClash {
        /// The other key.
        other: &'static str,
        /// The transport both would use (`TCP`, `UDP`).
        transport: &'static str,
        /// The port.
        port: u16,
    },
    /// Not an IP address.
    #[error("is not an IP address")]
    NotIp,
    /// A database URL of an unsupported scheme, or with nothing after the scheme.
    #[error("is not a sqlite:// or postgres:// (postgresql://) URL")]
    BadDatabaseUrl,
    /// `database.journal` is not a file path siaga can use for its journal.
    #[error(
        "must be the path of a file (not empty, not a directory, without control characters, \
         not the SQLite database itself)"
    )]
    BadJournalPath,
    /// Not a `tracing_subscriber::EnvFilter` directive; the text is the filter's error.
    #[error("is not a tracing filter directive ({0})")]
    BadLogFilter(String),
    /// Not an IP address or network (`trunk.sources`).
    #[error("is not an IP address or network (e.g. 192.0.2.10, 127.0.0.0/8, ::1, 2001:db8::/32)")]
    NotIpNet,
    /// A network with bits set past its prefix length (`127.0.0.1/8`): probably a typo,
    /// and in an address allowlist an ambiguity is not guessed at.
    #[error("has bits set past its prefix length; write the network address ({network})")]
    HostBitsSet {
        /// The network it would be, e.g. `127.0.0.0/8`.
        network: String,
    },
    /// `trunk.sources` is empty while `trunk.other_sources` is `reject`: no source could
    /// place an emergency call.
    #[error(
        "is empty; list the trunk's addresses, or set trunk.other_sources = \"accept\" to \
         take emergency calls from any source"
    )]
    NoTrunkSources,
    /// A `trunk.gateways` entry that is not a `sip:` URI with an IP literal host, a port
    /// other than 0 and transport UDP or TCP.
    #[error(
        "is not a gateway URI: sip:IP[:PORT][;transport=udp|tcp] (e.g. sip:192.0.2.10:5060, \
         sip:[2001:db8::1];transport=tcp); host names need DNS, which siaga does not do yet"
    )]
    BadGateway,
    /// An emergency number that is not 1–32 digits after an optional `+`.
    #[error("must be 1 to 32 digits, optionally after a leading + (e.g. 112)")]
    BadEmergencyNumber,
    /// A number of `routes[].numbers` that is not 1–32 digits after an optional `+` once
    /// the visual separators `- . ( )` are removed.
    #[error(
        "must be 1 to 32 digits, optionally after a leading +, with - . ( ) allowed as \
         separators (e.g. 110, +62-21-110)"
    )]
    BadRouteNumber,
    /// A `[feature_codes]` entry that is not 1–16 characters of `0-9 * #`.
    #[error("must be 1 to 16 characters of 0-9 * # (e.g. *70)")]
    BadFeatureCode,
    /// A feature code that is also an emergency number: dialled by an operator it would
    /// change their state; from the trunk it must reach the queue.
    #[error(
        "is also in trunk.emergency_numbers; a feature code must differ from every emergency \
         number"
    )]
    EmergencyNumber,
    /// A name that no `[[queues]]` entry (or the implicit queue `112`) has.
    #[error("names no queue; the queues are {queues}")]
    UnknownQueue {
        /// The defined queue names, quoted and comma-separated: `"112", "110"`.
        queues: String,
    },
    /// A `categories[]` or `agencies[]` id (or a subcategory's) that is not 1–32
    /// characters of `a-z 0-9 _ -` starting with a letter.
    #[error("must be 1 to 32 characters of a-z 0-9 _ -, starting with a letter (e.g. medical)")]
    BadSlug,
    /// A category or subcategory `label`, or an agency `name`, that is empty, blank,
    /// longer than 80 characters or holds a control character.
    #[error("must be 1 to 80 characters, not all spaces, without control characters")]
    BadLabel,
    /// A `categories[].agencies` entry that no `[[agencies]]` entry (or built-in agency)
    /// has.
    #[error("names no agency; the agencies are {agencies}")]
    UnknownAgency {
        /// The defined agency ids, quoted and comma-separated: `"psc119", "damkar"`.
        agencies: String,
    },
    /// `[[categories]]` is absent, so the built-in list applies, but one of its default
    /// agencies is not among the `[[agencies]]` written.
    #[error(
        "is a default agency of the built-in category {category:?} but names no [[agencies]] \
         entry; define it, or write [[categories]] too; the agencies are {agencies}"
    )]
    BuiltInCategoryAgency {
        /// The built-in category's id, e.g. `medical`.
        category: String,
        /// The defined agency ids, quoted and comma-separated.
        agencies: String,
    },
    /// An `agencies[].transfer_uri` that is not a `sip:`, `sips:` or `tel:` URI, or one
    /// with URI headers.
    #[error(
        "is not a sip:, sips: or tel: URI without headers (e.g. sip:119@192.0.2.30, \
         tel:+62-21-119)"
    )]
    BadTransferUri,
    /// An `agencies[].transfer_uri` that is a `tel:` URI while `trunk.gateways` is empty:
    /// a number is called through the trunk's gateways, and there is none.
    #[error("is a tel: URI, which is called through trunk.gateways, and trunk.gateways is empty")]
    TelTransferWithoutGateways,
    /// An `agencies[].phone` that is not 1–32 digits after an optional `+` once the
    /// separators `- . ( )` and spaces are removed.
    #[error(
        "must be 1 to 32 digits, optionally after a leading +, with spaces and - . ( ) \
         allowed as separators (e.g. +62 21 119)"
    )]
    BadPhone,
    /// A `queues[].overflow_uri` that is not a `sip:` URI with an IP literal host.
    #[error(
        "is not a SIP URI with an IP address: sip:[USER@]IP[:PORT][;transport=udp|tcp] (e.g. \
         sip:112@192.0.2.20:5060); host names need DNS, which siaga does not do yet"
    )]
    BadOverflowUri,
    /// A word that is not one of the accepted ones.
    #[error("must be one of {choices}")]
    NotOneOf {
        /// The accepted words, e.g. `"reject", "accept"`.
        choices: &'static str,
    },
    /// `operators[].ha1` is not 32 hex digits.
    #[error(
        "must be 32 hex digits: MD5(id:realm:password), the realm being the first sip.domains \
         entry"
    )]
    BadHa1,
    /// `operators[].password` is empty.
    #[error("is empty")]
    EmptyPassword,
    /// An `api_password_hash` that is not an argon2id PHC string.
    #[error(
        "must be an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$SALT$HASH), as printed by \
         `siaga hash-password`"
    )]
    BadPasswordHash,
    /// `operators[].name` is empty, longer than 64 characters or holds a control character.
    #[error("must be 1 to 64 characters without control characters")]
    BadDisplayName,
    /// A number outside its range.
    #[error("must be from {min} to {max}")]
    OutOfRange {
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A number outside its range that is not 0 either (0 turns the setting off).
    #[error("must be 0 (off) or from {min} to {max}")]
    OutOfRangeOrOff {
        /// The smallest accepted value but 0.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A number below the value of another key that bounds it (e.g.
    /// `registrar.default_expires_s` below `registrar.min_expires_s`).
    #[error("must be at least {key} ({min})")]
    BelowKey {
        /// The key whose value bounds this one.
        key: &'static str,
        /// Its value.
        min: u64,
    },
    /// A number below its minimum.
    #[error("must be at least {min}")]
    TooSmall {
        /// The smallest accepted value.
        min: u64,
    },
    /// A number above the value of another key that caps it (e.g.
    /// `sip.max_tcp_connections_per_ip` above `sip.max_tcp_connections`).
    #[error("must be at most {key} ({max})")]
    AboveKey {
        /// The key whose value caps this one.
        key: &'static str,
        /// Its value.
        max: u64,
    },
    /// `sip.timers.t2_ms` below `sip.timers.t1_ms` (RFC 3261 §17.1.2.2 caps retransmit
    /// intervals at T2, so T2 < T1 makes no sense).
    #[error("must be at least sip.timers.t1_ms ({t1_ms})")]
    BelowT1 {
        /// T1 in milliseconds.
        t1_ms: u32,
    },
}

/// Why a configuration could not be loaded. Every variant names the key (or the environment
/// variable) it is about, except [`ConfigError::Read`], which gives the file, and
/// [`ConfigError::Syntax`], which gives the position (and the key when on its line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not TOML. When the error sits on a `key = value` line, `key` is that
    /// key's dotted path (e.g. a number too large for TOML: `sip.timers.t1_ms`).
    #[error("{}TOML syntax error at {position}: {message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Syntax {
        /// The dotted key on the line where the parser stopped, if that line has one.
        key: Option<String>,
        /// Where the parser stopped.
        position: Position,
        /// The parser's message.
        message: String,
    },
    /// A key or table siaga does not know (a typo, or a key of another version).
    #[error("{key}: unknown key{}; {expected}", At(*position))]
    UnknownKey {
        /// The dotted key, e.g. `sip.lisen`.
        key: String,
        /// Where it is.
        position: Option<Position>,
        /// The keys that table accepts.
        expected: String,
    },
    /// A required key is absent.
    #[error("{key}: missing; this key is required")]
    MissingKey {
        /// The dotted key, e.g. `node.id`.
        key: String,
    },
    /// A value of the wrong TOML type (a number where a string belongs …).
    #[error("{key}: {message}{}", At(*position))]
    WrongType {
        /// The dotted key.
        key: String,
        /// Where it is.
        position: Option<Position>,
        /// What was found and what was expected.
        message: String,
    },
    /// A value of the right type that fails validation.
    #[error("{origin}: {value} {problem}")]
    Invalid {
        /// The key or the environment variable the value came from.
        origin: Source,
        /// The value as given (strings quoted).
        value: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// `sip.advertise` is absent while `sip.listen` is a wildcard address: siaga would have
    /// no address to write in Via and Contact.
    #[error(
        "sip.advertise: missing; it is required because {listen_source} = {listen} is a \
         wildcard address: give the host or host:port peers reach siaga at"
    )]
    AdvertiseRequired {
        /// The wildcard listen address.
        listen: SocketAddr,
        /// Where it came from (`sip.listen` or `SIAGA_SIP_LISTEN`).
        listen_source: Source,
    },
    /// An operator with neither `ha1` nor `password`.
    #[error(
        "{key}: missing; give ha1 = MD5(id:realm:password) (preferred) or password for \
         this operator"
    )]
    MissingSecret {
        /// The key of the operator's `ha1`, e.g. `operators[1].ha1`.
        key: String,
    },
    /// An operator with both `ha1` and `password`: which one counts would be a guess.
    #[error("{key}: given together with ha1; give only one of them (ha1 preferred)")]
    TwoSecrets {
        /// The key of the operator's `password`, e.g. `operators[1].password`.
        key: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about (`None` for read errors, and for syntax errors
    /// not on a `key = value` line). For an environment override, the key it overrides.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { key, .. } => key.as_deref(),
            ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key }
            | ConfigError::WrongType { key, .. }
            | ConfigError::MissingSecret { key }
            | ConfigError::TwoSecrets { key } => Some(key),
            ConfigError::Invalid { origin, .. } => Some(origin.key()),
            ConfigError::AdvertiseRequired { .. } => Some("sip.advertise"),
        }
    }
}
