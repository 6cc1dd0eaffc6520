//! RTP relay load test, two processes (so the relay's CPU is measured alone); driven by
//! `sip-tests/bench-rtp.sh`.
//!
//! - `rtp_load relay --calls N`: opens N relays with [`MediaRelays`] on 127.0.0.1 (caller
//!   port `base + 4i`, operator port `base + 4i + 2`), gives each side's SDP address as
//!   the load generator's phones, prints `ready`, and runs until SIGTERM/SIGINT; then
//!   closes all relays and prints the summed reports.
//! - `rtp_load load --calls N --seconds S --relay-pid PID`: 2N phones each send G.711 RTP
//!   (160-byte payload every 20 ms) through their relay and check what arrives. After a
//!   warm-up it reads the relay's CPU time (`/proc/PID/stat` utime + stime, all threads;
//!   and `/proc/PID/task/*/schedstat`, in ns) at the start and end of the window and prints
//!   CPU µs per relayed packet, and the loss (sent vs received) over the whole run.

use clap::{Parser, Subcommand};
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use siaga::engine::media::{MediaCommand, MediaReport, PacketCounts, RelayId, Side};
use siaga::media::{MediaRelays, MediaThread};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PAYLOAD: usize = 160;
const PTIME: Duration = Duration::from_millis(20);

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the relays.
    Relay {
        #[command(flatten)]
        layout: Layout,
        /// Tokio runtime: `multi` (relays on a 2-worker runtime, as siaga's main one),
        /// `current` (one thread), or `dedicated` (a 2-worker main runtime with the relays
        /// on a [`MediaThread`]).
        #[arg(long, default_value = "multi")]
        runtime: String,
    },
    /// Send and receive RTP through the relays; measure the relay process.
    Load {
        #[command(flatten)]
        layout: Layout,
        /// Length of the measured window, in s (at most 600).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Warm-up before the window, in s.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// The relay process.
        #[arg(long)]
        relay_pid: u32,
        /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
        #[arg(long, default_value_t = 100)]
        clk_tck: u64,
    },
}

#[derive(clap::Args, Clone, Copy)]
struct Layout {
    /// Concurrent calls (at most 2000).
    #[arg(long, default_value_t = 100)]
    calls: u16,
    /// First relay port (even); relay i uses base + 4i .. base + 4i + 3.
    #[arg(long, default_value_t = 40000)]
    base_port: u16,
    /// First phone port; call i's phones are phone_base + 2i (caller), + 2i + 1 (operator).
    #[arg(long, default_value_t = 50000)]
    phone_base: u16,
}

impl Layout {
    fn relay_ports(self, i: u16) -> (u16, u16) {
        (self.base_port + 4 * i, self.base_port + 4 * i + 2)
    }

