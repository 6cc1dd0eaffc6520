//! siaga's configuration: one TOML file (`config/siaga.toml` is the documented default) and
//! environment variables that override a few keys.
//!
//! Loading is three pure steps, so each is testable without files or the process
//! environment: the text is deserialized into raw strings and numbers (serde,
//! `deny_unknown_fields`: a typo is an error naming the key), `apply_env` replaces the
//! overridden keys, and validation turns the raw values into typed ones ([`Config`]). Every
//! error names the key or the variable and the problem ([`ConfigError`]).
//!
//! The sections about calls and who answers them (`[trunk]`, `[[operators]]`,
//! `[registrar]`) are read and validated in `calls`; the ACD's (`[queue]`, `[[queues]]`,
//! `[[routes]]`, `[acd]`, `[feature_codes]`, the operators' queues and skills) in `acd`;
//! the incident vocabulary (`[[categories]]`, `[[agencies]]`) in `incidents`; the HTTP
//! API's users (`[[users]]`, `operators[].api_password_hash`, `http.session_ttl_s`) in
//! `users`.

mod acd;
mod calls;
mod error;
mod incidents;
mod users;
mod values;

#[cfg(test)]
mod tests;

pub use acd::{DEFAULT_QUEUE, QueueConfig};
pub use calls::{OperatorConfig, RegistrarConfig, TrunkConfig};
pub use error::{ConfigError, Position, Problem, Source};
pub use incidents::{Agency, Category, IncidentsConfig, Subcategory};
pub use users::{PasswordHash, Role, UserConfig};
pub use values::{
    DatabaseKind, DatabaseUrl, Host, HostPort, NodeId, OperatorSecret, OtherSources, PortRange,
};

use crate::engine::EngineConfig;
use crate::engine::acd::AcdSettings;
use crate::engine::transaction::TimerConfig;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/siaga.toml";

/// The environment variables that override keys of the file, with the key each overrides.
/// Applied after the file is read and validated the same way.
pub const ENV_OVERRIDES: [(&str, &str); 4] = [
    ("SIAGA_SIP_LISTEN", "sip.listen"),
    ("SIAGA_RTP_PORTS", "media.rtp_ports"),
    ("SIAGA_DATABASE_URL", "database.url"),
    ("SIAGA_HTTP_LISTEN", "http.listen"),
];

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[node]`.
    pub node: NodeConfig,
    /// `[sip]`.
    pub sip: SipConfig,
    /// `[media]`.
    pub media: MediaConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[trunk]` (required).
    pub trunk: TrunkConfig,
    /// `[[operators]]`, in file order. May be empty: siaga then takes calls but no phone
    /// can register to answer them (the shell warns at start).
    pub operators: Vec<OperatorConfig>,
    /// `[queue]`'s timers as written there (the call model reads `ringing_refresh`; the
    /// queues' own timers are in `acd`).
    pub queue: QueueConfig,
    /// The ACD: `[[queues]]` over `[queue]` (or the one queue [`DEFAULT_QUEUE`]),
    /// `[[routes]]`, `[acd]`, `[feature_codes]`, and one [`crate::engine::acd::AgentSettings`]
    /// per entry of `operators`, in the same order.
    pub acd: AcdSettings,
    /// `[registrar]`.
    pub registrar: RegistrarConfig,
    /// `[[categories]]` and `[[agencies]]`, or the Indonesian 112 defaults for a list the
    /// file leaves out.
    pub incidents: IncidentsConfig,
    /// `[[users]]`: supervisors and administrators of the HTTP API (operators log in with
    /// `operators[].api_password_hash`).
    pub users: Vec<UserConfig>,
    /// The environment variables of [`ENV_OVERRIDES`] that were set and applied.
    pub env_overrides: Vec<&'static str>,
}

/// `[node]`: this node's identity.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `node.id` (required): a short name of this node, carried by every record.
    pub id: NodeId,
}

