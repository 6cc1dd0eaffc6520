//! The RTP relay over real UDP sockets on 127.0.0.1: two "phones" send RTP built with
//! `rtp-rs` through a relay; packets arrive unchanged, latching follows the real source,
//! non-RTP is dropped and counted, Close frees the ports and the report's counts match. A
//! side whose RTP stops is reported silent once per silence (in paused tokio time: the
//! sockets are real, the clock virtual).

use rtp_rs::{RtpPacketBuilder, Seq};
use siaga::engine::media::{MediaCommand, MediaReport, PacketCounts, RelayClosed, RelayId, Side};
use siaga::media::MediaRelays;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

/// An even port whose odd neighbour is free too (checked by binding both, then freed).
fn free_pair() -> u16 {
    for _ in 0..200 {
        let probe = StdUdpSocket::bind((LOCALHOST, 0)).expect("ephemeral port");
        let port = probe.local_addr().expect("bound").port() & !1;
        drop(probe);
        if port < 1024 || port == u16::MAX - 1 {
            continue;
        }
        let pair = (
            StdUdpSocket::bind((LOCALHOST, port)),
            StdUdpSocket::bind((LOCALHOST, port + 1)),
        );
        if let (Ok(_), Ok(_)) = pair {
            return port;
        }
    }
    panic!("no free even/odd port pair on 127.0.0.1");
}

/// Two distinct free pairs.
fn two_pairs() -> (u16, u16) {
    loop {
        let (a, b) = (free_pair(), free_pair());
        if a != b {
            return (a, b);
        }
    }
}

async fn phone() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0)).await.expect("phone socket")
}

fn addr(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().expect("bound")
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(8)
        .ssrc(0x1234_5678)
        .sequence(Seq::from(seq))
        .timestamp(u32::from(seq) * 160)
        .payload(payload)
        .build()
        .expect("valid RTP")
}

/// A minimal RTCP receiver report: V=2, RC=0, PT=201, length 1 word, SSRC.
const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef];

/// Receives one datagram, failing the test after [`WAIT`].
async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 4096];
    let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a packet within the wait")
        .expect("receive");
    buf.truncate(n);
    (buf, from)
}

/// Asserts nothing arrives at `socket` for a short while.
async fn nothing_arrives(socket: &UdpSocket) {
    let mut buf = [0u8; 64];
    let got = timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await;
    assert!(got.is_err(), "unexpected packet: {got:?}");
}

async fn next_report(reports: &mut mpsc::Receiver<MediaReport>) -> MediaReport {
    timeout(WAIT, reports.recv())
        .await
        .expect("a report within the wait")
        .expect("report queue open")
}

/// The next report, which must be a relay's closing one.
async fn report(reports: &mut mpsc::Receiver<MediaReport>) -> RelayClosed {
    match next_report(reports).await {
        MediaReport::Closed(report) => report,
        other => panic!("expected the closing report, got {other:?}"),
    }
}

fn assert_ports_free(ports: &[u16]) {
    for &port in ports {
        for p in [port, port + 1] {
            assert!(
                StdUdpSocket::bind((LOCALHOST, p)).is_ok(),
                "port {p} still bound after the report"
            );
        }
    }
}

#[tokio::test]
async fn relays_rtp_unchanged_latches_and_reports() {
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (caller_port, operator_port) = two_pairs();
    let relay = RelayId(1);
    let at_caller = SocketAddr::new(LOCALHOST, caller_port);
    let at_operator = SocketAddr::new(LOCALHOST, operator_port);

    let caller = phone().await;
    // The operator's SDP names one port; its RTP really comes from another (NAT).
    let operator_sdp = phone().await;
    let operator = phone().await;
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Caller,
        rtp: addr(&caller),
    });
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: addr(&operator_sdp),
    });
    assert_eq!(relays.len(), 1);

    // Before the operator sends, its packets go to the SDP address, from the relay's
    // operator-side port (symmetric RTP).
    let first = rtp(1, &[0xd5; 160]);
    caller.send_to(&first, at_caller).await.expect("send");
    assert_eq!(recv(&operator_sdp).await, (first, at_operator));

    // The operator sends from elsewhere: that side latches there.
    let back = rtp(7, &[0x55; 160]);
    operator.send_to(&back, at_operator).await.expect("send");
    assert_eq!(recv(&caller).await, (back, at_caller));

    let second = rtp(2, &[0xd4; 160]);
    caller.send_to(&second, at_caller).await.expect("send");
    assert_eq!(recv(&operator).await, (second, at_operator));
    nothing_arrives(&operator_sdp).await;

    // Not RTP: dropped. RTP from a stranger once the caller side latched: dropped.
    caller
        .send_to(b"hello, not RTP", at_caller)
        .await
        .expect("send");
    let stranger = phone().await;
    stranger
        .send_to(&rtp(99, &[0; 160]), at_caller)
        .await
        .expect("send");
    nothing_arrives(&operator).await;

    relays.execute(MediaCommand::Close { relay });
    assert!(relays.is_empty());
    let report = report(&mut reports).await;
    assert_eq!(
        report,
        RelayClosed {
            relay,
            caller_port,
            operator_port,
            caller_to_operator: PacketCounts {
                packets: 2,
                bytes: 2 * 172,
                dropped: 2,
                rtcp_packets: 0,
            },
            operator_to_caller: PacketCounts {
                packets: 1,
                bytes: 172,
                dropped: 0,
                rtcp_packets: 0,
            },
            latched_caller: Some(addr(&caller)),
            latched_operator: Some(addr(&operator)),
            bind_failed: Vec::new(),
        }
    );
    assert_ports_free(&[caller_port, operator_port]);
}

