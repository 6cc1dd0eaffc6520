//! The call record store: siaga's durable record of every 112 call (DESIGN.md, "Store").
//!
//! It owns six tables, on SQLite or PostgreSQL alike (`migrations/sqlite/` and
//! `migrations/postgres/`, both embedded in the binary, applied by [`Store::open`] and by
//! `siaga migrate` through [`Store::migrate`]):
//! - `call_events`: the append-only log of
//!   [`CallEvent`](crate::engine::record::CallEvent)s, the source of truth. An event's
//!   UUID is its primary key, so writing an event twice is a no-op.
//! - `calls`: one summary row per call ([`CallRow`]), updated in the same transaction as
//!   each event is appended. The update is order-insensitive (earliest time wins, highest
//!   packet count wins), and a call's row is completed from the log when its `received`
//!   event is written after its other events.
//! - `agent_events`: the append-only log of every operator's ACD state transitions
//!   ([`AgentEvent`](crate::engine::record::AgentEvent), read as [`AgentEventRow`]);
//!   idempotent by event id like `call_events`.
//! - `incidents`, `incident_calls` and `handoffs` (schema 4): what the operator classified
//!   a call as ([`Incident`]: category, subcategory, location, position, caller name,
//!   notes), the calls of each incident (a call belongs to at most one), and each handoff
//!   to a field agency ([`Handoff`]). Written by the API through [`Store::create_incident`],
//!   [`Store::update_incident`], [`Store::link_call`], [`Store::add_handoff`] and
//!   [`Store::update_handoff`], which take only inputs parsed against the configuration
//!   ([`Classification`], [`AgencyId`], [`Position`]; errors as [`InputError`], listing the
//!   allowed values) and answer [`StoreError::NotFound`] for an unknown call, incident or
//!   handoff (the API's 404) and [`StoreError::AlreadyLinked`] (409).
//!
//! Besides the call log ([`Store::recent_calls`], [`Store::call_events`]) it answers the
//! supervisor's search of the log ([`Store::search_calls`]: by time range, category,
//! disposition, operator, caller, agency and text in notes, newest first, keyset pages),
//! a call's detail ([`Store::call_detail`]: timeline, incident, handoffs), a period's
//! statistics ([`Store::statistics`]), the CSV export ([`export_csv`]), the supervisor's
//! agent history ([`Store::agent_events`]) and the RFC 7090 callback worklist as rebuilt
//! after a restart ([`Store::callback_worklist`]). Queries take user input as bound
//! parameters only.
//!
//! Timestamps are stored as BIGINT milliseconds since the Unix epoch, UTC (the engine's
//! [`UtcTime`]) on both backends; ids are UUIDs, in PostgreSQL's `UUID` type and as
//! lower-case hyphenated TEXT on SQLite (which has no UUID type; the text orders as the
//! UUIDs do); `node_id` is the writing node's `node.id`, so several nodes can share one
//! database. Text output (JSON, tables) renders times as RFC 3339 UTC
//! ([`rfc3339_millis`]).
//!
//! Writing never blocks the engine: [`spawn_writer`] gives the engine an [`EventSink`]
//! (a bounded queue plus an in-memory backlog when it is full) and runs a writer task that
//! batches call and agent events ([`LogEvent`]) into transactions. When the database is
//! unreachable or slow (a batch not committed within [`SLOW_COMMIT`]) events go to a
//! local [`Journal`] file (`database.journal`, fsync per batch) and are replayed in order
//! once it answers; see [`writer`'s docs](spawn_writer_with) for the overload behaviour.
//! At start the writer's first database action is start-up recovery
//! ([`WriterOptions::start_up`]): it replays a journal left by the previous process and
//! closes the calls it left open (`interrupted`), whenever the database first answers;
//! with PostgreSQL down at start siaga runs on the journal meanwhile
//! ([`Store::open_or_defer`]; a SQLite file that cannot be opened stays fatal: that is a
//! disk or configuration problem, not an outage).
//!
//! Wiring, in the runtime:
//!
//! ```no_run
//! # async fn wire(config: &siaga::config::Config) -> Result<(), siaga::store::StoreError> {
//! use siaga::store::{self, Store};
//! let journal = match &config.database.journal {
//!     Some(path) => Some(store::Journal::open(path).await.expect("journal")),
//!     None => None,
//! };
//! // Creates and migrates; with a journal, a PostgreSQL that does not answer is waited for.
//! let store = Store::open_or_defer(&config.database.url, journal.is_some()).await?;
//! let node = config.node.id.to_string();
//! // The writer's first database action: the previous process's journal, then the calls
//! // it left open; `caught_up` resolves once that is done and the journal is empty.
//! let rng = rand::SeedableRng::from_os_rng();
//! let (start_up, caught_up) = store::StartUp::new(rng);
//! let options = store::WriterOptions {
//!     journal,
//!     start_up: Some(start_up),
//!     ..store::WriterOptions::default()
//! };
//! let (mut sink, writer) = store::spawn_writer_with(store.clone(), node, options);
//! // In the engine task: `sink.push(event)` for each call event and agent event the
//! // engine outputs, and `sink.flush_pending()` on each turn of the loop.
//! # let event: siaga::engine::record::CallEvent = todo!();
//! sink.push(event);
//! sink.flush_pending();
//! // Graceful stop, after the engine task has finished:
//! sink.close().await; // or drop(sink)
//! let report = writer.shutdown().await; // everything handed over is committed or journaled
//! store.close().await;
//! # let _ = (report, caught_up); Ok(())
//! # }
//! ```
//!
//! Backends, chosen by `database.url` (or `SIAGA_DATABASE_URL`): SQLite (`sqlite://PATH`,
//! `sqlite::memory:`; the default, one file, nothing to install) and PostgreSQL
//! (`postgres://USER:PASSWORD@HOST:PORT/DB` or `postgresql://…`, for production and for
//! several nodes sharing one database). Both sit behind this one [`Store`] type and run
//! the same SQL text, kept to what both accept (`$N` parameters, `ON CONFLICT … DO
//! NOTHING`, `CASE`, BIGINT and TEXT); they differ in connection handling and in how ids
//! are bound (text on SQLite, `UUID` on PostgreSQL; the event log's operations are
//! written once for both in `log_ops.rs`, the incident, search and statistics ones in
//! `backend_ops.rs`). The store tests run every
//! case on both (PostgreSQL from `SIAGA_TEST_POSTGRES_URL`, see `sip-tests/test.sh`).

