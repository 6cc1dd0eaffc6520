//! Incidents, handoffs, the call-log search, call detail and statistics, each case on both
//! backends (the parent's `store_tests!`), on one known day of calls with exact expected
//! results.

use super::*;
use super::{on_postgres_store, open_temp};
use crate::config::{Config, IncidentsConfig};

/// 2026-11-29T00:00:00Z: the day of the data set.
const DAY: i64 = 1_795_910_400_000;
const HOUR: i64 = 3_600_000;
const S: i64 = 1000;

store_tests!(
    incidents_are_created_linked_and_updated,
    handoffs_are_recorded_and_updated,
    the_log_is_searched_by_each_filter,
    the_log_pages_newest_first_without_gaps,
    a_call_detail_has_timeline_incident_and_handoffs,
    statistics_of_a_known_day_are_exact,
    the_csv_export_has_a_line_per_call,
    dropped_calls_are_on_the_worklist_until_classified,
);

fn incidents_config() -> IncidentsConfig {
    let text = "[node]\nid = \"t1\"\n[sip]\ndomains = [\"example.com\"]\n\
                [trunk]\nsources = [\"127.0.0.1\"]\n";
    Config::from_toml(text, |_| None)
        .expect("a minimal config")
        .incidents
}

fn class(category: &str, sub: Option<&str>) -> Classification {
    Classification::new(&incidents_config(), category, sub).expect("a configured category")
}

fn agency(id: &str) -> AgencyId {
    AgencyId::new(&incidents_config(), id).expect("a configured agency")
}

fn new_incident(category: &str, sub: Option<&str>, notes: &str) -> NewIncident {
    NewIncident {
        classification: class(category, sub),
        details: IncidentDetails {
            location: Some("Jl. Sudirman 5, near the mosque".to_owned()),
            position: None,
            caller_name: Some("Budi".to_owned()),
            notes: Some(notes.to_owned()),
        },
        operator: Some("op-1".to_owned()),
    }
}

/// A call received at `t` by `caller`, queued, then (`answer`: wait, talk and operator)
/// answered and ended by the caller, or (`None`, `abandon`) abandoned in the queue after
/// `abandon` ms, or still waiting.
fn call_events(
    call: u128,
    t: i64,
    caller: Option<&str>,
    answer: Option<(i64, i64, &str)>,
    abandon: Option<i64>,
) -> Vec<CallEvent> {
    let mut events = vec![received(call, t, caller), queued(call, t + 100)];
    if let Some((wait, talk, operator)) = answer {
        events.push(ev(
            call,
            2,
            t + wait,
            CallEventKind::Answered {
                operator: operator.to_owned(),
            },
        ));
        events.push(ev(
            call,
            3,
            t + wait + talk,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered,
            },
        ));
    } else if let Some(after) = abandon {
        events.push(ev(
            call,
            2,
            t + after,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::AbandonedInQueue,
            },
        ));
    }
    events
}

/// The known day: calls 1–6 on DAY, call 7 the hour before it.
///
/// | call | received | caller | outcome                         | incident            |
/// |------|----------|--------|---------------------------------|---------------------|
/// | 1    | 01:00    | 111    | answered by op-1 after 8 s, 60 s | A medical/injury    |
/// | 2    | 01:30    | 222    | answered by op-2 after 12 s, 30 s| A (linked)          |
/// | 3    | 02:00    | 333    | answered by op-1 after 18 s, 120 s| B fire/building    |
/// | 4    | 02:10    | 444    | abandoned in queue after 25 s    | none                |
/// | 5    | 03:00    | 111    | answered by op-2 after 30 s, 10 s| C prank             |
/// | 6    | 03:05    | -      | still waiting                    | none                |
/// | 7    | 23:00 before | 777 | answered by op-1 after 5 s, 5 s | none                |
///
/// Handoffs: A to psc119; B to damkar, then psc119.
struct Day {
    a: Uuid,
    b: Uuid,
    c: Uuid,
}

