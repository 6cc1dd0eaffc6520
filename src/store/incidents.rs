//! Incidents and handoffs in the store (schema 4, `migrations/*/0004_incidents.sql`): the
//! inputs the store takes ([`NewIncident`], [`IncidentUpdate`], [`NewHandoff`],
//! [`HandoffUpdate`], built from the parsed types of [`super::incident_input`]), the records
//! it returns ([`Incident`] with its calls and [`Handoff`]s), the SQL both backends run,
//! and the [`Store`] methods.
//!
//! Every write is one transaction. A call belongs to at most one incident (the primary key
//! of `incident_calls`), so two operators classifying the same call at once cannot both
//! succeed: the second gets [`StoreError::AlreadyLinked`]. Partial updates are single
//! `UPDATE` statements that set only the fields given, so concurrent edits of different
//! fields do not undo each other.

use super::incident_input::{
    AgencyId, CALLER_NAME_MAX, Classification, HandoffMethod, InputError, LOCATION_MAX, NOTES_MAX,
    OUTCOME_MAX, Position, REFERENCE_MAX, check_text,
};
use super::{Backend, Store, StoreError, ser_opt_time, ser_time};
use crate::engine::UtcTime;
use serde::Serialize;
use uuid::Uuid;

/// The operator's description of an incident besides its classification. `None`: not
/// known (yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentDetails {
    /// The place as the caller describes it (at most [`LOCATION_MAX`] characters).
    pub location: Option<String>,
    /// Where it is, when a position is known (the caller's AML fix, a map click).
    pub position: Option<Position>,
    /// The caller's name as given (at most [`CALLER_NAME_MAX`] characters). Personal data.
    pub caller_name: Option<String>,
    /// The operator's notes (at most [`NOTES_MAX`] characters).
    pub notes: Option<String>,
}

impl IncidentDetails {
    /// Checks the lengths of the texts.
    ///
    /// Errors: [`InputError::TooLong`] naming the field.
    pub fn check(&self) -> Result<(), InputError> {
        check_text("location", self.location.as_deref(), LOCATION_MAX)?;
        check_text("caller_name", self.caller_name.as_deref(), CALLER_NAME_MAX)?;
        check_text("notes", self.notes.as_deref(), NOTES_MAX)
    }
}

/// A new incident, created for the call an operator is handling.
#[derive(Clone, Debug, PartialEq)]
pub struct NewIncident {
    /// Category and subcategory.
    pub classification: Classification,
    /// Location, position, caller name, notes.
    pub details: IncidentDetails,
    /// Who creates it (`operators[].id`), if known.
    pub operator: Option<String>,
}

/// A partial change to an incident: `None` leaves a field as it is; `Some(None)` clears
/// an optional one. Category and subcategory change together (a subcategory belongs to
/// its category).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentUpdate {
    /// New category and subcategory.
    pub classification: Option<Classification>,
    /// New location text, or cleared.
    pub location: Option<Option<String>>,
    /// New position, or cleared.
    pub position: Option<Option<Position>>,
    /// New caller name, or cleared.
    pub caller_name: Option<Option<String>>,
    /// New notes, or cleared (the whole text: the API sends the edited notes).
    pub notes: Option<Option<String>>,
}

impl IncidentUpdate {
    /// Checks the lengths of the texts given.
    ///
    /// Errors: [`InputError::TooLong`] naming the field.
    pub fn check(&self) -> Result<(), InputError> {
        fn given(v: &Option<Option<String>>) -> Option<&str> {
            v.as_ref().and_then(|v| v.as_deref())
        }
        check_text("location", given(&self.location), LOCATION_MAX)?;
        check_text("caller_name", given(&self.caller_name), CALLER_NAME_MAX)?;
        check_text("notes", given(&self.notes), NOTES_MAX)
    }
}