mod backend_ops;
mod columns;
mod display;
mod error_class;
mod export;
mod incident_input;
mod incidents;
mod journal;
mod log;
mod log_ops;
mod postgres;
mod query_input;
mod recovery;
mod search;
mod sqlite;
mod stats;
mod table;
mod time_text;
mod worklist;
mod writer;

#[cfg(test)]
mod test_pg;
#[cfg(test)]
mod tests;

pub use display::{REPLACEMENT, TABLE_CELL_MAX, for_table, is_bidi_control, without_bidi_controls};
pub use error_class::{Failure, classify};
pub use export::{CSV_COLUMNS, ExportError, csv_record, export_csv};
pub use incident_input::{
    AgencyId, CALLER_NAME_MAX, Classification, HandoffMethod, InputError, LOCATION_MAX, NOTES_MAX,
    OUTCOME_MAX, Position, REFERENCE_MAX,
};
pub use incidents::{
    Handoff, HandoffUpdate, Incident, IncidentDetails, IncidentUpdate, NewHandoff, NewIncident,
};
pub use journal::{Chunk, Damage, Journal, JournalError, damaged_path, quarantined_path};
pub use log::{LogEvent, LogRef, Logged};
pub use query_input::{QueryError, check_period, parse_limit, parse_time};
pub use recovery::{Recovery, RecoveryError, close_left_open, last_state, recover};
pub use search::{CallDetail, CallFilter, CallLogRow, CallPage, Cursor, CursorError, MAX_PAGE};
pub use stats::{ANSWER_THRESHOLDS_MS, AnswerTimes, OperatorStats, Statistics, WithinThreshold};
pub use table::{agents_table, call_log_table, calls_table};
pub use time_text::{SinceError, parse_since, rfc3339_millis, table_time};
pub use worklist::CallbackRow;
pub use writer::{
    EventSink, GATHER, QUEUE_CAPACITY, SHUTDOWN_GRACE, SLOW_COMMIT, StartUp, WriterHandle,
    WriterOptions, WriterReport, spawn_writer, spawn_writer_with,
};