#[tokio::test]
async fn rtcp_follows_latching_on_the_odd_ports() {
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (caller_port, operator_port) = two_pairs();
    let relay = RelayId(2);
    let caller_rtcp = SocketAddr::new(LOCALHOST, caller_port + 1);
    let operator_rtcp = SocketAddr::new(LOCALHOST, operator_port + 1);
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    let caller = phone().await;
    let operator = phone().await;

    // No address for the operator side yet: dropped (but the caller side latches). The
    // relay reads the caller side first, so this is handled before the operator's packet.
    caller.send_to(&RTCP_RR, caller_rtcp).await.expect("send");
    operator
        .send_to(&RTCP_RR, operator_rtcp)
        .await
        .expect("send");
    assert_eq!(recv(&caller).await, (RTCP_RR.to_vec(), caller_rtcp));
    caller.send_to(&RTCP_RR, caller_rtcp).await.expect("send");
    assert_eq!(recv(&operator).await, (RTCP_RR.to_vec(), operator_rtcp));
    // Too short for RTCP.
    operator
        .send_to(&[0x80, 201], operator_rtcp)
        .await
        .expect("send");
    nothing_arrives(&caller).await;

    relays.execute(MediaCommand::Close { relay });
    let report = report(&mut reports).await;
    assert_eq!(report.caller_to_operator.rtcp_packets, 1);
    assert_eq!(report.caller_to_operator.dropped, 1);
    assert_eq!(report.operator_to_caller.rtcp_packets, 1);
    assert_eq!(report.operator_to_caller.dropped, 1);
    assert_eq!(report.caller_to_operator.packets, 0);
    assert_eq!(report.latched_caller, None, "RTCP does not latch RTP");
    assert_ports_free(&[caller_port, operator_port]);
}

#[tokio::test]
async fn set_peer_starts_a_new_operator_leg() {
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (caller_port, operator_port) = two_pairs();
    let relay = RelayId(3);
    let at_caller = SocketAddr::new(LOCALHOST, caller_port);
    let at_operator = SocketAddr::new(LOCALHOST, operator_port);
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    let caller = phone().await;
    let first_operator = phone().await;
    let next_operator = phone().await;
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Caller,
        rtp: addr(&caller),
    });

    // The first operator sends first (so its side latches), then the caller.
    first_operator
        .send_to(&rtp(1, &[1; 160]), at_operator)
        .await
        .expect("send");
    recv(&caller).await;
    caller
        .send_to(&rtp(1, &[2; 160]), at_caller)
        .await
        .expect("send");
    recv(&first_operator).await;

    // The first operator's leg ended; the next one answered with its own address.
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: addr(&next_operator),
    });
    let packet = rtp(2, &[3; 160]);
    caller.send_to(&packet, at_caller).await.expect("send");
    assert_eq!(recv(&next_operator).await, (packet, at_operator));
    nothing_arrives(&first_operator).await;
    let reply = rtp(9, &[4; 160]);
    next_operator
        .send_to(&reply, at_operator)
        .await
        .expect("send");
    assert_eq!(recv(&caller).await, (reply, at_caller));

    // An unspecified SDP address (hold) sends nothing until that side latches.
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4000),
    });
    caller
        .send_to(&rtp(3, &[5; 160]), at_caller)
        .await
        .expect("send");
    nothing_arrives(&next_operator).await;

    drop(relays);
    let report = report(&mut reports).await;
    assert_eq!(report.latched_operator, None, "reset by the last SetPeer");
    assert_eq!(report.caller_to_operator.packets, 2);
    assert_eq!(report.caller_to_operator.dropped, 1);
    assert_eq!(report.operator_to_caller.packets, 2);
}

