//! The API's line to the engine task (DESIGN.md, "API": command messages with replies,
//! snapshots; never engine state directly).
//!
//! Handlers hold an [`EngineLink`]: a bounded queue of [`EngineRequest`]s, each carrying a
//! oneshot for its reply. The runtime's engine task receives them beside its other inputs
//! and calls [`EngineRequest::serve`], which runs one engine method and replies.
//!
//! Overload: the queue holds [`REQUEST_QUEUE`] requests. When it is full a request is not
//! queued and the handler answers 503 at once ([`LinkError::Busy`]): HTTP clients retry,
//! while SIP input (112 calls) keeps its place in the engine task. A reply that takes
//! longer than [`REPLY_TIMEOUT`] is given up on ([`LinkError::NoReply`], 503).

use crate::engine::acd::{AgentCommand, AgentError, AgentState, CallbackItem, NotReadyReason};
use crate::engine::call::{CallbackTakeError, TransferError};
use crate::engine::live::Snapshot;
use crate::engine::{Engine, Now};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Requests the engine task may hold queued from the API.
pub const REQUEST_QUEUE: usize = 64;

/// How long a handler waits for the engine task's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// An operator's change of their own agent state (`POST /api/me/state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Log in or become available (from not ready or wrap-up).
    Ready,
    /// Not ready, for a reason of [`NotReadyReason::CHOSEN`].
    NotReady(NotReadyReason),
    /// End wrap-up now.
    EndWrapUp,
}

/// The live view at one instant: the engine's snapshot and the store's queue.
#[derive(Clone, Debug)]
pub struct Live {
    /// The engine's snapshot.
    pub snapshot: Snapshot,
    /// Call and agent events handed to the store's writer and not yet taken by it
    /// (`None`: siaga runs without a store).
    pub store_queue: Option<usize>,
    /// Call and agent events in the store's journal (`database.journal`), waiting to be
    /// replayed into the database: 0 without a journal or while the database keeps up
    /// (`None`: siaga runs without a store).
    pub store_journal: Option<u64>,
}

/// Why a transfer asked through the API was not placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferRefusal {
    /// The operator asking is not the one on the call.
    #[error("you are not the operator on this call")]
    NotYourCall,
    /// The engine refused it.
    #[error("{0}")]
    Engine(TransferError),
}

/// One request to the engine task.
#[derive(Debug)]
pub enum EngineRequest {
    /// Operator `operator` changes their agent state.
    SetState {
        /// `operators[].id`.
        operator: String,
        /// The change.
        change: StateChange,
        /// The new state, or why not.
        reply: oneshot::Sender<Result<AgentState, AgentError>>,
    },
    /// The live view.
    Live {
        /// Where it goes.
        reply: oneshot::Sender<Live>,
    },
    /// The callback worklist (RFC 7090), oldest first ([`Engine::callbacks`]).
    Callbacks {
        /// Where it goes.
        reply: oneshot::Sender<Vec<CallbackItem>>,
    },
    /// Transfer live call `call` to agency `agency` (`Engine::transfer`), asked by
    /// operator `operator` (who must be on the call) or by a supervisor (`None`).
    Transfer {
        /// The call record id.
        call: Uuid,
        /// `agencies[].id`.
        agency: String,
        /// The operator asking; `None`: a supervisor or admin.
        operator: Option<String>,
        /// `Ok` once the INVITE to the agency is sent, or why not.
        reply: oneshot::Sender<Result<(), TransferRefusal>>,
    },
    /// Call `call` was classified or linked to an incident, and the store has it
    /// ([`Engine::call_classified`]): its drop lists nothing, or its item closes. No reply.
    Classified {
        /// The call record id.
        call: Uuid,
    },
    /// Operator `operator` takes the next callback (`Engine::take_callback_for`): siaga
    /// rings their phone, then calls the caller back.
    TakeCallback {
        /// `operators[].id`.
        operator: String,
        /// The item taken once the phone's INVITE is sent, or why none was.
        reply: oneshot::Sender<Result<CallbackItem, CallbackTakeError>>,
    },
    /// Put `items` on the callback worklist ([`Engine::restore_callbacks`]: an item
    /// already listed is not added twice): the worklist as the call records have it,
    /// rebuilt once the database has answered after start (`runtime::restore_callbacks_later`).
    RestoreCallbacks {
        /// The items, oldest first.
        items: Vec<CallbackItem>,
        /// The worklist's length afterwards.
        reply: oneshot::Sender<usize>,
    },
}