/// A handoff of an incident to an agency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHandoff {
    /// The agency.
    pub agency: AgencyId,
    /// How.
    pub method: HandoffMethod,
    /// When the agency was given the incident.
    pub handed_off_at: UtcTime,
    /// The agency's reference number, if it gave one (at most [`REFERENCE_MAX`]
    /// characters).
    pub reference: Option<String>,
    /// Who handed it off (`operators[].id`), if known.
    pub operator: Option<String>,
}

impl NewHandoff {
    /// Checks the length of the reference.
    ///
    /// Errors: [`InputError::TooLong`].
    pub fn check(&self) -> Result<(), InputError> {
        check_text("reference", self.reference.as_deref(), REFERENCE_MAX)
    }
}

/// What an agency reported back about a handoff: each `Some` field is set (replacing an
/// earlier value), each `None` left as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoffUpdate {
    /// The agency's reference number (at most [`REFERENCE_MAX`] characters).
    pub reference: Option<String>,
    /// When the agency confirmed it took the incident; not before `handed_off_at`.
    pub acknowledged_at: Option<UtcTime>,
    /// When the agency reported it done; not before `handed_off_at`.
    pub closed_at: Option<UtcTime>,
    /// What the agency reported (at most [`OUTCOME_MAX`] characters).
    pub outcome: Option<String>,
}

impl HandoffUpdate {
    /// Checks the lengths of the texts given.
    ///
    /// Errors: [`InputError::TooLong`].
    pub fn check(&self) -> Result<(), InputError> {
        check_text("reference", self.reference.as_deref(), REFERENCE_MAX)?;
        check_text("outcome", self.outcome.as_deref(), OUTCOME_MAX)
    }
}

/// A row of `incidents` with the calls linked to it and its handoffs. Serializes like
/// [`super::CallRow`]: column names, RFC 3339 UTC times, `null` for what is unset.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Incident {
    /// `id`: the incident's UUID.
    pub id: Uuid,
    /// `node_id`: the node that created it.
    pub node_id: String,
    /// `category`: a `categories[].id`.
    pub category: String,
    /// `subcategory`: one of the category's subcategory ids.
    pub subcategory: Option<String>,
    /// `location`: the place as the caller describes it.
    pub location: Option<String>,
    /// `latitude`: WGS 84 degrees north.
    pub latitude: Option<f64>,
    /// `longitude`: WGS 84 degrees east.
    pub longitude: Option<f64>,
    /// `caller_name`. Personal data.
    pub caller_name: Option<String>,
    /// `notes`.
    pub notes: Option<String>,
    /// `operator`: who created it.
    pub operator: Option<String>,
    /// `created_at`.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: UtcTime,
    /// `updated_at`: the last change to the incident, its calls or its handoffs.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: UtcTime,
    /// The calls linked to it (`incident_calls`), in the order they were linked.
    pub calls: Vec<Uuid>,
    /// Its handoffs, oldest (`handed_off_at`) first.
    pub handoffs: Vec<Handoff>,
}

/// A row of `handoffs`. Serializes like [`Incident`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Handoff {
    /// `id`: the handoff's UUID.
    pub id: Uuid,
    /// `incident_id`.
    pub incident_id: Uuid,
    /// `node_id`: the node that recorded it.
    pub node_id: String,
    /// `agency`: an `agencies[].id`.
    pub agency: String,
    /// `method`: `call_transfer`, `phone`, `radio` or `app`.
    pub method: HandoffMethod,
    /// `handed_off_at`.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub handed_off_at: UtcTime,
    /// `reference`: the agency's reference number.
    pub reference: Option<String>,
    /// `acknowledged_at`.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<UtcTime>,
    /// `closed_at`.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<UtcTime>,
    /// `outcome`.
    pub outcome: Option<String>,
    /// `operator`: who handed it off.
    pub operator: Option<String>,
    /// `updated_at`.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: UtcTime,
}

// ---- SQL (both backends) --------------------------------------------------------------

pub(super) const CALL_EXISTS: &str = "SELECT COUNT(*) AS n FROM calls WHERE id = $1";

pub(super) const INCIDENT_EXISTS: &str = "SELECT COUNT(*) AS n FROM incidents WHERE id = $1";