/// `[sip]`: signalling addresses, domains and timers.
#[derive(Clone, Debug)]
pub struct SipConfig {
    /// `sip.listen` (default `127.0.0.1:5060`; `SIAGA_SIP_LISTEN`): UDP and TCP both bind it.
    pub listen: SocketAddr,
    /// `sip.advertise` (optional): the host or host:port written in Via and Contact when it
    /// differs from `listen` (NAT). Required when `listen` is a wildcard address.
    pub advertise: Option<HostPort>,
    /// `sip.domains` (required, non-empty): lower-cased host names or IPs (IPv6 in
    /// brackets) siaga answers for, besides its listen and advertised addresses. The first
    /// is the digest realm.
    pub domains: Vec<String>,
    /// `sip.max_tcp_connections` (default 1024, at least 1): open TCP connections, inbound
    /// and outbound together; more are closed as they are accepted.
    pub max_tcp_connections: usize,
    /// `sip.max_tcp_connections_per_ip` (default 256, or `max_tcp_connections` when that is
    /// lower; 1 ..= `max_tcp_connections`): TCP connections with one IP address, accepted
    /// from it or opened to it; more are closed as they are accepted, or not opened.
    pub max_tcp_connections_per_ip: usize,
    /// `sip.tcp_message_timeout_s` (default 32 s = 64·T1, at least 1 s): how long a TCP
    /// message may take to arrive whole, from its first byte; then the connection is closed.
    pub tcp_message_timeout: Duration,
    /// `sip.tcp_idle_timeout_s` (default 600 s; 0 disables, giving `None`): how long a TCP
    /// connection may go without a byte read or written; then it is closed.
    pub tcp_idle_timeout: Option<Duration>,
    /// `sip.tcp_connect_timeout_s` (default 5 s, 1–32 s): how long opening a TCP
    /// connection may take; then the messages waiting for it fail (a request moved to TCP
    /// for its size goes over UDP instead, RFC 3261 §18.1.1).
    pub tcp_connect_timeout: Duration,
    /// `[sip.timers]`.
    pub timers: SipTimers,
}

/// `[sip.timers]`: RFC 3261 §17 base timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipTimers {
    /// `sip.timers.t1_ms` (default 500 ms): RTT estimate.
    pub t1: Duration,
    /// `sip.timers.t2_ms` (default 4000 ms): cap on retransmit intervals; at least T1.
    pub t2: Duration,
    /// `sip.timers.t4_ms` (default 5000 ms): how long a message may live in the network.
    pub t4: Duration,
}

/// `[media]`: the RTP relay.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// `media.rtp_ports` (default `30000-30999`; `SIAGA_RTP_PORTS`).
    pub rtp_ports: PortRange,
    /// `media.advertise` (optional): the IP written in SDP when it differs from the
    /// address the relay binds.
    pub advertise: Option<IpAddr>,
    /// `media.silence_timeout_s` (default 30 s; 0 turns it off, giving `None`; else
    /// 5–3600 s): how long a side of a relay whose RTP had been flowing may send none
    /// before the relay reports it silent. Silence on the operator side of an answered
    /// call that is not on hold re-queues the caller.
    pub silence_timeout: Option<Duration>,
}

/// `[database]`: where call records go, and the journal that holds them while the
/// database is unavailable.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `database.url` (default `sqlite://data/siaga.db`; `SIAGA_DATABASE_URL`).
    pub url: DatabaseUrl,
    /// `database.journal`: the journal file (`crate::store::Journal`). Default: beside a
    /// SQLite database file, its name with `.journal` (`data/siaga.journal` for the default
    /// URL); `data/siaga.journal` for PostgreSQL; `None` for an in-memory SQLite database
    /// (nothing of it outlives the process, so neither need its events), unless set.
    /// A relative path is relative to the directory siaga runs in.
    pub journal: Option<PathBuf>,
}

