//! The INVITE server transaction (RFC 3261 §17.2.1 with RFC 6026 §7.1's Accepted state and
//! Timer L): answers INVITE retransmissions with the last provisional response, resends a
//! 300–699 final response on Timer G (UDP) until its ACK arrives or Timer H gives up, and
//! after a 2xx absorbs INVITE retransmissions until Timer L, so that a resent INVITE never
//! reaches the TU as a second call, while passing each ACK of the 2xx up.
//!
//! The machine does not send 100 Trying on its own (§17.2.1's 200 ms rule): the TU sends it.

use super::timer::{Backoff, TimerTable};
use super::{Outbox, StatusClass, Termination, TimerConfig, TimerName, TransactionError, Verdict};
use crate::engine::Transport;
use crate::engine::time::MonoTime;
use bytes::Bytes;

/// The states of an INVITE server transaction (RFC 3261 Figure 7 as updated by RFC 6026).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerInviteState {
    /// The INVITE was passed to the TU, which may send 1xx; retransmissions of the INVITE are
    /// answered with the last 1xx.
    Proceeding,
    /// A 300–699 was sent: Timer G resends it (UDP) until the ACK, Timer H gives up.
    Completed,
    /// The ACK of the 300–699 arrived; further ACKs are absorbed until Timer I.
    Confirmed,
    /// A 2xx was sent (RFC 6026): INVITE retransmissions are absorbed, ACKs go to the TU,
    /// the TU's own 2xx retransmissions are sent through, until Timer L.
    Accepted,
    /// Finished, for the reason given.
    Terminated(Termination),
}

/// An INVITE server transaction. See the [module docs](super) for the call order.
///
/// The layer above creates it when a new INVITE arrives and passes that INVITE to the TU
/// itself; the transaction sees only what follows.
#[derive(Clone, Debug)]
pub struct ServerInviteTransaction {
    state: ServerInviteState,
    transport: Transport,
    config: TimerConfig,
    /// The last response the TU sent: the latest 1xx in Proceeding, the final in Completed.
    last_response: Option<Bytes>,
    timers: TimerTable,
    timer_g: Backoff,
    outbox: Outbox,
}

impl ServerInviteTransaction {
    /// A transaction for an INVITE received at `now` on `transport`. Starts in Proceeding,
    /// with no timer running and nothing to send.
    pub fn new(now: MonoTime, transport: Transport, config: &TimerConfig) -> Self {
        let _ = now; // Part of the uniform constructor; no timer runs in Proceeding.
        ServerInviteTransaction {
            state: ServerInviteState::Proceeding,
            transport,
            config: *config,
            last_response: None,
            timers: TimerTable::default(),
            timer_g: Backoff::new(config.t1, Some(config.t2)),
            outbox: Outbox::default(),
        }
    }

    // Getters.

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Why the transaction ended, once it has. `TimedOut(H)` means the ACK of the 300–699
    /// never came: a failure the TU must hear about.
    pub fn termination(&self) -> Option<Termination> {
        match self.state {
            ServerInviteState::Terminated(why) => Some(why),
            _ => None,
        }
    }

    // Input.

    /// A retransmission of the INVITE arrived. Always absorbed. Proceeding: the last 1xx,
    /// if the TU sent one, is sent again. Completed: the final response is sent again.
    /// Confirmed, Accepted, Terminated: nothing is sent.
    pub fn handle_request(&mut self, now: MonoTime) -> Verdict {
        let _ = now; // Retransmissions set no timer.
        if let (ServerInviteState::Proceeding | ServerInviteState::Completed, Some(response)) =
            (self.state, &self.last_response)
        {
            self.outbox.push(response.clone());
        }
        Verdict::Absorb
    }

    /// An ACK matching this transaction arrived. Completed → Confirmed (stops G and H,
    /// arms Timer I; over TCP I is zero: straight to `Terminated(Normal)`), absorbed.
    /// Accepted: the ACK of the 2xx, passed to the TU (each one). Otherwise absorbed.
    pub fn handle_ack(&mut self, now: MonoTime) -> Verdict {
        match self.state {
            ServerInviteState::Completed => {
                self.timers.clear();
                let wait = self.config.initial_value(TimerName::I, self.transport);
                match wait.filter(|d| !d.is_zero()) {
                    Some(d) => {
                        self.timers.set(TimerName::I, now + d);
                        self.state = ServerInviteState::Confirmed;
                    }
                    None => self.terminate(Termination::Normal),
                }
                Verdict::Absorb
            }
            ServerInviteState::Accepted => Verdict::PassToTu,
            _ => Verdict::Absorb,
        }
    }

