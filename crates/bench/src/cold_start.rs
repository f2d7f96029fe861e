//! Cold starts: each function's release binary started against a minimal Lambda Runtime API on
//! loopback, timed from exec to its first `GET …/invocation/next` (init) and to the `…/response`
//! for its sample event, with its peak resident memory.

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
use chat_core::routes::Route;
use chat_core::store::ConnectionStore;
use chat_local_gateway::Running;
use chat_testing::{Dynalite, events};
use tokio::sync::mpsc;

use crate::report::{Figure, Target, mb, ms, percentile, resident};

/// What the runtime API saw, in order.
enum Signal {
    Next(Instant),
    Response(Instant),
    Error(String),
}

#[derive(Clone)]
struct RuntimeApi {
    event: Arc<Mutex<Option<Vec<u8>>>>,
    signals: mpsc::UnboundedSender<Signal>,
}

async fn next(State(api): State<RuntimeApi>) -> Response {
    let _ = api.signals.send(Signal::Next(Instant::now()));
    let event = api.event.lock().expect("event").take();
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

async fn response(State(api): State<RuntimeApi>) -> &'static str {
    let _ = api.signals.send(Signal::Response(Instant::now()));
    ""
}

async fn error(State(api): State<RuntimeApi>, body: Bytes) -> &'static str {
    let _ = api.signals.send(Signal::Error(String::from_utf8_lossy(&body).into_owned()));
    ""
}

async fn wait(signals: &mut mpsc::UnboundedReceiver<Signal>) -> Signal {
    tokio::time::timeout(Duration::from_secs(20), signals.recv())
        .await
        .expect("the function answers within 20 s")
        .expect("the runtime API is up")
}

/// One start: (init µs, first response µs, peak RSS bytes).
async fn start_once(
    binary: &Path,
    env: &[(String, String)],
    api: &RuntimeApi,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
    event: &[u8],
) -> (f64, f64, u64) {
    *api.event.lock().expect("event") = Some(event.to_vec());
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let Signal::Next(first_next) = wait(signals).await else {
        panic!("{} did not ask for an event first", binary.display())
    };
    let answered = match wait(signals).await {
        Signal::Response(at) => at,
        Signal::Error(error) => panic!("{} failed its sample event: {error}", binary.display()),
        Signal::Next(_) => panic!("{} asked for another event before answering", binary.display()),
    };
    let Signal::Next(_) = wait(signals).await else {
        panic!("{} did not come back for the next event", binary.display())
    };
    let peak = child.id().and_then(|pid| resident(pid, "VmHWM:")).unwrap_or(0);
    let _ = child.kill().await;
    let micros = |at: Instant| at.duration_since(started).as_secs_f64() * 1e6;
    (micros(first_next), micros(answered), peak)
}

/// Cold starts of every function in `dir` (release binaries named after their routes).
pub async fn measure(dir: &Path, starts: usize, gateway: &Running, figures: &mut Vec<Figure>) {
    let (signals_tx, mut signals) = mpsc::unbounded_channel();
    let api = RuntimeApi { event: Arc::default(), signals: signals_tx };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
    let runtime_api = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The functions' DynamoDB: dynalite with the sample sender (user 1) and a live user 2.
    let dynalite = Dynalite::start();
    let store = dynalite.create_table("chat-connections").await;
    let recipient = crate::gateway_load::connect_client(&gateway.url(), "2").await;
    let user = chat_core::protocol::UserId::parse("2").expect("a valid user id");
    let recipient_id = gateway.store().expect("in-process").connections_of(&user).await.expect("memory")[0].clone();
    store.save(&events::connection(&recipient_id, "2")).await.expect("seed");

    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_LEVEL", "error"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("TABLE_NAME", "chat-connections"),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynalite.endpoint()),
        ("APIGW_MANAGEMENT_ENDPOINT", &gateway.management_url()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    for route in Route::ALL {
        let binary = dir.join(route.binary());
        let event = serde_json::to_vec(&events::json(route)).expect("sample event");
        let (mut inits, mut firsts, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..starts {
            // Each run starts from the same records: the sample sender is connected.
            store.save(&events::connection("L0SM9cOFvHcCIhw=", "1")).await.expect("seed");
            let (init, first, peak) = start_once(&binary, &env, &api, &mut signals, &event).await;
            inits.push(init);
            firsts.push(first);
            peaks.push(peak);
        }
        for samples in [&mut inits, &mut firsts] {
            samples.sort_by(f64::total_cmp);
        }
        peaks.sort();
        let median_init = percentile(&inits, 50.0);
        figures.push(Figure {
            name: format!("{} init (exec → first /next), median / p90", route.binary()),
            value: format!("{} / {}", ms(median_init), ms(percentile(&inits, 90.0))),
            target: Some(Target::at_most(median_init, 10_000.0, "median ≤ 10 ms")),
        });
        figures.push(Figure {
            name: format!("{} exec → first /response, median / p90", route.binary()),
            value: format!("{} / {}", ms(percentile(&firsts, 50.0)), ms(percentile(&firsts, 90.0))),
            target: None,
        });
        figures.push(Figure {
            name: format!("{} peak resident memory", route.binary()),
            value: mb(*peaks.last().unwrap_or(&0)),
            target: None,
        });
    }
    drop(recipient);
}
