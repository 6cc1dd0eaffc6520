//! The PostgreSQL backend of [`super::Store`]: opening (creating the database when it is
//! missing and the user may) and the embedded migrations from `migrations/postgres/`.
//! Ids are PostgreSQL `UUID`s here, where SQLite stores their text; times are BIGINT ms
//! on both. The operations, written once for both backends, are in [`super::log_ops`] and
//! [`super::backend_ops`].
//!
//! A pool of [`MAX_CONNECTIONS`]: the writer's one transaction at a time, plus readers
//! (the callback worklist at start, later the API). Several nodes may share the database:
//! the migrator takes PostgreSQL's advisory lock, so two nodes starting together migrate
//! once.

use super::{Migrated, StoreError};
use crate::config::DatabaseUrl;
use sqlx::migrate::{Migrate, MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use std::str::FromStr;
use std::time::Duration;

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
    /// The URL of a store opened on the journal ([`PgStore::open_lazy`]), kept to create
    /// the database once the server answers without it (a first start during an outage);
    /// `None` for one [`PgStore::open`] checked.
    create: Option<DatabaseUrl>,
}

impl PgStore {
    /// Connects to the database `url` names (`create`: creating the database when it is
    /// missing), and checks that it can: one connection (within [`ACQUIRE_TIMEOUT`]), so a
    /// wrong password or a refused connection is reported at once, with the server's
    /// reason. It does not migrate
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
        let mut probe = match connect(&options).await {
            Err(error) if create && sql_state(&error).as_deref() == Some(NO_SUCH_DATABASE) => {
                create_database(url).await.map_err(open_error)?;
                connect(&options).await.map_err(open_error)?
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
        Ok(PgStore { pool, create: None })
    }

    /// A pool for the database `url` names that connects when first used: nothing is
    /// checked now (siaga starting while the database is down, `Store::open_or_defer`).
    ///
    /// Errors: [`StoreError::Open`] for a URL the driver cannot parse.
    pub(super) fn open_lazy(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url.as_str())
            .map_err(|source| StoreError::Open {
                url: url.redacted(),
                source,
            })?
            .application_name("siaga");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PgStore {
            pool,
            create: Some(url.clone()),
        })
    }

    /// `SELECT 1`. For a store opened on the journal whose database does not exist yet
    /// (SQLSTATE 3D000: siaga's first start happened during an outage), the database is
    /// created as [`PgStore::open`] would have, and the error returned: the caller's next
    /// attempt finds it.
    ///
    /// Errors: the driver's.
    pub(super) async fn select_one(&self) -> Result<(), sqlx::Error> {
        let result = sqlx::query("SELECT 1").execute(&self.pool).await.map(drop);
        if let (Err(error), Some(url)) = (&result, &self.create)
            && sql_state(error).as_deref() == Some(NO_SUCH_DATABASE)
        {
            tracing::info!("the database does not exist yet: creating it");
            if let Err(error) = create_database(url).await {
                tracing::warn!(%error, "cannot create the database");
            }
        }
        result
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
}

/// One connection, within [`ACQUIRE_TIMEOUT`] (a server that drops packets would
/// otherwise hold the start for a TCP timeout): a timeout is an I/O error `TimedOut`.
async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(connected) => connected,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {ACQUIRE_TIMEOUT:?}"),
        ))),
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
