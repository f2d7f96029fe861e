//! The local gateway under load, as a separate process with the in-process backend: delivered
//! direct messages per second with many clients, send-to-receive latency at half that rate, and
//! resident memory with many idle connections.

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

use crate::report::{Figure, Target, mb, ms, percentile, resident};

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
    async fn start(binary: &Path) -> Self {
        let port = chat_testing::dynalite::free_port();
        let child = tokio::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--log-level", "warn", "--template"])
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

/// Throughput and latency with `clients` connected, then memory with `idle` connections.
pub async fn measure(binary: &Path, clients: usize, idle: usize, duration: Duration, figures: &mut Vec<Figure>) {
    let gateway = GatewayProcess::start(binary).await;
    let window = clients * 4;
    let receivers = Arc::new(Receivers {
        base: Instant::now(),
        delivered: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        window: Semaphore::new(window),
    });
    let senders = wire(connect_all(&gateway.url, clients).await, &receivers);

    max_rate(&senders, &receivers, duration / 5).await; // warm-up
    let rate = max_rate(&senders, &receivers, duration).await;
    drain(&receivers, window, Duration::from_secs(10)).await;
    figures.push(Figure {
        name: format!("delivered direct messages/s, {clients} clients connected"),
        value: format!("{rate:.0}"),
        target: Some(Target::at_least(rate, 20_000.0, "≥ 20,000")),
    });

    receivers.latencies.lock().expect("latencies").clear();
    let half = rate / 2.0;
    let before = receivers.delivered.load(Ordering::Relaxed);
    fixed_rate(&senders, &receivers, half, duration).await;
    drain(&receivers, window, Duration::from_secs(10)).await;
    let mut latencies = std::mem::take(&mut *receivers.latencies.lock().expect("latencies"));
    latencies.sort_unstable();
    assert!(!latencies.is_empty(), "no message arrived at the fixed rate");
    let (p50, p99, max) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0), *latencies.last().unwrap_or(&0));
    figures.push(Figure {
        name: format!("send → receive latency at {half:.0} msg/s (half the maximum), p50 / p99 / max"),
        value: format!(
            "{} / {} / {} ({} messages)",
            ms(p50 as f64 / 1e3),
            ms(p99 as f64 / 1e3),
            ms(max as f64 / 1e3),
            receivers.delivered.load(Ordering::Relaxed) - before
        ),
        target: Some(Target::at_most(p99 as f64 / 1e6, 5.0, "p99 < 5 ms")),
    });
    drop(senders);
    drop(gateway);

    let gateway = GatewayProcess::start(binary).await;
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
