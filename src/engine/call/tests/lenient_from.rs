//! Emergency INVITEs whose From (or To) does not parse strictly (RFC 3261 §8.2: a UAS may
//! be lenient): taken as calls, the caller number from P-Asserted-Identity or what the
//! From's URI holds, and the call's later requests (ACK, BYE, CANCEL) matched; and those
//! that cannot be processed at all (no From tag, no Call-ID) refused with 400 but recorded
//! as `failed`. Everything else keeps the strict parse (RFC 4475 §3.1.2.15).

use super::*;

const STRICT_FROM: &str = "From: <sip:+6281100001@trunk.test>";
const PAI: &str = "P-Asserted-Identity: <tel:+62811-555-0001>\r\n";

/// The trunk's INVITE `id` with its From replaced by `from` (tag `tr<id>` kept after it).
fn invite_from(id: &str, from: &str) -> String {
    let invite = trunk_invite(id);
    assert!(invite.contains(STRICT_FROM));
    invite.replacen(STRICT_FROM, &format!("From: {from}"), 1)
}

fn caller_of(out: &Out) -> Option<Option<String>> {
    out.events.iter().find_map(|e| match e {
        CallEventKind::Received { caller, .. } => Some(caller.clone()),
        _ => None,
    })
}

fn disposition_of(out: &Out) -> Option<Disposition> {
    out.events.iter().find_map(|e| match e {
        CallEventKind::Ended { disposition, .. } => Some(*disposition),
        _ => None,
    })
}

#[test]
fn an_unquoted_utf8_display_name_is_taken_and_the_call_runs_to_its_bye() {
    let mut h = Harness::new(15);
    let invite = invite_from("lf1", "Budi Santoso° <sip:+6281100001@trunk.test>").replacen(
        "To: <sip:",
        "To: Pusat 112 Kota° <sip:",
        1,
    );
    let (first, ok, _) = answer_through_1001(&mut h, &invite);
    assert!(!first.statuses_to(TRUNK).contains(&400));
    assert!(first.statuses_to(TRUNK).contains(&100));
    assert_eq!(
        caller_of(&first),
        Some(Some("+628115550001".to_owned())),
        "the asserted identity"
    );
    assert_eq!(ok.status(), Some(200));
    assert!(
        hdr(&ok, HeaderName::From).starts_with("Budi Santoso° <sip:"),
        "From echoed as sent"
    );
    // The trunk's ACK and BYE carry the same From and To (with siaga's tag): matched.
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "lf1ack"));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "lf1bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(disposition_of(&out), Some(Disposition::Answered));
}

#[test]
fn without_an_asserted_identity_the_number_is_salvaged_from_the_from_uri() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite =
        invite_from("lf2", "Budi, Santoso <sip:0812 3456#9@trunk.test>").replacen(PAI, "", 1);
    let out = h.input(TRUNK, &invite);
    assert!(
        out.statuses_to(TRUNK).contains(&100),
        "{:?}",
        out.statuses_to(TRUNK)
    );
    assert_eq!(
        out.requests_to(OP1, Method::Invite).len(),
        1,
        "offered to 1001"
    );
    assert_eq!(caller_of(&out), Some(Some("08123456#9".to_owned())));
    // Nothing of a number: unknown.
    let invite = invite_from("lf3", "Budi° <sip:@trunk.test>").replacen(PAI, "", 1);
    let out = h.input(TRUNK, &invite);
    assert!(out.statuses_to(TRUNK).contains(&100));
    assert_eq!(caller_of(&out), Some(None));
}

#[test]
fn the_trunks_cancel_with_the_same_from_ends_the_waiting_call() {
    let mut h = Harness::new(15);
    let invite = invite_from("lf4", "Budi Santoso° <sip:+6281100001@trunk.test>");
    let out = h.input(TRUNK, &invite);
    assert!(out.statuses_to(TRUNK).contains(&100));
    let cancel = invite.replacen("INVITE sip:", "CANCEL sip:", 1).replacen(
        "CSeq: 1 INVITE",
        "CSeq: 1 CANCEL",
        1,
    );
    let cancel = cancel
        .split("Content-Type")
        .next()
        .expect("head")
        .to_owned()
        + "Content-Length: 0\r\n\r\n";
    let out = h.input(TRUNK, &cancel);
    let statuses = out.statuses_to(TRUNK);
    assert!(
        statuses.contains(&200) && statuses.contains(&487),
        "{statuses:?}"
    );
    assert!(disposition_of(&out).is_some());
}

/// No From tag in a From that does not parse (nothing tells the dialog apart), or no
/// Call-ID: 400 stays, and an emergency INVITE from the trunk is recorded as `failed`.
#[test]
fn an_emergency_invite_that_cannot_be_processed_draws_400_and_is_recorded_failed() {
    let mut h = Harness::new(15);
    let untagged = invite_from("lf5", "Budi Santoso° <sip:+6281100001@trunk.test>").replacen(
        ";tag=trlf5",
        "",
        1,
    );
    let no_call_id = trunk_invite("lf6").replacen("Call-ID: lf6\r\n", "", 1);
    for invite in [untagged, no_call_id] {
        let out = h.input(TRUNK, &invite);
        assert_eq!(out.statuses_to(TRUNK), [400]);
        assert_eq!(caller_of(&out), Some(Some("+628115550001".to_owned())));
        assert_eq!(disposition_of(&out), Some(Disposition::Failed));
    }
}

/// Leniency is for emergency calls only: the same From to another number, or in an
/// OPTIONS, is a 400 as before (RFC 4475 §3.1.2.15's policy); from outside the trunk
/// nothing is recorded.
#[test]
fn other_requests_keep_the_strict_parse_and_strangers_leave_no_record() {
    let mut h = Harness::new(15);
    let from = "Bell, Alexander <sip:a.g.bell@example.com>";
    let to_other = invite_from("lf7", from).replacen("INVITE sip:112@", "INVITE sip:999@", 1);
    let out = h.input(TRUNK, &to_other);
    assert_eq!(out.statuses_to(TRUNK), [400]);
    assert!(out.events.is_empty());
    let options = format!(
        "OPTIONS sip:{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKlf8\r\nFrom: {from};tag=1\r\nTo: <sip:{SIAGA}>\r\nCall-ID: lf8\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(h.input(TRUNK, &options).statuses_to(TRUNK), [400]);
    let stranger = "192.0.2.50:5060";
    let untagged = invite_from("lf9", "Budi° <sip:0812@x>")
        .replacen(";tag=trlf9", "", 1)
        .replace(TRUNK, stranger);
    let out = h.input(stranger, &untagged);
    assert_eq!(out.statuses_to(stranger), [400]);
    assert!(out.events.is_empty(), "{:?}", out.events);
}
