//! `siaga calls` with the call-log filters, `siaga export` and `siaga stats` end to end:
//! the built binary against a database prepared with the store's own API (events through
//! `write_batch`, incidents and handoffs through their methods), each case on SQLite and
//! on a fresh PostgreSQL database (`SIAGA_TEST_POSTGRES_URL`; see `src/store/test_pg.rs`).

#[path = "common/cli.rs"]
mod cli;
#[path = "../src/store/test_pg.rs"]
mod test_pg;

use cli::{T, ev, on_both, runtime, siaga, stdout};
use siaga::config::{Config, DatabaseUrl};
use siaga::engine::UtcTime;
use siaga::engine::record::{CallEvent, CallEventKind, Disposition, Party};
use siaga::store::{
    AgencyId, Classification, HandoffMethod, IncidentDetails, NewHandoff, NewIncident, Store,
};
use std::path::PathBuf;
use std::process::Output;
use tempfile::TempDir;
use uuid::Uuid;

const HOUR: i64 = 3_600_000;

/// A call received at `t` from `caller`, answered by `answer` (operator, after ms) and
/// ended 60 s later by the caller, or abandoned in the queue after 8 s.
fn call(id: u128, t: i64, caller: &str, answer: Option<(&str, i64)>) -> Vec<CallEvent> {
    let mut events = vec![ev(
        id,
        0,
        t,
        CallEventKind::Received {
            trunk_call_id: format!("c{id}@telco"),
            caller: Some(caller.to_owned()),
            called: "112".to_owned(),
            original_called: None,
            trunk: "telco".to_owned(),
        },
    )];
    let (end, disposition) = match answer {
        Some((operator, wait)) => {
            let operator = operator.to_owned();
            events.push(ev(id, 1, t + wait, CallEventKind::Answered { operator }));
            (t + wait + 60_000, Disposition::Answered)
        }
        None => (t + 8_000, Disposition::AbandonedInQueue),
    };
    events.push(ev(
        id,
        2,
        end,
        CallEventKind::Ended {
            by: Party::Caller,
            disposition,
        },
    ));
    events
}

const CONFIG: &str = "[node]\nid = \"t1\"\n[sip]\ndomains = [\"example.com\"]\n\
                      [trunk]\nsources = [\"127.0.0.1\"]\n";

/// A config file in `dir` naming the database at `url`.
fn config(dir: &TempDir, url: &str) -> PathBuf {
    let path = dir.path().join("siaga.toml");
    std::fs::write(&path, format!("{CONFIG}[database]\nurl = \"{url}\"\n")).unwrap();
    path
}

