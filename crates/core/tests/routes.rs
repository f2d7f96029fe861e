//! The route handlers, driven by the sample events in `events/`, on the in-memory store with a
//! messenger that records what it sends.

use chat_core::protocol::UserId;
use chat_core::routes::{self, Route};
use chat_core::store::{ConnectionStore, MemoryStore};
use chat_testing::{RecordingMessenger, dynalite, events};
use serde_json::{Value, json};

const ALICE_TAB: &str = "L0SM9cOFvHcCIhw=";

struct Chat {
    store: MemoryStore,
    messenger: RecordingMessenger,
}

impl Chat {
    async fn with(connections: &[(&str, &str)]) -> Self {
        let chat = Chat { store: MemoryStore::new(), messenger: RecordingMessenger::new() };
        for (connection_id, user) in connections {
            let response = routes::connect(&events::connect(connection_id, Some(user)), &chat.store).await;
            assert_eq!(response.status_code, 200, "connecting {connection_id} as {user}");
        }
        chat
    }

    async fn send(&self, from: &str, frame: Value) -> i64 {
        let event = events::message(Route::SendMessage, from, &frame.to_string());
        routes::send_message(&event, &self.store, &self.messenger).await.status_code
    }

    async fn default(&self, from: &str, body: &str) -> i64 {
        routes::default(&events::message(Route::Default, from, body), &self.messenger).await.status_code
    }

    fn error_code_to(&self, connection_id: &str) -> Value {
        let frames = self.messenger.frames_to(connection_id);
        assert_eq!(frames.len(), 1, "exactly one frame to {connection_id}, got {frames:?}");
        frames[0]["error"].clone()
    }

    async fn users_connections(&self, user: &str) -> Vec<String> {
        let mut ids = self.store.connections_of(&UserId::parse(user).unwrap()).await.unwrap();
        ids.sort();
        ids
    }
}

fn message_to(user: &str, body: &str) -> Value {
    json!({"action": "sendMessage", "destinationUserId": user, "body": body})
}

#[tokio::test]
async fn the_sample_connect_event_records_user_1() {
    let store = MemoryStore::new();

    let response = routes::connect(&events::load(Route::Connect), &store).await;

    assert_eq!(response.status_code, 200);
    let record = store.find(ALICE_TAB).await.unwrap().expect("a record");
    assert_eq!(record.user_id.as_str(), "1");
    let connected_at = events::load(Route::Connect).request_context.connected_at;
    assert_eq!(record.connected_at, connected_at);
    assert!(record.expires_at >= connected_at / 1000 + 2 * 60 * 60, "the TTL outlives the 2-hour maximum");
}

#[tokio::test]
async fn connecting_without_a_valid_user_id_is_refused_and_stores_nothing() {
    let store = MemoryStore::new();

    for user in [None, Some(""), Some("bob smith"), Some(&*"x".repeat(129))] {
        let response = routes::connect(&events::connect("c1", user), &store).await;
        assert_eq!(response.status_code, 400, "userId {user:?}");
    }

    assert!(store.is_empty());
}

#[tokio::test]
async fn the_sample_send_message_event_delivers_hello_there_to_user_2() {
    let chat = Chat::with(&[(ALICE_TAB, "1"), ("bob-tab", "2")]).await;

    let response = routes::send_message(&events::load(Route::SendMessage), &chat.store, &chat.messenger).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(chat.messenger.frames_to("bob-tab"), vec![json!({"senderId": "1", "body": "hello there!"})]);
    assert!(chat.messenger.frames_to(ALICE_TAB).is_empty(), "the sender gets no echo");
    let post = &chat.messenger.posts()[0];
    assert_eq!((post.endpoint.api_id.as_str(), post.endpoint.stage.as_str()), ("a1b2c3d4e5", "dev"));
}

#[tokio::test]
async fn sending_to_a_user_with_two_tabs_reaches_both_and_not_the_senders_other_tab() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice"), ("bob-1", "bob"), ("bob-2", "bob")]).await;

    let status = chat.send("alice-1", message_to("bob", "hi")).await;

    assert_eq!(status, 200);
    for tab in ["bob-1", "bob-2"] {
        assert_eq!(chat.messenger.frames_to(tab), vec![json!({"senderId": "alice", "body": "hi"})]);
    }
    assert!(chat.messenger.frames_to("alice-2").is_empty());
}

