//! HTTP Digest authentication as a SIP UAS uses it (RFC 3261 §22, §22.4; RFC 2617 §3.2;
//! RFC 7616 §3.3–3.4): challenges, stateless nonces with expiry, `nc` replay tracking, and
//! verification of `Authorization` credentials against a stored HA1. MD5 with `qop=auth`;
//! RFC 2069 credentials (no `qop`) are accepted once per nonce.
//!
//! This module owns the verifier ([`DigestAuth`]); the registrar uses it for REGISTER, and
//! INVITE authentication (feature codes) can share it.
//!
//! # Nonces
//!
//! A nonce is 64 lowercase hex digits: 8 bytes of issue time (milliseconds of
//! [`MonoTime`] since its origin, big-endian), 8 random bytes, and the first 16 bytes of
//! HMAC-SHA256(key, those 16 bytes). siaga keeps no state per challenge: [`Nonces::check`]
//! recomputes the MAC (constant time) and compares the age with the TTL. A nonce from
//! another key (another node, or before a restart, since the key is drawn at start) is
//! [`NonceState::Invalid`].
//!
//! # Answers
//!
//! [`DigestAuth::verify`] never tells an unknown user from a wrong password: both compute
//! an MD5 response (a fixed dummy HA1 stands in for the missing user) and both draw the
//! same outcome. In order:
//! - credentials for another realm: [`AuthOutcome::Challenge`] (RFC 3261 §22.3: ignore them);
//! - an algorithm other than MD5, a `qop` other than `auth`, a missing `nc`/`cnonce` with
//!   `qop`, or a `uri` that is not the Request-URI: [`AuthOutcome::BadRequest`]
//!   (RFC 2617 §3.2.2.5 answers a `uri` mismatch with 400);
//! - a stale or foreign nonce: [`AuthOutcome::Challenge`], with `stale: true` only when the
//!   response is right for that nonce (RFC 7616 §3.3: stale means "the password was right");
//! - a wrong response or unknown user with a valid nonce: [`AuthOutcome::Forbidden`];
//! - a right response whose `nc` is not higher than the highest seen for that nonce
//!   (a replay), or a second RFC 2069 use of a nonce: `Challenge { stale: true }`. The
//!   replayer cannot answer the fresh nonce; a real client retries without asking its user;
//! - otherwise [`AuthOutcome::Ok`].
//!
//! # Bounds
//!
//! The `nc` table holds one entry per nonce that authenticated successfully within the
//! nonce TTL, at most [`NC_TRACK_MAX`]. When full, the oldest nonce is evicted and every
//! nonce issued up to it is from then on answered `stale=true` (so an evicted nonce cannot
//! be replayed from `nc=1` again). Nothing is stored for unauthenticated requests.

use super::sip::uri::Uri;
use super::sip::view::AuthValue;
use super::sip::{HeaderName, ParseError, SipMessage};
use super::time::MonoTime;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The most nonces whose `nc` is tracked at once (see the module docs, "Bounds").
pub const NC_TRACK_MAX: usize = 4096;

/// Bytes of the nonce payload (issue time + salt) and of its truncated MAC.
const PAYLOAD_LEN: usize = 16;
const MAC_LEN: usize = 16;

/// Stands in for the HA1 of an unknown user, so that unknown users cost the same MD5 work
/// as known ones. No password hashes to it knowingly; a match is discarded anyway.
const DUMMY_HA1: Ha1 = Ha1([0x5a; 16]);

/// HA1 = MD5(username ":" realm ":" password) (RFC 2617 §3.2.2.2), the password-equivalent
/// siaga stores per operator. 16 bytes; written as 32 lowercase hex digits. `Debug` does
/// not print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ha1([u8; 16]);

impl Ha1 {
    /// HA1 of `user` in `realm` with `password` (config key `operators[].password`; the
    /// realm is the first `sip.domains` entry).
    pub fn from_password(user: &str, realm: &str, password: &str) -> Ha1 {
        Ha1(md5_parts(&[
            user.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ]))
    }

