//! Transaction timers (RFC 3261 §17 and its Table 4; RFC 6026 §8 adds Timers L and M): their
//! names, the T1/T2/T4 configuration their values derive from, and the small table of
//! deadlines each transaction keeps. Timers are data: a transaction never sleeps, it reports
//! its earliest deadline and the layer above calls `handle_timeout` when it has come.

use crate::engine::Transport;
use crate::engine::time::MonoTime;
use std::fmt;
use std::time::Duration;

/// The transaction timers, named by their RFC letters.
///
/// A–K are RFC 3261's (Table 4), L and M are RFC 6026's. C is the proxy INVITE timeout
/// (RFC 3261 §16.6); it is named for completeness and no transaction here runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerName {
    /// INVITE request retransmission interval, UDP only (§17.1.1.2): T1, doubling, no cap.
    A,
    /// INVITE client transaction timeout (§17.1.1.2): 64·T1 while Calling.
    B,
    /// Proxy INVITE transaction timeout (§16.6): not run by these machines.
    C,
    /// Wait for retransmissions of a 300–699 response (§17.1.1.2): ≥ 32 s over UDP, 0 over TCP.
    D,
    /// Non-INVITE request retransmission interval, UDP only (§17.1.2.2): T1 doubling to T2.
    E,
    /// Non-INVITE client transaction timeout (§17.1.2.2): 64·T1.
    F,
    /// INVITE final (300–699) response retransmission interval, UDP only (§17.2.1): T1
    /// doubling to T2.
    G,
    /// Wait for the ACK of a 300–699 response (§17.2.1): 64·T1, any transport.
    H,
    /// Wait for ACK retransmissions (§17.2.1): T4 over UDP, 0 over TCP.
    I,
    /// Wait for non-INVITE request retransmissions (§17.2.2): 64·T1 over UDP, 0 over TCP.
    J,
    /// Wait for non-INVITE response retransmissions (§17.1.2.2): T4 over UDP, 0 over TCP.
    K,
    /// Wait for INVITE retransmissions after a 2xx (RFC 6026 §7.1): 64·T1, any transport.
    L,
    /// Wait for 2xx retransmissions and forked 2xx (RFC 6026 §7.2): 64·T1, any transport.
    M,
}

impl TimerName {
    /// Every timer, in letter order.
    pub const ALL: [TimerName; 13] = [
        TimerName::A,
        TimerName::B,
        TimerName::C,
        TimerName::D,
        TimerName::E,
        TimerName::F,
        TimerName::G,
        TimerName::H,
        TimerName::I,
        TimerName::J,
        TimerName::K,
        TimerName::L,
        TimerName::M,
    ];

    /// Whether firing retransmits a message (A, E, G) rather than ending a state.
    pub const fn is_retransmit(self) -> bool {
        matches!(self, TimerName::A | TimerName::E | TimerName::G)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TimerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timer {self:?}")
    }
}

/// The base values every transaction timer derives from (RFC 3261 §17.1.1.1, §17.1.2.2).
///
/// The configuration layer should reject a zero T1; should one reach a transaction anyway,
/// its retransmission intervals are held to at least 1 ms so `handle_timeout` always returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerConfig {
    /// T1, the round-trip time estimate. Default 500 ms.
    pub t1: Duration,
    /// T2, the longest retransmission interval for non-INVITE requests and INVITE
    /// responses. Default 4 s.
    pub t2: Duration,
    /// T4, the longest time a message stays in the network. Default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// RFC 3261 §17.1.1.2: Timer D over UDP is "at least 32 seconds".
const TIMER_D_MIN_UNRELIABLE: Duration = Duration::from_secs(32);

/// Shortest retransmission interval, whatever the configuration (see [`TimerConfig`]).
const MIN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(1);