pub(super) const INCIDENT_OF_CALL: &str =
    "SELECT incident_id FROM incident_calls WHERE call_id = $1";

pub(super) const INSERT_INCIDENT: &str = "\
    INSERT INTO incidents (id, node_id, category, subcategory, location, latitude, \
    longitude, caller_name, notes, operator, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

/// Links call $1 to incident $2; a no-op when the call is linked already.
pub(super) const INSERT_LINK: &str = "\
    INSERT INTO incident_calls (call_id, incident_id, linked_at, operator) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO NOTHING";

/// Sets each field whose flag is true: classification when $2 is not NULL, position ($4),
/// location ($7), caller name ($9), notes ($11); `updated_at` always.
pub(super) const UPDATE_INCIDENT: &str = "\
    UPDATE incidents SET \
    category = COALESCE($2, category), \
    subcategory = CASE WHEN $2 IS NULL THEN subcategory ELSE $3 END, \
    latitude = CASE WHEN $4 THEN $5 ELSE latitude END, \
    longitude = CASE WHEN $4 THEN $6 ELSE longitude END, \
    location = CASE WHEN $7 THEN $8 ELSE location END, \
    caller_name = CASE WHEN $9 THEN $10 ELSE caller_name END, \
    notes = CASE WHEN $11 THEN $12 ELSE notes END, \
    updated_at = $13 \
    WHERE id = $1";

pub(super) const TOUCH_INCIDENT: &str = "UPDATE incidents SET updated_at = $2 WHERE id = $1";

pub(super) const SELECT_INCIDENT: &str = "\
    SELECT id, node_id, category, subcategory, location, latitude, longitude, caller_name, \
    notes, operator, created_at, updated_at FROM incidents WHERE id = $1";

pub(super) const INCIDENT_CALLS: &str = "\
    SELECT call_id FROM incident_calls WHERE incident_id = $1 ORDER BY linked_at, call_id";

/// The columns of `handoffs`, in [`Handoff`]'s order.
macro_rules! handoff_columns {
    () => {
        "id, incident_id, node_id, agency, method, handed_off_at, reference, \
         acknowledged_at, closed_at, outcome, operator, updated_at"
    };
}

pub(super) const INCIDENT_HANDOFFS: &str = concat!(
    "SELECT ",
    handoff_columns!(),
    " FROM handoffs WHERE incident_id = $1 ORDER BY handed_off_at, id"
);

pub(super) const SELECT_HANDOFF: &str = concat!(
    "SELECT ",
    handoff_columns!(),
    " FROM handoffs WHERE id = $1"
);

pub(super) const INSERT_HANDOFF: &str = concat!(
    "INSERT INTO handoffs (",
    handoff_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, $8, $9)"
);

/// Sets each given field ($2–$5, NULL: unchanged) of handoff $1, unless a time given is
/// before `handed_off_at` (then no row changes).
pub(super) const UPDATE_HANDOFF: &str = "\
    UPDATE handoffs SET \
    reference = COALESCE($2, reference), \
    acknowledged_at = COALESCE($3, acknowledged_at), \
    closed_at = COALESCE($4, closed_at), \
    outcome = COALESCE($5, outcome), \
    updated_at = $6 \
    WHERE id = $1 \
    AND ($3 IS NULL OR $3 >= handed_off_at) \
    AND ($4 IS NULL OR $4 >= handed_off_at)";

// ---- decoding (both backends, through Cols) -------------------------------------------