    /// The TU sends a response (`bytes`, whole and encoded) with this `status`; it is
    /// queued for sending.
    ///
    /// Proceeding: 1xx stays (and is what INVITE retransmissions get); 2xx → Accepted with
    /// Timer L; 300–699 → Completed with Timer H, and over UDP Timer G. Accepted: further
    /// 2xx (the TU's retransmissions, §13.3.1.4) are sent through.
    ///
    /// Errors, nothing queued: [`TransactionError::InvalidStatus`] outside 100–699;
    /// [`TransactionError::ResponseNotAllowed`] for anything in Completed, Confirmed or
    /// Terminated, and for 1xx or 300–699 in Accepted.
    pub fn send_response(
        &mut self,
        now: MonoTime,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        use ServerInviteState::*;
        match (StatusClass::of(status)?, self.state) {
            (StatusClass::Provisional, Proceeding) => {
                self.last_response = Some(bytes.clone());
            }
            (StatusClass::Success, Proceeding) => {
                self.last_response = None;
                self.timers
                    .set(TimerName::L, now + self.config.sixty_four_t1());
                self.state = Accepted;
            }
            (StatusClass::Failure, Proceeding) => {
                self.last_response = Some(bytes.clone());
                if self
                    .config
                    .initial_value(TimerName::G, self.transport)
                    .is_some()
                {
                    self.timers.set(TimerName::G, now + self.timer_g.advance());
                }
                self.timers
                    .set(TimerName::H, now + self.config.sixty_four_t1());
                self.state = Completed;
            }
            (StatusClass::Success, Accepted) => {}
            _ => return Err(TransactionError::ResponseNotAllowed { status }),
        }
        self.outbox.push(bytes);
        Ok(())
    }

