//! Big rooms through the fan-out queue: the send-message release binary queues a room's pages
//! on a real SQS API (moto), then fan-out-worker release binaries post them, each page an SQS
//! event, to a @connections endpoint that counts posts and refuses those past the local
//! account rate (429), as API Gateway's throttle does.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_core::delivery::queue::{FanOutPage, SQS_MAX_MESSAGE_BYTES, batches, bodies};
use chat_core::limits::{ACCOUNT_BURST, ACCOUNT_REQUESTS_PER_SECOND, FAN_OUT_PAGE};
use chat_core::protocol::RoomId;
use chat_core::routes::Route;
use chat_core::store::{ConnectionStore, SubscriptionStore, UserStore, schema};
use chat_testing::dynalite::MEMBERSHIPS_TABLE;
use chat_testing::sqs::Moto;
use chat_testing::{Dynalite, events};
use futures::{StreamExt, stream};
use serde_json::json;

use crate::cold_start::function_env;
use crate::prices;
use crate::report::{Figure, Target, mb, ms, percentile};
use crate::runtime_api::RuntimeApi;

/// Big rooms' share of the account's rate, as the template's default: half of 10,000/s.
const SHARE_PER_SECOND: u32 = 5_000;
/// Workers at once: one per core of this machine (the cloud's default is 10, at the same share).
const WORKERS: usize = 2;
/// The worker's memory (template.yaml), and Lambda's one vCPU at 1,769 MB.
const WORKER_MEMORY_MB: f64 = 256.0;
const MB_PER_VCPU: f64 = 1769.0;

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// A @connections endpoint that counts posts by connection and answers 429
/// `LimitExceededException` past the account's rate (10,000/s, burst 5,000), as API Gateway does.
struct CappedConnections {
    url: String,
    counts: Counts,
    throttled: Arc<std::sync::atomic::AtomicUsize>,
}

