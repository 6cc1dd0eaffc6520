//! The ACD's configuration: `[queue]` (the defaults of every queue, and the 180 Ringing
//! refresh of RFC 3261 §13.3.1.1), `[[queues]]`, `[[routes]]` (trunk routing rules),
//! `[acd]` (repeat-caller and callback windows), `[feature_codes]` and the ACD keys of
//! `[[operators]]` (`queues`, `skills`, `wrap_up_s`), validated into the engine's
//! [`AcdSettings`].
//!
//! A queue's value is its `[[queues]]` entry's, else `[queue]`'s, else the default; an error
//! names the key that gave the bad value (`queues[1].wrap_up_s` or `queue.wrap_up_s`).
//! Queue names are unique without case; the queue a route or an operator names is matched
//! without case and stored as the queue spells itself. Skills are lower-cased.

use super::calls::{OperatorConfig, RawOperator, distinct, in_range, seconds};
use super::error::{ConfigError, Problem, Source};
use super::{RawConfig, check, invalid, values};
use crate::engine::acd::{
    AcdSettings, AgentSettings, FeatureCodes, LoginPolicy, Overflow, QueueSettings, Route, Strategy,
};
use serde::Deserialize;
use std::time::Duration;

/// The one queue there is when the file has no `[[queues]]`.
pub const DEFAULT_QUEUE: &str = "112";

/// `[queue]`'s timers as written there: the 180 Ringing refresh, one for all queues, and
/// `ring_timeout_s` and `reject_retry_delay_s`, the defaults of every queue (each queue's
/// own are in [`AcdSettings::queues`], which the call model reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// `queue.ring_timeout_s` (default 15 s; 1–600 s): how long an operator's phone rings
    /// before the call is offered to another operator.
    pub ring_timeout: Duration,
    /// `queue.reject_retry_delay_s` (default 5 s; 0–3600 s): after an operator rejects a
    /// call, how long before that operator is offered the same call again.
    pub reject_retry_delay: Duration,
    /// `queue.ringing_refresh_s` (default 30 s; 1–60 s): how often the 180 Ringing is
    /// repeated to a queued caller (RFC 3261 §13.3.1.1: at least once a minute, so that
    /// proxies keep the INVITE transaction alive).
    pub ringing_refresh: Duration,
}

// ---- raw form ----------------------------------------------------------------------------

/// `[queue]` or one `[[queues]]` entry; `None`: not set in this table. `name` belongs only
/// to `[[queues]]` (where it is required) and `ringing_refresh_s` only to `[queue]`: the
/// validation refuses them elsewhere as unknown keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    name: Option<String>,
    ringing_refresh_s: Option<u32>,
    strategy: Option<String>,
    login: Option<String>,
    ring_timeout_s: Option<u32>,
    reject_retry_delay_s: Option<u32>,
    wrap_up_s: Option<u32>,
    no_answer_limit: Option<u32>,
    widen_after_s: Option<u32>,
    overflow_uri: Option<String>,
    overflow_after_s: Option<u32>,
    overflow_ring_timeout_s: Option<u32>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    numbers: Vec<String>,
    queue: String,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    priority: u32,
}

/// `[acd]`; `None`: the default of [`AcdSettings::single_queue`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcd {
    repeat_window_s: Option<u32>,
    callback_window_h: Option<u32>,
    callback_ring_timeout_s: Option<u32>,
    transfer_ring_timeout_s: Option<u32>,
}

/// `[feature_codes]`; `None`: the default of [`FeatureCodes::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeatureCodes {
    ready: Option<String>,
    not_ready: Option<String>,
    end_wrap_up: Option<String>,
    next_callback: Option<String>,
    logout: Option<String>,
}

// ---- validation --------------------------------------------------------------------------

/// The accepted `strategy` words, as [`Problem::NotOneOf`] lists them.
const STRATEGIES: &str = "\"longest-idle\", \"round-robin\", \"ring-all\", \"skills\"";

/// The accepted `login` words.
const LOGIN_POLICIES: &str = "\"on-register\", \"explicit\"";

/// `queue.ringing_refresh_s` when absent.
const DEFAULT_RINGING_REFRESH_S: u32 = 30;

/// `overflow_after_s` when absent.
const DEFAULT_OVERFLOW_AFTER_S: u32 = 60;

