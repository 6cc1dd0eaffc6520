//! The SQLite backend of [`super::Store`]: opening (file creation, pragmas, embedded
//! migrations from `migrations/sqlite/`), writing event batches (call and agent events),
//! and the read queries (calls, a call's timeline, agent events, the callback worklist).
//!
//! The SQL is written to be accepted by PostgreSQL too (`$N` parameters, `ON CONFLICT`,
//! `CASE`): [`super::postgres`] runs these same statements.

use super::columns::{EventColumns, SummaryUpdate};
use super::worklist::{self, ABANDONED, CALLBACK_ENDED, CandidateRow};
use super::{AgentEventRow, CallRow, CallbackRow, EventRow, LogRef, Logged, Migrated, StoreError};
use crate::config::DatabaseUrl;
use crate::engine::UtcTime;
use crate::engine::record::{AgentEvent, CallEvent, CallEventKind};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// The migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections in a file database's pool: one writer plus readers (WAL lets them read
/// while it writes).
const MAX_CONNECTIONS: u32 = 4;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub(super) struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// An in-memory database: empty at each open, so always migrated.
    pub(super) memory: bool,
}

/// Where a SQLite URL points.
enum Location {
    /// `sqlite::memory:` or `sqlite://:memory:` / `?mode=memory`: gone when the pool closes.
    Memory,
    /// A file.
    File,
}