impl TimerConfig {
    /// 64·T1 (32 s by default): Timers B, F, H, J (UDP), L and M.
    pub fn sixty_four_t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The value `timer` starts with on `transport`, or `None` when it does not run there
    /// (A, E and G over TCP; C always).
    ///
    /// A zero value (D, I, J, K over TCP) means the state it guards ends at once; the
    /// machines make that transition inside the call that enters the state, without
    /// arming a timer. Timer D over UDP is the larger of 32 s and 64·T1: RFC 3261 asks for
    /// at least 32 s, and with a T1 above 500 ms the server retransmits its final response
    /// for 64·T1 (Timer H), all of which must still be acknowledged.
    pub fn initial_value(&self, timer: TimerName, transport: Transport) -> Option<Duration> {
        let reliable = transport.is_reliable();
        let udp_only = |d: Duration| if reliable { Duration::ZERO } else { d };
        match timer {
            TimerName::A | TimerName::E | TimerName::G => (!reliable).then_some(self.t1),
            TimerName::C => None,
            TimerName::B | TimerName::F | TimerName::H | TimerName::L | TimerName::M => {
                Some(self.sixty_four_t1())
            }
            TimerName::D => Some(udp_only(self.sixty_four_t1().max(TIMER_D_MIN_UNRELIABLE))),
            TimerName::I | TimerName::K => Some(udp_only(self.t4)),
            TimerName::J => Some(udp_only(self.sixty_four_t1())),
        }
    }
}

/// A retransmission interval that doubles each time it is used, optionally up to a cap:
/// Timer A (no cap), Timers E and G (capped at T2).
#[derive(Clone, Copy, Debug)]
pub(super) struct Backoff {
    next: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    /// Starts at `initial`; never exceeds `cap` after the first interval (RFC 3261 §17.1.2.2:
    /// E is T1, then `min(2·E, T2)`).
    pub(super) fn new(initial: Duration, cap: Option<Duration>) -> Self {
        Backoff { next: initial, cap }
    }

    /// The interval to wait now; the following one is twice as long (up to the cap).
    pub(super) fn advance(&mut self) -> Duration {
        let now = self.next.max(MIN_RETRANSMIT_INTERVAL);
        let doubled = now.saturating_mul(2);
        self.next = match self.cap {
            Some(cap) => doubled.min(cap),
            None => doubled,
        };
        now
    }
}

