//! Registrar tests: real REGISTER bytes, Digest answers computed as SIPp and baresip do,
//! bindings checked through the public API and the change events.

use super::*;
use crate::engine::sip::view::AuthValue;
use bytes::Bytes;
use md5::{Digest, Md5};
use rand::SeedableRng;

mod outbound;

const REALM: &str = "siaga.test";
const REQUEST_URI: &str = "sip:siaga.test";

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn at(secs: u64) -> Now {
    Now::from_millis(1_700_000_000_000 + secs * 1000)
}

fn registrar() -> Registrar {
    Registrar::new(
        RegistrarConfig::new(REALM),
        vec![
            ("1001".into(), Ha1::from_password("1001", REALM, "secret")),
            (
                "1002".into(),
                Ha1::from_hex(&md5_hex("1002:siaga.test:other")).expect("hex"),
            ),
        ],
        [42; 32],
    )
}

fn udp(addr: &str) -> RegisterSource {
    RegisterSource {
        transport: Transport::Udp,
        source: addr.parse().expect("address"),
        connection: None,
    }
}

/// A softphone: its own Call-ID and CSeq, and the last nonce it was given.
struct Phone {
    user: &'static str,
    password: &'static str,
    contact: String,
    call_id: String,
    cseq: u32,
    source: RegisterSource,
    nonce: Option<String>,
    nc: u32,
}

impl Phone {
    fn new(user: &'static str, password: &'static str, contact: &str, source: &str) -> Phone {
        Phone {
            user,
            password,
            contact: contact.to_owned(),
            call_id: format!("{user}-{contact}@phone"),
            cseq: 0,
            source: udp(source),
            nonce: None,
            nc: 0,
        }
    }

    fn contact_line(&self) -> String {
        format!("Contact: <{}>\r\n", self.contact)
    }

    /// The next REGISTER with `lines` (Contact, Expires…), answering the last challenge.
    fn build(&mut self, lines: &str) -> SipMessage {
        self.cseq += 1;
        let user = self.user;
        let mut auth = String::new();
        if let Some(nonce) = &self.nonce {
            self.nc += 1;
            let nc = format!("{:08x}", self.nc);
            let cnonce = "6b8b4567";
            let ha1 = md5_hex(&format!("{user}:{REALM}:{}", self.password));
            let ha2 = md5_hex(&format!("REGISTER:{REQUEST_URI}"));
            let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
            auth = format!(
                "Authorization: Digest username=\"{user}\",realm=\"{REALM}\",cnonce=\"{cnonce}\",nc={nc},qop=auth,uri=\"{REQUEST_URI}\",nonce=\"{nonce}\",response=\"{response}\",algorithm=MD5\r\n"
            );
        }
        let text = format!(
            "REGISTER {REQUEST_URI} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {src};branch=z9hG4bK{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{REALM}>;tag=t{cseq}\r\n\
             To: <sip:{user}@{REALM}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {auth}{lines}User-Agent: test\r\n\
             Content-Length: 0\r\n\r\n",
            src = self.source.source,
            cseq = self.cseq,
            call_id = self.call_id,
        );
        SipMessage::parse(Bytes::from(text), Transport::Udp).expect("test REGISTER parses")
    }

    /// Sends a REGISTER; on 401 takes the nonce and sends it again, like a phone.
    fn send(
        &mut self,
        reg: &mut Registrar,
        now: Now,
        rng: &mut StdRng,
        lines: &str,
    ) -> RegisterOutcome {
        let msg = self.build(lines);
        let outcome = reg.handle_register(now, rng, &msg, self.source);
        if outcome.status != 401 {
            return outcome;
        }
        self.take_challenge(&outcome);
        let msg = self.build(lines);
        reg.handle_register(now, rng, &msg, self.source)
    }

    fn take_challenge(&mut self, outcome: &RegisterOutcome) {
        let value = header(outcome, "WWW-Authenticate").expect("401 carries a challenge");
        let challenge =
            AuthValue::parse(value, HeaderName::WwwAuthenticate).expect("challenge parses");
        self.nonce = challenge.digest_param("nonce");
        self.nc = 0;
    }

