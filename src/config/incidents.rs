//! The incident vocabulary operators classify calls with: `[[categories]]` (one list,
//! emergency and non-emergency, each with its subcategories and the agencies it is usually
//! handed to) and `[[agencies]]` (the field agencies incidents are handed off to, with how
//! to reach them). When the file leaves a list out, the Indonesian 112 service's list
//! applies ([`defaults`]).
//!
//! As in the rest of the module: raw serde structs (`deny_unknown_fields`), then validation
//! into typed values, every error naming its key (`categories[2].agencies[0]`). Ids are
//! stable slugs: they are what the call record and the API store and accept, while labels
//! and names may be reworded at will.

mod defaults;

#[cfg(test)]
mod tests;

use super::error::{ConfigError, Problem, Source};
use super::invalid;
use crate::engine::sip::uri::Uri;
use serde::Deserialize;

/// The categories and agencies, validated: ids unique within their list, every agency a
/// category names defined. Built from `[[categories]]` and `[[agencies]]`, or from the
/// built-in defaults for a list the file leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentsConfig {
    /// `[[categories]]`, in file order (the order operators are shown them), or the
    /// built-in list: medical, fire, natural disaster, security and public order, then
    /// prank, silent, information request, misdial, test call. Never empty.
    pub categories: Vec<Category>,
    /// `[[agencies]]`, in file order, or the built-in list: `psc119` (health office /
    /// ambulance), `damkar` (fire brigade), `bpbd` (disaster agency), `polri` (police).
    /// Never empty.
    pub agencies: Vec<Agency>,
}

impl IncidentsConfig {
    /// The category with id `id` (ids are lower case; compared exactly).
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// The agency with id `id` (compared exactly).
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.id == id)
    }

    /// The category ids in order: the allowed values an API error lists.
    pub fn category_ids(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.id.as_str())
    }

    /// The agency ids in order: the allowed values an API error lists.
    pub fn agency_ids(&self) -> impl Iterator<Item = &str> {
        self.agencies.iter().map(|a| a.id.as_str())
    }
}

/// One entry of `[[categories]]`: what kind of incident a call is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    /// `categories[].id` (required; 1–32 characters of `a-z 0-9 _ -` starting with a
    /// letter; unique): the stable slug stored with an incident, e.g. `medical`.
    pub id: String,
    /// `categories[].label` (required; 1–80 characters, not blank, no control
    /// characters): the text operators and supervisors see, e.g. `Kesehatan`.
    pub label: String,
    /// `categories[].emergency` (required): whether the category is an emergency (medical,
    /// fire …) or not (prank, misdial …). Statistics count the two apart.
    pub emergency: bool,
    /// `categories[].subcategories` (default none): `{ id, label }` tables, ids unique
    /// within the category, with the rules of the category's own.
    pub subcategories: Vec<Subcategory>,
    /// `categories[].agencies` (default none): ids of `[[agencies]]` entries an incident of
    /// this category is usually handed to, proposed first; each defined, none twice.
    pub agencies: Vec<String>,
}

impl Category {
    /// The subcategory with id `id` (compared exactly).
    pub fn subcategory(&self, id: &str) -> Option<&Subcategory> {
        self.subcategories.iter().find(|s| s.id == id)
    }

    /// The subcategory ids in order: the allowed values an API error lists.
    pub fn subcategory_ids(&self) -> impl Iterator<Item = &str> {
        self.subcategories.iter().map(|s| s.id.as_str())
    }
}

/// One entry of `categories[].subcategories`, e.g. `traffic_accident` under `medical`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subcategory {
    /// `categories[].subcategories[].id`: a slug, unique within its category.
    pub id: String,
    /// `categories[].subcategories[].label`: the text operators see.
    pub label: String,
}

/// One entry of `[[agencies]]`: a field agency incidents are handed off to (NENA/EENA
/// usage: the responding agency behind the PSAP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agency {
    /// `agencies[].id` (required; a slug like a category's; unique), e.g. `damkar`.
    pub id: String,
    /// `agencies[].name` (required; 1–80 characters, not blank, no control characters),
    /// e.g. `Pemadam Kebakaran (Damkar)`.
    pub name: String,
    /// `agencies[].transfer_uri` (optional): where a live call is transferred when an
    /// operator hands the caller over to the agency: a `sip:`, `sips:` or `tel:` URI
    /// (RFC 3261 §19.1, RFC 3966) without URI headers, kept as written. `None`: the
    /// agency takes handoffs by phone, radio or app only.
    pub transfer_uri: Option<String>,
    /// `agencies[].phone` (optional): the number operators call, as written (digits after
    /// an optional `+`; spaces and `- . ( )` allowed as separators).
    pub phone: Option<String>,
}

