//! `siaga calls`, `siaga agents` and `siaga migrate` end to end: the built binary against
//! a database prepared with the store's own writer API, each case on SQLite and on a fresh
//! PostgreSQL database (`SIAGA_TEST_POSTGRES_URL`; see `src/store/test_pg.rs`).

#[path = "common/cli.rs"]
mod cli;
#[path = "../src/store/test_pg.rs"]
mod test_pg;

use cli::{SIAGA, T, ev, on_both, runtime, siaga, stdout};
use siaga::config::DatabaseUrl;
use siaga::engine::UtcTime;
use siaga::engine::record::{AgentEvent, CallEvent, CallEventKind, Disposition, Party};
use siaga::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;
use uuid::Uuid;

fn received(call: u128, at: i64, caller: Option<&str>) -> CallEvent {
    ev(
        call,
        0,
        at,
        CallEventKind::Received {
            trunk_call_id: format!("c{call}@telco"),
            caller: caller.map(str::to_owned),
            called: "112".to_owned(),
            original_called: (call == 1).then(|| "110".to_owned()),
            trunk: "telco".to_owned(),
        },
    )
}

/// A database at `path` with two calls: one answered (received at T, diverted from 110),
/// and one abandoned in the queue an hour later.
fn prepare(url: &str) {
    let events = vec![
        received(1, T, Some("+6281234567890")),
        ev(
            1,
            1,
            T + 100,
            CallEventKind::Queued {
                queue: "default".into(),
                priority: 0,
                repeat: false,
                skills: vec![],
            },
        ),
        ev(
            1,
            2,
            T + 200,
            CallEventKind::Offered {
                operator: "op-3".to_owned(),
            },
        ),
        ev(
            1,
            3,
            T + 12_340,
            CallEventKind::Answered {
                operator: "op-3".to_owned(),
            },
        ),
        ev(
            1,
            4,
            T + 72_440,
            CallEventKind::Ended {
                by: Party::Operator,
                disposition: Disposition::Answered,
            },
        ),
        received(2, T + 3_600_000, None),
        ev(
            2,
            1,
            T + 3_600_100,
            CallEventKind::Queued {
                queue: "default".into(),
                priority: 0,
                repeat: false,
                skills: vec![],
            },
        ),
        ev(
            2,
            2,
            T + 3_608_000,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::AbandonedInQueue,
            },
        ),
    ];
    write(url, &events);
}

/// Writes `events` to the database at `url`, created when missing.
fn write<E: siaga::store::Logged>(url: &str, events: &[E]) {
    let url = DatabaseUrl::parse(url).unwrap();
    runtime().block_on(async {
        let store = Store::open(&url).await.unwrap();
        store.write_batch("node-a", events).await.unwrap();
        store.close().await;
    });
}

