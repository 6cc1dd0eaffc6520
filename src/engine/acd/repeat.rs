//! Repeat callers: a caller whose previous call was abandoned or dropped within
//! `acd.repeat_window_s` is raised one priority level and flagged to the operator as a
//! repeat call (the point 4; NENA practice treats a call-back after an abandoned
//! 112 call as more urgent, not less).

use crate::engine::time::MonoTime;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Recently abandoned or dropped calls by caller number, forgotten after the window.
#[derive(Clone, Debug, Default)]
pub struct RepeatCallers {
    window: Duration,
    last: HashMap<String, MonoTime>,
    order: VecDeque<(MonoTime, String)>,
}

impl RepeatCallers {
    /// Remembers callers for `window` (zero: never a repeat call).
    pub fn new(window: Duration) -> Self {
        RepeatCallers {
            window,
            ..RepeatCallers::default()
        }
    }

    /// A call from `caller` was abandoned or dropped at `now`.
    pub fn note(&mut self, caller: &str, now: MonoTime) {
        if self.window.is_zero() {
            return;
        }
        self.expire(now);
        self.last.insert(caller.to_owned(), now);
        self.order.push_back((now, caller.to_owned()));
    }

    /// Whether a new call from `caller` at `now` is a repeat call.
    pub fn is_repeat(&mut self, caller: &str, now: MonoTime) -> bool {
        self.expire(now);
        self.last.contains_key(caller)
    }

    /// Number of callers remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    fn expire(&mut self, now: MonoTime) {
        while let Some((at, _)) = self.order.front()
            && now.saturating_since(*at) > self.window
        {
            let Some((at, caller)) = self.order.pop_front() else {
                break;
            };
            if self.last.get(&caller) == Some(&at) {
                self.last.remove(&caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_is_a_repeat_within_the_window_only() {
        let t = MonoTime::from_millis;
        let mut r = RepeatCallers::new(Duration::from_secs(600));
        r.note("0811", t(0));
        assert!(r.is_repeat("0811", t(600_000)));
        assert!(!r.is_repeat("0812", t(1)));
        r.note("0811", t(300_000));
        assert!(r.is_repeat("0811", t(900_000)));
        assert!(!r.is_repeat("0811", t(900_001)));
        assert!(r.is_empty());
        let mut off = RepeatCallers::new(Duration::ZERO);
        off.note("0811", t(0));
        assert!(!off.is_repeat("0811", t(0)));
    }
}