impl EngineRequest {
    /// Carries the request out on `engine` at `now` and replies (a handler that gave up
    /// waiting is no error). `store_queue` is the store writer's queue depth and
    /// `store_journal` the events its journal holds, for [`Live`]. Drain the engine's
    /// outputs afterwards as after any input.
    pub fn serve(
        self,
        engine: &mut Engine,
        now: Now,
        store_queue: Option<usize>,
        store_journal: Option<u64>,
    ) {
        match self {
            EngineRequest::SetState {
                operator,
                change,
                reply,
            } => {
                let result = match change {
                    StateChange::Ready => engine.agent_command(now, &operator, AgentCommand::Ready),
                    StateChange::EndWrapUp => {
                        engine.agent_command(now, &operator, AgentCommand::EndWrapUp)
                    }
                    StateChange::NotReady(reason) => engine.agent_not_ready(now, &operator, reason),
                };
                let _ = reply.send(result);
            }
            EngineRequest::Transfer {
                call,
                agency,
                operator,
                reply,
            } => {
                let not_theirs = operator.is_some_and(|op| {
                    engine.is_live_call(call) && engine.call_operator(call) != Some(op.as_str())
                });
                let result = if not_theirs {
                    Err(TransferRefusal::NotYourCall)
                } else {
                    engine
                        .transfer(now, call, &agency)
                        .map_err(TransferRefusal::Engine)
                };
                let _ = reply.send(result);
            }
            EngineRequest::Live { reply } => {
                let _ = reply.send(Live {
                    snapshot: engine.snapshot(now.mono),
                    store_queue,
                    store_journal,
                });
            }
            EngineRequest::Callbacks { reply } => {
                let _ = reply.send(engine.callbacks().to_vec());
            }
            EngineRequest::Classified { call } => engine.call_classified(call),
            EngineRequest::TakeCallback { operator, reply } => {
                let _ = reply.send(engine.take_callback_for(now, &operator));
            }
            EngineRequest::RestoreCallbacks { items, reply } => {
                engine.restore_callbacks(items);
                let _ = reply.send(engine.callbacks().len());
            }
        }
    }
}

/// Why the engine task gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The request queue is full.
    #[error("the engine is busy; try again")]
    Busy,
    /// The engine task has stopped (siaga is shutting down).
    #[error("the engine has stopped")]
    Stopped,
    /// No reply within [`REPLY_TIMEOUT`].
    #[error("the engine did not answer in time")]
    NoReply,
}

/// The handlers' end of the line. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EngineLink {
    tx: mpsc::Sender<EngineRequest>,
}

impl EngineLink {
    /// A link and the receiver the engine task reads, holding `capacity` requests.
    pub fn new(capacity: usize) -> (EngineLink, mpsc::Receiver<EngineRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (EngineLink { tx }, rx)
    }

    /// Operator `operator` changes their state: the new state or the engine's refusal.
    ///
    /// Errors: [`LinkError`].
    pub async fn set_state(
        &self,
        operator: &str,
        change: StateChange,
    ) -> Result<Result<AgentState, AgentError>, LinkError> {
        self.ask(|reply| EngineRequest::SetState {
            operator: operator.to_owned(),
            change,
            reply,
        })
        .await
    }

    /// The live view.
    ///
    /// Errors: [`LinkError`].
    pub async fn live(&self) -> Result<Live, LinkError> {
        self.ask(|reply| EngineRequest::Live { reply }).await
    }

    /// The callback worklist, oldest first, with who is calling back each item now.
    ///
    /// Errors: [`LinkError`].
    pub async fn callbacks(&self) -> Result<Vec<CallbackItem>, LinkError> {
        self.ask(|reply| EngineRequest::Callbacks { reply }).await
    }

    /// Transfers call `call` to agency `agency`, asked by `operator` (`None`: a
    /// supervisor): `Ok` once the agency's INVITE is sent, or why not.
    ///
    /// Errors: [`LinkError`].
    pub async fn transfer(
        &self,
        call: Uuid,
        agency: &str,
        operator: Option<&str>,
    ) -> Result<Result<(), TransferRefusal>, LinkError> {
        self.ask(|reply| EngineRequest::Transfer {
            call,
            agency: agency.to_owned(),
            operator: operator.map(str::to_owned),
            reply,
        })
        .await
    }

    /// Tells the engine that call `call` was classified or linked (after the store wrote
    /// it), without waiting: a full queue or a stopped engine is logged and dropped, as the
    /// worklist rebuilt at the next start checks the incidents anyway.
    ///
    /// Errors: [`LinkError::Busy`], [`LinkError::Stopped`] (the note was not queued).
    pub fn classified(&self, call: Uuid) -> Result<(), LinkError> {
        self.tx
            .try_send(EngineRequest::Classified { call })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LinkError::Busy,
                mpsc::error::TrySendError::Closed(_) => LinkError::Stopped,
            })
    }

    /// Operator `operator` takes the next callback: the item taken, or why none was.
    ///
    /// Errors: [`LinkError`].
    pub async fn take_callback(
        &self,
        operator: &str,
    ) -> Result<Result<CallbackItem, CallbackTakeError>, LinkError> {
        self.ask(|reply| EngineRequest::TakeCallback {
            operator: operator.to_owned(),
            reply,
        })
        .await
    }

    /// Puts `items` on the callback worklist (not twice); the worklist's length after.
    ///
    /// Errors: [`LinkError`].
    pub async fn restore_callbacks(&self, items: Vec<CallbackItem>) -> Result<usize, LinkError> {
        self.ask(|reply| EngineRequest::RestoreCallbacks { items, reply })
            .await
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> EngineRequest,
    ) -> Result<T, LinkError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(request(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Busy,
            mpsc::error::TrySendError::Closed(_) => LinkError::Stopped,
        })?;
        match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(LinkError::Stopped),
            Err(_) => Err(LinkError::NoReply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_busy_and_a_dropped_receiver_is_stopped() {
        let (link, rx) = EngineLink::new(1);
        // Fill the queue with a request nobody answers yet.
        let first = tokio::spawn({
            let link = link.clone();
            async move { link.live().await }
        });
        while rx.is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(link.live().await.err(), Some(LinkError::Busy));
        drop(rx);
        assert_eq!(
            first.await.expect("task").err(),
            Some(LinkError::Stopped),
            "a queued request whose receiver is gone"
        );
        assert_eq!(link.live().await.err(), Some(LinkError::Stopped));
    }
}
