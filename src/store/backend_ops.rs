//! The backends' half of incidents, handoffs, the call-log search, call detail and
//! statistics: the same statements ([`super::incidents`], [`super::search`],
//! [`super::stats`]) run on each, with the one difference the backends have, how an id is
//! bound (text on SQLite, `UUID` on PostgreSQL) and read ([`Cols`]).
//!
//! The bodies are written once, in [`backend_ops!`], and expanded for [`SqliteStore`] and
//! [`PgStore`] (the event log's half likewise, in [`super::log_ops`]): one copy per
//! backend file would double every change.

use super::incidents::{
    CALL_EXISTS, Cols, HandoffUpdate, INCIDENT_CALLS, INCIDENT_EXISTS, INCIDENT_HANDOFFS,
    INCIDENT_OF_CALL, INSERT_HANDOFF, INSERT_INCIDENT, INSERT_LINK, Incident, IncidentUpdate,
    NewHandoff, NewIncident, SELECT_HANDOFF, SELECT_INCIDENT, TOUCH_INCIDENT, UPDATE_HANDOFF,
    UPDATE_INCIDENT, handoff_row, incident_row,
};
use super::log_ops::call_row;
use super::postgres::PgStore;
use super::search::{CallLogRow, SEARCH_CALLS, SELECT_CALL, SearchParams, fold};
use super::sqlite::SqliteStore;
use super::stats::{self, ABANDONED, ANSWER_THRESHOLDS_MS, Raw};
use super::{CallRow, Handoff, StoreError};
use crate::engine::UtcTime;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, ValueRef};
use uuid::Uuid;

