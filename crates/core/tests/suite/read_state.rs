//! `sync` and `markRead`, and the read state `sendMessage` and `joinRoom` keep: route handlers on
//! the in-memory store, driven by the sample events users invoke with. (Both stores' behaviour
//! is in store_contract.rs.)

use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_testing::{Chat, events};
use serde_json::{Value, json};

/// The sample events' connection, and its user.
const SAMPLE: (&str, &str) = ("L0SM9cOFvHcCIhw=", "1");

fn direct(to: &str, body: &str) -> Value {
    json!({"action": "sendMessage", "destinationUserId": to, "body": body})
}

async fn sync(chat: &Chat, from: &str, frame: Value) -> Value {
    assert_eq!(chat.request(Route::Sync, from, frame).await, 200);
    chat.frames_to(from).last().cloned().unwrap()
}

#[tokio::test]
async fn the_sample_sync_event_lists_the_users_conversations_most_recently_active_first() {
    let chat = Chat::with(&[SAMPLE, ("two-1", "2")]).await;
    chat.join(SAMPLE.0, "lobby").await;
    for body in ["hello", "are you there?"] {
        assert_eq!(chat.say("two-1", direct("1", body)).await, 200);
    }

    assert_eq!(
        routes::handle(
            Route::Sync,
            &events::load(Route::Sync),
            &Services::new(&chat.store).with_messenger(&chat.messenger)
        )
        .await
        .status(),
        200
    );

    let answer = chat.frames_to(SAMPLE.0).last().cloned().unwrap();
    let sent_at = answer["conversations"][0]["lastMessage"]["sentAt"].clone();
    assert_eq!(
        answer,
        json!({"type": "sync", "userId": "1", "conversations": [
            {"userId": "2", "seq": 2, "readSeq": 0, "peerReadSeq": 0,
             "lastMessage": {"senderId": "2", "body": "are you there?", "seq": 2, "sentAt": sent_at}},
            {"roomId": "lobby", "seq": 0, "readSeq": 0},
        ]})
    );
}

#[tokio::test]
async fn the_sample_mark_read_event_answers_the_read_state_tells_the_other_tabs_and_sends_a_receipt() {
    let chat = Chat::with(&[SAMPLE, ("one-2", "1"), ("two-1", "2"), ("two-2", "2")]).await;
    for body in ["first", "second"] {
        chat.say("two-1", direct("1", body)).await;
    }

    assert_eq!(
        routes::handle(
            Route::MarkRead,
            &events::load(Route::MarkRead),
            &Services::new(&chat.store).with_messenger(&chat.messenger)
        )
        .await
        .status(),
        200
    );

    let read = json!({"type": "read", "userId": "2", "readSeq": 1});
    let mut answer = read.clone();
    answer["clientRequestId"] = json!("r-2");
    assert_eq!(chat.frames_to(SAMPLE.0).last(), Some(&answer));
    assert_eq!(chat.frames_to("one-2").last(), Some(&read), "the user's other tab");
    let receipt = json!({"type": "readReceipt", "userId": "1", "readSeq": 1});
    for tab in ["two-1", "two-2"] {
        assert_eq!(chat.frames_to(tab).last(), Some(&receipt), "{tab}: the other user's receipt");
    }
    let twos = sync(&chat, "two-1", json!({"action": "sync"})).await;
    assert_eq!(twos["conversations"][0]["peerReadSeq"], 1, "and their sync shows it");
}

#[tokio::test]
async fn read_state_is_clamped_to_the_latest_seq_and_never_lowered() {
    let chat = Chat::with(&[("bob-1", "bob"), ("alice-1", "alice")]).await;
    for body in ["one", "two"] {
        chat.say("alice-1", direct("bob", body)).await;
    }
    let mark = |seq: u64| json!({"action": "markRead", "userId": "alice", "seq": seq});

    assert_eq!(chat.request(Route::MarkRead, "bob-1", mark(99)).await, 200);
    assert_eq!(chat.frames_to("bob-1").last().unwrap()["readSeq"], 2, "clamped to the latest");
    assert_eq!(chat.request(Route::MarkRead, "bob-1", mark(1)).await, 200);
    assert_eq!(chat.frames_to("bob-1").last().unwrap()["readSeq"], 2, "never lowered");
}

