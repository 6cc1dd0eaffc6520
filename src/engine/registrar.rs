//! siaga's registrar (RFC 3261 §10.3): operators' softphones REGISTER their contacts here,
//! authenticated by Digest ([`super::digest`], RFC 3261 §22). This module owns the
//! bindings (address-of-record → contacts), their expiry timers and the change events the
//! ACD follows; it does no I/O and builds no messages (the driver turns a
//! [`RegisterOutcome`] into a response with `response_to`).
//!
//! Steps of §10.3, and who does them:
//! 1. Request-URI domain (404): the driver, before calling [`Registrar::handle_register`].
//! 2. Require (420): the driver (UAS core, §8.2.2.3).
//! 3. Authentication: 401 with a challenge when credentials are absent, stale or
//!    reused (`stale=true`, see [`super::digest`]); 403 `Forbidden` for an unknown user
//!    and for a wrong password alike.
//! 4. Authorization: the digest username must be the user part of the To URI (the AOR);
//!    otherwise 403 `Forbidden`. There is no third-party registration.
//! 5. The AOR is the To URI's user part, decoded; its host is not checked (siaga serves one
//!    set of operators under all its `sip.domains`).
//! 6. `Contact: *` needs `Expires: 0` (else 400; the parser already refuses `*` beside
//!    addresses). It removes every binding of the AOR, each subject to step 7's
//!    Call-ID/CSeq rule. No Contact at all is a query.
//! 7. Per contact: interval = its `expires` parameter, else the Expires header, else
//!    `default_expires_s`. 0 removes the binding. Above 0 but below `min_expires_s` (and
//!    below one hour) draws 423 `Interval Too Brief` with Min-Expires; above
//!    `max_expires_s` it is shortened to the maximum. A binding is identified by its
//!    Contact URI (RFC 3261 §19.1.4 comparison). An existing binding with the same Call-ID
//!    and a CSeq not lower than the request's aborts the whole request (out of order);
//!    siaga answers 500 `Server Internal Error`, as §10.3 step 7 asks when a binding update
//!    fails. Updates commit all together or not at all.
//! 8. 200 `OK` lists every current binding of the AOR with its remaining `expires` (and
//!    `q`), plus a Date header.
//!
//! Policies beyond the RFC:
//! - Only `sip:`/`sips:` contacts are taken (400 otherwise): siaga can reach nothing else.
//! - RFC 5626 outbound: a REGISTER that arrives over TCP straight from the phone (one
//!   Via: siaga is the first hop, and the edge proxy), says `Supported: outbound` and has a
//!   Contact with `+sip.instance` and `reg-id` makes that binding a flow ([`OutboundFlow`],
//!   §6): it is identified by instance and reg-id instead of its URI, a refresh on a new
//!   connection replaces it, the 200 carries `Require: outbound` and lists the flow's
//!   parameters, and requests reach it only on the connection it registered on. When that
//!   connection closes the flow has failed: the binding stays (until it expires or the
//!   phone registers a new flow, as §4.5 has it do at once) but is no target
//!   ([`Registrar::targets`]); siaga does not connect to the Contact (§5.3). Of one
//!   instance's flows only one is a target at a time (§7). With more than one Via (a proxy
//!   in between; siaga has no Path support, RFC 3327) the REGISTER draws 439 `First Hop
//!   Lacks Outbound Support` (§6); more than one Contact with `reg-id` draws 400. Over
//!   UDP `reg-id` is ignored and no `Require: outbound` is sent: siaga does not answer the
//!   STUN keep-alives UDP flows need (§4.4.2, §8).
//! - NAT (RFC 3581): a binding keeps the transport, source address and TCP connection the
//!   REGISTER really came from ([`RegisterSource`]); INVITEs go there, with the Contact
//!   URI as Request-URI. A refresh from a new address moves the binding there.
//! - Bounds: at most [`MAX_BINDINGS_PER_USER`] bindings per operator. A REGISTER listing
//!   more contacts than that draws 403 `Too Many Contacts`; a new binding that would exceed
//!   it evicts the operator's bindings closest to expiry that this request did not touch
//!   (a rebooted phone's old binding is the likeliest dead, and an operator must never be
//!   locked out of a 112 centre until bindings expire). Only configured operators can hold
//!   bindings, so memory is bounded by operators × that cap.

