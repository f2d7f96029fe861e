//! Durable conversations through the route handlers, on both stores (in memory, and DynamoDB on
//! dynalite): seqs under concurrent senders, acknowledgements and idempotent sends with
//! `clientRequestId`, and every member holding every message, live or through history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use chat_core::DynamoDbStore;
use chat_core::routes::Services;
use chat_testing::dynalite;
use tokio::sync::Notify;

use chat_core::identity::Mode;
use chat_core::routes::{self, Route};
use chat_core::store::{ConnectionStore, MemoryStore, Store};
use chat_testing::{RecordingMessenger, events};
use serde_json::{Value, json};

/// Connects each `(connection id, user)` in demo mode.
async fn connect(store: &dyn Store, connections: &[(&str, &str)]) {
    for (id, user) in connections {
        let response = routes::handle(
            Route::Connect,
            &events::connect(id, Some(user)),
            &Services::new(store).with_mode(Mode::Demo),
        )
        .await;
        assert_eq!(response.status(), 200, "{id}");
    }
}

/// Sends `frame` from `connection`, a minute after it connected; the status.
async fn send(store: &dyn Store, messenger: &RecordingMessenger, connection: &str, frame: &Value) -> i64 {
    let event = events::message_after(Route::SendMessage, connection, &frame.to_string(), 60);
    routes::handle(Route::SendMessage, &event, &Services::new(store).with_messenger(messenger)).await.status()
}

/// Every message of a conversation, read page by page with `after`.
async fn history(store: &dyn Store, messenger: &RecordingMessenger, connection: &str, ask: Value) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let mut frame = ask.clone();
        frame["action"] = json!("getHistory");
        frame["after"] = json!(after);
        frame["limit"] = json!(100);
        let event = events::message_after(Route::GetHistory, connection, &frame.to_string(), 60);
        assert_eq!(
            routes::handle(Route::GetHistory, &event, &Services::new(store).with_messenger(messenger)).await.status(),
            200
        );
        let page = messenger.frames_to(connection).pop().unwrap();
        let got = page["messages"].as_array().unwrap().clone();
        messages.extend(got.iter().cloned());
        match (page["hasMore"].as_bool(), got.last()) {
            (Some(true), Some(last)) => after = last["seq"].as_u64().unwrap(),
            _ => return messages,
        }
    }
}