/// `[http]`: the operator and supervisor API (used from a later issue; validated now).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `http.listen` (default `127.0.0.1:8080`; `SIAGA_HTTP_LISTEN`).
    pub listen: SocketAddr,
    /// `http.session_ttl_s` (default 43200 s = 12 h, a long shift; 60–604800 s): how long
    /// an API session token is valid after login.
    pub session_ttl: Duration,
}

/// `[log]`.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `log.level` (default `info`): a `tracing_subscriber::EnvFilter` directive such as
    /// `info` or `info,siaga::transport=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// `log.show_personal_data` (default false): log caller numbers, locations and names
    /// in full instead of redacted. Used by later issues.
    pub show_personal_data: bool,
}

// ---- raw form: what serde reads, before validation -------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    sip: RawSip,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: RawLog,
    trunk: calls::RawTrunk,
    #[serde(default)]
    operators: Vec<calls::RawOperator>,
    #[serde(default)]
    queue: acd::RawQueue,
    queues: Option<Vec<acd::RawQueue>>,
    #[serde(default)]
    routes: Vec<acd::RawRoute>,
    #[serde(default)]
    acd: acd::RawAcd,
    #[serde(default)]
    feature_codes: acd::RawFeatureCodes,
    #[serde(default)]
    registrar: calls::RawRegistrar,
    categories: Option<Vec<incidents::RawCategory>>,
    agencies: Option<Vec<incidents::RawAgency>>,
    #[serde(default)]
    users: Vec<users::RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    #[serde(default = "default_sip_listen")]
    listen: String,
    advertise: Option<String>,
    domains: Vec<String>,
    #[serde(default = "default_max_tcp_connections")]
    max_tcp_connections: u32,
    /// `None`: the default, which follows a lower `max_tcp_connections`.
    max_tcp_connections_per_ip: Option<u32>,
    #[serde(default = "default_tcp_message_timeout_s")]
    tcp_message_timeout_s: u32,
    #[serde(default = "default_tcp_idle_timeout_s")]
    tcp_idle_timeout_s: u32,
    #[serde(default = "default_tcp_connect_timeout_s")]
    tcp_connect_timeout_s: u32,
    #[serde(default)]
    timers: RawTimers,
}

fn default_sip_listen() -> String {
    "127.0.0.1:5060".to_owned()
}

fn default_max_tcp_connections() -> u32 {
    1024
}

/// `sip.max_tcp_connections_per_ip` when it is absent and `max_tcp_connections` is larger.
const DEFAULT_MAX_TCP_CONNECTIONS_PER_IP: u32 = 256;

/// 64·T1 with the default T1 of 500 ms: the longest an RFC 3261 transaction waits.
fn default_tcp_message_timeout_s() -> u32 {
    32
}

fn default_tcp_idle_timeout_s() -> u32 {
    600
}

/// Long enough for a SYN to be resent once (Linux resends after 1 s, then 3 s), short
/// enough that a large request to a phone that drops TCP falls back to UDP while it still
/// rings usefully.
fn default_tcp_connect_timeout_s() -> u32 {
    5
}

/// The longest `sip.tcp_connect_timeout_s`: 64·T1 with the default T1, Timer B and F.
const MAX_TCP_CONNECT_TIMEOUT_S: u32 = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimers {
    t1_ms: u32,
    t2_ms: u32,
    t4_ms: u32,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMedia {
    rtp_ports: String,
    advertise: Option<String>,
    silence_timeout_s: u32,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            rtp_ports: "30000-30999".to_owned(),
            advertise: None,
            silence_timeout_s: 30,
        }
    }
}

/// The range of `media.silence_timeout_s` when on: phones with voice activity detection
/// send no RTP during pauses (a few seconds at most with comfort noise, RFC 3389), so a
/// shorter timeout would re-queue callers from live calls.
const SILENCE_TIMEOUT_S: (u32, u32) = (5, 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: String,
    journal: Option<String>,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: "sqlite://data/siaga.db".to_owned(),
            journal: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
    session_ttl_s: u32,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8080".to_owned(),
            session_ttl_s: 43_200,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
    show_personal_data: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".to_owned(),
            show_personal_data: false,
        }
    }
}