/// Three calls on 2026-11-29: 1 at 12:01 from +628111 answered by op-3 after 12.34 s,
/// classified medical/injury ("Leg injured") and handed to psc119; 2 at 13:01 from
/// +628222 abandoned after 8 s; 3 at 14:01 from +628333 answered by op-4 after 5 s,
/// classified fire and handed to damkar by radio.
fn prepare(url: &str) {
    let incidents = Config::from_toml(CONFIG, |_| None).unwrap().incidents;
    let url = DatabaseUrl::parse(url).unwrap();
    runtime().block_on(async {
        let store = Store::open(&url).await.unwrap();
        let mut events = call(1, T, "+628111", Some(("op-3", 12_340)));
        events.extend(call(2, T + HOUR, "+628222", None));
        events.extend(call(3, T + 2 * HOUR, "+628333", Some(("op-4", 5_000))));
        store.write_batch("node-a", &events).await.unwrap();
        let now = UtcTime(T + 3 * HOUR);
        for (id, category, sub, notes, agency, method) in [
            (
                1,
                "medical",
                Some("injury"),
                "Leg injured",
                "psc119",
                HandoffMethod::Phone,
            ),
            (3, "fire", None, "kitchen", "damkar", HandoffMethod::Radio),
        ] {
            let incident = NewIncident {
                classification: Classification::new(&incidents, category, sub).unwrap(),
                details: IncidentDetails {
                    notes: Some(notes.to_owned()),
                    ..IncidentDetails::default()
                },
                operator: None,
            };
            let created = store
                .create_incident("node-a", Uuid::from_u128(id), &incident, now)
                .await
                .unwrap();
            let handoff = NewHandoff {
                agency: AgencyId::new(&incidents, agency).unwrap(),
                method,
                handed_off_at: now,
                reference: None,
                operator: None,
            };
            store
                .add_handoff("node-a", created.id, &handoff, now)
                .await
                .unwrap();
        }
        store.close().await;
    });
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

/// The call ids (their last digit) of a JSON array of calls, in order.
fn ids(rows: &serde_json::Value) -> Vec<String> {
    rows.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .chars()
                .last()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn calls_filters_the_log_and_pages_it() {
    on_both("calls_filters_the_log_and_pages_it", |dir, db| {
        prepare(db);
        let config = config(dir, db);
        let table = stdout(&siaga("calls", &config, &["--category", "medical"]));
        let expected = "\
RECEIVED (UTC)       CALLER   CALLED  FIRST DIALLED  WAIT S  TALK S  OPERATOR  DISPOSITION  ENDED BY  CATEGORY        AGENCIES
2026-11-29 12:01:05  +628111  112     -                12.3    60.0  op-3      answered     caller    medical/injury  psc119
";
        assert_eq!(table, expected);

        for (args, expected) in [
            (vec!["--agency", "damkar"], vec!["3"]),
            (vec!["--text", "LEG"], vec!["1"]),
            (vec!["--disposition", "abandoned_in_queue"], vec!["2"]),
            (vec!["--operator", "op-4"], vec!["3"]),
            (vec!["--caller", "+628222"], vec!["2"]),
            (vec!["--since", "2026-11-29 13:00"], vec!["3", "2"]),
            (vec!["--until", "2026-11-29 13:00"], vec!["1"]),
            (vec!["--text", "%"], vec![]),
        ] {
            let rows = json(&siaga("calls", &config, &[&["--json"], &args[..]].concat()));
            assert_eq!(ids(&rows), expected, "{args:?}");
        }
        let rows = json(&siaga("calls", &config, &["--json", "--agency", "damkar"]));
        assert_eq!(rows[0]["category"], "fire");
        assert_eq!(rows[0]["subcategory"], serde_json::Value::Null);
        assert_eq!(rows[0]["agencies"], serde_json::json!(["damkar"]));

        // Pages: stderr names the cursor of the next one.
        let mut seen = Vec::new();
        let mut args = vec!["--json".to_owned(), "--limit".to_owned(), "2".to_owned()];
        loop {
            let out = siaga(
                "calls",
                &config,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            seen.extend(ids(&json(&out)));
            let stderr = String::from_utf8(out.stderr).unwrap();
            let Some(cursor) = stderr
                .trim()
                .strip_prefix("more calls may match: add --after ")
            else {
                assert_eq!(stderr, "");
                break;
            };
            args.truncate(3);
            args.extend(["--after".to_owned(), cursor.to_owned()]);
        }
        assert_eq!(seen, ["3", "2", "1"]);

        assert_eq!(
            stdout(&siaga("calls", &config, &["--agency", "polri"])),
            "no calls match\n"
        );
        let bad = siaga("calls", &config, &["--after", "yesterday"]);
        assert_eq!(bad.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.starts_with("siaga calls: --after \"yesterday\" is not a page cursor"),
            "{stderr}"
        );
    });
}

#[test]
fn export_writes_the_period_as_csv() {
    on_both("export_writes_the_period_as_csv", |dir, db| {
        prepare(db);
        let config = config(dir, db);
        let period = ["--from", "2026-11-29 13:00", "--to", "2026-11-30"];
        let file = dir.path().join("calls.csv");
        let output = ["--output", file.to_str().unwrap()];
        assert_eq!(
            stdout(&siaga("export", &config, &[&period[..], &output].concat())),
            ""
        );
        let written = std::fs::read_to_string(&file).unwrap();
        let expected = "\
call_id,received_at,caller,called,original_called,trunk,node_id,queued_at,answered_at,ended_at,wait_s,talk_s,operator,disposition,ended_by,incident_id,category,subcategory,agencies
00000000-0000-0000-0000-000000000003,2026-11-29T14:01:05.123Z,+628333,112,,telco,node-a,,2026-11-29T14:01:10.123Z,2026-11-29T14:02:10.123Z,5.000,60.000,op-4,answered,caller,INCIDENT,fire,,damkar
00000000-0000-0000-0000-000000000002,2026-11-29T13:01:05.123Z,+628222,112,,telco,node-a,,,2026-11-29T13:01:13.123Z,8.000,,,abandoned_in_queue,caller,,,,
";
        let incident = written.lines().nth(1).unwrap().split(',').nth(15).unwrap();
        assert!(Uuid::parse_str(incident).is_ok(), "{written}");
        assert_eq!(written, expected.replace("INCIDENT", incident));
        // To stdout, the same bytes.
        assert_eq!(stdout(&siaga("export", &config, &period)), written);
        // --from is required, --to defaults to now; both are checked (exit 2, as clap's
        // errors).
        let out = siaga("export", &config, &["--from", "2026-11-29", "--to", "soon"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("siaga export: --to \"soon\""));
        assert_eq!(siaga("export", &config, &[]).status.code(), Some(2));
        let until_now = stdout(&siaga("export", &config, &["--from", "2026-11-29 13:00"]));
        assert_eq!(until_now, written);
        let to_now = ["--from", "2026-11-29 13:00", "--to", "now"];
        assert_eq!(stdout(&siaga("export", &config, &to_now)), written);
        let missing = dir.path().join("no/such/dir.csv");
        let out = siaga(
            "export",
            &config,
            &[&period[..], &["--output", missing.to_str().unwrap()]].concat(),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("siaga export: cannot create "));
    });
}

#[test]
fn stats_prints_a_periods_figures() {
    on_both("stats_prints_a_periods_figures", |dir, db| {
        prepare(db);
        let config = config(dir, db);
        let period = ["--from", "2026-11-29", "--to", "2026-11-30"];
        let text = stdout(&siaga("stats", &config, &period));
        let expected = "\
calls received 2026-11-29T00:00:00.000Z to 2026-11-30T00:00:00.000Z: 3

answer times (3 calls answered or ended; 2 answered)
  answered within 10 s       1  33.3 %
  answered within 15 s       2  66.7 %
  answered within 20 s       2  66.7 %
  abandoned                  1  33.3 %
  wait: mean 8.4 s, 90th percentile 12.3 s

by category
  fire                           1
  medical                        1
  (unclassified)                 1

by disposition
  abandoned_in_queue             1
  answered                       2

by agency
  damkar                         1
  psc119                         1

by hour
  12:00 UTC                      1
  13:00 UTC                      1
  14:00 UTC                      1

by operator                  calls  talk
  op-3                           1  60.0 s
  op-4                           1  60.0 s
";
        assert_eq!(text, expected);

        let stats = json(&siaga(
            "stats",
            &config,
            &[&period[..], &["--json"]].concat(),
        ));
        assert_eq!(stats["calls"], 3);
        assert_eq!(stats["from"], "2026-11-29T00:00:00.000Z");
        assert_eq!(stats["answer"]["p90_wait_ms"], 12_340);
        assert_eq!(stats["answer"]["within"][1]["answered"], 2);
        assert_eq!(stats["by_operator"]["op-3"]["talk_ms"], 60_000);
        assert_eq!(stats["by_hour"][13], 1);

        // --to defaults to now (the calls of the 29th are all before it); without --from,
        // the period is the 24 hours before --to, as `GET /api/stats`.
        let until_now = json(&siaga(
            "stats",
            &config,
            &["--json", "--from", "2026-11-29"],
        ));
        assert_eq!(until_now["calls"], 3, "{until_now}");
        let day = json(&siaga("stats", &config, &["--json", "--to", "2026-11-30"]));
        assert_eq!(
            (&day["from"], &day["to"], &day["calls"]),
            (
                &serde_json::json!("2026-11-29T00:00:00.000Z"),
                &serde_json::json!("2026-11-30T00:00:00.000Z"),
                &serde_json::json!(3)
            ),
            "{day}"
        );
    });
}
