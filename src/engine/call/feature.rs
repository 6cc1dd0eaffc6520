//! Operator feature codes (issue 5, point 2): an operator's softphone dials a configured
//! code (`[feature_codes]`: `*70` ready, `*71` not ready, `*72` end wrap-up, `*73` next
//! callback, `*74` logout) as an ordinary call, and siaga — the UAS of that INVITE —
//! changes that operator's agent state and shows the outcome as the call's final response.
//! This module owns feature-code INVITEs from recognition to the BYE that ends them.
//!
//! 1. Recognition ([`Engine::feature_code`]): an INVITE outside any dialog whose
//!    Request-URI is a SIP URI with a user part (RFC 3261 §19.1.1) that, unescaped
//!    (§19.1.4: `%2A70` is `*70`), equals a configured code — whatever its source: the
//!    operators' phones may sit in the trunk's network, and the configuration keeps codes
//!    and emergency numbers apart. Any other number, `*79` included, is no feature code:
//!    it draws the 404 of any unknown target, without a challenge (nothing changes for it,
//!    so nobody needs to be known).
//! 2. Authentication ([`Engine::authorize_feature`], RFC 3261 §22.2, §8.2.6): 401 with
//!    `WWW-Authenticate` from the registrar's verifier — the same realm, stateless nonces,
//!    `nc` replay tracking and `stale=true`; MD5, the one algorithm the operators' stored
//!    HA1s allow. The phone sends the INVITE again with `Authorization` (a new CSeq, the
//!    same Call-ID). A wrong password or unknown user draws 403, malformed credentials 400.
//! 3. Authorization: the digest username must be the From URI's user (else 403): an
//!    operator acts only for themself.
//! 4. Action ([`Engine::start_feature_call`]): `ready`, `not_ready`, `end_wrap_up` and
//!    `logout` go to [`Engine::agent_command`]; `next_callback` goes, with the INVITE as
//!    an [`InboundFeatureCall`], to `Engine::take_callback` (`call::callback`), which
//!    answers it or keeps it to bridge later.
//! 5. Answer: a refused command (an operator the ACD does not know, a transition the agent
//!    state table refuses) draws 403 whose reason phrase and Warning (399, §20.43) name
//!    the refusal; the state is unchanged. An accepted one draws 200 OK with SDP — the
//!    answer to the INVITE's offer with the audio `a=inactive` at the relay's IP, port 9,
//!    and every other stream rejected (RFC 3264 §6), or an inactive offer when the INVITE
//!    had none (§13.2.1) — resent until the ACK (§13.3.1.4). On the ACK, or 64·T1 without
//!    one, siaga sends BYE (§15, §13.3.1.4): the phone shows a call that connects and ends
//!    at once. An offer siaga cannot read draws 488 before anything is done.
//! 6. CANCEL (§9.2): an INVITE still unanswered (only `next_callback` may keep one) gets
//!    487 and nothing is done; after the final response a CANCEL changes nothing. A BYE
//!    from the phone before siaga's draws 200 and ends the dialog; one that crosses
//!    siaga's BYE draws 200 too (`ending`).

use super::midcall::DialogReply;
use super::{PendingOk, flow::dialog_source};
use crate::engine::acd::{AgentCommand, AgentError, FeatureCodes};
use crate::engine::dialog::{Dialog, DialogKey};
use crate::engine::digest::AuthOutcome;
use crate::engine::driver::{Engine, SERVER};
use crate::engine::sdp::{self, SdpSession};
use crate::engine::sip::builder::response_to;
use crate::engine::sip::uri::{SipUri, Uri};
use crate::engine::sip::{HeaderName, Method, SipMessage};
use crate::engine::time::{MonoTime, Now};
use crate::engine::transaction::{Destination, ResponseTarget, ServerTransactions, TxId};
use crate::engine::{Received, uas};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

/// The RTP port written for a stream that carries nothing (`a=inactive`): the discard
/// port, as siaga's own capability offer writes it. No relay is opened.
const NO_MEDIA_PORT: u16 = 9;

/// One of the configured feature codes (`[feature_codes]`, [`FeatureCodes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureCode {
    /// `ready`: log in, or become available from not ready or wrap-up.
    Ready,
    /// `not_ready`: not ready (reason `requested`).
    NotReady,
    /// `end_wrap_up`: end wrap-up now.
    EndWrapUp,
    /// `next_callback`: take the oldest item of the callback worklist.
    NextCallback,
    /// `logout`: log out.
    Logout,
}