/// Reads a row's columns by name, whichever backend it comes from (ids: UUID on
/// PostgreSQL, text on SQLite).
pub(super) trait Cols {
    /// The id in column `name`; one that is not a UUID is [`StoreError::Corrupt`] naming
    /// `column` (`table.column`).
    fn uuid_in(&self, column: &'static str, name: &'static str) -> Result<Uuid, StoreError>;
    fn opt_uuid_in(
        &self,
        column: &'static str,
        name: &'static str,
    ) -> Result<Option<Uuid>, StoreError>;
    fn uuid(&self, name: &'static str) -> Result<Uuid, StoreError> {
        self.uuid_in(name, name)
    }
    fn opt_uuid(&self, name: &'static str) -> Result<Option<Uuid>, StoreError> {
        self.opt_uuid_in(name, name)
    }
    /// Whether column `name` is NULL, whatever its type.
    fn is_null(&self, name: &'static str) -> Result<bool, StoreError>;
    fn text(&self, name: &'static str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &'static str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &'static str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &'static str) -> Result<Option<i64>, StoreError>;
    fn opt_f64(&self, name: &'static str) -> Result<Option<f64>, StoreError>;
}

/// An incident row, without its calls and handoffs (filled in by the caller).
pub(super) fn incident_row(row: &impl Cols) -> Result<Incident, StoreError> {
    Ok(Incident {
        id: row.uuid("id")?,
        node_id: row.text("node_id")?,
        category: row.text("category")?,
        subcategory: row.opt_text("subcategory")?,
        location: row.opt_text("location")?,
        latitude: row.opt_f64("latitude")?,
        longitude: row.opt_f64("longitude")?,
        caller_name: row.opt_text("caller_name")?,
        notes: row.opt_text("notes")?,
        operator: row.opt_text("operator")?,
        created_at: UtcTime(row.int("created_at")?),
        updated_at: UtcTime(row.int("updated_at")?),
        calls: Vec::new(),
        handoffs: Vec::new(),
    })
}

pub(super) fn handoff_row(row: &impl Cols) -> Result<Handoff, StoreError> {
    let method = row.text("method")?;
    Ok(Handoff {
        id: row.uuid("id")?,
        incident_id: row.uuid("incident_id")?,
        node_id: row.text("node_id")?,
        agency: row.text("agency")?,
        method: method.parse().map_err(|_| StoreError::Corrupt {
            column: "handoffs.method",
            value: method,
        })?,
        handed_off_at: UtcTime(row.int("handed_off_at")?),
        reference: row.opt_text("reference")?,
        acknowledged_at: row.opt_int("acknowledged_at")?.map(UtcTime),
        closed_at: row.opt_int("closed_at")?.map(UtcTime),
        outcome: row.opt_text("outcome")?,
        operator: row.opt_text("operator")?,
        updated_at: UtcTime(row.int("updated_at")?),
    })
}

// ---- the Store's methods ---------------------------------------------------------------

impl Store {
    /// Creates an incident for `call` (classified, described) as node `node_id` at `now`,
    /// and links the call to it; returns the incident as stored.
    ///
    /// Errors: [`StoreError::Invalid`] (a text too long); [`StoreError::NotFound`] when
    /// no call `call` is recorded (its `received` event not written yet counts as not
    /// found); [`StoreError::AlreadyLinked`] when the call belongs to an incident already
    /// (nothing is created: update that incident, or link elsewhere after unlinking);
    /// [`StoreError::Database`].
    pub async fn create_incident(
        &self,
        node_id: &str,
        call: Uuid,
        incident: &NewIncident,
        now: UtcTime,
    ) -> Result<Incident, StoreError> {
        incident.details.check()?;
        let id = crate::engine::record::random_uuid(&mut rand::rng());
        match &self.backend {
            Backend::Sqlite(s) => s.create_incident(id, node_id, call, incident, now).await?,
            Backend::Postgres(s) => s.create_incident(id, node_id, call, incident, now).await?,
        }
        self.incident(id).await
    }

    /// Applies `update` to incident `id` at `now` (`updated_at`); returns the incident as
    /// stored.
    ///
    /// Errors: [`StoreError::Invalid`] (a text too long), [`StoreError::NotFound`],
    /// [`StoreError::Database`].
    pub async fn update_incident(
        &self,
        id: Uuid,
        update: &IncidentUpdate,
        now: UtcTime,
    ) -> Result<Incident, StoreError> {
        update.check()?;
        let changed = match &self.backend {
            Backend::Sqlite(s) => s.update_incident(id, update, now).await?,
            Backend::Postgres(s) => s.update_incident(id, update, now).await?,
        };
        if !changed {
            return Err(StoreError::NotFound {
                what: "incident",
                id,
            });
        }
        self.incident(id).await
    }

    /// Links `call` to incident `incident` at `now`, by `operator`; linking it again to
    /// the same incident changes nothing. Returns the incident as stored.
    ///
    /// Errors: [`StoreError::NotFound`] (no such call, or no such incident);
    /// [`StoreError::AlreadyLinked`] when the call belongs to another incident;
    /// [`StoreError::Database`].
    pub async fn link_call(
        &self,
        call: Uuid,
        incident: Uuid,
        operator: Option<&str>,
        now: UtcTime,
    ) -> Result<Incident, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.link_call(call, incident, operator, now).await?,
            Backend::Postgres(s) => s.link_call(call, incident, operator, now).await?,
        }
        self.incident(incident).await
    }