// ---- loading ---------------------------------------------------------------------------

impl Config {
    /// Reads and validates the file at `path`, then applies the overrides set in the
    /// process environment ([`ENV_OVERRIDES`]).
    ///
    /// Errors: [`ConfigError::Read`] when the file cannot be read; otherwise as
    /// [`Config::from_toml`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, |var| {
            std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// Parses and validates TOML `text`, with the environment given by `env` (a variable's
    /// value, `None` when unset). Pure: tests pass a map.
    ///
    /// Errors: [`ConfigError::Syntax`] (not TOML), [`ConfigError::UnknownKey`],
    /// [`ConfigError::MissingKey`] and [`ConfigError::WrongType`] (the file's shape), and
    /// [`ConfigError::Invalid`], [`ConfigError::AdvertiseRequired`],
    /// [`ConfigError::MissingSecret`] and [`ConfigError::TwoSecrets`] (its values).
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw = deserialize(text)?;
        let applied = apply_env(&mut raw, env);
        validate(raw, applied)
    }

    /// The engine's view of this configuration. `local_addresses` holds `sip.listen` and,
    /// when `sip.advertise` is an IP, the advertised address; the advertised host and port
    /// are `sip.advertise` (its port defaulting to the listen port) or else the listen
    /// address.
    pub fn engine_config(&self) -> EngineConfig {
        let (advertised_host, advertised_port) = self.sip.advertised();
        let mut local_addresses = vec![self.sip.listen];
        if let Some(HostPort {
            host: Host::Ip(ip), ..
        }) = &self.sip.advertise
        {
            let advertised = SocketAddr::new(*ip, advertised_port);
            if !local_addresses.contains(&advertised) {
                local_addresses.push(advertised);
            }
        }
        EngineConfig {
            node_id: self.node.id.to_string(),
            domains: self.sip.domains.clone(),
            local_addresses,
            advertised_host,
            advertised_port,
            timers: TimerConfig {
                t1: self.sip.timers.t1,
                t2: self.sip.timers.t2,
                t4: self.sip.timers.t4,
            },
            max_held_bytes: crate::engine::MAX_HELD_BYTES,
            calls: self.call_settings(),
        }
    }

    /// The IP siaga writes in SDP for its relay: `media.advertise`, else the advertised
    /// SIP host when it is an IP, else the listen IP.
    pub fn media_ip(&self) -> IpAddr {
        if let Some(ip) = self.media.advertise {
            return ip;
        }
        match &self.sip.advertise {
            Some(HostPort {
                host: Host::Ip(ip), ..
            }) => *ip,
            _ => self.sip.listen.ip(),
        }
    }

    /// What the call model needs: trunk, queue, operators (HA1 computed from a plain
    /// password with the realm, the first `sip.domains` entry), registrar, media, ACD.
    fn call_settings(&self) -> crate::engine::CallSettings {
        use crate::engine::digest::Ha1;
        let realm = self.sip.realm().to_owned();
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let operators = self
            .operators
            .iter()
            .map(|op| {
                let ha1 = match &op.secret {
                    OperatorSecret::Ha1(bytes) => Ha1::from_bytes(*bytes),
                    OperatorSecret::Password(password) => {
                        Ha1::from_password(&op.id, &realm, password)
                    }
                };
                (op.id.clone(), ha1)
            })
            .collect();
        crate::engine::CallSettings {
            trunk_name: self.trunk.name.clone(),
            trunk_sources: self.trunk.sources.clone(),
            emergency_numbers: self.trunk.emergency_numbers.clone(),
            accept_other_sources: self.trunk.other_sources == OtherSources::Accept,
            trust_domain: self.trunk.trust_domain.clone(),
            ringing_refresh: self.queue.ringing_refresh,
            min_session_expires_s: secs(self.trunk.min_session_expires),
            media_ip: self.media_ip(),
            rtp_ports: (self.media.rtp_ports.low, self.media.rtp_ports.high),
            operators,
            registrar: crate::engine::registrar::RegistrarConfig {
                realm: realm.clone(),
                min_expires_s: secs(self.registrar.min_expires),
                max_expires_s: secs(self.registrar.max_expires),
                default_expires_s: secs(self.registrar.default_expires),
                nonce_ttl_s: secs(self.registrar.nonce_ttl),
            },
            trunk_health: crate::engine::trunk_health::HealthConfig {
                gateways: self.trunk.gateways.clone(),
                interval: self.trunk.options_interval,
                failures_before_down: self.trunk.options_failures,
            },
            acd: self.acd.clone(),
            agencies: self
                .incidents
                .agencies
                .iter()
                .map(|a| crate::engine::call::TransferAgency {
                    id: a.id.clone(),
                    transfer_uri: a.transfer_uri.clone(),
                })
                .collect(),
        }
    }

    /// A one-line summary for `check-config` and the start-up log (no secrets: the
    /// database password is hidden).
    pub fn summary(&self) -> String {
        let (host, port) = self.sip.advertised();
        let overrides = if self.env_overrides.is_empty() {
            String::new()
        } else {
            format!("; from environment: {}", self.env_overrides.join(", "))
        };
        let sources: Vec<String> = self.trunk.sources.iter().map(|n| n.to_string()).collect();
        format!(
            "node {}, sip {} (udp+tcp) advertised as {host}:{port}, domains {}, rtp {}, \
             http {}, database {}, trunk {} from {} (others: {}) for {}, {} operators, \
             queues {}{overrides}",
            self.node.id,
            self.sip.listen,
            self.sip.domains.join(","),
            self.media.rtp_ports,
            self.http.listen,
            self.database.url,
            self.trunk.name,
            if sources.is_empty() {
                "(no address)".to_owned()
            } else {
                sources.join(",")
            },
            self.trunk.other_sources,
            self.trunk.emergency_numbers.join(","),
            self.operators.len(),
            self.acd
                .queues
                .iter()
                .map(|q| format!("{} ({})", q.name, q.strategy.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The ids of the operators configured with a plain `password` instead of an `ha1`,
    /// in file order: the shell warns about them at start.
    pub fn operators_with_plain_passwords(&self) -> Vec<&str> {
        self.operators
            .iter()
            .filter(|o| o.secret.is_password())
            .map(|o| o.id.as_str())
            .collect()
    }
}

impl SipConfig {
    /// The digest realm: the first `sip.domains` entry, lower-cased. Operators' `ha1`
    /// values are MD5(`id:realm:password`) with this realm, so changing the first domain
    /// invalidates them.
    pub fn realm(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }

    /// The host (as written in a SIP URI: IPv6 in brackets) and port siaga writes in Via
    /// and Contact: `advertise`, its port defaulting to the listen port; else the listen
    /// address.
    pub fn advertised(&self) -> (String, u16) {
        match &self.advertise {
            Some(hp) => (hp.host.to_string(), hp.port.unwrap_or(self.listen.port())),
            None => (Host::Ip(self.listen.ip()).to_string(), self.listen.port()),
        }
    }
}

/// Deserializes the raw form. Shape errors keep the dotted path of the key.
fn deserialize(text: &str) -> Result<RawConfig, ConfigError> {
    // Syntax first, so that a TOML error is reported as such and not as a shape error.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(ConfigError::Syntax {
            key: e.span().and_then(|span| key_at(text, span.start)),
            position: position_of(text, &e),
            message: one_line(e.message()),
        });
    }
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        shape_error(&path, text, &inner)
    })
}

