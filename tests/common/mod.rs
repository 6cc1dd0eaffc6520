//! Shared helpers of the end-to-end tests: a real siaga (runtime, transports and engine)
//! on loopback sockets, and a blocking SIP client for UDP and TCP.
#![allow(dead_code)] // each test binary uses a different subset

use siaga::engine::sip::framing::{MAX_MESSAGE_SIZE, StreamFrame, next_stream_frame};
use siaga::engine::sip::{HeaderName, SipMessage};
use siaga::engine::{Engine, EngineConfig, Transport};
use siaga::runtime::{self, RunOptions};
use siaga::transport::BoundSockets;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

/// Failure guard for every wait (not a speed assertion).
pub const GUARD: Duration = Duration::from_secs(10);

/// A siaga running in a thread of its own on real sockets; stopped when dropped.
pub struct Siaga {
    /// Where its UDP socket listens.
    pub udp: SocketAddr,
    /// Where its TCP listener listens.
    pub tcp: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Siaga {
    /// Starts siaga on `listen` (port 0 picks free ports) with `config`.
    pub fn start(listen: SocketAddr, config: EngineConfig) -> Siaga {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let sockets = BoundSockets::bind(listen)
                    .await
                    .expect("bind siaga's sockets");
                let addrs = (
                    sockets.udp_addr().expect("udp"),
                    sockets.tcp_addr().expect("tcp"),
                );
                ready_tx.send(addrs).expect("test waits for the addresses");
                let engine = Engine::with_seed(config, 11);
                runtime::run(sockets, engine, RunOptions::default(), async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("siaga runs");
            });
        });
        let (udp, tcp) = ready_rx.recv_timeout(GUARD).expect("siaga started");
        Siaga {
            udp,
            tcp,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Siaga {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Engine configuration for end-to-end tests: `domains`, default RFC timers.
pub fn config(domains: &[&str]) -> EngineConfig {
    let mut c = EngineConfig::for_tests("127.0.0.1:5060".parse().expect("literal"));
    c.domains = domains.iter().map(|d| d.to_string()).collect();
    c
}

/// A UDP SIP peer bound to `addr`.
pub struct UdpPeer(pub UdpSocket);

impl UdpPeer {
    pub fn bind(addr: &str) -> UdpPeer {
        let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        s.set_read_timeout(Some(GUARD)).expect("timeout");
        UdpPeer(s)
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("local address").port()
    }

    pub fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.0.send_to(bytes, to).expect("send");
    }

    /// The next SIP message that arrives within `wait`, if any.
    pub fn recv_within(&self, wait: Duration) -> Option<SipMessage> {
        self.0.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = vec![0u8; 65_535];
        let got = self.0.recv_from(&mut buf).ok().map(|(n, _)| {
            SipMessage::parse(bytes::Bytes::copy_from_slice(&buf[..n]), Transport::Udp)
                .expect("siaga sends parseable messages")
        });
        self.0.set_read_timeout(Some(GUARD)).expect("timeout");
        got
    }

    /// The next response whose Call-ID is `call_id` (others, e.g. retransmissions of an
    /// earlier final response, are skipped).
    pub fn response_for(&self, call_id: &str) -> SipMessage {
        loop {
            let m = self
                .recv_within(GUARD)
                .unwrap_or_else(|| panic!("no response for {call_id}"));
            if m.call_id() == Ok(call_id) {
                return m;
            }
        }
    }

    /// Sends an OPTIONS to siaga itself and asserts the 200.
    pub fn assert_alive(&self, siaga: SocketAddr, n: usize) {
        let call_id = format!("alive-{n}-{}", self.port());
        self.send(options(&call_id, self.port(), "UDP").as_bytes(), siaga);
        let r = self.response_for(&call_id);
        assert_eq!(r.status(), Some(200), "OPTIONS after input {n}");
    }
}

/// A plain OPTIONS to siaga itself.
pub fn options(call_id: &str, port: u16, transport: &str) -> String {
    format!(
        "OPTIONS sip:siaga.test SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:monitor@127.0.0.1>;tag=m1\r\nTo: <sip:siaga.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A TCP SIP peer: a connection and what has been read but not yet consumed.
pub struct TcpPeer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpPeer {
    pub fn connect(to: SocketAddr) -> TcpPeer {
        let stream = TcpStream::connect(to).expect("connect");
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        TcpPeer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.stream.local_addr().expect("local address").port()
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next whole SIP message (`None` when the peer closed first or sent garbage).
    pub fn read_sip(&mut self) -> Option<SipMessage> {
        loop {
            match next_stream_frame(&self.buf, MAX_MESSAGE_SIZE) {
                Ok(StreamFrame::Message { len }) => {
                    let frame: Vec<u8> = self.buf.drain(..len).collect();
                    return Some(
                        SipMessage::parse(bytes::Bytes::from(frame), Transport::Tcp)
                            .expect("siaga sends parseable messages"),
                    );
                }
                Ok(StreamFrame::KeepAlive { len, .. }) => {
                    self.buf.drain(..len);
                    continue;
                }
                Ok(StreamFrame::NeedMore) => {}
                Err(_) => return None,
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A header's value as text ("" when absent).
pub fn header(msg: &SipMessage, name: HeaderName) -> String {
    msg.header(name)
        .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
        .unwrap_or_default()
}

/// The `Authorization` header line (with its CRLF) answering the 401 `challenge` to a
/// REGISTER of `user` with `password` in realm `siaga.test` for `sip:siaga.test` (RFC 2617
/// §3.2.2, MD5, qop=auth, nc 1, a fixed cnonce).
pub fn register_authorization(challenge: &SipMessage, user: &str, password: &str) -> String {
    use md5::{Digest, Md5};
    let md5_hex = |s: &str| hex::encode(Md5::digest(s.as_bytes()));
    let www = header(challenge, HeaderName::WwwAuthenticate);
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce");
    let ha1 = md5_hex(&format!("{user}:siaga.test:{password}"));
    let ha2 = md5_hex("REGISTER:sip:siaga.test");
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"sip:siaga.test\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n"
    )
}