use crate::config::{DatabaseKind, DatabaseUrl};
use crate::engine::UtcTime;
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// Most events the writer puts in one transaction.
pub const MAX_BATCH: usize = 256;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// [`Store::open_existing`] found no database file: nothing was recorded yet.
    #[error("no call records yet at {} (siaga run creates the database)", path.display())]
    NoDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// [`Store::open_existing`] found a PostgreSQL database without siaga's tables.
    #[error("no call records yet in {url} (siaga run or siaga migrate creates the tables)")]
    NoTables {
        /// The URL, password hidden.
        url: String,
    },
    /// The directory that should hold the database file could not be created.
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("cannot open the database {url}: {source}")]
    Open {
        /// The URL, password hidden.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied (e.g. the database was migrated by a
    /// newer siaga).
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        /// The URL, password hidden.
        url: String,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed (the database is unavailable, locked, full …).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The call, incident or handoff asked for is not recorded (the API answers 404).
    #[error("no {what} {id}")]
    NotFound {
        /// `call`, `incident` or `handoff`.
        what: &'static str,
        /// Its id.
        id: Uuid,
    },
    /// The call belongs to another incident already: a call belongs to at most one (the
    /// API answers 409).
    #[error("call {call} belongs to incident {incident} already")]
    AlreadyLinked {
        /// The call.
        call: Uuid,
        /// The incident it belongs to.
        incident: Uuid,
    },
    /// An input the store refuses (a text too long, a handoff acknowledged before it was
    /// made …; the API answers 422 naming [`InputError::field`]).
    #[error(transparent)]
    Invalid(#[from] InputError),
    /// The database has not answered since siaga started on its journal
    /// ([`Store::open_or_defer`]): migrations and start-up recovery are still to come.
    #[error(
        "the database {url} has not answered since siaga started; call records go to the journal meanwhile"
    )]
    NotAnswered {
        /// The URL, password hidden.
        url: String,
    },
    /// A stored value this version cannot read (e.g. an id that is not a UUID).
    #[error("unreadable value in {column}: {value:?}")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        /// The value as stored.
        value: String,
    },
}

/// The call record store: a connection pool to one database. Cheap to clone (clones share
/// the pool).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The URL, password hidden, for error messages.
    url: String,
    /// Whether the database answered and is migrated: set at open, or for a store opened
    /// on the journal ([`Store::open_or_defer`]) by the first [`Store::migrate`] that
    /// succeeds. Shared by the clones.
    answered: Arc<AtomicBool>,
}

/// The two backends: the same operations, the same SQL, each with its own connection
/// types. An enum rather than a trait object: the set is closed, and the writer's
/// futures stay `Send` without boxing.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// A migration [`Store::migrate`] applied: `migrations/<backend>/<version>_<name>.sql`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The version, the file name's number (1, 2, 3 …).
    pub version: i64,
    /// What it does, from the file name (`call records`).
    pub description: String,
}

