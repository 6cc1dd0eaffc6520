//! The non-INVITE client transaction (RFC 3261 §17.1.2): sends a request (BYE, OPTIONS,
//! REGISTER, CANCEL …), retransmits it over UDP on Timer E (T1 doubling to T2 while
//! Trying, every T2 while Proceeding), gives up after Timer F, and absorbs retransmissions
//! of the final response until Timer K.

use super::timer::{Backoff, TimerTable};
use super::{Outbox, StatusClass, Termination, TimerConfig, TimerName, TransactionError, Verdict};
use crate::engine::Transport;
use crate::engine::time::MonoTime;
use bytes::Bytes;

/// The states of a non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// The request is sent and nothing has answered: Timer E retransmits it (UDP), Timer F
    /// gives up.
    Trying,
    /// A 1xx arrived: Timer E keeps retransmitting, every T2 (UDP); Timer F still runs.
    Proceeding,
    /// A final response arrived; its retransmissions are absorbed until Timer K.
    Completed,
    /// Finished, for the reason given.
    Terminated(Termination),
}

/// A non-INVITE client transaction. See the [module docs](super) for the call order.
#[derive(Clone, Debug)]
pub struct ClientNonInviteTransaction {
    state: ClientNonInviteState,
    transport: Transport,
    config: TimerConfig,
    /// The request, as first sent.
    request: Bytes,
    timers: TimerTable,
    timer_e: Backoff,
    outbox: Outbox,
}

impl ClientNonInviteTransaction {
    /// Starts the transaction at `now`: queues `request` (the whole encoded request) for
    /// sending and arms Timer F, and over UDP Timer E.
    pub fn new(now: MonoTime, request: Bytes, transport: Transport, config: &TimerConfig) -> Self {
        let mut timers = TimerTable::default();
        let mut timer_e = Backoff::new(config.t1, Some(config.t2));
        if config.initial_value(TimerName::E, transport).is_some() {
            timers.set(TimerName::E, now + timer_e.advance());
        }
        timers.set(TimerName::F, now + config.sixty_four_t1());
        let mut outbox = Outbox::default();
        outbox.push(request.clone());
        ClientNonInviteTransaction {
            state: ClientNonInviteState::Trying,
            transport,
            config: *config,
            request,
            timers,
            timer_e,
            outbox,
        }
    }

    // Getters.

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Why the transaction ended, once it has. `TimedOut(F)` and `TransportError` mean the
    /// request failed (RFC 3261 §8.1.3.1: the TU treats them as a 408 / 503).
    pub fn termination(&self) -> Option<Termination> {
        match self.state {
            ClientNonInviteState::Terminated(why) => Some(why),
            _ => None,
        }
    }

    // Input.

    /// A response to the request arrived.
    ///
    /// 1xx: Trying → Proceeding, passed to the TU in Trying and Proceeding; Timer E keeps
    /// its current deadline and is rearmed at T2 when it next fires. 200–699: Trying or
    /// Proceeding → Completed with Timer K (over TCP K is zero: straight to
    /// `Terminated(Normal)`), passed to the TU. In Completed or Terminated: absorbed.
    ///
    /// Errors: [`TransactionError::InvalidStatus`] outside 100–699.
    pub fn handle_response(
        &mut self,
        now: MonoTime,
        status: u16,
    ) -> Result<Verdict, TransactionError> {
        use ClientNonInviteState::*;
        let verdict = match (StatusClass::of(status)?, self.state) {
            (StatusClass::Provisional, Trying | Proceeding) => {
                self.state = Proceeding;
                Verdict::PassToTu
            }
            (StatusClass::Success | StatusClass::Failure, Trying | Proceeding) => {
                self.timers.clear();
                let wait = self.config.initial_value(TimerName::K, self.transport);
                match wait.filter(|d| !d.is_zero()) {
                    Some(d) => {
                        self.timers.set(TimerName::K, now + d);
                        self.state = Completed;
                    }
                    None => self.terminate(Termination::Normal),
                }
                Verdict::PassToTu
            }
            (_, Completed | Terminated(_)) => Verdict::Absorb,
        };
        Ok(verdict)
    }

