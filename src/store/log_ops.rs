//! The backends' half of the event log: writing event batches (call and agent events,
//! with the `calls` summary row kept in step), and the read queries over it (recent and
//! open calls, a call's timeline, agent events, the callback worklist's candidates).
//!
//! The SQL is written to be accepted by both backends (`$N` parameters, `ON CONFLICT`,
//! `CASE`, BIGINT and TEXT). The operation bodies are written once, in [`log_ops!`], and
//! expanded for [`SqliteStore`] and [`PgStore`], like [`super::backend_ops`]: the one
//! difference, how an id is bound (text on SQLite, `UUID` on PostgreSQL), is the macro's
//! `$id`, and rows are read through [`Cols`]. Opening, pragmas and migration stay in
//! [`super::sqlite`] and [`super::postgres`].

use super::backend_ops::{pg_id, sqlite_id};
use super::columns::{EventColumns, SummaryUpdate};
use super::incidents::Cols;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::worklist::{self, ABANDONED, CALLBACK_ENDED, CandidateRow, DROPPED};
use super::{AgentEventRow, CallRow, CallbackRow, EventRow, LogRef, Logged, StoreError};
use crate::engine::UtcTime;
use crate::engine::record::{AgentEvent, CallEvent, CallEventKind};
use sqlx::SqliteConnection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

// ---- statements -----------------------------------------------------------------------

/// Appends the event with the next `seq` of its call; a no-op when its id is stored.
const INSERT_EVENT: &str = "\
    INSERT INTO call_events (id, call_id, node_id, seq, at, kind, operator, detail) \
    SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7 \
    FROM call_events WHERE call_id = $2 \
    ON CONFLICT (id) DO NOTHING";

const INSERT_CALL: &str = "\
    INSERT INTO calls (id, node_id, trunk_call_id, caller, called, trunk, received_at, \
    original_called) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (id) DO NOTHING";

/// The call's other stored events, to complete a summary row created after them.
const EARLIER_EVENTS: &str = "\
    SELECT kind, at, operator, detail FROM call_events \
    WHERE call_id = $1 AND kind <> 'received' ORDER BY seq";

const SET_QUEUED: &str = "\
    UPDATE calls SET queued_at = $2 \
    WHERE id = $1 AND (queued_at IS NULL OR queued_at > $2)";

const SET_OFFERED: &str = "\
    UPDATE calls SET first_offered_at = $2 \
    WHERE id = $1 AND (first_offered_at IS NULL OR first_offered_at > $2)";

const SET_ANSWERED: &str = "\
    UPDATE calls SET answered_at = $2, operator = $3 \
    WHERE id = $1 AND (answered_at IS NULL OR answered_at > $2)";

const SET_ENDED: &str = "\
    UPDATE calls SET ended_at = $2, ended_by = $3, disposition = $4 \
    WHERE id = $1 AND (ended_at IS NULL OR ended_at > $2)";

const SET_MEDIA: &str = "\
    UPDATE calls SET \
    caller_to_operator_packets = CASE \
        WHEN caller_to_operator_packets IS NULL OR caller_to_operator_packets < $2 THEN $2 \
        ELSE caller_to_operator_packets END, \
    operator_to_caller_packets = CASE \
        WHEN operator_to_caller_packets IS NULL OR operator_to_caller_packets < $3 THEN $3 \
        ELSE operator_to_caller_packets END \
    WHERE id = $1";

/// Appends an agent event with the next `seq` of its operator's events at its `at`; a
/// no-op when its id is stored. (The `seq` lookup is a range of the (operator, at, seq)
/// index, not a scan of the operator's history.)
const INSERT_AGENT_EVENT: &str = "\
    INSERT INTO agent_events (id, node_id, operator, at, seq, from_state, to_state, reason, \
    call_id) \
    SELECT $1, $2, $3, $4, COALESCE(MAX(seq), 0) + 1, $5, $6, $7, $8 \
    FROM agent_events WHERE operator = $3 AND at = $4 \
    ON CONFLICT (id) DO NOTHING";

/// The columns of `calls`, in [`CallRow`]'s order (a macro so `concat!` can use it).
macro_rules! call_columns {
    () => {
        "id, node_id, trunk_call_id, caller, called, trunk, received_at, queued_at, \
         first_offered_at, answered_at, ended_at, operator, disposition, ended_by, \
         caller_to_operator_packets, operator_to_caller_packets, original_called"
    };
}

const RECENT_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls ORDER BY received_at DESC, id DESC LIMIT $1"
);

const RECENT_CALLS_SINCE: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE received_at >= $1 ORDER BY received_at DESC, id DESC LIMIT $2"
);

/// This node's calls that have no end yet (no `ended` event), oldest first.
const OPEN_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls WHERE node_id = $1 AND ended_at IS NULL ORDER BY received_at, id"
);

