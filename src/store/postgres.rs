//! The PostgreSQL backend of [`super::Store`]: opening (creating the database when it is
//! missing and the user may, embedded migrations from `migrations/postgres/`), writing
//! event batches (call and agent events), and the read queries (calls, a call's timeline,
//! agent events, the callback worklist).
//!
//! It runs the SQLite backend's SQL text unchanged ([`super::sqlite`] keeps it to what
//! both accept); what differs is the binding: ids are PostgreSQL `UUID`s here, bound and
//! read as [`Uuid`], where SQLite stores their text. Times are BIGINT ms on both.
//!
//! A pool of [`MAX_CONNECTIONS`]: the writer's one transaction at a time, plus readers
//! (the callback worklist at start, later the API). Several nodes may share the database:
//! the migrator takes PostgreSQL's advisory lock, so two nodes starting together migrate
//! once.

use super::columns::{EventColumns, SummaryUpdate};
use super::sqlite::{
    AGENT_EVENTS, CALL_EVENTS, CALLBACK_CANDIDATES, EARLIER_EVENTS, INSERT_AGENT_EVENT,
    INSERT_CALL, INSERT_EVENT, OPEN_CALLS, OPERATOR_AGENT_EVENTS, RECENT_CALLS, RECENT_CALLS_SINCE,
    SET_ANSWERED, SET_ENDED, SET_MEDIA, SET_OFFERED, SET_QUEUED,
};
use super::worklist::{self, ABANDONED, CALLBACK_ENDED, CandidateRow};
use super::{AgentEventRow, CallRow, CallbackRow, EventRow, LogRef, Logged, Migrated, StoreError};
use crate::config::DatabaseUrl;
use crate::engine::UtcTime;
use crate::engine::record::{AgentEvent, CallEvent, CallEventKind};
use sqlx::migrate::{Migrate, MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// The migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 8;

/// How long a query waits for a pool connection, connecting included, before it fails
/// (while the database is down the writer retries; a short wait keeps it responsive).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLSTATE 3D000 `invalid_catalog_name`: the database does not exist.
const NO_SUCH_DATABASE: &str = "3D000";

/// SQLSTATE 42P04 `duplicate_database`: another node created it first.
const DATABASE_EXISTS: &str = "42P04";

#[derive(Clone, Debug)]
pub(super) struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects to the database `url` names (`create`: creating the database when it is
    /// missing), and checks that it can: one connection, so a wrong password or a refused
    /// connection is reported at once, with the server's reason. It does not migrate
    /// (see [`PgStore::migrate`]). Without `create`, a database whose tables were never
    /// created is [`StoreError::NoTables`].
    pub(super) async fn open(url: &DatabaseUrl, create: bool) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.redacted(),
            source,
        };
        let options = PgConnectOptions::from_str(url.as_str())
            .map_err(open_error)?
            .application_name("siaga");
        let mut probe = match PgConnection::connect_with(&options).await {
            Err(error) if create && sql_state(&error).as_deref() == Some(NO_SUCH_DATABASE) => {
                create_database(url).await.map_err(open_error)?;
                PgConnection::connect_with(&options)
                    .await
                    .map_err(open_error)?
            }
            other => other.map_err(open_error)?,
        };
        if !create {
            let tables: bool = sqlx::query_scalar("SELECT to_regclass('calls') IS NOT NULL")
                .fetch_one(&mut probe)
                .await
                .map_err(open_error)?;
            if !tables {
                return Err(StoreError::NoTables {
                    url: url.redacted(),
                });
            }
        }
        // A failed goodbye changes nothing: the pool makes its own connections.
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PgStore { pool })
    }

    /// Applies the migrations not applied yet and returns them, oldest first.
    ///
    /// The migrations table is only read here, not created: creating it is left to the
    /// migrator, under its advisory lock, so two nodes starting on a new database do not
    /// race on `CREATE TABLE IF NOT EXISTS`.
    pub(super) async fn migrate(&self) -> Result<Vec<Migrated>, sqlx::migrate::MigrateError> {
        let mut conn = self.pool.acquire().await?;
        let table_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(MIGRATOR.table_name.as_ref())
            .fetch_one(&mut *conn)
            .await?;
        let before = if table_exists {
            conn.list_applied_migrations(&MIGRATOR.table_name).await?
        } else {
            Vec::new()
        };
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
            .bind(call)
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

/// The SQLSTATE of a database error.
fn sql_state(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(error) => error.code().map(|code| code.into_owned()),
        _ => None,
    }
}