impl FeatureCode {
    const ALL: [FeatureCode; 5] = [
        FeatureCode::Ready,
        FeatureCode::NotReady,
        FeatureCode::EndWrapUp,
        FeatureCode::NextCallback,
        FeatureCode::Logout,
    ];

    /// The `[feature_codes]` key: `ready`, `not_ready`, `end_wrap_up`, `next_callback`,
    /// `logout`.
    pub const fn key(self) -> &'static str {
        match self {
            FeatureCode::Ready => "ready",
            FeatureCode::NotReady => "not_ready",
            FeatureCode::EndWrapUp => "end_wrap_up",
            FeatureCode::NextCallback => "next_callback",
            FeatureCode::Logout => "logout",
        }
    }

    /// The number `codes` configure for this code.
    pub fn number(self, codes: &FeatureCodes) -> &str {
        match self {
            FeatureCode::Ready => &codes.ready,
            FeatureCode::NotReady => &codes.not_ready,
            FeatureCode::EndWrapUp => &codes.end_wrap_up,
            FeatureCode::NextCallback => &codes.next_callback,
            FeatureCode::Logout => &codes.logout,
        }
    }

    /// The code whose number is `user` (a Request-URI user part, unescaped), if any.
    pub fn dialled(codes: &FeatureCodes, user: &[u8]) -> Option<FeatureCode> {
        Self::ALL
            .into_iter()
            .find(|code| code.number(codes).as_bytes() == user)
    }

    /// The agent command it stands for; `None` for `next_callback` (a callback, not a
    /// state change).
    pub const fn command(self) -> Option<AgentCommand> {
        match self {
            FeatureCode::Ready => Some(AgentCommand::Ready),
            FeatureCode::NotReady => Some(AgentCommand::NotReady),
            FeatureCode::EndWrapUp => Some(AgentCommand::EndWrapUp),
            FeatureCode::Logout => Some(AgentCommand::Logout),
            FeatureCode::NextCallback => None,
        }
    }
}

/// An authenticated operator's feature-code INVITE, with what a UAS needs to answer it or
/// to bridge it later (the shapes of [`super::TrunkLeg`]'s fields of the same names).
#[derive(Clone, Debug)]
pub(crate) struct InboundFeatureCall {
    /// The INVITE's server transaction (final responses go through it, RFC 3261 §17.2.1).
    pub tx: TxId,
    /// The INVITE as received.
    pub invite: SipMessage,
    /// Where responses go (§18.2.2).
    pub target: ResponseTarget,
    /// The INVITE's source address, stamped in the top Via of every response as
    /// `received`/`rport` (§18.2.1, RFC 3581).
    pub received_from: SocketAddr,
    /// siaga's To tag (the transaction's).
    pub local_tag: String,
    /// Where the INVITE came from, for requests in the dialog (see `Dialog::as_uas`).
    pub source: Destination,
}

impl InboundFeatureCall {
    /// The INVITE `invite` received as `rx`, on server transaction `tx` answering along
    /// `target` with To tag `local_tag`.
    pub(crate) fn new(
        tx: TxId,
        rx: &Received,
        invite: &SipMessage,
        target: ResponseTarget,
        local_tag: String,
    ) -> Self {
        InboundFeatureCall {
            tx,
            invite: invite.clone(),
            target,
            received_from: rx.source,
            local_tag,
            source: dialog_source(rx, target),
        }
    }
}

/// What the UAS core does with a feature-code INVITE before any transaction exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FeatureVerdict {
    /// Answer with this final response (401 challenge, 400, 403): nothing is done.
    Refuse {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// Extra headers (`WWW-Authenticate` with the 401).
        headers: Vec<(&'static str, String)>,
    },
    /// `operator` authenticated and may act: create the transaction and hand it to
    /// [`Engine::start_feature_call`].
    Act {
        /// The operator id (digest username, equal to the From user).
        operator: String,
        /// The code dialled.
        code: FeatureCode,
    },
}