/// `overflow_ring_timeout_s` when absent.
const DEFAULT_OVERFLOW_RING_TIMEOUT_S: u32 = 20;

/// A queue while its tables are applied: the overflow destination apart from its timers,
/// since a `[[queues]]` entry may change the timers of the destination `[queue]` gives.
#[derive(Clone)]
struct Draft {
    queue: QueueSettings,
    overflow_uri: Option<String>,
    overflow_after: Duration,
    overflow_ring_timeout: Duration,
}

impl Draft {
    /// Sets the keys `raw` gives, each checked; `table` prefixes the key an error names
    /// (`queue`, `queues[2]`).
    fn apply(&mut self, raw: &RawQueue, table: &str) -> Result<(), ConfigError> {
        let key = |field: &str| Source::Entry(format!("{table}.{field}"));
        let q = &mut self.queue;
        if let Some(word) = &raw.strategy {
            let problem = Problem::NotOneOf {
                choices: STRATEGIES,
            };
            q.strategy =
                Strategy::from_name(word).ok_or_else(|| invalid(key("strategy"), word, problem))?;
        }
        if let Some(word) = &raw.login {
            let problem = Problem::NotOneOf {
                choices: LOGIN_POLICIES,
            };
            q.login =
                LoginPolicy::from_name(word).ok_or_else(|| invalid(key("login"), word, problem))?;
        }
        if let Some(s) = raw.ring_timeout_s {
            q.ring_timeout = seconds(key("ring_timeout_s"), s, 1, 600)?;
        }
        if let Some(s) = raw.reject_retry_delay_s {
            q.reject_delay = seconds(key("reject_retry_delay_s"), s, 0, 3600)?;
        }
        if let Some(s) = raw.wrap_up_s {
            q.wrap_up = seconds(key("wrap_up_s"), s, 0, 3600)?;
        }
        if let Some(n) = raw.no_answer_limit {
            q.no_answer_limit = in_range(key("no_answer_limit"), n, 0, 100)?;
        }
        if let Some(s) = raw.widen_after_s {
            q.widen_after = Some(seconds(key("widen_after_s"), s, 1, 3600)?);
        }
        if let Some(uri) = &raw.overflow_uri {
            let uri = check_entry(key("overflow_uri"), uri, values::parse_overflow_uri)?;
            self.overflow_uri = Some(uri);
        }
        if let Some(s) = raw.overflow_after_s {
            self.overflow_after = seconds(key("overflow_after_s"), s, 1, 3600)?;
        }
        if let Some(s) = raw.overflow_ring_timeout_s {
            self.overflow_ring_timeout = seconds(key("overflow_ring_timeout_s"), s, 1, 600)?;
        }
        Ok(())
    }

    /// The queue named `name`.
    fn finish(self, name: String) -> QueueSettings {
        let overflow = self.overflow_uri.map(|uri| Overflow {
            uri,
            after: self.overflow_after,
            ring_timeout: self.overflow_ring_timeout,
        });
        QueueSettings {
            name,
            overflow,
            ..self.queue
        }
    }
}

/// Validates `[queue]`, `[[queues]]`, `[[routes]]`, `[acd]`, `[feature_codes]` and the ACD
/// keys of `raw.operators`, whose validated form is `operators` (same order).
/// `emergency_numbers` are `trunk.emergency_numbers`, which no feature code may equal.
pub(super) fn validate(
    raw: &RawConfig,
    operators: &[OperatorConfig],
    emergency_numbers: &[String],
) -> Result<(QueueConfig, AcdSettings), ConfigError> {
    let (queue, queues) = validate_queues(&raw.queue, raw.queues.as_deref())?;
    let routes = validate_routes(&raw.routes, &queues)?;
    let agents = validate_agents(&raw.operators, operators, &queues)?;
    let defaults = AcdSettings::single_queue([]);
    let a = &raw.acd;
    let callback_window_h = a
        .callback_window_h
        .map(|h| in_range("acd.callback_window_h", h, 1, 720))
        .transpose()?;
    let acd = AcdSettings {
        queues,
        routes,
        agents,
        repeat_window: optional_seconds("acd.repeat_window_s", a.repeat_window_s, 0, 86_400)?
            .unwrap_or(defaults.repeat_window),
        callback_window: callback_window_h.map_or(defaults.callback_window, |h| {
            Duration::from_secs(3600 * u64::from(h))
        }),
        callback_ring_timeout: optional_seconds(
            "acd.callback_ring_timeout_s",
            a.callback_ring_timeout_s,
            1,
            600,
        )?
        .unwrap_or(defaults.callback_ring_timeout),
        transfer_ring_timeout: optional_seconds(
            "acd.transfer_ring_timeout_s",
            a.transfer_ring_timeout_s,
            1,
            600,
        )?
        .unwrap_or(defaults.transfer_ring_timeout),
        feature_codes: validate_feature_codes(&raw.feature_codes, emergency_numbers)?,
    };
    Ok((queue, acd))
}

