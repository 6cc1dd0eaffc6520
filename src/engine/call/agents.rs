//! The call model's side of the ACD: operators' registrations and commands, the ACD's
//! timers (wrap-up ends, reject delays, skills widening), and its agent state transitions
//! turned into durable [`AgentEvent`]s.

use super::{CallState, LegState};
use crate::engine::Output;
use crate::engine::acd::{AgentCommand, AgentError, AgentState, CallHandle, OfferEnd};
use crate::engine::driver::Engine;
use crate::engine::record::{AgentEvent, CallEventKind};
use crate::engine::time::Now;

impl Engine {
    /// Operator `operator`'s command (a feature code, or the API of a later issue): the
    /// new state, or why it was refused (state unchanged, logged).
    pub fn agent_command(
        &mut self,
        now: Now,
        operator: &str,
        command: AgentCommand,
    ) -> Result<AgentState, AgentError> {
        let result = self.calls.acd.command(operator, command, now.mono);
        match &result {
            Ok(state) => tracing::info!(operator, ?command, %state, "operator command"),
            Err(error) => tracing::info!(operator, ?command, %error, "operator command refused"),
        }
        self.dispatch(now);
        // The INVITEs a dispatch placed wait in their client transactions until collected:
        // out now, not at the next input (their Timer A runs from now).
        self.collect(now);
        result
    }

    /// `operator`'s last binding went away: logged out; if their phone was ringing for a
    /// call, that offer is withdrawn (CANCEL) and the call offered again (issue 5, point 8).
    pub(crate) fn operator_unregistered(&mut self, now: Now, operator: &str) {
        if let Some(handle) = self.calls.acd.unregistered(operator, now.mono) {
            self.withdraw_offer(now, handle, operator, "registration expired");
        }
    }

    /// Stops ringing `operator` for `handle` (their legs CANCELled, recorded as a failed
    /// leg with `reason`); the call goes back to its place when nobody rings for it.
    pub(crate) fn withdraw_offer(
        &mut self,
        now: Now,
        handle: CallHandle,
        operator: &str,
        reason: &str,
    ) {
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let CallState::Offering { attempt, .. } = call.state else {
            return;
        };
        let record = call.record;
        let legs: Vec<u32> = call
            .legs
            .iter()
            .filter(|(_, l)| l.attempt == attempt && l.operator == operator)
            .filter(|(_, l)| matches!(l.state, LegState::Calling | LegState::Early))
            .map(|(n, _)| *n)
            .collect();
        for leg in legs {
            self.cancel_leg(now, handle, leg);
        }
        tracing::info!(call = %record, operator, reason, "offer withdrawn");
        self.emit(
            record,
            now,
            CallEventKind::LegFailed {
                operator: operator.to_owned(),
                reason: reason.to_owned(),
            },
        );
        self.offer_failed(now, handle, operator, OfferEnd::Withdrawn);
    }

    /// The ACD's timers due at `now`: wrap-ups end, skills requirements lapse (recorded
    /// as `widened`), reject delays and overflow deadlines pass — then a dispatch.
    pub(crate) fn acd_timeout(&mut self, now: Now) {
        self.calls.acd.handle_timeout(now.mono);
        while let Some(handle) = self.calls.acd.poll_widened() {
            if let Some(record) = self.calls.calls.get(&handle).map(|c| c.record) {
                tracing::info!(call = %record, "call widened to any operator of its queue");
                self.emit(record, now, CallEventKind::Widened);
            }
        }
        self.dispatch(now);
    }

    /// Every agent state transition since the last call, as [`Output::AgentEvent`]s at
    /// `now` (each input is handled at one instant).
    pub(crate) fn agent_events(&mut self, now: Now) {
        while let Some(t) = self.calls.acd.poll_transition() {
            let call = t.call.and_then(|h| {
                self.calls
                    .calls
                    .get(&h)
                    .map(|c| c.record)
                    .or_else(|| self.calls.acd.entry(h).map(|e| e.record))
            });
            if t.to.name() == "not_ready" || t.from.name() == "not_ready" {
                tracing::info!(operator = %t.operator, from = %t.from, to = %t.to, reason = t.reason, "agent state");
            } else {
                tracing::debug!(operator = %t.operator, from = %t.from, to = %t.to, reason = t.reason, "agent state");
            }
            let id = self.new_uuid();
            self.outputs.push_back(Output::AgentEvent(AgentEvent {
                id,
                operator: t.operator,
                at: now.utc,
                from: t.from.name(),
                to: t.to.name(),
                reason: Some(t.reason.to_owned()),
                call,
            }));
        }
    }
}

impl Engine {
    /// A call that ended with `disposition`: an abandoned one goes on the callback
    /// worklist (RFC 7090) and, like one siaga dropped, makes its caller's next call within
    /// `acd.repeat_window_s` a repeat call.
    pub(crate) fn remember_for_callback(
        &mut self,
        now: Now,
        call: &super::Call,
        disposition: crate::engine::record::Disposition,
    ) {
        use crate::engine::record::Disposition as D;
        let Some(caller) = call.caller.clone() else {
            return;
        };
        let abandoned = matches!(disposition, D::AbandonedInQueue | D::AbandonedWhileRinging);
        if abandoned || matches!(disposition, D::Failed | D::Interrupted) {
            self.calls.acd.repeat.note(&caller, now.mono);
        }
        if abandoned {
            let waited = now.mono.saturating_since(call.received_at);
            let at = crate::engine::time::UtcTime(
                now.utc.0 - i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
            );
            self.calls
                .acd
                .worklist
                .add(crate::engine::acd::CallbackItem {
                    record: call.record,
                    caller,
                    at,
                    waited,
                    reason: disposition.as_str().to_owned(),
                    attempts: 0,
                    taken_by: None,
                });
        }
    }
}
