//! The route handlers, driven by the sample events in `events/`, on the in-memory store with a
//! messenger that records what it sends.

use chat_core::identity::Mode;
use chat_core::routes::Services;
use std::time::{Duration, Instant};

use chat_core::limits::{BACKEND_CALL_TIMEOUT, MAX_CONNECTIONS_PER_USER, MAX_POSTS_IN_FLIGHT};
use chat_core::messenger::Endpoint;
use chat_core::metrics::Metrics;
use chat_core::protocol::Answer;
use chat_core::protocol::ErrorCode;
use chat_core::routes::default::Echo;
use chat_core::routes::{self, Caller, Failure, Reply, Request, Route};
use chat_core::store::{ConnectionStore, Conversation, Cursor, MemoryStore, MessageStore};
use chat_testing::faults::{Stalled, Throttling};
use chat_testing::recording::throttled;
use chat_testing::{Chat, RecordingMessenger, dynalite, events};
use serde_json::{Value, json};

const ALICE_TAB: &str = "L0SM9cOFvHcCIhw=";

fn message_to(user: &str, body: &str) -> Value {
    json!({"action": "sendMessage", "destinationUserId": user, "body": body})
}

#[tokio::test]
async fn the_sample_connect_event_records_user_1() {
    let store = MemoryStore::new();

    let response =
        routes::handle(Route::Connect, &events::load(Route::Connect), &Services::new(&store).with_mode(Mode::Demo))
            .await;

    assert_eq!(response.status(), 200);
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
        let response =
            routes::handle(Route::Connect, &events::connect("c1", user), &Services::new(&store).with_mode(Mode::Demo))
                .await;
        assert_eq!(response.status(), 400, "userId {user:?}");
    }

    assert!(store.is_empty());
}

#[tokio::test]
async fn the_sample_send_message_event_delivers_hello_there_to_user_2() {
    let chat = Chat::with(&[(ALICE_TAB, "1"), ("bob-tab", "2")]).await;

    let response = routes::handle(
        Route::SendMessage,
        &events::load(Route::SendMessage),
        &Services::new(&chat.store).with_messenger(&chat.messenger),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        chat.messenger.messages_to("bob-tab"),
        vec![json!({"senderId": "1", "body": "hello there!", "destinationUserId": "2"})]
    );
    assert!(chat.messenger.frames_to(ALICE_TAB).is_empty(), "the sender gets no echo");
    let post = &chat.messenger.posts()[0];
    assert_eq!((post.endpoint.api_id.as_str(), post.endpoint.stage.as_str()), ("a1b2c3d4e5", "dev"));
}

#[tokio::test]
async fn sending_to_a_user_with_two_tabs_reaches_both_and_the_senders_other_tab_but_not_the_sending_one() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice"), ("bob-1", "bob"), ("bob-2", "bob")]).await;

    let status = chat.send("alice-1", message_to("bob", "hi")).await;

    assert_eq!(status, 200);
    for tab in ["bob-1", "bob-2", "alice-2"] {
        assert_eq!(
            chat.messenger.messages_to(tab),
            vec![json!({"senderId": "alice", "body": "hi", "destinationUserId": "bob"})],
            "{tab}"
        );
    }
    assert!(chat.messenger.frames_to("alice-1").is_empty(), "the sending connection gets no echo");
    let seqs: Vec<Value> = chat.messenger.posts().iter().map(|post| post.frame["seq"].clone()).collect();
    assert_eq!(seqs, [json!(1), json!(1), json!(1)], "one stored message, seq 1, on every connection");
}

#[tokio::test]
async fn a_note_to_yourself_is_stored_and_reaches_your_other_connections() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice")]).await;

    chat.send("alice-1", message_to("alice", "note to self")).await;

    assert_eq!(chat.messenger.posts().len(), 1);
    assert_eq!(
        chat.messenger.messages_to("alice-2"),
        vec![json!({"senderId": "alice", "body": "note to self", "destinationUserId": "alice"})]
    );
}

