//! Fan-out: the send-message release binary, warm, delivering to every connection of one user
//! through the real @connections client to real WebSocket clients, with its records in dynalite.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_core::limits::MAX_CONNECTIONS_PER_USER;
use chat_core::protocol::UserId;
use chat_core::routes::Route;
use chat_core::store::ConnectionStore;
use chat_local_gateway::Running;
use chat_testing::{Dynalite, events};
use futures::StreamExt;
use serde_json::json;

use crate::cold_start::function_env;
use crate::gateway_load::connect_client;
use crate::report::{Figure, mb, ms, percentile};
use crate::runtime_api::{RuntimeApi, Warm};

/// `invocations` warm sendMessage events to a user with the most connections a user may hold.
pub async fn measure(dir: &Path, invocations: usize, gateway: &Running, figures: &mut Vec<Figure>) {
    let connections = MAX_CONNECTIONS_PER_USER;
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(chat_testing::dynalite::TABLE).await;

    // The recipient's tabs: real clients of the gateway, each counting what reaches it.
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..connections {
        let (_, mut stream) = connect_client(&gateway.url(), "fan").await.split();
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let text = frame.into_text().unwrap_or_default();
                assert!(
                    text.as_str().starts_with(r#"{"senderId":"1","body":"hello there!","#),
                    "an unexpected frame: {text}"
                );
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let user = UserId::parse("fan").expect("a valid user id");
    let ids = gateway
        .store()
        .expect("in-process")
        .connections_of(&user, chat_local_gateway::events::now_ms())
        .await
        .expect("memory store");
    assert_eq!(ids.len(), connections, "every tab of the recipient is connected");
    for id in &ids {
        store.save(&events::connection(id, "fan")).await.expect("seeding dynalite");
    }
    store.save(&events::connection("L0SM9cOFvHcCIhw=", "1")).await.expect("seeding dynalite");

    let mut event = events::json(Route::SendMessage);
    event["body"] =
        json!({"action": "sendMessage", "destinationUserId": "fan", "body": "hello there!"}).to_string().into();
    let event = serde_json::to_vec(&event).expect("event");
    let binary = dir.join(chat_testing::deployment::binary_of(Route::SendMessage));
    let env = function_env(&dynalite, &gateway.management_url());
    let Warm { times, cpu, peak } = RuntimeApi::start().await.run_warm(&binary, &env, event, invocations).await;

    let expected = connections * (invocations + 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(received.load(Ordering::Relaxed), expected, "every tab receives every message");
    readers.iter().for_each(tokio::task::JoinHandle::abort);

    let posts = (connections * invocations) as f64;
    figures.push(Figure {
        name: format!("sendMessage to a user with {connections} connections, per invocation, median / p90"),
        value: format!(
            "{} / {} ({invocations} invocations)",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 90.0))
        ),
        target: None,
    });
    figures.push(Figure {
        name: "send-message CPU per delivered post (reads included)".into(),
        value: format!("{:.0} µs", cpu * 1e6 / posts),
        target: None,
    });
    figures.push(Figure { name: "send-message peak resident memory".into(), value: mb(peak), target: None });
}