#[tokio::test]
async fn addressing_yourself_reaches_every_one_of_your_connections() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice")]).await;

    chat.send("alice-1", message_to("alice", "note to self")).await;

    assert_eq!(chat.messenger.posts().len(), 2);
    assert_eq!(chat.messenger.frames_to("alice-2"), vec![json!({"senderId": "alice", "body": "note to self"})]);
}

#[tokio::test]
async fn the_sender_id_comes_from_the_store_never_from_the_frame() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    let mut forged = message_to("bob", "trust me");
    forged["senderId"] = json!("mallory");

    chat.send("alice-1", forged).await;

    assert_eq!(chat.messenger.frames_to("bob-1"), vec![json!({"senderId": "alice", "body": "trust me"})]);
}

#[tokio::test]
async fn sending_to_an_offline_user_tells_the_sender_recipient_not_connected() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;

    let status = chat.send("alice-1", message_to("bob", "anyone?")).await;

    assert_eq!(status, 404);
    assert_eq!(chat.error_code_to("alice-1"), "recipientNotConnected");
}

#[tokio::test]
async fn each_invalid_frame_gets_its_error_code_and_reaches_nobody_else() {
    let cases: [(&str, &str, Option<&str>); 9] = [
        ("not json", "invalidJson", None),
        ("[1,2]", "invalidJson", None),
        (r#"{"action":"sendMessage","body":"hi"}"#, "missingField", Some("destinationUserId")),
        (r#"{"action":"sendMessage","destinationUserId":"bob"}"#, "missingField", Some("body")),
        (r#"{"action":"sendMessage","destinationUserId":7,"body":"hi"}"#, "invalidField", Some("destinationUserId")),
        (r#"{"action":"sendMessage","destinationUserId":"","body":"hi"}"#, "invalidField", Some("destinationUserId")),
        (
            r#"{"action":"sendMessage","destinationUserId":"bob smith","body":"hi"}"#,
            "invalidField",
            Some("destinationUserId"),
        ),
        (r#"{"action":"sendMessage","destinationUserId":"bob","body":""}"#, "invalidField", Some("body")),
        (r#"{"action":"sendMessage","destinationUserId":"bob","body":{"x":1}}"#, "invalidField", Some("body")),
    ];
    for (body, code, field) in cases {
        let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
        let event = events::message(Route::SendMessage, "alice-1", body);

        let response = routes::send_message(&event, &chat.store, &chat.messenger).await;

        assert_eq!(response.status_code, 400, "{body}");
        let frames = chat.messenger.frames_to("alice-1");
        assert_eq!(frames.len(), 1, "{body}");
        assert_eq!(frames[0]["error"], code, "{body}");
        if let Some(field) = field {
            assert!(frames[0]["message"].as_str().unwrap().contains(field), "{body}: {}", frames[0]["message"]);
        }
        assert!(chat.messenger.frames_to("bob-1").is_empty(), "{body} reached bob");
        assert_eq!(chat.store.len(), 2, "{body} changed the store");
    }
}

#[tokio::test]
async fn a_body_that_would_push_the_delivered_frame_past_128_kb_is_refused() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    let overhead = r#"{"senderId":"alice","body":""}"#.len();
    let largest = "x".repeat(128 * 1024 - overhead);

    assert_eq!(chat.send("alice-1", message_to("bob", &largest)).await, 200);
    assert_eq!(chat.send("alice-1", message_to("bob", &format!("{largest}x"))).await, 413);

    assert_eq!(chat.messenger.frames_to("bob-1").len(), 1, "only the frame that fits was delivered");
    assert_eq!(chat.error_code_to("alice-1"), "bodyTooLarge");
}

#[tokio::test]
async fn a_gone_recipient_connection_loses_its_record_and_the_others_still_receive() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob"), ("bob-2", "bob"), ("bob-3", "bob")]).await;
    chat.messenger.mark_gone("bob-2");

    let status = chat.send("alice-1", message_to("bob", "still there?")).await;

    assert_eq!(status, 200);
    for tab in ["bob-1", "bob-3"] {
        assert_eq!(chat.messenger.frames_to(tab).len(), 1, "{tab}");
    }
    assert_eq!(chat.users_connections("bob").await, vec!["bob-1", "bob-3"]);
    assert!(chat.store.find("alice-1").await.unwrap().is_some(), "the sender's record stays");
    assert!(chat.messenger.frames_to("alice-1").is_empty());
}

#[tokio::test]
async fn when_every_recipient_connection_is_gone_the_sender_hears_recipient_not_connected() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.messenger.mark_gone("bob-1");

    let status = chat.send("alice-1", message_to("bob", "hello?")).await;

    assert_eq!(status, 404);
    assert_eq!(chat.error_code_to("alice-1"), "recipientNotConnected");
    assert!(chat.users_connections("bob").await.is_empty());
}

#[tokio::test]
async fn a_connection_without_a_record_is_told_to_reconnect() {
    let chat = Chat::with(&[("bob-1", "bob")]).await;

    let status = chat.send("stranger", message_to("bob", "hi")).await;

    assert_eq!(status, 403);
    assert_eq!(chat.error_code_to("stranger"), "unknownConnection");
    assert!(chat.messenger.frames_to("bob-1").is_empty());
}

#[tokio::test]
async fn when_dynamodb_is_unreachable_the_sender_hears_unavailable_and_the_function_returns_500() {
    let store = dynalite::unreachable_store();
    let messenger = RecordingMessenger::new();

    let response = routes::send_message(&events::load(Route::SendMessage), &store, &messenger).await;

    assert_eq!(response.status_code, 500);
    let frames = messenger.frames_to(ALICE_TAB);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["error"], "unavailable");
    assert_eq!(messenger.posts().len(), 1, "nothing else was sent");
}

#[tokio::test]
async fn when_dynamodb_is_unreachable_connect_and_disconnect_return_500() {
    let store = dynalite::unreachable_store();

    assert_eq!(routes::connect(&events::load(Route::Connect), &store).await.status_code, 500);
    assert_eq!(routes::disconnect(&events::load(Route::Disconnect), &store).await.status_code, 500);
}

#[tokio::test]
async fn the_sample_disconnect_event_forgets_the_connection() {
    let chat = Chat::with(&[(ALICE_TAB, "1"), ("other-tab", "1")]).await;

    let response = routes::disconnect(&events::load(Route::Disconnect), &chat.store).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(chat.users_connections("1").await, vec!["other-tab"]);
}

#[tokio::test]
async fn the_sample_default_event_answers_pong() {
    let messenger = RecordingMessenger::new();

    let response = routes::default(&events::load(Route::Default), &messenger).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(messenger.frames_to(ALICE_TAB), vec![json!({"message": "🏓 pong"})]);
}

#[tokio::test]
async fn send_with_a_message_echoes_it_verbatim() {
    let chat = Chat::with(&[]).await;

    chat.default("c1", r#"{"action":"send","message":"psst"}"#).await;

    assert_eq!(chat.messenger.frames_to("c1"), vec![json!({"message": "psst"})]);
}

#[tokio::test]
async fn anything_else_at_default_answers_unknown_action_with_the_list_of_actions() {
    for body in ["hello", "{}", r#"{"action":"dance"}"#, r#"{"action":"SendMessage"}"#] {
        let chat = Chat::with(&[]).await;

        let status = chat.default("c1", body).await;

        assert_eq!(status, 400, "{body}");
        let frames = chat.messenger.frames_to("c1");
        assert_eq!(frames.len(), 1, "{body}");
        assert_eq!(frames[0]["error"], "unknownAction", "{body}");
        assert_eq!(frames[0]["actions"], json!(["sendMessage", "send"]), "{body}");
    }
}

#[tokio::test]
async fn send_with_a_non_string_message_is_an_invalid_field() {
    let chat = Chat::with(&[]).await;

    chat.default("c1", r#"{"action":"send","message":42}"#).await;

    assert_eq!(chat.error_code_to("c1"), "invalidField");
}

#[tokio::test]
async fn every_route_key_parses_back_to_its_route() {
    for route in Route::ALL {
        assert_eq!(Route::from_key(route.key()), Some(route));
        assert_eq!(Route::from_binary(route.binary()), Some(route));
        assert_eq!(events::load(route).request_context.route_key.as_deref(), Some(route.key()));
    }
}