async fn known_day(store: &Store) -> Day {
    let mut events = Vec::new();
    events.extend(call_events(
        1,
        DAY + HOUR,
        Some("+628111"),
        Some((8 * S, 60 * S, "op-1")),
        None,
    ));
    events.extend(call_events(
        2,
        DAY + HOUR + HOUR / 2,
        Some("+628222"),
        Some((12 * S, 30 * S, "op-2")),
        None,
    ));
    events.extend(call_events(
        3,
        DAY + 2 * HOUR,
        Some("+628333"),
        Some((18 * S, 120 * S, "op-1")),
        None,
    ));
    events.extend(call_events(
        4,
        DAY + 2 * HOUR + 600 * S,
        Some("+628444"),
        None,
        Some(25 * S),
    ));
    events.extend(call_events(
        5,
        DAY + 3 * HOUR,
        Some("+628111"),
        Some((30 * S, 10 * S, "op-2")),
        None,
    ));
    events.extend(call_events(6, DAY + 3 * HOUR + 300 * S, None, None, None));
    events.extend(call_events(
        7,
        DAY - HOUR,
        Some("+628777"),
        Some((5 * S, 5 * S, "op-1")),
        None,
    ));
    store.write_batch("node-a", &events).await.unwrap();

    let now = UtcTime(DAY + 4 * HOUR);
    let call = Uuid::from_u128;
    let a = store
        .create_incident(
            "node-a",
            call(1),
            &new_incident("medical", Some("injury"), "Motorbike fell, leg injured"),
            now,
        )
        .await
        .unwrap()
        .id;
    store
        .link_call(call(2), a, Some("op-2"), now)
        .await
        .unwrap();
    let b = store
        .create_incident(
            "node-a",
            call(3),
            &new_incident(
                "fire",
                Some("building"),
                "SMOKE from the 3rd floor, 50% of it",
            ),
            now,
        )
        .await
        .unwrap()
        .id;
    let c = store
        .create_incident(
            "node-a",
            call(5),
            &new_incident("prank", None, "laughing"),
            now,
        )
        .await
        .unwrap()
        .id;
    for (incident, id, minute) in [(a, "psc119", 1), (b, "damkar", 2), (b, "psc119", 3)] {
        let handoff = NewHandoff {
            agency: agency(id),
            method: HandoffMethod::Phone,
            handed_off_at: UtcTime(DAY + 4 * HOUR + minute * 60 * S),
            reference: None,
            operator: Some("op-1".to_owned()),
        };
        store
            .add_handoff("node-a", incident, &handoff, now)
            .await
            .unwrap();
    }
    Day { a, b, c }
}

fn ids(rows: &[CallLogRow]) -> Vec<u128> {
    rows.iter().map(|r| r.call.id.as_u128()).collect()
}

