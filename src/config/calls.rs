//! The configuration of emergency calls and of who answers them: `[trunk]` (where 112 calls
//! come from and which numbers they dial), `[[operators]]` (the agents and their digest
//! credentials: RFC 7616 §3.4.2's HA1; their ACD keys are validated in `acd`) and
//! `[registrar]` (RFC 3261 §10.3 binding lifetimes and the digest nonce lifetime).
//!
//! As in the rest of the module: raw serde structs (`deny_unknown_fields`), then validation
//! into the typed sections, every error naming its key.

use super::error::{ConfigError, Problem, Source};
use super::values::{self, OperatorSecret, OtherSources};
use super::{check, invalid};
use crate::engine::trunk_health::Gateway;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// `[trunk]`: the telco trunk that delivers emergency calls.
#[derive(Clone, Debug)]
pub struct TrunkConfig {
    /// `trunk.name` (default `trunk`; 1–32 characters of `A-Z a-z 0-9 . _ -`): recorded in
    /// each call record's `trunk` column.
    pub name: String,
    /// `trunk.sources` (required): the IP addresses and networks, IPv4 or IPv6, allowed to
    /// place emergency calls. Empty only when `other_sources` is [`OtherSources::Accept`].
    /// A single address is a /32 or /128 network.
    pub sources: Vec<IpNet>,
    /// `trunk.emergency_numbers` (default `["112"]`, non-empty): the Request-URI user parts
    /// that are emergency calls, each 1–32 digits after an optional `+`.
    pub emergency_numbers: Vec<String>,
    /// `trunk.other_sources` (default `reject`): what becomes of an INVITE to an emergency
    /// number from a source not in `sources`.
    pub other_sources: OtherSources,
    /// `trunk.min_session_expires_s` (default 90 s, RFC 4028's floor; 90–86400 s): the
    /// smallest session interval siaga accepts from the trunk (its Min-SE): a smaller
    /// `Session-Expires` draws 422 with this Min-SE when the trunk supports session
    /// timers, and is raised to it otherwise (RFC 4028 §9).
    pub min_session_expires: Duration,
    /// `trunk.trust_domain` (default empty): networks of SIP elements inside siaga's trust
    /// domain besides `sources` (RFC 3325 §2.3, RFC 3324), e.g. the agencies calls are handed
    /// to. P-Asserted-Identity is believed only from the trust domain and sent only into it;
    /// a leg to anywhere else carries no asserted identity, and an anonymous From when the
    /// caller asked for privacy (RFC 3323). Operators' registered phones are always inside.
    pub trust_domain: Vec<IpNet>,
    /// `trunk.gateways` (default none): the trunk's gateways, probed with OPTIONS (RFC 3261
    /// §11) and, in a later issue, where callbacks are placed. Distinct address and
    /// transport each.
    pub gateways: Vec<Gateway>,
    /// `trunk.options_interval_s` (default 30 s; 1–3600 s): time between the starts of two
    /// OPTIONS to one gateway.
    pub options_interval: Duration,
    /// `trunk.options_failures` (default 3; 1–100): OPTIONS in a row left unanswered
    /// (64·T1 each, or a transport error) that mark a gateway down.
    pub options_failures: u32,
}

impl TrunkConfig {
    /// Whether `ip` lies in one of `sources`. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`) also matches as the IPv4 address it maps.
    pub fn is_trunk_source(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.sources
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }

    /// Whether `user` (a Request-URI user part) is one of `emergency_numbers`, exactly.
    pub fn is_emergency_number(&self, user: &str) -> bool {
        self.emergency_numbers.iter().any(|n| n == user)
    }
}

/// One entry of `[[operators]]`: an agent who answers calls from a softphone registered
/// to siaga.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// `operators[].id` (required; 1–32 characters of `A-Z a-z 0-9 . _ -`; unique, compared
    /// without case): the SIP user name the softphone registers as, and its digest
    /// username.
    pub id: String,
    /// `operators[].name` (optional; 1–64 characters, no control characters): the name
    /// shown to supervisors.
    pub name: Option<String>,
    /// `operators[].ha1` or `operators[].password` (exactly one): the digest credential.
    /// Its `Debug` hides it.
    pub secret: OperatorSecret,
    /// `operators[].api_password_hash` (optional): the operator's HTTP API password as an
    /// argon2id hash; without it the operator cannot log in to the API.
    pub api_password_hash: Option<super::users::PasswordHash>,
}

/// `[registrar]`: binding lifetimes (RFC 3261 §10.3) and digest nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// `registrar.min_expires_s` (default 60 s; 1–86400 s): a REGISTER asking for less
    /// (but not 0) draws 423 Interval Too Brief with this as Min-Expires (§10.3 step 7).
    pub min_expires: Duration,
    /// `registrar.max_expires_s` (default 3600 s; `min_expires_s`–86400 s): longer
    /// requests are shortened to it.
    pub max_expires: Duration,
    /// `registrar.default_expires_s` (default 3600 s; `min_expires_s`–`max_expires_s`):
    /// the lifetime of a binding whose REGISTER gives no expiry.
    pub default_expires: Duration,
    /// `registrar.nonce_ttl_s` (default 300 s; 10–3600 s): how long a digest nonce is
    /// accepted; an older one draws a new challenge with `stale=true` (RFC 7616 §3.3).
    pub nonce_ttl: Duration,
}

