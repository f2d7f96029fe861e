//! Each route's handler, warm: events per second and CPU per event on the in-memory store, and
//! how many DynamoDB requests and @connections posts each event costs, counted against dynalite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use chat_core::messenger::{Endpoint, Messenger};
use chat_core::protocol::{RoomId, UserId};
use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_core::store::{ConnectionStore, MemoryStore, UserStore, subscriptions};
use chat_core::{ApiGatewayWebsocketProxyRequest, PostError};
use chat_testing::calls::DynamoDbCalls;
use chat_testing::{Dynalite, events};
use serde_json::json;

use crate::report::Figure;

/// A messenger that delivers nowhere and counts posts.
#[derive(Default)]
struct CountingMessenger(AtomicUsize);

#[async_trait]
impl Messenger for CountingMessenger {
    async fn post(&self, _: &Endpoint, _: &str, _: &[u8]) -> Result<(), PostError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn send_message(from: &str, to: &str) -> ApiGatewayWebsocketProxyRequest {
    let body = json!({"action": "sendMessage", "destinationUserId": to, "body": "hello there!"}).to_string();
    events::message(Route::SendMessage, from, &body)
}

/// The events of one route's run, prepared before the clock starts.
fn events_for(route: Route, count: usize) -> Vec<ApiGatewayWebsocketProxyRequest> {
    (0..count)
        .map(|n| match route {
            Route::Connect => events::connect(&format!("conn-{n}"), Some(&format!("user-{n}"))),
            Route::Disconnect => events::disconnect(&format!("conn-{n}")),
            Route::Default => events::load(Route::Default),
            Route::SendMessage => send_message("conn-0", "user-1"),
            Route::GetHistory | Route::Sync => {
                events::message(route, "conn-0", &json!({"action": route.key(), "userId": "user-1"}).to_string())
            }
            Route::MarkRead => {
                let body = json!({"action": route.key(), "userId": "user-1", "seq": n + 1}).to_string();
                events::message(route, "conn-0", &body)
            }
            Route::JoinRoom | Route::LeaveRoom => {
                let body = json!({"action": route.key(), "roomId": format!("room-{}", n % 40)}).to_string();
                events::message(route, &format!("conn-{n}"), &body)
            }
        })
        .collect()
}

/// Warm handler cost per route, single-threaded.
pub async fn warm(iterations: usize, figures: &mut Vec<Figure>) {
    for route in
        [Route::Connect, Route::SendMessage, Route::JoinRoom, Route::LeaveRoom, Route::Default, Route::Disconnect]
    {
        let store = MemoryStore::new();
        for n in 0..iterations {
            store.save(&events::connection(&format!("conn-{n}"), &format!("user-{n}"))).await.expect("memory store");
        }
        let messenger = CountingMessenger::default();
        let requests = events_for(route, iterations);
        let (started, cpu) = (Instant::now(), cpu_time::ThreadTime::now());
        for request in &requests {
            let response = routes::handle(route, request, &Services::new(&store).with_messenger(&messenger)).await;
            assert!(response.status() < 500, "{} answered {}", route.key(), response.status());
        }
        let (wall, cpu) = (started.elapsed(), cpu.elapsed().as_nanos());
        figures.push(Figure {
            name: format!("{} handler", route.key()),
            value: format!(
                "{:.0} events/s, {:.1} µs CPU/event",
                iterations as f64 / wall.as_secs_f64(),
                cpu as f64 / 1e3 / iterations as f64
            ),
            target: None,
        });
    }
}

/// The calls taken from `record`, counted by operation: `1 GetItem + 2 Query`.
fn counted(record: &DynamoDbCalls) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for call in record.take() {
        *counts.entry(call.operation).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(operation, count)| format!("{count} {operation}")).collect::<Vec<_>>().join(" + ")
}

/// DynamoDB requests and posts per event, against dynalite.
pub async fn calls(figures: &mut Vec<Figure>) {
    let dynalite = Dynalite::start();
    dynalite.create_table(chat_testing::dynalite::TABLE).await;
    let counter = DynamoDbCalls::default();
    let store = chat_testing::dynalite::store_with(counter.client(&dynalite.client()));
    for (id, user) in
        [("alice-1", "alice"), ("bob-1", "bob"), ("carol-1", "carol"), ("carol-2", "carol"), ("carol-3", "carol")]
    {
        store.save(&events::connection(id, user)).await.expect("seeding dynalite");
    }
    let lobby = RoomId::parse("lobby").expect("a valid room id");
    for user in ["bob", "carol"] {
        let user = UserId::parse(user).expect("a valid user id");
        store.add_room(&user, &lobby).await.expect("seeding dynalite");
        subscriptions::settle_room(&store, &user, &lobby, events::now_ms()).await.expect("seeding dynalite");
    }
    counted(&counter);

    let room = |action: &str, from: &str| {
        let body = json!({"action": action, "roomId": "lobby", "body": "hello, room"}).to_string();
        let route = Route::from_key(action).expect("a route key");
        (route, events::message(route, from, &body))
    };
    let (join, join_event) = room("joinRoom", "alice-1");
    let (to_room, to_room_event) = room("sendMessage", "alice-1");
    let (leave, leave_event) = room("leaveRoom", "carol-2");
    let ask = |route: Route, from: &str, body: serde_json::Value| events::message(route, from, &body.to_string());
    let with_id = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "hi", "clientRequestId": "r1"});
    let cases: [(&str, Route, ApiGatewayWebsocketProxyRequest); 15] = [
        ("connect", Route::Connect, events::connect("dave-1", Some("dave"))),
        ("sendMessage to a user with 1 connection", Route::SendMessage, send_message("alice-1", "bob")),
        ("sendMessage to a user with 3 connections", Route::SendMessage, send_message("alice-1", "carol")),
        ("sendMessage with a clientRequestId", Route::SendMessage, ask(Route::SendMessage, "alice-1", with_id.clone())),
        ("repeat of that sendMessage", Route::SendMessage, ask(Route::SendMessage, "alice-1", with_id)),
        ("send (default route)", Route::Default, events::message(Route::Default, "alice-1", r#"{"action":"send"}"#)),
        ("disconnect", Route::Disconnect, events::disconnect("dave-1")),
        ("joinRoom of a user with 1 connection", join, join_event),
        ("sendMessage to a room of 5 connections", to_room, to_room_event),
        (
            "getHistory",
            Route::GetHistory,
            ask(Route::GetHistory, "bob-1", json!({"action": "getHistory", "userId": "alice"})),
        ),
        ("sync of a user with 2 conversations", Route::Sync, ask(Route::Sync, "bob-1", json!({"action": "sync"}))),
        (
            "markRead of a direct conversation",
            Route::MarkRead,
            ask(Route::MarkRead, "bob-1", json!({"action": "markRead", "userId": "alice", "seq": 2})),
        ),
        ("connect of a user in 1 room", Route::Connect, events::connect("bob-2", Some("bob"))),
        ("leaveRoom of a user with 3 connections", leave, leave_event),
        ("disconnect of a connection in 1 room", Route::Disconnect, events::disconnect("bob-2")),
    ];
    for (name, route, request) in cases {
        let messenger = CountingMessenger::default();
        let response = routes::handle(route, &request, &Services::new(&store).with_messenger(&messenger)).await;
        assert_eq!(response.status(), 200, "{name}");
        let posts = messenger.0.load(Ordering::Relaxed);
        figures.push(Figure {
            name: format!("calls per {name}"),
            value: format!("DynamoDB: {}; @connections posts: {posts}", counted(&counter)),
            target: None,
        });
    }
}
