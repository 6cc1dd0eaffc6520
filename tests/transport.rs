//! Transports and runtime over real 127.0.0.1 sockets, with the real engine: inputs are
//! observed through `RunOptions::tap`, and the send side is driven through `Transports`
//! directly. Timeouts here only guard against hangs.

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use siaga::engine::sip::framing::MAX_MESSAGE_SIZE;
use siaga::engine::{
    ConnectionId, Engine, EngineConfig, Input, Received, Transmit, TransmitError, Transport,
};
use siaga::runtime::{self, RunOptions};
use siaga::transport::tcp::{
    Activity, Outgoing, ReadEnd, StreamSource, StreamTimeouts, read_stream,
};
use siaga::transport::{BoundSockets, Limits, Transports};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Failure guard for every wait.
const GUARD: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A small SIP request with a body, Content-Length set.
fn message(n: usize, body: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:siaga@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{n}\r\n\
         From: <sip:t@127.0.0.1>;tag={n}\r\nTo: <sip:siaga@127.0.0.1>\r\n\
         Call-ID: call-{n}\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn engine() -> Engine {
    let mut config = EngineConfig::for_tests("127.0.0.1:5060".parse().unwrap());
    config.domains = vec!["example.com".into()];
    Engine::new(config, StdRng::seed_from_u64(7))
}

/// siaga's runtime on 127.0.0.1:0, with a tap on the engine's inputs.
struct Siaga {
    udp: SocketAddr,
    tcp: SocketAddr,
    tap: mpsc::Receiver<Input>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Siaga {
    async fn start(limits: Limits) -> Siaga {
        let sockets = BoundSockets::bind(localhost()).await.unwrap();
        let (udp, tcp) = (sockets.udp_addr().unwrap(), sockets.tcp_addr().unwrap());
        let (tap_tx, tap) = mpsc::channel(256);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let options = RunOptions {
            limits,
            tap: Some(tap_tx),
            ..RunOptions::default()
        };
        let task = tokio::spawn(runtime::run(sockets, engine(), options, async {
            let _ = shutdown_rx.await;
        }));
        Siaga {
            udp,
            tcp,
            tap,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn next_input(&mut self) -> Input {
        within("an engine input", self.tap.recv())
            .await
            .expect("tap closed")
    }

    async fn next_received(&mut self) -> Received {
        match self.next_input().await {
            Input::Received(r) => r,
            other => panic!("expected Received, got {other:?}"),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        within("runtime to stop", self.task).await.unwrap().unwrap();
    }
}

async fn ping_pong(stream: &mut TcpStream) {
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    within("a pong", stream.read_exact(&mut pong))
        .await
        .unwrap();
    assert_eq!(&pong, b"\r\n");
}

/// The peer sees the connection end: end of stream, or a reset.
async fn assert_closed(stream: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 64];
    loop {
        match within("the connection to close", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn tcp_messages_in_one_write_each_reach_the_engine() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    let (m1, m2, m3) = (message(1, ""), message(2, "v=0\r\n"), message(3, "x"));
    let mut all = Vec::new();
    all.extend_from_slice(&m1);
    all.extend_from_slice(b"\r\n"); // keep-alive between messages: discarded
    all.extend_from_slice(&m2);
    all.extend_from_slice(&m3);
    client.write_all(&all).await.unwrap();
    let mut ids = Vec::new();
    for expected in [&m1, &m2, &m3] {
        let r = siaga.next_received().await;
        assert_eq!(r.transport, Transport::Tcp);
        assert_eq!(&r.bytes[..], &expected[..]);
        assert_eq!(r.source, client.local_addr().unwrap());
        assert_eq!(r.local, siaga.tcp);
        ids.push(r.connection.expect("a connection id"));
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
    siaga.stop().await;
}

#[tokio::test]
async fn tcp_message_split_over_writes_reaches_the_engine_whole() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    client.set_nodelay(true).unwrap();
    let m = message(1, "hello body");
    for chunk in m.chunks(7) {
        client.write_all(chunk).await.unwrap();
        client.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    let r = siaga.next_received().await;
    assert_eq!(&r.bytes[..], &m[..]);
    siaga.stop().await;
}

/// A duplex pipe of 3 bytes forces reads of at most 3 bytes: every message and the ping
/// arrive in pieces.
#[tokio::test]
async fn read_stream_frames_across_partial_reads() {
    let (mut client, server) = tokio::io::duplex(3);
    let (inputs_tx, mut inputs) = mpsc::channel(16);
    let (pongs_tx, mut pongs) = mpsc::channel(16);
    let source = StreamSource {
        connection: ConnectionId(42),
        peer: "127.0.0.1:5999".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
    };
    let (m1, m2) = (message(1, "abc"), message(2, ""));
    let mut data = m1.clone();
    data.extend_from_slice(b"\r\n\r\n");
    data.extend_from_slice(&m2);
    let writer = tokio::spawn(async move {
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
    });
    let stop = CancellationToken::new();
    let end = within(
        "the stream to end",
        read_stream(
            server,
            source,
            &inputs_tx,
            &pongs_tx,
            &stop,
            StreamTimeouts::default(),
            &Activity::new(),
        ),
    )
    .await;
    assert!(matches!(end, ReadEnd::PeerClosed), "{end:?}");
    writer.await.unwrap();
    for expected in [&m1, &m2] {
        match inputs.recv().await {
            Some(Input::Received(r)) => {
                assert_eq!(&r.bytes[..], &expected[..]);
                assert_eq!(r.connection, Some(ConnectionId(42)));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        pongs.recv().await,
        Some(Outgoing::Pong),
        "ping split over reads"
    );
    assert!(pongs.try_recv().is_err(), "exactly one pong");
}

#[tokio::test]
async fn crlf_ping_gets_a_crlf_pong() {
    let siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    ping_pong(&mut client).await;
    ping_pong(&mut client).await;
    siaga.stop().await;
}

#[tokio::test]
async fn oversized_message_closes_only_its_connection() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let mut good = TcpStream::connect(siaga.tcp).await.unwrap();
    ping_pong(&mut good).await;
    let mut bad = TcpStream::connect(siaga.tcp).await.unwrap();
    let head = "INVITE sip:112@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5998;branch=z9hG4bK-x\r\n\
                Content-Length: 70000\r\n\r\n";
    bad.write_all(head.as_bytes()).await.unwrap();
    let bad_addr = bad.local_addr().unwrap();
    let unframeable_id = match siaga.next_input().await {
        Input::Unframeable {
            connection, source, ..
        } => {
            assert_eq!(source, bad_addr);
            connection
        }
        other => panic!("expected Unframeable, got {other:?}"),
    };
    match siaga.next_input().await {
        Input::ConnectionClosed(id) => assert_eq!(id, unframeable_id),
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert_closed(&mut bad).await;

    // A header section that never ends is cut off at 64 KiB too.
    let mut endless = TcpStream::connect(siaga.tcp).await.unwrap();
    let mut big = b"OPTIONS sip:siaga@127.0.0.1 SIP/2.0\r\n".to_vec();
    while big.len() <= 70 * 1024 {
        big.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let _ = endless.write_all(&big).await; // the server may close before all is written
    match siaga.next_input().await {
        // The first 64 KiB go to the engine, which can still answer 513.
        Input::Unframeable { head, .. } => {
            assert_eq!(head.len(), MAX_MESSAGE_SIZE);
            assert!(head.starts_with(b"OPTIONS sip:siaga@127.0.0.1 SIP/2.0\r\n"));
        }
        other => panic!("expected Unframeable, got {other:?}"),
    }
    assert!(matches!(
        siaga.next_input().await,
        Input::ConnectionClosed(_)
    ));
    assert_closed(&mut endless).await;

    // The other connection still works, both ways.
    let m = message(9, "");
    good.write_all(&m).await.unwrap();
    let r = siaga.next_received().await;
    assert_eq!(&r.bytes[..], &m[..]);
    assert_eq!(r.source, good.local_addr().unwrap());
    let response = read_sip(&mut good).await;
    assert!(
        response.starts_with(b"SIP/2.0 200 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    ping_pong(&mut good).await;
    siaga.stop().await;
}

/// Reads one whole SIP message from a stream.
async fn read_sip(stream: &mut TcpStream) -> Vec<u8> {
    use siaga::engine::sip::framing::{StreamFrame, next_stream_frame};
    let mut buf = Vec::new();
    loop {
        if let Ok(StreamFrame::Message { len }) = next_stream_frame(&buf, MAX_MESSAGE_SIZE) {
            buf.truncate(len);
            return buf;
        }
        let mut chunk = [0u8; 4096];
        let n = within("a SIP message", stream.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "connection closed before a whole message");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn udp_datagram_reaches_the_engine_with_its_source() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let client = UdpSocket::bind(localhost()).await.unwrap();
    let m = message(1, "");
    client.send_to(&m, siaga.udp).await.unwrap();
    let r = siaga.next_received().await;
    assert_eq!(r.transport, Transport::Udp);
    assert_eq!(r.source, client.local_addr().unwrap());
    assert_eq!(r.local, siaga.udp);
    assert_eq!(r.connection, None);
    assert_eq!(&r.bytes[..], &m[..]);
    siaga.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let limits = Limits {
        max_tcp_connections: 1,
        ..Limits::default()
    };
    let siaga = Siaga::start(limits).await;
    let mut first = TcpStream::connect(siaga.tcp).await.unwrap();
    ping_pong(&mut first).await; // accepted and holding the only slot
    let mut second = TcpStream::connect(siaga.tcp).await.unwrap();
    assert_closed(&mut second).await;
    ping_pong(&mut first).await;
    siaga.stop().await;
}

#[tokio::test]
async fn closed_connection_is_reported_and_shutdown_is_graceful() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    client.write_all(&message(1, "")).await.unwrap();
    let id = siaga.next_received().await.connection.unwrap();
    drop(client);
    match siaga.next_input().await {
        Input::ConnectionClosed(closed) => assert_eq!(closed, id),
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    let mut open = TcpStream::connect(siaga.tcp).await.unwrap();
    ping_pong(&mut open).await;
    siaga.stop().await;
    assert_closed(&mut open).await;
}

/// The send side without the engine: this test plays the engine.
struct Shell {
    transports: Transports,
    inputs: mpsc::Receiver<Input>,
    stop: CancellationToken,
}

impl Shell {
    async fn start() -> Shell {
        Shell::start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Shell {
        let sockets = BoundSockets::bind(localhost()).await.unwrap();
        let (tx, inputs) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let transports = Transports::start(sockets, tx, limits, stop.clone(), &tracker).unwrap();
        Shell {
            transports,
            inputs,
            stop,
        }
    }

    async fn next_received(&mut self) -> Received {
        match within("an input", self.inputs.recv()).await {
            Some(Input::Received(r)) => r,
            other => panic!("expected Received, got {other:?}"),
        }
    }
}

fn tcp(
    destination: SocketAddr,
    connection: Option<ConnectionId>,
    bytes: &'static [u8],
) -> Transmit {
    Transmit {
        transport: Transport::Tcp,
        destination,
        connection,
        bytes: Bytes::from_static(bytes),
    }
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    within("bytes from siaga", stream.read_exact(&mut buf))
        .await
        .unwrap();
    buf
}

#[tokio::test]
async fn tcp_transmit_goes_on_the_named_connection() {
    let mut shell = Shell::start().await;
    let mut client = TcpStream::connect(shell.transports.tcp_addr())
        .await
        .unwrap();
    let me = client.local_addr().unwrap();
    client.write_all(&message(1, "")).await.unwrap();
    let id = shell.next_received().await.connection.unwrap();

    shell.transports.send(tcp(me, Some(id), b"first")).unwrap();
    assert_eq!(read_n(&mut client, 5).await, b"first");
    // A connection that does not exist: reported at once, nothing else affected.
    assert_eq!(
        shell
            .transports
            .send(tcp(me, Some(ConnectionId(u64::MAX)), b"lost")),
        Err(TransmitError::ConnectionGone)
    );
    // No connection named: the open connection to the destination is used.
    shell.transports.send(tcp(me, None, b"second")).unwrap();
    assert_eq!(read_n(&mut client, 6).await, b"second");
    assert_eq!(shell.transports.tcp_connections(), 1);
    shell.stop.cancel();
}

#[tokio::test]
async fn tcp_transmit_without_a_connection_opens_one() {
    let mut shell = Shell::start().await;
    let peer = TcpListener::bind(localhost()).await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    shell
        .transports
        .send(tcp(peer_addr, None, b"hello"))
        .unwrap();
    shell
        .transports
        .send(tcp(peer_addr, None, b" again"))
        .unwrap();
    let (mut stream, _) = within("siaga to connect", peer.accept()).await.unwrap();
    assert_eq!(read_n(&mut stream, 11).await, b"hello again");
    // What the peer sends back on it reaches the engine, with the connection's id.
    let reply = message(5, "");
    stream.write_all(&reply).await.unwrap();
    let r = shell.next_received().await;
    assert_eq!(&r.bytes[..], &reply[..]);
    assert_eq!(r.source, peer_addr);
    let id = r.connection.unwrap();
    shell
        .transports
        .send(tcp(peer_addr, Some(id), b"!"))
        .unwrap();
    assert_eq!(read_n(&mut stream, 1).await, b"!");
    shell.stop.cancel();
}

#[tokio::test]
async fn udp_transmit_reaches_the_destination() {
    let shell = Shell::start().await;
    let client = UdpSocket::bind(localhost()).await.unwrap();
    shell
        .transports
        .send(Transmit {
            transport: Transport::Udp,
            destination: client.local_addr().unwrap(),
            connection: None,
            bytes: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        })
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = within("a datagram", client.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n\r\n");
    assert_eq!(from, shell.transports.udp_addr());
    shell.stop.cancel();
}

// ---- holding connections: timeouts and the per-IP cap -------------------------------

/// Small timeouts for the tests below (the defaults are 32 s and 600 s).
fn quick(message_ms: u64, idle_ms: Option<u64>) -> Limits {
    Limits {
        tcp_message_timeout: Duration::from_millis(message_ms),
        tcp_idle_timeout: idle_ms.map(Duration::from_millis),
        ..Limits::default()
    }
}

async fn expect_connection_closed(siaga: &mut Siaga) -> ConnectionId {
    match siaga.next_input().await {
        Input::ConnectionClosed(id) => id,
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
}

#[tokio::test]
async fn half_a_message_is_closed_after_the_message_timeout() {
    let mut siaga = Siaga::start(quick(200, None)).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    let m = message(1, "body");
    client.write_all(&m[..m.len() / 2]).await.unwrap();
    expect_connection_closed(&mut siaga).await;
    assert_closed(&mut client).await;
    siaga.stop().await;
}

/// A peer that trickles a message in, a byte at a time, does not reset the clock: it runs
/// from the message's first byte. (The whole message would take about 5 s to arrive; the
/// idle timeout is off, so only the message timeout can close it.)
#[tokio::test]
async fn trickled_message_is_closed_counting_from_its_first_byte() {
    let mut siaga = Siaga::start(quick(200, None)).await;
    let client = TcpStream::connect(siaga.tcp).await.unwrap();
    client.set_nodelay(true).unwrap();
    let (mut read_half, mut write_half) = client.into_split();
    let trickle = tokio::spawn(async move {
        for byte in message(1, "") {
            if write_half.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    expect_connection_closed(&mut siaga).await;
    assert_closed(&mut read_half).await;
    trickle.abort();
    siaga.stop().await;
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let mut siaga = Siaga::start(quick(30_000, Some(300))).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    ping_pong(&mut client).await; // accepted; now it says nothing more
    expect_connection_closed(&mut siaga).await;
    assert_closed(&mut client).await;
    siaga.stop().await;
}

/// Single CRLFs (no answer: only bytes received) and whole messages, one every 100 ms for
/// more than twice the idle timeout: the connection stays open.
#[tokio::test]
async fn connection_that_keeps_talking_is_not_idle() {
    let mut siaga = Siaga::start(quick(30_000, Some(500))).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if round % 2 == 0 {
            client.write_all(b"\r\n").await.unwrap();
        } else {
            client.write_all(&message(round, "")).await.unwrap();
            siaga.next_received().await;
            let response = read_sip(&mut client).await;
            assert!(response.starts_with(b"SIP/2.0 200 "));
        }
    }
    ping_pong(&mut client).await;
    match siaga.tap.try_recv() {
        Err(mpsc::error::TryRecvError::Empty) => {}
        other => panic!("expected no more inputs, got {other:?}"),
    }
    siaga.stop().await;
}

/// A connection siaga opened stays open while siaga writes on it, though the peer only
/// listens; once siaga stops writing, it is closed as idle.
#[tokio::test]
async fn writes_keep_an_outbound_connection_open() {
    let mut shell = Shell::start_with(quick(30_000, Some(500))).await;
    let peer = TcpListener::bind(localhost()).await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    shell.transports.send(tcp(peer_addr, None, b"0")).unwrap();
    let (mut stream, _) = within("siaga to connect", peer.accept()).await.unwrap();
    assert_eq!(read_n(&mut stream, 1).await, b"0");
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shell.transports.send(tcp(peer_addr, None, b"x")).unwrap();
        assert_eq!(read_n(&mut stream, 1).await, b"x");
    }
    assert_eq!(shell.transports.tcp_connections(), 1);
    match within("an input", shell.inputs.recv()).await {
        Some(Input::ConnectionClosed(_)) => {}
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert_closed(&mut stream).await;
    shell.stop.cancel();
}

/// Connects from `ip` (any 127.0.0.0/8 address is loopback on Linux).
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    within("a connection", socket.connect(to)).await.unwrap()
}

#[tokio::test]
async fn per_ip_cap_refuses_extra_connections_from_one_ip_only() {
    let limits = Limits {
        max_tcp_connections_per_ip: 2,
        ..Limits::default()
    };
    let mut siaga = Siaga::start(limits).await;
    let mut first = connect_from("127.0.0.1", siaga.tcp).await;
    ping_pong(&mut first).await;
    let mut second = connect_from("127.0.0.1", siaga.tcp).await;
    ping_pong(&mut second).await;
    let mut third = connect_from("127.0.0.1", siaga.tcp).await;
    assert_closed(&mut third).await;
    ping_pong(&mut first).await;
    ping_pong(&mut second).await;

    // Another IP is not affected by 127.0.0.1 being at its cap.
    let mut other = connect_from("127.0.0.2", siaga.tcp).await;
    ping_pong(&mut other).await;
    let m = message(1, "");
    other.write_all(&m).await.unwrap();
    let r = siaga.next_received().await;
    assert_eq!(r.source, other.local_addr().unwrap());
    assert!(read_sip(&mut other).await.starts_with(b"SIP/2.0 200 "));

    // A closed connection gives its place back (once its writer is done: retry until).
    drop(first);
    expect_connection_closed(&mut siaga).await;
    let addr = siaga.tcp;
    let again = within("a place for 127.0.0.1 again", async {
        loop {
            let mut stream = connect_from("127.0.0.1", addr).await;
            // A refused connection may already be reset: write and read errors mean retry.
            let _ = stream.write_all(b"\r\n\r\n").await;
            let mut pong = [0u8; 2];
            if stream.read_exact(&mut pong).await.is_ok() {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(again);
    ping_pong(&mut second).await;
    ping_pong(&mut other).await;
    siaga.stop().await;
}

#[test]
fn run_options_carry_the_tcp_limits_of_the_config() {
    let text = "[node]\nid = \"t\"\n[sip]\ndomains = [\"example.com\"]\n\
                max_tcp_connections = 50\nmax_tcp_connections_per_ip = 5\n\
                tcp_message_timeout_s = 7\ntcp_idle_timeout_s = 0\ntcp_connect_timeout_s = 2\n\
                [trunk]\nsources = [\"127.0.0.1\"]\n";
    let config = siaga::config::Config::from_toml(text, |_| None).unwrap();
    let limits = RunOptions::from_config(&config).limits;
    assert_eq!(limits.max_tcp_connections, 50);
    assert_eq!(limits.max_tcp_connections_per_ip, 5);
    assert_eq!(limits.tcp_message_timeout, Duration::from_secs(7));
    assert_eq!(limits.tcp_idle_timeout, None);
    assert_eq!(limits.tcp_connect_timeout, Duration::from_secs(2));
    let defaults =
        RunOptions::from_config(&siaga::config::Config::from_toml(GOOD, |_| None).unwrap()).limits;
    assert_eq!(defaults, Limits::default());
}

// ---- the binary --------------------------------------------------------------------

const SIAGA: &str = env!("CARGO_BIN_EXE_siaga");

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("siaga.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = "[node]\nid = \"t1\"\n[sip]\nlisten = \"127.0.0.1:5060\"\n\
                    domains = [\"example.com\"]\n[trunk]\nsources = [\"127.0.0.1\"]\n";

#[test]
fn check_config_accepts_the_shipped_config() {
    let out = std::process::Command::new(SIAGA)
        .args(["check-config", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/siaga.toml"))
        .env_remove("SIAGA_SIP_LISTEN")
        .env_remove("SIAGA_RTP_PORTS")
        .env_remove("SIAGA_DATABASE_URL")
        .env_remove("SIAGA_HTTP_LISTEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn check_config_on_a_bad_file_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            GOOD.replace("127.0.0.1:5060", "127.0.0.1:99999"),
            "sip.listen",
        ),
        (GOOD.replace("listen", "lisen"), "sip.lisen"),
        (GOOD.replace("\"t1\"", "\"bad id!\""), "node.id"),
        (
            format!("{GOOD}[sip.timers]\nt1_ms = 0\n"),
            "sip.timers.t1_ms",
        ),
        (
            GOOD.replace("127.0.0.1:5060", "0.0.0.0:5060"),
            "sip.advertise",
        ),
    ];
    for (text, key) in cases {
        let path = write_config(&dir, &text);
        let out = std::process::Command::new(SIAGA)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{key}: ")),
            "{key} not named in: {stderr}"
        );
    }
}

#[test]
fn check_config_names_a_bad_environment_override() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, GOOD);
    let out = std::process::Command::new(SIAGA)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("SIAGA_RTP_PORTS", "30001-30999")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SIAGA_RTP_PORTS (overrides media.rtp_ports)"),
        "{stderr}"
    );
}

/// Kills the child process if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `siaga run` as a process: starts, answers a TCP ping, stops on SIGTERM with exit 0.
#[test]
fn run_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, GOOD);
    for attempt in 0..3 {
        // A port free a moment ago (siaga binds UDP and TCP on the same port).
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = KillOnDrop(
            std::process::Command::new(SIAGA)
                .args(["run", "--config"])
                .arg(&path)
                .env("SIAGA_SIP_LISTEN", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "info")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let child = &mut child.0;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut started = false;
        while let Ok(line) = rx.recv_timeout(GUARD) {
            if line.contains("siaga started") {
                assert!(line.contains("node=t1"), "{line}");
                assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
                // The API's address plainly (`http=127.0.0.1:8080`), not a Rust `Some(..)`.
                let http = line
                    .split(" http=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next());
                assert!(
                    http.is_some_and(|a| a.parse::<std::net::SocketAddr>().is_ok()),
                    "{line}"
                );
                started = true;
                break;
            }
        }
        if !started {
            let _ = child.kill();
            let status = child.wait().unwrap();
            assert!(attempt < 2, "siaga did not start: {status:?}");
            continue; // the port was taken in between: try another
        }
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        std::io::Write::write_all(&mut stream, b"\r\n\r\n").unwrap();
        let mut pong = [0u8; 2];
        std::io::Read::read_exact(&mut stream, &mut pong).unwrap();
        assert_eq!(&pong, b"\r\n");

        let kill = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "{status:?}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "siaga did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- peers that stop reading, half-close, or make siaga connect ---------------------

/// Connects from 127.0.0.1 with a tiny receive buffer, sends one message and returns the
/// stream with the connection's id.
async fn small_window_client(shell: &mut Shell) -> (TcpStream, ConnectionId) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut client = within("a connection", socket.connect(shell.transports.tcp_addr()))
        .await
        .unwrap();
    client.write_all(&message(1, "")).await.unwrap();
    let id = shell.next_received().await.connection.unwrap();
    (client, id)
}

/// Queues far more for `id` than the kernel buffers of a peer that does not read (16
/// messages of 1 MiB, under the write queue's 64): siaga's writer blocks mid-write.
fn flood(shell: &Shell, to: SocketAddr, id: ConnectionId) {
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    for _ in 0..16 {
        // Once the writer gives up, the rest are refused: that is fine here.
        let _ = shell.transports.send(Transmit {
            transport: Transport::Tcp,
            destination: to,
            connection: Some(id),
            bytes: big.clone(),
        });
    }
}

async fn expect_closed_input(shell: &mut Shell, id: ConnectionId) {
    loop {
        match within("ConnectionClosed", shell.inputs.recv()).await {
            Some(Input::ConnectionClosed(closed)) => {
                assert_eq!(closed, id);
                return;
            }
            // The flood's messages that were never written are reported too.
            Some(Input::Unframeable { .. } | Input::TransmitFailed { .. }) => continue,
            other => panic!("expected ConnectionClosed, got {other:?}"),
        }
    }
}

/// Retries until a connection from `ip` is accepted and answers a ping (a refused one is
/// closed or reset at once).
async fn reconnect_from(ip: &str, to: SocketAddr) -> TcpStream {
    within("a place for the IP again", async {
        loop {
            let mut stream = connect_from(ip, to).await;
            let _ = stream.write_all(b"\r\n\r\n").await;
            let mut pong = [0u8; 2];
            if stream.read_exact(&mut pong).await.is_ok() {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The slot of a peer that stops reading and half-closes is freed within the peer-closed
/// linger plus the drain grace (4 s), though the message timeout (which bounds a stalled
/// write) is far longer: the client never reads and stays open throughout.
#[tokio::test]
async fn non_reading_peer_that_half_closes_loses_its_slot() {
    let limits = Limits {
        max_tcp_connections_per_ip: 1,
        ..quick(60_000, None)
    };
    let mut shell = Shell::start_with(limits).await;
    let (mut client, id) = small_window_client(&mut shell).await;
    let me = client.local_addr().unwrap();
    flood(&shell, me, id);
    client.shutdown().await.unwrap(); // SHUT_WR: siaga reads end of stream
    expect_closed_input(&mut shell, id).await;
    let mut again = reconnect_from("127.0.0.1", shell.transports.tcp_addr()).await;
    ping_pong(&mut again).await;
    drop(client);
    shell.stop.cancel();
}

/// The same when the peer sends an unframeable message and the engine closes the
/// connection after its answer, which the peer does not read.
#[tokio::test]
async fn non_reading_peer_that_sends_garbage_loses_its_slot() {
    let limits = Limits {
        max_tcp_connections_per_ip: 1,
        ..quick(60_000, None)
    };
    let mut shell = Shell::start_with(limits).await;
    let (mut client, id) = small_window_client(&mut shell).await;
    let me = client.local_addr().unwrap();
    flood(&shell, me, id);
    client
        .write_all(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n")
        .await
        .unwrap();
    match within("Unframeable", shell.inputs.recv()).await {
        Some(Input::Unframeable { connection, .. }) => assert_eq!(connection, id),
        other => panic!("expected Unframeable, got {other:?}"),
    }
    shell.transports.close(id); // as the engine does after its 400
    expect_closed_input(&mut shell, id).await;
    let mut again = reconnect_from("127.0.0.1", shell.transports.tcp_addr()).await;
    ping_pong(&mut again).await;
    drop(client);
    shell.stop.cancel();
}

/// A peer that keeps its connection open but stops reading: the write that makes no
/// progress for the message timeout closes the connection.
#[tokio::test]
async fn write_that_makes_no_progress_closes_the_connection() {
    let limits = Limits {
        max_tcp_connections_per_ip: 1,
        ..quick(300, None)
    };
    let mut shell = Shell::start_with(limits).await;
    let (client, id) = small_window_client(&mut shell).await;
    let me = client.local_addr().unwrap();
    flood(&shell, me, id);
    expect_closed_input(&mut shell, id).await;
    let mut again = reconnect_from("127.0.0.1", shell.transports.tcp_addr()).await;
    ping_pong(&mut again).await;
    drop(client);
    shell.stop.cancel();
}

/// Connections siaga opens count toward their destination IP's cap: a peer cannot make
/// siaga fill every slot with connections to its ports, and at its cap it cannot connect
/// in either; other IPs are unaffected.
#[tokio::test]
async fn outbound_connections_count_toward_the_per_ip_cap() {
    let limits = Limits {
        max_tcp_connections_per_ip: 2,
        ..Limits::default()
    };
    let shell = Shell::start_with(limits).await;
    let mut listeners = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        sent.push(
            shell
                .transports
                .send(tcp(listener.local_addr().unwrap(), None, b"hi")),
        );
        listeners.push(listener);
    }
    // The third is refused before it is opened, and the engine is told.
    assert_eq!(sent, [Ok(()), Ok(()), Err(TransmitError::ConnectionLimit)]);
    assert_eq!(shell.transports.tcp_connections(), 2);
    for listener in &listeners[..2] {
        let (mut stream, _) = within("siaga to connect", listener.accept()).await.unwrap();
        assert_eq!(read_n(&mut stream, 2).await, b"hi");
    }
    let mut inbound = connect_from("127.0.0.1", shell.transports.tcp_addr()).await;
    assert_closed(&mut inbound).await;

    let other = TcpListener::bind("127.0.0.2:0").await.unwrap();
    shell
        .transports
        .send(tcp(other.local_addr().unwrap(), None, b"ok"))
        .unwrap();
    let (mut stream, _) = within("siaga to connect", other.accept()).await.unwrap();
    assert_eq!(read_n(&mut stream, 2).await, b"ok");
    assert_eq!(shell.transports.tcp_connections(), 3);
    shell.stop.cancel();
}

/// RFC 3261 §18.2.2: a response goes on the connection its request came on while that is
/// open. A peer that half-closes right after its request can still read. The engine hears
/// of the end at once (after the request), yet what it then sends naming the connection —
/// the answers to the requests read before the end — still reaches the peer; a transmit
/// naming no connection no longer picks it (it opens a new one, here refused).
#[tokio::test]
async fn peer_close_is_reported_at_once_and_its_last_answers_still_go_out() {
    let mut shell = Shell::start().await;
    let mut client = TcpStream::connect(shell.transports.tcp_addr())
        .await
        .unwrap();
    let me = client.local_addr().unwrap();
    client.write_all(&message(1, "")).await.unwrap();
    let id = shell.next_received().await.connection.unwrap();
    client.shutdown().await.unwrap();
    expect_closed_input(&mut shell, id).await;
    shell.transports.send(tcp(me, Some(id), b"answer")).unwrap();
    assert_eq!(read_n(&mut client, 6).await, b"answer");
    shell.transports.send(tcp(me, None, b"later")).unwrap();
    match within("TransmitFailed", shell.inputs.recv()).await {
        Some(Input::TransmitFailed { transmit, error }) => {
            assert_eq!(&transmit.bytes[..], b"later");
            assert_eq!(transmit.connection, None);
            assert_eq!(error, TransmitError::ConnectFailed);
        }
        other => panic!("expected TransmitFailed, got {other:?}"),
    }
    assert_closed(&mut client).await;
    shell.stop.cancel();
}

/// A connection that cannot be opened: every message queued for it comes back to the
/// engine as it was sent, so their transactions fail now (RFC 3261 §17.1.4), not at
/// Timer B or F.
#[tokio::test]
async fn failed_connect_reports_every_queued_message() {
    let mut shell = Shell::start().await;
    let closed = {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        listener.local_addr().unwrap()
    }; // nothing listens there any more: the connect is refused
    let (first, second) = (tcp(closed, None, b"one"), tcp(closed, None, b"two"));
    shell.transports.send(first.clone()).unwrap();
    shell.transports.send(second.clone()).unwrap();
    for expected in [first, second] {
        match within("TransmitFailed", shell.inputs.recv()).await {
            Some(Input::TransmitFailed { transmit, error }) => {
                assert_eq!(transmit, expected);
                assert_eq!(error, TransmitError::ConnectFailed);
            }
            other => panic!("expected TransmitFailed, got {other:?}"),
        }
    }
    assert_eq!(shell.transports.tcp_connections(), 0);
    shell.stop.cancel();
}

/// A connect that hangs (a listener whose accept queue is full drops the SYN) is given
/// up after `sip.tcp_connect_timeout_s`, and its message reported, long before the OS
/// would give up (minutes).
#[tokio::test]
async fn a_connect_that_hangs_fails_after_the_connect_timeout() {
    let mut shell = Shell::start_with(Limits {
        tcp_connect_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(localhost()).unwrap();
    let full = socket.listen(1).unwrap(); // never accepts
    let addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        // Some of these hang themselves once the queue is full: do not wait for them.
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let hanging = tcp(addr, None, b"waits");
    shell.transports.send(hanging.clone()).unwrap();
    match within("TransmitFailed", shell.inputs.recv()).await {
        Some(Input::TransmitFailed { transmit, error }) => {
            assert_eq!(transmit, hanging);
            assert_eq!(error, TransmitError::ConnectFailed);
        }
        other => panic!("expected TransmitFailed, got {other:?}"),
    }
    drop(fillers);
    shell.stop.cancel();
}

/// RFC 5626 §4.4.1: each double-CRLF ping gets one CRLF pong, two pings in one write
/// included; RFC 3261 §7.5: a single CRLF before a message is ignored and draws no pong.
#[tokio::test]
async fn every_ping_gets_one_pong_and_stray_crlfs_none() {
    let siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    client.write_all(b"\r\n\r\n\r\n\r\n").await.unwrap();
    assert_eq!(read_n(&mut client, 4).await, b"\r\n\r\n");
    let mut stray = b"\r\n".to_vec();
    stray.extend_from_slice(&message(1, ""));
    stray.extend_from_slice(b"\r\n");
    stray.extend_from_slice(&message(2, ""));
    client.write_all(&stray).await.unwrap();
    // Two responses back to back: no CRLF before, between or after them.
    use siaga::engine::sip::framing::{StreamFrame, next_stream_frame};
    let mut buf = Vec::new();
    let mut responses = 0;
    while responses < 2 {
        match next_stream_frame(&buf, MAX_MESSAGE_SIZE) {
            Ok(StreamFrame::Message { len }) => {
                assert!(buf.starts_with(b"SIP/2.0 200 OK\r\n"));
                buf.drain(..len);
                responses += 1;
            }
            Ok(StreamFrame::NeedMore) if !buf.starts_with(b"\r") => {
                let mut chunk = [0u8; 4096];
                let n = within("a response", client.read(&mut chunk)).await.unwrap();
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&chunk[..n]);
            }
            other => panic!(
                "not a response: {other:?} {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    siaga.stop().await;
}

/// A header section over 64 KiB: the engine gets the first 64 KiB and answers 513 (RFC
/// 3261 §21.5.14) on the connection, which then closes.
#[tokio::test]
async fn header_section_over_64_kib_draws_513() {
    let mut siaga = Siaga::start(Limits::default()).await;
    let mut client = TcpStream::connect(siaga.tcp).await.unwrap();
    let mut big = message(1, "");
    big.truncate(big.len() - 2); // no empty line yet
    while big.len() <= 70 * 1024 {
        big.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let _ = client.write_all(&big).await; // siaga may close before all is written
    match siaga.next_input().await {
        Input::Unframeable { head, .. } => assert_eq!(&head[..], &big[..MAX_MESSAGE_SIZE]),
        other => panic!("expected Unframeable, got {other:?}"),
    }
    let response = read_sip(&mut client).await;
    assert!(
        response.starts_with(b"SIP/2.0 513 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert_closed(&mut client).await;
    siaga.stop().await;
}
