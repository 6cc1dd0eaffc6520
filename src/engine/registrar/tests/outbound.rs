//! RFC 5626 outbound at the registrar: which REGISTERs make flows, how a flow is
//! identified and refreshed, and what a failed flow is worth.

use super::*;

const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";

/// A softphone of 1001 on TCP connection `conn` from `source`, whose REGISTERs say
/// `Supported: outbound`.
fn phone_on(conn: u64, source: &str) -> Phone {
    let mut phone = Phone::new(
        "1001",
        "secret",
        &format!("sip:1001@{source};transport=tcp;ob"),
        source,
    );
    phone.source.transport = Transport::Tcp;
    phone.source.connection = Some(ConnectionId(conn));
    phone
}

/// The Contact line of `phone` asking for flow `reg_id`.
fn flow_contact(phone: &Phone, reg_id: u32) -> String {
    format!(
        "Supported: outbound\r\nContact: <{}>;reg-id={reg_id};+sip.instance=\"{INSTANCE}\"\r\n",
        phone.contact
    )
}

fn flow(reg_id: u32) -> Option<OutboundFlow> {
    Some(OutboundFlow {
        instance: INSTANCE.to_owned(),
        reg_id,
    })
}

fn target_flows(reg: &Registrar) -> Vec<(Option<u32>, Option<ConnectionId>)> {
    reg.targets("1001")
        .map(|b| (b.outbound.as_ref().map(|f| f.reg_id), b.connection))
        .collect()
}

/// §6: the flow is keyed by instance and reg-id; the 200 says `Require: outbound` and
/// lists the flow's parameters; a refresh from a new connection and a new Contact URI
/// replaces it; when its connection closes it is no target, yet still registered.
#[test]
fn a_flow_is_its_instance_and_reg_id_and_fails_with_its_connection() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut first = phone_on(4, "10.0.0.9:51000");
    let lines = flow_contact(&first, 1);
    let ok = first.send(&mut reg, at(0), &mut rng, &lines);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(header(&ok, "Require"), Some("outbound"));
    assert_eq!(
        contacts(&ok),
        [format!(
            "<sip:1001@10.0.0.9:51000;transport=tcp;ob>;expires=3600;+sip.instance=\"{INSTANCE}\";reg-id=1"
        )]
    );
    let b = reg.bindings("1001").next().expect("binding");
    assert_eq!(
        (b.outbound.clone(), b.connection),
        (flow(1), Some(ConnectionId(4)))
    );

    // The phone reconnects from another port: same flow, new connection and Contact.
    let mut second = phone_on(5, "10.0.0.9:51002");
    let lines = flow_contact(&second, 1);
    assert_eq!(second.send(&mut reg, at(60), &mut rng, &lines).status, 200);
    let all: Vec<_> = reg.bindings("1001").collect();
    assert_eq!(all.len(), 1, "replaced, not added");
    assert_eq!(
        all[0].contact_uri.to_string(),
        "sip:1001@10.0.0.9:51002;transport=tcp;ob"
    );
    assert_eq!(target_flows(&reg), [(Some(1), Some(ConnectionId(5)))]);

    reg.handle_connection_closed(ConnectionId(4)); // the old one: nothing changes
    assert_eq!(target_flows(&reg), [(Some(1), Some(ConnectionId(5)))]);
    reg.handle_connection_closed(ConnectionId(5));
    assert!(
        target_flows(&reg).is_empty(),
        "§5.3: a failed flow is no target"
    );
    assert!(
        reg.is_registered("1001"),
        "still registered until it expires"
    );
    changes(&mut reg);

    // Registering again restores it, and says so (waiting calls can be offered).
    let mut third = phone_on(6, "10.0.0.9:51004");
    let lines = flow_contact(&third, 1);
    assert_eq!(third.send(&mut reg, at(120), &mut rng, &lines).status, 200);
    assert_eq!(target_flows(&reg), [(Some(1), Some(ConnectionId(6)))]);
    assert!(changes(&mut reg).iter().any(
        |c| matches!(c, BindingChange::Reachable(b) if b.connection == Some(ConnectionId(6)))
    ),);
}

