//! Room fan-out: the send-message release binary, warm, delivering one message to every member
//! of a large room through the real @connections client to real WebSocket clients, with the
//! members in dynalite, read a page at a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_core::limits::{MAX_CONNECTIONS_PER_USER, MAX_POSTS_IN_FLIGHT};
use chat_core::protocol::{RoomId, UserId};
use chat_core::routes::Route;
use chat_core::store::{ConnectionStore, RoomStore};
use chat_local_gateway::Running;
use chat_testing::{Dynalite, events};
use futures::{StreamExt, stream};
use serde_json::json;

use crate::cold_start::function_env;
use crate::gateway_load::connect_client;
use crate::report::{Figure, Target, cpu_seconds, mb, ms, percentile, resident};
use crate::runtime_api::RuntimeApi;

/// A post from a Lambda function to @connections in the same region, assumed for the largest
/// room one invocation can serve: API Gateway's management API answers in tens of milliseconds.
const CLOUD_POST_LATENCY: Duration = Duration::from_millis(20);

/// The functions' timeout (template.yaml), and the share of it a room message may use.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// One room of `members` connections; `invocations` warm messages to it.
/// `largest` marks the largest room of the run, which is held to the memory target and gives
/// the estimate of the largest room one invocation can serve.
pub async fn measure(
    dir: &Path,
    members: usize,
    invocations: usize,
    largest: bool,
    gateway: &Running,
    figures: &mut Vec<Figure>,
) {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table("chat-connections").await;
    let room = RoomId::parse("hall").expect("a valid room id");

    // The members: real clients of the gateway, 20 per user, each counting what reaches it.
    let received = Arc::new(AtomicUsize::new(0));
    let users: Vec<String> =
        (0..members.div_ceil(MAX_CONNECTIONS_PER_USER)).map(|n| format!("room{members}-member-{n}")).collect();
    let sockets: Vec<_> = stream::iter(0..members)
        .map(|n| {
            let user = users[n / MAX_CONNECTIONS_PER_USER].clone();
            let url = gateway.url();
            async move { connect_client(&url, &user).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for socket in sockets {
        let (_, mut reader) = socket.split();
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = reader.next().await {
                if frame.is_text() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let in_memory = gateway.store().expect("in-process");
    let mut ids = Vec::with_capacity(members);
    for user in &users {
        ids.extend(in_memory.connections_of(&UserId::parse(user).expect("valid")).await.expect("memory store"));
    }
    assert_eq!(ids.len(), members, "every member is connected");
    let seeding: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.clone(), users[n / MAX_CONNECTIONS_PER_USER].clone()))
        .chain([("L0SM9cOFvHcCIhw=".to_owned(), "1".to_owned())])
        .collect();
    stream::iter(seeding)
        .for_each_concurrent(32, |(id, user)| {
            let (store, room) = (&store, &room);
            async move {
                store.save(&events::connection(&id, &user)).await.expect("seeding dynalite");
                store.join(&id, room).await.expect("seeding dynalite");
            }
        })
        .await;

    let mut event = events::json(Route::SendMessage);
    event["body"] = json!({"action": "sendMessage", "roomId": "hall", "body": "hello, room"}).to_string().into();
    let event = serde_json::to_vec(&event).expect("event");
    let binary = dir.join(Route::SendMessage.binary());
    let mut api = RuntimeApi::start().await;
    api.queue(std::iter::repeat_n(event, invocations + 1));
    let mut child = api.spawn(&binary, &function_env(&dynalite, gateway));
    let pid = child.id().expect("the function runs");
    api.next_request(&binary).await;
    api.answer(&binary).await;
    let cpu = cpu_seconds(pid);
    let mut times = Vec::with_capacity(invocations);
    for _ in 0..invocations {
        let asked = api.next_request(&binary).await;
        times.push(api.answer(&binary).await.duration_since(asked).as_secs_f64() * 1e6);
    }
    let cpu = cpu_seconds(pid) - cpu;
    api.next_request(&binary).await;
    let peak = resident(pid, "VmHWM:").unwrap_or(0);
    let _ = child.kill().await;

    let expected = members * (invocations + 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(received.load(Ordering::Relaxed), expected, "every member receives every message");

    times.sort_by(f64::total_cmp);
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
        // At the assumed post latency, 32 posts in flight deliver 32 / latency posts a second.
        let by_latency = MAX_POSTS_IN_FLIGHT as f64 / CLOUD_POST_LATENCY.as_secs_f64() * FUNCTION_TIMEOUT.as_secs_f64();
        figures.push(Figure {
            name: format!(
                "largest room one invocation serves in its {} s timeout, at {} ms per post and {MAX_POSTS_IN_FLIGHT} in flight",
                FUNCTION_TIMEOUT.as_secs(),
                CLOUD_POST_LATENCY.as_millis()
            ),
            value: format!("about {:.0} members (posting alone; reads and CPU come on top)", by_latency),
            target: None,
        });
    }
}
