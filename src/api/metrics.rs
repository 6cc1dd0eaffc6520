//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4), with the `metrics`
//! crate and `metrics-exporter-prometheus` (DESIGN.md, "Decisions").
//!
//! Each [`Metrics`] owns its own recorder (no process-global one), so every siaga in a
//! process (tests) has its own figures. Two kinds of source:
//! - counted as the engine emits call events, by a [`CallObserver`] the engine task owns:
//!   `siaga_calls_total{disposition}` (calls ended, by disposition, NENA/EENA words) and
//!   `siaga_answer_time_seconds` (histogram: from the trunk's INVITE to the first operator
//!   answer; NENA-STA-020.1 reports the shares within 10, 15 and 20 s, which are buckets);
//! - read from the live view at each scrape ([`Metrics::render`]): `siaga_calls_waiting`,
//!   `siaga_calls_in_progress`, `siaga_operators{state}` (every agent state, 0 included),
//!   `siaga_trunk_gateway_up{gateway}` (1 up, 0 down or not probed yet) and
//!   `siaga_store_queue_depth` (events waiting for the store's writer) and
//!   `siaga_store_journal_events` (events in the store's journal, waiting to be replayed
//!   into the database; issue 6 point 6).

use super::link::Live;
use crate::engine::record::{CallEvent, CallEventKind, Disposition};
use crate::engine::trunk_health::GatewayState;
use metrics::{Counter, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// Bucket bounds of `siaga_answer_time_seconds`, in seconds.
pub const ANSWER_BUCKETS: [f64; 10] = [2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Calls an observer follows at once (calls between their `received` and `ended` events).
/// Past it a new call is not timed (its disposition is still counted): the engine ends
/// every call, so this bounds memory only against a bug.
const MAX_FOLLOWED: usize = 10_000;

/// The agent states, as `siaga_operators`' `state` label.
const AGENT_STATES: [&str; 6] = [
    "logged_out",
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "not_ready",
];

/// Dispositions counted from the start (0 until a call ends so), so dashboards see every
/// series; others are added when first seen.
const DISPOSITIONS: [Disposition; 6] = [
    Disposition::Answered,
    Disposition::AbandonedInQueue,
    Disposition::AbandonedWhileRinging,
    Disposition::Failed,
    Disposition::Interrupted,
    Disposition::Overflowed,
];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// One siaga's metrics: a recorder and its registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with the metrics described.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("siaga_answer_time_seconds".to_owned()),
                &ANSWER_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let describe = |name: &'static str, help: &'static str| {
            (KeyName::from_const_str(name), SharedString::const_str(help))
        };
        let (name, help) = describe("siaga_calls_total", "Calls ended, by disposition.");
        recorder.describe_counter(name, None, help);
        let (name, help) = describe(
            "siaga_answer_time_seconds",
            "Time from the trunk's INVITE to the first operator answer.",
        );
        recorder.describe_histogram(name, Some(metrics::Unit::Seconds), help);
        for (name, help) in [
            describe("siaga_calls_waiting", "Calls waiting in the ACD queues."),
            describe(
                "siaga_calls_in_progress",
                "Live calls not waiting (ringing, answered, with the backup centre).",
            ),
            describe("siaga_operators", "Operators by agent state."),
            describe(
                "siaga_trunk_gateway_up",
                "1 when the gateway answered its last OPTIONS probe, else 0.",
            ),
            describe(
                "siaga_store_queue_depth",
                "Call and agent events waiting for the store's writer.",
            ),
            describe(
                "siaga_store_journal_events",
                "Call and agent events in the store's journal, not yet in the database.",
            ),
        ] {
            recorder.describe_gauge(name, None, help);
        }
        Metrics {
            recorder: Arc::new(recorder),
        }
    }

    /// An observer of call events feeding these metrics (for the engine task).
    pub fn observer(&self) -> CallObserver {
        let mut calls = BTreeMap::new();
        for d in DISPOSITIONS {
            calls.insert(d.as_str(), self.calls_counter(d.as_str()));
        }
        CallObserver {
            metrics: self.clone(),
            answer_time: self.recorder.register_histogram(
                &Key::from_static_name("siaga_answer_time_seconds"),
                &METADATA,
            ),
            calls,
            received: HashMap::new(),
        }
    }

    fn calls_counter(&self, disposition: &'static str) -> Counter {
        let key = Key::from_parts(
            "siaga_calls_total",
            vec![Label::new("disposition", disposition)],
        );
        self.recorder.register_counter(&key, &METADATA)
    }

    /// The exposition text, with the gauges set from `live`.
    pub fn render(&self, live: &Live) -> String {
        let gauge = |name: &'static str, labels: Vec<Label>, value: f64| {
            self.recorder
                .register_gauge(&Key::from_parts(name, labels), &METADATA)
                .set(value);
        };
        let snapshot = &live.snapshot;
        gauge("siaga_calls_waiting", vec![], snapshot.waiting.len() as f64);
        gauge(
            "siaga_calls_in_progress",
            vec![],
            snapshot.in_progress.len() as f64,
        );
        for state in AGENT_STATES {
            let n = snapshot
                .operators
                .iter()
                .filter(|o| o.state.name() == state)
                .count();
            gauge(
                "siaga_operators",
                vec![Label::new("state", state)],
                n as f64,
            );
        }
        for gateway in &snapshot.trunk {
            let up = if gateway.state == GatewayState::Up {
                1.0
            } else {
                0.0
            };
            gauge(
                "siaga_trunk_gateway_up",
                vec![Label::new("gateway", gateway.uri.clone())],
                up,
            );
        }
        if let Some(depth) = live.store_queue {
            gauge("siaga_store_queue_depth", vec![], depth as f64);
        }
        if let Some(held) = live.store_journal {
            gauge("siaga_store_journal_events", vec![], held as f64);
        }
        self.recorder.handle().render()
    }
}

