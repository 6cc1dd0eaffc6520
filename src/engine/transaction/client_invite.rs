//! The INVITE client transaction (RFC 3261 §17.1.1 with RFC 6026 §7.2's Accepted state and
//! Timer M): sends an INVITE, retransmits it over UDP (Timer A), gives up after Timer B,
//! sends the ACK of a 300–699 response itself (§17.1.1.3) and resends it for every
//! retransmission of that response (Timer D), and passes every 2xx to the TU while
//! Accepted (the TU ACKs 2xx itself, §13.2.2.4).

use super::timer::{Backoff, TimerTable};
use super::{Outbox, StatusClass, Termination, TimerConfig, TimerName, TransactionError, Verdict};
use crate::engine::Transport;
use crate::engine::time::MonoTime;
use bytes::Bytes;

/// The states of an INVITE client transaction (RFC 3261 Figure 5, updated by RFC 6026).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientInviteState {
    /// The INVITE is sent and nothing has answered: Timer A retransmits it (UDP), Timer B
    /// gives up.
    Calling,
    /// A 1xx arrived. No retransmissions and no timers: a final response, or the TU (by
    /// CANCEL, §9.1), ends this state.
    Proceeding,
    /// A 300–699 arrived and was ACKed; its retransmissions are re-ACKed until Timer D.
    Completed,
    /// A 2xx arrived (RFC 6026): further 2xx go to the TU until Timer M.
    Accepted,
    /// Finished, for the reason given.
    Terminated(Termination),
}

/// An INVITE client transaction. See the [module docs](super) for the call order.
#[derive(Clone, Debug)]
pub struct ClientInviteTransaction {
    state: ClientInviteState,
    transport: Transport,
    config: TimerConfig,
    /// The INVITE, as first sent.
    request: Bytes,
    /// The ACK of the 300–699 response, once one arrived.
    ack: Option<Bytes>,
    timers: TimerTable,
    timer_a: Backoff,
    outbox: Outbox,
}

impl ClientInviteTransaction {
    /// Starts the transaction at `now`: queues `request` (the whole encoded INVITE) for
    /// sending and arms Timer B, and over UDP Timer A.
    pub fn new(now: MonoTime, request: Bytes, transport: Transport, config: &TimerConfig) -> Self {
        let mut timers = TimerTable::default();
        let mut timer_a = Backoff::new(config.t1, None);
        if config.initial_value(TimerName::A, transport).is_some() {
            timers.set(TimerName::A, now + timer_a.advance());
        }
        timers.set(TimerName::B, now + config.sixty_four_t1());
        let mut outbox = Outbox::default();
        outbox.push(request.clone());
        ClientInviteTransaction {
            state: ClientInviteState::Calling,
            transport,
            config: *config,
            request,
            ack: None,
            timers,
            timer_a,
            outbox,
        }
    }

    // Getters.

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Why the transaction ended, once it has. `TimedOut(B)` and `TransportError` are
    /// failures of the INVITE the TU must act on.
    pub fn termination(&self) -> Option<Termination> {
        match self.state {
            ClientInviteState::Terminated(why) => Some(why),
            _ => None,
        }
    }

    // Input.

    /// A 1xx or 2xx response to the INVITE arrived.
    ///
    /// 1xx: Calling → Proceeding (stops Timers A and B), passed to the TU while Calling or
    /// Proceeding. 2xx: Calling/Proceeding → Accepted with Timer M; every 2xx, first or
    /// later (retransmitted or forked), is passed to the TU while Accepted. Anything else
    /// is absorbed.
    ///
    /// Errors: [`TransactionError::AckRequired`] for 300–699 (use
    /// [`handle_failure_response`](Self::handle_failure_response)),
    /// [`TransactionError::InvalidStatus`] outside 100–699.
    pub fn handle_response(
        &mut self,
        now: MonoTime,
        status: u16,
    ) -> Result<Verdict, TransactionError> {
        use ClientInviteState::*;
        let verdict = match (StatusClass::of(status)?, self.state) {
            (StatusClass::Failure, _) => return Err(TransactionError::AckRequired { status }),
            (StatusClass::Provisional, Calling) => {
                self.timers.clear();
                self.state = Proceeding;
                Verdict::PassToTu
            }
            (StatusClass::Provisional, Proceeding) => Verdict::PassToTu,
            (StatusClass::Success, Calling | Proceeding) => {
                self.timers.clear();
                self.timers
                    .set(TimerName::M, now + self.config.sixty_four_t1());
                self.state = Accepted;
                Verdict::PassToTu
            }
            (StatusClass::Success, Accepted) => Verdict::PassToTu,
            (StatusClass::Provisional | StatusClass::Success, _) => Verdict::Absorb,
        };
        Ok(verdict)
    }

