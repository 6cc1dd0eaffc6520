//! The non-INVITE server transaction (RFC 3261 §17.2.2, with erratum 1470: a final
//! response may come straight from Trying): answers request retransmissions with the last
//! response sent, and keeps doing so after the final response until Timer J.

use super::timer::TimerTable;
use super::{Outbox, StatusClass, Termination, TimerConfig, TimerName, TransactionError, Verdict};
use crate::engine::Transport;
use crate::engine::time::MonoTime;
use bytes::Bytes;

/// The states of a non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// The request was passed to the TU, which has not answered; retransmissions are
    /// absorbed.
    Trying,
    /// The TU sent a 1xx; retransmissions get the last 1xx.
    Proceeding,
    /// The TU sent a final response; retransmissions get it again until Timer J.
    Completed,
    /// Finished, for the reason given.
    Terminated(Termination),
}

/// A non-INVITE server transaction. See the [module docs](super) for the call order.
///
/// The layer above creates it when a new request arrives and passes that request to the
/// TU itself; the transaction sees only what follows.
#[derive(Clone, Debug)]
pub struct ServerNonInviteTransaction {
    state: ServerNonInviteState,
    transport: Transport,
    config: TimerConfig,
    /// The last response the TU sent.
    last_response: Option<Bytes>,
    timers: TimerTable,
    outbox: Outbox,
}

impl ServerNonInviteTransaction {
    /// A transaction for a request received at `now` on `transport`. Starts in Trying,
    /// with no timer running and nothing to send.
    pub fn new(now: MonoTime, transport: Transport, config: &TimerConfig) -> Self {
        let _ = now; // Part of the uniform constructor; no timer runs in Trying.
        ServerNonInviteTransaction {
            state: ServerNonInviteState::Trying,
            transport,
            config: *config,
            last_response: None,
            timers: TimerTable::default(),
            outbox: Outbox::default(),
        }
    }

    // Getters.

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// Why the transaction ended, once it has.
    pub fn termination(&self) -> Option<Termination> {
        match self.state {
            ServerNonInviteState::Terminated(why) => Some(why),
            _ => None,
        }
    }

    // Input.

    /// A retransmission of the request arrived. Always absorbed. Proceeding and Completed:
    /// the last response is sent again. Trying and Terminated: nothing is sent.
    pub fn handle_request(&mut self, now: MonoTime) -> Verdict {
        let _ = now; // Retransmissions set no timer.
        if let (
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed,
            Some(response),
        ) = (self.state, &self.last_response)
        {
            self.outbox.push(response.clone());
        }
        Verdict::Absorb
    }

    /// The TU sends a response (`bytes`, whole and encoded) with this `status`; it is
    /// queued for sending.
    ///
    /// Trying/Proceeding: 1xx → Proceeding; 200–699 → Completed with Timer J (over TCP J is
    /// zero: straight to `Terminated(Normal)`, the response still queued).
    ///
    /// Errors, nothing queued: [`TransactionError::InvalidStatus`] outside 100–699;
    /// [`TransactionError::ResponseNotAllowed`] in Completed and Terminated.
    pub fn send_response(
        &mut self,
        now: MonoTime,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        use ServerNonInviteState::*;
        match (StatusClass::of(status)?, self.state) {
            (StatusClass::Provisional, Trying | Proceeding) => self.state = Proceeding,
            (StatusClass::Success | StatusClass::Failure, Trying | Proceeding) => {
                let wait = self.config.initial_value(TimerName::J, self.transport);
                match wait.filter(|d| !d.is_zero()) {
                    Some(d) => {
                        self.timers.set(TimerName::J, now + d);
                        self.state = Completed;
                    }
                    None => self.terminate(Termination::Normal),
                }
            }
            (_, Completed | Terminated(_)) => {
                return Err(TransactionError::ResponseNotAllowed { status });
            }
        }
        self.last_response = Some(bytes.clone());
        self.outbox.push(bytes);
        Ok(())
    }