impl Cols for SqliteRow {
    fn uuid_in(&self, column: &'static str, name: &'static str) -> Result<Uuid, StoreError> {
        let text: String = self.try_get(name)?;
        Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt {
            column,
            value: text,
        })
    }

    fn opt_uuid_in(
        &self,
        column: &'static str,
        name: &'static str,
    ) -> Result<Option<Uuid>, StoreError> {
        match self.try_get::<Option<String>, _>(name)? {
            None => Ok(None),
            Some(text) => Uuid::parse_str(&text)
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    column,
                    value: text,
                }),
        }
    }

    fn is_null(&self, name: &'static str) -> Result<bool, StoreError> {
        Ok(self.try_get_raw(name)?.is_null())
    }

    fn text(&self, name: &'static str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_text(&self, name: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn int(&self, name: &'static str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_int(&self, name: &'static str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_f64(&self, name: &'static str) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

impl Cols for PgRow {
    fn uuid_in(&self, _column: &'static str, name: &'static str) -> Result<Uuid, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_uuid_in(
        &self,
        _column: &'static str,
        name: &'static str,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn is_null(&self, name: &'static str) -> Result<bool, StoreError> {
        Ok(self.try_get_raw(name)?.is_null())
    }

    fn text(&self, name: &'static str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_text(&self, name: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn int(&self, name: &'static str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_int(&self, name: &'static str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_f64(&self, name: &'static str) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

/// An id as SQLite stores it: lower-case hyphenated text.
pub(super) fn sqlite_id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// An id as PostgreSQL stores it: a `UUID`.
pub(super) fn pg_id(id: Uuid) -> Uuid {
    id
}

/// The operations, for the backend `$store` whose ids bind as `$id(uuid)`.
macro_rules! backend_ops {
    ($store:ty, $id:path) => {
        impl $store {
            pub(super) async fn create_incident(
                &self,
                id: Uuid,
                node_id: &str,
                call: Uuid,
                incident: &NewIncident,
                now: UtcTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let calls: i64 = sqlx::query_scalar(CALL_EXISTS)
                    .bind($id(call))
                    .fetch_one(&mut *tx)
                    .await?;
                if calls == 0 {
                    return Err(StoreError::NotFound {
                        what: "call",
                        id: call,
                    });
                }
                let details = &incident.details;
                sqlx::query(INSERT_INCIDENT)
                    .bind($id(id))
                    .bind(node_id)
                    .bind(incident.classification.category())
                    .bind(incident.classification.subcategory())
                    .bind(details.location.as_deref())
                    .bind(details.position.map(|p| p.latitude()))
                    .bind(details.position.map(|p| p.longitude()))
                    .bind(details.caller_name.as_deref())
                    .bind(details.notes.as_deref())
                    .bind(incident.operator.as_deref())
                    .bind(now.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                let linked = sqlx::query(INSERT_LINK)
                    .bind($id(call))
                    .bind($id(id))
                    .bind(now.unix_millis())
                    .bind(incident.operator.as_deref())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if linked == 0 {
                    let row = sqlx::query(INCIDENT_OF_CALL)
                        .bind($id(call))
                        .fetch_one(&mut *tx)
                        .await?;
                    // Dropping the transaction rolls the new incident back.
                    return Err(StoreError::AlreadyLinked {
                        call,
                        incident: row.uuid("incident_id")?,
                    });
                }
                tx.commit().await?;
                Ok(())
            }

            /// Whether incident `id` exists (and was updated).
            pub(super) async fn update_incident(
                &self,
                id: Uuid,
                update: &IncidentUpdate,
                now: UtcTime,
            ) -> Result<bool, StoreError> {
                let position = update.position.flatten();
                let text = |v: &Option<Option<String>>| v.clone().flatten();
                let changed = sqlx::query(UPDATE_INCIDENT)
                    .bind($id(id))
                    .bind(
                        update
                            .classification
                            .as_ref()
                            .map(|c| c.category().to_owned()),
                    )
                    .bind(
                        update
                            .classification
                            .as_ref()
                            .and_then(|c| c.subcategory().map(str::to_owned)),
                    )
                    .bind(update.position.is_some())
                    .bind(position.map(|p| p.latitude()))
                    .bind(position.map(|p| p.longitude()))
                    .bind(update.location.is_some())
                    .bind(text(&update.location))
                    .bind(update.caller_name.is_some())
                    .bind(text(&update.caller_name))
                    .bind(update.notes.is_some())
                    .bind(text(&update.notes))
                    .bind(now.unix_millis())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(changed > 0)
            }

            pub(super) async fn link_call(
                &self,
                call: Uuid,
                incident: Uuid,
                operator: Option<&str>,
                now: UtcTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for (sql, what, id) in [
                    (CALL_EXISTS, "call", call),
                    (INCIDENT_EXISTS, "incident", incident),
                ] {
                    let n: i64 = sqlx::query_scalar(sql)
                        .bind($id(id))
                        .fetch_one(&mut *tx)
                        .await?;
                    if n == 0 {
                        return Err(StoreError::NotFound { what, id });
                    }
                }
                let linked = sqlx::query(INSERT_LINK)
                    .bind($id(call))
                    .bind($id(incident))
                    .bind(now.unix_millis())
                    .bind(operator)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if linked == 0 {
                    let row = sqlx::query(INCIDENT_OF_CALL)
                        .bind($id(call))
                        .fetch_one(&mut *tx)
                        .await?;
                    let current = row.uuid("incident_id")?;
                    if current != incident {
                        return Err(StoreError::AlreadyLinked {
                            call,
                            incident: current,
                        });
                    }
                    return Ok(());
                }
                sqlx::query(TOUCH_INCIDENT)
                    .bind($id(incident))
                    .bind(now.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            /// The incident with its calls and handoffs (one read transaction), if any.
            pub(super) async fn incident(&self, id: Uuid) -> Result<Option<Incident>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let Some(row) = sqlx::query(SELECT_INCIDENT)
                    .bind($id(id))
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(None);
                };
                let mut incident = incident_row(&row)?;
                let calls = sqlx::query(INCIDENT_CALLS)
                    .bind($id(id))
                    .fetch_all(&mut *tx)
                    .await?;
                incident.calls = calls
                    .iter()
                    .map(|row| row.uuid("call_id"))
                    .collect::<Result<_, _>>()?;
                let handoffs = sqlx::query(INCIDENT_HANDOFFS)
                    .bind($id(id))
                    .fetch_all(&mut *tx)
                    .await?;
                incident.handoffs = handoffs.iter().map(handoff_row).collect::<Result<_, _>>()?;
                tx.commit().await?;
                Ok(Some(incident))
            }

            pub(super) async fn incident_of_call(
                &self,
                call: Uuid,
            ) -> Result<Option<Uuid>, StoreError> {
                let row = sqlx::query(INCIDENT_OF_CALL)
                    .bind($id(call))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| row.uuid("incident_id")).transpose()
            }

            pub(super) async fn add_handoff(
                &self,
                id: Uuid,
                node_id: &str,
                incident: Uuid,
                handoff: &NewHandoff,
                now: UtcTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let n: i64 = sqlx::query_scalar(INCIDENT_EXISTS)
                    .bind($id(incident))
                    .fetch_one(&mut *tx)
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound {
                        what: "incident",
                        id: incident,
                    });
                }
                sqlx::query(INSERT_HANDOFF)
                    .bind($id(id))
                    .bind($id(incident))
                    .bind(node_id)
                    .bind(handoff.agency.as_str())
                    .bind(handoff.method.as_str())
                    .bind(handoff.handed_off_at.unix_millis())
                    .bind(handoff.reference.as_deref())
                    .bind(handoff.operator.as_deref())
                    .bind(now.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(TOUCH_INCIDENT)
                    .bind($id(incident))
                    .bind(now.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            /// Whether a row changed (false: no such handoff, or a time before it).
            pub(super) async fn update_handoff(
                &self,
                id: Uuid,
                update: &HandoffUpdate,
                now: UtcTime,
            ) -> Result<bool, StoreError> {
                let changed = sqlx::query(UPDATE_HANDOFF)
                    .bind($id(id))
                    .bind(update.reference.as_deref())
                    .bind(update.acknowledged_at.map(UtcTime::unix_millis))
                    .bind(update.closed_at.map(UtcTime::unix_millis))
                    .bind(update.outcome.as_deref())
                    .bind(now.unix_millis())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(changed > 0)
            }

            pub(super) async fn handoff(&self, id: Uuid) -> Result<Option<Handoff>, StoreError> {
                let row = sqlx::query(SELECT_HANDOFF)
                    .bind($id(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(handoff_row).transpose()
            }

            pub(super) async fn search_calls(
                &self,
                p: &SearchParams<'_>,
                after_id: Option<Uuid>,
            ) -> Result<Vec<CallLogRow>, StoreError> {
                let rows = sqlx::query(SEARCH_CALLS)
                    .bind(p.from)
                    .bind(p.to)
                    .bind(p.category)
                    .bind(p.disposition)
                    .bind(p.operator)
                    .bind(p.caller)
                    .bind(p.agency)
                    .bind(p.notes.as_deref())
                    .bind(p.after)
                    .bind(after_id.map($id))
                    .bind(p.limit)
                    .fetch_all(&self.pool)
                    .await?;
                fold(&rows, call_row)
            }

            pub(super) async fn call(&self, id: Uuid) -> Result<Option<CallRow>, StoreError> {
                let row = sqlx::query(SELECT_CALL)
                    .bind($id(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(call_row).transpose()
            }

            /// The statistics queries' rows for [from, to), read in one transaction.
            pub(super) async fn statistics(&self, from: i64, to: i64) -> Result<Raw, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut raw = Raw::default();
                for (sql, out) in [
                    (stats::BY_CATEGORY, &mut raw.by_category),
                    (stats::BY_DISPOSITION, &mut raw.by_disposition),
                    (stats::BY_AGENCY, &mut raw.by_agency),
                ] {
                    let rows = sqlx::query(sql)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut *tx)
                        .await?;
                    *out = rows.iter().map(stats::keyed).collect::<Result<_, _>>()?;
                }
                let rows = sqlx::query(stats::BY_HOUR)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *tx)
                    .await?;
                raw.by_hour = rows
                    .iter()
                    .map(|row| Ok((row.int("hour")?, row.int("n")?)))
                    .collect::<Result<_, StoreError>>()?;
                let rows = sqlx::query(stats::BY_OPERATOR)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *tx)
                    .await?;
                raw.by_operator = rows
                    .iter()
                    .map(|row| Ok((row.opt_text("key")?, row.int("n")?, row.opt_int("total")?)))
                    .collect::<Result<_, StoreError>>()?;
                let [t1, t2, t3] = ANSWER_THRESHOLDS_MS;
                let row = sqlx::query(stats::ANSWER_COUNTS)
                    .bind(from)
                    .bind(to)
                    .bind(ABANDONED[0])
                    .bind(ABANDONED[1])
                    .bind(t1)
                    .bind(t2)
                    .bind(t3)
                    .fetch_one(&mut *tx)
                    .await?;
                raw.answer = [
                    row.int("n")?,
                    row.opt_int("answered")?.unwrap_or(0),
                    row.opt_int("abandoned")?.unwrap_or(0),
                    row.opt_int("within_1")?.unwrap_or(0),
                    row.opt_int("within_2")?.unwrap_or(0),
                    row.opt_int("within_3")?.unwrap_or(0),
                ];
                let rows = sqlx::query(stats::WAITS)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *tx)
                    .await?;
                raw.waits = rows
                    .iter()
                    .map(|row| row.int("wait"))
                    .collect::<Result<_, _>>()?;
                tx.commit().await?;
                Ok(raw)
            }
        }
    };
}

backend_ops!(SqliteStore, sqlite_id);
backend_ops!(PgStore, pg_id);