    /// Parses 32 hex digits (either case), as in config key `operators[].ha1`.
    ///
    /// Errors: [`Ha1Error::Malformed`] for anything else.
    pub fn from_hex(hex_digits: &str) -> Result<Ha1, Ha1Error> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(hex_digits.trim(), &mut out).map_err(|_| Ha1Error::Malformed)?;
        Ok(Ha1(out))
    }

    /// The 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Ha1 {
        Ha1(bytes)
    }

    /// 32 lowercase hex digits (the form digest computations use).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1(<redacted>)")
    }
}

impl FromStr for Ha1 {
    type Err = Ha1Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ha1::from_hex(s)
    }
}

/// Why a configured HA1 was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ha1Error {
    /// Not exactly 32 hex digits.
    #[error("HA1 must be 32 hex digits (MD5 of user:realm:password)")]
    Malformed,
}

/// A `WWW-Authenticate` (or `Proxy-Authenticate`) Digest challenge (RFC 3261 §22.1,
/// RFC 2617 §3.2.1): always `algorithm=MD5, qop="auth"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestChallenge {
    /// The protection space: siaga's first `sip.domains` entry.
    pub realm: String,
    /// A nonce from [`Nonces::issue`].
    pub nonce: String,
    /// `stale=true`: the previous credentials were right but the nonce was not usable.
    pub stale: bool,
    /// An opaque value the client must echo; siaga's nonces need none.
    pub opaque: Option<String>,
}

impl DigestChallenge {
    /// A challenge without `stale` or `opaque`.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>) -> Self {
        DigestChallenge {
            realm: realm.into(),
            nonce: nonce.into(),
            stale: false,
            opaque: None,
        }
    }

    /// Sets `stale`.
    pub fn stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Sets `opaque`.
    pub fn opaque(mut self, opaque: impl Into<String>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// The header value, e.g.
    /// `Digest realm="siaga.test", nonce="…", algorithm=MD5, qop="auth", stale=true`.
    pub fn header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for DigestChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"",
            quote_escape(&self.realm),
            quote_escape(&self.nonce)
        )?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque=\"{}\"", quote_escape(opaque))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

/// Escapes `"` and `\` for a quoted-string (RFC 3261 §25.1 `quoted-pair`).
fn quote_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Identifies a nonce siaga issued: its issue time and salt. Ordered by issue time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceId {
    issued_ms: u64,
    salt: u64,
}

impl NonceId {
    /// When the nonce was issued.
    pub fn issued(&self) -> MonoTime {
        MonoTime::from_millis(self.issued_ms)
    }
}

/// What [`Nonces::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by this key and younger than the TTL.
    Valid(NonceId),
    /// Issued by this key, but older than the TTL (RFC 7616 §3.3 `stale`).
    Stale,
    /// Not a nonce this key issued (malformed, foreign, or forged), or issued in the
    /// future of `now`.
    Invalid,
}