impl SqliteStore {
    /// Opens (`create`: creating the directory and file) the database. It does not
    /// migrate (see [`SqliteStore::migrate`]).
    pub(super) async fn open(url: &DatabaseUrl, create: bool) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.redacted(),
            source,
        };
        let (options, location) = parse(url).map_err(open_error)?;
        let pool_options = match location {
            // One connection that never closes: the database lives as long as it does.
            Location::Memory => SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            Location::File => SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS),
        };
        let options = options.busy_timeout(BUSY_TIMEOUT);
        let options = match location {
            Location::Memory => options,
            Location::File if create => {
                create_parent(options.get_filename())?;
                options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
            }
            Location::File => {
                let path = options.get_filename();
                if !path.exists() {
                    return Err(StoreError::NoDatabase {
                        path: path.to_owned(),
                    });
                }
                options.create_if_missing(false)
            }
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Ok(SqliteStore {
            pool,
            memory: matches!(location, Location::Memory),
        })
    }

    /// Applies the migrations not applied yet and returns them, oldest first.
    pub(super) async fn migrate(&self) -> Result<Vec<Migrated>, sqlx::migrate::MigrateError> {
        let mut conn = self.pool.acquire().await?;
        conn.ensure_migrations_table(&MIGRATOR.table_name).await?;
        let before = conn.list_applied_migrations(&MIGRATOR.table_name).await?;
        drop(conn);
        MIGRATOR.run(&self.pool).await?;
        Ok(super::newly_applied(&MIGRATOR, &before))
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn write_batch<E: Logged>(
        &self,
        node_id: &str,
        events: &[E],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for event in events {
            match event.log_ref() {
                LogRef::Call(event) => write_event(&mut tx, node_id, event).await?,
                LogRef::Agent(event) => write_agent_event(&mut tx, node_id, event).await?,
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn recent_calls(
        &self,
        limit: u32,
        since: Option<UtcTime>,
    ) -> Result<Vec<CallRow>, StoreError> {
        let rows = match since {
            Some(since) => {
                sqlx::query(RECENT_CALLS_SINCE)
                    .bind(since.unix_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(RECENT_CALLS)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(call_row).collect()
    }

    pub(super) async fn open_calls(&self, node_id: &str) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(OPEN_CALLS)
            .bind(node_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_row).collect()
    }

    pub(super) async fn call_events(&self, call: Uuid) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(CALL_EVENTS)
            .bind(call.hyphenated().to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_row).collect()
    }

    pub(super) async fn agent_events(
        &self,
        operator: Option<&str>,
        from: UtcTime,
        to: UtcTime,
    ) -> Result<Vec<AgentEventRow>, StoreError> {
        let query = match operator {
            Some(operator) => sqlx::query(OPERATOR_AGENT_EVENTS).bind(operator),
            None => sqlx::query(AGENT_EVENTS),
        };
        let rows = query
            .bind(from.unix_millis())
            .bind(to.unix_millis())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_event_row).collect()
    }

    pub(super) async fn callback_worklist(
        &self,
        since: UtcTime,
    ) -> Result<Vec<CallbackRow>, StoreError> {
        let rows = sqlx::query(CALLBACK_CANDIDATES)
            .bind(since.unix_millis())
            .bind(ABANDONED[0])
            .bind(ABANDONED[1])
            .bind(CALLBACK_ENDED)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows
            .iter()
            .map(candidate_row)
            .collect::<Result<Vec<_>, _>>()?;
        worklist::fold(rows)
    }
}

/// The connect options of `url` (a `sqlite:` URL of any letter case, as
/// [`DatabaseUrl::parse`] accepts) and where it points.
fn parse(url: &DatabaseUrl) -> Result<(SqliteConnectOptions, Location), sqlx::Error> {
    let s = url.as_str();
    if s == "sqlite::memory:" {
        return Ok((SqliteConnectOptions::from_str(s)?, Location::Memory));
    }
    // `DatabaseUrl` guarantees a `sqlite://` prefix here, in any case.
    let rest = s.get("sqlite://".len()..).unwrap_or_default();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{rest}"))?;
    let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = database == ":memory:" || query.split('&').any(|p| p == "mode=memory");
    Ok((
        options,
        if memory {
            Location::Memory
        } else {
            Location::File
        },
    ))
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

// ---- writing --------------------------------------------------------------------------

/// Appends the event with the next `seq` of its call; a no-op when its id is stored.
pub(super) const INSERT_EVENT: &str = "\
    INSERT INTO call_events (id, call_id, node_id, seq, at, kind, operator, detail) \
    SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7 \
    FROM call_events WHERE call_id = $2 \
    ON CONFLICT (id) DO NOTHING";

pub(super) const INSERT_CALL: &str = "\
    INSERT INTO calls (id, node_id, trunk_call_id, caller, called, trunk, received_at, \
    original_called) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (id) DO NOTHING";

/// The call's other stored events, to complete a summary row created after them.
pub(super) const EARLIER_EVENTS: &str = "\
    SELECT kind, at, operator, detail FROM call_events \
    WHERE call_id = $1 AND kind <> 'received' ORDER BY seq";

pub(super) const SET_QUEUED: &str = "\
    UPDATE calls SET queued_at = $2 \
    WHERE id = $1 AND (queued_at IS NULL OR queued_at > $2)";

pub(super) const SET_OFFERED: &str = "\
    UPDATE calls SET first_offered_at = $2 \
    WHERE id = $1 AND (first_offered_at IS NULL OR first_offered_at > $2)";

pub(super) const SET_ANSWERED: &str = "\
    UPDATE calls SET answered_at = $2, operator = $3 \
    WHERE id = $1 AND (answered_at IS NULL OR answered_at > $2)";

pub(super) const SET_ENDED: &str = "\
    UPDATE calls SET ended_at = $2, ended_by = $3, disposition = $4 \
    WHERE id = $1 AND (ended_at IS NULL OR ended_at > $2)";

pub(super) const SET_MEDIA: &str = "\
    UPDATE calls SET \
    caller_to_operator_packets = CASE \
        WHEN caller_to_operator_packets IS NULL OR caller_to_operator_packets < $2 THEN $2 \
        ELSE caller_to_operator_packets END, \
    operator_to_caller_packets = CASE \
        WHEN operator_to_caller_packets IS NULL OR operator_to_caller_packets < $3 THEN $3 \
        ELSE operator_to_caller_packets END \
    WHERE id = $1";

async fn write_event(
    conn: &mut SqliteConnection,
    node_id: &str,
    event: &CallEvent,
) -> Result<(), StoreError> {
    let call = event.call.hyphenated().to_string();
    let columns = EventColumns::of(event);
    let inserted = sqlx::query(INSERT_EVENT)
        .bind(event.id.hyphenated().to_string())
        .bind(&call)
        .bind(node_id)
        .bind(event.at.unix_millis())
        .bind(columns.kind)
        .bind(columns.operator)
        .bind(columns.detail)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if inserted != 1 {
        return Ok(());
    }
    if let CallEventKind::Received {
        trunk_call_id,
        caller,
        called,
        original_called,
        trunk,
    } = &event.kind
    {
        sqlx::query(INSERT_CALL)
            .bind(&call)
            .bind(node_id)
            .bind(trunk_call_id)
            .bind(caller.as_deref())
            .bind(called)
            .bind(trunk)
            .bind(event.at.unix_millis())
            .bind(original_called.as_deref())
            .execute(&mut *conn)
            .await?;
        let earlier = sqlx::query(EARLIER_EVENTS)
            .bind(&call)
            .fetch_all(&mut *conn)
            .await?;
        for row in earlier {
            let detail: Option<String> = row.try_get("detail")?;
            let update = SummaryUpdate::of_stored(
                row.try_get::<&str, _>("kind")?,
                row.try_get("at")?,
                row.try_get("operator")?,
                detail.as_deref(),
            );
            apply(conn, &call, update).await?;
        }
        return Ok(());
    }
    apply(conn, &call, SummaryUpdate::of(event)).await
}

/// Appends an agent event with the next `seq` of its operator's events at its `at`; a
/// no-op when its id is stored. (The `seq` lookup is a range of the (operator, at, seq)
/// index, not a scan of the operator's history.)
pub(super) const INSERT_AGENT_EVENT: &str = "\
    INSERT INTO agent_events (id, node_id, operator, at, seq, from_state, to_state, reason, \
    call_id) \
    SELECT $1, $2, $3, $4, COALESCE(MAX(seq), 0) + 1, $5, $6, $7, $8 \
    FROM agent_events WHERE operator = $3 AND at = $4 \
    ON CONFLICT (id) DO NOTHING";

async fn write_agent_event(
    conn: &mut SqliteConnection,
    node_id: &str,
    event: &AgentEvent,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AGENT_EVENT)
        .bind(event.id.hyphenated().to_string())
        .bind(node_id)
        .bind(&event.operator)
        .bind(event.at.unix_millis())
        .bind(event.from)
        .bind(event.to)
        .bind(event.reason.as_deref())
        .bind(event.call.map(|call| call.hyphenated().to_string()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Applies `update` to the summary row of `call` (none yet: no change).
async fn apply(
    conn: &mut SqliteConnection,
    call: &str,
    update: SummaryUpdate,
) -> Result<(), StoreError> {
    let query = match update {
        SummaryUpdate::Nothing => return Ok(()),
        SummaryUpdate::Queued { at } => sqlx::query(SET_QUEUED).bind(call).bind(at),
        SummaryUpdate::Offered { at } => sqlx::query(SET_OFFERED).bind(call).bind(at),
        SummaryUpdate::Answered { at, operator } => {
            sqlx::query(SET_ANSWERED).bind(call).bind(at).bind(operator)
        }
        SummaryUpdate::Ended {
            at,
            by,
            disposition,
        } => sqlx::query(SET_ENDED)
            .bind(call)
            .bind(at)
            .bind(by)
            .bind(disposition),
        SummaryUpdate::Media {
            caller_to_operator,
            operator_to_caller,
        } => sqlx::query(SET_MEDIA)
            .bind(call)
            .bind(caller_to_operator)
            .bind(operator_to_caller),
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

// ---- reading --------------------------------------------------------------------------

/// The columns of `calls`, in [`CallRow`]'s order (a macro so `concat!` can use it).
macro_rules! call_columns {
    () => {
        "id, node_id, trunk_call_id, caller, called, trunk, received_at, queued_at, \
         first_offered_at, answered_at, ended_at, operator, disposition, ended_by, \
         caller_to_operator_packets, operator_to_caller_packets, original_called"
    };
}

pub(super) const RECENT_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls ORDER BY received_at DESC, id DESC LIMIT $1"
);

pub(super) const RECENT_CALLS_SINCE: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE received_at >= $1 ORDER BY received_at DESC, id DESC LIMIT $2"
);

/// This node's calls that have no end yet (no `ended` event), oldest first.
pub(super) const OPEN_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE node_id = $1 AND ended_at IS NULL ORDER BY received_at, id"
);

pub(super) const CALL_EVENTS: &str = "\
    SELECT id, call_id, node_id, seq, at, kind, operator, detail FROM call_events \
    WHERE call_id = $1 ORDER BY at, seq";

/// The columns of `agent_events`, in [`AgentEventRow`]'s order.
macro_rules! agent_event_columns {
    () => {
        "id, node_id, operator, at, seq, from_state, to_state, reason, call_id"
    };
}

pub(super) const AGENT_EVENTS: &str = concat!(
    "SELECT ",
    agent_event_columns!(),
    " FROM agent_events WHERE at >= $1 AND at < $2 ORDER BY at, operator, seq"
);

pub(super) const OPERATOR_AGENT_EVENTS: &str = concat!(
    "SELECT ",
    agent_event_columns!(),
    " FROM agent_events WHERE operator = $1 AND at >= $2 AND at < $3 ORDER BY at, seq"
);

/// The callback worklist's candidates (see [`worklist`]): abandoned calls ($2, $3) since
/// $1 with a known caller whom no later answered call reached, each joined with its
/// `callback_ended` ($4) events, if any; a call's rows adjacent, oldest call first.
pub(super) const CALLBACK_CANDIDATES: &str = "\
    SELECT c.id, c.caller, c.received_at, c.ended_at, c.disposition, \
    e.id AS callback_id, e.detail AS callback_detail \
    FROM calls c \
    LEFT JOIN call_events e ON e.call_id = c.id AND e.kind = $4 \
    WHERE c.received_at >= $1 \
    AND c.disposition IN ($2, $3) \
    AND c.caller IS NOT NULL \
    AND NOT EXISTS ( \
        SELECT 1 FROM calls later \
        WHERE later.caller = c.caller \
        AND later.received_at > c.received_at \
        AND later.answered_at IS NOT NULL) \
    ORDER BY c.received_at, c.id, e.seq";

fn uuid(row: &SqliteRow, column: &'static str, name: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(name)?;
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt {
        column,
        value: text,
    })
}

fn time(row: &SqliteRow, name: &str) -> Result<Option<UtcTime>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(name)?.map(UtcTime))
}

fn count(row: &SqliteRow, column: &'static str, name: &str) -> Result<Option<u64>, StoreError> {
    match row.try_get::<Option<i64>, _>(name)? {
        None => Ok(None),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| StoreError::Corrupt {
            column,
            value: n.to_string(),
        }),
    }
}

pub(super) fn call_row(row: &SqliteRow) -> Result<CallRow, StoreError> {
    Ok(CallRow {
        id: uuid(row, "calls.id", "id")?,
        node_id: row.try_get("node_id")?,
        trunk_call_id: row.try_get("trunk_call_id")?,
        caller: row.try_get("caller")?,
        called: row.try_get("called")?,
        original_called: row.try_get("original_called")?,
        trunk: row.try_get("trunk")?,
        received_at: UtcTime(row.try_get("received_at")?),
        queued_at: time(row, "queued_at")?,
        first_offered_at: time(row, "first_offered_at")?,
        answered_at: time(row, "answered_at")?,
        ended_at: time(row, "ended_at")?,
        operator: row.try_get("operator")?,
        disposition: row.try_get("disposition")?,
        ended_by: row.try_get("ended_by")?,
        caller_to_operator_packets: count(
            row,
            "calls.caller_to_operator_packets",
            "caller_to_operator_packets",
        )?,
        operator_to_caller_packets: count(
            row,
            "calls.operator_to_caller_packets",
            "operator_to_caller_packets",
        )?,
    })
}

fn agent_event_row(row: &SqliteRow) -> Result<AgentEventRow, StoreError> {
    let call_id = match row.try_get::<Option<String>, _>("call_id")? {
        None => None,
        Some(text) => Some(Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt {
            column: "agent_events.call_id",
            value: text,
        })?),
    };
    Ok(AgentEventRow {
        id: uuid(row, "agent_events.id", "id")?,
        node_id: row.try_get("node_id")?,
        operator: row.try_get("operator")?,
        at: UtcTime(row.try_get("at")?),
        seq: row.try_get("seq")?,
        from_state: row.try_get("from_state")?,
        to_state: row.try_get("to_state")?,
        reason: row.try_get("reason")?,
        call_id,
    })
}

fn candidate_row(row: &SqliteRow) -> Result<CandidateRow, StoreError> {
    let callback = match row.try_get::<Option<String>, _>("callback_id")? {
        None => None,
        Some(_) => Some(row.try_get("callback_detail")?),
    };
    Ok(CandidateRow {
        call: uuid(row, "calls.id", "id")?,
        caller: row.try_get("caller")?,
        received_at: UtcTime(row.try_get("received_at")?),
        ended_at: time(row, "ended_at")?,
        disposition: row.try_get("disposition")?,
        callback,
    })
}

fn event_row(row: &SqliteRow) -> Result<EventRow, StoreError> {
    let detail = match row.try_get::<Option<String>, _>("detail")? {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
                column: "call_events.detail",
                value: text,
            })?,
        ),
    };
    Ok(EventRow {
        id: uuid(row, "call_events.id", "id")?,
        call_id: uuid(row, "call_events.call_id", "call_id")?,
        node_id: row.try_get("node_id")?,
        seq: row.try_get("seq")?,
        at: UtcTime(row.try_get("at")?),
        kind: row.try_get("kind")?,
        operator: row.try_get("operator")?,
        detail,
    })
}