/// The dotted key of the `key = value` line holding byte `offset` of `text`, prefixed by
/// the `[table]` it sits in; `None` when that line is not a simple assignment.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
        }
        if offset < end {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim();
            let simple = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            return simple.then(|| {
                if table.is_empty() {
                    key.to_owned()
                } else {
                    format!("{table}.{key}")
                }
            });
        }
        start = end;
    }
    None
}

/// Joins a multi-line parser message into one line.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

fn position_of(text: &str, e: &toml::de::Error) -> Position {
    Position::of_offset(text, e.span().map_or(0, |span| span.start))
}

/// Turns serde's message into a [`ConfigError`] naming the dotted key. serde's messages
/// for struct fields are stable: "unknown field `x`, expected …", "missing field `x`".
fn shape_error(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let parent = if path == "." { "" } else { path };
    let join = |field: &str| {
        if parent.is_empty() {
            field.to_owned()
        } else {
            format!("{parent}.{field}")
        }
    };
    let message = one_line(e.message());
    let position = e.span().map(|span| Position::of_offset(text, span.start));
    let backticked = |m: &str| m.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = backticked(rest).unwrap_or_default();
        // serde_path_to_error's path already ends at the unknown key.
        let key = if parent == field || parent.ends_with(&format!(".{field}")) {
            parent.to_owned()
        } else {
            join(&field)
        };
        let expected = rest
            .split_once(", ")
            .map_or("", |(_, expected)| expected)
            .to_owned();
        return ConfigError::UnknownKey {
            key,
            position,
            expected,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest).unwrap_or_default();
        return ConfigError::MissingKey { key: join(&field) };
    }
    ConfigError::WrongType {
        key: if parent.is_empty() {
            "(top level)".to_owned()
        } else {
            parent.to_owned()
        },
        position,
        message,
    }
}