    fn register(&mut self, reg: &mut Registrar, now: Now, rng: &mut StdRng) -> RegisterOutcome {
        let line = self.contact_line();
        self.send(reg, now, rng, &line)
    }
}

fn header<'a>(outcome: &'a RegisterOutcome, name: &str) -> Option<&'a str> {
    outcome
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn contacts(outcome: &RegisterOutcome) -> Vec<&str> {
    outcome
        .headers
        .iter()
        .filter(|(n, _)| *n == "Contact")
        .map(|(_, v)| v.as_str())
        .collect()
}

fn changes(reg: &mut Registrar) -> Vec<BindingChange> {
    std::iter::from_fn(|| reg.poll_change()).collect()
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

#[test]
fn challenge_then_register_then_200_with_the_binding() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new(
        "1001",
        "secret",
        "sip:1001@192.168.1.20:5062",
        "203.0.113.9:40001",
    );
    let first = phone.build(&phone.contact_line());
    let challenge = reg.handle_register(at(0), &mut rng, &first, phone.source);
    assert_eq!(
        (challenge.status, challenge.reason.as_str()),
        (401, "Unauthorized")
    );
    let value = header(&challenge, "WWW-Authenticate").expect("challenge");
    assert!(
        value.starts_with("Digest realm=\"siaga.test\", nonce=\""),
        "{value}"
    );
    assert!(value.contains("algorithm=MD5") && value.contains("qop=\"auth\""));
    assert!(!value.contains("stale"));
    assert!(changes(&mut reg).is_empty(), "a challenge changes nothing");

    phone.take_challenge(&challenge);
    let msg = phone.build(&phone.contact_line());
    let ok = reg.handle_register(at(0), &mut rng, &msg, phone.source);
    assert_eq!((ok.status, ok.reason.as_str()), (200, "OK"));
    assert_eq!(ok.user.as_deref(), Some("1001"));
    assert_eq!(contacts(&ok), ["<sip:1001@192.168.1.20:5062>;expires=3600"]);
    assert_eq!(header(&ok, "Date"), Some("Tue, 14 Nov 2023 22:13:20 GMT"));

    let bound: Vec<_> = reg.bindings("1001").collect();
    assert_eq!(bound.len(), 1);
    let b = bound[0];
    assert_eq!(b.contact_uri.to_string(), "sip:1001@192.168.1.20:5062");
    // NAT: the binding keeps where the REGISTER came from, not the Contact's address.
    assert_eq!(b.source, "203.0.113.9:40001".parse().expect("addr"));
    assert_eq!(b.transport, Transport::Udp);
    assert_eq!(b.expires_at, at(3600).mono);
    assert_eq!((b.call_id.as_str(), b.cseq), (phone.call_id.as_str(), 2));
    assert_eq!(reg.next_deadline(), Some(at(3600).mono));
    assert!(reg.is_registered("1001"));

    let events = changes(&mut reg);
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0], BindingChange::Added(b) if b.user == "1001"));
    assert_eq!(
        events[1],
        BindingChange::Registered {
            user: "1001".into()
        }
    );
}

#[test]
fn unknown_user_and_wrong_password_draw_the_same_403() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut wrong = Phone::new("1001", "guess", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let mut unknown = Phone::new("9999", "secret", "sip:9999@10.0.0.3", "10.0.0.3:5060");
    let a = wrong.register(&mut reg, at(0), &mut rng);
    let b = unknown.register(&mut reg, at(0), &mut rng);
    assert_eq!((a.status, a.reason.as_str()), (403, "Forbidden"));
    assert_eq!(a, b, "status, reason and headers are identical");
    assert_eq!(reg.all_bindings().count(), 0);
    assert!(changes(&mut reg).is_empty());
}