impl FeatureVerdict {
    fn refuse(status: u16, reason: &str) -> Self {
        FeatureVerdict::Refuse {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }
}

/// A feature call siaga answered 200: resending that 2xx until the ACK, then BYEd.
#[derive(Debug)]
struct FeatureDialog {
    operator: String,
    code: FeatureCode,
    /// siaga's dialog as UAS (RFC 3261 §12.1.1).
    dialog: Dialog,
    /// The 2xx resent until its ACK.
    ok: PendingOk,
}

/// Feature calls in progress: the answered ones until siaga's BYE, the unanswered ones
/// (held by `take_callback`) a CANCEL may still end. Bounded by the operators: each entry
/// is an authenticated operator's INVITE, gone after its ACK, 64·T1 or its final response.
#[derive(Debug, Default)]
pub struct FeatureCalls {
    dialogs: BTreeMap<u64, FeatureDialog>,
    by_dialog: HashMap<DialogKey, u64>,
    /// 2xx retransmissions and their 64·T1 ends; checked against the dialog when due.
    timers: BTreeSet<(MonoTime, u64)>,
    /// INVITEs handed to `take_callback` that had no final response when it returned.
    unanswered: HashMap<TxId, InboundFeatureCall>,
    next_id: u64,
}

impl FeatureCalls {
    /// The earliest 2xx retransmission or give-up.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Number of answered feature calls not yet BYEd.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    fn insert(&mut self, call: FeatureDialog) {
        self.next_id += 1;
        let id = self.next_id;
        self.by_dialog.insert(call.dialog.key(), id);
        self.timers.insert((call.ok.next, id));
        self.timers.insert((call.ok.give_up, id));
        self.dialogs.insert(id, call);
    }

    fn remove(&mut self, id: u64) -> Option<FeatureDialog> {
        let call = self.dialogs.remove(&id)?;
        self.by_dialog.remove(&call.dialog.key());
        self.timers.remove(&(call.ok.next, id));
        self.timers.remove(&(call.ok.give_up, id));
        Some(call)
    }

    /// The dialog `key` names, if `msg` comes from its peer (§12.2.2: the From tag is the
    /// remote tag).
    fn find(&self, key: &DialogKey, msg: &SipMessage) -> Option<u64> {
        let id = *self.by_dialog.get(key)?;
        let theirs = msg.from().ok()?.tag().unwrap_or_default().to_owned();
        (self.dialogs.get(&id)?.dialog.remote_tag == theirs).then_some(id)
    }

    fn pop_due(&mut self, now: MonoTime) -> Option<u64> {
        let first = self.timers.first()?;
        if first.0 > now {
            return None;
        }
        self.timers.pop_first().map(|(_, id)| id)
    }

    /// Keeps `call`, not answered yet, where a CANCEL finds it
    /// ([`Engine::on_feature_cancel`]).
    pub(crate) fn hold(&mut self, call: InboundFeatureCall) {
        self.unanswered.insert(call.tx, call);
    }

    /// Forgets unanswered INVITEs whose transaction has its final response.
    fn prune(&mut self, server: &ServerTransactions) {
        self.unanswered
            .retain(|tx, _| server.is_pending_invite(*tx));
    }
}

impl Engine {
    /// The feature code an INVITE to `uri` dials, if it is one (user part compared
    /// unescaped, RFC 3261 §19.1.4).
    pub(crate) fn feature_code(&self, uri: &Uri) -> Option<FeatureCode> {
        let user = uri.as_sip()?.user_decoded()?;
        FeatureCode::dialled(&self.config.calls.acd.feature_codes, &user)
    }

    /// Authenticates a feature-code INVITE (RFC 3261 §22.2) with the registrar's verifier
    /// and checks that the operator dials for themself (From user = digest username).
    pub(crate) fn authorize_feature(
        &mut self,
        now: Now,
        rx: &Received,
        msg: &SipMessage,
        code: FeatureCode,
    ) -> FeatureVerdict {
        let operator = match self.registrar.authenticate(now.mono, msg) {
            AuthOutcome::Ok { user } => user,
            AuthOutcome::Challenge { stale } => {
                let challenge = self
                    .registrar
                    .auth_mut()
                    .challenge(now.mono, &mut self.rng, stale);
                return FeatureVerdict::Refuse {
                    status: 401,
                    reason: "Unauthorized".to_owned(),
                    headers: vec![("WWW-Authenticate", challenge.header_value())],
                };
            }
            AuthOutcome::Forbidden => {
                tracing::info!(source = %rx.source, code = code.key(), "feature code: authentication failed");
                return FeatureVerdict::refuse(403, "Forbidden");
            }
            AuthOutcome::BadRequest(error) => {
                tracing::debug!(source = %rx.source, %error, "feature code: credentials malformed");
                return FeatureVerdict::refuse(400, &format!("Bad Request - {error}"));
            }
        };
        let from_user = msg
            .from()
            .ok()
            .and_then(|from| from.uri.as_sip().and_then(SipUri::user_decoded));
        if from_user.as_deref() != Some(operator.as_bytes()) {
            tracing::info!(%operator, source = %rx.source, code = code.key(), "feature code dialled for another user: 403");
            return FeatureVerdict::refuse(
                403,
                "Forbidden (From is not the authenticated operator)",
            );
        }
        FeatureVerdict::Act { operator, code }
    }