#[tokio::test]
async fn the_sender_id_comes_from_the_store_never_from_the_frame() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    let mut forged = message_to("bob", "trust me");
    forged["senderId"] = json!("mallory");

    chat.send("alice-1", forged).await;

    assert_eq!(
        chat.messenger.messages_to("bob-1"),
        vec![json!({"senderId": "alice", "body": "trust me", "destinationUserId": "bob"})]
    );
}

#[tokio::test]
async fn a_message_to_an_offline_user_is_stored_for_them_not_refused() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;

    let status = chat.send("alice-1", message_to("bob", "anyone?")).await;

    assert_eq!(status, 200);
    assert!(chat.messenger.posts().is_empty(), "no one to deliver to, and no error to the sender");
    let bob = chat_core::protocol::UserId::parse("bob").unwrap();
    let alice = chat_core::protocol::UserId::parse("alice").unwrap();
    let page = chat.store.history(&Conversation::direct(&bob, &alice), Cursor::Newest, 50, 0).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!((page.messages[0].seq, page.messages[0].body.as_str()), (1, "anyone?"));
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

        let response =
            routes::handle(Route::SendMessage, &event, &Services::new(&chat.store).with_messenger(&chat.messenger))
                .await;

        assert_eq!(response.status(), 400, "{body}");
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
    // The largest body is the one whose page of history, holding it alone with the largest
    // seq and time, still fits 128 KB: so any page can hold one message.
    let page = r#"{"type":"history","userId":"alice","messages":[{"senderId":"alice","body":"","seq":18446744073709551615,"sentAt":9223372036854775807}],"hasMore":true,"oldestSeq":18446744073709551615}"#;
    let largest = "x".repeat(128 * 1024 - page.len());

    assert_eq!(chat.send("alice-1", message_to("bob", &largest)).await, 200);
    assert_eq!(chat.send("alice-1", message_to("bob", &format!("{largest}x"))).await, 413);

    assert_eq!(chat.messenger.frames_to("bob-1").len(), 1, "only the frame that fits was delivered");
    assert_eq!(chat.error_code_to("alice-1"), "bodyTooLarge");
}

#[tokio::test]
async fn a_gone_recipient_connection_loses_its_record_and_the_others_still_receive() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob"), ("bob-2", "bob"), ("bob-3", "bob")]).await;
    chat.messenger.mark_gone("bob-2");

    let handled = chat.send_after("alice-1", message_to("bob", "still there?"), 60).await;

    assert_eq!(handled.status(), 200);
    assert_eq!((handled.metrics.messages_delivered, handled.metrics.connections_gone), (2, 1));
    for tab in ["bob-1", "bob-3"] {
        assert_eq!(chat.messenger.frames_to(tab).len(), 1, "{tab}");
    }
    assert_eq!(chat.users_connections("bob").await, vec!["bob-1", "bob-3"]);
    assert!(chat.store.find("alice-1").await.unwrap().is_some(), "the sender's record stays");
    assert!(chat.messenger.frames_to("alice-1").is_empty());
}

#[tokio::test]
async fn when_every_recipient_connection_is_gone_the_message_stays_stored_and_the_sender_hears_nothing() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.messenger.mark_gone("bob-1");

    let status = chat.send_after("alice-1", message_to("bob", "hello?"), 60).await.status();

    assert_eq!(status, 200);
    assert!(chat.messenger.frames_to("alice-1").is_empty());
    assert!(chat.users_connections("bob").await.is_empty());
}

#[tokio::test]
async fn a_connection_that_answers_gone_in_its_first_seconds_keeps_its_record() {
    // The race: bob's $connect has returned and written his record, but API Gateway has not yet
    // completed his handshake, so a post to him answers 410 for a moment.
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.messenger.mark_gone("bob-1");

    let during_handshake = chat.send_after("alice-1", message_to("bob", "too early"), 5).await;
    chat.messenger.heal("bob-1");
    let after_handshake = chat.send_after("alice-1", message_to("bob", "now?"), 6).await;
    let bobs_own = chat.send_after("bob-1", message_to("alice", "here"), 7).await;

    assert_eq!(during_handshake.metrics.connections_gone, 1);
    assert_eq!(chat.users_connections("bob").await, vec!["bob-1"], "the record survived the 410");
    assert_eq!(after_handshake.status(), 200);
    assert_eq!(
        chat.messenger.messages_to("bob-1"),
        vec![json!({"senderId": "alice", "body": "now?", "destinationUserId": "bob"})]
    );
    assert_eq!(bobs_own.status(), 200, "bob's own sends still work");
}