#[test]
fn stale_nonce_draws_stale_true_and_a_retry_succeeds() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    assert_eq!(phone.register(&mut reg, at(0), &mut rng).status, 200);
    // The phone reuses its nonce past the TTL (300 s).
    let msg = phone.build(&phone.contact_line());
    let stale = reg.handle_register(at(301), &mut rng, &msg, phone.source);
    assert_eq!(stale.status, 401);
    let value = header(&stale, "WWW-Authenticate").expect("challenge");
    assert!(value.ends_with(", stale=true"), "{value}");
    phone.take_challenge(&stale);
    let msg = phone.build(&phone.contact_line());
    assert_eq!(
        reg.handle_register(at(301), &mut rng, &msg, phone.source)
            .status,
        200
    );
}

#[test]
fn a_replayed_register_is_challenged_again() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    let msg = phone.build(&phone.contact_line());
    assert_eq!(
        reg.handle_register(at(1), &mut rng, &msg, phone.source)
            .status,
        200
    );
    // The same bytes again (an attacker's replay, same nc): a fresh stale challenge, not
    // a 200 and not the out-of-order 500.
    let replay = reg.handle_register(at(2), &mut rng, &msg, udp("198.51.100.66:5060"));
    assert_eq!(replay.status, 401);
    assert!(header(&replay, "WWW-Authenticate").is_some_and(|v| v.contains("stale=true")));
    let b = reg.bindings("1001").next().expect("binding");
    assert_eq!(b.source, phone.source.source, "the replay moved nothing");
}

#[test]
fn expiry_removes_the_binding_and_unregisters() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let line = format!("{}Expires: 120\r\n", phone.contact_line());
    let ok = phone.send(&mut reg, at(0), &mut rng, &line);
    assert_eq!(contacts(&ok), ["<sip:1001@10.0.0.2>;expires=120"]);
    changes(&mut reg);
    assert_eq!(reg.next_deadline(), Some(at(120).mono));
    reg.handle_timeout(at(119).mono);
    assert_eq!(reg.bindings("1001").count(), 1);
    assert!(changes(&mut reg).is_empty());
    reg.handle_timeout(at(120).mono);
    assert_eq!(reg.bindings("1001").count(), 0);
    assert_eq!(reg.next_deadline(), None);
    let events = changes(&mut reg);
    assert!(matches!(
        &events[..],
        [
            BindingChange::Removed { reason: RemovalReason::Expired, .. },
            BindingChange::Unregistered { user },
        ] if user == "1001"
    ));
}

#[test]
fn wildcard_with_expires_zero_removes_every_binding() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut desk = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let mut mobile = Phone::new("1001", "secret", "sip:1001@10.0.0.9:5070", "10.0.0.9:5070");
    desk.register(&mut reg, at(0), &mut rng);
    mobile.register(&mut reg, at(0), &mut rng);
    changes(&mut reg);
    // `*` without Expires: 0 is refused.
    let bad = desk.send(&mut reg, at(1), &mut rng, "Contact: *\r\n");
    assert_eq!(bad.status, 400);
    assert_eq!(reg.bindings("1001").count(), 2);
    let ok = desk.send(&mut reg, at(1), &mut rng, "Contact: *\r\nExpires: 0\r\n");
    assert_eq!(ok.status, 200);
    assert!(contacts(&ok).is_empty());
    assert_eq!(reg.bindings("1001").count(), 0);
    assert_eq!(reg.next_deadline(), None);
    let events = changes(&mut reg);
    assert_eq!(events.len(), 3);
    assert!(events[..2].iter().all(|e| matches!(
        e,
        BindingChange::Removed {
            reason: RemovalReason::Unregistered,
            ..
        }
    )));
    assert_eq!(
        events[2],
        BindingChange::Unregistered {
            user: "1001".into()
        }
    );
}