async fn twenty_connections_send_fifty_messages_each_to_one_room_at_once(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    let senders: Vec<(String, String)> = (0..20).map(|n| (format!("c{n}"), format!("u{n}"))).collect();
    let pairs: Vec<(&str, &str)> = senders.iter().map(|(c, u)| (c.as_str(), u.as_str())).collect();
    connect(store, &pairs).await;
    for (connection, _) in &pairs {
        let event = events::message(Route::JoinRoom, connection, r#"{"action":"joinRoom","roomId":"lobby"}"#);
        assert_eq!(
            routes::handle(Route::JoinRoom, &event, &Services::new(store).with_messenger(&messenger)).await.status(),
            200
        );
    }

    let sending = pairs.iter().map(|(connection, _)| {
        let messenger = &messenger;
        async move {
            for m in 0..50 {
                // As a client does: a send answered `unavailable` (here, when one sender loses
                // the race for a seq too often) is sent again with the same clientRequestId.
                let id = format!("{connection}-{m}");
                let frame = json!({"action": "sendMessage", "roomId": "lobby", "body": id, "clientRequestId": id});
                let mut tries = 0;
                while send(store, messenger, connection, &frame).await != 200 {
                    tries += 1;
                    assert!(tries < 5, "{id}: {:?}", messenger.frames_to(connection).last());
                }
            }
        }
    });
    futures::future::join_all(sending).await;

    let stored = history(store, &messenger, "c0", json!({"roomId": "lobby"})).await;
    let seqs: Vec<u64> = stored.iter().map(|message| message["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>(), "seqs 1 to 1000, each once, in order");
    // Every member holds all 1,000: those it sent, and those delivered to it live.
    for (connection, _) in &pairs {
        let mut held: Vec<u64> = messenger
            .frames_to(connection)
            .iter()
            .filter(|frame| frame["roomId"] == "lobby" && frame.get("senderId").is_some())
            .map(|frame| frame["seq"].as_u64().unwrap())
            .collect();
        held.extend(
            stored
                .iter()
                .filter(|m| m["body"].as_str().unwrap().starts_with(&format!("{connection}-")))
                .map(|m| m["seq"].as_u64().unwrap()),
        );
        held.sort();
        held.dedup();
        assert_eq!(held.len(), 1000, "{connection} holds every message");
    }
}

async fn both_users_of_a_direct_conversation_sending_at_once_get_consecutive_seqs(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;

    let sending = [("a1", "bob"), ("b1", "alice")].map(|(connection, to)| {
        let messenger = &messenger;
        async move {
            for m in 0..30 {
                let frame = json!({"action": "sendMessage", "destinationUserId": to, "body": format!("{m}")});
                assert_eq!(send(store, messenger, connection, &frame).await, 200);
            }
        }
    });
    futures::future::join_all(sending).await;

    let stored = history(store, &messenger, "a1", json!({"userId": "bob"})).await;
    let seqs: Vec<u64> = stored.iter().map(|message| message["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    let from_bob = history(store, &messenger, "b1", json!({"userId": "alice"})).await;
    assert_eq!(from_bob, stored, "one conversation, named from either side");
}

async fn a_send_with_a_client_request_id_is_acknowledged_once_stored(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;

    let frame = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "hi", "clientRequestId": "r-1"});
    assert_eq!(send(store, &messenger, "a1", &frame).await, 200);

    let ack = &messenger.texts_to("a1")[0];
    let delivered = &messenger.frames_to("b1")[0];
    assert_eq!(
        *ack,
        format!(
            r#"{{"type":"ack","clientRequestId":"r-1","destinationUserId":"bob","seq":1,"sentAt":{}}}"#,
            delivered["sentAt"]
        )
    );
    assert_eq!(delivered["seq"], 1);
    let room = json!({"action": "sendMessage", "roomId": "lobby", "body": "hi", "clientRequestId": "r-2"});
    assert_eq!(send(store, &messenger, "a1", &room).await, 403);
    let refused = messenger.frames_to("a1").pop().unwrap();
    assert_eq!((refused["error"].clone(), refused["clientRequestId"].clone()), (json!("notInRoom"), json!("r-2")));
}

async fn repeats_store_one_message_and_are_acknowledged_alike_sequentially_or_concurrently(store: &dyn Store) {
    for (n, repeats) in [1, 2, 10].into_iter().enumerate() {
        let messenger = RecordingMessenger::new();
        let (alice, bob) = (format!("a{n}"), format!("b{n}"));
        let (alice_user, bob_user) = (format!("alice{n}"), format!("bob{n}"));
        connect(store, &[(&alice, &alice_user), (&bob, &bob_user)]).await;
        let frame =
            json!({"action": "sendMessage", "destinationUserId": bob_user, "body": "once", "clientRequestId": "same"});

        // Half one after the other, half at once.
        for _ in 0..repeats / 2 {
            assert_eq!(send(store, &messenger, &alice, &frame).await, 200);
        }
        let at_once = (0..repeats - repeats / 2).map(|_| send(store, &messenger, &alice, &frame));
        let statuses = futures::future::join_all(at_once).await;

        assert!(statuses.iter().all(|status| *status == 200), "{repeats}: {statuses:?}");
        let stored = history(store, &messenger, &bob, json!({"userId": alice_user})).await;
        assert_eq!(stored.len(), 1, "{repeats} sends, one message");
        let acks: Vec<Value> = messenger.frames_to(&alice).into_iter().filter(|frame| frame["type"] == "ack").collect();
        assert_eq!(acks.len(), repeats, "each send is acknowledged");
        assert!(acks.iter().all(|ack| *ack == acks[0]), "identical acknowledgements: {acks:?}");
        let live: Vec<Value> = messenger.frames_to(&bob).into_iter().filter(|frame| frame["body"] == "once").collect();
        assert!(!live.is_empty() && live.iter().all(|frame| frame["seq"] == 1), "bob receives it at least once");
    }
}

async fn a_repeat_with_a_different_body_is_an_invalid_field_and_stores_nothing(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;
    let first = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "one", "clientRequestId": "k"});
    let other = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "two", "clientRequestId": "k"});
    let elsewhere =
        json!({"action": "sendMessage", "destinationUserId": "carol", "body": "two", "clientRequestId": "k"});

    assert_eq!(send(store, &messenger, "a1", &first).await, 200);
    assert_eq!(send(store, &messenger, "a1", &other).await, 400);
    let refused = messenger.frames_to("a1").pop().unwrap();
    assert_eq!(send(store, &messenger, "a1", &elsewhere).await, 200, "the key is per conversation");

    assert_eq!((refused["error"].clone(), refused["clientRequestId"].clone()), (json!("invalidField"), json!("k")));
    assert!(refused["message"].as_str().unwrap().contains("clientRequestId"));
    assert_eq!(history(store, &messenger, "b1", json!({"userId": "alice"})).await.len(), 1);
}