async fn incidents_are_created_linked_and_updated(store: Store) {
    let call = Uuid::from_u128;
    store
        .write_batch(
            "node-a",
            &call_events(1, DAY, Some("+628111"), Some((8 * S, 60 * S, "op-1")), None),
        )
        .await
        .unwrap();
    store
        .write_batch(
            "node-a",
            &call_events(2, DAY + S, Some("+628222"), None, None),
        )
        .await
        .unwrap();
    let t = UtcTime(DAY + HOUR);
    let medical = new_incident("medical", Some("injury"), "leg injured");

    // An unknown call is not found; nothing is created.
    let missing = store.create_incident("node-a", call(99), &medical, t).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { what: "call", id }) if id == call(99)),
        "{missing:?}"
    );

    let created = store
        .create_incident("node-a", call(1), &medical, t)
        .await
        .unwrap();
    let expected = Incident {
        id: created.id,
        node_id: "node-a".to_owned(),
        category: "medical".to_owned(),
        subcategory: Some("injury".to_owned()),
        location: Some("Jl. Sudirman 5, near the mosque".to_owned()),
        latitude: None,
        longitude: None,
        caller_name: Some("Budi".to_owned()),
        notes: Some("leg injured".to_owned()),
        operator: Some("op-1".to_owned()),
        created_at: t,
        updated_at: t,
        calls: vec![call(1)],
        handoffs: vec![],
    };
    assert_eq!(created, expected);
    assert_eq!(store.incident(created.id).await.unwrap(), expected);
    assert_eq!(
        store.incident_of_call(call(1)).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.incident_of_call(call(2)).await.unwrap(), None);

    // A second incident for the same call is refused and leaves nothing behind.
    let again = store.create_incident("node-a", call(1), &medical, t).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyLinked { call: c, incident }) if c == call(1) && incident == created.id),
        "{again:?}"
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM incidents").await, 1);

    // Linking: call 2 joins; linking it again is a no-op; unknown ids are not found.
    let t2 = UtcTime(t.0 + 60 * S);
    let linked = store
        .link_call(call(2), created.id, Some("op-2"), t2)
        .await
        .unwrap();
    assert_eq!(linked.calls, vec![call(1), call(2)]);
    assert_eq!(linked.updated_at, t2);
    let relinked = store
        .link_call(call(2), created.id, None, UtcTime(t2.0 + 1))
        .await
        .unwrap();
    assert_eq!(relinked, linked);
    let unknown = store.link_call(call(98), created.id, None, t2).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { what: "call", .. })),
        "{unknown:?}"
    );
    let unknown = store.link_call(call(2), call(97), None, t2).await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                what: "incident",
                ..
            })
        ),
        "{unknown:?}"
    );

    // A partial update changes only what it names, and can clear.
    let t3 = UtcTime(t2.0 + 60 * S);
    let update = IncidentUpdate {
        classification: Some(class("fire", Some("vehicle"))),
        position: Some(Some(Position::new(-6.2088, 106.8456).unwrap())),
        location: Some(None),
        notes: Some(Some("car on fire, driver injured".to_owned())),
        ..IncidentUpdate::default()
    };
    let updated = store
        .update_incident(created.id, &update, t3)
        .await
        .unwrap();
    assert_eq!(
        updated,
        Incident {
            category: "fire".to_owned(),
            subcategory: Some("vehicle".to_owned()),
            location: None,
            latitude: Some(-6.2088),
            longitude: Some(106.8456),
            notes: Some("car on fire, driver injured".to_owned()),
            updated_at: t3,
            calls: vec![call(1), call(2)],
            ..expected.clone()
        }
    );
    // No classification given: category and subcategory stay; the position is cleared.
    let cleared = IncidentUpdate {
        position: Some(None),
        ..IncidentUpdate::default()
    };
    let after = store
        .update_incident(created.id, &cleared, t3)
        .await
        .unwrap();
    assert_eq!(
        (after.category.as_str(), after.subcategory.as_deref()),
        ("fire", Some("vehicle"))
    );
    assert_eq!((after.latitude, after.longitude), (None, None));

    let unknown = store.update_incident(call(96), &cleared, t3).await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                what: "incident",
                ..
            })
        ),
        "{unknown:?}"
    );
    let long = IncidentUpdate {
        notes: Some(Some("x".repeat(NOTES_MAX + 1))),
        ..IncidentUpdate::default()
    };
    let refused = store.update_incident(created.id, &long, t3).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Invalid(InputError::TooLong {
                field: "notes",
                max: NOTES_MAX
            }))
        ),
        "{refused:?}"
    );
    let nul = IncidentUpdate {
        notes: Some(Some("fire on\u{0} the 3rd floor".to_owned())),
        ..IncidentUpdate::default()
    };
    let refused = store.update_incident(created.id, &nul, t3).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Invalid(InputError::Nul { field: "notes" }))
        ),
        "{refused:?}"
    );

    // Another incident cannot take call 2.
    let other = store.create_incident("node-a", call(2), &medical, t3).await;
    assert!(
        matches!(other, Err(StoreError::AlreadyLinked { .. })),
        "{other:?}"
    );
}

