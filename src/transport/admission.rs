//! Who may hold a TCP connection: the global cap (`sip.max_tcp_connections`) and the
//! per-IP cap (`sip.max_tcp_connections_per_ip`). RFC 3261 §18.3 leaves connection
//! management to the implementation; these caps keep one peer from taking every slot.
//!
//! A connection holds a [`Slot`] from before it is registered until its writer is done,
//! so it counts until its socket is really closed; dropping the slot frees it. Every
//! connection takes a global permit and a place in its peer IP's count: inbound ones in
//! their source IP's, and ones siaga opens in their destination IP's. The latter count
//! because a peer decides where siaga connects too (the Via of a request sent over UDP,
//! RFC 3261 §18.2.2, names the port a TCP response goes to), so without them one peer
//! could make siaga fill every slot with connections to its own ports.
//!
//! Refusals are logged by the caller, at most once per [`REFUSAL_LOG_INTERVAL`] per IP
//! (per-IP cap) or in all (global cap), each line with the number refused since the
//! previous one: a peer that reconnects in a loop, or makes siaga connect in a loop,
//! cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The shortest time between two log lines about refused connections, per IP for the
/// per-IP cap and in all for the global cap.
pub(super) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Per-IP entries kept before the first sweep of the ones without open connections.
const MIN_SWEEP_AT: usize = 64;

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `sip.max_tcp_connections` connections are open.
    Global {
        /// `Some(n)`: log this refusal, and `n` more that were not logged since the
        /// previous line. `None`: do not log it (counted for the next line).
        log: Option<u64>,
    },
    /// The peer's IP holds `sip.max_tcp_connections_per_ip` connections (inbound and
    /// outbound together).
    PerIp {
        /// As in [`Refusal::Global`], per IP.
        log: Option<u64>,
    },
}

/// A connection's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// The counts this connection is in, under `ip`.
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.per_ip.release(self.ip, Instant::now());
    }
}

/// The caps and their counts, shared by the accept loop, the send side and every slot.
#[derive(Debug)]
pub(super) struct Admission {
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    /// std `Mutex`: held to update two fields, on a refusal only.
    global_log: Mutex<LogGate>,
}

impl Admission {
    /// Caps of `max_global` connections and `max_per_ip` connections per peer IP (both at
    /// least 1: a 0 is taken as 1).
    pub(super) fn new(max_global: usize, max_per_ip: usize) -> Admission {
        Admission {
            permits: Arc::new(Semaphore::new(max_global.max(1))),
            per_ip: Arc::new(PerIp {
                max: max_per_ip.max(1),
                table: Mutex::new(IpTable {
                    by_ip: HashMap::new(),
                    sweep_at: MIN_SWEEP_AT,
                }),
            }),
            global_log: Mutex::new(LogGate::default()),
        }
    }

    /// A slot for a connection with peer `ip`, accepted from it or opened to it
    /// (IPv4-mapped IPv6 addresses count as their IPv4 address), or why not. `now` decides
    /// whether a refusal is logged.
    pub(super) fn admit(&self, ip: IpAddr, now: Instant) -> Result<Slot, Refusal> {
        let ip = ip.to_canonical();
        let mut table = lock(&self.per_ip.table);
        let entry = table.entry(ip, now);
        if entry.open >= self.per_ip.max {
            return Err(Refusal::PerIp {
                log: entry.log.refused(now),
            });
        }
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                entry.open += 1;
                Ok(Slot {
                    _permit: permit,
                    per_ip: Arc::clone(&self.per_ip),
                    ip,
                })
            }
            Err(_) => {
                if entry.idle(now) {
                    table.by_ip.remove(&ip);
                }
                drop(table);
                Err(Refusal::Global {
                    log: lock(&self.global_log).refused(now),
                })
            }
        }
    }
}

/// Locks a mutex whose sections are each a few field or map updates: a panic inside one
/// cannot leave them half done, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Open connections per peer IP.
#[derive(Debug)]
pub(super) struct PerIp {
    max: usize,
    /// std `Mutex`: held for one map operation per accept, refusal or close (a sweep, at
    /// most once per doubling of the map), never across an await.
    table: Mutex<IpTable>,
}