/// Whole numbers at and past the edges of the types the handlers hold them in, and numbers no
/// type holds: every numeric field a client sends.
const EDGES: [&str; 8] = [
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551614",
    "18446744073709551615",
    "18446744073709551616",
    "1e30",
    "-1",
    "1.5",
];

async fn numbers_at_the_edges_are_answered_and_never_counted_as_backend_failures(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;
    let first = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "one"});
    assert_eq!(send(store, &messenger, "a1", &first).await, 200);
    let frames = EDGES.iter().flat_map(|n| {
        [
            (Route::GetHistory, format!(r#"{{"action":"getHistory","userId":"bob","before":{n}}}"#)),
            (Route::GetHistory, format!(r#"{{"action":"getHistory","userId":"bob","after":{n}}}"#)),
            (Route::GetHistory, format!(r#"{{"action":"getHistory","userId":"bob","limit":{n}}}"#)),
            (Route::MarkRead, format!(r#"{{"action":"markRead","userId":"bob","seq":{n}}}"#)),
            (Route::Sync, format!(r#"{{"action":"sync","limit":{n}}}"#)),
        ]
    });

    for (route, frame) in frames {
        let event = events::message_after(route, "a1", &frame, 60);
        let handled = routes::handle(route, &event, &Services::new(store).with_messenger(&messenger)).await;

        let answer = messenger.frames_to("a1").pop().unwrap();
        assert_eq!(handled.metrics.backend_failures, 0, "{frame}: {answer}");
        assert!([200, 400].contains(&handled.status()), "{frame}: {} {answer}", handled.status());
        if handled.status() == 400 {
            assert_eq!(answer["error"], "invalidField", "{frame}");
        }
    }
    let history = |cursor: &str| format!(r#"{{"action":"getHistory","userId":"bob",{cursor}}}"#);
    for (cursor, seqs) in
        [("\"after\":18446744073709551615", json!([])), ("\"before\":18446744073709551615", json!([1]))]
    {
        let event = events::message_after(Route::GetHistory, "a1", &history(cursor), 60);
        assert_eq!(
            routes::handle(Route::GetHistory, &event, &Services::new(store).with_messenger(&messenger)).await.status(),
            200
        );
        let page = messenger.frames_to("a1").pop().unwrap();
        let got: Vec<&Value> = page["messages"].as_array().unwrap().iter().map(|message| &message["seq"]).collect();
        assert_eq!(json!(got), seqs, "{cursor}");
    }
}

/// Two bodies with the same 64-bit FNV-1a hash, which a repeat's body was once compared by: found
/// by a parallel collision search (van Oorschot and Wiener's, about 2^32 hashes).
const COLLIDING: [&str; 2] = ["m:51597f1710eb162d", "m:fcf2ae3429a2a636"];

/// The 64-bit FNV-1a hash, as claims made before SHA-256 carry it.
fn fnv1a(body: &str) -> String {
    let hash = body
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

async fn a_repeat_whose_body_only_shares_the_old_64_bit_hash_is_refused_and_never_delivered(store: &dyn Store) {
    assert_eq!(fnv1a(COLLIDING[0]), fnv1a(COLLIDING[1]), "the two bodies collide under FNV-1a");
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;
    let frame =
        |body: &str| json!({"action": "sendMessage", "destinationUserId": "bob", "body": body, "clientRequestId": "k"});

    assert_eq!(send(store, &messenger, "a1", &frame(COLLIDING[0])).await, 200);
    let forged = send(store, &messenger, "a1", &frame(COLLIDING[1])).await;

    assert_eq!(forged, 400, "a different message under a used clientRequestId");
    assert_eq!(messenger.frames_to("a1").pop().unwrap()["error"], "invalidField");
    let live: Vec<Value> = messenger.frames_to("b1").iter().map(|frame| frame["body"].clone()).collect();
    assert_eq!(live, [COLLIDING[0]], "bob saw only what history holds");
    let stored = history(store, &messenger, "b1", json!({"userId": "alice"})).await;
    assert_eq!(stored.iter().map(|message| &message["body"]).collect::<Vec<_>>(), [COLLIDING[0]]);
}

/// Who is in a room is the user's room entry, not the connection's subscriptions: a
/// connection whose subscription outlived its user's leave cannot send, and a new tab whose
/// subscriptions have not settled can.
async fn a_room_message_needs_the_users_room_entry_not_the_connections_subscription(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    connect(store, &[("a1", "alice"), ("b1", "bob")]).await;
    let lobby = chat_core::protocol::RoomId::parse("lobby").unwrap();
    let (alice, bob) =
        (chat_core::protocol::UserId::parse("alice").unwrap(), chat_core::protocol::UserId::parse("bob").unwrap());
    for tab in ["a1", "b1"] {
        let join = events::message(Route::JoinRoom, tab, &json!({"action": "joinRoom", "roomId": "lobby"}).to_string());
        assert_eq!(
            routes::handle(Route::JoinRoom, &join, &Services::new(store).with_messenger(&messenger)).await.status(),
            200
        );
    }
    // Alice's entry goes (a leave whose subscription clean-up never ran): her connection is
    // still subscribed.
    store.remove_room(&alice, &lobby).await.unwrap();
    assert!(store.find("a1").await.unwrap().unwrap().rooms.contains(&lobby), "still subscribed");
    // Bob's new tab is recorded, its subscriptions not settled yet.
    store.save(&chat_core::Connection::new("b2".to_owned(), bob.clone(), 0)).await.unwrap();
    assert!(store.find("b2").await.unwrap().unwrap().rooms.is_empty(), "not subscribed yet");

    let alice_sends =
        send(store, &messenger, "a1", &json!({"action": "sendMessage", "roomId": "lobby", "body": "still here?"}))
            .await;
    let bob_sends =
        send(store, &messenger, "b2", &json!({"action": "sendMessage", "roomId": "lobby", "body": "new tab"})).await;

    assert_eq!(alice_sends, 403);
    let errors: Vec<Value> =
        messenger.frames_to("a1").into_iter().filter_map(|frame| frame.get("error").cloned()).collect();
    assert_eq!(errors, [json!("notInRoom")]);
    assert_eq!(bob_sends, 200);
    assert_eq!(messenger.frames_to("b1").last().unwrap()["body"], "new tab");
    let stored = history(store, &messenger, "b1", json!({"roomId": "lobby"})).await;
    assert_eq!(stored.iter().map(|message| message["body"].clone()).collect::<Vec<_>>(), [json!("new tab")]);
}

/// In token mode the caller is the user the authorizer verified, which API Gateway puts on every
/// event: no connection record is read for it. In demo mode the record alone says.
async fn in_token_mode_the_caller_is_the_authorizers_user_without_reading_the_record(store: &dyn Store) {
    let messenger = RecordingMessenger::new();
    let ask = json!({"action": "sync"}).to_string();
    let mut event = events::message(Route::Sync, "no-record", &ask);
    event.request_context.authorizer.fields.insert("userId".into(), json!("alice"));

    let token =
        routes::handle(Route::Sync, &event, &Services::new(store).with_messenger(&messenger).with_mode(Mode::Token))
            .await;
    let demo = routes::handle(Route::Sync, &event, &Services::new(store).with_messenger(&messenger)).await;

    assert_eq!(token.status(), 200);
    assert_eq!(messenger.frames_to("no-record")[0]["userId"], "alice");
    assert_eq!(demo.status(), 403, "demo mode believes only the record");
    assert_eq!(messenger.frames_to("no-record")[1]["error"], "unknownConnection");
}

chat_testing::on_both_stores!(
    a_room_message_needs_the_users_room_entry_not_the_connections_subscription,
    in_token_mode_the_caller_is_the_authorizers_user_without_reading_the_record,
    numbers_at_the_edges_are_answered_and_never_counted_as_backend_failures,
    a_repeat_whose_body_only_shares_the_old_64_bit_hash_is_refused_and_never_delivered,
    twenty_connections_send_fifty_messages_each_to_one_room_at_once,
    both_users_of_a_direct_conversation_sending_at_once_get_consecutive_seqs,
    a_send_with_a_client_request_id_is_acknowledged_once_stored,
    repeats_store_one_message_and_are_acknowledged_alike_sequentially_or_concurrently,
    a_repeat_with_a_different_body_is_an_invalid_field_and_stores_nothing,
);

/// Counts the DynamoDB calls that came back, and wakes whoever waits for a count.
#[derive(Clone, Debug, Default)]
struct Completed(Arc<(AtomicUsize, Notify)>);

impl Intercept for Completed {
    fn name(&self) -> &'static str {
        "Completed"
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        self.0.1.notify_waiters();
        Ok(())
    }
}

impl Completed {
    fn count(&self) -> usize {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Returns once `count` calls have come back.
    async fn reached(&self, count: usize) {
        loop {
            let woken = self.0.1.notified();
            if self.count() >= count {
                return;
            }
            woken.await;
        }
    }
}

#[tokio::test]
async fn a_send_that_dies_after_any_of_its_dynamodb_calls_is_healed_by_its_retry_with_no_hole_or_repeat() {
    let tables = dynalite::tables().await;
    let completed = Completed::default();
    let config = tables.client().config().to_builder().interceptor(completed.clone()).build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), &tables.name)
        .with_clock(dynalite::sample_clock())
        .with_memberships(tables.memberships())
        .with_users(tables.users())
        .with_messages(tables.messages(), chat_core::limits::MESSAGE_RETENTION);
    // A send with a clientRequestId makes 9 calls: the sender's record; the latest seq and the
    // claim side by side; the message; then the head, both users' conversation entries and both
    // users' connections.
    for dies_after in 1..=9 {
        let messenger = RecordingMessenger::new();
        let services = Services::new(&store).with_messenger(&messenger);
        let (alice, bob) = (format!("alice{dies_after}"), format!("bob{dies_after}"));
        let (alice_tab, bob_tab) = (format!("a{dies_after}"), format!("b{dies_after}"));
        connect(&store, &[(&alice_tab, &alice), (&bob_tab, &bob)]).await;
        let once = json!({"action": "sendMessage", "destinationUserId": bob, "body": "once", "clientRequestId": "c1"});
        let first = events::message_after(Route::SendMessage, &alice_tab, &once.to_string(), 60);

        // The function dies (its future is dropped) once that many of its calls have come back.
        let before = completed.count();
        tokio::select! {
            _ = routes::handle(Route::SendMessage, &first, &services) => {}
            () = completed.reached(before + dies_after) => {}
        }
        // The client heard no acknowledgement, or did not wait for it: it sends again 20 s later,
        // past the time a dead function's claim is held; then a second message.
        let retry = events::message_after(Route::SendMessage, &alice_tab, &once.to_string(), 80);
        let healed =
            routes::handle(Route::SendMessage, &retry, &Services::new(&store).with_messenger(&messenger)).await;
        let next = json!({"action": "sendMessage", "destinationUserId": bob, "body": "next"});

        assert_eq!(healed.status(), 200, "died after {dies_after} calls");
        assert_eq!(send(&store, &messenger, &alice_tab, &next).await, 200);
        let stored = history(&store, &messenger, &bob_tab, json!({"userId": alice})).await;
        let seqs: Vec<(u64, &str)> =
            stored.iter().map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap())).collect();
        assert_eq!(seqs, [(1, "once"), (2, "next")], "died after {dies_after} calls: no hole, no repeat");
        let acks: Vec<Value> =
            messenger.frames_to(&alice_tab).into_iter().filter(|frame| frame["type"] == "ack").collect();
        assert_eq!(acks.last().unwrap()["seq"], 1, "the retry is acknowledged with the first seq");
        if dies_after <= 3 {
            // Before the message was written the first send really died: it never acknowledged.
            assert_eq!(acks.len(), 1, "died after {dies_after} calls, yet acknowledged");
        }
        assert!(
            messenger.frames_to(&bob_tab).iter().any(|frame| frame["body"] == "once" && frame["seq"] == 1),
            "died after {dies_after} calls: the retry delivered it"
        );
        for (tab, read) in [(&bob_tab, 0), (&alice_tab, 2)] {
            let ask = events::message_after(Route::Sync, tab, &json!({"action": "sync"}).to_string(), 90);
            assert_eq!(
                routes::handle(Route::Sync, &ask, &Services::new(&store).with_messenger(&messenger)).await.status(),
                200
            );
            let listed = messenger.frames_to(tab).last().unwrap()["conversations"][0].clone();
            assert_eq!(
                (listed["seq"].clone(), listed["readSeq"].clone()),
                (json!(2), json!(read)),
                "died after {dies_after} calls: {tab}'s sync"
            );
        }
    }
}

#[tokio::test]
async fn an_invalid_client_request_id_is_refused_before_anything_is_stored() {
    let (store, messenger) = (MemoryStore::new(), RecordingMessenger::new());
    connect(&store, &[("a1", "alice"), ("b1", "bob")]).await;

    let mut codes = BTreeMap::new();
    for id in [json!(""), json!("x".repeat(65)), json!("no spaces"), json!(7)] {
        let frame = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "hi", "clientRequestId": id});
        assert_eq!(send(&store, &messenger, "a1", &frame).await, 400, "{id}");
        let refused = messenger.frames_to("a1").pop().unwrap();
        assert!(refused.get("clientRequestId").is_none(), "an invalid id is not echoed: {refused}");
        codes.insert(id.to_string(), refused["error"].as_str().unwrap().to_owned());
    }
    let ok = json!({"action": "send", "clientRequestId": "ping_1"});
    let echo = routes::handle(
        Route::Default,
        &events::message(Route::Default, "a1", &ok.to_string()),
        &Services::none().with_messenger(&messenger),
    )
    .await;

    assert!(codes.values().all(|code| code == "invalidField"), "{codes:?}");
    assert!(messenger.frames_to("b1").is_empty(), "nothing was stored or delivered");
    assert_eq!(echo.status(), 200);
    assert_eq!(
        messenger.texts_to("a1").pop().unwrap(),
        r#"{"message":"🏓 pong","clientRequestId":"ping_1"}"#,
        "any answer carries the id back, after its own fields"
    );
}

/// Behaviours only the DynamoDB store has (its items, its calls, its tables), on dynalite.
mod on_dynamodb {
    use super::*;

    /// Deletes a connection's record alone, as a `$disconnect` that failed after its first call.
    async fn delete_record(tables: &dynalite::Tables, connection_id: &str) {
        let key = aws_sdk_dynamodb::types::AttributeValue::S(connection_id.into());
        tables.client().delete_item().table_name(&tables.name).key("connectionId", key).send().await.unwrap();
    }

    #[tokio::test]
    async fn a_gone_member_whose_record_is_already_deleted_loses_its_orphaned_membership() {
        let tables = dynalite::tables().await;
        let store = tables.store.clone();
        let messenger = RecordingMessenger::new();
        connect(&store, &[("a1", "alice"), ("b1", "bob")]).await;
        for tab in ["a1", "b1"] {
            let join =
                events::message(Route::JoinRoom, tab, &json!({"action": "joinRoom", "roomId": "lobby"}).to_string());
            assert_eq!(
                routes::handle(Route::JoinRoom, &join, &Services::new(&store).with_messenger(&messenger))
                    .await
                    .status(),
                200
            );
        }
        // b1's $disconnect deleted its record, then failed before deleting its membership.
        delete_record(&tables, "b1").await;
        messenger.mark_gone("b1");
        let lobby = chat_core::protocol::RoomId::parse("lobby").unwrap();
        let members =
            async || chat_core::store::SubscriptionStore::members(&store, &lobby, None).await.unwrap().connection_ids;
        assert_eq!(members().await, ["a1", "b1"]);

        let frame = json!({"action": "sendMessage", "roomId": "lobby", "body": "anyone?"});
        assert_eq!(send(&store, &messenger, "a1", &frame).await, 200);

        assert_eq!(members().await, ["a1"], "the 410 removed the membership no record listed");
    }

    #[tokio::test]
    async fn a_gone_connection_whose_record_is_already_deleted_loses_its_users_entry() {
        let tables = dynalite::tables().await;
        let store = tables.store.clone();
        let messenger = RecordingMessenger::new();
        connect(&store, &[("a1", "alice"), ("b1", "bob"), ("b2", "bob")]).await;
        // b1's $disconnect deleted its record, then failed before deleting bob's entry for it.
        delete_record(&tables, "b1").await;
        messenger.mark_gone("b1");
        let bob = chat_core::protocol::UserId::parse("bob").unwrap();
        let mut listed = store.connections_of(&bob, events::now_ms()).await.unwrap();
        listed.sort();
        assert_eq!(listed, ["b1", "b2"]);

        let frame = json!({"action": "sendMessage", "destinationUserId": "bob", "body": "anyone?"});
        assert_eq!(send(&store, &messenger, "a1", &frame).await, 200);

        assert_eq!(store.connections_of(&bob, events::now_ms()).await.unwrap(), ["b2"], "the 410 removed the entry");
        assert_eq!(messenger.messages_to("b2").len(), 1);
    }

    #[tokio::test]
    async fn connections_whose_disconnect_never_came_do_not_count_toward_the_limit_once_expired() {
        use chat_core::limits::MAX_CONNECTIONS_PER_USER;
        let tables = dynalite::tables().await;
        let store = tables.store.clone();
        // A day ago alice opened the most connections allowed, and none of their $disconnects ran.
        for n in 0..MAX_CONNECTIONS_PER_USER {
            let mut stale = events::connection(&format!("old-{n}"), "alice");
            stale.connected_at -= 24 * 60 * 60 * 1000;
            stale.expires_at -= 24 * 60 * 60;
            chat_core::store::ConnectionStore::save(&store, &stale).await.unwrap();
        }

        let response = routes::handle(
            Route::Connect,
            &events::connect("new", Some("alice")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await;

        assert_eq!(response.status(), 200, "stale entries (TTL deletes within days) lock nobody out");
        let alice = chat_core::protocol::UserId::parse("alice").unwrap();
        assert_eq!(store.connections_of(&alice, events::now_ms()).await.unwrap(), ["new"]);
    }

    #[tokio::test]
    async fn claims_are_read_by_the_previous_version_and_its_claims_by_this_one() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let tables = dynalite::tables().await;
        let store = tables.store.clone();
        let messenger = RecordingMessenger::new();
        connect(&store, &[("a1", "alice"), ("b1", "bob")]).await;
        let frame = |id: &str| json!({"action": "sendMessage", "destinationUserId": "bob", "body": "once", "clientRequestId": id});
        let claim = |id: &str| {
            let key = format!("k#alice#{id}#d#alice#bob");
            [("conversation".to_owned(), AttributeValue::S(key)), ("seq".to_owned(), AttributeValue::N("0".into()))]
        };
        // A claim this version writes carries the FNV-1a the previous version compares, beside its
        // SHA-256, so either version recognises a repeat during a deployment or after a rollback.
        assert_eq!(send(&store, &messenger, "a1", &frame("stored")).await, 200);
        let legacy = AttributeValue::S(fnv1a("once"));
        let client = tables.client();
        let written = client.get_item().table_name(tables.messages()).set_key(Some(claim("stored").into()));
        let written = written.send().await.unwrap().item.unwrap();
        assert_eq!(written.get("bodyHash"), Some(&legacy));
        assert!(written.get("bodySha256").is_some_and(|hash| hash.as_s().is_ok_and(|hash| hash.len() == 64)));
        // Made into a stored message whose claim the previous version wrote (its FNV-1a alone)...
        let update = client.update_item().table_name(tables.messages()).set_key(Some(claim("stored").into()));
        update.update_expression("REMOVE bodySha256").send().await.unwrap();
        // ...and a claim of the previous version's still being stored.
        let sent_at = events::message_after(Route::SendMessage, "a1", "", 60).request_context.request_time_epoch;
        let mut pending: std::collections::HashMap<_, _> = claim("pending").into();
        pending.insert("bodyHash".into(), legacy);
        pending.insert("claimedAt".into(), AttributeValue::N(sent_at.to_string()));
        pending.insert("lastSeq".into(), AttributeValue::N("1".into()));
        pending.insert("expiresAt".into(), AttributeValue::N((sent_at / 1000 + 86_400).to_string()));
        client.put_item().table_name(tables.messages()).set_item(Some(pending)).send().await.unwrap();

        let repeat = send(&store, &messenger, "a1", &frame("stored")).await;
        let ack = messenger.frames_to("a1").pop().unwrap();
        let waiting = send(&store, &messenger, "a1", &frame("pending")).await;
        let told = messenger.frames_to("a1").pop().unwrap();

        assert_eq!((repeat, ack["type"].clone(), ack["seq"].clone()), (200, json!("ack"), json!(1)), "a repeat: {ack}");
        assert_eq!(
            (waiting, told["error"].clone()),
            (500, json!("unavailable")),
            "in progress, not another body: {told}"
        );
        assert_eq!(history(&store, &messenger, "b1", json!({"userId": "alice"})).await.len(), 1);
    }
}