#[tokio::test]
async fn a_gone_connection_exactly_ten_seconds_old_loses_its_record() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.messenger.mark_gone("bob-1");

    chat.send_after("alice-1", message_to("bob", "9 s"), 9).await;
    let kept = chat.users_connections("bob").await;
    chat.send_after("alice-1", message_to("bob", "10 s"), 10).await;

    assert_eq!(kept, vec!["bob-1"]);
    assert!(chat.users_connections("bob").await.is_empty());
}

#[tokio::test]
async fn a_user_at_the_connection_limit_is_refused_with_429_and_nothing_is_stored() {
    let tabs: Vec<String> = (0..MAX_CONNECTIONS_PER_USER).map(|n| format!("alice-{n}")).collect();
    let chat = Chat::with(&tabs.iter().map(|tab| (tab.as_str(), "alice")).collect::<Vec<_>>()).await;

    let refused = routes::handle(
        Route::Connect,
        &events::connect("alice-one-too-many", Some("alice")),
        &Services::new(&chat.store).with_mode(Mode::Demo),
    )
    .await;
    let bob = routes::handle(
        Route::Connect,
        &events::connect("bob-1", Some("bob")),
        &Services::new(&chat.store).with_mode(Mode::Demo),
    )
    .await;

    assert_eq!(refused.status(), 429);
    assert_eq!(refused.metrics.refused, Some(ErrorCode::TooManyConnections));
    assert_eq!(chat.users_connections("alice").await.len(), MAX_CONNECTIONS_PER_USER);
    assert!(chat.store.find("alice-one-too-many").await.unwrap().is_none());
    assert_eq!(bob.status(), 200, "other users are not affected");
}

#[tokio::test]
async fn deliveries_run_at_most_the_fan_out_limit_at_once() {
    let store = MemoryStore::new();
    let messenger = RecordingMessenger::with_latency(Duration::from_millis(5));
    store.save(&events::connection("alice-1", "alice")).await.unwrap();
    // More connections than a user may open, written directly: the bound must hold anyway.
    for n in 0..3 * MAX_POSTS_IN_FLIGHT {
        store.save(&events::connection(&format!("bob-{n}"), "bob")).await.unwrap();
    }
    let event = events::message(Route::SendMessage, "alice-1", &message_to("bob", "hi all").to_string());

    let handled = routes::handle(Route::SendMessage, &event, &Services::new(&store).with_messenger(&messenger)).await;

    assert_eq!(handled.status(), 200);
    assert_eq!(handled.metrics.messages_delivered, 3 * MAX_POSTS_IN_FLIGHT as u64);
    assert_eq!(messenger.most_in_flight(), MAX_POSTS_IN_FLIGHT);
}

#[tokio::test]
async fn a_post_that_fails_otherwise_than_gone_is_counted_and_the_message_waits_in_history() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob"), ("bob-2", "bob"), ("bob-3", "bob")]).await;
    chat.messenger.fail("bob-2", throttled);

    let handled = chat.send_after("alice-1", message_to("bob", "partly"), 60).await;

    assert_eq!(handled.status(), 200, "a stored message is not an error to its sender");
    assert!(chat.messenger.frames_to("alice-1").is_empty());
    assert_eq!(chat.users_connections("bob").await.len(), 3, "a throttled connection keeps its record");
    assert_eq!((handled.metrics.messages_delivered, handled.metrics.posts_failed), (2, 1));
}