/// `CREATE DATABASE` through the server's maintenance database (`postgres`); one that
/// another node created meanwhile is fine.
async fn create_database(url: &DatabaseUrl) -> Result<(), sqlx::Error> {
    match Postgres::create_database(url.as_str()).await {
        Err(error) if sql_state(&error).as_deref() == Some(DATABASE_EXISTS) => Ok(()),
        other => other,
    }
}

// ---- writing (the SQL is the SQLite backend's) ----------------------------------------

async fn write_event(
    conn: &mut PgConnection,
    node_id: &str,
    event: &CallEvent,
) -> Result<(), StoreError> {
    let columns = EventColumns::of(event);
    let inserted = sqlx::query(INSERT_EVENT)
        .bind(event.id)
        .bind(event.call)
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
            .bind(event.call)
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
            .bind(event.call)
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
            apply(conn, event.call, update).await?;
        }
        return Ok(());
    }
    apply(conn, event.call, SummaryUpdate::of(event)).await
}

async fn write_agent_event(
    conn: &mut PgConnection,
    node_id: &str,
    event: &AgentEvent,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AGENT_EVENT)
        .bind(event.id)
        .bind(node_id)
        .bind(&event.operator)
        .bind(event.at.unix_millis())
        .bind(event.from)
        .bind(event.to)
        .bind(event.reason.as_deref())
        .bind(event.call)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Applies `update` to the summary row of `call` (none yet: no change).
async fn apply(
    conn: &mut PgConnection,
    call: Uuid,
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

fn time(row: &PgRow, name: &str) -> Result<Option<UtcTime>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(name)?.map(UtcTime))
}

fn count(row: &PgRow, column: &'static str, name: &str) -> Result<Option<u64>, StoreError> {
    match row.try_get::<Option<i64>, _>(name)? {
        None => Ok(None),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| StoreError::Corrupt {
            column,
            value: n.to_string(),
        }),
    }
}

pub(super) fn call_row(row: &PgRow) -> Result<CallRow, StoreError> {
    Ok(CallRow {
        id: row.try_get("id")?,
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

fn agent_event_row(row: &PgRow) -> Result<AgentEventRow, StoreError> {
    Ok(AgentEventRow {
        id: row.try_get("id")?,
        node_id: row.try_get("node_id")?,
        operator: row.try_get("operator")?,
        at: UtcTime(row.try_get("at")?),
        seq: row.try_get("seq")?,
        from_state: row.try_get("from_state")?,
        to_state: row.try_get("to_state")?,
        reason: row.try_get("reason")?,
        call_id: row.try_get("call_id")?,
    })
}

fn candidate_row(row: &PgRow) -> Result<CandidateRow, StoreError> {
    let callback = match row.try_get::<Option<Uuid>, _>("callback_id")? {
        None => None,
        Some(_) => Some(row.try_get("callback_detail")?),
    };
    Ok(CandidateRow {
        call: row.try_get("id")?,
        caller: row.try_get("caller")?,
        received_at: UtcTime(row.try_get("received_at")?),
        ended_at: time(row, "ended_at")?,
        disposition: row.try_get("disposition")?,
        callback,
    })
}

fn event_row(row: &PgRow) -> Result<EventRow, StoreError> {
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
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        node_id: row.try_get("node_id")?,
        seq: row.try_get("seq")?,
        at: UtcTime(row.try_get("at")?),
        kind: row.try_get("kind")?,
        operator: row.try_get("operator")?,
        detail,
    })
}
