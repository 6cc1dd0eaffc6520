//! Which database errors are an outage (retry: the database will take the same events
//! later) and which are a refusal of the data itself (retrying the same events fails the
//! same way). The writer retries or journals the first kind and isolates and quarantines
//! the events behind the second (`writer.rs`).
//!
//! PostgreSQL (SQLSTATE, Appendix A of its manual): classes 22 (data exception: a value
//! too long, out of range, invalid text) and 23 (integrity constraint violation: NOT NULL,
//! CHECK, foreign key, unique) are data errors, as is 54 (program limit exceeded: a value
//! too large for an index). Everything else is retried, in particular 08 (connection
//! exception), 53 (insufficient resources), 57 (operator intervention: shutdown, cannot
//! connect now, query cancelled), 58 (system error), 40 (transaction rollback:
//! serialization failure, deadlock) and XX (internal error). Class 42 (syntax error or
//! access rule violation) is retried too, not quarantined: siaga's SQL is fixed, so a 42
//! means the schema or the grants changed under it (a table dropped or renamed, a
//! privilege revoked): every event would fail the same way, and an operator can mend
//! it, after which the same events are written.
//!
//! SQLite (primary result code, the extended code's low byte): `SQLITE_CONSTRAINT` (19),
//! `SQLITE_MISMATCH` (20), `SQLITE_TOOBIG` (18) and `SQLITE_RANGE` (25) are data errors;
//! everything else (`SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_IOERR`, `SQLITE_FULL`,
//! `SQLITE_ERROR` for a missing table …) is retried.
//!
//! Errors that are not the database's: I/O, TLS, protocol, pool timeout or closed pool
//! are outages; a value the driver cannot encode is a data error.

use super::StoreError;

/// What kind of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The database is unreachable, slow, busy, or its schema is not what siaga expects:
    /// the same events may be written later.
    Outage,
    /// The database refuses the data: the same events will be refused again.
    Data,
}

/// PostgreSQL SQLSTATE classes whose errors are data errors.
const PG_DATA_CLASSES: [&str; 3] = ["22", "23", "54"];

/// SQLite primary result codes of data errors: TOOBIG, CONSTRAINT, MISMATCH, RANGE.
const SQLITE_DATA_CODES: [i64; 4] = [18, 19, 20, 25];

/// The kind of failure `error` is (see the module doc).
pub fn classify(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return Failure::Outage;
            };
            let data = if is_postgres(db.as_ref()) {
                // A five-character SQLSTATE (which may be all digits: 23514).
                PG_DATA_CLASSES.iter().any(|class| code.starts_with(class))
            } else {
                // SQLite: the extended result code, a number.
                code.parse::<i64>()
                    .is_ok_and(|extended| SQLITE_DATA_CODES.contains(&(extended & 0xff)))
            };
            if data { Failure::Data } else { Failure::Outage }
        }
        sqlx::Error::Encode(_) => Failure::Data,
        _ => Failure::Outage,
    }
}

/// Whether `error` is PostgreSQL's (else SQLite's).
fn is_postgres(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
}

impl StoreError {
    /// The kind of failure this is: [`Failure::Data`] for a database error the data
    /// caused ([`classify`]), for [`StoreError::Invalid`] and [`StoreError::Corrupt`];
    /// [`Failure::Outage`] for the rest.
    pub fn failure(&self) -> Failure {
        match self {
            StoreError::Database(error) | StoreError::Open { source: error, .. } => classify(error),
            StoreError::Invalid(_) | StoreError::Corrupt { .. } => Failure::Data,
            _ => Failure::Outage,
        }
    }
}

/// PostgreSQL SQLSTATE classes that say the server cannot be reached or cannot take a
/// connection now: 08 (connection exception), 53 (insufficient resources: too many
/// connections), 57 (operator intervention: starting up, shutting down).
const PG_UNREACHABLE_CLASSES: [&str; 3] = ["08", "53", "57"];

impl StoreError {
    /// Whether this error says the database could not be reached at all (refused or
    /// timed-out connection, a server starting up or shutting down, no connection slot),
    /// as opposed to a configuration problem (a wrong password, a missing database, a
    /// bad URL) or a data error. Decides whether `siaga run` may start on its journal
    /// ([`super::Store::open_or_defer`]).
    pub fn is_unreachable(&self) -> bool {
        let (StoreError::Open { source, .. } | StoreError::Database(source)) = self else {
            return false;
        };
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
            // PostgreSQL's SQLSTATEs only.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                is_postgres(db.as_ref())
                    && PG_UNREACHABLE_CLASSES
                        .iter()
                        .any(|class| code.starts_with(class))
            }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_pool_errors_are_outages_and_encoding_errors_data() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::PoolClosed), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::Encode("bad".into())), Failure::Data);
    }
}
