//! Who may use the HTTP API: `[[users]]` (supervisors and administrators), the operators'
//! `operators[].api_password_hash`, and `http.session_ttl_s`.
//!
//! API passwords are stored only as argon2id hashes in PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, RFC 9106 / the PHC string format), as
//! `siaga hash-password` prints them; a plain password or another algorithm is refused at
//! start, naming the key. Ids share one namespace with `operators[].id` (compared without
//! case), so a login name means one person.

use super::calls::OperatorConfig;
use super::error::{ConfigError, Problem, Source};
use super::invalid;
use super::values;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A role in the HTTP API. Each endpoint names the roles it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An operator (agent, call-taker): their own state and calls. Every `[[operators]]`
    /// entry with an `api_password_hash`.
    Operator,
    /// A supervisor: the live view of the queue and the operators, the call records.
    Supervisor,
    /// An administrator: everything a supervisor may do.
    Admin,
}

impl Role {
    /// `operator`, `supervisor`, `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API password's argon2id hash, PHC string format, checked to parse at load. Its
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Parses a PHC string whose algorithm is `argon2id`.
    ///
    /// Errors: [`Problem::BadPasswordHash`].
    pub fn parse(s: &str) -> Result<PasswordHash, Problem> {
        let phc = argon2::PasswordHash::new(s).map_err(|_| Problem::BadPasswordHash)?;
        if phc.algorithm != argon2::Algorithm::Argon2id.ident() || phc.hash.is_none() {
            return Err(Problem::BadPasswordHash);
        }
        Ok(PasswordHash(s.to_owned()))
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// One entry of `[[users]]`: a supervisor or an administrator of the HTTP API.
#[derive(Clone, Debug)]
pub struct UserConfig {
    /// `users[].id` (required; 1–32 characters of `A-Z a-z 0-9 . _ -`; unique among users
    /// and operators, compared without case): the login name.
    pub id: String,
    /// `users[].name` (optional; 1–64 characters, no control characters).
    pub name: Option<String>,
    /// `users[].role` (required): `supervisor` or `admin`.
    pub role: Role,
    /// `users[].api_password_hash` (required): argon2id PHC string.
    pub password_hash: PasswordHash,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    id: String,
    name: Option<String>,
    role: String,
    api_password_hash: String,
}

impl fmt::Debug for RawUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("api_password_hash", &"***")
            .finish()
    }
}

/// The range of `http.session_ttl_s`: a minute to a week.
const SESSION_TTL_S: (u32, u32) = (60, 604_800);

/// `http.session_ttl_s` as a duration.
pub(super) fn session_ttl(seconds: u32) -> Result<Duration, ConfigError> {
    let (min, max) = SESSION_TTL_S;
    if !(min..=max).contains(&seconds) {
        return Err(invalid(
            Source::Key("http.session_ttl_s"),
            seconds,
            Problem::OutOfRange {
                min: min.into(),
                max: max.into(),
            },
        ));
    }
    Ok(Duration::from_secs(seconds.into()))
}