#[test]
fn intervals_min_max_and_precedence() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let brief = phone.send(
        &mut reg,
        at(0),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>\r\nExpires: 30\r\n",
    );
    assert_eq!(
        (brief.status, brief.reason.as_str()),
        (423, "Interval Too Brief")
    );
    assert_eq!(header(&brief, "Min-Expires"), Some("60"));
    assert_eq!(reg.bindings("1001").count(), 0);
    // Above the maximum is shortened to it.
    let long = phone.send(
        &mut reg,
        at(0),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>\r\nExpires: 86400\r\n",
    );
    assert_eq!(contacts(&long), ["<sip:1001@10.0.0.2>;expires=3600"]);
    // The contact's expires parameter beats the Expires header.
    let param = phone.send(
        &mut reg,
        at(0),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>;expires=600;q=0.5\r\nExpires: 30\r\n",
    );
    assert_eq!(contacts(&param), ["<sip:1001@10.0.0.2>;expires=600;q=0.5"]);
    // A brief contact parameter fails the whole request: nothing is committed.
    let mixed = phone.send(
        &mut reg,
        at(0),
        &mut rng,
        "Contact: <sip:1001@10.0.0.5>, <sip:1001@10.0.0.2>;expires=10\r\n",
    );
    assert_eq!(mixed.status, 423);
    assert_eq!(reg.bindings("1001").count(), 1);
}

#[test]
fn several_bindings_per_operator() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut desk = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let mut mobile = Phone::new(
        "1001",
        "secret",
        "sip:1001@10.0.0.9:5070;transport=tcp",
        "10.0.0.9:51000",
    );
    mobile.source.transport = Transport::Tcp;
    mobile.source.connection = Some(ConnectionId(4));
    desk.register(&mut reg, at(0), &mut rng);
    let ok = mobile.register(&mut reg, at(10), &mut rng);
    // §10.3 step 8: the 200 lists every binding of the AOR, each with what is left.
    assert_eq!(
        contacts(&ok),
        [
            "<sip:1001@10.0.0.2>;expires=3590",
            "<sip:1001@10.0.0.9:5070;transport=tcp>;expires=3600"
        ]
    );
    let tcp = reg
        .bindings("1001")
        .find(|b| b.transport == Transport::Tcp)
        .expect("tcp binding");
    assert_eq!(tcp.connection, Some(ConnectionId(4)));
    let events = changes(&mut reg);
    let registered = events
        .iter()
        .filter(|e| matches!(e, BindingChange::Registered { .. }))
        .count();
    assert_eq!(registered, 1, "{events:?}");
    // Another operator's bindings are separate.
    let mut other = Phone::new("1002", "other", "sip:1002@10.0.0.2", "10.0.0.2:5060");
    assert_eq!(
        contacts(&other.register(&mut reg, at(10), &mut rng)).len(),
        1
    );
    assert_eq!(reg.all_bindings().count(), 3);
    // The connection closing keeps the binding without it.
    reg.handle_connection_closed(ConnectionId(4));
    assert!(reg.bindings("1001").all(|b| b.connection.is_none()));
}

#[test]
fn refresh_keeps_one_binding_and_moves_it() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new(
        "1001",
        "secret",
        "sip:1001@192.168.1.20:5062",
        "203.0.113.9:40001",
    );
    phone.register(&mut reg, at(0), &mut rng);
    let id = reg.bindings("1001").next().expect("binding").id;
    changes(&mut reg);
    // The NAT mapping changed; the phone refreshes with the same Call-ID, next CSeq.
    phone.source = udp("203.0.113.9:40777");
    let ok = phone.register(&mut reg, at(1800), &mut rng);
    assert_eq!(contacts(&ok), ["<sip:1001@192.168.1.20:5062>;expires=3600"]);
    let bound: Vec<_> = reg.bindings("1001").collect();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].id, id);
    assert_eq!(bound[0].source, "203.0.113.9:40777".parse().expect("addr"));
    assert_eq!(bound[0].expires_at, at(5400).mono);
    assert_eq!(bound[0].registered_at, at(0).mono);
    assert_eq!(reg.next_deadline(), Some(at(5400).mono));
    assert!(changes(&mut reg).is_empty(), "a refresh is no change");
    // The old deadline is gone: nothing expires at the first registration's time.
    reg.handle_timeout(at(3600).mono);
    assert_eq!(reg.bindings("1001").count(), 1);
}