    fn phones(self, i: u16) -> (u16, u16) {
        (self.phone_base + 2 * i, self.phone_base + 2 * i + 1)
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Relay { layout, runtime } => {
            let mut builder = if runtime == "current" {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            };
            let dedicated = runtime == "dedicated";
            builder
                .enable_all()
                .build()?
                .block_on(relay(layout, dedicated))
        }
        Mode::Load {
            layout,
            seconds,
            warmup,
            relay_pid,
            clk_tck,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(load(layout, seconds.min(600), warmup, relay_pid, clk_tck)),
    }
}

async fn relay(layout: Layout, dedicated: bool) -> std::io::Result<()> {
    let calls = layout.calls.min(2000);
    let (report_tx, mut reports) = mpsc::channel(64);
    let media_thread = if dedicated {
        Some(MediaThread::start()?)
    } else {
        None
    };
    let mut relays = match &media_thread {
        Some(thread) => MediaRelays::with_handle(LOCALHOST, report_tx, thread.handle()),
        None => MediaRelays::new(LOCALHOST, report_tx),
    };
    for i in 0..calls {
        let relay = RelayId(u64::from(i));
        let (caller_port, operator_port) = layout.relay_ports(i);
        let (caller, operator) = layout.phones(i);
        relays.execute(MediaCommand::Open {
            relay,
            caller_port,
            operator_port,
        });
        for (side, port) in [(Side::Caller, caller), (Side::Operator, operator)] {
            relays.execute(MediaCommand::SetPeer {
                relay,
                side,
                rtp: SocketAddr::new(LOCALHOST, port),
            });
        }
    }
    println!("ready {calls} relays");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let summer = tokio::spawn(async move {
        let (mut up, mut down, mut failed) = (PacketCounts::default(), PacketCounts::default(), 0);
        while let Some(r) = reports.recv().await {
            // The relays report no silence here (no timeout set): only their counts.
            let MediaReport::Closed(r) = r else { continue };
            for (sum, c) in [
                (&mut up, r.caller_to_operator),
                (&mut down, r.operator_to_caller),
            ] {
                sum.packets += c.packets;
                sum.bytes += c.bytes;
                sum.dropped += c.dropped;
            }
            failed += r.bind_failed.len();
        }
        (up, down, failed)
    });
    relays.shutdown().await;
    let (up, down, failed) = summer.await.map_err(std::io::Error::other)?;
    drop(media_thread);
    println!(
        "relay reports: caller->operator {} packets ({} dropped), operator->caller {} packets \
         ({} dropped), {failed} ports failed to bind",
        up.packets, up.dropped, down.packets, down.dropped
    );
    Ok(())
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    corrupt: AtomicU64,
}

async fn load(
    layout: Layout,
    seconds: u64,
    warmup: u64,
    relay_pid: u32,
    clk_tck: u64,
) -> std::io::Result<()> {
    let calls = layout.calls.min(2000);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for i in 0..calls {
        let (caller_port, operator_port) = layout.relay_ports(i);
        let (caller, operator) = layout.phones(i);
        for (phone, relay_port) in [(caller, caller_port), (operator, operator_port)] {
            let socket = UdpSocket::bind((LOCALHOST, phone)).await?;
            // Spread the phones over one packet time, as real calls are.
            let offset = PTIME * u32::from(i) / u32::from(calls.max(1));
            tasks.push(tokio::spawn(run_phone(
                socket,
                SocketAddr::new(LOCALHOST, relay_port),
                start + offset,
                u32::from(phone),
                counters.clone(),
                stop.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let (cpu0, sched0) = (cpu_ticks(relay_pid, clk_tck)?, sched_ns(relay_pid));
    let received0 = counters.received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, sched1) = (cpu_ticks(relay_pid, clk_tck)?, sched_ns(relay_pid));
    let received1 = counters.received.load(Ordering::Relaxed);
    let window = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    // Let the last packets arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in tasks {
        t.abort();
    }

    let relayed = received1 - received0;
    let sent = counters.sent.load(Ordering::Relaxed);
    let received = counters.received.load(Ordering::Relaxed);
    let corrupt = counters.corrupt.load(Ordering::Relaxed);
    let per_packet = |ns: u64| ns as f64 / 1000.0 / relayed.max(1) as f64;
    println!(
        "calls {calls} (both directions), window {:.1} s, relayed {relayed} packets ({:.0}/s)",
        window.as_secs_f64(),
        relayed as f64 / window.as_secs_f64()
    );
    println!(
        "relay CPU: {:.2} µs per relayed packet (utime+stime), {} (schedstat), {:.1}% of one core",
        per_packet(cpu1 - cpu0),
        match (sched0, sched1) {
            (Some(a), Some(b)) => format!("{:.2} µs", per_packet(b - a)),
            _ => "n/a".to_owned(),
        },
        (cpu1 - cpu0) as f64 / window.as_nanos() as f64 * 100.0
    );
    println!(
        "loss: sent {sent}, received {received}, lost {} ({:.3}%), corrupt {corrupt}",
        sent.saturating_sub(received),
        sent.saturating_sub(received) as f64 * 100.0 / sent.max(1) as f64
    );
    Ok(())
}

/// One phone: sends a packet every 20 ms from `first`, counts what arrives (each must be
/// an unchanged packet of its peer: RTP, 172 bytes, the peer's payload byte).
async fn run_phone(
    socket: UdpSocket,
    relay: SocketAddr,
    first: Instant,
    ssrc: u32,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let fill = (ssrc & 0xff) as u8;
    let payload = [fill; PAYLOAD];
    let mut ticks = tokio::time::interval_at(first, PTIME);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    let mut buf = [0u8; 2048];
    let mut packet = [0u8; 12 + PAYLOAD];
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
                let built = RtpPacketBuilder::new()
                    .payload_type(8)
                    .ssrc(ssrc)
                    .sequence(Seq::from(seq))
                    .timestamp(u32::from(seq).wrapping_mul(160))
                    .payload(&payload)
                    .build_into(&mut packet);
                seq = seq.wrapping_add(1);
                if let Ok(n) = built
                    && socket.send_to(&packet[..n], relay).await.is_ok()
                {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, _)) = got else { continue };
                let intact = n == 12 + PAYLOAD
                    && RtpReader::new(&buf[..n]).is_ok_and(|r| {
                        r.ssrc() != ssrc && r.payload().iter().all(|&b| b == (r.ssrc() & 0xff) as u8)
                    });
                let counter = if intact { &counters.received } else { &counters.corrupt };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// utime + stime of all the process's threads, in ns (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: u32, clk_tck: u64) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Ok(ticks * 1_000_000_000 / clk_tck.max(1))
}

/// Time on CPU of all the process's threads, in ns (`/proc/PID/task/*/schedstat`, first
/// field); `None` where schedstat is not available.
fn sched_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}