/// The operators' `queues` (each defined; absent: every queue), `skills` and `wrap_up_s`.
fn validate_agents(
    raw: &[RawOperator],
    operators: &[OperatorConfig],
    queues: &[QueueSettings],
) -> Result<Vec<AgentSettings>, ConfigError> {
    let mut agents = Vec::with_capacity(operators.len());
    for (i, (op, raw_op)) in operators.iter().zip(raw).enumerate() {
        let key = |field: &str| Source::Entry(format!("operators[{i}].{field}"));
        let served = match &raw_op.queues {
            None => Vec::new(),
            Some(names) if names.is_empty() => {
                return Err(invalid(key("queues"), names, Problem::EmptyList));
            }
            Some(names) => distinct(&key("queues"), names, |n| queue_named(queues, n))?,
        };
        let wrap_up = raw_op
            .wrap_up_s
            .map(|s| seconds(key("wrap_up_s"), s, 0, 3600))
            .transpose()?;
        agents.push(AgentSettings {
            id: op.id.clone(),
            queues: served,
            skills: distinct(&key("skills"), &raw_op.skills, values::parse_skill)?,
            wrap_up,
        });
    }
    Ok(agents)
}

/// `value` seconds, if given and within `min..=max`.
fn optional_seconds(
    key: &'static str,
    value: Option<u32>,
    min: u32,
    max: u32,
) -> Result<Option<Duration>, ConfigError> {
    value.map(|s| seconds(key, s, min, max)).transpose()
}

/// `[queue]` and the queues: the `[[queues]]` entries over `[queue]`, or the one queue
/// [`DEFAULT_QUEUE`] with `[queue]`'s values.
fn validate_queues(
    defaults: &RawQueue,
    entries: Option<&[RawQueue]>,
) -> Result<(QueueConfig, Vec<QueueSettings>), ConfigError> {
    if defaults.name.is_some() {
        return Err(ConfigError::UnknownKey {
            key: "queue.name".to_owned(),
            position: None,
            expected: "[queue] holds the defaults of every queue; name a queue in a [[queues]] \
                       entry"
                .to_owned(),
        });
    }
    let mut draft = Draft {
        queue: QueueSettings::named(DEFAULT_QUEUE),
        overflow_uri: None,
        overflow_after: Duration::from_secs(DEFAULT_OVERFLOW_AFTER_S.into()),
        overflow_ring_timeout: Duration::from_secs(DEFAULT_OVERFLOW_RING_TIMEOUT_S.into()),
    };
    draft.apply(defaults, "queue")?;
    let ringing_refresh = defaults
        .ringing_refresh_s
        .unwrap_or(DEFAULT_RINGING_REFRESH_S);
    let queue = QueueConfig {
        ring_timeout: draft.queue.ring_timeout,
        reject_retry_delay: draft.queue.reject_delay,
        ringing_refresh: seconds("queue.ringing_refresh_s", ringing_refresh, 1, 60)?,
    };
    let Some(entries) = entries else {
        return Ok((queue, vec![draft.finish(DEFAULT_QUEUE.to_owned())]));
    };
    if entries.is_empty() {
        return Err(invalid(
            Source::Key("queues"),
            Vec::<String>::new(),
            Problem::EmptyList,
        ));
    }
    let mut queues: Vec<QueueSettings> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let table = format!("queues[{i}]");
        if entry.ringing_refresh_s.is_some() {
            return Err(ConfigError::UnknownKey {
                key: format!("{table}.ringing_refresh_s"),
                position: None,
                expected: "the 180 Ringing refresh is one for all queues: set it in [queue]"
                    .to_owned(),
            });
        }
        let Some(raw_name) = &entry.name else {
            return Err(ConfigError::MissingKey {
                key: format!("{table}.name"),
            });
        };
        let name_key = || Source::Entry(format!("{table}.name"));
        let name = check_entry(name_key(), raw_name, values::parse_name)?;
        if let Some(j) = queues
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(&name))
        {
            let problem = Problem::Repeats {
                key: format!("queues[{j}].name"),
            };
            return Err(invalid(name_key(), raw_name, problem));
        }
        let mut queue = draft.clone();
        queue.apply(entry, &table)?;
        queues.push(queue.finish(name));
    }
    Ok((queue, queues))
}