    /// Fires every timer due at or before `now`, earliest first. E: resend the request;
    /// the next interval is `min(2·E, T2)` in Trying and T2 in Proceeding, counted from
    /// `now`. F: `Terminated(TimedOut(F))` (F wins over an E due at the same instant).
    /// K: `Terminated(Normal)`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        use ClientNonInviteState::*;
        while let Some(timer) = self.timers.pop_due(now) {
            match (self.state, timer) {
                (Trying, TimerName::E) => {
                    self.outbox.push(self.request.clone());
                    self.timers.set(TimerName::E, now + self.timer_e.advance());
                }
                (Proceeding, TimerName::E) => {
                    self.outbox.push(self.request.clone());
                    self.timer_e = Backoff::new(self.config.t2, Some(self.config.t2));
                    self.timers.set(TimerName::E, now + self.timer_e.advance());
                }
                (Trying | Proceeding, TimerName::F) => {
                    self.terminate(Termination::TimedOut(TimerName::F));
                }
                (Completed, TimerName::K) => self.terminate(Termination::Normal),
                // Timers are cleared on every state change; nothing else can be armed.
                _ => {}
            }
        }
    }

    /// Sending the request failed. Trying or Proceeding → `Terminated(TransportError)`
    /// (RFC 3261 Figure 6). Ignored in Completed, where this transaction sends nothing.
    pub fn handle_transport_error(&mut self, now: MonoTime) {
        let _ = now; // Part of the uniform handle_* surface; no timer depends on it.
        if matches!(
            self.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
            self.terminate(Termination::TransportError);
        }
    }

    // Output.

    /// The next message to send: the request, first or again.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.outbox.pop()
    }

    /// The next deadline and the timer it belongs to; `None` once terminated.
    pub fn poll_timeout(&self) -> Option<(MonoTime, TimerName)> {
        self.timers.next()
    }

    fn terminate(&mut self, why: Termination) {
        self.timers.clear();
        self.state = ClientNonInviteState::Terminated(why);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use ClientNonInviteState::*;
    use TimerName::*;
    use std::time::Duration;

    const BYE: Bytes = Bytes::from_static(b"BYE");

    fn start(transport: Transport, config: &TimerConfig) -> (ClientNonInviteTransaction, Trace) {
        let mut t = ClientNonInviteTransaction::new(at(0), BYE, transport, config);
        let trace = drain(&mut t, 0);
        (t, trace)
    }

    #[test]
    fn trying_schedule_until_timer_f() {
        let default = TimerConfig::default();
        // T2 = T1: E fires every 500 ms, and its last firing ties with F at 32 s: F wins.
        let flat = TimerConfig {
            t2: Duration::from_millis(500),
            ..default
        };
        let flat_sends: Vec<u64> = (0..64).map(|k| k * 500).collect();
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, Transport, &[u64], u64)] = &[
            ("UDP", default, Transport::Udp,
                &[0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500],
                32_000),
            ("UDP, T1 200 ms, T2 1 s", short_timers(), Transport::Udp,
                &[0, 200, 600, 1_400, 2_400, 3_400, 4_400, 5_400, 6_400, 7_400, 8_400, 9_400,
                  10_400, 11_400, 12_400],
                12_800),
            ("UDP, T2 = T1", flat, Transport::Udp, &flat_sends, 32_000),
            ("TCP", default, Transport::Tcp, &[0], 32_000),
        ];
        for (name, config, transport, sends, timeout) in table {
            let (mut t, mut trace) = start(*transport, config);
            trace.extend(run_until(&mut t, 100_000));
            assert_eq!(sends_of(&trace, "BYE"), *sends, "{name}");
            assert_eq!(fired(&trace).last(), Some(&(*timeout, F)), "{name}");
            assert_eq!(t.state(), Terminated(Termination::TimedOut(F)), "{name}");
            assert_eq!(t.poll_timeout(), None, "{name}");
        }
    }

    #[test]
    fn proceeding_keeps_the_pending_e_then_retransmits_every_t2() {
        let (mut t, mut trace) = start(Transport::Udp, &TimerConfig::default());
        trace.extend(run_until(&mut t, 600));
        assert_eq!(t.handle_response(at(600), 100), Ok(Verdict::PassToTu));
        assert_eq!(t.state(), Proceeding);
        assert_eq!(t.handle_response(at(700), 180), Ok(Verdict::PassToTu));
        trace.extend(run_until(&mut t, 100_000));
        assert_eq!(
            sends_of(&trace, "BYE"),
            [
                0, 500, 1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500
            ]
        );
        assert_eq!(fired(&trace).last(), Some(&(32_000, F)));
        assert_eq!(t.termination(), Some(Termination::TimedOut(F)));
    }

    #[test]
    fn final_response_absorbs_retransmissions_until_timer_k() {
        let default = TimerConfig::default();
        // (name, config, status, via Proceeding?, Timer K fires at)
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, u16, bool, u64)] = &[
            ("200 from Trying", default, 200, false, 1_000 + 5_000),
            ("404 from Proceeding", default, 404, true, 1_000 + 5_000),
            ("T4 2 s", short_timers(), 200, false, 1_000 + 2_000),
        ];
        for &(name, config, status, proceeding, k_at) in table {
            let (mut t, _) = start(Transport::Udp, &config);
            if proceeding {
                assert_eq!(t.handle_response(at(100), 100), Ok(Verdict::PassToTu));
            }
            assert_eq!(
                t.handle_response(at(1_000), status),
                Ok(Verdict::PassToTu),
                "{name}"
            );
            assert_eq!(t.state(), Completed, "{name}");
            assert_eq!(t.poll_timeout(), Some((at(k_at), K)), "{name}");
            for ms in [1_100, 1_500, 2_500] {
                assert_eq!(
                    t.handle_response(at(ms), status),
                    Ok(Verdict::Absorb),
                    "{name}"
                );
            }
            assert_eq!(
                t.handle_response(at(2_600), 100),
                Ok(Verdict::Absorb),
                "{name}"
            );
            t.handle_transport_error(at(2_700));
            assert_eq!(t.state(), Completed, "{name}");
            let trace = run_until(&mut t, 100_000);
            assert_eq!(trace, [(k_at, Event::Fired(K))], "{name}: nothing resent");
            assert_eq!(t.state(), Terminated(Termination::Normal), "{name}");
        }
    }

    #[test]
    fn final_response_over_tcp_terminates_at_once() {
        let (mut t, _) = start(Transport::Tcp, &TimerConfig::default());
        assert_eq!(t.handle_response(at(1_000), 200), Ok(Verdict::PassToTu));
        assert_eq!(t.state(), Terminated(Termination::Normal));
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.handle_response(at(1_001), 200), Ok(Verdict::Absorb));
        assert_eq!(t.poll_transmit(), None);
    }

    #[test]
    fn transport_error_ends_trying_and_proceeding() {
        for provisional in [false, true] {
            let (mut t, _) = start(Transport::Udp, &TimerConfig::default());
            if provisional {
                let _ = t.handle_response(at(10), 100);
            }
            t.handle_transport_error(at(20));
            assert_eq!(t.state(), Terminated(Termination::TransportError));
            assert_eq!(t.poll_timeout(), None);
        }
    }

    #[test]
    fn invalid_status_is_an_error_and_changes_nothing() {
        let (mut t, _) = start(Transport::Udp, &TimerConfig::default());
        for status in [0, 99, 700, u16::MAX] {
            assert_eq!(
                t.handle_response(at(5), status),
                Err(TransactionError::InvalidStatus { status })
            );
            assert_eq!(t.state(), Trying);
            assert_eq!(t.poll_timeout(), Some((at(500), E)));
        }
    }
}