use super::digest::{AuthOutcome, DigestAuth, Ha1};
use super::sip::uri::{SipUri, Uri};
use super::sip::view::Contacts;
use super::sip::{HeaderName, ParseError, SipMessage};
use super::time::{MonoTime, Now, UtcTime};
use super::{ConnectionId, Transport};
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// The most bindings one operator may hold (see the module docs, "Bounds").
pub const MAX_BINDINGS_PER_USER: usize = 10;

/// Default of [`RegistrarConfig::min_expires_s`].
pub const DEFAULT_MIN_EXPIRES_S: u32 = 60;
/// Default of [`RegistrarConfig::max_expires_s`].
pub const DEFAULT_MAX_EXPIRES_S: u32 = 3600;
/// Default of [`RegistrarConfig::default_expires_s`] (RFC 3261 §10.2.1.1 suggests one hour).
pub const DEFAULT_EXPIRES_S: u32 = 3600;
/// Default of [`RegistrarConfig::nonce_ttl_s`].
pub const DEFAULT_NONCE_TTL_S: u32 = 300;

/// What the registrar needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The digest realm: the first `sip.domains` entry.
    pub realm: String,
    /// Shortest interval granted, in seconds; shorter non-zero requests draw 423.
    pub min_expires_s: u32,
    /// Longest interval granted, in seconds; longer requests are shortened to it.
    pub max_expires_s: u32,
    /// Interval when the REGISTER names none, in seconds.
    pub default_expires_s: u32,
    /// Seconds after which a nonce is stale.
    pub nonce_ttl_s: u32,
}

impl RegistrarConfig {
    /// The defaults for `realm`: 60 s minimum, 3600 s maximum and default, 300 s nonces.
    pub fn new(realm: impl Into<String>) -> Self {
        RegistrarConfig {
            realm: realm.into(),
            min_expires_s: DEFAULT_MIN_EXPIRES_S,
            max_expires_s: DEFAULT_MAX_EXPIRES_S,
            default_expires_s: DEFAULT_EXPIRES_S,
            nonce_ttl_s: DEFAULT_NONCE_TTL_S,
        }
    }

    /// Checks the values fit together (for the config layer, which names the keys).
    ///
    /// Errors: see [`RegistrarConfigError`]. [`Registrar::new`] does not fail; it
    /// clamps what this refuses.
    pub fn validate(&self) -> Result<(), RegistrarConfigError> {
        if self.realm.is_empty() {
            return Err(RegistrarConfigError::EmptyRealm);
        }
        if self.min_expires_s == 0 || self.min_expires_s > self.max_expires_s {
            return Err(RegistrarConfigError::MinExpires);
        }
        if !(self.min_expires_s..=self.max_expires_s).contains(&self.default_expires_s) {
            return Err(RegistrarConfigError::DefaultExpires);
        }
        if self.nonce_ttl_s == 0 {
            return Err(RegistrarConfigError::NonceTtl);
        }
        Ok(())
    }
}

/// A registrar configuration that does not fit together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarConfigError {
    /// No realm (`sip.domains` is empty).
    #[error("the digest realm (first sip.domains entry) is empty")]
    EmptyRealm,
    /// `min_expires_s` is 0 or above `max_expires_s`.
    #[error("min_expires_s must be at least 1 and at most max_expires_s")]
    MinExpires,
    /// `default_expires_s` is outside `min_expires_s..=max_expires_s`.
    #[error("default_expires_s must lie between min_expires_s and max_expires_s")]
    DefaultExpires,
    /// `nonce_ttl_s` is 0.
    #[error("nonce_ttl_s must be at least 1")]
    NonceTtl,
}