    /// Incident `id` with its calls and handoffs.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn incident(&self, id: Uuid) -> Result<Incident, StoreError> {
        let found = match &self.backend {
            Backend::Sqlite(s) => s.incident(id).await?,
            Backend::Postgres(s) => s.incident(id).await?,
        };
        found.ok_or(StoreError::NotFound {
            what: "incident",
            id,
        })
    }

    /// The incident `call` belongs to, if any.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn incident_of_call(&self, call: Uuid) -> Result<Option<Incident>, StoreError> {
        let id = match &self.backend {
            Backend::Sqlite(s) => s.incident_of_call(call).await?,
            Backend::Postgres(s) => s.incident_of_call(call).await?,
        };
        match id {
            Some(id) => self.incident(id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Records a handoff of incident `incident` as node `node_id` at `now`; returns it as
    /// stored.
    ///
    /// Errors: [`StoreError::Invalid`] (a text too long), [`StoreError::NotFound`] (no
    /// such incident), [`StoreError::Database`].
    pub async fn add_handoff(
        &self,
        node_id: &str,
        incident: Uuid,
        handoff: &NewHandoff,
        now: UtcTime,
    ) -> Result<Handoff, StoreError> {
        handoff.check()?;
        let id = crate::engine::record::random_uuid(&mut rand::rng());
        match &self.backend {
            Backend::Sqlite(s) => s.add_handoff(id, node_id, incident, handoff, now).await?,
            Backend::Postgres(s) => s.add_handoff(id, node_id, incident, handoff, now).await?,
        }
        self.handoff(id).await
    }

    /// Applies what the agency reported (`update`) to handoff `id` at `now`; returns it
    /// as stored.
    ///
    /// Errors: [`StoreError::Invalid`] (a text too long, or [`InputError::BeforeHandoff`]),
    /// [`StoreError::NotFound`], [`StoreError::Database`].
    pub async fn update_handoff(
        &self,
        id: Uuid,
        update: &HandoffUpdate,
        now: UtcTime,
    ) -> Result<Handoff, StoreError> {
        update.check()?;
        let changed = match &self.backend {
            Backend::Sqlite(s) => s.update_handoff(id, update, now).await?,
            Backend::Postgres(s) => s.update_handoff(id, update, now).await?,
        };
        let stored = self.handoff(id).await?;
        if !changed {
            // The row exists, so a time given was before the handoff.
            let field = match update.acknowledged_at {
                Some(at) if at < stored.handed_off_at => "acknowledged_at",
                _ => "closed_at",
            };
            return Err(InputError::BeforeHandoff { field }.into());
        }
        Ok(stored)
    }

    /// Handoff `id`.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn handoff(&self, id: Uuid) -> Result<Handoff, StoreError> {
        let found = match &self.backend {
            Backend::Sqlite(s) => s.handoff(id).await?,
            Backend::Postgres(s) => s.handoff(id).await?,
        };
        found.ok_or(StoreError::NotFound {
            what: "handoff",
            id,
        })
    }
}