/// Stateless nonces: HMAC-SHA256 over issue time and salt (see the module docs).
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
    ttl: Duration,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("key", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Nonces {
    /// Nonces under `key` (drawn by the shell at start; nodes that share it accept each
    /// other's nonces) that go stale `ttl` after issue (`sip.registrar.nonce_ttl_s`).
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        Nonces { key, ttl }
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh nonce issued at `now`: 64 lowercase hex digits.
    pub fn issue(&self, now: MonoTime, rng: &mut impl RngCore) -> String {
        let id = NonceId {
            issued_ms: millis(now),
            salt: rng.next_u64(),
        };
        let mut bytes = [0u8; PAYLOAD_LEN + MAC_LEN];
        bytes[..8].copy_from_slice(&id.issued_ms.to_be_bytes());
        bytes[8..PAYLOAD_LEN].copy_from_slice(&id.salt.to_be_bytes());
        let mac = self.mac(&bytes[..PAYLOAD_LEN]).finalize().into_bytes();
        bytes[PAYLOAD_LEN..].copy_from_slice(&mac[..MAC_LEN]);
        hex::encode(bytes)
    }

    /// Whether `nonce` is one of ours and still fresh at `now`.
    pub fn check(&self, nonce: &str, now: MonoTime) -> NonceState {
        let mut bytes = [0u8; PAYLOAD_LEN + MAC_LEN];
        if hex::decode_to_slice(nonce, &mut bytes).is_err() {
            return NonceState::Invalid;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        if self.mac(payload).verify_truncated_left(tag).is_err() {
            return NonceState::Invalid;
        }
        let mut time = [0u8; 8];
        let mut salt = [0u8; 8];
        time.copy_from_slice(&payload[..8]);
        salt.copy_from_slice(&payload[8..]);
        let id = NonceId {
            issued_ms: u64::from_be_bytes(time),
            salt: u64::from_be_bytes(salt),
        };
        let issued = id.issued();
        if issued > now {
            NonceState::Invalid
        } else if now.saturating_since(issued) > self.ttl {
            NonceState::Stale
        } else {
            NonceState::Valid(id)
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(payload);
        mac
    }
}

fn millis(t: MonoTime) -> u64 {
    u64::try_from(t.since_origin().as_millis()).unwrap_or(u64::MAX)
}

/// Digest credentials from an `Authorization` / `Proxy-Authorization` value (RFC 3261
/// §22.4, RFC 2617 §3.2.2), values unquoted. Parameters siaga does not use are ignored;
/// of a repeated parameter the first counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestCredentials {
    /// `username`: the operator id.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as issued.
    pub nonce: String,
    /// `uri` (digest-uri): the Request-URI as the client wrote it.
    pub uri: String,
    /// `response`: 32 hex digits.
    pub response: String,
    /// `algorithm`; absent means MD5.
    pub algorithm: Option<String>,
    /// `qop`; absent means RFC 2069 style.
    pub qop: Option<String>,
    /// `nc`: 8 hex digits, with `qop`.
    pub nc: Option<String>,
    /// `cnonce`, with `qop`.
    pub cnonce: Option<String>,
    /// `opaque`, echoed from the challenge.
    pub opaque: Option<String>,
}

impl DigestCredentials {
    /// Reads the Digest parameters of `value`.
    ///
    /// Errors: [`CredentialsError::NotDigest`] for another scheme;
    /// [`CredentialsError::Missing`] when `username`, `realm`, `nonce`, `uri` or
    /// `response` is absent.
    pub fn from_auth_value(value: &AuthValue) -> Result<Self, CredentialsError> {
        if !matches!(value, AuthValue::Digest(_)) {
            return Err(CredentialsError::NotDigest);
        }
        let required = |name: &'static str| {
            value
                .digest_param(name)
                .ok_or(CredentialsError::Missing(name))
        };
        Ok(DigestCredentials {
            username: required("username")?,
            realm: required("realm")?,
            nonce: required("nonce")?,
            uri: required("uri")?,
            response: required("response")?,
            algorithm: value.digest_param("algorithm"),
            qop: value.digest_param("qop"),
            nc: value.digest_param("nc"),
            cnonce: value.digest_param("cnonce"),
            opaque: value.digest_param("opaque"),
        })
    }
}

/// Why credentials could not be checked; the answer is 400 with this text after
/// "Bad Request - ".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Authorization header did not parse.
    #[error("{0}")]
    Header(ParseError),
    /// The credentials are not of the Digest scheme.
    #[error("credentials are not Digest")]
    NotDigest,
    /// A required Digest parameter is missing.
    #[error("digest {0} missing")]
    Missing(&'static str),
    /// `algorithm` is not MD5 (the only one siaga offers).
    #[error("digest algorithm not offered")]
    UnsupportedAlgorithm,
    /// `qop` is not `auth` (the only one siaga offers).
    #[error("digest qop not offered")]
    UnsupportedQop,
    /// `qop` without a well-formed `nc` (8 hex digits, not zero) or without `cnonce`.
    #[error("digest nc or cnonce missing or malformed")]
    BadNonceCount,
    /// `uri` does not name the Request-URI (RFC 2617 §3.2.2.5).
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
}

/// The verdict on a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as `user` (the digest username).
    Ok {
        /// The operator id.
        user: String,
    },
    /// Answer 401 with a fresh challenge ([`DigestAuth::challenge`]); `stale` as given.
    Challenge {
        /// Whether the credentials were right but their nonce was stale, foreign or reused.
        stale: bool,
    },
    /// Answer 403: unknown user or wrong password (indistinguishable on purpose).
    Forbidden,
    /// Answer 400: the credentials are malformed or answer a challenge siaga never made.
    BadRequest(CredentialsError),
}