/// The up-migrations of `migrator` not in `before` (the applied ones read before running
/// it), oldest first.
fn newly_applied(
    migrator: &sqlx::migrate::Migrator,
    before: &[sqlx::migrate::AppliedMigration],
) -> Vec<Migrated> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .filter(|m| before.iter().all(|applied| applied.version != m.version))
        .map(|m| Migrated {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

impl Store {
    /// Opens the database `url` names, creating it when missing, and applies the embedded
    /// migrations ([`Store::migrate`]). For `sqlite://PATH` the parent directory and the
    /// file are created (a relative PATH is relative to the working directory); the file
    /// is put in WAL mode with `synchronous = FULL` (a committed record survives a power
    /// cut). For `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` a missing DB is created
    /// (`CREATE DATABASE`, when the user may; otherwise create it beforehand); the
    /// connection is checked at once.
    ///
    /// Errors: [`StoreError::CreateDir`], [`StoreError::Open`], [`StoreError::Migrate`].
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        Self::open_with(url, true, true).await
    }

    /// [`Store::open`] without migrating: creates the database (file) when missing and
    /// connects, for `siaga migrate`, which then calls [`Store::migrate`] to report what
    /// it applies.
    ///
    /// Errors: as [`Store::open`], [`StoreError::Migrate`] aside.
    pub async fn open_unmigrated(url: &DatabaseUrl) -> Result<Store, StoreError> {
        Self::open_with(url, true, false).await
    }

    /// Opens an existing database to read it, creating and migrating nothing (for
    /// `siaga calls`: reading records must not leave an empty database behind).
    ///
    /// Errors: [`StoreError::NoDatabase`] when the SQLite file does not exist,
    /// [`StoreError::NoTables`] when the PostgreSQL database has no `calls` table;
    /// otherwise as [`Store::open`].
    pub async fn open_existing(url: &DatabaseUrl) -> Result<Store, StoreError> {
        Self::open_with(url, false, false).await
    }

    /// Opens (`create`: creating the database when missing) and, when `migrate`, migrates.
    /// An in-memory SQLite database opened to read is migrated too: it is new and empty.
    async fn open_with(
        url: &DatabaseUrl,
        create: bool,
        migrate: bool,
    ) -> Result<Store, StoreError> {
        let backend = match url.kind() {
            DatabaseKind::Sqlite => Backend::Sqlite(sqlite::SqliteStore::open(url, create).await?),
            DatabaseKind::Postgres => {
                Backend::Postgres(postgres::PgStore::open(url, create).await?)
            }
        };
        let store = Store {
            backend,
            url: url.redacted(),
            answered: Arc::new(AtomicBool::new(true)),
        };
        let memory = matches!(&store.backend, Backend::Sqlite(s) if s.memory);
        if migrate || (memory && !create) {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// [`Store::open`], except that when `journal` is true (`database.journal` is set) and
    /// a PostgreSQL server cannot be reached ([`StoreError::is_unreachable`]: connection
    /// refused or timed out, the server starting up or out of connection slots), it
    /// returns a store whose pool connects when first used, not migrated: `siaga run`
    /// then takes calls on its journal, and the writer migrates and recovers once the
    /// database answers ([`WriterOptions::start_up`]). Until then [`Store::ping`] fails
    /// with [`StoreError::NotAnswered`] and [`Store::is_answered`] is false.
    ///
    /// Not deferred, because waiting would not mend them: a configuration error (a wrong
    /// password, a URL the driver refuses), and any error of SQLite, a local file (a
    /// directory that cannot be created, a full or read-only disk). Without a journal
    /// nothing would keep the records, so an unreachable database is an error too.
    ///
    /// Errors: as [`Store::open`].
    pub async fn open_or_defer(url: &DatabaseUrl, journal: bool) -> Result<Store, StoreError> {
        match Self::open(url).await {
            Err(error)
                if journal && url.kind() == DatabaseKind::Postgres && error.is_unreachable() =>
            {
                tracing::warn!(
                    %error,
                    "the database does not answer: starting on the journal; migrations and \
                     start-up recovery run once it answers"
                );
                Self::on_journal(url)
            }
            other => other,
        }
    }

    /// A PostgreSQL store whose pool connects when first used, not migrated and not
    /// answered yet (see [`Store::open_or_defer`]).
    fn on_journal(url: &DatabaseUrl) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(postgres::PgStore::open_lazy(url)?),
            url: url.redacted(),
            answered: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the database has answered: false only for a store [`Store::open_or_defer`]
    /// opened on the journal, until its first successful [`Store::migrate`].
    pub fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// Applies the embedded migrations (`migrations/sqlite/` or `migrations/postgres/`)
    /// that the database has not had yet, in version order, each in its own transaction,
    /// and returns those it applied (empty when it was up to date). On PostgreSQL it holds
    /// an advisory lock meanwhile, so nodes starting together migrate once; a migration
    /// another process applied in the same moment may be listed too. [`Store::open`]
    /// calls it; `siaga migrate` calls it to report.
    ///
    /// Errors: [`StoreError::Migrate`] (unreachable, or migrated by a newer siaga: a
    /// version this one does not know, or a changed migration).
    pub async fn migrate(&self) -> Result<Vec<Migrated>, StoreError> {
        let result = match &self.backend {
            Backend::Sqlite(s) => s.migrate().await,
            Backend::Postgres(s) => s.migrate().await,
        };
        let migrated = result.map_err(|source| StoreError::Migrate {
            url: self.url.clone(),
            source,
        })?;
        self.answered.store(true, Ordering::Release);
        Ok(migrated)
    }

    /// Appends `events` (call events, agent events, or both as [`LogEvent`]s) to their logs
    /// in one transaction, in the order given, as written by node `node_id`, and applies
    /// each newly written call event to its call's summary row. An event whose id is
    /// already stored is skipped (neither stored nor applied again). On error nothing of
    /// the batch is written.
    ///
    /// Errors: [`StoreError::Database`].
    pub async fn write_batch<E: Logged>(
        &self,
        node_id: &str,
        events: &[E],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.write_batch(node_id, events).await,
            Backend::Postgres(s) => s.write_batch(node_id, events).await,
        }
    }

    /// Up to `limit` calls, newest (`received_at`) first; only those received at or after
    /// `since` when given.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn recent_calls(
        &self,
        limit: u32,
        since: Option<UtcTime>,
    ) -> Result<Vec<CallRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.recent_calls(limit, since).await,
            Backend::Postgres(s) => s.recent_calls(limit, since).await,
        }
    }

    /// The calls of node `node_id` that have not ended (no `ended` event stored), oldest
    /// (`received_at`) first: at start, the calls a previous process of this node left
    /// open when it died ([`recover`]).
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn open_calls(&self, node_id: &str) -> Result<Vec<CallRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.open_calls(node_id).await,
            Backend::Postgres(s) => s.open_calls(node_id).await,
        }
    }

    /// The stored events of `call`, in the order they happened (`at`, then `seq`). Empty
    /// when the call is unknown.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn call_events(&self, call: Uuid) -> Result<Vec<EventRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.call_events(call).await,
            Backend::Postgres(s) => s.call_events(call).await,
        }
    }

    /// The agent events written with `from <= at < to` (ms UTC), of `operator` only when
    /// given, oldest first: by `at`, then (within one millisecond) by operator and the
    /// order the operator's events were written.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn agent_events(
        &self,
        operator: Option<&str>,
        from: UtcTime,
        to: UtcTime,
    ) -> Result<Vec<AgentEventRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.agent_events(operator, from, to).await,
            Backend::Postgres(s) => s.agent_events(operator, from, to).await,
        }
    }

    /// Each operator's latest agent event written by node `node_id` (the latest `at`, then
    /// `seq`), ordered by operator: at start, the state a previous process of this node
    /// left each operator in ([`recover`]). Events other nodes wrote are not read.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn last_agent_events(&self, node_id: &str) -> Result<Vec<AgentEventRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.last_agent_events(node_id).await,
            Backend::Postgres(s) => s.last_agent_events(node_id).await,
        }
    }

    /// The callback worklist (RFC 7090) as the log has it, to rebuild it after a restart:
    /// the calls received at or after `since` that were abandoned (in queue or while
    /// ringing) by a caller whose number is known, and are still open: no callback of
    /// the call was answered, and the same caller has not got through since (no later
    /// call of the same number was answered). Oldest (`received_at`) first. See
    /// [`CallbackRow`].
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn callback_worklist(&self, since: UtcTime) -> Result<Vec<CallbackRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.callback_worklist(since).await,
            Backend::Postgres(s) => s.callback_worklist(since).await,
        }
    }

    /// Checks that the database answers: `SELECT 1` on a connection of the pool (for
    /// `/readyz`). It reads no table, so it costs one round trip and holds no lock.
    ///
    /// Errors: [`StoreError::NotAnswered`] while a store opened on the journal has not
    /// been migrated yet ([`Store::open_or_defer`]); [`StoreError::Database`] (no
    /// connection within the pool's acquire timeout, or the query failed).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if !self.is_answered() {
            return Err(StoreError::NotAnswered {
                url: self.url.clone(),
            });
        }
        self.select_one().await
    }

    /// `SELECT 1`, whether or not the database has answered before (the writer's probe
    /// before it migrates a store opened on the journal).
    ///
    /// Errors: [`StoreError::Database`].
    pub(crate) async fn select_one(&self) -> Result<(), StoreError> {
        const PING: &str = "SELECT 1";
        match &self.backend {
            Backend::Sqlite(s) => sqlx::query(PING).execute(&s.pool).await.map(drop),
            Backend::Postgres(s) => s.select_one().await,
        }
        .map_err(StoreError::Database)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}