/// `[[routes]]`: each number in one route only (the first match would hide the others).
fn validate_routes(raw: &[RawRoute], queues: &[QueueSettings]) -> Result<Vec<Route>, ConfigError> {
    let mut routes: Vec<Route> = Vec::with_capacity(raw.len());
    for (i, route) in raw.iter().enumerate() {
        let key = |field: &str| Source::Entry(format!("routes[{i}].{field}"));
        if route.numbers.is_empty() {
            return Err(invalid(key("numbers"), &route.numbers, Problem::EmptyList));
        }
        let numbers = distinct(&key("numbers"), &route.numbers, values::parse_route_number)?;
        for (number, raw_number) in numbers.iter().zip(&route.numbers) {
            if let Some(j) = routes.iter().position(|r| r.numbers.contains(number)) {
                let problem = Problem::Repeats {
                    key: format!("routes[{j}].numbers"),
                };
                return Err(invalid(key("numbers"), raw_number, problem));
            }
        }
        let queue = check_entry(key("queue"), &route.queue, |n| queue_named(queues, n))?;
        let priority = in_range(key("priority"), route.priority, 0, u8::MAX.into())?;
        routes.push(Route {
            numbers,
            queue,
            skills: distinct(&key("skills"), &route.skills, values::parse_skill)?,
            // Within 0..=255: checked just above.
            priority: u8::try_from(priority).unwrap_or(u8::MAX),
        });
    }
    Ok(routes)
}

/// The name of the queue called `name` without regard to case. Errors:
/// [`Problem::UnknownQueue`], listing the queues.
fn queue_named(queues: &[QueueSettings], name: &str) -> Result<String, Problem> {
    queues
        .iter()
        .find(|q| q.name.eq_ignore_ascii_case(name))
        .map(|q| q.name.clone())
        .ok_or_else(|| Problem::UnknownQueue {
            queues: queues
                .iter()
                .map(|q| format!("{:?}", q.name))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Checks `value` with `parse`, naming `key` on error.
fn check_entry<T>(
    key: Source,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Result<T, ConfigError> {
    parse(value).map_err(|problem| invalid(key, value, problem))
}

/// `[feature_codes]`: each well-formed, all distinct, none an emergency number.
fn validate_feature_codes(
    raw: &RawFeatureCodes,
    emergency_numbers: &[String],
) -> Result<FeatureCodes, ConfigError> {
    let mut codes = FeatureCodes::default();
    let slots: [(&'static str, &Option<String>, &mut String); 5] = [
        ("feature_codes.ready", &raw.ready, &mut codes.ready),
        (
            "feature_codes.not_ready",
            &raw.not_ready,
            &mut codes.not_ready,
        ),
        (
            "feature_codes.end_wrap_up",
            &raw.end_wrap_up,
            &mut codes.end_wrap_up,
        ),
        (
            "feature_codes.next_callback",
            &raw.next_callback,
            &mut codes.next_callback,
        ),
        ("feature_codes.logout", &raw.logout, &mut codes.logout),
    ];
    let mut seen: Vec<(&'static str, String)> = Vec::with_capacity(slots.len());
    for (key, given, slot) in slots {
        if let Some(code) = given {
            *slot = check(key, code, &[], values::parse_feature_code)?;
        }
        if let Some((earlier, _)) = seen.iter().find(|(_, c)| c == slot) {
            let problem = Problem::Repeats {
                key: (*earlier).to_owned(),
            };
            return Err(invalid(Source::Key(key), &*slot, problem));
        }
        if emergency_numbers.contains(slot) {
            return Err(invalid(Source::Key(key), &*slot, Problem::EmergencyNumber));
        }
        seen.push((key, slot.clone()));
    }
    Ok(codes)
}
