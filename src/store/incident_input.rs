//! What an operator may write into an incident or a handoff, checked before it reaches the
//! database: category and subcategory against `[[categories]]`, agency against
//! `[[agencies]]` ([`IncidentsConfig`]), the handoff method, a WGS 84 position, and the
//! lengths of free text. Pure functions and parsed types ("parse, don't validate"): the HTTP
//! API runs the same checks to answer 422 with the allowed values ([`InputError`]), and the
//! store's methods take only the parsed types, so an unknown category cannot be stored.

use crate::config::IncidentsConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest `location` (the place as the caller describes it), in characters.
pub const LOCATION_MAX: usize = 500;
/// Longest `caller_name`, in characters.
pub const CALLER_NAME_MAX: usize = 200;
/// Longest `notes`, in characters.
pub const NOTES_MAX: usize = 4000;
/// Longest handoff `reference` (the agency's ticket number), in characters.
pub const REFERENCE_MAX: usize = 100;
/// Longest handoff `outcome`, in characters.
pub const OUTCOME_MAX: usize = 2000;

/// Why an incident or handoff input was refused. Each variant names the field
/// ([`InputError::field`]); the unknown-id variants list the allowed values, in the
/// configuration's order.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InputError {
    /// `category` is not a `categories[].id`.
    #[error("unknown category {given:?}; allowed: {}", allowed.join(", "))]
    UnknownCategory {
        /// The value given.
        given: String,
        /// The configured category ids.
        allowed: Vec<String>,
    },
    /// `subcategory` is not one of the category's `subcategories[].id`.
    #[error("unknown subcategory {given:?} of category {category}; allowed: {}", allowed.join(", "))]
    UnknownSubcategory {
        /// The category it was given with.
        category: String,
        /// The value given.
        given: String,
        /// The category's subcategory ids (empty: the category has none).
        allowed: Vec<String>,
    },
    /// `agency` is not an `agencies[].id`.
    #[error("unknown agency {given:?}; allowed: {}", allowed.join(", "))]
    UnknownAgency {
        /// The value given.
        given: String,
        /// The configured agency ids.
        allowed: Vec<String>,
    },
    /// `method` is not a handoff method.
    #[error("unknown handoff method {given:?}; allowed: {}", HandoffMethod::ALL.map(|m| m.as_str()).join(", "))]
    UnknownMethod {
        /// The value given.
        given: String,
    },
    /// `latitude`/`longitude` outside WGS 84's ranges (−90…90, −180…180 degrees), or not
    /// a number.
    #[error(
        "{field} {value} is not a WGS 84 position in degrees (latitude -90..90, longitude -180..180, both or neither)"
    )]
    BadPosition {
        /// `latitude` or `longitude`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// Only one of `latitude` and `longitude` given (or, in an edit, one set and the
    /// other cleared): `missing` names the one absent (or cleared).
    #[error(
        "{missing} is missing: latitude and longitude are given together (both numbers, or both null)"
    )]
    HalfPosition {
        /// `latitude` or `longitude`.
        missing: &'static str,
    },
    /// A text longer than its field allows.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its limit, in characters.
        max: usize,
    },
    /// A text holding a NUL character (U+0000), which no record can keep (PostgreSQL's
    /// `text` refuses it, SQLSTATE 22021).
    #[error("{field} contains a NUL character")]
    Nul {
        /// The field.
        field: &'static str,
    },
    /// A handoff's `acknowledged_at` or `closed_at` before its `handed_off_at`.
    #[error("{field} is before handed_off_at")]
    BeforeHandoff {
        /// `acknowledged_at` or `closed_at`.
        field: &'static str,
    },
}

impl InputError {
    /// The input field the error is about (`category`, `subcategory`, `agency`, `method`,
    /// `latitude`, `longitude`, `location`, `notes` …).
    pub fn field(&self) -> &'static str {
        match self {
            InputError::UnknownCategory { .. } => "category",
            InputError::UnknownSubcategory { .. } => "subcategory",
            InputError::UnknownAgency { .. } => "agency",
            InputError::UnknownMethod { .. } => "method",
            InputError::HalfPosition { missing: field }
            | InputError::BadPosition { field, .. }
            | InputError::TooLong { field, .. }
            | InputError::Nul { field }
            | InputError::BeforeHandoff { field } => field,
        }
    }
}