const CALL_EVENTS: &str = "\
    SELECT id, call_id, node_id, seq, at, kind, operator, detail FROM call_events \
    WHERE call_id = $1 ORDER BY at, seq";

/// The columns of `agent_events`, in [`AgentEventRow`]'s order.
macro_rules! agent_event_columns {
    () => {
        "id, node_id, operator, at, seq, from_state, to_state, reason, call_id"
    };
}

const AGENT_EVENTS: &str = concat!(
    "SELECT ",
    agent_event_columns!(),
    " FROM agent_events WHERE at >= $1 AND at < $2 ORDER BY at, operator, seq"
);

const OPERATOR_AGENT_EVENTS: &str = concat!(
    "SELECT ",
    agent_event_columns!(),
    " FROM agent_events WHERE operator = $1 AND at >= $2 AND at < $3 ORDER BY at, seq"
);

/// Each operator's latest agent event written by node $1 (by `at`, then `seq`), by
/// operator. It reads every agent event of the node once: it runs once, at start.
const LAST_AGENT_EVENTS: &str = concat!(
    "SELECT ",
    agent_event_columns!(),
    " FROM agent_events a WHERE node_id = $1 AND NOT EXISTS ( \
        SELECT 1 FROM agent_events b \
        WHERE b.node_id = $1 AND b.operator = a.operator \
        AND (b.at > a.at OR (b.at = a.at AND b.seq > a.seq))) \
    ORDER BY operator"
);

/// The callback worklist's candidates (see [`worklist`]): calls since $1 with a known
/// caller whom no later answered call reached, abandoned ($2, $3) or dropped (a $5 event,
/// ended) with no incident, each joined with its `callback_ended` ($4) events, if any; a
/// call's rows adjacent, oldest call first.
const CALLBACK_CANDIDATES: &str = "\
    SELECT c.id, c.caller, c.received_at, c.ended_at, c.disposition, \
    e.id AS callback_id, e.detail AS callback_detail \
    FROM calls c \
    LEFT JOIN call_events e ON e.call_id = c.id AND e.kind = $4 \
    WHERE c.received_at >= $1 \
    AND (c.disposition IN ($2, $3) \
        OR (c.ended_at IS NOT NULL \
            AND EXISTS (SELECT 1 FROM call_events d WHERE d.call_id = c.id AND d.kind = $5) \
            AND NOT EXISTS (SELECT 1 FROM incident_calls i WHERE i.call_id = c.id))) \
    AND c.caller IS NOT NULL \
    AND NOT EXISTS ( \
        SELECT 1 FROM calls later \
        WHERE later.caller = c.caller \
        AND later.received_at > c.received_at \
        AND later.answered_at IS NOT NULL) \
    ORDER BY c.received_at, c.id, e.seq";

// ---- operations -----------------------------------------------------------------------