#[test]
fn out_of_order_register_fails_and_changes_nothing() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    changes(&mut reg);
    // Same Call-ID, a CSeq not above the binding's: §10.3 step 7 aborts the request.
    phone.cseq -= 2;
    let late = phone.send(
        &mut reg,
        at(5),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>\r\nExpires: 0\r\n",
    );
    assert_eq!(
        (late.status, late.reason.as_str()),
        (500, "Server Internal Error")
    );
    assert_eq!(reg.bindings("1001").count(), 1);
    assert!(changes(&mut reg).is_empty());
    let late = phone.send(&mut reg, at(5), &mut rng, "Contact: *\r\nExpires: 0\r\n");
    assert_eq!(late.status, 500);
    assert_eq!(reg.bindings("1001").count(), 1);
}

#[test]
fn a_rebooted_phone_with_a_new_call_id_updates_its_binding() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    let mut rebooted = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    rebooted.call_id = "fresh-after-reboot".into();
    assert_eq!(rebooted.register(&mut reg, at(60), &mut rng).status, 200);
    let bound: Vec<_> = reg.bindings("1001").collect();
    assert_eq!(bound.len(), 1);
    assert_eq!(
        (bound[0].call_id.as_str(), bound[0].cseq),
        ("fresh-after-reboot", 2)
    );
}

#[test]
fn query_and_unregister_one_contact() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    changes(&mut reg);
    // No Contact: a query.
    let query = phone.send(&mut reg, at(100), &mut rng, "");
    assert_eq!(contacts(&query), ["<sip:1001@10.0.0.2>;expires=3500"]);
    assert!(changes(&mut reg).is_empty());
    // Expires: 0 on the contact removes it.
    let bye = phone.send(
        &mut reg,
        at(200),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>\r\nExpires: 0\r\n",
    );
    assert_eq!(bye.status, 200);
    assert!(contacts(&bye).is_empty());
    let events = changes(&mut reg);
    assert!(matches!(
        &events[..],
        [
            BindingChange::Removed {
                reason: RemovalReason::Unregistered,
                ..
            },
            BindingChange::Unregistered { .. },
        ]
    ));
    // Removing what is not there is no error.
    let again = phone.send(
        &mut reg,
        at(201),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2>;expires=0\r\n",
    );
    assert_eq!(again.status, 200);
    assert!(changes(&mut reg).is_empty());
}

#[test]
fn an_operator_registers_only_their_own_aor() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    // Credentials of 1001 on a REGISTER whose To names 1002.
    let msg = phone.build(&phone.contact_line());
    let text = String::from_utf8_lossy(msg.as_bytes()).replace("To: <sip:1001@", "To: <sip:1002@");
    let msg = SipMessage::parse(Bytes::from(text), Transport::Udp).expect("parses");
    let out = reg.handle_register(at(1), &mut rng, &msg, phone.source);
    assert_eq!((out.status, out.reason.as_str()), (403, "Forbidden"));
    assert_eq!(reg.bindings("1002").count(), 0);
}

#[test]
fn bindings_per_operator_are_capped() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    for port in 0..MAX_BINDINGS_PER_USER as u64 {
        let line = format!("Contact: <sip:1001@10.0.0.2:{}>\r\n", 6000 + port);
        assert_eq!(phone.send(&mut reg, at(port), &mut rng, &line).status, 200);
    }
    changes(&mut reg);
    // One more evicts the binding closest to expiry (the first).
    let ok = phone.send(
        &mut reg,
        at(20),
        &mut rng,
        "Contact: <sip:1001@10.0.0.2:7000>\r\n",
    );
    assert_eq!(contacts(&ok).len(), MAX_BINDINGS_PER_USER);
    assert!(!contacts(&ok).iter().any(|c| c.contains(":6000>")));
    let events = changes(&mut reg);
    assert!(matches!(&events[..], [
        BindingChange::Added(_),
        BindingChange::Removed { reason: RemovalReason::Evicted, binding },
    ] if binding.contact_uri.to_string() == "sip:1001@10.0.0.2:6000"));
    // A REGISTER listing more contacts than the cap is refused outright.
    let many: Vec<String> = (0..=MAX_BINDINGS_PER_USER)
        .map(|i| format!("<sip:1001@10.0.1.{i}>"))
        .collect();
    let line = format!("Contact: {}\r\n", many.join(", "));
    let refused = phone.send(&mut reg, at(30), &mut rng, &line);
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (403, "Too Many Contacts")
    );
}