// ---- raw form ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCategory {
    id: String,
    label: String,
    emergency: bool,
    #[serde(default)]
    subcategories: Vec<RawSubcategory>,
    #[serde(default)]
    agencies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubcategory {
    id: String,
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgency {
    id: String,
    name: String,
    transfer_uri: Option<String>,
    phone: Option<String>,
}

// ---- validation --------------------------------------------------------------------------

/// Validates `[[agencies]]` and then `[[categories]]` (which refer to agencies); `None`
/// for a list the file leaves out takes the built-in one.
///
/// Errors: [`Problem::EmptyList`] for `categories = []` or `agencies = []`;
/// [`Problem::BadSlug`], [`Problem::BadLabel`], [`Problem::Repeats`] (a repeated id),
/// [`Problem::BadTransferUri`], [`Problem::BadPhone`]; [`Problem::UnknownAgency`] or
/// [`Problem::Duplicate`] for a category's agency; [`Problem::BuiltInCategoryAgency`] when
/// the built-in categories name an agency the written `[[agencies]]` lack.
pub(super) fn validate(
    categories: Option<&[RawCategory]>,
    agencies: Option<&[RawAgency]>,
) -> Result<IncidentsConfig, ConfigError> {
    let agencies = match agencies {
        Some(raw) => validate_agencies(raw)?,
        None => defaults::agencies(),
    };
    let categories = match categories {
        Some(raw) => validate_categories(raw, &agencies)?,
        None => {
            let categories = defaults::categories();
            check_built_in_agencies(&categories, &agencies)?;
            categories
        }
    };
    Ok(IncidentsConfig {
        categories,
        agencies,
    })
}

fn validate_agencies(raw: &[RawAgency]) -> Result<Vec<Agency>, ConfigError> {
    non_empty("agencies", raw)?;
    let mut agencies: Vec<Agency> = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let key = |field: &str| Source::Entry(format!("agencies[{i}].{field}"));
        let id = entry(key("id"), &a.id, parse_slug)?;
        if let Some(j) = agencies.iter().position(|earlier| earlier.id == id) {
            let earlier = format!("agencies[{j}].id");
            return Err(invalid(key("id"), &a.id, Problem::Repeats { key: earlier }));
        }
        let name = entry(key("name"), &a.name, parse_label)?;
        let transfer_uri = match &a.transfer_uri {
            Some(uri) => Some(entry(key("transfer_uri"), uri, parse_transfer_uri)?),
            None => None,
        };
        let phone = match &a.phone {
            Some(phone) => Some(entry(key("phone"), phone, parse_phone)?),
            None => None,
        };
        agencies.push(Agency {
            id,
            name,
            transfer_uri,
            phone,
        });
    }
    Ok(agencies)
}

fn validate_categories(
    raw: &[RawCategory],
    agencies: &[Agency],
) -> Result<Vec<Category>, ConfigError> {
    non_empty("categories", raw)?;
    let mut categories: Vec<Category> = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let key = |field: &str| Source::Entry(format!("categories[{i}].{field}"));
        let id = entry(key("id"), &c.id, parse_slug)?;
        if let Some(j) = categories.iter().position(|earlier| earlier.id == id) {
            let earlier = format!("categories[{j}].id");
            return Err(invalid(key("id"), &c.id, Problem::Repeats { key: earlier }));
        }
        let label = entry(key("label"), &c.label, parse_label)?;
        let mut subcategories: Vec<Subcategory> = Vec::with_capacity(c.subcategories.len());
        for (k, s) in c.subcategories.iter().enumerate() {
            let key = |field: &str| key(&format!("subcategories[{k}].{field}"));
            let id = entry(key("id"), &s.id, parse_slug)?;
            if let Some(j) = subcategories.iter().position(|earlier| earlier.id == id) {
                let earlier = format!("categories[{i}].subcategories[{j}].id");
                return Err(invalid(key("id"), &s.id, Problem::Repeats { key: earlier }));
            }
            let label = entry(key("label"), &s.label, parse_label)?;
            subcategories.push(Subcategory { id, label });
        }
        let mut own_agencies: Vec<String> = Vec::with_capacity(c.agencies.len());
        for (k, a) in c.agencies.iter().enumerate() {
            let key = key(&format!("agencies[{k}]"));
            if agencies.iter().all(|defined| defined.id != *a) {
                let problem = Problem::UnknownAgency {
                    agencies: quoted_ids(agencies),
                };
                return Err(invalid(key, a, problem));
            }
            if own_agencies.contains(a) {
                return Err(invalid(key, a, Problem::Duplicate));
            }
            own_agencies.push(a.clone());
        }
        categories.push(Category {
            id,
            label,
            emergency: c.emergency,
            subcategories,
            agencies: own_agencies,
        });
    }
    Ok(categories)
}

