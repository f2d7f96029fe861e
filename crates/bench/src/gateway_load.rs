//! The local gateway under load, as a separate process with the in-process backend: delivered
//! direct messages per second with many clients, send-to-receive latency at half that rate, and
//! resident memory with many idle connections.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt, stream};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::report::{Figure, Target, cpu_seconds, mb, ms, percentile, resident};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects as `user` with small buffers (thousands of clients fit in memory) and TCP_NODELAY.
pub async fn connect_client(url: &str, user: &str) -> Socket {
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(format!("{url}?userId={user}"), Some(config), true)
        .await
        .unwrap_or_else(|error| panic!("connecting as {user}: {error}"));
    socket
}

/// A `local-gateway` process on a free port.
struct GatewayProcess {
    child: Child,
    url: String,
}

impl GatewayProcess {
    /// Starts the gateway; a client that does not read is closed after `write_timeout`.
    async fn start(binary: &Path, write_timeout: Duration) -> Self {
        let port = chat_testing::dynalite::free_port();
        let child = tokio::process::Command::new(binary)
            // Thousands of clients connect and send at once: lift API Gateway's 500 connects/s
            // quota and the template stage's route throttling (1,000 requests/s a route).
            .args([
                "--no-throttling",
                "--port",
                &port.to_string(),
                "--log-level",
                "warn",
                "--max-connects-per-sec",
                "100000",
                "--write-timeout-secs",
                &write_timeout.as_secs().max(1).to_string(),
                "--template",
            ])
            .arg(chat_testing::workspace_root().join("template.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "local-gateway did not listen within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, url: format!("ws://127.0.0.1:{port}/dev") }
    }

    fn resident(&self) -> u64 {
        self.child.id().and_then(|pid| resident(pid, "VmRSS:")).unwrap_or(0)
    }
}

async fn connect_all(url: &str, count: usize) -> Vec<Socket> {
    stream::iter(0..count)
        .map(|n| async move { connect_client(url, &format!("u{n}")).await })
        .buffered(100)
        .collect()
        .await
}

/// What the receivers share: deliveries, latencies, and the window the senders wait on.
struct Receivers {
    base: Instant,
    delivered: AtomicU64,
    latencies: Mutex<Vec<u64>>,
    window: Semaphore,
}

/// Wires every client: a sender task fed by a channel, and a receiver task.
fn wire(sockets: Vec<Socket>, receivers: &Arc<Receivers>) -> Vec<mpsc::UnboundedSender<String>> {
    sockets
        .into_iter()
        .map(|socket| {
            let (mut sink, mut stream) = socket.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if sink.send(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            let receivers = receivers.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else { continue };
                    let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                    let Some(sent) = frame["body"].as_str().and_then(|body| body.parse::<u64>().ok()) else {
                        panic!("unexpected frame: {text}");
                    };
                    let now = receivers.base.elapsed().as_nanos() as u64;
                    receivers.latencies.lock().expect("latencies").push(now.saturating_sub(sent));
                    receivers.delivered.fetch_add(1, Ordering::Relaxed);
                    receivers.window.add_permits(1);
                }
            });
            tx
        })
        .collect()
}