/// Where a REGISTER really came from (RFC 3581: what `received`/`rport` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterSource {
    /// The transport it arrived on.
    pub transport: Transport,
    /// The packet's source address.
    pub source: SocketAddr,
    /// The TCP connection it arrived on (`None` for UDP).
    pub connection: Option<ConnectionId>,
}

/// Identifies a binding while the registrar runs; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(pub u64);

/// One contact of an operator (RFC 3261 §10: a binding of an AOR to a contact address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Never reused; stable across refreshes.
    pub id: BindingId,
    /// The operator id (AOR user part, = digest username).
    pub user: String,
    /// The Contact URI as registered (`Display` writes it back byte for byte): the
    /// Request-URI of INVITEs to this binding.
    pub contact_uri: SipUri,
    /// Where the last REGISTER for it came from: INVITEs are sent there (NAT).
    pub source: SocketAddr,
    /// The transport of the last REGISTER for it.
    pub transport: Transport,
    /// The TCP connection of the last REGISTER for it; `None` for UDP, or once that
    /// connection closed ([`Registrar::handle_connection_closed`]).
    pub connection: Option<ConnectionId>,
    /// The RFC 5626 flow this binding is, if outbound applied to its REGISTER (see the
    /// module docs); `None` for an RFC 3261 binding.
    pub outbound: Option<OutboundFlow>,
    /// When it expires unless refreshed.
    pub expires_at: MonoTime,
    /// Call-ID of the last REGISTER that set it (§10.3 step 7).
    pub call_id: String,
    /// CSeq number of the last REGISTER that set it (§10.3 step 7).
    pub cseq: u32,
    /// Contact `q` in thousandths (0–1000), if given (RFC 3261 §10.2.1.2).
    pub q_millis: Option<u16>,
    /// When it was first registered (monotonic); refreshes keep it.
    pub registered_at: MonoTime,
    /// When it was first registered (wall clock, for records and the API).
    pub registered_utc: UtcTime,
}

/// What identifies an RFC 5626 flow binding (§6): the phone's instance (the
/// `+sip.instance` Contact parameter, unquoted, e.g. `<urn:uuid:…>`, compared byte for
/// byte) and its `reg-id` (1 to 2³¹−1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundFlow {
    /// The instance id.
    pub instance: String,
    /// The registration id.
    pub reg_id: u32,
}

impl Binding {
    /// Whether requests can reach this binding: anything but an RFC 5626 flow whose
    /// connection closed (§5.3: it is not re-established by siaga).
    pub fn is_reachable(&self) -> bool {
        self.outbound.is_none() || self.connection.is_some()
    }
}

/// Why a binding went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    /// The UA removed it (expires 0, or `Contact: *`).
    Unregistered,
    /// It was not refreshed in time.
    Expired,
    /// A new binding of the same operator needed room ([`MAX_BINDINGS_PER_USER`]).
    Evicted,
    /// The operator is no longer configured ([`Registrar::replace_users`]).
    UserRemoved,
}

/// A change of the bindings, drained with [`Registrar::poll_change`]. For one call, binding
/// events come first, then the operator's `Registered`/`Unregistered`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingChange {
    /// A new binding (not emitted for refreshes).
    Added(Binding),
    /// A binding went away.
    Removed {
        /// The binding as it was.
        binding: Binding,
        /// Why.
        reason: RemovalReason,
    },
    /// The operator went from no binding to at least one: reachable.
    Registered {
        /// The operator id.
        user: String,
    },
    /// The operator's last binding went away: unreachable.
    Unregistered {
        /// The operator id.
        user: String,
    },
    /// A binding that could not be reached (a failed RFC 5626 flow) can be again: the
    /// phone registered a new flow (§4.5). Calls waiting for the operator can be offered.
    Reachable(Binding),
}

/// The final response to a REGISTER, for the driver to build with `response_to`
/// (adding a To tag, RFC 3261 §8.2.6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// 200, 400, 401, 403, 423 or 500.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Headers to add, in order: WWW-Authenticate (401), Min-Expires (423), one Contact
    /// per current binding and Date (200).
    pub headers: Vec<(&'static str, String)>,
    /// The authenticated operator, once authentication passed.
    pub user: Option<String>,
}