async fn handoffs_are_recorded_and_updated(store: Store) {
    store
        .write_batch(
            "node-a",
            &call_events(1, DAY, Some("+628111"), Some((8 * S, 60 * S, "op-1")), None),
        )
        .await
        .unwrap();
    let t = UtcTime(DAY + HOUR);
    let incident = store
        .create_incident(
            "node-a",
            Uuid::from_u128(1),
            &new_incident("fire", None, "kitchen fire"),
            t,
        )
        .await
        .unwrap();
    let handoff = NewHandoff {
        agency: agency("damkar"),
        method: HandoffMethod::Radio,
        handed_off_at: UtcTime(t.0 + 30 * S),
        reference: None,
        operator: Some("op-1".to_owned()),
    };
    let unknown = store
        .add_handoff("node-a", Uuid::from_u128(55), &handoff, t)
        .await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                what: "incident",
                ..
            })
        ),
        "{unknown:?}"
    );

    let stored = store
        .add_handoff("node-a", incident.id, &handoff, UtcTime(t.0 + 31 * S))
        .await
        .unwrap();
    let expected = Handoff {
        id: stored.id,
        incident_id: incident.id,
        node_id: "node-a".to_owned(),
        agency: "damkar".to_owned(),
        method: HandoffMethod::Radio,
        handed_off_at: UtcTime(t.0 + 30 * S),
        reference: None,
        acknowledged_at: None,
        closed_at: None,
        outcome: None,
        operator: Some("op-1".to_owned()),
        updated_at: UtcTime(t.0 + 31 * S),
    };
    assert_eq!(stored, expected);
    let second = NewHandoff {
        agency: agency("psc119"),
        method: HandoffMethod::CallTransfer,
        handed_off_at: UtcTime(t.0 + 40 * S),
        reference: Some("PSC-77".to_owned()),
        operator: None,
    };
    let ambulance = store
        .add_handoff("node-a", incident.id, &second, t)
        .await
        .unwrap();
    let read = store.incident(incident.id).await.unwrap();
    assert_eq!(
        read.handoffs.iter().map(|h| h.id).collect::<Vec<_>>(),
        [stored.id, ambulance.id]
    );
    assert_eq!(read.updated_at, t, "a handoff touches its incident");

    // The agency reports back: acknowledged, then closed with an outcome.
    let ack = HandoffUpdate {
        reference: Some("DMK-2026-0042".to_owned()),
        acknowledged_at: Some(UtcTime(t.0 + 35 * S)),
        ..HandoffUpdate::default()
    };
    store
        .update_handoff(stored.id, &ack, UtcTime(t.0 + 36 * S))
        .await
        .unwrap();
    let close = HandoffUpdate {
        closed_at: Some(UtcTime(t.0 + HOUR)),
        outcome: Some("fire out, no injuries".to_owned()),
        ..HandoffUpdate::default()
    };
    let closed = store
        .update_handoff(stored.id, &close, UtcTime(t.0 + HOUR))
        .await
        .unwrap();
    assert_eq!(
        closed,
        Handoff {
            reference: Some("DMK-2026-0042".to_owned()),
            acknowledged_at: Some(UtcTime(t.0 + 35 * S)),
            closed_at: Some(UtcTime(t.0 + HOUR)),
            outcome: Some("fire out, no injuries".to_owned()),
            updated_at: UtcTime(t.0 + HOUR),
            ..expected
        }
    );

    // A time before the handoff is refused, and changes nothing.
    let early = HandoffUpdate {
        closed_at: Some(UtcTime(t.0)),
        outcome: Some("never".to_owned()),
        ..HandoffUpdate::default()
    };
    let refused = store.update_handoff(stored.id, &early, t).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Invalid(InputError::BeforeHandoff {
                field: "closed_at"
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(store.handoff(stored.id).await.unwrap(), closed);
    let unknown = store.update_handoff(Uuid::from_u128(54), &close, t).await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                what: "handoff",
                ..
            })
        ),
        "{unknown:?}"
    );
}

