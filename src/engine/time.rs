//! Time as the engine sees it: a monotonic [`MonoTime`] for timers and a wall-clock
//! [`UtcTime`] for records. Both are passed in by the shell; the engine never reads a clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Monotonic time: the duration since an origin chosen by the shell (its start).
///
/// Only differences between two `MonoTime`s mean anything. Resolution: nanoseconds
/// (it wraps a [`Duration`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(Duration);

impl MonoTime {
    /// The origin.
    pub const ZERO: MonoTime = MonoTime(Duration::ZERO);

    /// A time `d` after the origin.
    pub const fn from_origin(d: Duration) -> Self {
        MonoTime(d)
    }

    /// A time `ms` milliseconds after the origin (convenient in tests).
    pub const fn from_millis(ms: u64) -> Self {
        MonoTime(Duration::from_millis(ms))
    }

    /// The duration since the origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;
    fn add(self, rhs: Duration) -> MonoTime {
        MonoTime(self.0.saturating_add(rhs))
    }
}

impl Sub<MonoTime> for MonoTime {
    type Output = Duration;
    /// Saturating: a later `rhs` gives zero.
    fn sub(self, rhs: MonoTime) -> Duration {
        self.saturating_since(rhs)
    }
}

/// Wall-clock time for records: milliseconds since the Unix epoch, UTC. Serializes as
/// the bare number.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct UtcTime(pub i64);

impl UtcTime {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }
}

/// The two clocks, read once by the shell per input and handed to the engine together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timers.
    pub mono: MonoTime,
    /// Wall-clock time, for records.
    pub utc: UtcTime,
}

impl Now {
    /// Both clocks at `ms` milliseconds (tests).
    pub const fn from_millis(ms: u64) -> Self {
        Now {
            mono: MonoTime::from_millis(ms),
            utc: UtcTime(ms as i64),
        }
    }
}