impl CappedConnections {
    async fn start() -> Self {
        #[derive(Clone)]
        struct Sink {
            counts: Counts,
            limiter: Arc<governor::DefaultDirectRateLimiter>,
            throttled: Arc<std::sync::atomic::AtomicUsize>,
        }
        async fn post(State(sink): State<Sink>, UrlPath(id): UrlPath<String>) -> axum::response::Response {
            if sink.limiter.check().is_err() {
                sink.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut response = (StatusCode::TOO_MANY_REQUESTS, r#"{"message":"Rate exceeded"}"#).into_response();
                response.headers_mut().insert("x-amzn-ErrorType", "LimitExceededException".parse().expect("header"));
                return response;
            }
            *sink.counts.lock().expect("counts").entry(id).or_default() += 1;
            StatusCode::OK.into_response()
        }
        let quota = governor::Quota::per_second(NonZeroU32::new(ACCOUNT_REQUESTS_PER_SECOND).expect("non-zero"))
            .allow_burst(NonZeroU32::new(ACCOUNT_BURST).expect("non-zero"));
        let sink = Sink {
            counts: Counts::default(),
            limiter: Arc::new(governor::RateLimiter::direct(quota)),
            throttled: Arc::default(),
        };
        let (counts, throttled) = (sink.counts.clone(), sink.throttled.clone());
        let app = axum::Router::new().route("/dev/@connections/{id}", axum::routing::post(post)).with_state(sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/dev", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, counts, throttled }
    }
}

/// Seeds `members` memberships of `room` straight into the memberships table (25 to a
/// `BatchWriteItem`): the sender reads only those, and the workers' posts all succeed, so no
/// connection record is read.
async fn seed(dynalite: &Dynalite, room: &RoomId, members: usize) -> Vec<String> {
    let ids: Vec<String> = (0..members).map(|n| format!("member{n:06}=")).collect();
    let client = dynalite.client();
    stream::iter(ids.chunks(25))
        .for_each_concurrent(8, |chunk| {
            let client = &client;
            async move {
                let requests = chunk.iter().map(|id| {
                    let item = HashMap::from([
                        (schema::ROOM_ID.to_owned(), AttributeValue::S(room.as_str().to_owned())),
                        (schema::CONNECTION_ID.to_owned(), AttributeValue::S(id.clone())),
                        (schema::EXPIRES_AT.to_owned(), AttributeValue::N("4102444800".to_owned())),
                    ]);
                    let put = PutRequest::builder().set_item(Some(item)).build().expect("an item");
                    WriteRequest::builder().put_request(put).build()
                });
                let mut unprocessed = Some(HashMap::from([(MEMBERSHIPS_TABLE.to_owned(), requests.collect())]));
                while let Some(items) = unprocessed.filter(|items| !items.is_empty()) {
                    let written = client.batch_write_item().set_request_items(Some(items)).send().await;
                    unprocessed = written.expect("seeding dynalite").unprocessed_items;
                }
            }
        })
        .await;
    ids
}

/// Direct messages from the sender's connection to user 2 (whose connection is on the same
/// capped endpoint), one after another, back to back, in a warm send-message process: each one's time from
/// the runtime API's `/next` to the answer, µs, sorted. Runs until `stop` is set (after at
/// least `at_least` messages).
async fn direct_messages(
    sender: &Path,
    env: &[(String, String)],
    at_least: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<f64> {
    let mut event = events::json(Route::SendMessage);
    event["body"] = json!({"action": "sendMessage", "destinationUserId": "2", "body": "psst"}).to_string().into();
    let event = serde_json::to_vec(&event).expect("event");
    let mut api = RuntimeApi::start().await;
    // An event is always queued before the function asks for it: a `/next` that finds none
    // waits for good.
    api.queue([event.clone(), event.clone()]);
    let mut child = api.spawn(sender, env);
    api.next_request(sender).await;
    api.answer(sender).await;
    let mut times = Vec::new();
    loop {
        let asked = api.next_request(sender).await;
        let last = times.len() + 1 >= at_least && stop.load(std::sync::atomic::Ordering::SeqCst);
        if !last {
            api.queue([event.clone()]);
        }
        times.push(api.answer(sender).await.duration_since(asked).as_secs_f64() * 1e6);
        if last {
            break;
        }
    }
    let _ = child.kill().await;
    times.sort_by(f64::total_cmp);
    times
}

/// One message to a room of `members` connections through the queue.
pub async fn measure(dir: &Path, members: usize, figures: &mut Vec<Figure>) {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(chat_testing::dynalite::TABLE).await;
    let room = RoomId::parse("hall").expect("a valid room id");
    let ids = seed(&dynalite, &room, members).await;
    store.save(&events::connection("L0SM9cOFvHcCIhw=", "1")).await.expect("seeding dynalite");
    store.subscribe("L0SM9cOFvHcCIhw=", &room).await.expect("seeding dynalite");
    // The sender ("1") is a member: a room message needs the user's room entry.
    let sender = chat_core::protocol::UserId::parse("1").expect("a valid user id");
    store.add_room(&sender, &room).await.expect("seeding dynalite");
    store.save(&events::connection("recipient2=", "2")).await.expect("seeding dynalite");
    let moto = Moto::start();
    let queues = moto.create_fan_out_queue("bench-fan-out", Duration::from_secs(360), 5).await;
    let endpoint = CappedConnections::start().await;
    let mut env = function_env(&dynalite, &endpoint.url);
    env.extend([
        ("AWS_ENDPOINT_URL_SQS".to_owned(), moto.endpoint().to_owned()),
        (chat_core::config::FAN_OUT_QUEUE_URL.to_owned(), queues.url.clone()),
        (chat_core::config::FAN_OUT_POSTS_PER_SECOND.to_owned(), SHARE_PER_SECOND.to_string()),
        (chat_core::config::FAN_OUT_WORKERS.to_owned(), WORKERS.to_string()),
    ]);

    // The sender: stores the message and queues the pages (warm: a direct message first).
    let sender = dir.join(chat_testing::deployment::binary_of(Route::SendMessage));
    let mut api = RuntimeApi::start().await;
    let mut warm_up = events::json(Route::SendMessage);
    warm_up["body"] = json!({"action": "sendMessage", "destinationUserId": "2", "body": "warm"}).to_string().into();
    let mut event = events::json(Route::SendMessage);
    event["body"] = json!({"action": "sendMessage", "roomId": "hall", "body": "hello, hall"}).to_string().into();
    api.queue([serde_json::to_vec(&warm_up).expect("event"), serde_json::to_vec(&event).expect("event")]);
    let mut child = api.spawn(&sender, &env);
    api.next_request(&sender).await;
    api.answer(&sender).await;
    let asked = api.next_request(&sender).await;
    let sender_took = api.answer(&sender).await.duration_since(asked);
    let _ = child.kill().await;
    let idle = std::sync::atomic::AtomicBool::new(true);
    let direct_idle = direct_messages(&sender, &env, 100, &idle).await;

    // The pages, as the event source receives them.
    let sqs = moto.client();
    let mut pages: Vec<(String, FanOutPage)> = Vec::new();
    loop {
        let received = sqs.receive_message().queue_url(&queues.url).max_number_of_messages(10).send().await;
        let messages = received.expect("moto answers").messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let body = message.body.unwrap_or_default();
            pages.push((body.clone(), serde_json::from_str(&body).expect("a fan-out page")));
        }
    }
    let queued: usize = pages.iter().map(|(_, page)| page.connection_ids.len()).sum();
    assert_eq!(queued, members, "every member was queued once");
    // The sender's requests: its grouping of these pages into SendMessageBatch requests.
    let (fit, _) = bodies(pages.iter().map(|(_, page)| page.clone()).collect());
    let batch_sizes: Vec<usize> =
        batches(fit).iter().map(|batch| batch.iter().map(|(_, body)| body.len()).sum()).collect();

    // The workers: one process each, the pages dealt out in turn, one page per invocation.
    let worker = dir.join(chat_testing::deployment::FAN_OUT_WORKER_BINARY);
    let event_of = |body: &str| {
        let mut message = SqsMessage::default();
        message.message_id = Some("bench".to_owned());
        message.body = Some(body.to_owned());
        message.event_source = Some("aws:sqs".to_owned());
        let mut event = SqsEvent::default();
        event.records = vec![message];
        serde_json::to_vec(&event).expect("event")
    };
    let started = Instant::now();
    let runs = (0..WORKERS).map(|n| {
        let events: Vec<Vec<u8>> = pages.iter().skip(n).step_by(WORKERS).map(|(body, _)| event_of(body)).collect();
        let (worker, env) = (worker.clone(), env.clone());
        async move {
            let mut api = RuntimeApi::start().await;
            let count = events.len();
            api.queue(
                std::iter::once(event_of(
                    r#"{"apiId":"a","stage":"dev","roomId":"hall","frame":"{}","openedBy":0,"connectionIds":[]}"#,
                ))
                .chain(events),
            );
            let mut child = api.spawn(&worker, &env);
            let pid = child.id().expect("the worker runs");
            api.next_request(&worker).await;
            api.answer(&worker).await;
            let cpu = crate::report::cpu_seconds(pid);
            for _ in 0..count {
                api.next_request(&worker).await;
                api.answer(&worker).await;
                let failures = &api.last_answer()["batchItemFailures"];
                assert_eq!(failures, &json!([]), "the worker posted its page");
            }
            let cpu = crate::report::cpu_seconds(pid) - cpu;
            api.next_request(&worker).await;
            let peak = crate::report::resident(pid, "VmHWM:").unwrap_or(0);
            let _ = child.kill().await;
            (cpu, peak)
        }
    });
    let serving = std::sync::atomic::AtomicBool::new(false);
    let posting = async {
        let done: Vec<(f64, u64)> = futures::future::join_all(runs).await;
        let took = started.elapsed();
        serving.store(true, std::sync::atomic::Ordering::SeqCst);
        (done, took)
    };
    let ((done, posting_took), direct_busy) = futures::join!(posting, direct_messages(&sender, &env, 1, &serving));

    let mut counts = endpoint.counts.lock().expect("counts").clone();
    counts.remove("recipient2=");
    assert_eq!(counts.len(), members, "every member was posted to");
    assert!(counts.values().all(|count| *count == 1), "every member got the message once");
    assert!(ids.iter().all(|id| counts.contains_key(id)));
    let cpu: f64 = done.iter().map(|(cpu, _)| cpu).sum();
    let peak = done.iter().map(|(_, peak)| *peak).max().unwrap_or(0);
    let throttled = endpoint.throttled.load(std::sync::atomic::Ordering::Relaxed);
    let billed_batches: usize = batch_sizes.iter().map(|bytes| bytes.div_ceil(64 * 1024)).sum();
    let billed_receives: usize = pages.iter().map(|(body, _)| body.len().div_ceil(64 * 1024)).sum();
    let requests = billed_batches + billed_receives + pages.len();

    figures.push(Figure {
        name: format!("room of {members} through the queue: every member posted, from the send to the last post"),
        value: format!(
            "{} ({} the sender queueing {} pages, then {WORKERS} workers at {SHARE_PER_SECOND} posts/s in all; {throttled} posts refused past the account rate)",
            ms((sender_took + posting_took).as_secs_f64() * 1e6),
            ms(sender_took.as_secs_f64() * 1e6),
            pages.len(),
        ),
        target: None,
    });
    let cpu_per_post = cpu * 1e6 / members as f64;
    let (p99_idle, p99_busy) = (percentile(&direct_idle, 99.0), percentile(&direct_busy, 99.0));
    figures.push(Figure {
        name: format!("room of {members} through the queue: a direct message's send-message time, p99, idle → while the room is posted"),
        value: format!(
            "{} → {} ({} and {} messages, through the same capped endpoint)",
            ms(p99_idle),
            ms(p99_busy),
            direct_idle.len(),
            direct_busy.len()
        ),
        target: Some(Target::at_most(p99_busy, 2.0 * p99_idle, "≤ 2 × idle")),
    });
    // Paced, a worker wakes for nearly every post, so a post costs it more CPU than one of
    // send-message's back-to-back posts. The bound: 500 posts a second (the template's
    // defaults) within the CPU share of its 256 MB (1/6.9 of a vCPU).
    let bound = WORKER_MEMORY_MB / MB_PER_VCPU / 500.0 * 1e6;
    figures.push(Figure {
        name: format!(
            "room of {members} through the queue: worker CPU per post (paced at {} posts/s each)",
            SHARE_PER_SECOND as usize / WORKERS
        ),
        value: format!("{cpu_per_post:.0} µs"),
        target: Some(Target::at_most(cpu_per_post, bound, "≤ 289 µs: 500 posts/s in 256 MB's CPU share")),
    });
    figures.push(Figure {
        name: format!("room of {members} through the queue: worker peak resident memory"),
        value: mb(peak),
        target: Some(Target::at_most(peak as f64, 64e6, "< 64 MB")),
    });
    figures.push(Figure {
        name: format!("room of {members} through the queue: SQS requests per message, billed (64 KB units)"),
        value: format!(
            "{requests}: {} SendMessageBatch ({billed_batches} billed), {} receives ({billed_receives} billed) and {} deletes at batch size 1; {:.1} KB a page",
            batch_sizes.len(),
            pages.len(),
            pages.len(),
            pages.iter().map(|(body, _)| body.len()).sum::<usize>() as f64 / pages.len() as f64 / 1024.0,
        ),
        target: None,
    });
    assert!(pages.iter().all(|(body, _)| body.len() <= SQS_MAX_MESSAGE_BYTES));
    {
        // In the cloud: the template's defaults (10 workers at 5,000 posts/s in all), 256 MB.
        let seconds = members as f64 / f64::from(SHARE_PER_SECOND);
        let lambda = members.div_ceil(FAN_OUT_PAGE) as f64
            * (prices::LAMBDA_REQUEST
                + WORKER_MEMORY_MB / 1024.0 * (FAN_OUT_PAGE as f64 / 500.0) * prices::LAMBDA_GB_SECOND);
        let sqs = requests as f64 * prices::SQS_REQUEST;
        let api_gateway = members as f64 * prices::API_GATEWAY_MESSAGE;
        figures.push(Figure {
            name: format!("room of {members} in the cloud (projection: the template's defaults, 10 workers at 5,000 posts/s)"),
            value: format!(
                "{seconds:.1} s to reach everyone; per message ${:.4}: API Gateway ${api_gateway:.4}, workers ${lambda:.6}, SQS ${sqs:.6}",
                api_gateway + lambda + sqs
            ),
            target: None,
        });
    }
}