#[test]
fn malformed_registers_draw_400() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut phone = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    phone.register(&mut reg, at(0), &mut rng);
    for lines in [
        "Contact: <tel:+62215550100>\r\n",
        "Contact: <sip:1001@10.0.0.2>;expires=99999999999\r\n",
        "Contact: <sip:1001@10.0.0.2>\r\nExpires: soon\r\n",
        "Contact: <sip:1001@10.0.0.2>;q=2\r\n",
    ] {
        let out = phone.send(&mut reg, at(1), &mut rng, lines);
        assert_eq!(out.status, 400, "{lines}");
        assert!(out.reason.starts_with("Bad Request - "), "{}", out.reason);
    }
    // Credentials for a challenge siaga never made.
    let msg = phone.build(&phone.contact_line());
    let text =
        String::from_utf8_lossy(msg.as_bytes()).replace("algorithm=MD5", "algorithm=SHA-256");
    let msg = SipMessage::parse(Bytes::from(text), Transport::Udp).expect("parses");
    let out = reg.handle_register(at(1), &mut rng, &msg, phone.source);
    assert_eq!(out.reason, "Bad Request - digest algorithm not offered");
    assert_eq!(reg.bindings("1001").count(), 1);
}

#[test]
fn removed_operators_lose_their_bindings() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut a = Phone::new("1001", "secret", "sip:1001@10.0.0.2", "10.0.0.2:5060");
    let mut b = Phone::new("1002", "other", "sip:1002@10.0.0.3", "10.0.0.3:5060");
    a.register(&mut reg, at(0), &mut rng);
    b.register(&mut reg, at(0), &mut rng);
    changes(&mut reg);
    reg.replace_users(vec![(
        "1002".into(),
        Ha1::from_password("1002", REALM, "other"),
    )]);
    assert_eq!(reg.bindings("1001").count(), 0);
    assert_eq!(reg.bindings("1002").count(), 1);
    assert_eq!(reg.ha1("1001"), None);
    let events = changes(&mut reg);
    assert!(matches!(&events[..], [
        BindingChange::Removed { reason: RemovalReason::UserRemoved, .. },
        BindingChange::Unregistered { user },
    ] if user == "1001"));
    reg.handle_timeout(at(4000).mono);
    assert_eq!(
        changes(&mut reg).len(),
        2,
        "only 1002's binding was still timed"
    );
}

#[test]
fn config_validation_and_clamping() {
    let ok = RegistrarConfig::new(REALM);
    assert_eq!(ok.validate(), Ok(()));
    let bad = RegistrarConfig {
        min_expires_s: 600,
        max_expires_s: 300,
        ..ok.clone()
    };
    assert_eq!(bad.validate(), Err(RegistrarConfigError::MinExpires));
    let bad = RegistrarConfig {
        default_expires_s: 10,
        ..ok.clone()
    };
    assert_eq!(bad.validate(), Err(RegistrarConfigError::DefaultExpires));
    assert_eq!(
        RegistrarConfig::new("").validate(),
        Err(RegistrarConfigError::EmptyRealm)
    );
    let reg = Registrar::new(bad, Vec::new(), [0; 32]);
    assert_eq!(reg.config().default_expires_s, 60);
}

#[test]
fn q_values_are_written_back_short() {
    assert_eq!(format_q(1000), "1");
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(330), "0.33");
    assert_eq!(format_q(7), "0.007");
    assert_eq!(format_q(0), "0");
}

