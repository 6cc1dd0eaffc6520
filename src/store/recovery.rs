//! Start-up recovery after a crash (issue 6 point 3): the journal a previous process left
//! ([`super::Journal`]) is replayed, then the calls that process left open are closed and
//! the operators it left logged in are logged out ([`close_left_open`]).
//!
//! Who runs it: the writer task, as its first database action
//! ([`super::WriterOptions::start_up`]), so siaga takes calls at once, even while the
//! database is down (their events go to the journal meanwhile). Once the database answers,
//! in this order: migrations; the journal lines of the previous process (the journal's
//! length at open is the boundary, [`super::Journal::inherited`]); [`close_left_open`];
//! then this process's own journal lines. When [`close_left_open`] runs the database holds
//! none of this process's events, so none of this process's calls or operators can be
//! closed by mistake. A failed step is retried (backoff) until it succeeds. [`recover`]
//! does the same in one go (tests, tools).
//!
//! A call is left open when the process died (`kill -9`, a crash, a power cut) while it was
//! live: its `calls` row has no `ended_at`. Only this node's calls are closed (`node_id` =
//! `node.id`): on a shared PostgreSQL another node's open calls are live. Each is closed by
//! two events recorded by the new process, so the timeline says what happened:
//! `interrupted` (`{"last_state": …}`, the operator in its column when there was one) and
//! `ended` by `siaga` with disposition `interrupted`.
//!
//! The operators that process left logged in (their latest agent event of this node is
//! not to `logged_out`: `available`, `ringing`, `on_call`, `wrap_up`, `not_ready`) get an
//! agent event to `logged_out` with reason `interrupted` (and the call of their last
//! event, if any), so state durations (time on call, occupancy) end where the process
//! did. It is a record of the restart, not a transition of the ACD's table
//! (`acd::agent`): the table has no `on_call` → `logged_out` edge (an unregistered
//! operator stays on call until the call ends), and `interrupted` is no trigger name.
//! The new process starts every operator logged out, so the log and the ACD agree again.
//!
//! Their time: when the process died is not known, only that it was alive when it
//! recorded its last event. All these events are dated at the latest event of the calls
//! left open and of those operators' last agent events (a lower bound of the crash, at
//! most the crash-to-last-event gap early), so wait, talk and agent state times are not
//! stretched by how long the node stayed down.

use super::{AgentEventRow, EventRow, Journal, LogEvent, MAX_BATCH, Store, StoreError};
use crate::engine::acd::AgentState;
use crate::engine::record::{
    AgentEvent, CallEvent, CallEventKind, Disposition, Party, random_uuid,
};
use rand::Rng;
use uuid::Uuid;

/// What [`recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Journal events committed to the database.
    pub replayed: u64,
    /// Journal lines that could not be read (reported, kept in `<journal>.damaged`).
    pub damaged: u64,
    /// Calls closed as interrupted: (call id, last state).
    pub interrupted: Vec<(Uuid, String)>,
    /// Operators logged out as interrupted: (operator, the state they were left in).
    pub logged_out: Vec<(String, String)>,
}

impl Recovery {
    /// Logs what was done: the journal replayed (info), each call closed and each
    /// operator logged out (warn).
    pub fn log(&self) {
        if self.replayed > 0 || self.damaged > 0 {
            tracing::info!(
                replayed = self.replayed,
                damaged = self.damaged,
                "journal of the previous process replayed"
            );
        }
        for (call, last_state) in &self.interrupted {
            tracing::warn!(
                %call, last_state,
                "call left open by the previous process closed as interrupted"
            );
        }
        for (operator, last_state) in &self.logged_out {
            tracing::warn!(
                operator,
                last_state,
                "operator left logged in by the previous process logged out as interrupted"
            );
        }
    }
}

/// The agent state an operator is logged out to (`AgentState::LoggedOut`'s name).
const LOGGED_OUT: &str = "logged_out";

/// The reason of the restart's agent events.
const INTERRUPTED: &str = "interrupted";

/// Why [`recover`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The database failed; the journal keeps what was not replayed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal could not be read or emptied.
    #[error(transparent)]
    Journal(#[from] super::JournalError),
}

