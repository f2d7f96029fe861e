//! Room fan-out: the send-message release binary, warm, delivering one message to every member
//! of a large room through the real @connections client, with the members in dynalite, read a
//! page at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use chat_core::limits::{MAX_CONNECTIONS_PER_USER, MAX_POSTS_IN_FLIGHT};
use chat_core::protocol::RoomId;
use chat_core::routes::Route;
use chat_core::store::{ConnectionStore, SubscriptionStore, UserStore};
use chat_testing::{Dynalite, events};
use futures::{StreamExt, stream};
use serde_json::json;

use crate::cold_start::function_env;
use crate::report::{Figure, Target, mb, ms, percentile};
use crate::runtime_api::{RuntimeApi, Warm};

/// A @connections endpoint that answers 200 to every post and counts them by connection.
pub(crate) struct ConnectionsSink {
    pub(crate) url: String,
    pub(crate) counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConnectionsSink {
    pub(crate) async fn start() -> Self {
        async fn post(
            State(counts): State<Arc<Mutex<HashMap<String, usize>>>>,
            UrlPath(id): UrlPath<String>,
        ) -> &'static str {
            *counts.lock().expect("counts").entry(id).or_default() += 1;
            ""
        }
        let counts = Arc::<Mutex<HashMap<String, usize>>>::default();
        let app =
            axum::Router::new().route("/dev/@connections/{id}", axum::routing::post(post)).with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/dev", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, counts }
    }
}

/// A post from a Lambda function to @connections in the same region, assumed for the largest
/// room one invocation can serve: API Gateway's management API answers in tens of milliseconds.
const CLOUD_POST_LATENCY: Duration = Duration::from_millis(20);

/// The functions' timeout and memory (template.yaml).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
const FUNCTION_MEMORY_MB: f64 = 128.0;

/// Lambda gives a function one full vCPU at 1,769 MB, and CPU in proportion below that.
const MB_PER_VCPU: f64 = 1769.0;

/// One room of `members` connections; `invocations` warm messages to it.
/// `largest` marks the largest room of the run, which is held to the memory target and gives
/// the estimate of the largest room one invocation can serve.
pub async fn measure(dir: &Path, members: usize, invocations: usize, largest: bool, figures: &mut Vec<Figure>) {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(chat_testing::dynalite::TABLE).await;
    let room = RoomId::parse("hall").expect("a valid room id");

    // The members' connections: ids on a @connections endpoint that counts what each receives.
    // (Ten thousand real sockets at both ends would need more than this machine's 20,000 open
    // files; the direct fan-out above runs through real clients.)
    let endpoint = ConnectionsSink::start().await;
    let ids: Vec<String> = (0..members).map(|n| format!("member{n:05}=")).collect();
    let seeding: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.clone(), format!("user-{}", n / MAX_CONNECTIONS_PER_USER)))
        .chain([("L0SM9cOFvHcCIhw=".to_owned(), "1".to_owned())])
        .collect();
    stream::iter(seeding)
        .for_each_concurrent(32, |(id, user)| {
            let (store, room) = (&store, &room);
            async move {
                store.save(&events::connection(&id, &user)).await.expect("seeding dynalite");
                store.subscribe(&id, room).await.expect("seeding dynalite");
            }
        })
        .await;
    // The sender ("1") is a member: a room message needs the user's room entry.
    let sender = chat_core::protocol::UserId::parse("1").expect("a valid user id");
    store.add_room(&sender, &room).await.expect("seeding dynalite");

    let mut event = events::json(Route::SendMessage);
    event["body"] = json!({"action": "sendMessage", "roomId": "hall", "body": "hello, room"}).to_string().into();
    let event = serde_json::to_vec(&event).expect("event");
    let binary = dir.join(chat_testing::deployment::binary_of(Route::SendMessage));
    let env = function_env(&dynalite, &endpoint.url);
    let Warm { times, cpu, peak } = RuntimeApi::start().await.run_warm(&binary, &env, event, invocations).await;

    let counts = endpoint.counts.lock().expect("counts").clone();
    assert_eq!(counts.len(), members, "every member was posted to");
    assert!(counts.values().all(|count| *count == invocations + 1), "every member got every message once");
    assert!(!counts.contains_key("L0SM9cOFvHcCIhw="), "the sender's own connection gets nothing");

    let posts = (members * invocations) as f64;
    let cpu_per_post = cpu * 1e6 / posts;
    let median = percentile(&times, 50.0);
    figures.push(Figure {
        name: format!("room of {members}: one message delivered to every member, per invocation, median"),
        value: format!("{} ({invocations} invocations)", ms(median)),
        target: None,
    });
    figures.push(Figure {
        name: format!("room of {members}: send-message CPU per delivered post"),
        value: format!("{cpu_per_post:.0} µs"),
        target: Some(Target::at_most(cpu_per_post, 50.0, "≤ 50 µs")),
    });
    figures.push(Figure {
        name: format!("room of {members}: send-message peak resident memory"),
        value: mb(peak),
        target: largest.then(|| Target::at_most(peak as f64, 64e6, "< 64 MB")),
    });
    if largest {
        // Two bounds: 32 posts in flight at the assumed latency, and the CPU a 128 MB function
        // has (a fraction of a vCPU) at the measured CPU per post. The smaller one decides.
        let seconds = FUNCTION_TIMEOUT.as_secs_f64();
        let by_latency = MAX_POSTS_IN_FLIGHT as f64 / CLOUD_POST_LATENCY.as_secs_f64() * seconds;
        let by_cpu = FUNCTION_MEMORY_MB / MB_PER_VCPU / (cpu_per_post / 1e6) * seconds;
        figures.push(Figure {
            name: format!(
                "largest room one invocation serves in its {} s timeout ({} ms per post assumed, {MAX_POSTS_IN_FLIGHT} in flight, {FUNCTION_MEMORY_MB} MB of CPU share)",
                FUNCTION_TIMEOUT.as_secs(),
                CLOUD_POST_LATENCY.as_millis()
            ),
            value: format!(
                "about {:.0} members (posting allows {by_latency:.0}; the CPU share {by_cpu:.0})",
                by_latency.min(by_cpu)
            ),
            target: None,
        });
    }
}