    /// Fires every timer due at or before `now`, earliest first. G: resend the final
    /// response; the next interval is `min(2·G, T2)`, counted from `now`. H:
    /// `Terminated(TimedOut(H))` (H wins over a G due at the same instant). I, L:
    /// `Terminated(Normal)`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        use ServerInviteState::*;
        while let Some(timer) = self.timers.pop_due(now) {
            match (self.state, timer) {
                (Completed, TimerName::G) => {
                    if let Some(response) = &self.last_response {
                        self.outbox.push(response.clone());
                    }
                    self.timers.set(TimerName::G, now + self.timer_g.advance());
                }
                (Completed, TimerName::H) => self.terminate(Termination::TimedOut(TimerName::H)),
                (Confirmed, TimerName::I) | (Accepted, TimerName::L) => {
                    self.terminate(Termination::Normal);
                }
                // Timers are cleared on every state change; nothing else can be armed.
                _ => {}
            }
        }
    }

    /// Sending a response failed. The layer above informs the TU; the transaction keeps
    /// its state (RFC 6026 §7.1: it must not be destroyed at once, so that it still
    /// absorbs INVITE retransmissions; its figure loops transport errors back into
    /// Proceeding, Completed and Accepted). Timers H and L still end it.
    pub fn handle_transport_error(&mut self, now: MonoTime) {
        let _ = now; // Part of the uniform handle_* surface; RFC 6026 changes nothing here.
    }

    // Output.

    /// The next message to send: a response, first or again.
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
        self.state = ServerInviteState::Terminated(why);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use ServerInviteState::*;
    use TimerName::*;

    fn response(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    fn sent(ms: u64, text: &str) -> (u64, Event) {
        (ms, Event::Sent(text.to_owned()))
    }

    #[test]
    fn proceeding_answers_retransmissions_with_the_last_provisional() {
        let mut t = ServerInviteTransaction::new(at(0), Transport::Udp, &TimerConfig::default());
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.handle_request(at(10)), Verdict::Absorb);
        assert_eq!(t.poll_transmit(), None, "no provisional yet");
        assert_eq!(t.send_response(at(20), 100, response("100")), Ok(()));
        assert_eq!(drain(&mut t, 20), [sent(20, "100")]);
        assert_eq!(t.handle_request(at(500)), Verdict::Absorb);
        assert_eq!(drain(&mut t, 500), [sent(500, "100")]);
        assert_eq!(t.send_response(at(600), 180, response("180")), Ok(()));
        assert_eq!(drain(&mut t, 600), [sent(600, "180")]);
        assert_eq!(t.handle_request(at(1_500)), Verdict::Absorb);
        assert_eq!(t.handle_ack(at(1_600)), Verdict::Absorb);
        let mut trace = drain(&mut t, 1_600);
        trace.extend(run_until(&mut t, 100_000));
        assert_eq!(trace, [sent(1_600, "180")], "no timer runs in Proceeding");
        // A retransmission while an identical copy still waits adds nothing.
        assert_eq!(t.handle_request(at(2_000)), Verdict::Absorb);
        assert_eq!(t.handle_request(at(2_001)), Verdict::Absorb);
        assert_eq!(drain(&mut t, 2_001), [sent(2_001, "180")]);
        assert_eq!(t.state(), Proceeding);
    }

    #[test]
    fn failure_resent_on_timer_g_until_timer_h() {
        let default = TimerConfig::default();
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, Transport, &[u64], u64)] = &[
            ("UDP", default, Transport::Udp,
                &[0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500],
                32_000),
            ("UDP, T1 200 ms, T2 1 s", short_timers(), Transport::Udp,
                &[0, 200, 600, 1_400, 2_400, 3_400, 4_400, 5_400, 6_400, 7_400, 8_400, 9_400,
                  10_400, 11_400, 12_400],
                12_800),
            ("TCP", default, Transport::Tcp, &[0], 32_000),
        ];
        for (name, config, transport, sends, timeout) in table {
            let mut t = ServerInviteTransaction::new(at(0), *transport, config);
            assert_eq!(t.send_response(at(0), 486, response("486")), Ok(()));
            assert_eq!(t.state(), Completed, "{name}");
            let mut trace = drain(&mut t, 0);
            trace.extend(run_until(&mut t, 100_000));
            assert_eq!(sends_of(&trace, "486"), *sends, "{name}");
            assert_eq!(fired(&trace).last(), Some(&(*timeout, H)), "{name}");
            assert_eq!(t.state(), Terminated(Termination::TimedOut(H)), "{name}");
            assert_eq!(t.termination(), Some(Termination::TimedOut(H)), "{name}");
        }
    }

    #[test]
    fn completed_resends_the_final_on_invite_retransmission() {
        let mut t = ServerInviteTransaction::new(at(0), Transport::Udp, &TimerConfig::default());
        assert_eq!(t.send_response(at(0), 180, response("180")), Ok(()));
        assert_eq!(t.send_response(at(100), 603, response("603")), Ok(()));
        let _ = drain(&mut t, 100);
        assert_eq!(t.handle_request(at(300)), Verdict::Absorb);
        assert_eq!(drain(&mut t, 300), [sent(300, "603")]);
        t.handle_transport_error(at(350));
        assert_eq!(
            t.state(),
            Completed,
            "RFC 6026: a transport error does not end it"
        );
        assert_eq!(t.poll_timeout(), Some((at(600), G)));
    }

    #[test]
    fn ack_confirms_and_timer_i_ends() {
        let default = TimerConfig::default();
        // (name, config, transport, Timer G firings before the ACK at 2 s,
        //  Timer I fires at; None: terminated by the ACK itself)
        #[rustfmt::skip]
        let table: &[(&str, TimerConfig, Transport, usize, Option<u64>)] = &[
            ("UDP", default, Transport::Udp, 2, Some(2_000 + 5_000)),
            ("UDP, T1 200 ms, T4 2 s", short_timers(), Transport::Udp, 3, Some(2_000 + 2_000)),
            ("TCP", default, Transport::Tcp, 0, None),
        ];
        for &(name, config, transport, want_g, i_at) in table {
            let mut t = ServerInviteTransaction::new(at(0), transport, &config);
            assert_eq!(t.send_response(at(0), 404, response("404")), Ok(()));
            let mut trace = drain(&mut t, 0);
            trace.extend(run_until(&mut t, 1_999));
            assert_eq!(t.handle_ack(at(2_000)), Verdict::Absorb, "{name}");
            match i_at {
                Some(i_at) => {
                    assert_eq!(t.state(), Confirmed, "{name}");
                    assert_eq!(t.poll_timeout(), Some((at(i_at), I)), "{name}");
                    assert_eq!(t.handle_ack(at(2_100)), Verdict::Absorb, "{name}");
                    assert_eq!(t.handle_request(at(2_200)), Verdict::Absorb, "{name}");
                    assert_eq!(t.poll_transmit(), None, "{name}: Confirmed sends nothing");
                    let after = run_until(&mut t, 100_000);
                    assert_eq!(after, [(i_at, Event::Fired(I))], "{name}: G and H stopped");
                }
                None => assert_eq!(t.poll_timeout(), None, "{name}"),
            }
            assert_eq!(t.state(), Terminated(Termination::Normal), "{name}");
            let g = fired(&trace).into_iter().filter(|(_, t)| *t == G).count();
            assert_eq!(g, want_g, "{name}: G fires before the ACK over UDP only");
        }
    }

    #[test]
    fn accepted_absorbs_invite_retransmissions_and_passes_acks_until_timer_l() {
        for (transport, l_at) in [(Transport::Udp, 32_100), (Transport::Tcp, 32_100)] {
            let mut t = ServerInviteTransaction::new(at(0), transport, &TimerConfig::default());
            assert_eq!(t.send_response(at(0), 180, response("180")), Ok(()));
            assert_eq!(t.send_response(at(100), 200, response("200")), Ok(()));
            assert_eq!(t.state(), Accepted);
            assert_eq!(t.poll_timeout(), Some((at(l_at), L)));
            let _ = drain(&mut t, 100);

            // A resent INVITE must never become a second call, nor draw the 180 again.
            for ms in [600, 1_600, 3_600] {
                assert_eq!(t.handle_request(at(ms)), Verdict::Absorb);
            }
            assert_eq!(t.poll_transmit(), None);
            // The dialog layer retransmits its 2xx through the transaction.
            assert_eq!(t.send_response(at(600), 200, response("200")), Ok(()));
            assert_eq!(drain(&mut t, 600), [sent(600, "200")]);
            // Each ACK of the 2xx goes to the TU.
            assert_eq!(t.handle_ack(at(700)), Verdict::PassToTu);
            assert_eq!(t.handle_ack(at(800)), Verdict::PassToTu);
            // Only further 2xx are allowed now.
            let err = |status| Err(TransactionError::ResponseNotAllowed { status });
            assert_eq!(t.send_response(at(900), 486, response("486")), err(486));
            assert_eq!(t.send_response(at(900), 183, response("183")), err(183));
            t.handle_transport_error(at(950));
            assert_eq!(t.state(), Accepted);

            assert_eq!(run_until(&mut t, 100_000), [(l_at, Event::Fired(L))]);
            assert_eq!(t.state(), Terminated(Termination::Normal));
            assert_eq!(t.handle_request(at(40_000)), Verdict::Absorb);
            assert_eq!(t.handle_ack(at(40_000)), Verdict::Absorb);
        }
    }

    #[test]
    fn responses_after_a_failure_final_are_refused() {
        let mut t = ServerInviteTransaction::new(at(0), Transport::Udp, &TimerConfig::default());
        assert_eq!(t.send_response(at(0), 500, response("500")), Ok(()));
        let _ = drain(&mut t, 0);
        for status in [180, 200, 486] {
            assert_eq!(
                t.send_response(at(10), status, response("x")),
                Err(TransactionError::ResponseNotAllowed { status })
            );
        }
        assert_eq!(
            t.send_response(at(10), 42, response("x")),
            Err(TransactionError::InvalidStatus { status: 42 })
        );
        assert_eq!(t.poll_transmit(), None);
        assert_eq!(t.state(), Completed);
    }
}