/// Replays `journal` (when given) into `store`, in order, then closes the calls of node
/// `node_id` left open as interrupted ([`close_left_open`]). Event ids come from `rng`.
/// siaga itself lets the writer do this ([`super::WriterOptions::start_up`]); this is the
/// same in one go, with the whole journal taken as the previous process's.
///
/// Errors: [`RecoveryError`]; calls are closed only once the journal is fully replayed
/// (an `ended` event in the journal must not be overruled), so on error nothing is closed
/// and the journal keeps the events not replayed.
pub async fn recover(
    store: &Store,
    journal: Option<&mut Journal>,
    node_id: &str,
    rng: &mut impl Rng,
) -> Result<Recovery, RecoveryError> {
    let mut replayed = 0;
    let mut damaged = 0;
    if let Some(journal) = journal {
        while journal.held() > 0 {
            let chunk = journal.read_chunk(MAX_BATCH).await?;
            for damage in &chunk.damaged {
                tracing::error!(
                    journal = %journal.path().display(),
                    line = damage.line,
                    offset = damage.offset,
                    reason = %damage.reason,
                    "journal line damaged: skipped (the intact lines are replayed)"
                );
            }
            damaged += chunk.damaged.len() as u64;
            store.write_batch(node_id, &chunk.events).await?;
            replayed += chunk.events.len() as u64;
            journal.advance(&chunk).await?;
        }
    }
    let mut recovery = close_left_open(store, node_id, rng).await?;
    recovery.replayed = replayed;
    recovery.damaged = damaged;
    Ok(recovery)
}

/// Closes the calls of node `node_id` left open as interrupted and logs out the operators
/// it left logged in (see the module doc), writing their events to `store` (event ids
/// from `rng`). Call it once the previous process's journal is replayed and before any
/// event of this process is written. Running it again is harmless: what it closed is no
/// longer open.
///
/// Errors: [`StoreError`] (a batch not written is written by the next run).
pub async fn close_left_open(
    store: &Store,
    node_id: &str,
    rng: &mut impl Rng,
) -> Result<Recovery, StoreError> {
    let mut recovery = Recovery::default();
    let open = store.open_calls(node_id).await?;
    let mut timelines = Vec::with_capacity(open.len());
    for call in &open {
        timelines.push((call.id, store.call_events(call.id).await?));
    }
    let operators: Vec<AgentEventRow> = store
        .last_agent_events(node_id)
        .await?
        .into_iter()
        .filter(|last| last.to_state != LOGGED_OUT)
        .collect();
    let Some(at) = timelines
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| e.at))
        .chain(operators.iter().map(|last| last.at))
        .max()
    else {
        return Ok(recovery);
    };
    let mut events: Vec<LogEvent> = Vec::new();
    for (call, timeline) in &timelines {
        let (state, operator) = last_state(timeline);
        let mut event = |kind| {
            LogEvent::Call(CallEvent {
                id: random_uuid(rng),
                call: *call,
                at,
                kind,
            })
        };
        events.push(event(CallEventKind::Interrupted {
            last_state: state.to_owned(),
            operator,
        }));
        events.push(event(CallEventKind::Ended {
            by: Party::Siaga,
            disposition: Disposition::Interrupted,
        }));
        recovery.interrupted.push((*call, state.to_owned()));
    }
    for last in operators {
        // A state of a later version cannot be named as `from`: left as it is.
        let Some(from) = AgentState::NAMES
            .into_iter()
            .find(|name| *name == last.to_state)
        else {
            tracing::warn!(
                operator = %last.operator,
                state = %last.to_state,
                "unknown agent state left by the previous process: not logged out"
            );
            continue;
        };
        events.push(LogEvent::Agent(AgentEvent {
            id: random_uuid(rng),
            operator: last.operator.clone(),
            at,
            from,
            to: LOGGED_OUT,
            reason: Some(INTERRUPTED.to_owned()),
            call: last.call_id,
        }));
        recovery.logged_out.push((last.operator, from.to_owned()));
    }
    for batch in events.chunks(MAX_BATCH) {
        store.write_batch(node_id, batch).await?;
    }
    Ok(recovery)
}

/// The state a call's stored events (in order) leave it in, and the operator it was
/// ringing or talking to: `received` (nothing after it), `in_queue` (queued, or back in
/// the queue after a leg ended without answer), `ringing` (an operator's phone), `on_call`
/// (answered), `overflow_ringing` (offered to the backup centre), `overflowed` (bridged to
/// it), `callback` (an operator calling the caller back), `transferring` (an agency's
/// leg ringing, with the operator who asked still on the call), `transferred` (bridged to
/// the agency; a failed transfer returns to the state before it). Kinds that change no
/// state (`media`, `renegotiated`, …) and kinds of later versions are passed over.
pub fn last_state(events: &[EventRow]) -> (&'static str, Option<String>) {
    let mut state = ("received", None);
    let mut before_transfer = None;
    for event in events {
        let operator = || event.operator.clone();
        state = match event.kind.as_str() {
            "transfer_offered" => {
                before_transfer = Some(state.clone());
                ("transferring", operator())
            }
            "transfer_failed" => match before_transfer.take() {
                Some(before) => before,
                None => continue,
            },
            "transfer_answered" => ("transferred", None),
            "queued" | "widened" | "requeued" | "no_answer" | "rejected" | "leg_failed"
            | "overflow_failed" => ("in_queue", None),
            "offered" => ("ringing", operator()),
            "answered" => ("on_call", operator()),
            "overflow_offered" => ("overflow_ringing", None),
            "overflow_answered" => ("overflowed", None),
            "callback_started" => ("callback", operator()),
            _ => continue,
        };
    }
    state
}