/// The highest `nc` seen per nonce that authenticated (see the module docs, "Bounds").
#[derive(Clone, Debug, Default)]
struct NcTracker {
    /// Nonce → highest `nc` accepted (`u32::MAX` after an RFC 2069 use).
    seen: BTreeMap<NonceId, u32>,
    /// The newest nonce evicted for room; every nonce up to it counts as used up.
    evicted_through: Option<NonceId>,
}

impl NcTracker {
    /// Records a use of `id` with `nc` (`None`: RFC 2069, single use). `false` when it is
    /// a replay or the nonce's history was evicted.
    fn accept(&mut self, id: NonceId, nc: Option<u32>, now: MonoTime, ttl: Duration) -> bool {
        // Forget nonces that have gone stale: check() refuses them before they get here.
        while let Some((first, _)) = self.seen.first_key_value() {
            if now.saturating_since(first.issued()) > ttl {
                self.seen.pop_first();
            } else {
                break;
            }
        }
        let highest = match self.seen.get(&id) {
            Some(&h) => h,
            None if self.evicted_through.is_some_and(|e| id <= e) => return false,
            None => 0,
        };
        let next = match nc {
            Some(n) if n > highest => n,
            None if highest == 0 => u32::MAX,
            _ => return false,
        };
        self.seen.insert(id, next);
        while self.seen.len() > NC_TRACK_MAX {
            if let Some((old, _)) = self.seen.pop_first() {
                self.evicted_through = self.evicted_through.max(Some(old));
            }
        }
        true
    }
}

/// A Digest verifier for one realm: issues challenges and checks credentials.
#[derive(Clone, Debug)]
pub struct DigestAuth {
    realm: String,
    nonces: Nonces,
    nc: NcTracker,
}

