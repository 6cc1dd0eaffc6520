//! [`ConfigError`]: what is wrong with a configuration, always naming the key (or the
//! environment variable) and the problem, so `siaga check-config` can say it in one line.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a configuration value came from: a key of the TOML file, or an environment
/// variable that overrides one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A key of the file, dotted (`sip.listen`).
    Key(&'static str),
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
    pub const fn key(self) -> &'static str {
        match self {
            Source::Key(key) | Source::Env { key, .. } => key,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Key(key) => f.write_str(key),
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
    /// `node.id` is not 1–32 characters of `[A-Za-z0-9._-]`.
    #[error("must be 1 to 32 characters of A-Z a-z 0-9 . _ -")]
    BadNodeId,
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
    /// Not a `tracing_subscriber::EnvFilter` directive; the text is the filter's error.
    #[error("is not a tracing filter directive ({0})")]
    BadLogFilter(String),
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
            | ConfigError::WrongType { key, .. } => Some(key),
            ConfigError::Invalid { origin, .. } => Some(origin.key()),
            ConfigError::AdvertiseRequired { .. } => Some("sip.advertise"),
        }
    }
}