#[tokio::test]
async fn an_acknowledgement_that_cannot_be_posted_is_counted_beside_the_deliveries() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob"), ("bob-2", "bob")]).await;
    chat.messenger.fail("alice-1", throttled);
    let frame = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "hi", "clientRequestId": "r1"});

    let handled = chat.send_after("alice-1", frame, 60).await;

    assert_eq!(handled.status(), 200);
    assert_eq!(chat.messenger.messages_to("bob-1").len(), 1);
    let metrics = &handled.metrics;
    assert_eq!((metrics.messages_delivered, metrics.posts_failed, metrics.posts_throttled), (2, 1, 1));
}

#[tokio::test]
async fn when_dynamodb_throttles_past_the_retries_the_sender_hears_unavailable() {
    let dynamodb = Throttling::start().await;
    let messenger = RecordingMessenger::new();

    let handled = routes::handle(
        Route::SendMessage,
        &events::load(Route::SendMessage),
        &Services::new(&dynamodb.store()).with_messenger(&messenger),
    )
    .await;

    assert_eq!(handled.status(), 500);
    assert_eq!(messenger.frames_to(ALICE_TAB)[0]["error"], "unavailable");
    assert_eq!(handled.metrics.backend_failures, 1);
    // One call (the sending connection's record), tried again at least once within its 2 s limit.
    assert!(dynamodb.requests() >= 2, "the SDK retried the throttled call ({} requests)", dynamodb.requests());
}