    /// Fires every timer due at or before `now`. J: `Terminated(Normal)`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        while let Some(timer) = self.timers.pop_due(now) {
            if (self.state, timer) == (ServerNonInviteState::Completed, TimerName::J) {
                self.terminate(Termination::Normal);
            }
        }
    }

    /// Sending a response failed. Proceeding or Completed → `Terminated(TransportError)`
    /// (RFC 3261 Figure 8). Ignored in Trying, where nothing was sent yet.
    pub fn handle_transport_error(&mut self, now: MonoTime) {
        let _ = now; // Part of the uniform handle_* surface; no timer depends on it.
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            self.terminate(Termination::TransportError);
        }
    }

    // Output.

    /// The next message to send: a response, first or again.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.outbox.pop()
    }

    /// The next deadline and the timer it belongs to (only ever Timer J); `None` before
    /// the final response and once terminated.
    pub fn poll_timeout(&self) -> Option<(MonoTime, TimerName)> {
        self.timers.next()
    }

    fn terminate(&mut self, why: Termination) {
        self.timers.clear();
        self.state = ServerNonInviteState::Terminated(why);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use ServerNonInviteState::*;
    use TimerName::*;

    fn response(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    fn sent(ms: u64, text: &str) -> (u64, Event) {
        (ms, Event::Sent(text.to_owned()))
    }

    #[test]
    fn trying_absorbs_and_proceeding_resends_the_provisional() {
        let mut t = ServerNonInviteTransaction::new(at(0), Transport::Udp, &TimerConfig::default());
        assert_eq!(t.handle_request(at(500)), Verdict::Absorb);
        assert_eq!(t.poll_transmit(), None);
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.send_response(at(600), 100, response("100")), Ok(()));
        assert_eq!(t.state(), Proceeding);
        assert_eq!(drain(&mut t, 600), [sent(600, "100")]);
        assert_eq!(t.handle_request(at(1_500)), Verdict::Absorb);
        assert_eq!(drain(&mut t, 1_500), [sent(1_500, "100")]);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn completed_resends_the_final_until_timer_j() {
        let default = TimerConfig::default();
        // (name, config, transport, 1xx first?, Timer J fires at; None: ends at once)
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, Transport, bool, Option<u64>)] = &[
            ("UDP from Trying", default, Transport::Udp, false, Some(1_000 + 32_000)),
            ("UDP from Proceeding", default, Transport::Udp, true, Some(1_000 + 32_000)),
            ("UDP, T1 200 ms", short_timers(), Transport::Udp, false, Some(1_000 + 12_800)),
            ("TCP", default, Transport::Tcp, false, None),
        ];
        for &(name, config, transport, provisional, j_at) in table {
            let mut t = ServerNonInviteTransaction::new(at(0), transport, &config);
            if provisional {
                assert_eq!(t.send_response(at(100), 100, response("100")), Ok(()));
                let _ = drain(&mut t, 100);
            }
            assert_eq!(
                t.send_response(at(1_000), 200, response("200")),
                Ok(()),
                "{name}"
            );
            assert_eq!(drain(&mut t, 1_000), [sent(1_000, "200")], "{name}");
            match j_at {
                Some(j_at) => {
                    assert_eq!(t.state(), Completed, "{name}");
                    assert_eq!(t.poll_timeout(), Some((at(j_at), J)), "{name}");
                    assert_eq!(t.handle_request(at(1_500)), Verdict::Absorb, "{name}");
                    assert_eq!(drain(&mut t, 1_500), [sent(1_500, "200")], "{name}");
                    let after = run_until(&mut t, 100_000);
                    assert_eq!(after, [(j_at, Event::Fired(J))], "{name}");
                }
                None => assert_eq!(t.poll_timeout(), None, "{name}"),
            }
            assert_eq!(t.state(), Terminated(Termination::Normal), "{name}");
            assert_eq!(t.handle_request(at(200_000)), Verdict::Absorb, "{name}");
            assert_eq!(t.poll_transmit(), None, "{name}: terminated sends nothing");
        }
    }

    #[test]
    fn responses_after_the_final_are_refused() {
        let mut t = ServerNonInviteTransaction::new(at(0), Transport::Udp, &TimerConfig::default());
        assert_eq!(t.send_response(at(0), 404, response("404")), Ok(()));
        let _ = drain(&mut t, 0);
        for status in [100, 200, 500] {
            assert_eq!(
                t.send_response(at(10), status, response("x")),
                Err(TransactionError::ResponseNotAllowed { status })
            );
        }
        assert_eq!(
            t.send_response(at(10), 1_000, response("x")),
            Err(TransactionError::InvalidStatus { status: 1_000 })
        );
        assert_eq!(t.poll_transmit(), None);
        assert_eq!(t.state(), Completed);
    }

    #[test]
    fn transport_error_ends_proceeding_and_completed() {
        let config = TimerConfig::default();
        let mut trying = ServerNonInviteTransaction::new(at(0), Transport::Udp, &config);
        trying.handle_transport_error(at(1));
        assert_eq!(trying.state(), Trying);
        for status in [180, 200] {
            let mut t = ServerNonInviteTransaction::new(at(0), Transport::Udp, &config);
            assert_eq!(t.send_response(at(0), status, response("r")), Ok(()));
            t.handle_transport_error(at(1));
            assert_eq!(
                t.state(),
                Terminated(Termination::TransportError),
                "{status}"
            );
            assert_eq!(t.poll_timeout(), None, "{status}");
        }
    }
}