    /// A 300–699 response to the INVITE arrived, with `ack`: the ACK the layer above built
    /// for it (§17.1.1.3).
    ///
    /// Calling/Proceeding: sends `ack`, enters Completed with Timer D (over TCP D is zero:
    /// straight to `Terminated(Normal)`, the ACK still queued), passes the response to the
    /// TU. Completed: a retransmission; the first ACK is sent again (`ack` is not used) and
    /// the response absorbed. Accepted or Terminated: absorbed.
    ///
    /// Errors: [`TransactionError::NotAFailure`] for 1xx/2xx (use
    /// [`handle_response`](Self::handle_response)), [`TransactionError::InvalidStatus`]
    /// outside 100–699.
    pub fn handle_failure_response(
        &mut self,
        now: MonoTime,
        status: u16,
        ack: Bytes,
    ) -> Result<Verdict, TransactionError> {
        use ClientInviteState::*;
        if StatusClass::of(status)? != StatusClass::Failure {
            return Err(TransactionError::NotAFailure { status });
        }
        let verdict = match self.state {
            Calling | Proceeding => {
                self.timers.clear();
                self.outbox.push(ack.clone());
                self.ack = Some(ack);
                let wait = self.config.initial_value(TimerName::D, self.transport);
                match wait.filter(|d| !d.is_zero()) {
                    Some(d) => {
                        self.timers.set(TimerName::D, now + d);
                        self.state = Completed;
                    }
                    None => self.terminate(Termination::Normal),
                }
                Verdict::PassToTu
            }
            Completed => {
                if let Some(first) = &self.ack {
                    self.outbox.push(first.clone());
                }
                Verdict::Absorb
            }
            Accepted | Terminated(_) => Verdict::Absorb,
        };
        Ok(verdict)
    }