#[tokio::test]
async fn a_dynamodb_that_never_answers_gives_unavailable_within_the_call_limit() {
    let dynamodb = Stalled::start().await;
    let messenger = RecordingMessenger::new();
    let started = Instant::now();

    let handled = routes::handle(
        Route::SendMessage,
        &events::load(Route::SendMessage),
        &Services::new(&dynamodb.store()).with_messenger(&messenger),
    )
    .await;

    let took = started.elapsed();
    assert_eq!(handled.status(), 500);
    assert_eq!(messenger.frames_to(ALICE_TAB)[0]["error"], "unavailable");
    // The functions time out at 10 s; the reads give up at the call limit, well before.
    assert!(took < BACKEND_CALL_TIMEOUT + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn a_connection_without_a_record_is_told_to_reconnect() {
    let chat = Chat::with(&[("bob-1", "bob")]).await;

    let status = chat.send("stranger", message_to("bob", "hi")).await;

    assert_eq!(status, 403);
    assert_eq!(chat.error_code_to("stranger"), "unknownConnection");
    let sentence = chat.messenger.frames_to("stranger")[0]["message"].as_str().unwrap().to_owned();
    assert!(!sentence.contains("userId"), "the sentence holds in token mode too: {sentence}");
    assert!(chat.messenger.frames_to("bob-1").is_empty());
}

#[tokio::test]
async fn when_dynamodb_is_unreachable_the_sender_hears_unavailable_and_the_function_returns_500() {
    let store = dynalite::unreachable_store();
    let messenger = RecordingMessenger::new();

    let response = routes::handle(
        Route::SendMessage,
        &events::load(Route::SendMessage),
        &Services::new(&store).with_messenger(&messenger),
    )
    .await;

    assert_eq!(response.status(), 500);
    let frames = messenger.frames_to(ALICE_TAB);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["error"], "unavailable");
    assert_eq!(messenger.posts().len(), 1, "nothing else was sent");
}

#[tokio::test]
async fn when_dynamodb_is_unreachable_connect_and_disconnect_return_500() {
    let store = dynalite::unreachable_store();

    assert_eq!(
        routes::handle(Route::Connect, &events::load(Route::Connect), &Services::new(&store).with_mode(Mode::Demo))
            .await
            .status(),
        500
    );
    assert_eq!(
        routes::handle(Route::Disconnect, &events::load(Route::Disconnect), &Services::new(&store)).await.status(),
        500
    );
}

#[tokio::test]
async fn the_sample_disconnect_event_forgets_the_connection() {
    let chat = Chat::with(&[(ALICE_TAB, "1"), ("other-tab", "1")]).await;

    let response =
        routes::handle(Route::Disconnect, &events::load(Route::Disconnect), &Services::new(&chat.store)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(chat.users_connections("1").await, vec!["other-tab"]);
}

#[tokio::test]
async fn the_sample_default_event_answers_pong() {
    let messenger = RecordingMessenger::new();

    let response =
        routes::handle(Route::Default, &events::load(Route::Default), &Services::none().with_messenger(&messenger))
            .await;

    assert_eq!(response.status(), 200);
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
        assert_eq!(
            frames[0]["actions"],
            json!(["sendMessage", "joinRoom", "leaveRoom", "getHistory", "sync", "markRead", "send"]),
            "{body}"
        );
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
    for &route in Route::ALL {
        assert_eq!(Route::from_key(route.key()), Some(route));
        assert_eq!(events::load(route).request_context.route_key.as_deref(), Some(route.key()));
    }
}

/// A request as the adapter reads it from an event, built by hand: no event JSON.
fn request(route: Route, connection_id: &str, body: &str) -> Request {
    Request {
        route,
        connection_id: connection_id.into(),
        endpoint: Endpoint { api_id: "a1b2c3d4e5".into(), stage: "dev".into() },
        request_time_ms: 1_795_255_205_000,
        connected_at_ms: 1_795_255_200_000,
        body: Some(body.into()),
        client_request_id: None,
        caller: Caller::default(),
    }
}

#[tokio::test]
async fn handlers_run_on_plain_requests_and_return_typed_outcomes() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    let mut metrics = Metrics::new(Route::SendMessage);

    let services = Services::new(&chat.store).with_messenger(&chat.messenger);
    let sent = routes::outcome_of(
        Route::SendMessage,
        &request(Route::SendMessage, "alice-1", &message_to("bob", "hi").to_string()),
        &services,
        &mut metrics,
    )
    .await;
    let offline = routes::outcome_of(
        Route::SendMessage,
        &request(Route::SendMessage, "alice-1", &message_to("carol", "hi").to_string()),
        &services,
        &mut Metrics::new(Route::SendMessage),
    )
    .await;
    let pong = routes::outcome_of(
        Route::Default,
        &request(Route::Default, "alice-1", r#"{"action":"send"}"#),
        &services,
        &mut Metrics::new(Route::Default),
    )
    .await;

    assert_eq!(sent.unwrap(), Reply::Done("stored"));
    assert_eq!(metrics.messages_delivered, 1);
    assert_eq!(
        chat.messenger.messages_to("bob-1"),
        vec![json!({"senderId": "alice", "body": "hi", "destinationUserId": "bob"})]
    );
    assert_eq!(offline.unwrap(), Reply::Done("stored"), "an offline recipient's message is stored");
    assert_eq!(pong.unwrap(), Reply::Answer(Answer::new(&Echo { message: "🏓 pong".into() }).unwrap()));
    assert!(chat.messenger.frames_to("alice-1").is_empty(), "handlers post no answers themselves");
}

#[tokio::test]
async fn a_connect_in_token_mode_believes_the_authorizer_and_never_the_query() {
    let store = MemoryStore::new();
    let mut connect = request(Route::Connect, "c1", "");
    connect.caller = Caller { verified_user: None, claimed_user: Some("mallory".into()), offers_subprotocol: false };

    let services = Services::new(&store).with_mode(Mode::Token);
    let unverified = routes::outcome_of(Route::Connect, &connect, &services, &mut Metrics::new(Route::Connect)).await;
    connect.caller.verified_user = Some("alice".into());
    let verified = routes::outcome_of(Route::Connect, &connect, &services, &mut Metrics::new(Route::Connect)).await;

    let Err(Failure::Refused(frame)) = unverified else { panic!("refused, got {unverified:?}") };
    assert_eq!((frame.error, frame.error.status()), (ErrorCode::Unauthorized, 403));
    assert_eq!(verified.unwrap(), Reply::Connected);
    assert_eq!(store.find("c1").await.unwrap().unwrap().user_id.as_str(), "alice");
}

#[tokio::test]
async fn an_event_without_a_connection_id_answers_500_and_posts_nothing() {
    let chat = Chat::with(&[]).await;
    let mut event = events::load(Route::Default);
    event.request_context.connection_id = None;

    let handled = routes::handle(Route::Default, &event, &Services::none().with_messenger(&chat.messenger)).await;

    assert_eq!(handled.status(), 500);
    assert_eq!(chat.messenger.posts().len(), 0);
}

#[test]
fn each_error_code_has_one_status() {
    let statuses: Vec<(ErrorCode, i64)> = ErrorCode::ALL.iter().map(|code| (*code, code.status())).collect();
    for (code, status) in statuses {
        assert!(matches!(status, 400 | 403 | 404 | 413 | 429 | 500), "{code:?} → {status}");
    }
    assert_eq!(ErrorCode::BodyTooLarge.status(), 413);
    assert_eq!(ErrorCode::TooManyConnections.status(), 429);
    assert_eq!(ErrorCode::Unavailable.status(), 500);
}

#[tokio::test]
async fn the_sample_get_history_event_returns_what_user_1_sent_user_2() {
    let chat = Chat::with(&[(ALICE_TAB, "1"), ("bob-tab", "2")]).await;
    routes::handle(
        Route::SendMessage,
        &events::load(Route::SendMessage),
        &Services::new(&chat.store).with_messenger(&chat.messenger),
    )
    .await;

    let response = routes::handle(
        Route::GetHistory,
        &events::load(Route::GetHistory),
        &Services::new(&chat.store).with_messenger(&chat.messenger),
    )
    .await;

    assert_eq!(response.status(), 200);
    let history = &chat.messenger.frames_to(ALICE_TAB)[0];
    let sent_at = events::load(Route::SendMessage).request_context.request_time_epoch;
    assert_eq!(
        *history,
        json!({
            "type": "history",
            "userId": "2",
            "messages": [{"senderId": "1", "body": "hello there!", "seq": 1, "sentAt": sent_at}],
            "hasMore": false,
            "oldestSeq": 1,
        })
    );
}

#[tokio::test]
async fn a_page_of_history_is_cut_to_128_kb_keeping_the_messages_nearest_its_cursor() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    let big = "x".repeat(50 * 1024);
    for _ in 0..4 {
        chat.send("alice-1", message_to("bob", &big)).await;
    }

    let newest = json!({"action": "getHistory", "userId": "alice"});
    let oldest_first = json!({"action": "getHistory", "userId": "alice", "after": 0});
    for (request, kept) in [(newest, [3, 4]), (oldest_first, [1, 2])] {
        let event = events::message(Route::GetHistory, "bob-1", &request.to_string());
        routes::handle(Route::GetHistory, &event, &Services::new(&chat.store).with_messenger(&chat.messenger)).await;
        let frame = chat.messenger.frames_to("bob-1").pop().unwrap();
        assert!(serde_json::to_vec(&frame).unwrap().len() <= 128 * 1024);
        let seqs: Vec<u64> = frame["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, kept, "{request}");
        assert_eq!(frame["hasMore"], true, "dropped messages are still to come: {request}");
    }
}

#[tokio::test]
async fn history_is_only_for_conversations_the_user_belongs_to_and_bad_requests_are_refused() {
    let chat = Chat::with(&[("alice-1", "alice"), ("mallory-1", "mallory")]).await;
    chat.join("alice-1", "secret").await;
    chat.say("alice-1", json!({"action": "sendMessage", "roomId": "secret", "body": "psst"})).await;
    chat.send("alice-1", message_to("bob", "for bob")).await;

    let ask = |body: Value| events::message(Route::GetHistory, "mallory-1", &body.to_string());
    let room = routes::handle(
        Route::GetHistory,
        &ask(json!({"action": "getHistory", "roomId": "secret"})),
        &Services::new(&chat.store).with_messenger(&chat.messenger),
    )
    .await;
    // Mallory's own conversation with bob holds nothing of alice's.
    routes::handle(
        Route::GetHistory,
        &ask(json!({"action": "getHistory", "userId": "bob"})),
        &Services::new(&chat.store).with_messenger(&chat.messenger),
    )
    .await;
    let mut codes = Vec::new();
    for body in [
        json!({"action": "getHistory"}),
        json!({"action": "getHistory", "userId": "bob", "roomId": "secret"}),
        json!({"action": "getHistory", "userId": "bob", "before": 3, "after": 1}),
        json!({"action": "getHistory", "userId": "bob", "limit": 101}),
        json!({"action": "getHistory", "userId": "bob", "limit": 0}),
        json!({"action": "getHistory", "userId": "bob", "before": -1}),
    ] {
        let handled = routes::handle(
            Route::GetHistory,
            &ask(body.clone()),
            &Services::new(&chat.store).with_messenger(&chat.messenger),
        )
        .await;
        assert_eq!(handled.status(), 400, "{body}");
    }
    for frame in chat.messenger.frames_to("mallory-1") {
        codes.push(frame["error"].as_str().unwrap_or(frame["type"].as_str().unwrap_or_default()).to_owned());
        if frame["type"] == "history" {
            assert!(frame["messages"].as_array().unwrap().is_empty(), "{frame}");
        }
    }

    assert_eq!(room.status(), 403);
    assert_eq!(
        codes,
        [
            "notInRoom",
            "history",
            "missingField",
            "invalidField",
            "invalidField",
            "invalidField",
            "invalidField",
            "invalidField"
        ]
    );
}

/// Behaviours only the DynamoDB store has (its items, its calls, its tables), on dynalite.
mod on_dynamodb {
    use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
    use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;

    use super::*;

    /// Fails every UpdateItem on one table, as DynamoDB failing those writes would.
    #[derive(Debug)]
    struct FailUpdatesOf(String);

    impl Intercept for FailUpdatesOf {
        fn name(&self) -> &'static str {
            "FailUpdatesOf"
        }

        fn read_before_execution(
            &self,
            context: &BeforeSerializationInterceptorContextRef<'_>,
            _: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            let update = context.input().downcast_ref::<UpdateItemInput>();
            if update.is_some_and(|update| update.table_name() == Some(self.0.as_str())) {
                return Err("injected: the users table refuses writes".into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_recorded_in_the_conversation_lists_is_a_backend_failure_yet_delivered() {
        let tables = dynalite::tables().await;
        let store = tables.store.clone();
        let messenger = RecordingMessenger::new();
        for (tab, user) in [("alice-1", "alice"), ("bob-1", "bob")] {
            assert_eq!(
                routes::handle(
                    Route::Connect,
                    &events::connect(tab, Some(user)),
                    &Services::new(&store).with_mode(Mode::Demo)
                )
                .await
                .status(),
                200
            );
            let join =
                events::message(Route::JoinRoom, tab, &json!({"action": "joinRoom", "roomId": "lobby"}).to_string());
            assert_eq!(
                routes::handle(Route::JoinRoom, &join, &Services::new(&store).with_messenger(&messenger))
                    .await
                    .status(),
                200
            );
        }
        // Writes to the users table (the conversation lists) fail; reads, connections, rooms and
        // messages work.
        let config =
            tables.client().config().to_builder().interceptor(FailUpdatesOf(tables.users().to_owned())).build();
        let failing = chat_core::DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), &tables.name)
            .with_memberships(tables.memberships())
            .with_users(tables.users())
            .with_messages(tables.messages(), chat_core::limits::MESSAGE_RETENTION);
        let frame = json!({"action": "sendMessage", "roomId": "lobby", "body": "hi"}).to_string();

        let handled = routes::handle(
            Route::SendMessage,
            &events::message(Route::SendMessage, "alice-1", &frame),
            &Services::new(&failing).with_messenger(&messenger),
        )
        .await;

        assert_eq!(handled.status(), 200, "stored and delivered: the sender is not refused");
        assert_eq!(messenger.frames_to("bob-1").last().unwrap()["body"], "hi");
        assert_eq!((handled.metrics.messages_delivered, handled.metrics.backend_failures), (1, 1));
    }
}