/// One step of a random registrar history.
#[derive(Clone, Debug)]
enum Step {
    /// Phone `phone` registers contact `contact` with an Expires header (`None`: absent).
    Register {
        phone: usize,
        contact: u8,
        expires: Option<u32>,
    },
    /// Phone `phone` sends `Contact: *` with `Expires: 0`.
    RemoveAll { phone: usize },
    /// Time passes by this many seconds, then timers fire.
    Wait { secs: u64 },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0..4usize, 0..14u8, prop::option::of(prop::sample::select(vec![0u32, 30, 60, 600, 7200])))
            .prop_map(|(phone, contact, expires)| Step::Register { phone, contact, expires }),
        1 => (0..4usize).prop_map(|phone| Step::RemoveAll { phone }),
        3 => (0..4000u64).prop_map(|secs| Step::Wait { secs }),
    ]
}

proptest::proptest! {
    /// Whatever happens: no operator holds more than the cap; every binding has exactly
    /// one timer and none is past its time after `handle_timeout`; the events tell each
    /// operator's registered state truthfully and in order.
    #[test]
    fn invariants_hold_over_random_histories(steps in proptest::collection::vec(step(), 1..40)) {
        let (mut reg, mut rng) = (registrar(), rng());
        // Two phones per operator, so Call-IDs differ within one AOR.
        let mut phones = [
            Phone::new("1001", "secret", "sip:x@h", "10.0.0.1:5060"),
            Phone::new("1001", "secret", "sip:y@h", "10.0.0.2:5060"),
            Phone::new("1002", "other", "sip:z@h", "10.0.0.3:5060"),
            Phone::new("1002", "other", "sip:w@h", "10.0.0.4:5060"),
        ];
        let mut secs = 0;
        let mut registered: HashMap<String, bool> = HashMap::new();
        for step in steps {
            match step {
                Step::Register { phone, contact, expires } => {
                    let p = &mut phones[phone];
                    let mut lines = format!("Contact: <sip:{}@10.9.9.{contact}>\r\n", p.user);
                    if let Some(e) = expires {
                        lines.push_str(&format!("Expires: {e}\r\n"));
                    }
                    let out = p.send(&mut reg, at(secs), &mut rng, &lines);
                    proptest::prop_assert!([200, 423].contains(&out.status), "{out:?}");
                }
                Step::RemoveAll { phone } => {
                    let out = phones[phone].send(&mut reg, at(secs), &mut rng, "Contact: *\r\nExpires: 0\r\n");
                    proptest::prop_assert_eq!(out.status, 200);
                }
                Step::Wait { secs: d } => {
                    secs += d;
                    reg.handle_timeout(at(secs).mono);
                }
            }
            for event in changes(&mut reg) {
                match event {
                    BindingChange::Registered { user } => {
                        let was = registered.insert(user, true).unwrap_or(false);
                        proptest::prop_assert!(!was, "Registered twice");
                    }
                    BindingChange::Unregistered { user } => {
                        let was = registered.insert(user, false).unwrap_or(false);
                        proptest::prop_assert!(was, "Unregistered while not registered");
                    }
                    BindingChange::Added(_)
                    | BindingChange::Removed { .. }
                    | BindingChange::Reachable(_) => {}
                }
            }
            let mut timers = 0;
            for user in ["1001", "1002"] {
                let n = reg.bindings(user).count();
                proptest::prop_assert!(n <= MAX_BINDINGS_PER_USER);
                proptest::prop_assert_eq!(n > 0, registered.get(user).copied().unwrap_or(false));
                proptest::prop_assert_eq!(n > 0, reg.is_registered(user));
                for b in reg.bindings(user) {
                    proptest::prop_assert!(b.expires_at > at(secs).mono);
                    proptest::prop_assert_eq!(reg.deadlines.get(&(b.expires_at, b.id)).map(String::as_str), Some(user));
                    timers += 1;
                }
            }
            proptest::prop_assert_eq!(reg.deadlines.len(), timers);
        }
    }
}