/// The operations, for the backend `$store` whose ids bind as `$id(uuid)` and whose
/// transactions deref to the connection type `$conn`.
macro_rules! log_ops {
    ($store:ty, $id:path, $conn:ty) => {
        impl $store {
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
                        LogRef::Call(event) => Self::write_event(&mut tx, node_id, event).await?,
                        LogRef::Agent(event) => {
                            Self::write_agent_event(&mut tx, node_id, event).await?
                        }
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

            pub(super) async fn open_calls(
                &self,
                node_id: &str,
            ) -> Result<Vec<CallRow>, StoreError> {
                let rows = sqlx::query(OPEN_CALLS)
                    .bind(node_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(call_row).collect()
            }

            pub(super) async fn call_events(
                &self,
                call: Uuid,
            ) -> Result<Vec<EventRow>, StoreError> {
                let rows = sqlx::query(CALL_EVENTS)
                    .bind($id(call))
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

            pub(super) async fn last_agent_events(
                &self,
                node_id: &str,
            ) -> Result<Vec<AgentEventRow>, StoreError> {
                let rows = sqlx::query(LAST_AGENT_EVENTS)
                    .bind(node_id)
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
                    .bind(DROPPED)
                    .fetch_all(&self.pool)
                    .await?;
                let rows = rows
                    .iter()
                    .map(candidate_row)
                    .collect::<Result<Vec<_>, _>>()?;
                worklist::fold(rows)
            }

            async fn write_event(
                conn: &mut $conn,
                node_id: &str,
                event: &CallEvent,
            ) -> Result<(), StoreError> {
                let call = $id(event.call);
                let columns = EventColumns::of(event);
                let inserted = sqlx::query(INSERT_EVENT)
                    .bind($id(event.id))
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
                        .bind(storable(trunk_call_id))
                        .bind(caller.as_deref().map(storable))
                        .bind(storable(called))
                        .bind(storable(trunk))
                        .bind(event.at.unix_millis())
                        .bind(original_called.as_deref().map(storable))
                        .execute(&mut *conn)
                        .await?;
                    let earlier = sqlx::query(EARLIER_EVENTS)
                        .bind(&call)
                        .fetch_all(&mut *conn)
                        .await?;
                    for row in earlier {
                        let detail = row.opt_text("detail")?;
                        let update = SummaryUpdate::of_stored(
                            &row.text("kind")?,
                            row.int("at")?,
                            row.opt_text("operator")?,
                            detail.as_deref(),
                        );
                        Self::apply(conn, event.call, update).await?;
                    }
                    return Ok(());
                }
                Self::apply(conn, event.call, SummaryUpdate::of(event)).await
            }

            async fn write_agent_event(
                conn: &mut $conn,
                node_id: &str,
                event: &AgentEvent,
            ) -> Result<(), StoreError> {
                sqlx::query(INSERT_AGENT_EVENT)
                    .bind($id(event.id))
                    .bind(node_id)
                    .bind(&event.operator)
                    .bind(event.at.unix_millis())
                    .bind(event.from)
                    .bind(event.to)
                    .bind(event.reason.as_deref())
                    .bind(event.call.map($id))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Applies `update` to the summary row of `call` (none yet: no change).
            async fn apply(
                conn: &mut $conn,
                call: Uuid,
                update: SummaryUpdate,
            ) -> Result<(), StoreError> {
                let call = $id(call);
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
        }
    };
}

log_ops!(SqliteStore, sqlite_id, SqliteConnection);
log_ops!(PgStore, pg_id, PgConnection);

// ---- reading rows ---------------------------------------------------------------------

/// `text` from the trunk's signalling as a column can hold it: every NUL (U+0000, which a
/// caller number may carry as `%00`, RFC 3261 §25.1's escaped user) becomes U+FFFD.
/// PostgreSQL's `text` refuses NUL (SQLSTATE 22021), and one such event would hold back
/// every batch behind it; SQLite gets the same value, so the backends agree. Details are
/// JSON, where serde writes NUL as `\u0000`.
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn time(row: &impl Cols, name: &'static str) -> Result<Option<UtcTime>, StoreError> {
    Ok(row.opt_int(name)?.map(UtcTime))
}

/// A non-negative count; `column` (`table.column`) names it in the error.
fn count(
    row: &impl Cols,
    column: &'static str,
    name: &'static str,
) -> Result<Option<u64>, StoreError> {
    match row.opt_int(name)? {
        None => Ok(None),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| StoreError::Corrupt {
            column,
            value: n.to_string(),
        }),
    }
}

/// A row of [`RECENT_CALLS`] and the other `calls` queries.
pub(super) fn call_row(row: &impl Cols) -> Result<CallRow, StoreError> {
    Ok(CallRow {
        id: row.uuid_in("calls.id", "id")?,
        node_id: row.text("node_id")?,
        trunk_call_id: row.text("trunk_call_id")?,
        caller: row.opt_text("caller")?,
        called: row.text("called")?,
        original_called: row.opt_text("original_called")?,
        trunk: row.text("trunk")?,
        received_at: UtcTime(row.int("received_at")?),
        queued_at: time(row, "queued_at")?,
        first_offered_at: time(row, "first_offered_at")?,
        answered_at: time(row, "answered_at")?,
        ended_at: time(row, "ended_at")?,
        operator: row.opt_text("operator")?,
        disposition: row.opt_text("disposition")?,
        ended_by: row.opt_text("ended_by")?,
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

fn agent_event_row(row: &impl Cols) -> Result<AgentEventRow, StoreError> {
    Ok(AgentEventRow {
        id: row.uuid_in("agent_events.id", "id")?,
        node_id: row.text("node_id")?,
        operator: row.text("operator")?,
        at: UtcTime(row.int("at")?),
        seq: row.int("seq")?,
        from_state: row.text("from_state")?,
        to_state: row.text("to_state")?,
        reason: row.opt_text("reason")?,
        call_id: row.opt_uuid_in("agent_events.call_id", "call_id")?,
    })
}

fn candidate_row(row: &impl Cols) -> Result<CandidateRow, StoreError> {
    let callback = match row.is_null("callback_id")? {
        true => None,
        false => Some(row.opt_text("callback_detail")?),
    };
    Ok(CandidateRow {
        call: row.uuid_in("calls.id", "id")?,
        caller: row.text("caller")?,
        received_at: UtcTime(row.int("received_at")?),
        ended_at: time(row, "ended_at")?,
        disposition: row.text("disposition")?,
        callback,
    })
}

fn event_row(row: &impl Cols) -> Result<EventRow, StoreError> {
    let detail = match row.opt_text("detail")? {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
                column: "call_events.detail",
                value: text,
            })?,
        ),
    };
    Ok(EventRow {
        id: row.uuid_in("call_events.id", "id")?,
        call_id: row.uuid_in("call_events.call_id", "call_id")?,
        node_id: row.text("node_id")?,
        seq: row.int("seq")?,
        at: UtcTime(row.int("at")?),
        kind: row.text("kind")?,
        operator: row.opt_text("operator")?,
        detail,
    })
}