/// §7: two flows of one instance are one target at a time (the lowest reg-id that is
/// up); the other takes over when the first fails. Expires 0 removes a flow by its keys.
#[test]
fn two_flows_of_one_instance_are_one_target() {
    let (mut reg, mut rng) = (registrar(), rng());
    let mut one = phone_on(4, "10.0.0.9:51000");
    let mut two = phone_on(7, "10.0.0.9:51001");
    let lines = flow_contact(&one, 1);
    one.send(&mut reg, at(0), &mut rng, &lines);
    let lines = flow_contact(&two, 2);
    let ok = two.send(&mut reg, at(0), &mut rng, &lines);
    assert_eq!(contacts(&ok).len(), 2);
    assert_eq!(target_flows(&reg), [(Some(1), Some(ConnectionId(4)))]);
    reg.handle_connection_closed(ConnectionId(4));
    assert_eq!(target_flows(&reg), [(Some(2), Some(ConnectionId(7)))]);
    // Removing flow 2 by instance and reg-id, with some other Contact URI.
    let lines = format!(
        "Supported: outbound\r\nContact: <sip:1001@10.0.0.9:9;transport=tcp>;reg-id=2;+sip.instance=\"{INSTANCE}\";expires=0\r\n"
    );
    assert_eq!(two.send(&mut reg, at(10), &mut rng, &lines).status, 200);
    let left: Vec<_> = reg.bindings("1001").map(|b| b.outbound.clone()).collect();
    assert_eq!(left, [flow(1)]);
}

/// Outbound applies only as §6 allows: `Supported: outbound`, TCP, siaga the first hop.
#[test]
fn outbound_needs_supported_tcp_and_the_first_hop() {
    let (mut reg, mut rng) = (registrar(), rng());
    let params = format!(";reg-id=1;+sip.instance=\"{INSTANCE}\"");

    // Without Supported: outbound, an RFC 3261 binding.
    let mut plain = phone_on(4, "10.0.0.9:51000");
    let lines = format!("Contact: <{}>{params}\r\n", plain.contact);
    let ok = plain.send(&mut reg, at(0), &mut rng, &lines);
    assert_eq!((ok.status, header(&ok, "Require")), (200, None));
    assert!(reg.bindings("1001").all(|b| b.outbound.is_none()));

    // Over UDP: reg-id ignored (no STUN keep-alives), no Require.
    let mut udp_phone = Phone::new("1001", "secret", "sip:1001@10.0.0.8:5060", "10.0.0.8:5060");
    let lines = format!(
        "Supported: outbound\r\nContact: <{}>{params}\r\n",
        udp_phone.contact
    );
    let ok = udp_phone.send(&mut reg, at(0), &mut rng, &lines);
    assert_eq!((ok.status, header(&ok, "Require")), (200, None));
    assert!(reg.bindings("1001").all(|b| b.outbound.is_none()));

    // Through a proxy (two Vias): 439, nothing registered.
    let mut proxied = phone_on(5, "10.0.0.7:51000");
    let lines = format!(
        "Via: SIP/2.0/TCP proxy.example;branch=z9hG4bKproxy\r\n{}",
        flow_contact(&proxied, 1)
    );
    let refused = proxied.send(&mut reg, at(0), &mut rng, &lines);
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (439, "First Hop Lacks Outbound Support")
    );

    // Two Contacts asking for flows, or a reg-id out of range: 400.
    let mut greedy = phone_on(6, "10.0.0.6:51000");
    let lines = format!(
        "Supported: outbound\r\nContact: <sip:1001@10.0.0.6:1;transport=tcp>{params}, <sip:1001@10.0.0.6:2;transport=tcp>;reg-id=2;+sip.instance=\"{INSTANCE}\"\r\n"
    );
    assert_eq!(greedy.send(&mut reg, at(0), &mut rng, &lines).status, 400);
    let lines = flow_contact(&greedy, 1).replace("reg-id=1", "reg-id=0");
    assert_eq!(greedy.send(&mut reg, at(0), &mut rng, &lines).status, 400);
    assert_eq!(reg.bindings("1001").count(), 2, "plain and udp_phone only");
}