/// The built-in categories name the built-in agencies; a file that writes its own
/// `[[agencies]]` but keeps the built-in categories must define those it names.
fn check_built_in_agencies(
    categories: &[Category],
    agencies: &[Agency],
) -> Result<(), ConfigError> {
    for category in categories {
        for a in &category.agencies {
            if agencies.iter().all(|defined| defined.id != *a) {
                let problem = Problem::BuiltInCategoryAgency {
                    category: category.id.clone(),
                    agencies: quoted_ids(agencies),
                };
                return Err(invalid(Source::Key("categories"), a, problem));
            }
        }
    }
    Ok(())
}

fn non_empty<T>(key: &'static str, raw: &[T]) -> Result<(), ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            Source::Key(key),
            Vec::<String>::new(),
            Problem::EmptyList,
        ));
    }
    Ok(())
}

/// Checks `value` with `parse`, naming `key` on error.
fn entry<T>(
    key: Source,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Result<T, ConfigError> {
    parse(value).map_err(|problem| invalid(key, value, problem))
}

/// The agencies' ids, quoted and comma-separated, for an error.
fn quoted_ids(agencies: &[Agency]) -> String {
    agencies
        .iter()
        .map(|a| format!("{:?}", a.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Longest id of a category, subcategory or agency, in characters.
pub const MAX_SLUG_LEN: usize = 32;

/// Longest label or agency name, in characters.
pub const MAX_LABEL_LEN: usize = 80;

/// An id: 1–32 characters of `a-z 0-9 _ -`, the first a letter. Lower case only, so that
/// an id compares exactly wherever it is stored. Errors: [`Problem::BadSlug`].
fn parse_slug(s: &str) -> Result<String, Problem> {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-');
    let first_letter = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if s.len() <= MAX_SLUG_LEN && first_letter && s.bytes().all(ok_char) {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadSlug)
    }
}

/// A label or name: 1–80 characters, not only white space, no control characters.
/// Errors: [`Problem::BadLabel`].
fn parse_label(s: &str) -> Result<String, Problem> {
    let len = s.chars().count();
    if (1..=MAX_LABEL_LEN).contains(&len)
        && !s.trim().is_empty()
        && !s.chars().any(char::is_control)
    {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadLabel)
    }
}

/// A `tel:` transfer_uri is called through the trunk's gateways (`call::gateway`), so it
/// needs at least one. Errors: [`Problem::TelTransferWithoutGateways`] naming the first
/// `agencies[i].transfer_uri` that is a `tel:` URI when `has_gateways` is false.
pub(super) fn check_tel_transfers(
    agencies: &[Agency],
    has_gateways: bool,
) -> Result<(), ConfigError> {
    if has_gateways {
        return Ok(());
    }
    for (i, a) in agencies.iter().enumerate() {
        if let Some(uri) = &a.transfer_uri
            && matches!(Uri::parse(uri), Ok(Uri::Tel(_)))
        {
            let key = Source::Entry(format!("agencies[{i}].transfer_uri"));
            return Err(invalid(key, uri, Problem::TelTransferWithoutGateways));
        }
    }
    Ok(())
}

/// A transfer target: a `sip:`, `sips:` or `tel:` URI by the engine's own URI grammar (so
/// what the configuration accepts the engine can write in a Request-URI), without URI
/// headers. Errors: [`Problem::BadTransferUri`].
fn parse_transfer_uri(s: &str) -> Result<String, Problem> {
    match Uri::parse(s) {
        Ok(Uri::Sip(sip)) if sip.headers().is_empty() => Ok(s.to_owned()),
        Ok(Uri::Tel(_)) => Ok(s.to_owned()),
        _ => Err(Problem::BadTransferUri),
    }
}

/// Longest phone number, in digits (the `+` included), as for emergency numbers.
const MAX_PHONE_DIGITS: usize = 32;

/// A phone number as people write it: digits after an optional `+`, with spaces and
/// RFC 3966 §5.1.1's visual separators `- . ( )`; kept as written. Errors:
/// [`Problem::BadPhone`].
fn parse_phone(s: &str) -> Result<String, Problem> {
    let bare: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = bare.strip_prefix('+').unwrap_or(&bare);
    if bare.len() <= MAX_PHONE_DIGITS
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadPhone)
    }
}
