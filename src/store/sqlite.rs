//! The SQLite backend of [`super::Store`]: opening (file creation, pragmas) and the
//! embedded migrations from `migrations/sqlite/`. Ids are stored as text. The
//! operations, written once for both backends, are in [`super::log_ops`] and
//! [`super::backend_ops`].

use super::{Migrated, StoreError};
use crate::config::DatabaseUrl;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

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