/// A row of `calls`: one call's summary. Serializes (serde) to an object whose keys are
/// the column names, with times as RFC 3339 UTC strings with milliseconds
/// (`"2026-11-29T12:01:05.123Z"`) and `null` for what is unset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallRow {
    /// `id`: the call's UUID.
    pub id: Uuid,
    /// `node_id`: the node that took the call.
    pub node_id: String,
    /// `trunk_call_id`: the trunk leg's SIP Call-ID.
    pub trunk_call_id: String,
    /// `caller`: the caller's number (ANI), `None` when withheld. Personal data.
    /// Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub caller: Option<String>,
    /// `called`: the number or URN dialled. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub called: String,
    /// `original_called`: the number first dialled, when the call arrived diverted or
    /// retargeted (History-Info, Diversion); `None` otherwise. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub original_called: Option<String>,
    /// `trunk`: which trunk delivered the call.
    pub trunk: String,
    /// `received_at`: the trunk's INVITE arrived.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: UtcTime,
    /// `queued_at`: first entered the ACD queue.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<UtcTime>,
    /// `first_offered_at`: the first operator phone was rung.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_offered_at: Option<UtcTime>,
    /// `answered_at`: an operator answered.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<UtcTime>,
    /// `ended_at`: the call ended.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<UtcTime>,
    /// `operator`: who answered.
    pub operator: Option<String>,
    /// `disposition`: the outcome (`answered`, `abandoned_in_queue`, … an open set: see
    /// [`crate::engine::record::Disposition`]), set when the call ends.
    pub disposition: Option<String>,
    /// `ended_by`: `caller`, `operator` or `siaga`.
    pub ended_by: Option<String>,
    /// `caller_to_operator_packets`: RTP packets relayed from the caller.
    pub caller_to_operator_packets: Option<u64>,
    /// `operator_to_caller_packets`: RTP packets relayed to the caller.
    pub operator_to_caller_packets: Option<u64>,
}