impl DigestAuth {
    /// A verifier for `realm` (the first `sip.domains` entry) with nonces under `key` that
    /// go stale after `nonce_ttl`.
    pub fn new(realm: impl Into<String>, key: [u8; 32], nonce_ttl: Duration) -> Self {
        DigestAuth {
            realm: realm.into(),
            nonces: Nonces::new(key, nonce_ttl),
            nc: NcTracker::default(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The nonces.
    pub fn nonces(&self) -> &Nonces {
        &self.nonces
    }

    /// A challenge with a fresh nonce.
    pub fn challenge(&self, now: MonoTime, rng: &mut impl RngCore, stale: bool) -> DigestChallenge {
        DigestChallenge::new(self.realm.clone(), self.nonces.issue(now, rng)).stale(stale)
    }

    /// Checks the credentials of `msg` in the `header` fields (Authorization for a UAS's
    /// 401, Proxy-Authorization for 407): the Digest value for this realm is verified with
    /// [`DigestAuth::verify`] against the request's method and Request-URI; without one the
    /// outcome is `Challenge { stale: false }`.
    pub fn authenticate(
        &mut self,
        now: MonoTime,
        msg: &SipMessage,
        header: HeaderName,
        lookup: impl Fn(&str) -> Option<Ha1>,
    ) -> AuthOutcome {
        let values = match msg.auth_values(header) {
            Ok(v) => v,
            Err(e) => return AuthOutcome::BadRequest(CredentialsError::Header(e)),
        };
        let ours = values
            .iter()
            .find(|v| v.digest_param("realm").as_deref() == Some(self.realm.as_str()));
        let (Some(value), Some(method), Some(request_uri)) =
            (ours, msg.method(), msg.request_uri_raw())
        else {
            return AuthOutcome::Challenge { stale: false };
        };
        match DigestCredentials::from_auth_value(value) {
            Ok(creds) => self.verify(now, method.as_str(), request_uri, &creds, lookup),
            Err(e) => AuthOutcome::BadRequest(e),
        }
    }

    /// Verifies `creds` for a `method` request to `request_uri` (the Request-URI as
    /// received), looking the username's HA1 up with `lookup`. See the module docs for
    /// the order of the checks and what each outcome means.
    ///
    /// The `uri` parameter matches when it is the Request-URI byte for byte, or when both
    /// are SIP URIs of the same scheme, user, host and port (a missing port is 5060, or
    /// 5061 for sips), URI parameters ignored.
    pub fn verify(
        &mut self,
        now: MonoTime,
        method: &str,
        request_uri: &str,
        creds: &DigestCredentials,
        lookup: impl Fn(&str) -> Option<Ha1>,
    ) -> AuthOutcome {
        if creds.realm != self.realm {
            return AuthOutcome::Challenge { stale: false };
        }
        if creds
            .algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return AuthOutcome::BadRequest(CredentialsError::UnsupportedAlgorithm);
        }
        let nc = match creds.qop.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (creds.nc.as_deref().and_then(parse_nc), &creds.cnonce) {
                    (Some(nc), Some(_)) => Some(nc),
                    _ => return AuthOutcome::BadRequest(CredentialsError::BadNonceCount),
                }
            }
            Some(_) => return AuthOutcome::BadRequest(CredentialsError::UnsupportedQop),
        };
        if !uri_matches(&creds.uri, request_uri) {
            return AuthOutcome::BadRequest(CredentialsError::UriMismatch);
        }
        let state = self.nonces.check(&creds.nonce, now);
        let ha1 = lookup(&creds.username);
        let known = ha1.is_some();
        let expected = expected_response(&ha1.unwrap_or(DUMMY_HA1), method, creds);
        let mut given = [0u8; 16];
        let well_formed = hex::decode_to_slice(&creds.response, &mut given).is_ok();
        let right = bool::from(expected.ct_eq(&given)) & well_formed & known;
        match state {
            NonceState::Valid(id) if right => {
                if self.nc.accept(id, nc, now, self.nonces.ttl()) {
                    AuthOutcome::Ok {
                        user: creds.username.clone(),
                    }
                } else {
                    AuthOutcome::Challenge { stale: true }
                }
            }
            NonceState::Valid(_) => AuthOutcome::Forbidden,
            NonceState::Stale | NonceState::Invalid => AuthOutcome::Challenge { stale: right },
        }
    }
}

/// `nc-value = 8LHEX` (RFC 2617 §3.2.2; either case accepted); zero is not a count.
fn parse_nc(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok().filter(|&n| n > 0)
}

/// request-digest (RFC 2617 §3.2.2.1): with qop, MD5(HA1:nonce:nc:cnonce:qop:HA2);
/// without, MD5(HA1:nonce:HA2) (RFC 2069). HA2 = MD5(method:digest-uri). Hashes enter
/// as lowercase hex; nc, cnonce and qop as the client wrote them.
fn expected_response(ha1: &Ha1, method: &str, creds: &DigestCredentials) -> [u8; 16] {
    let ha2 = hex::encode(md5_parts(&[method.as_bytes(), b":", creds.uri.as_bytes()]));
    let ha1 = ha1.to_hex();
    match (&creds.qop, &creds.nc, &creds.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => md5_parts(&[
            ha1.as_bytes(),
            b":",
            creds.nonce.as_bytes(),
            b":",
            nc.as_bytes(),
            b":",
            cnonce.as_bytes(),
            b":",
            qop.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        _ => md5_parts(&[
            ha1.as_bytes(),
            b":",
            creds.nonce.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
    }
}

fn md5_parts(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize());
    out
}

/// Whether the digest `uri` names `request_uri` (see [`DigestAuth::verify`]).
fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    let (Ok(Uri::Sip(a)), Ok(Uri::Sip(b))) = (Uri::parse(digest_uri), Uri::parse(request_uri))
    else {
        return false;
    };
    let port = |u: &super::sip::SipUri| u.port().unwrap_or(if u.is_secure() { 5061 } else { 5060 });
    a.is_secure() == b.is_secure()
        && a.user_decoded() == b.user_decoded()
        && a.host().matches(b.host())
        && port(&a) == port(&b)
}

#[cfg(test)]
mod tests;