impl RegisterOutcome {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        RegisterOutcome {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            user: None,
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn forbidden() -> Self {
        RegisterOutcome::new(403, "Forbidden")
    }

    fn bad_request(what: impl std::fmt::Display) -> Self {
        RegisterOutcome::new(400, format!("Bad Request - {what}"))
    }

    fn out_of_order() -> Self {
        RegisterOutcome::new(500, "Server Internal Error")
    }
}

/// The registrar: operators' HA1s, their bindings, the Digest verifier, expiry timers.
///
/// Call order: [`Registrar::handle_register`] / [`Registrar::handle_timeout`] (and the
/// other `handle_*`), then drain [`Registrar::poll_change`]; sleep until
/// [`Registrar::next_deadline`].
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    auth: DigestAuth,
    users: HashMap<String, Ha1>,
    /// Operator → bindings (never an empty list).
    bindings: HashMap<String, Vec<Binding>>,
    /// Expiry timers: (expires_at, binding) → operator.
    deadlines: BTreeMap<(MonoTime, BindingId), String>,
    next_id: u64,
    changes: VecDeque<BindingChange>,
}

impl Registrar {
    /// A registrar for `users` (operator id, HA1 in `config.realm`; of duplicates the last
    /// counts) with nonces under `nonce_key` (drawn at start; nodes sharing it accept each
    /// other's nonces). Out-of-range config values are clamped (see
    /// [`RegistrarConfig::validate`]).
    pub fn new(config: RegistrarConfig, users: Vec<(String, Ha1)>, nonce_key: [u8; 32]) -> Self {
        let mut config = config;
        config.min_expires_s = config.min_expires_s.max(1);
        config.max_expires_s = config.max_expires_s.max(config.min_expires_s);
        config.default_expires_s = config
            .default_expires_s
            .clamp(config.min_expires_s, config.max_expires_s);
        config.nonce_ttl_s = config.nonce_ttl_s.max(1);
        let ttl = Duration::from_secs(u64::from(config.nonce_ttl_s));
        Registrar {
            auth: DigestAuth::new(config.realm.clone(), nonce_key, ttl),
            config,
            users: users.into_iter().collect(),
            bindings: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_id: 0,
            changes: VecDeque::new(),
        }
    }

    // Getters.

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The live bindings of `user`, oldest first.
    pub fn bindings(&self, user: &str) -> impl Iterator<Item = &Binding> {
        self.bindings.get(user).into_iter().flatten()
    }