async fn the_log_is_searched_by_each_filter(store: Store) {
    let day = known_day(&store).await;
    let search = |filter: CallFilter| {
        let store = store.clone();
        async move { store.search_calls(&filter, None, 100).await.unwrap() }
    };
    let all = search(CallFilter::default()).await;
    assert_eq!(ids(&all.calls), [6, 5, 4, 3, 2, 1, 7]);
    assert_eq!(all.next, None);
    let fire = &all.calls[3];
    assert_eq!(
        (
            fire.incident_id,
            fire.category.as_deref(),
            fire.subcategory.as_deref()
        ),
        (Some(day.b), Some("fire"), Some("building"))
    );
    assert_eq!(fire.agencies, ["damkar", "psc119"]);
    assert_eq!(all.calls[4].incident_id, Some(day.a));
    assert_eq!(all.calls[1].incident_id, Some(day.c));
    assert_eq!(
        (all.calls[0].incident_id, all.calls[0].agencies.len()),
        (None, 0)
    );

    let on_day = CallFilter {
        from: Some(UtcTime(DAY)),
        to: Some(UtcTime(DAY + 24 * HOUR)),
        ..CallFilter::default()
    };
    let cases: Vec<(CallFilter, Vec<u128>)> = vec![
        (on_day.clone(), vec![6, 5, 4, 3, 2, 1]),
        (
            CallFilter {
                to: Some(UtcTime(DAY + 2 * HOUR)),
                ..on_day.clone()
            },
            vec![2, 1],
        ),
        (
            CallFilter {
                category: Some("medical".into()),
                ..CallFilter::default()
            },
            vec![2, 1],
        ),
        (
            CallFilter {
                disposition: Some("abandoned_in_queue".into()),
                ..CallFilter::default()
            },
            vec![4],
        ),
        (
            CallFilter {
                operator: Some("op-1".into()),
                ..on_day.clone()
            },
            vec![3, 1],
        ),
        (
            CallFilter {
                caller: Some("+628111".into()),
                ..CallFilter::default()
            },
            vec![5, 1],
        ),
        (
            CallFilter {
                agency: Some("psc119".into()),
                ..CallFilter::default()
            },
            vec![3, 2, 1],
        ),
        (
            CallFilter {
                agency: Some("damkar".into()),
                ..CallFilter::default()
            },
            vec![3],
        ),
        (
            CallFilter {
                text: Some("smoke".into()),
                ..CallFilter::default()
            },
            vec![3],
        ),
        (
            CallFilter {
                text: Some("LEG".into()),
                ..CallFilter::default()
            },
            vec![2, 1],
        ),
        // LIKE's wildcards are taken literally: "50%" is in B's notes, "_" in none.
        (
            CallFilter {
                text: Some("50%".into()),
                ..CallFilter::default()
            },
            vec![3],
        ),
        (
            CallFilter {
                text: Some("_".into()),
                ..CallFilter::default()
            },
            vec![],
        ),
        (
            CallFilter {
                text: Some("' OR 1=1 --".into()),
                ..CallFilter::default()
            },
            vec![],
        ),
        (
            CallFilter {
                operator: Some("op-2".into()),
                category: Some("prank".into()),
                ..CallFilter::default()
            },
            vec![5],
        ),
        (
            CallFilter {
                category: Some("no-such".into()),
                ..CallFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let page = search(filter.clone()).await;
        assert_eq!(ids(&page.calls), expected, "{filter:?}");
    }
}

async fn the_log_pages_newest_first_without_gaps(store: Store) {
    known_day(&store).await;
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .search_calls(&CallFilter::default(), after, 2)
            .await
            .unwrap();
        pages.push(ids(&page.calls));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec![6, 5], vec![4, 3], vec![2, 1], vec![7]]);
    // Calls in one millisecond are ordered by id, and a page boundary between them loses
    // none.
    let same_ms: Vec<CallEvent> = (10..13)
        .map(|c| received(c, DAY + 5 * HOUR, None))
        .collect();
    store.write_batch("node-a", &same_ms).await.unwrap();
    let first = store
        .search_calls(&CallFilter::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(ids(&first.calls), [12, 11]);
    let second = store
        .search_calls(&CallFilter::default(), first.next, 2)
        .await
        .unwrap();
    assert_eq!(ids(&second.calls), [10, 6]);
}

async fn a_call_detail_has_timeline_incident_and_handoffs(store: Store) {
    let day = known_day(&store).await;
    let detail = store.call_detail(Uuid::from_u128(3)).await.unwrap();
    assert_eq!(detail.call.operator.as_deref(), Some("op-1"));
    assert_eq!(
        detail
            .timeline
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["received", "queued", "answered", "ended"]
    );
    let incident = detail.incident.expect("call 3 is classified");
    assert_eq!(incident.id, day.b);
    assert_eq!(
        incident
            .handoffs
            .iter()
            .map(|h| h.agency.as_str())
            .collect::<Vec<_>>(),
        ["damkar", "psc119"]
    );
    let unclassified = store.call_detail(Uuid::from_u128(4)).await.unwrap();
    assert_eq!(unclassified.incident, None);
    let missing = store.call_detail(Uuid::from_u128(99)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { what: "call", .. })),
        "{missing:?}"
    );
}

