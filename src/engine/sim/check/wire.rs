//! What siaga put on the wire: the dialogs it confirmed with phones, and its
//! retransmission schedules (see the parent module).

use super::{CallViews, is};
use crate::engine::sim::ua::Timers;
use crate::engine::sim::world::{SIAGA, TRUNK, Wire, World};
use crate::engine::sip::Method;
use std::collections::{BTreeMap, BTreeSet};

/// §13.2.2.4: each 2xx of a phone that reaches siaga while siaga still knows its INVITE
/// is ACKed at once (a 2xx that carried the offer: once the trunk's answer came, RFC
/// 3264 §5); every dialog such a 2xx confirmed sees a BYE, sent or received; siaga sends
/// at most one BYE in it (§15).
pub(super) fn phone_dialogs(w: &World, v: &mut Vec<String>) {
    let t64 = w.scenario.timers.t64();
    for p in &w.phones {
        for (leg, call) in &p.calls {
            let on_leg = |y: &&Wire| y.call_id == *leg;
            let oks: Vec<u64> = w
                .wire
                .iter()
                .filter(on_leg)
                .filter(|y| {
                    y.from == p.ua.addr
                        && y.cseq == Method::Invite
                        && y.msg.status().is_some_and(|s| (200..300).contains(&s))
                })
                .flat_map(|y| y.deliveries.iter().copied())
                .collect();
            let (Some(&first), Some(sent)) = (
                oks.iter().min(),
                w.wire
                    .iter()
                    .filter(on_leg)
                    .find(|y| y.from == SIAGA && is(&y.msg, Method::Invite))
                    .map(|y| y.at),
            ) else {
                continue;
            };
            // siaga knows its INVITE until Timer M (64·T1 after the first 2xx) or, when
            // Timer B ended it first, 64·T1 after that (`Engine::late_2xx`); a 2xx that
            // comes later is a stray (§18.1.2).
            let known_until = if first < sent + t64 {
                first + t64
            } else {
                sent + 2 * t64
            };
            let known: Vec<u64> = oks.into_iter().filter(|&at| at <= known_until).collect();
            let acks: Vec<u64> = w
                .wire
                .iter()
                .filter(on_leg)
                .filter(|y| y.from == SIAGA && is(&y.msg, Method::Ack))
                .map(|y| y.at)
                .collect();
            for &at in &known {
                let later_ok = call.offered_rtp.is_none();
                if !acks.iter().any(|&a| a == at || (later_ok && a > at)) {
                    v.push(format!(
                        "leg {leg}: the 200 that reached siaga at {at} drew no ACK"
                    ));
                }
            }
            if known.is_empty() {
                continue;
            }
            let byes: BTreeSet<&str> = w
                .wire
                .iter()
                .filter(on_leg)
                .filter(|y| y.from == SIAGA && is(&y.msg, Method::Bye))
                .map(|y| y.branch.as_str())
                .collect();
            if byes.len() > 1 {
                v.push(format!(
                    "leg {leg}: siaga sent {} BYEs (one dialog, one BYE)",
                    byes.len()
                ));
            }
            let phone_bye = w
                .wire
                .iter()
                .filter(on_leg)
                .any(|y| y.to == SIAGA && is(&y.msg, Method::Bye) && !y.deliveries.is_empty());
            if byes.is_empty() && !phone_bye {
                v.push(format!(
                    "leg {leg}: siaga got its 200 but the dialog never saw a BYE"
                ));
            }
        }
    }
}

/// RFC 3261 §17.1.1.2 (A), §17.1.2.2 (E): the offsets from the first send at which a
/// request is sent while unanswered, up to 64·T1.
fn schedule(t: &Timers, invite: bool) -> Vec<u64> {
    let (mut at, mut interval, mut out) = (0, t.t1, Vec::new());
    while at < t.t64() {
        out.push(at);
        at += interval;
        interval = if invite {
            interval * 2
        } else {
            (interval * 2).min(t.t2)
        };
    }
    out
}