/// Validates `[[users]]` against `operators` (one namespace of ids).
pub(super) fn validate(
    raw: &[RawUser],
    operators: &[OperatorConfig],
) -> Result<Vec<UserConfig>, ConfigError> {
    let mut users: Vec<UserConfig> = Vec::with_capacity(raw.len());
    for (i, user) in raw.iter().enumerate() {
        let key = |field: &str| Source::Entry(format!("users[{i}].{field}"));
        let id = values::parse_name(&user.id).map_err(|p| invalid(key("id"), &user.id, p))?;
        let taken = users
            .iter()
            .position(|u| u.id.eq_ignore_ascii_case(&id))
            .map(|j| format!("users[{j}].id"))
            .or_else(|| {
                operators
                    .iter()
                    .position(|o| o.id.eq_ignore_ascii_case(&id))
                    .map(|j| format!("operators[{j}].id"))
            });
        if let Some(other) = taken {
            return Err(invalid(
                key("id"),
                &user.id,
                Problem::Repeats { key: other },
            ));
        }
        let name = match &user.name {
            Some(n) => Some(values::parse_display_name(n).map_err(|p| invalid(key("name"), n, p))?),
            None => None,
        };
        let role = match user.role.as_str() {
            "supervisor" => Role::Supervisor,
            "admin" => Role::Admin,
            _ => {
                let problem = Problem::NotOneOf {
                    choices: "\"supervisor\", \"admin\" (operators are [[operators]] entries)",
                };
                return Err(invalid(key("role"), &user.role, problem));
            }
        };
        let password_hash = PasswordHash::parse(&user.api_password_hash).map_err(|p| {
            invalid(
                key("api_password_hash"),
                format_args!("({} characters, not shown)", user.api_password_hash.len()),
                p,
            )
        })?;
        users.push(UserConfig {
            id,
            name,
            role,
            password_hash,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    /// A well-formed argon2id PHC string (parsed, never verified here).
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2lhZ2EtdGVzdC1zYWx0$Af8aDFxwAjL3nS1B3Kpe9Z0dPwdmFXpL+1ZJkMrtglc";

    fn base(extra: &str) -> String {
        format!(
            "[node]\nid = \"n1\"\n[sip]\ndomains = [\"siaga.test\"]\n[trunk]\nsources = [\"127.0.0.1\"]\n\
             [[operators]]\nid = \"1001\"\npassword = \"pw\"\napi_password_hash = \"{HASH}\"\n{extra}"
        )
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, |_| None)
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { origin, .. } => origin.to_string(),
            other => panic!("not an invalid value: {other}"),
        }
    }

    #[test]
    fn users_and_operator_hashes_load() {
        let c = load(&base(&format!(
            "[[users]]\nid = \"sup\"\nname = \"Shift lead\"\nrole = \"supervisor\"\napi_password_hash = \"{HASH}\"\n\
             [[users]]\nid = \"root\"\nrole = \"admin\"\napi_password_hash = \"{HASH}\"\n"
        )))
        .expect("valid");
        assert_eq!(c.users.len(), 2);
        assert_eq!(
            (c.users[0].id.as_str(), c.users[0].role),
            ("sup", Role::Supervisor)
        );
        assert_eq!(c.users[1].role, Role::Admin);
        assert_eq!(
            c.operators[0]
                .api_password_hash
                .as_ref()
                .map(|h| h.as_str()),
            Some(HASH)
        );
        assert_eq!(c.http.session_ttl, Duration::from_secs(43_200));
        assert!(!format!("{:?}", c.users[0]).contains("argon2id$"));
    }

    #[test]
    fn bad_users_name_their_key() {
        let user = |id: &str, role: &str, hash: &str| {
            base(&format!(
                "[[users]]\nid = \"{id}\"\nrole = \"{role}\"\napi_password_hash = \"{hash}\"\n"
            ))
        };
        let cases = [
            (user("sup", "boss", HASH), "users[0].role"),
            (user("SUP 1", "admin", HASH), "users[0].id"),
            (user("1001", "admin", HASH), "users[0].id"),
            (user("sup", "admin", "secret"), "users[0].api_password_hash"),
            (
                // argon2i, not argon2id.
                user(
                    "sup",
                    "admin",
                    "$argon2i$v=19$m=19456,t=2,p=1$c2lhZ2EtdGVzdC1zYWx0$Af8aDFxwAjL3nS1B3Kpe9Z0dPwdmFXpL+1ZJkMrtglc",
                ),
                "users[0].api_password_hash",
            ),
            (base("[http]\nsession_ttl_s = 10\n"), "http.session_ttl_s"),
        ];
        for (text, key) in cases {
            assert_eq!(key_of(load(&text).expect_err(key)), key, "{text}");
        }
        let plain = base("").replace(HASH, "hunter2");
        assert_eq!(
            key_of(load(&plain).expect_err("plain")),
            "operators[0].api_password_hash"
        );
    }
}
