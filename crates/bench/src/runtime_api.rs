//! A minimal Lambda Runtime API on loopback: it hands a real function binary queued events,
//! one per `GET …/invocation/next`, and reports when each request and answer arrived.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::process::Child;
use tokio::sync::mpsc;

/// What the runtime API saw, in order.
pub enum Signal {
    Next(Instant),
    Response(Instant),
    Error(String),
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<VecDeque<Vec<u8>>>>,
    last_answer: Arc<Mutex<Vec<u8>>>,
    signals: mpsc::UnboundedSender<Signal>,
}

/// What warm invocations of a function cost: the first, cold one left out.
pub struct Warm {
    /// Each invocation's time from `/next` to `/response`, µs, sorted.
    pub times: Vec<f64>,
    /// CPU the process used across them, seconds.
    pub cpu: f64,
    /// The process's peak resident memory, bytes.
    pub peak: u64,
}

/// The runtime API's address, its event queue and what it saw.
pub struct RuntimeApi {
    shared: Shared,
    signals: mpsc::UnboundedReceiver<Signal>,
    address: String,
}

async fn next(State(api): State<Shared>) -> Response {
    let _ = api.signals.send(Signal::Next(Instant::now()));
    let event = api.events.lock().expect("events").pop_front();
    let Some(event) = event else {
        // The function is warm and waiting: hold the request until the process is stopped.
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
        + Duration::from_secs(30);
    headers.insert("lambda-runtime-aws-request-id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd".parse().expect("header"));
    headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().expect("header"));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".parse().expect("header"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".parse().expect("header"),
    );
    (headers, event).into_response()
}

async fn response(State(api): State<Shared>, body: Bytes) -> &'static str {
    *api.last_answer.lock().expect("answer") = body.to_vec();
    let _ = api.signals.send(Signal::Response(Instant::now()));
    ""
}

async fn error(State(api): State<Shared>, body: Bytes) -> &'static str {
    let _ = api.signals.send(Signal::Error(String::from_utf8_lossy(&body).into_owned()));
    ""
}

impl RuntimeApi {
    /// Serves the runtime API on a free loopback port.
    pub async fn start() -> Self {
        let (signals_tx, signals) = mpsc::unbounded_channel();
        let shared = Shared { events: Arc::default(), last_answer: Arc::default(), signals: signals_tx };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { shared, signals, address }
    }

    /// Queues events; the function gets them in order, one per `/next`.
    pub fn queue(&self, events: impl IntoIterator<Item = Vec<u8>>) {
        self.shared.events.lock().expect("events").extend(events);
    }

    /// The next thing the runtime API saw; panics after 20 s of silence.
    pub async fn signal(&mut self) -> Signal {
        tokio::time::timeout(Duration::from_secs(20), self.signals.recv())
            .await
            .expect("the function answers within 20 s")
            .expect("the runtime API is up")
    }

    /// Waits for the `/next` that asks for an event.
    pub async fn next_request(&mut self, binary: &Path) -> Instant {
        match self.signal().await {
            Signal::Next(at) => at,
            Signal::Error(error) => panic!("{} failed: {error}", binary.display()),
            Signal::Response(_) => panic!("{} answered an event it was not given", binary.display()),
        }
    }

    /// Waits for the answer to the event just handed out.
    pub async fn answer(&mut self, binary: &Path) -> Instant {
        match self.signal().await {
            Signal::Response(at) => at,
            Signal::Error(error) => panic!("{} failed its event: {error}", binary.display()),
            Signal::Next(_) => panic!("{} asked for another event before answering", binary.display()),
        }
    }

    /// The body of the last answer a function posted.
    pub fn last_answer(&self) -> serde_json::Value {
        serde_json::from_slice(&self.shared.last_answer.lock().expect("answer")).unwrap_or_default()
    }

    /// Starts `binary`, gives it `event` once cold and `invocations` times warm, and returns
    /// the warm invocations' times (µs, sorted), their CPU (s) and the process's peak RSS.
    pub async fn run_warm(
        &mut self,
        binary: &Path,
        env: &[(String, String)],
        event: Vec<u8>,
        invocations: usize,
    ) -> Warm {
        self.queue(std::iter::repeat_n(event, invocations + 1));
        let mut child = self.spawn(binary, env);
        let pid = child.id().expect("the function runs");
        self.next_request(binary).await;
        self.answer(binary).await;
        let cpu = crate::report::cpu_seconds(pid);
        let mut times = Vec::with_capacity(invocations);
        for _ in 0..invocations {
            let asked = self.next_request(binary).await;
            times.push(self.answer(binary).await.duration_since(asked).as_secs_f64() * 1e6);
        }
        let cpu = crate::report::cpu_seconds(pid) - cpu;
        self.next_request(binary).await;
        let peak = crate::report::resident(pid, "VmHWM:").unwrap_or(0);
        let _ = child.kill().await;
        times.sort_by(f64::total_cmp);
        Warm { times, cpu, peak }
    }

    /// Starts a function binary pointed at this runtime API.
    pub fn spawn(&self, binary: &Path, env: &[(String, String)]) -> Child {
        tokio::process::Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()))
    }
}