pub(super) fn retransmissions(w: &World, calls: &CallViews, v: &mut Vec<String>) {
    let t = &w.scenario.timers;
    // Group what siaga sent: requests by (branch, method); 2xx to the trunk by Call-ID;
    // failures to the trunk's INVITE by branch.
    let mut groups: BTreeMap<(u8, String, String), Vec<&Wire>> = BTreeMap::new();
    for x in w.wire.iter().filter(|x| x.from == SIAGA) {
        let branch = x.branch.clone();
        let key = match (x.msg.method(), x.msg.status()) {
            (Some(Method::Ack), _) => continue,
            (Some(m), _) => (0, branch, m.as_str().to_owned()),
            (None, Some(200..=299)) if x.cseq == Method::Invite && x.to == TRUNK => {
                (1, x.call_id.as_str().to_owned(), String::new())
            }
            (None, Some(300..)) if x.cseq == Method::Invite && x.to == TRUNK => {
                (2, branch, String::new())
            }
            _ => continue,
        };
        groups.entry(key).or_default().push(x);
    }
    // First delivery to siaga of a message from `peer` matching `f`.
    let first_delivery = |f: &dyn Fn(&Wire) -> bool| {
        w.wire
            .iter()
            .filter(|y| y.to == SIAGA && f(y))
            .flat_map(|y| y.deliveries.iter().copied())
            .min()
    };
    for ((kind, key, method), sent) in groups {
        let first = sent[0];
        if sent
            .iter()
            .any(|x| x.msg.as_bytes() != first.msg.as_bytes())
        {
            v.push(format!(
                "siaga's retransmissions of {} differ from the original",
                crate::engine::sim::world::summary(&first.msg)
            ));
        }
        let s0 = first.at;
        let times: Vec<u64> = sent.iter().map(|x| x.at).collect();
        let expected: Vec<u64> = match kind {
            0 => {
                let stop = first_delivery(&|y| {
                    y.msg.status().is_some() && y.cseq.as_str() == method && y.branch == key
                });
                schedule(t, method == "INVITE")
                    .into_iter()
                    .map(|o| s0 + o)
                    .filter(|&at| stop.is_none_or(|r| at < r))
                    .collect()
            }
            1 => {
                // §13.3.1.4: T1, doubling up to T2, until the ACK or 64·T1 (or the call's end).
                let ack = first_delivery(&|y| {
                    y.from == TRUNK && is(&y.msg, Method::Ack) && y.call_id.as_str() == key
                });
                let ended = calls
                    .of_trunk_call(&key)
                    .first()
                    .and_then(|c| c.ended())
                    .map(|(r, _, _)| r.at);
                let stop = [ack, ended].into_iter().flatten().min();
                schedule(t, false)
                    .into_iter()
                    .map(|o| s0 + o)
                    .filter(|&at| stop.is_none_or(|r| at < r))
                    .collect()
            }
            _ => {
                // §17.2.1: Timer G until the ACK or Timer H, and once for each
                // retransmitted INVITE that arrives meanwhile.
                let same_branch = |y: &Wire| y.from == TRUNK && y.branch == key;
                let ack = first_delivery(&|y| same_branch(y) && is(&y.msg, Method::Ack));
                let stop = ack.unwrap_or(u64::MAX).min(s0 + t.t64());
                let mut expected: Vec<u64> = schedule(t, false)
                    .into_iter()
                    .map(|o| s0 + o)
                    .filter(|&at| at < stop)
                    .collect();
                let resent = w
                    .wire
                    .iter()
                    .filter(|y| y.to == SIAGA && same_branch(y) && is(&y.msg, Method::Invite))
                    .flat_map(|y| y.deliveries.iter().copied())
                    .filter(|&at| at > s0 && at < stop);
                expected.extend(resent);
                expected.sort_unstable();
                expected
            }
        };
        if times != expected {
            v.push(format!(
                "siaga sent {} at {times:?}; RFC 3261 timers say {expected:?}",
                crate::engine::sim::world::summary(&first.msg)
            ));
        }
    }
}