#[tokio::test]
async fn sending_advances_the_senders_own_read_state_in_direct_conversations_and_rooms() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    chat.join("bob-1", "lobby").await;
    chat.say("bob-1", direct("alice", "hi alice")).await;
    chat.say("bob-1", json!({"action": "sendMessage", "roomId": "lobby", "body": "hi all"})).await;

    chat.say("alice-1", direct("bob", "hi bob")).await;
    chat.say("alice-1", json!({"action": "sendMessage", "roomId": "lobby", "body": "hello"})).await;

    let alices = sync(&chat, "alice-1", json!({"action": "sync"})).await;
    let read: Vec<(Value, Value)> = alices["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["seq"].clone(), entry["readSeq"].clone()))
        .collect();
    assert_eq!(read, [(json!(2), json!(2)), (json!(2), json!(2))], "both read up to her own message");
}

#[tokio::test]
async fn a_newcomer_to_a_room_has_nothing_unread_and_a_room_not_joined_cannot_be_marked_read() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    for body in ["one", "two", "three"] {
        chat.say("alice-1", json!({"action": "sendMessage", "roomId": "lobby", "body": body})).await;
    }

    assert_eq!(
        chat.request(Route::MarkRead, "bob-1", json!({"action": "markRead", "roomId": "lobby", "seq": 3})).await,
        403
    );
    assert_eq!(chat.frames_to("bob-1").last().unwrap()["error"], "notInRoom");
    chat.join("bob-1", "lobby").await;

    let bobs = sync(&chat, "bob-1", json!({"action": "sync"})).await;
    assert_eq!(
        (bobs["conversations"][0]["seq"].clone(), bobs["conversations"][0]["readSeq"].clone()),
        (json!(3), json!(3))
    );
}

#[tokio::test]
async fn sync_pages_with_the_cursor_it_gives_until_every_conversation_was_listed_once() {
    let friends: Vec<(String, String)> = (0..7).map(|n| (format!("f{n}-1"), format!("friend-{n}"))).collect();
    let mut connections: Vec<(&str, &str)> = friends.iter().map(|(id, user)| (id.as_str(), user.as_str())).collect();
    connections.push(("carol-1", "carol"));
    let chat = Chat::with(&connections).await;
    for (id, _) in &friends {
        chat.say(id, direct("carol", "hello")).await;
    }

    let mut seen = Vec::new();
    let mut frame = json!({"action": "sync", "limit": 3});
    loop {
        let page = sync(&chat, "carol-1", frame.clone()).await;
        seen.extend(page["conversations"].as_array().unwrap().iter().map(|entry| entry["userId"].clone()));
        match page.get("nextCursor") {
            Some(cursor) => frame = json!({"action": "sync", "limit": 3, "cursor": cursor}),
            None => break,
        }
    }

    seen.sort_by_key(|id| id.to_string());
    let expected: Vec<Value> = (0..7).map(|n| json!(format!("friend-{n}"))).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn bad_sync_and_mark_read_frames_get_their_error_codes() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;
    let cases = [
        (Route::Sync, json!({"action": "sync", "cursor": "made-up"}), "invalidField"),
        (Route::Sync, json!({"action": "sync", "limit": 0}), "invalidField"),
        (Route::Sync, json!({"action": "sync", "limit": 101}), "invalidField"),
        (Route::MarkRead, json!({"action": "markRead", "userId": "bob"}), "missingField"),
        (Route::MarkRead, json!({"action": "markRead", "userId": "bob", "seq": -1}), "invalidField"),
        (Route::MarkRead, json!({"action": "markRead", "seq": 1}), "missingField"),
        (Route::MarkRead, json!({"action": "markRead", "userId": "bob", "roomId": "lobby", "seq": 1}), "invalidField"),
    ];
    for (route, frame, code) in cases {
        assert_eq!(chat.request(route, "alice-1", frame.clone()).await, 400, "{frame}");
        assert_eq!(chat.frames_to("alice-1").last().unwrap()["error"], code, "{frame}");
    }
}