#[tokio::test]
async fn a_port_in_use_is_reported_and_the_rest_freed() {
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (caller_port, operator_port) = two_pairs();
    let squatter = StdUdpSocket::bind((LOCALHOST, operator_port + 1)).expect("bind");
    let relay = RelayId(4);
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    // The ports that did bind were closed again at once.
    assert_ports_free(&[caller_port]);
    relays.execute(MediaCommand::Close { relay });
    let report = report(&mut reports).await;
    assert_eq!(report.bind_failed, vec![operator_port + 1]);
    assert_eq!(report.caller_to_operator, PacketCounts::default());
    drop(squatter);
    assert_ports_free(&[caller_port, operator_port]);
}

#[tokio::test]
async fn shutdown_closes_every_relay_and_reports_each() {
    let (report_tx, mut reports) = mpsc::channel(1);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (a, b) = two_pairs();
    let (c, d) = two_pairs();
    relays.execute(MediaCommand::Open {
        relay: RelayId(5),
        caller_port: a,
        operator_port: b,
    });
    relays.execute(MediaCommand::Open {
        relay: RelayId(6),
        caller_port: c,
        operator_port: d,
    });
    // Unknown relays and a second Open are ignored.
    relays.execute(MediaCommand::Close { relay: RelayId(99) });
    relays.execute(MediaCommand::Open {
        relay: RelayId(5),
        caller_port: c,
        operator_port: d,
    });
    // The report queue holds one: shutdown completes only as reports are read.
    let reader = tokio::spawn(async move {
        let mut ids = vec![
            report(&mut reports).await.relay,
            report(&mut reports).await.relay,
        ];
        ids.sort();
        ids
    });
    timeout(WAIT, relays.shutdown())
        .await
        .expect("shutdown completes");
    assert_eq!(reader.await.expect("reader"), [RelayId(5), RelayId(6)]);
    assert_ports_free(&[a, b, c, d]);
}

#[tokio::test]
async fn relays_run_on_a_media_thread() {
    let thread = siaga::media::MediaThread::start().expect("media thread");
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::with_handle(LOCALHOST, report_tx, thread.handle());
    let (caller_port, operator_port) = two_pairs();
    let relay = RelayId(7);
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    let caller = phone().await;
    let operator = phone().await;
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: addr(&operator),
    });
    let packet = rtp(1, &[9; 160]);
    let at_caller = SocketAddr::new(LOCALHOST, caller_port);
    caller.send_to(&packet, at_caller).await.expect("send");
    assert_eq!(
        recv(&operator).await,
        (packet, SocketAddr::new(LOCALHOST, operator_port))
    );
    timeout(WAIT, relays.shutdown())
        .await
        .expect("shutdown completes");
    assert_eq!(report(&mut reports).await.caller_to_operator.packets, 1);
    drop(thread);
    assert_ports_free(&[caller_port, operator_port]);
}

/// The silence timeout of the silence tests (virtual time).
const SILENCE: Duration = Duration::from_secs(1);

/// One packet period of the silence tests: five per silence timeout.
const PERIOD: Duration = Duration::from_millis(200);

/// A relay with [`SILENCE`] between `caller` and `operator`, both peers set.
async fn silence_relay(
    relay: RelayId,
    caller: &UdpSocket,
    operator: &UdpSocket,
) -> (MediaRelays, mpsc::Receiver<MediaReport>, (u16, u16)) {
    let (report_tx, reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx).with_silence_timeout(Some(SILENCE));
    let (caller_port, operator_port) = two_pairs();
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    for (side, peer) in [(Side::Caller, caller), (Side::Operator, operator)] {
        relays.execute(MediaCommand::SetPeer {
            relay,
            side,
            rtp: addr(peer),
        });
    }
    (relays, reports, (caller_port, operator_port))
}