impl CallRow {
    /// How long the caller waited, in ms: until answered, else until the end; `None` while
    /// neither happened.
    pub fn wait_ms(&self) -> Option<i64> {
        let until = self.answered_at.or(self.ended_at)?;
        Some(until.unix_millis() - self.received_at.unix_millis())
    }

    /// How long the caller talked with the operator, in ms (end minus answer); `None`
    /// unless both happened.
    pub fn talk_ms(&self) -> Option<i64> {
        Some(self.ended_at?.unix_millis() - self.answered_at?.unix_millis())
    }
}

/// A row of `call_events`: one stored event. Serializes like [`CallRow`] (column names,
/// RFC 3339 time); `detail` as the JSON object it holds.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// `id`: the event's UUID.
    pub id: Uuid,
    /// `call_id`: the call's UUID.
    pub call_id: Uuid,
    /// `node_id`: the node that wrote it.
    pub node_id: String,
    /// `seq`: 1, 2, 3 … in the order the call's events were written.
    pub seq: i64,
    /// `at`: when it happened.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: UtcTime,
    /// `kind`: `received`, `queued`, `offered`, `no_answer`, `rejected`, `leg_failed`,
    /// `answered`, `ended`, `media` (later versions may add kinds).
    pub kind: String,
    /// `operator`: the operator of an operator-leg event.
    pub operator: Option<String>,
    /// `detail`: the kind's other fields (`{"status":486}`), `None` when it has none.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// A row of `agent_events`: one operator state transition. Serializes like [`CallRow`]
/// (column names, RFC 3339 times, `null` for what is unset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentEventRow {
    /// `id`: the event's UUID.
    pub id: Uuid,
    /// `node_id`: the node that wrote it.
    pub node_id: String,
    /// `operator`: the operator (`operators[].id`).
    pub operator: String,
    /// `at`: when the state changed.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: UtcTime,
    /// `seq`: 1, 2, 3 … among the operator's events of the same `at`, in written order.
    pub seq: i64,
    /// `from_state`: the state left (`available`, `ringing`, `on_call`, `wrap_up`,
    /// `not_ready`, `logged_out`; an open set).
    pub from_state: String,
    /// `to_state`: the state entered (same words).
    pub to_state: String,
    /// `reason`: the not-ready reason or the cause (`no_answer`, `registered` …), if any.
    pub reason: Option<String>,
    /// `call_id`: the call the transition concerns, if any.
    pub call_id: Option<Uuid>,
}

fn ser_time<S: Serializer>(t: &UtcTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_millis(*t))
}

fn ser_opt_time<S: Serializer>(t: &Option<UtcTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}