/// Replaces the keys of [`ENV_OVERRIDES`] whose variable `env` reports as set. Returns the
/// variables applied. Pure: `env` is the only source of the environment.
fn apply_env(raw: &mut RawConfig, env: impl Fn(&str) -> Option<String>) -> Vec<&'static str> {
    let mut applied = Vec::new();
    for (var, key) in ENV_OVERRIDES {
        let Some(value) = env(var) else { continue };
        let slot = match key {
            "sip.listen" => &mut raw.sip.listen,
            "media.rtp_ports" => &mut raw.media.rtp_ports,
            "database.url" => &mut raw.database.url,
            "http.listen" => &mut raw.http.listen,
            _ => continue,
        };
        *slot = value;
        applied.push(var);
    }
    applied
}

/// The source of `key`'s value: the environment variable when one was applied.
fn source(key: &'static str, applied: &[&'static str]) -> Source {
    ENV_OVERRIDES
        .iter()
        .find(|(var, k)| *k == key && applied.contains(var))
        .map_or(Source::Key(key), |&(var, key)| Source::Env { var, key })
}

fn invalid(source: Source, value: impl std::fmt::Debug, problem: Problem) -> ConfigError {
    ConfigError::Invalid {
        origin: source,
        value: format!("{value:?}"),
        problem,
    }
}