/// Counts what the engine's call events say (owned by the engine task; see the module
/// docs for the series).
pub struct CallObserver {
    metrics: Metrics,
    answer_time: Histogram,
    calls: BTreeMap<&'static str, Counter>,
    /// Calls received and not yet answered or ended → when received (ms UTC).
    received: HashMap<Uuid, i64>,
}

impl std::fmt::Debug for CallObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallObserver")
            .field("followed", &self.received.len())
            .finish()
    }
}

impl CallObserver {
    /// Takes one call event into account.
    pub fn observe(&mut self, event: &CallEvent) {
        match &event.kind {
            CallEventKind::Received { .. } if self.received.len() < MAX_FOLLOWED => {
                self.received.insert(event.call, event.at.0);
            }
            CallEventKind::Answered { .. } => {
                // The first answer only: a call requeued and answered again keeps its
                // first answer time.
                if let Some(at) = self.received.remove(&event.call) {
                    let seconds = (event.at.0 - at).max(0) as f64 / 1000.0;
                    self.answer_time.record(seconds);
                }
            }
            CallEventKind::Ended { disposition, .. } => {
                self.received.remove(&event.call);
                let name = disposition.as_str();
                let metrics = &self.metrics;
                self.calls
                    .entry(name)
                    .or_insert_with(|| metrics.calls_counter(name))
                    .increment(1);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::UtcTime;
    use crate::engine::live::Snapshot;
    use crate::engine::record::Party;

    fn event(call: u128, at: i64, kind: CallEventKind) -> CallEvent {
        CallEvent {
            id: Uuid::from_u128(at as u128),
            call: Uuid::from_u128(call),
            at: UtcTime(at),
            kind,
        }
    }

    fn received(call: u128, at: i64) -> CallEvent {
        event(
            call,
            at,
            CallEventKind::Received {
                trunk_call_id: "c".into(),
                caller: None,
                called: "112".into(),
                original_called: None,
                trunk: "telco".into(),
            },
        )
    }

    fn answered(call: u128, at: i64) -> CallEvent {
        event(
            call,
            at,
            CallEventKind::Answered {
                operator: "1001".into(),
            },
        )
    }

    fn ended(call: u128, at: i64, disposition: Disposition) -> CallEvent {
        event(
            call,
            at,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition,
            },
        )
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn answer_times_fall_in_buckets_and_dispositions_are_counted() {
        let metrics = Metrics::new();
        let mut observer = metrics.observer();
        for e in [
            received(1, 0),
            answered(1, 8_000),
            // Requeued and answered again: not timed twice.
            answered(1, 40_000),
            ended(1, 60_000, Disposition::Answered),
            received(2, 1_000),
            answered(2, 17_500),
            ended(2, 20_000, Disposition::Answered),
            received(3, 2_000),
            ended(3, 9_000, Disposition::AbandonedInQueue),
        ] {
            observer.observe(&e);
        }
        let text = metrics.render(&Live {
            snapshot: Snapshot {
                waiting: vec![],
                operators: vec![],
                in_progress: vec![],
                trunk: vec![],
            },
            store_queue: Some(3),
            store_journal: Some(250),
        });
        let value = |prefix: &str| -> f64 {
            line(&text, prefix)
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("a number")
        };
        assert_eq!(value("siaga_answer_time_seconds_bucket{le=\"5\"}"), 0.0);
        assert_eq!(value("siaga_answer_time_seconds_bucket{le=\"10\"}"), 1.0);
        assert_eq!(value("siaga_answer_time_seconds_bucket{le=\"15\"}"), 1.0);
        assert_eq!(value("siaga_answer_time_seconds_bucket{le=\"20\"}"), 2.0);
        assert_eq!(value("siaga_answer_time_seconds_count"), 2.0);
        assert_eq!(value("siaga_answer_time_seconds_sum"), 24.5);
        assert_eq!(value("siaga_calls_total{disposition=\"answered\"}"), 2.0);
        assert_eq!(
            value("siaga_calls_total{disposition=\"abandoned_in_queue\"}"),
            1.0
        );
        assert_eq!(value("siaga_calls_total{disposition=\"overflowed\"}"), 0.0);
        assert_eq!(value("siaga_operators{state=\"available\"}"), 0.0);
        assert_eq!(value("siaga_store_queue_depth"), 3.0);
        assert_eq!(value("siaga_store_journal_events"), 250.0);
        assert!(observer.received.is_empty(), "ended calls are forgotten");
    }
}