    /// Every live binding, grouped by operator in no particular order.
    pub fn all_bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values().flatten()
    }

    /// The bindings requests to `user` go to now ([`Binding::is_reachable`]), oldest first;
    /// of the reachable flows of one instance only the one with the lowest `reg-id` (RFC
    /// 5626 §7: one target per instance at a time).
    pub fn targets(&self, user: &str) -> impl Iterator<Item = &Binding> {
        let all: Vec<&Binding> = self.bindings(user).filter(|b| b.is_reachable()).collect();
        let chosen: Vec<&Binding> = all
            .iter()
            .filter(|b| {
                b.outbound.as_ref().is_none_or(|flow| {
                    !all.iter().any(|o| {
                        o.outbound.as_ref().is_some_and(|other| {
                            other.instance == flow.instance && other.reg_id < flow.reg_id
                        })
                    })
                })
            })
            .copied()
            .collect();
        chosen.into_iter()
    }

    /// Whether `user` has at least one binding.
    pub fn is_registered(&self, user: &str) -> bool {
        self.bindings.contains_key(user)
    }

    /// The Digest verifier, to authenticate other requests (e.g. INVITE) with the same
    /// realm and nonces.
    pub fn auth_mut(&mut self) -> &mut DigestAuth {
        &mut self.auth
    }

    /// Checks the `Authorization` credentials of `msg` (a REGISTER, or an INVITE to a
    /// feature code, RFC 3261 §22.2) against the operators' HA1s, with this registrar's
    /// realm, nonces and `nc` tracking; see [`DigestAuth::authenticate`].
    pub fn authenticate(&mut self, now: MonoTime, msg: &SipMessage) -> AuthOutcome {
        let users = &self.users;
        self.auth
            .authenticate(now, msg, HeaderName::Authorization, |u: &str| {
                users.get(u).copied()
            })
    }

    /// The HA1 of `user`, if configured (a lookup for [`DigestAuth::verify`]).
    pub fn ha1(&self, user: &str) -> Option<Ha1> {
        self.users.get(user).copied()
    }

    // Input.

    /// Processes a REGISTER (RFC 3261 §10.3; see the module docs) that arrived from `from`
    /// and says how to answer it. Expired bindings are removed first. Malformed headers
    /// draw 400; nothing panics on input.
    pub fn handle_register(
        &mut self,
        now: Now,
        rng: &mut StdRng,
        msg: &SipMessage,
        from: RegisterSource,
    ) -> RegisterOutcome {
        self.handle_timeout(now.mono);
        let user = match self.authenticate(now.mono, msg) {
            AuthOutcome::Ok { user } => user,
            AuthOutcome::Challenge { stale } => {
                let challenge = self.auth.challenge(now.mono, rng, stale);
                return RegisterOutcome::new(401, "Unauthorized")
                    .with("WWW-Authenticate", challenge.header_value());
            }
            AuthOutcome::Forbidden => {
                tracing::info!(source = %from.source, "REGISTER authentication failed");
                return RegisterOutcome::forbidden();
            }
            AuthOutcome::BadRequest(e) => {
                tracing::debug!(source = %from.source, error = %e, "REGISTER credentials malformed");
                return RegisterOutcome::bad_request(e);
            }
        };
        let mut outcome = self
            .update(now, msg, &user, from)
            .unwrap_or_else(|refusal| refusal);
        tracing::debug!(%user, source = %from.source, status = outcome.status, "REGISTER");
        outcome.user = Some(user);
        outcome
    }

    /// Removes the bindings whose time is up at `now` (emitting `Removed { Expired }` and,
    /// for an operator's last one, `Unregistered`).
    pub fn handle_timeout(&mut self, now: MonoTime) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, id), user) = entry.remove_entry();
            let Some(list) = self.bindings.get_mut(&user) else {
                continue;
            };
            if let Some(pos) = list.iter().position(|b| b.id == id) {
                let binding = list.remove(pos);
                tracing::debug!(%user, contact = %binding.contact_uri, "binding expired");
                self.changes.push_back(BindingChange::Removed {
                    binding,
                    reason: RemovalReason::Expired,
                });
            }
            if list.is_empty() {
                self.bindings.remove(&user);
                self.changes.push_back(BindingChange::Unregistered { user });
            }
        }
    }

    /// A TCP connection closed: bindings that named it keep their address but lose the
    /// connection (`connection = None`). Over TCP `source` is then the phone's ephemeral
    /// port; route to the Contact URI instead.
    ///
    /// An RFC 5626 flow on it has failed: it is no target until the phone registers again
    /// (see the module docs).
    pub fn handle_connection_closed(&mut self, connection: ConnectionId) {
        for b in self.bindings.values_mut().flatten() {
            if b.connection == Some(connection) {
                b.connection = None;
                if let Some(flow) = &b.outbound {
                    tracing::info!(
                        user = %b.user,
                        instance = %flow.instance,
                        reg_id = flow.reg_id,
                        "outbound flow failed: binding unreachable until the phone registers again"
                    );
                }
            }
        }
    }

    /// Replaces the operators and their HA1s (config reload). Bindings of operators no
    /// longer listed are removed (`Removed { UserRemoved }`, `Unregistered`); the others
    /// keep theirs.
    pub fn replace_users(&mut self, users: Vec<(String, Ha1)>) {
        self.users = users.into_iter().collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|u| !self.users.contains_key(*u))
            .cloned()
            .collect();
        for user in gone {
            let old = self.bindings.remove(&user).unwrap_or_default();
            for binding in old {
                self.deadlines.remove(&(binding.expires_at, binding.id));
                self.changes.push_back(BindingChange::Removed {
                    binding,
                    reason: RemovalReason::UserRemoved,
                });
            }
            self.changes.push_back(BindingChange::Unregistered { user });
        }
    }

    // Output.

    /// The next binding expiry: call [`Registrar::handle_timeout`] then.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.deadlines.first_key_value().map(|((t, _), _)| *t)
    }

    /// The next change of the bindings, oldest first. Drain after every `handle_*` call:
    /// each call queues at most a few events per binding it touched.
    pub fn poll_change(&mut self) -> Option<BindingChange> {
        self.changes.pop_front()
    }

    // Internals.

    /// §10.3 steps 4–8 for an authenticated `user`. `Err` carries a refusal.
    fn update(
        &mut self,
        now: Now,
        msg: &SipMessage,
        user: &str,
        from: RegisterSource,
    ) -> Result<RegisterOutcome, RegisterOutcome> {
        let bad = |e: ParseError| RegisterOutcome::bad_request(e);
        let to = msg.to().map_err(bad)?;
        let aor_matches = to
            .uri
            .as_sip()
            .and_then(SipUri::user_decoded)
            .is_some_and(|aor| aor == user.as_bytes());
        if !aor_matches {
            tracing::info!(%user, to = %to.uri, "REGISTER for another AOR refused");
            return Err(RegisterOutcome::forbidden());
        }
        let call_id = msg.call_id().map_err(bad)?;
        let cseq = msg.cseq().map_err(bad)?.seq;
        let expires_header = msg.expires().map_err(bad)?;
        let current = self.bindings.get(user).cloned().unwrap_or_default();
        let stale = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
        let list = match msg.contacts().map_err(bad)? {
            Contacts::Wildcard => {
                if expires_header != Some(0) {
                    return Err(RegisterOutcome::bad_request("Contact * needs Expires: 0"));
                }
                if current.iter().any(stale) {
                    return Err(RegisterOutcome::out_of_order());
                }
                self.commit(user, Vec::new(), &[]);
                return Ok(self.ok(now, user));
            }
            Contacts::List(list) if list.is_empty() => return Ok(self.ok(now, user)),
            Contacts::List(list) => list,
        };
        if list.len() > MAX_BINDINGS_PER_USER {
            return Err(RegisterOutcome::new(403, "Too Many Contacts"));
        }
        let flows = outbound_applies(msg, from, &list, expires_header)?;
        let mut next = current;
        let mut touched: Vec<BindingId> = Vec::new();
        for contact in list {
            let requested = contact
                .expires()
                .map_err(bad)?
                .or(expires_header)
                .unwrap_or(self.config.default_expires_s);
            let q_millis = contact.q_millis().map_err(bad)?;
            let flow = if flows { flow_of(&contact)? } else { None };
            let Uri::Sip(uri) = contact.uri else {
                return Err(RegisterOutcome::bad_request("Contact is not a SIP URI"));
            };
            let granted = self.grant(requested)?;
            let expires_at = now.mono + Duration::from_secs(u64::from(granted));
            // RFC 5626 §6: a flow is its instance and reg-id, whatever its URI (an RFC
            // 3261 binding of the same URI becomes the flow).
            let same = |b: &Binding| match &flow {
                Some(f) => b.outbound.as_ref() == Some(f),
                None => b.contact_uri.equivalent(&uri),
            };
            let existing = next.iter().position(same).or_else(|| {
                flow.as_ref().and_then(|_| {
                    next.iter()
                        .position(|b| b.outbound.is_none() && b.contact_uri.equivalent(&uri))
                })
            });
            match existing {
                Some(i) => {
                    if !touched.contains(&next[i].id) && stale(&next[i]) {
                        return Err(RegisterOutcome::out_of_order());
                    }
                    if granted == 0 {
                        next.remove(i);
                    } else {
                        let b = &mut next[i];
                        b.contact_uri = uri;
                        b.source = from.source;
                        b.transport = from.transport;
                        b.connection = from.connection;
                        b.outbound = flow;
                        b.expires_at = expires_at;
                        call_id.clone_into(&mut b.call_id);
                        b.cseq = cseq;
                        b.q_millis = q_millis;
                        touched.push(b.id);
                    }
                }
                None if granted == 0 => {}
                None => {
                    let id = BindingId(self.next_id);
                    self.next_id += 1;
                    touched.push(id);
                    next.push(Binding {
                        id,
                        user: user.to_owned(),
                        contact_uri: uri,
                        source: from.source,
                        transport: from.transport,
                        connection: from.connection,
                        outbound: flow,
                        expires_at,
                        call_id: call_id.to_owned(),
                        cseq,
                        q_millis,
                        registered_at: now.mono,
                        registered_utc: now.utc,
                    });
                }
            }
        }
        // Make room: the untouched bindings closest to expiry go first. The request
        // touched at most MAX_BINDINGS_PER_USER, so this always fits.
        let mut evicted = Vec::new();
        while next.len() > MAX_BINDINGS_PER_USER {
            let Some(oldest) = next
                .iter()
                .enumerate()
                .filter(|(_, b)| !touched.contains(&b.id))
                .min_by_key(|(_, b)| (b.expires_at, b.id))
                .map(|(i, _)| i)
            else {
                break;
            };
            evicted.push(next.remove(oldest).id);
        }
        self.commit(user, next, &evicted);
        let ok = self.ok(now, user);
        // RFC 5626 §6: the phone learns that its flows are in use.
        Ok(if flows {
            ok.with("Require", "outbound".to_owned())
        } else {
            ok
        })
    }

    /// The interval granted for `requested` seconds (§10.3 step 7), or 423.
    fn grant(&self, requested: u32) -> Result<u32, RegisterOutcome> {
        let (min, max) = (self.config.min_expires_s, self.config.max_expires_s);
        match requested {
            0 => Ok(0),
            r if r < min && r < 3600 => Err(RegisterOutcome::new(423, "Interval Too Brief")
                .with("Min-Expires", min.to_string())),
            r => Ok(r.clamp(min, max)),
        }
    }

    /// Makes `next` the bindings of `user`, re-arms their timers and queues the changes.
    fn commit(&mut self, user: &str, next: Vec<Binding>, evicted: &[BindingId]) {
        let old = self.bindings.remove(user).unwrap_or_default();
        let was_registered = !old.is_empty();
        for b in &old {
            self.deadlines.remove(&(b.expires_at, b.id));
        }
        for b in &next {
            self.deadlines.insert((b.expires_at, b.id), user.to_owned());
            match old.iter().find(|o| o.id == b.id) {
                None => self.changes.push_back(BindingChange::Added(b.clone())),
                Some(o) if !o.is_reachable() && b.is_reachable() => {
                    self.changes.push_back(BindingChange::Reachable(b.clone()));
                }
                Some(_) => {}
            }
        }
        for binding in old {
            if !next.iter().any(|n| n.id == binding.id) {
                let reason = if evicted.contains(&binding.id) {
                    RemovalReason::Evicted
                } else {
                    RemovalReason::Unregistered
                };
                self.changes
                    .push_back(BindingChange::Removed { binding, reason });
            }
        }
        let user = user.to_owned();
        match (was_registered, next.is_empty()) {
            (false, false) => self
                .changes
                .push_back(BindingChange::Registered { user: user.clone() }),
            (true, true) => self
                .changes
                .push_back(BindingChange::Unregistered { user: user.clone() }),
            _ => {}
        }
        if !next.is_empty() {
            self.bindings.insert(user, next);
        }
    }

    /// 200 `OK` listing every current binding of `user` (§10.3 step 8) and the Date.
    fn ok(&self, now: Now, user: &str) -> RegisterOutcome {
        let mut outcome = RegisterOutcome::new(200, "OK");
        for b in self.bindings(user) {
            let left = b.expires_at.saturating_since(now.mono);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let mut value = format!("<{}>;expires={secs}", b.contact_uri);
            if let Some(q) = b.q_millis {
                value.push_str(";q=");
                value.push_str(&format_q(q));
            }
            if let Some(flow) = &b.outbound {
                let instance = flow.instance.replace('\\', "\\\\").replace('"', "\\\"");
                value.push_str(&format!(
                    ";+sip.instance=\"{instance}\";reg-id={}",
                    flow.reg_id
                ));
            }
            outcome = outcome.with("Contact", value);
        }
        if let Some(date) = http_date(now.utc) {
            outcome = outcome.with("Date", date);
        }
        outcome
    }
}