/// Checks a string value with `parse`, naming its source on error.
fn check<T>(
    key: &'static str,
    value: &str,
    applied: &[&'static str],
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Result<T, ConfigError> {
    parse(value).map_err(|problem| invalid(source(key, applied), value, problem))
}

fn validate(raw: RawConfig, applied: Vec<&'static str>) -> Result<Config, ConfigError> {
    let a = &applied[..];
    let node = NodeConfig {
        id: check("node.id", &raw.node.id, a, NodeId::parse)?,
    };

    let listen = check("sip.listen", &raw.sip.listen, a, |s| {
        values::parse_listen(s, false)
    })?;
    let advertise = match &raw.sip.advertise {
        Some(s) => Some(check("sip.advertise", s, a, HostPort::parse)?),
        None if listen.ip().is_unspecified() => {
            return Err(ConfigError::AdvertiseRequired {
                listen,
                listen_source: source("sip.listen", a),
            });
        }
        None => None,
    };
    if raw.sip.domains.is_empty() {
        return Err(invalid(
            Source::Key("sip.domains"),
            Vec::<String>::new(),
            Problem::EmptyList,
        ));
    }
    let mut domains: Vec<String> = Vec::with_capacity(raw.sip.domains.len());
    for d in &raw.sip.domains {
        let domain = check("sip.domains", d, a, values::parse_domain)?;
        if domains.contains(&domain) {
            return Err(invalid(Source::Key("sip.domains"), d, Problem::Duplicate));
        }
        domains.push(domain);
    }
    let max_tcp_connections = at_least("sip.max_tcp_connections", raw.sip.max_tcp_connections, 1)?;
    let max_tcp_connections_per_ip = match raw.sip.max_tcp_connections_per_ip {
        Some(per_ip) => {
            let per_ip = at_least("sip.max_tcp_connections_per_ip", per_ip, 1)?;
            if per_ip > max_tcp_connections {
                return Err(ConfigError::Invalid {
                    origin: Source::Key("sip.max_tcp_connections_per_ip"),
                    value: per_ip.to_string(),
                    problem: Problem::AboveKey {
                        key: "sip.max_tcp_connections",
                        max: max_tcp_connections.into(),
                    },
                });
            }
            per_ip
        }
        None => DEFAULT_MAX_TCP_CONNECTIONS_PER_IP.min(max_tcp_connections),
    };
    let tcp_message_timeout_s = at_least(
        "sip.tcp_message_timeout_s",
        raw.sip.tcp_message_timeout_s,
        1,
    )?;
    let tcp_idle_timeout = match raw.sip.tcp_idle_timeout_s {
        0 => None,
        s => Some(Duration::from_secs(s.into())),
    };
    let tcp_connect_timeout = calls::seconds(
        "sip.tcp_connect_timeout_s",
        raw.sip.tcp_connect_timeout_s,
        1,
        MAX_TCP_CONNECT_TIMEOUT_S,
    )?;
    let t = &raw.sip.timers;
    let t1_ms = at_least("sip.timers.t1_ms", t.t1_ms, 1)?;
    if t.t2_ms < t1_ms {
        return Err(ConfigError::Invalid {
            origin: Source::Key("sip.timers.t2_ms"),
            value: t.t2_ms.to_string(),
            problem: Problem::BelowT1 { t1_ms },
        });
    }
    let t4_ms = at_least("sip.timers.t4_ms", t.t4_ms, 1)?;
    let sip = SipConfig {
        listen,
        advertise,
        domains,
        max_tcp_connections: usize::try_from(max_tcp_connections).unwrap_or(usize::MAX),
        max_tcp_connections_per_ip: usize::try_from(max_tcp_connections_per_ip)
            .unwrap_or(usize::MAX),
        tcp_message_timeout: Duration::from_secs(tcp_message_timeout_s.into()),
        tcp_idle_timeout,
        tcp_connect_timeout,
        timers: SipTimers {
            t1: Duration::from_millis(t1_ms.into()),
            t2: Duration::from_millis(t.t2_ms.into()),
            t4: Duration::from_millis(t4_ms.into()),
        },
    };

    let media = MediaConfig {
        rtp_ports: check("media.rtp_ports", &raw.media.rtp_ports, a, PortRange::parse)?,
        advertise: match &raw.media.advertise {
            Some(s) => Some(check("media.advertise", s, a, parse_media_ip)?),
            None => None,
        },
        silence_timeout: match raw.media.silence_timeout_s {
            0 => None,
            s => {
                let (min, max) = SILENCE_TIMEOUT_S;
                if !(min..=max).contains(&s) {
                    return Err(ConfigError::Invalid {
                        origin: Source::Key("media.silence_timeout_s"),
                        value: s.to_string(),
                        problem: Problem::OutOfRangeOrOff {
                            min: min.into(),
                            max: max.into(),
                        },
                    });
                }
                Some(Duration::from_secs(s.into()))
            }
        },
    };
    let url = check("database.url", &raw.database.url, a, DatabaseUrl::parse)?;
    let journal = match &raw.database.journal {
        Some(path) => Some(check("database.journal", path, a, |s| {
            values::parse_journal_path(s, &url)
        })?),
        None => values::default_journal_path(&url),
    };
    let database = DatabaseConfig { url, journal };
    let http = HttpConfig {
        listen: check("http.listen", &raw.http.listen, a, |s| {
            values::parse_listen(s, false)
        })?,
        session_ttl: users::session_ttl(raw.http.session_ttl_s)?,
    };
    check("log.level", &raw.log.level, a, |s| {
        tracing_subscriber::EnvFilter::builder()
            .parse(s)
            .map(drop)
            .map_err(|e| Problem::BadLogFilter(e.to_string()))
    })?;
    // SIP listens on UDP and TCP: HTTP (TCP) and RTP (UDP) must keep off its port.
    // IPv4-mapped IPv6 (::ffff:127.0.0.1) is the IPv4 address it maps.
    let overlaps = |a: IpAddr, b: IpAddr| {
        let (a, b) = (a.to_canonical(), b.to_canonical());
        a == b || a.is_unspecified() || b.is_unspecified()
    };
    // Name the environment variable when the SIP address came from it.
    let sip_listen = if a.contains(&"SIAGA_SIP_LISTEN") {
        "SIAGA_SIP_LISTEN (sip.listen)"
    } else {
        "sip.listen"
    };
    if http.listen.port() == sip.listen.port() && overlaps(http.listen.ip(), sip.listen.ip()) {
        let problem = Problem::PortClash {
            other: sip_listen,
            transport: "TCP",
            port: sip.listen.port(),
        };
        return Err(invalid(source("http.listen", a), &raw.http.listen, problem));
    }
    let sip_port = sip.listen.port();
    if (media.rtp_ports.low..=media.rtp_ports.high).contains(&sip_port) {
        let problem = Problem::PortClash {
            other: sip_listen,
            transport: "UDP",
            port: sip_port,
        };
        return Err(invalid(
            source("media.rtp_ports", a),
            &raw.media.rtp_ports,
            problem,
        ));
    }
    let trunk = calls::validate_trunk(&raw.trunk)?;
    let operators = calls::validate_operators(&raw.operators)?;
    let (queue, acd) = acd::validate(&raw, &operators, &trunk.emergency_numbers)?;
    let registrar = calls::validate_registrar(&raw.registrar)?;
    let incidents = incidents::validate(raw.categories.as_deref(), raw.agencies.as_deref())?;
    incidents::check_tel_transfers(&incidents.agencies, !trunk.gateways.is_empty())?;
    let users = users::validate(&raw.users, &operators)?;
    let log = LogConfig {
        level: raw.log.level,
        show_personal_data: raw.log.show_personal_data,
    };
    Ok(Config {
        node,
        sip,
        media,
        database,
        http,
        log,
        trunk,
        operators,
        queue,
        acd,
        registrar,
        incidents,
        users,
        env_overrides: applied,
    })
}

fn at_least(key: &'static str, value: u32, min: u32) -> Result<u32, ConfigError> {
    if value < min {
        return Err(ConfigError::Invalid {
            origin: Source::Key(key),
            value: value.to_string(),
            problem: Problem::TooSmall { min: min.into() },
        });
    }
    Ok(value)
}

fn parse_media_ip(s: &str) -> Result<IpAddr, Problem> {
    let ip: IpAddr = s.parse().map_err(|_| Problem::NotIp)?;
    if ip.is_unspecified() {
        return Err(Problem::Wildcard);
    }
    Ok(ip)
}