/// A category and (optionally) one of its subcategories, both configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    category: String,
    subcategory: Option<String>,
}

impl Classification {
    /// Checks `category` (a `categories[].id`) and `subcategory` (one of that category's
    /// `subcategories[].id`) against `config`; ids compare exactly.
    ///
    /// Errors: [`InputError::UnknownCategory`], [`InputError::UnknownSubcategory`].
    pub fn new(
        config: &IncidentsConfig,
        category: &str,
        subcategory: Option<&str>,
    ) -> Result<Self, InputError> {
        let Some(found) = config.category(category) else {
            return Err(InputError::UnknownCategory {
                given: category.to_owned(),
                allowed: config.category_ids().map(str::to_owned).collect(),
            });
        };
        if let Some(sub) = subcategory
            && found.subcategory(sub).is_none()
        {
            return Err(InputError::UnknownSubcategory {
                category: category.to_owned(),
                given: sub.to_owned(),
                allowed: found.subcategory_ids().map(str::to_owned).collect(),
            });
        }
        Ok(Classification {
            category: category.to_owned(),
            subcategory: subcategory.map(str::to_owned),
        })
    }

    /// The category id.
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The subcategory id, if one was given.
    pub fn subcategory(&self) -> Option<&str> {
        self.subcategory.as_deref()
    }
}

/// A configured agency's id (`agencies[].id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyId(String);

impl AgencyId {
    /// Checks `id` against `config`'s agencies (compared exactly).
    ///
    /// Errors: [`InputError::UnknownAgency`].
    pub fn new(config: &IncidentsConfig, id: &str) -> Result<Self, InputError> {
        match config.agency(id) {
            Some(_) => Ok(AgencyId(id.to_owned())),
            None => Err(InputError::UnknownAgency {
                given: id.to_owned(),
                allowed: config.agency_ids().map(str::to_owned).collect(),
            }),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an incident was handed to an agency (stored in `handoffs.method`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HandoffMethod {
    /// `call_transfer`: the live call was transferred to the agency's `transfer_uri`.
    CallTransfer,
    /// `phone`: the operator phoned the agency.
    Phone,
    /// `radio`: by radio.
    Radio,
    /// `app`: through the agency's application or messaging.
    App,
}

impl HandoffMethod {
    /// Every method, in the order errors list them.
    pub const ALL: [HandoffMethod; 4] = [
        HandoffMethod::CallTransfer,
        HandoffMethod::Phone,
        HandoffMethod::Radio,
        HandoffMethod::App,
    ];

    /// The stored word: `call_transfer`, `phone`, `radio`, `app`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffMethod::CallTransfer => "call_transfer",
            HandoffMethod::Phone => "phone",
            HandoffMethod::Radio => "radio",
            HandoffMethod::App => "app",
        }
    }
}

impl fmt::Display for HandoffMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HandoffMethod {
    type Err = InputError;

    /// Errors: [`InputError::UnknownMethod`].
    fn from_str(s: &str) -> Result<Self, InputError> {
        HandoffMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| InputError::UnknownMethod {
                given: s.to_owned(),
            })
    }
}

/// Where the incident is, in WGS 84 degrees (as a phone's AML/GPS fix gives it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    latitude: f64,
    longitude: f64,
}