#[tokio::test]
async fn the_sample_send_with_a_client_request_id_is_acknowledged_once_stored_and_a_repeat_identically() {
    let chat = Chat::with(&[SAMPLE, ("two-1", "2")]).await;
    let sample = events::named("sendMessageWithId");

    for _ in 0..2 {
        assert_eq!(
            routes::handle(Route::SendMessage, &sample, &Services::new(&chat.store).with_messenger(&chat.messenger))
                .await
                .status(),
            200
        );
    }

    let acks: Vec<Value> = chat.frames_to(SAMPLE.0);
    assert_eq!(acks.len(), 2, "one answer per request: {acks:?}");
    assert_eq!(acks[0], acks[1], "the repeat is acknowledged with the first seq and sentAt");
    let sent_at = acks[0]["sentAt"].clone();
    assert_eq!(
        acks[0],
        json!({"type": "ack", "clientRequestId": "r-1", "destinationUserId": "2", "seq": 1, "sentAt": sent_at})
    );
    let delivered = chat.frames_to("two-1");
    assert_eq!(delivered.len(), 2, "delivered again on the repeat (at least once)");
    assert!(delivered.iter().all(|frame| frame["seq"] == 1 && frame["body"] == "hello there!"));
    let history = sync(&chat, "two-1", json!({"action": "sync"})).await;
    assert_eq!(history["conversations"][0]["seq"], 1, "stored once");
}

#[tokio::test]
async fn the_sample_room_message_reaches_the_room_and_advances_the_senders_read_state() {
    let chat = Chat::with(&[SAMPLE, ("two-1", "2")]).await;
    chat.join(SAMPLE.0, "lobby").await;
    chat.join("two-1", "lobby").await;

    assert_eq!(
        routes::handle(
            Route::SendMessage,
            &events::named("sendRoomMessage"),
            &Services::new(&chat.store).with_messenger(&chat.messenger)
        )
        .await
        .status(),
        200
    );

    assert_eq!(chat.frames_to("two-1").last().unwrap()["body"], "hi everyone");
    let mine = sync(&chat, SAMPLE.0, json!({"action": "sync"})).await;
    assert_eq!(
        (mine["conversations"][0]["seq"].clone(), mine["conversations"][0]["readSeq"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn marking_a_conversation_with_no_message_read_sends_no_receipt_to_the_other_user() {
    let chat = Chat::with(&[("alice-1", "alice"), ("stranger-1", "stranger")]).await;

    let mark = json!({"action": "markRead", "userId": "stranger", "seq": 5});
    assert_eq!(chat.request(Route::MarkRead, "alice-1", mark).await, 200);

    assert_eq!(chat.frames_to("alice-1").last().unwrap()["readSeq"], 0);
    assert!(chat.frames_to("stranger-1").is_empty(), "a stranger hears nothing: {:?}", chat.frames_to("stranger-1"));
}

#[tokio::test]
async fn marking_read_what_was_read_already_answers_the_reader_and_posts_nothing_else() {
    let chat = Chat::with(&[("bob-1", "bob"), ("bob-2", "bob"), ("alice-1", "alice"), ("alice-2", "alice")]).await;
    chat.say("alice-1", direct("bob", "one")).await;
    let mark = json!({"action": "markRead", "userId": "alice", "seq": 1});
    assert_eq!(chat.request(Route::MarkRead, "bob-1", mark.clone()).await, 200);
    let posts = chat.messenger.posts().len();

    for from in ["bob-1", "bob-2"] {
        assert_eq!(chat.request(Route::MarkRead, from, mark.clone()).await, 200);
    }

    assert_eq!(chat.messenger.posts().len(), posts + 2, "the two answers and nothing more");
    for tab in ["bob-1", "bob-2"] {
        assert_eq!(chat.frames_to(tab).last().unwrap(), &json!({"type": "read", "userId": "alice", "readSeq": 1}));
    }
}

#[tokio::test]
async fn a_reply_then_a_read_of_it_sends_the_receipt_the_reply_did_not() {
    let chat = Chat::with(&[("bob-1", "bob"), ("alice-1", "alice")]).await;
    chat.say("alice-1", direct("bob", "one")).await;
    // Bob replies without marking read: sending raised his own readSeq to 2.
    chat.say("bob-1", direct("alice", "two")).await;

    let mark = json!({"action": "markRead", "userId": "alice", "seq": 2});
    assert_eq!(chat.request(Route::MarkRead, "bob-1", mark.clone()).await, 200);
    let receipts = || chat.frames_to("alice-1").into_iter().filter(|frame| frame["type"] == "readReceipt").count();
    let after_first = receipts();
    assert_eq!(chat.request(Route::MarkRead, "bob-1", mark).await, 200);

    assert_eq!(after_first, 1, "alice learns bob read up to 2: {:?}", chat.frames_to("alice-1"));
    assert_eq!(receipts(), 1, "and only once");
}