// ---- raw form ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    #[serde(default = "default_trunk_name")]
    name: String,
    sources: Vec<String>,
    #[serde(default = "default_emergency_numbers")]
    emergency_numbers: Vec<String>,
    #[serde(default = "default_other_sources")]
    other_sources: String,
    #[serde(default = "default_min_session_expires_s")]
    min_session_expires_s: u32,
    #[serde(default)]
    trust_domain: Vec<String>,
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default = "default_options_interval_s")]
    options_interval_s: u32,
    #[serde(default = "default_options_failures")]
    options_failures: u32,
}

fn default_min_session_expires_s() -> u32 {
    90
}

fn default_options_interval_s() -> u32 {
    30
}

fn default_options_failures() -> u32 {
    3
}

fn default_trunk_name() -> String {
    "trunk".to_owned()
}

fn default_emergency_numbers() -> Vec<String> {
    vec!["112".to_owned()]
}

fn default_other_sources() -> String {
    "reject".to_owned()
}

/// `Debug` hides `ha1` and `password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    id: String,
    name: Option<String>,
    ha1: Option<String>,
    password: Option<String>,
    api_password_hash: Option<String>,
    /// `operators[].queues`, `skills`, `wrap_up_s`: validated in `acd`.
    pub(super) queues: Option<Vec<String>>,
    #[serde(default)]
    pub(super) skills: Vec<String>,
    pub(super) wrap_up_s: Option<u32>,
}

impl fmt::Debug for RawOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawOperator")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ha1", &self.ha1.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "api_password_hash",
                &self.api_password_hash.as_ref().map(|_| "***"),
            )
            .field("queues", &self.queues)
            .field("skills", &self.skills)
            .field("wrap_up_s", &self.wrap_up_s)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRegistrar {
    min_expires_s: u32,
    max_expires_s: u32,
    default_expires_s: u32,
    nonce_ttl_s: u32,
}

impl Default for RawRegistrar {
    fn default() -> Self {
        RawRegistrar {
            min_expires_s: 60,
            max_expires_s: 3600,
            default_expires_s: 3600,
            nonce_ttl_s: 300,
        }
    }
}

// ---- validation --------------------------------------------------------------------------

pub(super) fn validate_trunk(raw: &RawTrunk) -> Result<TrunkConfig, ConfigError> {
    let name = check("trunk.name", &raw.name, &[], values::parse_name)?;
    let other_sources = check(
        "trunk.other_sources",
        &raw.other_sources,
        &[],
        OtherSources::parse,
    )?;
    if raw.sources.is_empty() && other_sources == OtherSources::Reject {
        return Err(invalid(
            Source::Key("trunk.sources"),
            Vec::<String>::new(),
            Problem::NoTrunkSources,
        ));
    }
    let sources = networks("trunk.sources", &raw.sources)?;
    let trust_domain = networks("trunk.trust_domain", &raw.trust_domain)?;
    if raw.emergency_numbers.is_empty() {
        return Err(invalid(
            Source::Key("trunk.emergency_numbers"),
            Vec::<String>::new(),
            Problem::EmptyList,
        ));
    }
    let emergency_numbers = distinct(
        &Source::Key("trunk.emergency_numbers"),
        &raw.emergency_numbers,
        values::parse_emergency_number,
    )?;
    let min_session_expires = seconds(
        "trunk.min_session_expires_s",
        raw.min_session_expires_s,
        90,
        86_400,
    )?;
    let mut gateways: Vec<Gateway> = Vec::with_capacity(raw.gateways.len());
    for g in &raw.gateways {
        let gateway = check("trunk.gateways", g, &[], values::parse_gateway)?;
        if gateways
            .iter()
            .any(|o| o.address == gateway.address && o.transport == gateway.transport)
        {
            return Err(invalid(
                Source::Key("trunk.gateways"),
                g,
                Problem::Duplicate,
            ));
        }
        gateways.push(gateway);
    }
    let options_interval = seconds("trunk.options_interval_s", raw.options_interval_s, 1, 3600)?;
    let options_failures = in_range("trunk.options_failures", raw.options_failures, 1, 100)?;
    Ok(TrunkConfig {
        name,
        sources,
        emergency_numbers,
        other_sources,
        min_session_expires,
        trust_domain,
        gateways,
        options_interval,
        options_failures,
    })
}

/// The networks (CIDR, or single addresses) of list `key`. Errors: a malformed entry, or
/// one written twice ([`Problem::Duplicate`]).
fn networks(key: &'static str, raw: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    distinct(&Source::Key(key), raw, values::parse_ip_net)
}