impl Position {
    /// A position from `latitude` (−90…90) and `longitude` (−180…180), in degrees.
    ///
    /// Errors: [`InputError::BadPosition`] naming the coordinate out of range (or NaN).
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, InputError> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(InputError::BadPosition {
                field: "latitude",
                value: latitude,
            });
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(InputError::BadPosition {
                field: "longitude",
                value: longitude,
            });
        }
        Ok(Position {
            latitude,
            longitude,
        })
    }

    /// A position from optional coordinates as an API receives them: both or neither.
    ///
    /// Errors: [`InputError::BadPosition`] (out of range), [`InputError::HalfPosition`]
    /// naming the coordinate missing.
    pub fn from_pair(
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Result<Option<Self>, InputError> {
        match (latitude, longitude) {
            (None, None) => Ok(None),
            (Some(lat), Some(lon)) => Position::new(lat, lon).map(Some),
            (None, Some(_)) => Err(InputError::HalfPosition {
                missing: "latitude",
            }),
            (Some(_), None) => Err(InputError::HalfPosition {
                missing: "longitude",
            }),
        }
    }

    /// The position change of an edit (`PATCH`), where each coordinate is absent (`None`:
    /// unchanged), `null` (`Some(None)`: cleared) or a number: `None` leaves the position,
    /// `Some(None)` clears it, `Some(Some(_))` sets it. The two change together.
    ///
    /// Errors: [`InputError::BadPosition`] (out of range); [`InputError::HalfPosition`]
    /// naming the coordinate absent, or when both are given, the one that is `null`
    /// while the other is a number.
    #[allow(clippy::option_option)] // absent, null and a value are three answers
    pub fn from_patch(
        latitude: Option<Option<f64>>,
        longitude: Option<Option<f64>>,
    ) -> Result<Option<Option<Self>>, InputError> {
        let missing = match (latitude, longitude) {
            (None, None) => return Ok(None),
            (Some(None), Some(None)) => return Ok(Some(None)),
            (Some(Some(lat)), Some(Some(lon))) => return Ok(Some(Some(Position::new(lat, lon)?))),
            (_, None) | (Some(Some(_)), Some(None)) => "longitude",
            (None, _) | (Some(None), Some(Some(_))) => "latitude",
        };
        Err(InputError::HalfPosition { missing })
    }

    /// Degrees north (negative: south).
    pub fn latitude(self) -> f64 {
        self.latitude
    }

    /// Degrees east (negative: west).
    pub fn longitude(self) -> f64 {
        self.longitude
    }
}

/// Checks that `value` (of `field`) has at most `max` characters and no NUL.
///
/// Errors: [`InputError::Nul`], [`InputError::TooLong`].
pub fn check_text(field: &'static str, value: Option<&str>, max: usize) -> Result<(), InputError> {
    match value {
        Some(text) if text.contains('\0') => Err(InputError::Nul { field }),
        Some(text) if text.chars().count() > max => Err(InputError::TooLong { field, max }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A half position names the coordinate that is missing, whichever of the two is
    /// given, in a new incident and in an edit.
    #[test]
    fn a_half_position_names_the_missing_coordinate() {
        let missing = |e: InputError| match e {
            InputError::HalfPosition { missing } => missing,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            missing(Position::from_pair(Some(-6.2), None).unwrap_err()),
            "longitude"
        );
        assert_eq!(
            missing(Position::from_pair(None, Some(106.8)).unwrap_err()),
            "latitude"
        );
        for (lat, lon, expected) in [
            (Some(Some(-6.2)), None, "longitude"),
            (None, Some(Some(106.8)), "latitude"),
            (Some(None), None, "longitude"),
            (None, Some(None), "latitude"),
            (Some(Some(-6.2)), Some(None), "longitude"),
            (Some(None), Some(Some(106.8)), "latitude"),
        ] {
            let error = Position::from_patch(lat, lon).unwrap_err();
            assert_eq!(error.field(), expected, "{lat:?} {lon:?}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{expected} is missing")),
                "{error}"
            );
        }
        assert_eq!(Position::from_patch(None, None), Ok(None));
        assert_eq!(Position::from_patch(Some(None), Some(None)), Ok(Some(None)));
        assert_eq!(
            Position::from_patch(Some(Some(-6.2)), Some(Some(106.8))),
            Ok(Some(Some(Position::new(-6.2, 106.8).unwrap())))
        );
        assert_eq!(
            Position::from_patch(Some(Some(91.0)), Some(Some(0.0)))
                .unwrap_err()
                .field(),
            "latitude"
        );
    }
}