    /// Fires every timer due at or before `now`, earliest first. A: resend the INVITE and
    /// double the interval (rearmed from `now`, so a late call sends once, not a burst).
    /// B: `Terminated(TimedOut(B))`. D, M: `Terminated(Normal)`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        while let Some(timer) = self.timers.pop_due(now) {
            match (self.state, timer) {
                (ClientInviteState::Calling, TimerName::A) => {
                    self.outbox.push(self.request.clone());
                    self.timers.set(TimerName::A, now + self.timer_a.advance());
                }
                (ClientInviteState::Calling, TimerName::B) => {
                    self.terminate(Termination::TimedOut(TimerName::B));
                }
                (ClientInviteState::Completed, TimerName::D)
                | (ClientInviteState::Accepted, TimerName::M) => {
                    self.terminate(Termination::Normal);
                }
                // Timers are cleared on every state change; nothing else can be armed.
                _ => {}
            }
        }
    }

    /// Sending the INVITE or the ACK failed. Calling or Completed →
    /// `Terminated(TransportError)` (RFC 3261 Figure 5). Ignored in Proceeding and Accepted,
    /// where this transaction sends nothing.
    pub fn handle_transport_error(&mut self, now: MonoTime) {
        let _ = now; // Part of the uniform handle_* surface; no timer depends on it.
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Completed
        ) {
            self.terminate(Termination::TransportError);
        }
    }

    // Output.

    /// The next message to send: the INVITE (first or again) or the ACK.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.outbox.pop()
    }

    /// The next deadline and the timer it belongs to; `None` in Proceeding and once
    /// terminated.
    pub fn poll_timeout(&self) -> Option<(MonoTime, TimerName)> {
        self.timers.next()
    }

    fn terminate(&mut self, why: Termination) {
        self.timers.clear();
        self.state = ClientInviteState::Terminated(why);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use ClientInviteState::*;
    use TimerName::*;

    const INVITE: Bytes = Bytes::from_static(b"INVITE");
    const ACK: Bytes = Bytes::from_static(b"ACK");

    fn start(transport: Transport, config: &TimerConfig) -> (ClientInviteTransaction, Trace) {
        let mut t = ClientInviteTransaction::new(at(0), INVITE, transport, config);
        let trace = drain(&mut t, 0);
        (t, trace)
    }

    #[test]
    fn calling_schedule_until_timer_b() {
        let default = TimerConfig::default();
        let long = TimerConfig {
            t1: std::time::Duration::from_secs(1),
            ..default
        };
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, Transport, &[u64], u64)] = &[
            ("UDP", default, Transport::Udp,
                &[0, 500, 1_500, 3_500, 7_500, 15_500, 31_500], 32_000),
            ("UDP, T1 200 ms", short_timers(), Transport::Udp,
                &[0, 200, 600, 1_400, 3_000, 6_200, 12_600], 12_800),
            ("UDP, T1 1 s", long, Transport::Udp,
                &[0, 1_000, 3_000, 7_000, 15_000, 31_000, 63_000], 64_000),
            ("TCP", default, Transport::Tcp, &[0], 32_000),
        ];
        for (name, config, transport, sends, timeout) in table {
            let (mut t, mut trace) = start(*transport, config);
            trace.extend(run_until(&mut t, 100_000));
            assert_eq!(sends_of(&trace, "INVITE"), *sends, "{name}");
            assert_eq!(fired(&trace).last(), Some(&(*timeout, B)), "{name}");
            assert_eq!(t.state(), Terminated(Termination::TimedOut(B)), "{name}");
            assert_eq!(t.termination(), Some(Termination::TimedOut(B)), "{name}");
            assert_eq!(t.poll_timeout(), None, "{name}");
            let retransmits = fired(&trace).iter().filter(|(_, t)| *t == A).count();
            assert_eq!(
                retransmits,
                sends.len() - 1,
                "{name}: one Timer A per resend"
            );
        }
    }

    #[test]
    fn provisional_stops_timers_a_and_b() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let (mut t, _) = start(transport, &TimerConfig::default());
            let early = run_until(&mut t, 600);
            assert_eq!(t.handle_response(at(700), 100), Ok(Verdict::PassToTu));
            assert_eq!(t.state(), Proceeding);
            assert_eq!(t.poll_timeout(), None);
            assert_eq!(run_until(&mut t, 1_000_000), []);
            assert_eq!(t.handle_response(at(900), 180), Ok(Verdict::PassToTu));
            assert_eq!(t.handle_response(at(900), 183), Ok(Verdict::PassToTu));
            assert_eq!(t.state(), Proceeding);
            let want: &[u64] = if transport == Transport::Udp {
                &[500]
            } else {
                &[]
            };
            assert_eq!(sends_of(&early, "INVITE"), want);
        }
    }

    #[test]
    fn failure_is_acked_and_retransmissions_reacked_until_timer_d() {
        let default = TimerConfig::default();
        let long = TimerConfig {
            t1: std::time::Duration::from_secs(1),
            ..default
        };
        // (name, config, status first seen while Proceeding?, Timer D fires at)
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, bool, u64)] = &[
            ("UDP from Calling", default, false, 1_000 + 32_000),
            ("UDP from Proceeding", default, true, 1_000 + 32_000),
            ("UDP, T1 200 ms: D stays 32 s", short_timers(), false, 1_000 + 32_000),
            ("UDP, T1 1 s: D is 64·T1", long, false, 1_000 + 64_000),
        ];
        for &(name, config, proceeding, d_at) in table {
            let (mut t, _) = start(Transport::Udp, &config);
            if proceeding {
                assert_eq!(t.handle_response(at(100), 180), Ok(Verdict::PassToTu));
            }
            assert_eq!(
                t.handle_failure_response(at(1_000), 486, ACK),
                Ok(Verdict::PassToTu)
            );
            assert_eq!(t.state(), Completed, "{name}");
            assert_eq!(
                drain(&mut t, 1_000),
                [(1_000, Event::Sent("ACK".into()))],
                "{name}"
            );
            assert_eq!(t.poll_timeout(), Some((at(d_at), D)), "{name}");

            // Retransmissions of the final response: the first ACK again, absorbed.
            let other_ack = Bytes::from_static(b"other ACK");
            assert_eq!(
                t.handle_failure_response(at(1_500), 486, other_ack),
                Ok(Verdict::Absorb)
            );
            assert_eq!(
                drain(&mut t, 1_500),
                [(1_500, Event::Sent("ACK".into()))],
                "{name}"
            );
            // Stray 1xx and 2xx are absorbed without an ACK.
            assert_eq!(t.handle_response(at(1_600), 180), Ok(Verdict::Absorb));
            assert_eq!(t.handle_response(at(1_600), 200), Ok(Verdict::Absorb));
            assert_eq!(drain(&mut t, 1_600), [], "{name}");

            let trace = run_until(&mut t, 200_000);
            assert_eq!(trace, [(d_at, Event::Fired(D))], "{name}: no INVITE resent");
            assert_eq!(t.state(), Terminated(Termination::Normal), "{name}");
        }
    }

    #[test]
    fn failure_over_tcp_terminates_at_once_with_the_ack_queued() {
        let (mut t, _) = start(Transport::Tcp, &TimerConfig::default());
        assert_eq!(
            t.handle_failure_response(at(1_000), 404, ACK),
            Ok(Verdict::PassToTu)
        );
        assert_eq!(t.state(), Terminated(Termination::Normal));
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(drain(&mut t, 1_000), [(1_000, Event::Sent("ACK".into()))]);
        // A late retransmission is absorbed and not ACKed again.
        assert_eq!(
            t.handle_failure_response(at(1_100), 404, ACK),
            Ok(Verdict::Absorb)
        );
        assert_eq!(t.poll_transmit(), None);
    }

    #[test]
    fn accepted_passes_every_2xx_until_timer_m() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let (mut t, _) = start(transport, &TimerConfig::default());
            assert_eq!(t.handle_response(at(2_000), 200), Ok(Verdict::PassToTu));
            assert_eq!(t.state(), Accepted);
            assert_eq!(t.poll_timeout(), Some((at(34_000), M)));
            let retransmitted = [(3_000, 200), (5_000, 200), (9_000, 202)];
            for (ms, status) in retransmitted {
                assert_eq!(t.handle_response(at(ms), status), Ok(Verdict::PassToTu));
            }
            assert_eq!(t.handle_response(at(9_500), 180), Ok(Verdict::Absorb));
            assert_eq!(
                t.handle_failure_response(at(9_600), 500, ACK),
                Ok(Verdict::Absorb)
            );
            assert_eq!(
                t.poll_transmit(),
                None,
                "the TU ACKs 2xx, not the transaction"
            );
            t.handle_transport_error(at(9_700));
            assert_eq!(t.state(), Accepted);
            assert_eq!(run_until(&mut t, 100_000), [(34_000, Event::Fired(M))]);
            assert_eq!(t.state(), Terminated(Termination::Normal));
            assert_eq!(t.handle_response(at(34_001), 200), Ok(Verdict::Absorb));
        }
    }

    #[test]
    fn transport_error_ends_calling_and_completed_only() {
        let config = TimerConfig::default();
        let (mut calling, _) = start(Transport::Udp, &config);
        calling.handle_transport_error(at(10));
        assert_eq!(calling.state(), Terminated(Termination::TransportError));
        assert_eq!(calling.poll_timeout(), None);

        let (mut completed, _) = start(Transport::Udp, &config);
        let _ = completed.handle_failure_response(at(10), 503, ACK);
        completed.handle_transport_error(at(20));
        assert_eq!(completed.termination(), Some(Termination::TransportError));

        let (mut proceeding, _) = start(Transport::Udp, &config);
        let _ = proceeding.handle_response(at(10), 100);
        proceeding.handle_transport_error(at(20));
        assert_eq!(proceeding.state(), Proceeding);
    }

    #[test]
    fn late_timeout_resends_once_and_rearms_from_now() {
        let (mut t, _) = start(Transport::Udp, &TimerConfig::default());
        t.handle_timeout(at(10_000));
        assert_eq!(
            drain(&mut t, 10_000),
            [(10_000, Event::Sent("INVITE".into()))]
        );
        assert_eq!(t.poll_timeout(), Some((at(11_000), A)));
        t.handle_timeout(at(10_999));
        assert_eq!(t.poll_transmit(), None);
    }

    #[test]
    fn misuse_is_an_error_and_changes_nothing() {
        let (mut t, _) = start(Transport::Udp, &TimerConfig::default());
        #[rustfmt::skip]
        let table: &[(u16, bool, TransactionError)] = &[
            (486, false, TransactionError::AckRequired { status: 486 }),
            (99, false, TransactionError::InvalidStatus { status: 99 }),
            (700, false, TransactionError::InvalidStatus { status: 700 }),
            (180, true, TransactionError::NotAFailure { status: 180 }),
            (200, true, TransactionError::NotAFailure { status: 200 }),
            (0, true, TransactionError::InvalidStatus { status: 0 }),
        ];
        for &(status, with_ack, want) in table {
            let got = if with_ack {
                t.handle_failure_response(at(5), status, ACK)
            } else {
                t.handle_response(at(5), status)
            };
            assert_eq!(got, Err(want), "{status}");
            assert_eq!(t.state(), Calling);
            assert_eq!(t.poll_timeout(), Some((at(500), A)));
            assert_eq!(t.poll_transmit(), None);
        }
    }

    #[test]
    fn zero_timers_never_hang() {
        let zero = TimerConfig {
            t1: std::time::Duration::ZERO,
            t2: std::time::Duration::ZERO,
            t4: std::time::Duration::ZERO,
        };
        let (mut t, _) = start(Transport::Udp, &zero);
        t.handle_timeout(at(0));
        assert_eq!(t.state(), Terminated(Termination::TimedOut(B)));
    }
}