    /// `operator` (authenticated) dialled `code`; `call` is the INVITE, with its server
    /// transaction. Acts and answers (see the module docs, steps 4–5).
    pub(crate) fn start_feature_call(
        &mut self,
        now: Now,
        operator: &str,
        code: FeatureCode,
        call: InboundFeatureCall,
    ) {
        let Some(command) = code.command() else {
            // A CANCEL may end the INVITE while `take_callback` keeps it unanswered.
            let tx = call.tx;
            self.calls.features.prune(&self.server);
            self.calls.features.hold(call.clone());
            self.take_callback(now, operator, call);
            if !self.server.is_pending_invite(tx) {
                self.calls.features.unanswered.remove(&tx);
            }
            return;
        };
        // The answer is known before anything changes: an INVITE siaga could not answer
        // 200 changes nothing.
        let (body, offered) = match self.feature_sdp(&call.invite) {
            Ok(sdp) => sdp,
            Err(why) => {
                tracing::info!(operator, code = code.key(), %why, "feature code: offer unreadable: 488");
                let warning = self.warning(305, &why);
                return self.refuse_feature_call(
                    now,
                    &call,
                    (488, "Not Acceptable Here"),
                    &[("Warning", warning)],
                );
            }
        };
        let dialog = match Dialog::as_uas(&call.invite, &call.local_tag, call.source) {
            Ok(dialog) => dialog,
            Err(error) => {
                let reason = format!("Bad Request - {error}");
                return self.refuse_feature_call(now, &call, (400, &reason), &[]);
            }
        };
        match self.agent_command(now, operator, command) {
            Ok(state) => {
                tracing::info!(operator, code = code.key(), %state, "feature code done: 200, then BYE");
                self.accept_feature_call(now, operator, code, &call, (dialog, body, offered));
            }
            Err(error) => {
                // `agent_command` logged the refusal. The phone is told the code's name.
                let why = match &error {
                    AgentError::NotAllowed { state, .. } => {
                        format!("{} is not possible while {state}", code.key())
                    }
                    other => other.to_string().replace(char::is_control, " "),
                };
                let warning = self.warning(399, &why);
                let reason = format!("Forbidden ({why})");
                self.refuse_feature_call(now, &call, (403, &reason), &[("Warning", warning)]);
            }
        }
    }

    /// Answers the unanswered feature-code INVITE `call` with a final failure `status`
    /// (≥ 300) and `headers` (through its transaction, which resends it until the ACK).
    pub(crate) fn refuse_feature_call(
        &mut self,
        now: Now,
        call: &InboundFeatureCall,
        (status, reason): (u16, &str),
        headers: &[(&str, String)],
    ) {
        self.refuse_call(
            now,
            call.tx,
            &call.invite,
            (&call.local_tag, call.received_from),
            (status, reason),
            headers,
        );
    }

    /// The SDP of the 200 to a feature-code `invite`, and whether it is an offer: an
    /// inactive answer to the INVITE's offer, or an inactive offer without one (see the
    /// module docs). Errors: why the INVITE's offer cannot be read.
    fn feature_sdp(&mut self, invite: &SipMessage) -> Result<(Bytes, bool), String> {
        let at = SocketAddr::new(self.config.calls.media_ip, NO_MEDIA_PORT);
        let mut session = SdpSession::random(&mut self.rng);
        match crate::engine::sip::body::sdp_of(invite) {
            None => Ok((sdp::offer_inactive(at, &mut session), true)),
            Some(body) => {
                let offer = sdp::parse(body).map_err(|e| e.to_string())?;
                Ok((sdp::answer_inactive(&offer, at, &mut session), false))
            }
        }
    }