/// RFC 5626 §6: whether the `reg-id` contacts of this REGISTER become flows: it says
/// `Supported: outbound`, a Contact carries `+sip.instance` and `reg-id`, and it came over
/// TCP straight from the phone (siaga is the first hop: one Via). Over UDP the `reg-id` is
/// ignored (no STUN keep-alives, §4.4.2).
///
/// Errors: 439 when it came through a proxy (§6, siaga has no Path support); 400 when more
/// than one Contact asks for a flow with a non-zero expiry, or `Supported` is malformed.
fn outbound_applies(
    msg: &SipMessage,
    from: RegisterSource,
    list: &[super::sip::view::NameAddr],
    expires_header: Option<u32>,
) -> Result<bool, RegisterOutcome> {
    let bad = |e: ParseError| RegisterOutcome::bad_request(e);
    let supported = msg
        .option_tags(HeaderName::Supported)
        .map_err(bad)?
        .iter()
        .any(|t| t.eq_ignore_ascii_case("outbound"));
    let asking: Vec<_> = list
        .iter()
        .filter(|c| c.param("reg-id").is_some() && c.param("+sip.instance").is_some())
        .collect();
    if !supported || asking.is_empty() {
        return Ok(false);
    }
    if msg.vias().map_err(bad)?.len() > 1 {
        return Err(RegisterOutcome::new(
            439,
            "First Hop Lacks Outbound Support",
        ));
    }
    let live = asking
        .iter()
        .filter(|c| c.expires().ok().flatten().or(expires_header) != Some(0))
        .count();
    if live > 1 {
        return Err(RegisterOutcome::bad_request(
            "more than one Contact with reg-id",
        ));
    }
    Ok(from.transport == Transport::Tcp && from.connection.is_some())
}