/// `periods` packet periods: each sender sends one RTP packet to its relay port, then
/// [`PERIOD`] passes. Returns the reports that came meanwhile.
async fn talk(
    senders: &[(&UdpSocket, u16)],
    periods: u32,
    reports: &mut mpsc::Receiver<MediaReport>,
) -> Vec<MediaReport> {
    let mut got = Vec::new();
    for seq in 0..periods {
        for (socket, port) in senders {
            let to = SocketAddr::new(LOCALHOST, *port);
            let seq = u16::try_from(seq).expect("few periods");
            socket
                .send_to(&rtp(seq, &[0xd5; 160]), to)
                .await
                .expect("send");
        }
        tokio::time::sleep(PERIOD).await;
        while let Ok(report) = reports.try_recv() {
            got.push(report);
        }
    }
    got
}

#[tokio::test(start_paused = true)]
async fn a_side_that_stops_sending_is_reported_silent_once() {
    let caller = phone().await;
    let operator = phone().await;
    let relay = RelayId(8);
    let (mut relays, mut reports, (at_caller, at_operator)) =
        silence_relay(relay, &caller, &operator).await;
    let both = [(&caller, at_caller), (&operator, at_operator)];
    let silent = |side| MediaReport::Silent { relay, side };

    // Nothing heard yet: no side is silent, however long it lasts.
    assert_eq!(talk(&[], 20, &mut reports).await, []);
    // Both talk for ten timeouts: no report.
    assert_eq!(talk(&both, 50, &mut reports).await, []);

    // The operator stops, the caller goes on: the operator side is reported, once.
    let got = talk(&[(&caller, at_caller)], 40, &mut reports).await;
    assert_eq!(got, [silent(Side::Operator)]);

    // One packet re-arms the check; the silence after it is reported again.
    let got = talk(
        &[(&caller, at_caller), (&operator, at_operator)],
        1,
        &mut reports,
    )
    .await;
    assert_eq!(got, []);
    let got = talk(&[(&caller, at_caller)], 40, &mut reports).await;
    assert_eq!(got, [silent(Side::Operator)]);

    // Now the caller stops too.
    let got = talk(&[], 40, &mut reports).await;
    assert_eq!(got, [silent(Side::Caller)]);

    relays.execute(MediaCommand::Close { relay });
    let closed = report(&mut reports).await;
    assert_eq!(closed.operator_to_caller.packets, 51);
}

#[tokio::test(start_paused = true)]
async fn a_new_operator_peer_is_not_silent_before_it_sends() {
    let caller = phone().await;
    let operator = phone().await;
    let relay = RelayId(9);
    let (mut relays, mut reports, (at_caller, at_operator)) =
        silence_relay(relay, &caller, &operator).await;
    let both = [(&caller, at_caller), (&operator, at_operator)];
    assert_eq!(talk(&both, 10, &mut reports).await, []);

    // The operator's leg ended (the peer cleared, as for a re-queued caller), then the
    // next operator's leg starts: neither of them sent since, and nothing is reported.
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    });
    let got = talk(&[(&caller, at_caller)], 40, &mut reports).await;
    assert_eq!(got, [], "no report for the old peer nor the cleared side");
    let next_operator = phone().await;
    relays.execute(MediaCommand::SetPeer {
        relay,
        side: Side::Operator,
        rtp: addr(&next_operator),
    });
    let got = talk(&[(&caller, at_caller)], 40, &mut reports).await;
    assert_eq!(got, []);

    // Once it sent and stopped, it is.
    let got = talk(
        &[(&caller, at_caller), (&next_operator, at_operator)],
        5,
        &mut reports,
    )
    .await;
    assert_eq!(got, []);
    let got = talk(&[(&caller, at_caller)], 40, &mut reports).await;
    assert_eq!(
        got,
        [MediaReport::Silent {
            relay,
            side: Side::Operator
        }]
    );
    relays.execute(MediaCommand::Close { relay });
    assert_eq!(report(&mut reports).await.relay, relay);
}

#[tokio::test(start_paused = true)]
async fn without_a_silence_timeout_nothing_is_reported() {
    let (report_tx, mut reports) = mpsc::channel(4);
    let mut relays = MediaRelays::new(LOCALHOST, report_tx);
    let (caller_port, operator_port) = two_pairs();
    let relay = RelayId(10);
    relays.execute(MediaCommand::Open {
        relay,
        caller_port,
        operator_port,
    });
    let caller = phone().await;
    assert_eq!(talk(&[(&caller, caller_port)], 5, &mut reports).await, []);
    assert_eq!(talk(&[], 100, &mut reports).await, []);
    relays.execute(MediaCommand::Close { relay });
    assert_eq!(report(&mut reports).await.caller_to_operator.dropped, 5);
}