    /// Sends the 200 to `call` (RFC 3261 §13.3.1.4: Contact, the Record-Route copied, the
    /// SDP `body`) and resends it until the ACK.
    fn accept_feature_call(
        &mut self,
        now: Now,
        operator: &str,
        code: FeatureCode,
        call: &InboundFeatureCall,
        (dialog, body, offered): (Dialog, Bytes, bool),
    ) {
        let ok = response_to(
            &call.invite,
            Some(call.received_from),
            200,
            "OK",
            Some(&call.local_tag),
        )
        .header("Server", SERVER)
        .copy_all(&call.invite, HeaderName::RecordRoute)
        .header("Contact", self.config.contact(call.target.transport))
        .header("Allow", uas::allow_value())
        .body("application/sdp", body)
        .build();
        if let Err(error) = self
            .server
            .send_response(now.mono, call.tx, 200, ok.clone())
        {
            tracing::error!(%error, "transaction refused siaga's 2xx to a feature code");
        }
        let t1 = self.config.timers.t1;
        self.calls.features.insert(FeatureDialog {
            operator: operator.to_owned(),
            code,
            dialog,
            ok: PendingOk {
                bytes: ok,
                interval: t1,
                target: call.target,
                first: true,
                offered,
                seq: call.invite.cseq().map(|c| c.seq).unwrap_or_default(),
                next: now.mono + t1,
                give_up: now.mono + self.config.timers.sixty_four_t1(),
            },
        });
    }

    /// An ACK with a To tag that no transaction took: if it acknowledges siaga's 2xx to a
    /// feature code (its INVITE's CSeq number, §13.2.2.4), the call is ended with BYE.
    /// Returns whether the ACK was in a feature call's dialog.
    pub(crate) fn on_feature_ack(&mut self, now: Now, key: &DialogKey, ack: &SipMessage) -> bool {
        let Some(id) = self.calls.features.find(key, ack) else {
            return false;
        };
        let seq = ack.cseq().map(|c| c.seq).ok();
        if self.calls.features.dialogs.get(&id).map(|c| c.ok.seq) == seq {
            self.end_feature_call(now, id, "ACK");
        }
        true
    }

    /// A request in a feature call's dialog: the phone's BYE (it hung up first) draws 200
    /// and ends it; anything else is left to the other dialogs (and draws 481).
    pub(crate) fn on_feature_dialog_request(
        &mut self,
        key: &DialogKey,
        msg: &SipMessage,
    ) -> Option<DialogReply> {
        if msg.method() != Some(&Method::Bye) {
            return None;
        }
        let id = self.calls.features.find(key, msg)?;
        let call = self.calls.features.remove(id)?;
        tracing::debug!(operator = %call.operator, code = call.code.key(), "feature call ended by the phone");
        Some(DialogReply::Final(200, "OK", None))
    }

    /// The CANCEL of INVITE transaction `tx` was answered 200: a feature-code INVITE still
    /// unanswered gets 487 and nothing is done (RFC 3261 §9.2).
    pub(crate) fn on_feature_cancel(&mut self, now: Now, tx: TxId) {
        let Some(call) = self.calls.features.unanswered.remove(&tx) else {
            return;
        };
        if self.server.is_pending_invite(tx) {
            tracing::info!("feature-code INVITE cancelled before its answer: 487");
            self.refuse_feature_call(now, &call, (487, "Request Terminated"), &[]);
        }
    }

    /// Feature calls' timers due at `now`: the 2xx again, its interval doubled up to T2
    /// (§13.3.1.4); 64·T1 without ACK, BYE.
    pub(crate) fn feature_timeout(&mut self, now: Now) {
        let t2 = self.config.timers.t2;
        while let Some(id) = self.calls.features.pop_due(now.mono) {
            let Some(call) = self.calls.features.dialogs.get_mut(&id) else {
                continue;
            };
            let ok = &mut call.ok;
            if ok.give_up <= now.mono {
                tracing::warn!(operator = %call.operator, "no ACK for the 2xx to a feature code within 64*T1: BYE");
                self.end_feature_call(now, id, "no ACK");
                continue;
            }
            if ok.next > now.mono {
                continue;
            }
            ok.interval = (ok.interval * 2).min(t2);
            ok.next = now.mono + ok.interval;
            let (bytes, target, next) = (ok.bytes.clone(), ok.target, ok.next);
            self.calls.features.timers.insert((next, id));
            self.transmit(
                Destination {
                    transport: target.transport,
                    address: target.destination,
                    connection: target.connection,
                },
                bytes,
            );
        }
    }

    /// Ends feature call `id` with siaga's BYE (§15.1.1) and forgets it.
    fn end_feature_call(&mut self, now: Now, id: u64, why: &str) {
        let Some(mut call) = self.calls.features.remove(id) else {
            return;
        };
        tracing::debug!(operator = %call.operator, code = call.code.key(), why, "feature call ended with BYE");
        self.send_bye(now, &mut call.dialog);
    }
}