/// The RFC 5626 flow a Contact asks for (`+sip.instance` and `reg-id`), if it does.
///
/// Errors: 400 when `reg-id` is not 1 to 2³¹−1 or `+sip.instance` has no value.
fn flow_of(contact: &super::sip::view::NameAddr) -> Result<Option<OutboundFlow>, RegisterOutcome> {
    let (Some(reg_id), Some(instance)) = (contact.param("reg-id"), contact.param("+sip.instance"))
    else {
        return Ok(None);
    };
    let reg_id = reg_id
        .and_then(super::sip::view::cseq::parse_decimal_u32)
        .filter(|id| (1..=0x7fff_ffff).contains(id))
        .ok_or_else(|| RegisterOutcome::bad_request("reg-id out of range"))?;
    let instance = instance
        .map(|v| super::sip::view::scan::unquote(v).unwrap_or_else(|| v.to_owned()))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| RegisterOutcome::bad_request("+sip.instance without a value"))?;
    Ok(Some(OutboundFlow { instance, reg_id }))
}

/// A qvalue from thousandths: 1000 → `1`, 500 → `0.5`, 333 → `0.333` (RFC 3261 §25.1).
fn format_q(q_millis: u16) -> String {
    if q_millis >= 1000 {
        return "1".to_owned();
    }
    let frac = format!("{q_millis:03}");
    format!("0.{}", frac.trim_end_matches('0'))
        .trim_end_matches('.')
        .to_owned()
}

/// RFC 3261 §20.17 Date (RFC 1123 form, GMT); `None` before 1970.
fn http_date(utc: UtcTime) -> Option<String> {
    let ms = u64::try_from(utc.unix_millis()).ok()?;
    let at = std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    Some(httpdate::fmt_http_date(at))
}

#[cfg(test)]
mod tests;