async fn statistics_of_a_known_day_are_exact(store: Store) {
    known_day(&store).await;
    let from = UtcTime(DAY);
    let to = UtcTime(DAY + 24 * HOUR);
    let stats = store.statistics(from, to).await.unwrap();
    let map = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let mut by_hour = [0; 24];
    by_hour[1] = 2;
    by_hour[2] = 2;
    by_hour[3] = 2;
    let expected = Statistics {
        from,
        to,
        calls: 6,
        by_category: map(&[("fire", 1), ("medical", 2), ("prank", 1)]),
        unclassified: 2,
        by_disposition: map(&[("abandoned_in_queue", 1), ("answered", 4)]),
        in_progress: 1,
        by_agency: map(&[("damkar", 1), ("psc119", 3)]),
        by_hour,
        answer: AnswerTimes {
            calls: 5,
            answered: 4,
            abandoned: 1,
            abandoned_share: Some(0.2),
            within: vec![
                WithinThreshold {
                    seconds: 10,
                    answered: 1,
                    share: Some(0.2),
                },
                WithinThreshold {
                    seconds: 15,
                    answered: 2,
                    share: Some(0.4),
                },
                WithinThreshold {
                    seconds: 20,
                    answered: 3,
                    share: Some(0.6),
                },
            ],
            // (8 + 12 + 18 + 25 + 30) s / 5
            mean_wait_ms: Some(18_600.0),
            p90_wait_ms: Some(30_000),
        },
        by_operator: [
            (
                "op-1".to_owned(),
                OperatorStats {
                    calls: 2,
                    talk_ms: 180_000,
                },
            ),
            (
                "op-2".to_owned(),
                OperatorStats {
                    calls: 2,
                    talk_ms: 40_000,
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    assert_eq!(stats, expected);

    // An empty period: zeros, and no shares (nothing to divide by).
    let empty = store.statistics(UtcTime(0), UtcTime(1)).await.unwrap();
    assert_eq!((empty.calls, empty.answer.calls), (0, 0));
    assert_eq!(empty.answer.abandoned_share, None);
    assert_eq!(empty.answer.within[1].share, None);
    assert_eq!(
        (empty.answer.mean_wait_ms, empty.answer.p90_wait_ms),
        (None, None)
    );
}

async fn the_csv_export_has_a_line_per_call(store: Store) {
    known_day(&store).await;
    let filter = CallFilter {
        from: Some(UtcTime(DAY)),
        to: Some(UtcTime(DAY + 24 * HOUR)),
        ..CallFilter::default()
    };
    let mut out = Vec::new();
    let written = export_csv(&store, &filter, &mut out).await.unwrap();
    assert_eq!(written, 6);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(lines[0], CSV_COLUMNS.join(","));
    let fire = lines
        .iter()
        .find(|l| l.starts_with(&Uuid::from_u128(3).to_string()))
        .unwrap();
    let fields: Vec<&str> = fire.split(',').collect();
    assert_eq!(fields[1], "2026-11-29T02:00:00.000Z");
    assert_eq!(fields[2], "+628333");
    assert_eq!((fields[10], fields[11]), ("18.000", "120.000"));
    assert_eq!((fields[12], fields[13]), ("op-1", "answered"));
    assert_eq!(&fields[16..], ["fire", "building", "damkar;psc119"]);
    let waiting = lines[1];
    assert!(
        waiting.starts_with(&Uuid::from_u128(6).to_string()),
        "{waiting}"
    );
    assert!(
        waiting.ends_with(",,,,"),
        "unset fields are empty: {waiting}"
    );
}

#[test]
fn inputs_are_checked_against_the_configured_lists() {
    let config = incidents_config();
    assert!(Classification::new(&config, "medical", Some("injury")).is_ok());
    assert!(Classification::new(&config, "prank", None).is_ok());
    let error = Classification::new(&config, "Medical", None).unwrap_err();
    assert_eq!(error.field(), "category");
    assert_eq!(
        error,
        InputError::UnknownCategory {
            given: "Medical".to_owned(),
            allowed: [
                "medical",
                "fire",
                "natural_disaster",
                "security",
                "prank",
                "silent",
                "information",
                "misdial",
                "test_call",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    );
    let error = Classification::new(&config, "fire", Some("flood")).unwrap_err();
    assert_eq!(error.field(), "subcategory");
    assert!(
        error
            .to_string()
            .starts_with("unknown subcategory \"flood\" of category fire; allowed: building, "),
        "{error}"
    );
    let error = AgencyId::new(&config, "basarnas").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown agency \"basarnas\"; allowed: psc119, damkar, bpbd, polri"
    );
    assert_eq!("radio".parse(), Ok(HandoffMethod::Radio));
    let error = "fax".parse::<HandoffMethod>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown handoff method \"fax\"; allowed: call_transfer, phone, radio, app"
    );
}

#[test]
fn positions_are_wgs84_degrees_both_or_neither() {
    assert!(Position::new(-90.0, 180.0).is_ok());
    assert!(Position::new(-6.2, 106.8).is_ok());
    for (lat, lon, field) in [
        (90.5, 0.0, "latitude"),
        (f64::NAN, 0.0, "latitude"),
        (0.0, -180.1, "longitude"),
        (0.0, f64::INFINITY, "longitude"),
    ] {
        assert_eq!(Position::new(lat, lon).unwrap_err().field(), field);
    }
    assert_eq!(Position::from_pair(None, None), Ok(None));
    assert_eq!(
        Position::from_pair(Some(1.0), None).unwrap_err().field(),
        "longitude"
    );
    assert_eq!(
        Position::from_pair(None, Some(1.0)).unwrap_err().field(),
        "latitude"
    );
}

/// Call `call` from `caller`, received at `t`, answered +5 s, dropped by the caller's side
/// +60 s (`dropped` then `ended`); without `ended` when `ends` is false (the log lost it).
fn dropped_call(call: u128, t: i64, caller: &str, ends: bool) -> Vec<CallEvent> {
    let mut events = call_events(call, t, Some(caller), None, None);
    events.push(ev(
        call,
        2,
        t + 5 * S,
        CallEventKind::Answered {
            operator: "op-1".to_owned(),
        },
    ));
    events.push(ev(
        call,
        3,
        t + 60 * S,
        CallEventKind::Dropped {
            reason: "session expired".to_owned(),
        },
    ));
    if ends {
        events.push(ev(
            call,
            4,
            t + 60 * S,
            CallEventKind::Ended {
                by: Party::Siaga,
                disposition: Disposition::Answered,
            },
        ));
    }
    events
}

/// The rebuild lists an answered call that dropped (`dropped` event) while it has no
/// incident, with reason `dropped_unclassified`, beside an abandoned one; classifying or
/// linking it, an answered callback, or a later answered call of the caller closes it; a
/// call the operator ended is not listed.
async fn dropped_calls_are_on_the_worklist_until_classified(store: Store) {
    let call = Uuid::from_u128;
    let t = DAY;
    let min = 60 * S;
    let mut events = Vec::new();
    // 1: dropped, never classified: listed.
    events.extend(dropped_call(1, t, "+62801", true));
    // 2: dropped, then classified in wrap-up; 3: dropped, linked to 2's incident.
    events.extend(dropped_call(2, t + min, "+62802", true));
    events.extend(dropped_call(3, t + 2 * min, "+62803", true));
    // 4: answered and ended by the caller's BYE without `dropped` (the operator's end
    // looks the same in `calls`): only the event lists a call.
    events.extend(call_events(
        4,
        t + 3 * min,
        Some("+62804"),
        Some((5 * S, 60 * S, "op-1")),
        None,
    ));
    // 5: dropped, the caller called again and was answered (call 6): moot.
    events.extend(dropped_call(5, t + 4 * min, "+62805", true));
    events.extend(call_events(
        6,
        t + 5 * min,
        Some("+62805"),
        Some((5 * S, 60 * S, "op-2")),
        None,
    ));
    // 7: dropped, one busy callback: listed, 1 attempt. 8: dropped, called back: closed.
    events.extend(dropped_call(7, t + 6 * min, "+62807", true));
    events.push(ev(
        7,
        10,
        t + 7 * min,
        CallEventKind::CallbackEnded {
            operator: "op-2".to_owned(),
            outcome: CallbackOutcome::Busy,
        },
    ));
    events.extend(dropped_call(8, t + 6 * min, "+62808", true));
    events.push(ev(
        8,
        10,
        t + 7 * min,
        CallEventKind::CallbackEnded {
            operator: "op-2".to_owned(),
            outcome: CallbackOutcome::Answered,
        },
    ));
    // 9: `dropped` stored but not `ended`: not listed (and no error).
    events.extend(dropped_call(9, t + 8 * min, "+62809", false));
    // 10: abandoned in the queue: listed as before.
    events.extend(call_events(
        10,
        t + 9 * min,
        Some("+62810"),
        None,
        Some(20 * S),
    ));
    store.write_batch("node-a", &events).await.unwrap();
    let incident = store
        .create_incident(
            "node-a",
            call(2),
            &new_incident("medical", None, "fell"),
            UtcTime(t + 2 * min),
        )
        .await
        .unwrap();
    store
        .link_call(call(3), incident.id, Some("op-1"), UtcTime(t + 3 * min))
        .await
        .unwrap();

    let list = store.callback_worklist(UtcTime(t)).await.unwrap();
    let got: Vec<(u128, &str, &str, u32)> = list
        .iter()
        .map(|r| {
            (
                r.call.as_u128(),
                r.disposition.as_str(),
                r.reason.as_str(),
                r.attempts,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "answered", "dropped_unclassified", 0),
            (7, "answered", "dropped_unclassified", 1),
            (10, "abandoned_in_queue", "abandoned_in_queue", 0),
        ]
    );
    let item = list[0].clone().into_item();
    assert_eq!(
        (item.reason.as_str(), item.waited, item.at),
        (
            "dropped_unclassified",
            std::time::Duration::from_secs(60),
            UtcTime(t)
        )
    );
    // Classifying call 1 now closes its item too.
    store
        .create_incident(
            "node-a",
            call(1),
            &new_incident("fire", None, "smoke"),
            UtcTime(t + 20 * min),
        )
        .await
        .unwrap();
    let after: Vec<u128> = store
        .callback_worklist(UtcTime(t))
        .await
        .unwrap()
        .iter()
        .map(|r| r.call.as_u128())
        .collect();
    assert_eq!(after, [7, 10]);
}