impl PerIp {
    fn release(&self, ip: IpAddr, now: Instant) {
        let mut table = lock(&self.table);
        if let Some(entry) = table.by_ip.get_mut(&ip) {
            entry.open = entry.open.saturating_sub(1);
            if entry.idle(now) {
                table.by_ip.remove(&ip);
            }
        }
    }
}

#[derive(Debug)]
struct IpTable {
    /// An entry lives while its IP has connections open, or a refusal of it was logged
    /// less than [`REFUSAL_LOG_INTERVAL`] ago (so reconnecting does not reset the log
    /// gate); the latter are swept when the map doubles.
    by_ip: HashMap<IpAddr, IpEntry>,
    /// Sweep when a new entry would make the map this big.
    sweep_at: usize,
}

impl IpTable {
    fn entry(&mut self, ip: IpAddr, now: Instant) -> &mut IpEntry {
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= self.sweep_at {
            self.by_ip.retain(|_, entry| !entry.idle(now));
            self.sweep_at = (self.by_ip.len() * 2).max(MIN_SWEEP_AT);
        }
        self.by_ip.entry(ip).or_default()
    }
}

#[derive(Debug, Default)]
struct IpEntry {
    open: usize,
    log: LogGate,
}

impl IpEntry {
    /// No connections open and no refusal logged within the interval: forgettable.
    fn idle(&self, now: Instant) -> bool {
        self.open == 0 && !self.log.recent(now)
    }
}

/// Lets one refusal line through per [`REFUSAL_LOG_INTERVAL`] and counts the rest.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogGate {
    fn recent(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
    }

    /// Records a refusal at `now`: `Some(refusals not logged since the last line)` when
    /// this one is to be logged.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        if self.recent(now) {
            self.unlogged = self.unlogged.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_cap_counts_every_connection_and_frees_on_drop() {
        let admission = Admission::new(10, 2);
        let now = Instant::now();
        let a = admission.admit(ip("192.0.2.1"), now).unwrap();
        let _b = admission.admit(ip("::ffff:192.0.2.1"), now).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.1"), now).unwrap_err(),
            Refusal::PerIp { log: Some(0) }
        );
        assert_eq!(
            admission.admit(ip("192.0.2.1"), now).unwrap_err(),
            Refusal::PerIp { log: None },
            "logged at most once per interval"
        );
        let _other = admission.admit(ip("192.0.2.2"), now).unwrap();
        drop(a);
        let _again = admission.admit(ip("192.0.2.1"), now).unwrap();
        let later = now + REFUSAL_LOG_INTERVAL;
        assert_eq!(
            admission.admit(ip("192.0.2.1"), later).unwrap_err(),
            Refusal::PerIp { log: Some(1) },
            "the next line counts the refusals not logged"
        );
    }

    #[test]
    fn global_cap_logs_once_per_interval() {
        let admission = Admission::new(2, 2);
        let now = Instant::now();
        let _a = admission.admit(ip("192.0.2.1"), now).unwrap();
        let _b = admission.admit(ip("192.0.2.2"), now).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.9"), now).unwrap_err(),
            Refusal::Global { log: Some(0) }
        );
        assert_eq!(
            admission.admit(ip("192.0.2.8"), now).unwrap_err(),
            Refusal::Global { log: None }
        );
        assert!(
            !lock(&admission.per_ip.table)
                .by_ip
                .contains_key(&ip("192.0.2.8")),
            "no count is kept for a refused IP"
        );
    }

    #[test]
    fn entries_of_closed_ips_are_forgotten() {
        let admission = Admission::new(100_000, 1);
        let now = Instant::now();
        for n in 0..1000u32 {
            let slot = admission.admit(IpAddr::from(n.to_be_bytes()), now);
            drop(slot);
        }
        assert!(lock(&admission.per_ip.table).by_ip.is_empty());
        // Refused IPs stay for the log interval, then are swept as the map grows.
        for n in 0..1000u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            let _held = admission.admit(ip, now).unwrap();
            assert!(admission.admit(ip, now).is_err());
        }
        assert_eq!(lock(&admission.per_ip.table).by_ip.len(), 1000);
        let later = now + REFUSAL_LOG_INTERVAL;
        let held: Vec<_> = (1000..1100u32)
            .map(|n| admission.admit(IpAddr::from(n.to_be_bytes()), later))
            .collect();
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(lock(&admission.per_ip.table).by_ip.len(), 100);
    }
}