/// One optional deadline per [`TimerName`]: the timers a transaction is running.
#[derive(Clone, Debug, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<MonoTime>; TimerName::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` to fire at `at`, replacing any earlier deadline it had.
    pub(super) fn set(&mut self, timer: TimerName, at: MonoTime) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Stops `timer`.
    pub(super) fn cancel(&mut self, timer: TimerName) {
        self.deadlines[timer.index()] = None;
    }

    /// Stops every timer.
    pub(super) fn clear(&mut self) {
        self.deadlines = Default::default();
    }

    /// The earliest deadline and its timer. On a tie a timer that ends a state wins over a
    /// retransmission timer (so Timer F at 32 s fires, not a Timer E due at the same instant).
    pub(super) fn next(&self) -> Option<(MonoTime, TimerName)> {
        TimerName::ALL
            .iter()
            .filter_map(|&t| self.deadlines[t.index()].map(|at| (at, t)))
            .min_by_key(|&(at, t)| (at, t.is_retransmit()))
    }

    /// Removes and returns the next timer due at or before `now`.
    pub(super) fn pop_due(&mut self, now: MonoTime) -> Option<TimerName> {
        let (at, timer) = self.next()?;
        if at > now {
            return None;
        }
        self.cancel(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_are_rfc_3261_table_4() {
        let c = TimerConfig::default();
        assert_eq!((c.t1, c.t2, c.t4), (ms(500), ms(4_000), ms(5_000)));
        assert_eq!(c.sixty_four_t1(), ms(32_000));
    }

    #[test]
    fn initial_values_per_timer_and_transport() {
        use TimerName::*;
        use Transport::{Tcp, Udp};
        let default = TimerConfig::default();
        let long_t1 = TimerConfig {
            t1: ms(1_000),
            t2: ms(8_000),
            t4: ms(10_000),
        };
        let short_t1 = TimerConfig {
            t1: ms(100),
            t2: ms(400),
            t4: ms(1_000),
        };
        #[rustfmt::skip]
        let table: &[(&TimerConfig, TimerName, Transport, Option<u64>)] = &[
            (&default, A, Udp, Some(500)),    (&default, A, Tcp, None),
            (&default, B, Udp, Some(32_000)), (&default, B, Tcp, Some(32_000)),
            (&default, C, Udp, None),         (&default, C, Tcp, None),
            (&default, D, Udp, Some(32_000)), (&default, D, Tcp, Some(0)),
            (&default, E, Udp, Some(500)),    (&default, E, Tcp, None),
            (&default, F, Udp, Some(32_000)), (&default, F, Tcp, Some(32_000)),
            (&default, G, Udp, Some(500)),    (&default, G, Tcp, None),
            (&default, H, Udp, Some(32_000)), (&default, H, Tcp, Some(32_000)),
            (&default, I, Udp, Some(5_000)),  (&default, I, Tcp, Some(0)),
            (&default, J, Udp, Some(32_000)), (&default, J, Tcp, Some(0)),
            (&default, K, Udp, Some(5_000)),  (&default, K, Tcp, Some(0)),
            (&default, L, Udp, Some(32_000)), (&default, L, Tcp, Some(32_000)),
            (&default, M, Udp, Some(32_000)), (&default, M, Tcp, Some(32_000)),
            // D is at least 32 s, and at least 64·T1.
            (&long_t1, D, Udp, Some(64_000)), (&short_t1, D, Udp, Some(32_000)),
            (&long_t1, H, Udp, Some(64_000)), (&short_t1, H, Udp, Some(6_400)),
            (&long_t1, I, Udp, Some(10_000)), (&short_t1, K, Udp, Some(1_000)),
            (&short_t1, J, Udp, Some(6_400)), (&short_t1, G, Udp, Some(100)),
        ];
        for &(config, timer, transport, want) in table {
            assert_eq!(
                config.initial_value(timer, transport),
                want.map(ms),
                "{timer} over {transport:?} with {config:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_and_without_cap() {
        let mut a = Backoff::new(ms(500), None);
        let got: Vec<_> = (0..8).map(|_| a.advance().as_millis()).collect();
        assert_eq!(
            got,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000]
        );

        let mut e = Backoff::new(ms(500), Some(ms(4_000)));
        let got: Vec<_> = (0..7).map(|_| e.advance().as_millis()).collect();
        assert_eq!(got, [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000]);

        let mut zero = Backoff::new(Duration::ZERO, Some(Duration::ZERO));
        assert_eq!(zero.advance(), ms(1));
        assert_eq!(zero.advance(), ms(1));
    }

    #[test]
    fn table_orders_by_deadline_then_ending_timers_first() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(TimerName::E, MonoTime::from_millis(32_000));
        t.set(TimerName::F, MonoTime::from_millis(32_000));
        t.set(TimerName::K, MonoTime::from_millis(40_000));
        assert_eq!(
            t.next(),
            Some((MonoTime::from_millis(32_000), TimerName::F))
        );
        assert_eq!(t.pop_due(MonoTime::from_millis(31_999)), None);
        assert_eq!(t.pop_due(MonoTime::from_millis(32_000)), Some(TimerName::F));
        assert_eq!(t.pop_due(MonoTime::from_millis(32_000)), Some(TimerName::E));
        assert_eq!(t.pop_due(MonoTime::from_millis(32_000)), None);
        t.cancel(TimerName::K);
        assert_eq!(t.next(), None);
        t.set(TimerName::A, MonoTime::ZERO);
        t.clear();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn display_names_the_timer() {
        assert_eq!(TimerName::H.to_string(), "Timer H");
    }
}
