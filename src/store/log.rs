//! What the store's event log holds: call events (`call_events`) and agent events
//! (`agent_events`), as one type ([`LogEvent`]) so both go through the one writer queue
//! in the order the engine emitted them, and as one borrowed view ([`LogRef`], via
//! [`Logged`]) so [`super::Store::write_batch`] takes a slice of either, or of both mixed.

use crate::engine::record::{AgentEvent, CallEvent};
use serde::{Deserialize, Serialize};

/// One event for the durable log: a call's or an operator's. Serializes (serde) as
/// `{"call":{…}}` or `{"agent":{…}}`: the form of a journal line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEvent {
    /// Appended to `call_events`, and applied to the call's `calls` row.
    Call(CallEvent),
    /// Appended to `agent_events`.
    Agent(AgentEvent),
}

impl From<CallEvent> for LogEvent {
    fn from(event: CallEvent) -> Self {
        LogEvent::Call(event)
    }
}

impl From<AgentEvent> for LogEvent {
    fn from(event: AgentEvent) -> Self {
        LogEvent::Agent(event)
    }
}

/// A borrowed [`LogEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRef<'a> {
    /// A call event.
    Call(&'a CallEvent),
    /// An agent event.
    Agent(&'a AgentEvent),
}

/// What [`super::Store::write_batch`] can write: [`CallEvent`], [`AgentEvent`] and
/// [`LogEvent`].
pub trait Logged {
    /// The event, borrowed.
    fn log_ref(&self) -> LogRef<'_>;
}

impl Logged for CallEvent {
    fn log_ref(&self) -> LogRef<'_> {
        LogRef::Call(self)
    }
}

impl Logged for AgentEvent {
    fn log_ref(&self) -> LogRef<'_> {
        LogRef::Agent(self)
    }
}

impl Logged for LogEvent {
    fn log_ref(&self) -> LogRef<'_> {
        match self {
            LogEvent::Call(event) => LogRef::Call(event),
            LogEvent::Agent(event) => LogRef::Agent(event),
        }
    }
}