/// A config file in `dir` naming the database at `url`.
fn config(dir: &TempDir, url: &str) -> PathBuf {
    let text = format!(
        "[node]\nid = \"t1\"\n[sip]\ndomains = [\"example.com\"]\n[trunk]\nsources = [\"127.0.0.1\"]\n[database]\nurl = \"{url}\"\n"
    );
    let path = dir.path().join("siaga.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A config file in `dir` naming the SQLite file `database`.
fn sqlite_config(dir: &TempDir, database: &Path) -> PathBuf {
    config(dir, &format!("sqlite://{}", database.display()))
}

fn calls(config: &Path, args: &[&str]) -> Output {
    siaga("calls", config, args)
}

/// The keys of a JSON object, sorted.
fn sorted_keys(row: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = row
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn prints_a_table_newest_first() {
    on_both("prints_a_table_newest_first", prints_a_table);
}

fn prints_a_table(dir: &TempDir, db: &str) {
    prepare(db);
    let text = stdout(&calls(&config(dir, db), &[]));
    let expected = "\
RECEIVED (UTC)       CALLER          CALLED  FIRST DIALLED  WAIT S  TALK S  OPERATOR  DISPOSITION         ENDED BY  CATEGORY  AGENCIES
2026-11-29 13:01:05  -               112     -                 8.0       -  -         abandoned_in_queue  caller    -         -
2026-11-29 12:01:05  +6281234567890  112     110              12.3    60.1  op-3      answered            operator  -         -
";
    assert_eq!(text, expected);

    let limited = stdout(&calls(&config(dir, db), &["--limit", "1"]));
    assert_eq!(limited.lines().count(), 2, "{limited}");
    assert!(limited.contains("abandoned_in_queue"), "{limited}");
}

#[test]
fn prints_json_keyed_by_column_names() {
    on_both("prints_json_keyed_by_column_names", prints_json);
}

fn prints_json(dir: &TempDir, db: &str) {
    prepare(db);
    let text = stdout(&calls(
        &config(dir, db),
        &["--json", "--since", "2026-11-29T12:00:00Z"],
    ));
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 2);
    let keys = sorted_keys(&rows[0]);
    let mut columns = [
        "id",
        "node_id",
        "trunk_call_id",
        "caller",
        "called",
        "original_called",
        "trunk",
        "received_at",
        "queued_at",
        "first_offered_at",
        "answered_at",
        "ended_at",
        "operator",
        "disposition",
        "ended_by",
        "caller_to_operator_packets",
        "operator_to_caller_packets",
        "incident_id",
        "category",
        "subcategory",
        "agencies",
    ];
    columns.sort_unstable();
    assert_eq!(keys, columns);
    let answered = &rows[1];
    assert_eq!(answered["id"], Uuid::from_u128(1).to_string());
    assert_eq!(answered["received_at"], "2026-11-29T12:01:05.123Z");
    assert_eq!(answered["answered_at"], "2026-11-29T12:01:17.463Z");
    assert_eq!(answered["caller"], "+6281234567890");
    assert_eq!(answered["original_called"], "110");
    assert_eq!(rows[0]["original_called"], serde_json::Value::Null);
    assert_eq!(
        answered["caller_to_operator_packets"],
        serde_json::Value::Null
    );
    assert_eq!(rows[0]["caller"], serde_json::Value::Null);

    // --since filters: only the later call is at or after 13:00.
    let later = stdout(&calls(
        &config(dir, db),
        &["--json", "--since", "2026-11-29 13:00"],
    ));
    let later: serde_json::Value = serde_json::from_str(&later).unwrap();
    assert_eq!(later.as_array().map(Vec::len), Some(1));
}

#[test]
fn follows_siaga_database_url_and_reports_what_is_missing() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("siaga.db");
    prepare(&format!("sqlite://{}", db.display()));
    let missing = dir.path().join("nothing/here.db");
    let config = sqlite_config(&dir, &missing);

    // The configured file does not exist: a one-line error, exit 1, nothing created.
    let out = calls(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no call records yet at"), "{stderr}");
    assert!(!missing.parent().unwrap().exists());

    // SIAGA_DATABASE_URL overrides the file, as for `siaga run`.
    let out = Command::new(SIAGA)
        .args(["calls", "--json", "--config"])
        .arg(&config)
        .env("SIAGA_DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2));

    // A PostgreSQL server that does not answer (nothing listens on 127.0.0.1:1): one
    // line, exit 1, no password; a --since not understood: one line, exit 2 (an argument
    // refused, as clap's errors).
    for (env, args, needle, code) in [
        (
            "postgres://u:pw@127.0.0.1:1/siaga",
            vec![],
            "cannot open the database postgres://u:***@127.0.0.1:1/siaga: ",
            1,
        ),
        ("sqlite://x.db", vec!["--since", "last week"], "--since", 2),
    ] {
        let out = Command::new(SIAGA)
            .args(["calls", "--config"])
            .arg(&config)
            .args(&args)
            .env("SIAGA_DATABASE_URL", env)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("pw"), "{stderr}");
    }
}

#[test]
fn an_empty_database_says_so() {
    on_both("an_empty_database_says_so", |dir, db| {
        let url = DatabaseUrl::parse(db).unwrap();
        runtime().block_on(async { Store::open(&url).await.unwrap().close().await });
        let config = config(dir, db);
        assert_eq!(stdout(&calls(&config, &[])), "no calls recorded\n");
        assert_eq!(stdout(&calls(&config, &["--json"])), "[]\n");
    });
}

/// `siaga migrate` on a database without siaga's tables applies and names every
/// migration; a second run applies none; `siaga calls` reads the result. Before it,
/// `siaga calls` says there are no records (SQLite: no file; PostgreSQL: no tables).
#[test]
fn migrate_applies_each_migration_once_and_says_which() {
    on_both(
        "migrate_applies_each_migration_once_and_says_which",
        |dir, db| {
            let config = config(dir, db);
            let out = calls(&config, &[]);
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.starts_with("siaga calls: no call records yet "),
                "{stderr}"
            );

            let first = stdout(&siaga("migrate", &config, &[]));
            let shown = DatabaseUrl::parse(db).unwrap().redacted();
            assert_eq!(
                first,
                format!(
                    "applied 0001 call records\napplied 0002 original called\n\
                 applied 0003 agent events\napplied 0004 incidents\n\
                 {shown}: 4 migration(s) applied\n"
                )
            );
            let second = stdout(&siaga("migrate", &config, &[]));
            assert_eq!(
                second,
                format!("{shown}: up to date, no migration to apply\n")
            );
            assert_eq!(stdout(&calls(&config, &[])), "no calls recorded\n");
        },
    );
}

// ---- siaga agents ---------------------------------------------------------------------

/// A database at `path` with the shift of two operators from T: op-3 logs in, its phone
/// rings for call 1 and is not answered, so it goes not ready (no_answer); op-4 logs in
/// and answers call 1; a day earlier op-3 logged out.
fn prepare_agents(url: &str) {
    let day = 86_400_000;
    let shift = [
        (
            "op-3",
            T - day,
            "available",
            "logged_out",
            Some("unregistered"),
            None,
        ),
        (
            "op-3",
            T,
            "logged_out",
            "available",
            Some("registered"),
            None,
        ),
        (
            "op-4",
            T + 50,
            "logged_out",
            "available",
            Some("registered"),
            None,
        ),
        ("op-3", T + 200, "available", "ringing", None, Some(1)),
        (
            "op-3",
            T + 15_200,
            "ringing",
            "not_ready",
            Some("no_answer"),
            Some(1),
        ),
        ("op-4", T + 15_300, "available", "ringing", None, Some(1)),
        ("op-4", T + 20_000, "ringing", "on_call", None, Some(1)),
    ];
    let events: Vec<AgentEvent> = (1..)
        .zip(shift)
        .map(|(n, (operator, at, from, to, reason, call))| AgentEvent {
            id: Uuid::from_u128(0xa9e0_0000 + n),
            operator: operator.to_owned(),
            at: UtcTime(at),
            from,
            to,
            reason: reason.map(str::to_owned),
            call: call.map(Uuid::from_u128),
        })
        .collect();
    write(url, &events);
}

#[test]
fn agents_prints_state_changes_oldest_first() {
    on_both("agents_prints_state_changes_oldest_first", agents_table);
}

fn agents_table(dir: &TempDir, db: &str) {
    prepare_agents(db);
    let config = config(dir, db);
    let text = stdout(&siaga("agents", &config, &["--since", "2026-11-29"]));
    let expected = "\
TIME (UTC)           OPERATOR  STATE                   REASON      CALL
2026-11-29 12:01:05  op-3      logged_out → available  registered  -
2026-11-29 12:01:05  op-4      logged_out → available  registered  -
2026-11-29 12:01:05  op-3      available → ringing     -           00000000-0000-0000-0000-000000000001
2026-11-29 12:01:20  op-3      ringing → not_ready     no_answer   00000000-0000-0000-0000-000000000001
2026-11-29 12:01:20  op-4      available → ringing     -           00000000-0000-0000-0000-000000000001
2026-11-29 12:01:25  op-4      ringing → on_call       -           00000000-0000-0000-0000-000000000001
";
    assert_eq!(text, expected);

    // One operator's, over the last two days: the logout of the day before too.
    let op3 = stdout(&siaga(
        "agents",
        &config,
        &["--operator", "op-3", "--since", "2026-11-28"],
    ));
    let lines: Vec<&str> = op3.lines().collect();
    assert_eq!(lines.len(), 5, "{op3}");
    assert!(
        lines[1].contains("available → logged_out  unregistered"),
        "{op3}"
    );
    assert!(lines[1..].iter().all(|l| l.contains("op-3")), "{op3}");

    // Nothing in the range: said so, naming the operator.
    let none = stdout(&siaga(
        "agents",
        &config,
        &["--operator", "op-4", "--since", "2026-11-29 12:02"],
    ));
    assert_eq!(
        none,
        "no agent events of op-4 since 2026-11-29T12:02:00.000Z\n"
    );
}

#[test]
fn agents_prints_json_keyed_by_column_names() {
    on_both("agents_prints_json_keyed_by_column_names", agents_json);
}

fn agents_json(dir: &TempDir, db: &str) {
    prepare_agents(db);
    let text = stdout(&siaga(
        "agents",
        &config(dir, db),
        &[
            "--json",
            "--operator",
            "op-3",
            "--since",
            "2026-11-29T12:01:06Z",
        ],
    ));
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(
        sorted_keys(&rows[0]),
        [
            "at",
            "call_id",
            "from_state",
            "id",
            "node_id",
            "operator",
            "reason",
            "seq",
            "to_state"
        ]
    );
    let row = &rows[0];
    assert_eq!(row["at"], "2026-11-29T12:01:20.323Z");
    assert_eq!(row["from_state"], "ringing");
    assert_eq!(row["to_state"], "not_ready");
    assert_eq!(row["reason"], "no_answer");
    assert_eq!(row["call_id"], Uuid::from_u128(1).to_string());
    assert_eq!(row["node_id"], "node-a");
}

#[test]
fn agents_reports_a_missing_database_and_a_bad_since() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nothing/here.db");
    let config = sqlite_config(&dir, &missing);
    for (args, needle, code) in [
        (vec![], "no call records yet at", 1),
        (vec!["--since", "last week"], "--since", 2),
    ] {
        let out = siaga("agents", &config, &args);
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("siaga agents: "), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    assert!(!missing.parent().unwrap().exists());
}

/// The arguments the API refuses are refused by the CLI too, before the database is
/// opened (the file here does not exist): exit 2 and one line naming the flag and the
/// problem. Nothing is clamped.
#[test]
fn calls_refuses_what_the_api_refuses() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nothing/here.db");
    let config = sqlite_config(&dir, &missing);
    for (command, args, message) in [
        (
            "calls",
            vec!["--limit", "0"],
            "siaga calls: --limit \"0\" is not a whole number 1–1000",
        ),
        (
            "calls",
            vec!["--limit", "1001"],
            "siaga calls: --limit \"1001\" is not a whole number 1–1000",
        ),
        (
            "calls",
            vec!["--limit=-5"],
            "siaga calls: --limit \"-5\" is not a whole number 1–1000",
        ),
        (
            "calls",
            vec!["--since", "2026-11-30", "--until", "2026-11-29"],
            "siaga calls: --until is not after --since",
        ),
        (
            "calls",
            vec!["--since", "now", "--until", "2h"],
            "siaga calls: --until is not after --since",
        ),
        (
            "export",
            vec!["--from", "2026-11-30", "--to", "2026-11-29"],
            "siaga export: --to is not after --from",
        ),
        (
            "export",
            vec!["--from", "now"],
            "siaga export: --to is not after --from",
        ),
        (
            "stats",
            vec!["--from", "1h", "--to", "2h"],
            "siaga stats: --to is not after --from",
        ),
        (
            "calls",
            vec!["--category", "flood"],
            "siaga calls: --category unknown category \"flood\"",
        ),
        (
            "calls",
            vec!["--disposition", "lost"],
            "siaga calls: --disposition is not a disposition; allowed: answered, abandoned_in_queue,",
        ),
        (
            "export",
            vec!["--from", "1day", "--agency", "army"],
            "siaga export: --agency unknown agency \"army\"",
        ),
        (
            "calls",
            vec!["--caller", ""],
            "siaga calls: --caller is empty",
        ),
        (
            "agents",
            vec!["--since", "tomorrow"],
            "siaga agents: --since \"tomorrow\" is neither",
        ),
    ] {
        let out = siaga(command, &config, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
    assert!(!missing.parent().unwrap().exists());
}

/// `now` is a time wherever the CLI takes one; `--since now` lists nothing (no call
/// received after now), `--until now` every call.
#[test]
fn now_is_a_time() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("siaga.db");
    prepare(&format!("sqlite://{}", db.display()));
    let config = sqlite_config(&dir, &db);
    let all = stdout(&siaga("calls", &config, &["--json", "--until", "now"]));
    let rows: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{all}");
    let none = stdout(&siaga("calls", &config, &["--since", "now"]));
    assert!(none.starts_with("no calls since "), "{none}");
    let agents = stdout(&siaga("agents", &config, &["--since", "now"]));
    assert!(agents.starts_with("no agent events since "), "{agents}");
}

/// A caller number holding a right-to-left override, an ANSI escape and a line break,
/// and a very long called URI: the table shows them cleaned (U+FFFD, cut with `…` at
/// `TABLE_CELL_MAX` characters) on one line, while `--json` gives the values exactly as
/// stored (the record is evidence), and the CSV export neutralises the bidi control.
#[test]
fn signalled_text_is_cleaned_for_display_only() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("siaga.db");
    let url = format!("sqlite://{}", db.display());
    let caller = "\u{202E}0987654321826+\u{1b}[2J\nX";
    let called = format!("sip:{}@x.test", "1".repeat(60));
    write(
        &url,
        &[ev(
            7,
            0,
            T,
            CallEventKind::Received {
                trunk_call_id: "hostile@telco".to_owned(),
                caller: Some(caller.to_owned()),
                called: called.clone(),
                original_called: None,
                trunk: "telco".to_owned(),
            },
        )],
    );
    let config = sqlite_config(&dir, &db);
    let table = stdout(&siaga("calls", &config, &[]));
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(!table.contains(['\u{202E}', '\u{1b}']), "{table}");
    assert!(
        table.contains("\u{FFFD}0987654321826+\u{FFFD}[2J\u{FFFD}X"),
        "{table}"
    );
    let cut: String = called
        .chars()
        .take(siaga::store::TABLE_CELL_MAX - 1)
        .collect();
    assert!(table.contains(&format!("{cut}…")), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&siaga("calls", &config, &["--json"]))).unwrap();
    assert_eq!(json[0]["caller"], caller);
    assert_eq!(json[0]["called"], called.as_str());
    let csv = stdout(&siaga("export", &config, &["--from", "2026-11-29"]));
    let line = csv.lines().nth(1).expect("the call");
    assert!(!csv.contains('\u{202E}'), "{csv}");
    assert!(line.contains("\u{FFFD}0987654321826+"), "{csv}");
}