/// The entries of list `key`, each parsed with `parse`. Errors: the first entry `parse`
/// refuses, or one equal to an earlier one once parsed ([`Problem::Duplicate`]).
pub(super) fn distinct<T: PartialEq>(
    key: &Source,
    raw: &[String],
    parse: impl Fn(&str) -> Result<T, Problem>,
) -> Result<Vec<T>, ConfigError> {
    let mut parsed: Vec<T> = Vec::with_capacity(raw.len());
    for s in raw {
        let value = parse(s).map_err(|problem| invalid(key.clone(), s, problem))?;
        if parsed.contains(&value) {
            return Err(invalid(key.clone(), s, Problem::Duplicate));
        }
        parsed.push(value);
    }
    Ok(parsed)
}

/// Stands for a secret in an error: its length, never its text.
struct Hidden(usize);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} characters, not shown)", self.0)
    }
}

pub(super) fn validate_operators(raw: &[RawOperator]) -> Result<Vec<OperatorConfig>, ConfigError> {
    let mut operators: Vec<OperatorConfig> = Vec::with_capacity(raw.len());
    for (i, op) in raw.iter().enumerate() {
        let key = |field: &str| format!("operators[{i}].{field}");
        let entry_invalid = |field: &str, value: &dyn fmt::Debug, problem: Problem| {
            invalid(Source::Entry(key(field)), value, problem)
        };
        let id = values::parse_name(&op.id).map_err(|p| entry_invalid("id", &op.id, p))?;
        if let Some(j) = operators
            .iter()
            .position(|o| o.id.eq_ignore_ascii_case(&id))
        {
            let problem = Problem::Repeats {
                key: format!("operators[{j}].id"),
            };
            return Err(entry_invalid("id", &op.id, problem));
        }
        let name = match &op.name {
            Some(n) => {
                Some(values::parse_display_name(n).map_err(|p| entry_invalid("name", n, p))?)
            }
            None => None,
        };
        let secret = match (&op.ha1, &op.password) {
            (Some(ha1), None) => OperatorSecret::Ha1(
                values::parse_ha1(ha1)
                    .map_err(|p| entry_invalid("ha1", &Hidden(ha1.chars().count()), p))?,
            ),
            (None, Some(password)) if password.is_empty() => {
                return Err(entry_invalid("password", password, Problem::EmptyPassword));
            }
            (None, Some(password)) => OperatorSecret::Password(password.clone()),
            (None, None) => return Err(ConfigError::MissingSecret { key: key("ha1") }),
            (Some(_), Some(_)) => {
                return Err(ConfigError::TwoSecrets {
                    key: key("password"),
                });
            }
        };
        let api_password_hash = match &op.api_password_hash {
            Some(hash) => Some(
                super::users::PasswordHash::parse(hash)
                    .map_err(|p| entry_invalid("api_password_hash", &Hidden(hash.len()), p))?,
            ),
            None => None,
        };
        operators.push(OperatorConfig {
            id,
            name,
            secret,
            api_password_hash,
        });
    }
    Ok(operators)
}

/// The longest binding lifetime accepted, in seconds (a day).
const MAX_EXPIRES_CAP_S: u32 = 86_400;

pub(super) fn validate_registrar(raw: &RawRegistrar) -> Result<RegistrarConfig, ConfigError> {
    let min = raw.min_expires_s;
    seconds("registrar.min_expires_s", min, 1, MAX_EXPIRES_CAP_S)?;
    let bounded_below = |key: &'static str, value: u32| {
        if value < min {
            return Err(ConfigError::Invalid {
                origin: Source::Key(key),
                value: value.to_string(),
                problem: Problem::BelowKey {
                    key: "registrar.min_expires_s",
                    min: min.into(),
                },
            });
        }
        Ok(())
    };
    bounded_below("registrar.max_expires_s", raw.max_expires_s)?;
    seconds(
        "registrar.max_expires_s",
        raw.max_expires_s,
        1,
        MAX_EXPIRES_CAP_S,
    )?;
    bounded_below("registrar.default_expires_s", raw.default_expires_s)?;
    if raw.default_expires_s > raw.max_expires_s {
        return Err(ConfigError::Invalid {
            origin: Source::Key("registrar.default_expires_s"),
            value: raw.default_expires_s.to_string(),
            problem: Problem::AboveKey {
                key: "registrar.max_expires_s",
                max: raw.max_expires_s.into(),
            },
        });
    }
    Ok(RegistrarConfig {
        min_expires: Duration::from_secs(min.into()),
        max_expires: Duration::from_secs(raw.max_expires_s.into()),
        default_expires: Duration::from_secs(raw.default_expires_s.into()),
        nonce_ttl: seconds("registrar.nonce_ttl_s", raw.nonce_ttl_s, 10, 3600)?,
    })
}

/// `value` seconds as a `Duration`, if within `min..=max`. Errors: [`Problem::OutOfRange`].
pub(super) fn seconds(
    key: impl Into<Source>,
    value: u32,
    min: u32,
    max: u32,
) -> Result<Duration, ConfigError> {
    in_range(key, value, min, max).map(|s| Duration::from_secs(s.into()))
}

/// `value`, if within `min..=max`. Errors: [`Problem::OutOfRange`].
pub(super) fn in_range(
    key: impl Into<Source>,
    value: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            origin: key.into(),
            value: value.to_string(),
            problem: Problem::OutOfRange {
                min: min.into(),
                max: max.into(),
            },
        });
    }
    Ok(value)
}