fn frame(to: usize, receivers: &Receivers) -> String {
    let sent = receivers.base.elapsed().as_nanos();
    format!(r#"{{"action":"sendMessage","destinationUserId":"u{to}","body":"{sent}"}}"#)
}

/// Sends as fast as the window allows for `duration`; returns delivered messages per second.
async fn max_rate(senders: &[mpsc::UnboundedSender<String>], receivers: &Receivers, duration: Duration) -> f64 {
    let count = senders.len();
    let before = receivers.delivered.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < duration {
        receivers.window.acquire().await.expect("window").forget();
        let _ = senders[n % count].send(frame((n + 1) % count, receivers));
        n += 1;
    }
    (receivers.delivered.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64()
}

/// Sends at a fixed `rate` for `duration`.
async fn fixed_rate(senders: &[mpsc::UnboundedSender<String>], receivers: &Receivers, rate: f64, duration: Duration) {
    let count = senders.len();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    while started.elapsed() < duration {
        ticks.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        while sent < due {
            let _ = senders[sent % count].send(frame((sent + 1) % count, receivers));
            sent += 1;
        }
    }
}

/// Waits until every message sent so far has arrived, or `limit` passes.
async fn drain(receivers: &Receivers, window: usize, limit: Duration) {
    let started = Instant::now();
    while receivers.window.available_permits() < window && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latencies at a fixed `rate` for `duration`, sorted, in nanoseconds.
async fn latencies_at(
    senders: &[mpsc::UnboundedSender<String>],
    receivers: &Receivers,
    rate: f64,
    duration: Duration,
) -> Vec<u64> {
    // The first second settles the load (the rate change, the pools); it is not counted.
    fixed_rate(senders, receivers, rate, Duration::from_secs(1).min(duration)).await;
    receivers.latencies.lock().expect("latencies").clear();
    fixed_rate(senders, receivers, rate, duration).await;
    drain(receivers, senders.len() * WINDOW_PER_CLIENT, Duration::from_secs(10)).await;
    let mut latencies = std::mem::take(&mut *receivers.latencies.lock().expect("latencies"));
    latencies.sort_unstable();
    assert!(!latencies.is_empty(), "no message arrived at the fixed rate");
    latencies
}

/// p50, p99 and max of each run's sorted latencies: the medians, with the p99s' range.
fn latency_figure(name: String, runs: &[Vec<u64>], extra: &str) -> Figure {
    let of = |p: f64| {
        let mut values: Vec<f64> = runs.iter().map(|run| percentile(run, p) as f64 / 1e3).collect();
        values.sort_by(f64::total_cmp);
        values
    };
    let (p50, p99, max) = (of(50.0), of(99.0), of(100.0));
    let median = |values: &[f64]| percentile(values, 50.0);
    let messages: usize = runs.iter().map(Vec::len).sum();
    Figure {
        name,
        value: format!(
            "{} / {} ({} to {}) / {} ({messages} messages{extra})",
            ms(median(&p50)),
            ms(median(&p99)),
            ms(p99[0]),
            ms(p99[p99.len() - 1]),
            ms(median(&max)),
        ),
        target: Some(Target::at_most(median(&p99) / 1e3, 5.0, "p99 < 5 ms")),
    }
}

/// Messages each client may have in flight while the senders go as fast as they can.
const WINDOW_PER_CLIENT: usize = 4;

/// Runs of the maximum rate; the figure is their median, with their range.
const RATE_RUNS: usize = 3;

/// Posts to the stalled client during the stall measurement, and each one's body size.
const STALL_POSTS: usize = 1_000;
const STALL_BODY_BYTES: usize = 16 * 1024;

/// Connects a client that never reads and one that floods it with [`STALL_POSTS`] large
/// messages over `duration`; returns the refusals the flooder heard, by error code.
fn stall(url: String, duration: Duration) -> tokio::task::JoinHandle<(Socket, BTreeMap<String, usize>)> {
    tokio::spawn(async move {
        let stalled = connect_client(&url, "stalled").await;
        let (mut sink, mut stream) = connect_client(&url, "flooder").await.split();
        let refusals = tokio::spawn(async move {
            let mut codes = BTreeMap::<String, usize>::new();
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                *codes.entry(frame["error"].as_str().unwrap_or("other").to_owned()).or_default() += 1;
            }
            codes
        });
        let body = "x".repeat(STALL_BODY_BYTES);
        let frame = format!(r#"{{"action":"sendMessage","destinationUserId":"stalled","body":"{body}"}}"#);
        let mut ticks = tokio::time::interval(duration / STALL_POSTS as u32);
        for _ in 0..STALL_POSTS {
            ticks.tick().await;
            if sink.send(Message::Text(frame.clone().into())).await.is_err() {
                break;
            }
        }
        // The flooder's last frames get their answers before it leaves.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = sink.close().await;
        let codes = refusals.await.unwrap_or_default();
        (stalled, codes)
    })
}

/// Throughput, CPU, peak memory and latency (also beside a stalled client) with `clients`
/// connected, then memory with `idle` connections.
pub async fn measure(binary: &Path, clients: usize, idle: usize, duration: Duration, figures: &mut Vec<Figure>) {
    // The gateway's default (10 s) in a full run; shorter in a smoke run, so it stays quick.
    let write_timeout = duration * 2;
    let gateway = GatewayProcess::start(binary, write_timeout).await;
    let pid = gateway.child.id().expect("the gateway runs");
    let window = clients * WINDOW_PER_CLIENT;
    let receivers = Arc::new(Receivers {
        base: Instant::now(),
        delivered: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        window: Semaphore::new(window),
    });
    let senders = wire(connect_all(&gateway.url, clients).await, &receivers);

    max_rate(&senders, &receivers, duration / 5).await; // warm-up
    drain(&receivers, window, Duration::from_secs(10)).await;
    let (mut rates, mut cpu_per_message) = (Vec::new(), Vec::new());
    for _ in 0..RATE_RUNS {
        let (cpu, before) = (cpu_seconds(pid), receivers.delivered.load(Ordering::Relaxed));
        rates.push(max_rate(&senders, &receivers, duration).await);
        drain(&receivers, window, Duration::from_secs(10)).await;
        let delivered = receivers.delivered.load(Ordering::Relaxed) - before;
        cpu_per_message.push((cpu_seconds(pid) - cpu) * 1e6 / delivered.max(1) as f64);
    }
    let peak = resident(pid, "VmHWM:").unwrap_or(0);
    rates.sort_by(f64::total_cmp);
    cpu_per_message.sort_by(f64::total_cmp);
    let (rate, cpu) = (percentile(&rates, 50.0), percentile(&cpu_per_message, 50.0));
    let range =
        |samples: &[f64], digits: usize| format!("{:.digits$} to {:.digits$}", samples[0], samples[samples.len() - 1]);
    figures.push(Figure {
        name: format!("delivered direct messages/s, {clients} clients, median of {RATE_RUNS} runs (range)"),
        value: format!("{rate:.0} ({})", range(&rates, 0)),
        target: None,
    });
    figures.push(Figure {
        name: format!("gateway CPU per delivered message (both cores), median of {RATE_RUNS} runs (range)"),
        value: format!("{cpu:.0} µs ({} µs)", range(&cpu_per_message, 0)),
        target: None,
    });
    figures.push(Figure {
        name: format!("gateway peak resident memory under the {clients}-client load"),
        value: mb(peak),
        target: Some(Target::at_most(peak as f64, 100e6, "< 100 MB")),
    });

    // Runs with and without a stalled client take turns, so both see the same machine.
    let half = rate / 2.0;
    let (mut calm, mut beside_stall, mut heard) = (Vec::new(), Vec::new(), BTreeMap::<String, usize>::new());
    for _ in 0..RATE_RUNS {
        calm.push(latencies_at(&senders, &receivers, half, duration).await);
        let stalling = stall(gateway.url.clone(), duration);
        beside_stall.push(latencies_at(&senders, &receivers, half, duration).await);
        let (_stalled, codes) = stalling.await.expect("the stalling clients run");
        codes.into_iter().for_each(|(code, count)| *heard.entry(code).or_default() += count);
    }
    let runs = format!("median of {RATE_RUNS} runs: p50 / p99 (range) / max");
    figures.push(latency_figure(
        format!("send → receive latency at {half:.0} msg/s (half the maximum), {runs}"),
        &calm,
        "",
    ));
    let heard: Vec<String> = heard.iter().map(|(code, count)| format!("{count} {code}")).collect();
    figures.push(latency_figure(
        format!(
            "the same, while one more client stalls and is sent {STALL_POSTS} × {} KB per run, {runs}",
            STALL_BODY_BYTES / 1024
        ),
        &beside_stall,
        &format!("; the flooder heard {}", if heard.is_empty() { "nothing".to_owned() } else { heard.join(", ") }),
    ));
    drop(senders);
    drop(gateway);
    let gateway = GatewayProcess::start(binary, write_timeout).await;
    let baseline = gateway.resident();
    let sockets = connect_all(&gateway.url, idle).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = gateway.resident();
    figures.push(Figure {
        name: format!("gateway resident memory, {idle} idle connections"),
        value: format!(
            "{} ({} at start, {:.1} KB per connection)",
            mb(loaded),
            mb(baseline),
            loaded.saturating_sub(baseline) as f64 / 1e3 / idle as f64
        ),
        target: Some(Target::at_most(loaded as f64, 100e6, "< 100 MB")),
    });
    drop(sockets);
}
