//! Rooms: joining, leaving and talking, driven by the sample events on the in-memory store with
//! a messenger that records what it sends. (Both stores' room behaviour is in store_contract.rs.)

use chat_core::limits::{MAX_POSTS_IN_FLIGHT, MAX_ROOMS_PER_USER};
use chat_core::protocol::RoomId;
use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_core::store::SubscriptionStore;
use chat_testing::{Chat, RecordingMessenger, events};
use serde_json::{Value, json};

fn to_room(room: &str, body: &str) -> Value {
    json!({"action": "sendMessage", "roomId": room, "body": body})
}

#[tokio::test]
async fn the_sample_join_event_answers_joined_and_joining_again_answers_the_same() {
    let chat = Chat::with(&[("L0SM9cOFvHcCIhw=", "1")]).await;
    let sample = events::load(Route::JoinRoom);
    for _ in 0..2 {
        assert_eq!(
            routes::handle(Route::JoinRoom, &sample, &Services::new(&chat.store).with_messenger(&chat.messenger))
                .await
                .status(),
            200
        );
    }
    let joined = json!({"roomId": "lobby", "joined": true, "seq": 0});
    assert_eq!(chat.frames_to("L0SM9cOFvHcCIhw="), vec![joined.clone(), joined]);
}

#[tokio::test]
async fn a_room_message_reaches_every_other_member_connection_and_every_other_tab_of_the_sender() {
    let chat = Chat::with(&[
        ("alice-1", "alice"),
        ("alice-2", "alice"),
        ("alice-3", "alice"),
        ("bob-1", "bob"),
        ("carol-1", "carol"),
    ])
    .await;
    for member in ["alice-1", "bob-1"] {
        assert_eq!(chat.join(member, "lobby").await, 200);
    }
    let before: Vec<usize> =
        ["alice-1", "alice-2", "alice-3", "bob-1", "carol-1"].iter().map(|id| chat.frames_to(id).len()).collect();

    assert_eq!(chat.say("alice-1", to_room("lobby", "hi")).await, 200);

    let delivered = json!({"senderId": "alice", "roomId": "lobby", "body": "hi"});
    assert_eq!(chat.frames_to("bob-1").last().map(chat_testing::stored), Some(delivered.clone()));
    for tab in ["alice-2", "alice-3"] {
        assert_eq!(
            chat.frames_to(tab).last().map(chat_testing::stored),
            Some(delivered.clone()),
            "{tab}: rooms belong to users, so every tab of alice is a member"
        );
    }
    assert_eq!(chat.frames_to("bob-1").last().unwrap()["seq"], 1, "the room's first message");
    assert_eq!(chat.frames_to("alice-1").len(), before[0], "the sending connection gets nothing back");
    assert_eq!(chat.frames_to("carol-1").len(), before[4]);
}

#[tokio::test]
async fn joining_in_one_tab_tells_the_others_and_a_tab_opened_later_is_a_member_too() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice"), ("bob-1", "bob")]).await;

    assert_eq!(chat.join("alice-1", "lobby").await, 200);
    assert_eq!(chat.connect("alice-3", "alice").await, 200);
    chat.join("bob-1", "lobby").await;
    chat.say("bob-1", to_room("lobby", "welcome")).await;

    let joined = json!({"roomId": "lobby", "joined": true, "seq": 0});
    assert_eq!(chat.frames_to("alice-2")[0], joined, "the other tab is told");
    for tab in ["alice-1", "alice-2", "alice-3"] {
        assert_eq!(chat.frames_to(tab).last().unwrap()["body"], "welcome", "{tab}");
    }
}

#[tokio::test]
async fn leaving_in_one_tab_leaves_on_every_tab_and_tells_the_others() {
    let chat = Chat::with(&[("alice-1", "alice"), ("alice-2", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    chat.join("bob-1", "lobby").await;

    assert_eq!(chat.leave("alice-2", "lobby").await, 200);
    chat.say("bob-1", to_room("lobby", "anyone?")).await;

    let left = json!({"roomId": "lobby", "left": true});
    assert_eq!(chat.frames_to("alice-1").last(), Some(&left), "told, and nothing delivered after");
    assert_eq!(chat.frames_to("alice-2").last(), Some(&left), "the answer");
    assert_eq!(
        chat.request(Route::GetHistory, "alice-1", json!({"action": "getHistory", "roomId": "lobby"})).await,
        403
    );
}

#[tokio::test]
async fn a_connection_that_is_not_a_member_gets_not_in_room_and_nothing_is_delivered() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("bob-1", "lobby").await;
    let bob_before = chat.frames_to("bob-1").len();

    assert_eq!(chat.say("alice-1", to_room("lobby", "let me in")).await, 403);

    assert_eq!(chat.frames_to("alice-1")[0]["error"], "notInRoom");
    assert_eq!(chat.frames_to("bob-1").len(), bob_before);
}

#[tokio::test]
async fn a_room_whose_only_member_is_the_sender_delivers_nothing_and_answers_nothing() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;
    chat.join("alice-1", "lobby").await;
    assert_eq!(chat.say("alice-1", to_room("lobby", "anyone?")).await, 200);
    assert_eq!(
        chat.frames_to("alice-1"),
        vec![json!({"roomId": "lobby", "joined": true, "seq": 0})],
        "replies are for errors"
    );
}

#[tokio::test]
async fn leaving_answers_left_even_when_not_a_member_and_stops_deliveries() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    chat.join("bob-1", "lobby").await;
    assert_eq!(chat.leave("bob-1", "lobby").await, 200);
    assert_eq!(chat.leave("bob-1", "never-joined").await, 200);
    let bob = chat.frames_to("bob-1");
    assert_eq!(bob[1..], [json!({"roomId": "lobby", "left": true}), json!({"roomId": "never-joined", "left": true})]);

    chat.say("alice-1", to_room("lobby", "bye bob")).await;
    assert_eq!(chat.frames_to("bob-1").len(), 3, "bob left: nothing more reaches him");
}

#[tokio::test]
async fn the_room_past_the_limit_is_refused_with_too_many_rooms() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;
    for n in 0..MAX_ROOMS_PER_USER {
        assert_eq!(chat.join("alice-1", &format!("room-{n}")).await, 200);
    }
    assert_eq!(chat.join("alice-1", "one-too-many").await, 429);
    assert_eq!(chat.frames_to("alice-1").last().unwrap()["error"], "tooManyRooms");
}

#[tokio::test]
async fn bad_room_frames_get_their_error_codes() {
    let chat = Chat::with(&[("alice-1", "alice")]).await;
    let cases = [
        (Route::JoinRoom, json!({"action": "joinRoom"}), "missingField"),
        (Route::JoinRoom, json!({"action": "joinRoom", "roomId": "no spaces"}), "invalidField"),
        (Route::LeaveRoom, json!({"action": "leaveRoom", "roomId": 7}), "invalidField"),
        (
            Route::SendMessage,
            json!({"action": "sendMessage", "roomId": "lobby", "destinationUserId": "bob", "body": "x"}),
            "invalidField",
        ),
        (Route::SendMessage, json!({"action": "sendMessage", "body": "x"}), "missingField"),
    ];
    for (route, frame, code) in cases {
        let event = events::message(route, "alice-1", &frame.to_string());
        let handled = routes::handle(route, &event, &Services::new(&chat.store).with_messenger(&chat.messenger)).await;
        assert_eq!(handled.status(), 400, "{frame}");
        assert_eq!(chat.frames_to("alice-1").last().unwrap()["error"], code, "{frame}");
    }
}

#[tokio::test]
async fn a_room_message_over_128_kb_as_delivered_is_refused_with_body_too_large() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    chat.join("bob-1", "lobby").await;
    let body = "x".repeat(chat_core::limits::MAX_MESSAGE_BYTES - 30);
    assert_eq!(chat.say("alice-1", to_room("lobby", &body)).await, 413);
    assert_eq!(chat.frames_to("alice-1").last().unwrap()["error"], "bodyTooLarge");
    assert_eq!(chat.frames_to("bob-1").len(), 1, "only bob's own joined frame");
}

#[tokio::test]
async fn a_member_that_is_gone_loses_its_memberships_and_record_and_the_others_are_still_served() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob"), ("carol-1", "carol")]).await;
    for member in ["alice-1", "bob-1", "carol-1"] {
        chat.join(member, "lobby").await;
        chat.join(member, "kitchen").await;
    }
    chat.messenger.mark_gone("bob-1");

    assert_eq!(chat.say("alice-1", to_room("lobby", "still there?")).await, 200);

    assert_eq!(chat.frames_to("carol-1").last().unwrap()["body"], "still there?");
    for room in ["lobby", "kitchen"] {
        let members = chat.store.members(&RoomId::parse(room).unwrap(), None).await.unwrap().connection_ids;
        assert!(!members.contains(&"bob-1".to_owned()), "bob's {room} membership is gone");
    }
}

#[tokio::test]
async fn a_large_room_is_served_with_at_most_the_fan_out_limit_in_flight() {
    let members: Vec<(String, String)> = (0..96).map(|n| (format!("m{n}"), format!("user-{n}"))).collect();
    let refs: Vec<(&str, &str)> = members.iter().map(|(id, user)| (id.as_str(), user.as_str())).collect();
    let chat = Chat::with_messenger(&refs, RecordingMessenger::with_latency(std::time::Duration::from_millis(5))).await;
    for (id, _) in &refs {
        chat.join(id, "hall").await;
    }
    assert_eq!(chat.say("m0", to_room("hall", "all of you")).await, 200);
    for (id, _) in &refs[1..] {
        assert_eq!(chat.frames_to(id).last().unwrap()["body"], "all of you");
    }
    assert!(chat.messenger.most_in_flight() <= MAX_POSTS_IN_FLIGHT);
}

#[tokio::test]
async fn joining_answers_the_rooms_latest_seq_so_history_before_it_and_deliveries_after_it_miss_nothing() {
    let chat = Chat::with(&[("alice-1", "alice"), ("bob-1", "bob")]).await;
    chat.join("alice-1", "lobby").await;
    for body in ["one", "two"] {
        assert_eq!(chat.say("alice-1", to_room("lobby", body)).await, 200);
    }

    assert_eq!(chat.join("bob-1", "lobby").await, 200);
    assert_eq!(chat.say("alice-1", to_room("lobby", "three")).await, 200);

    let bob = chat.frames_to("bob-1");
    assert_eq!(bob[0], json!({"roomId": "lobby", "joined": true, "seq": 2}));
    assert_eq!((bob[1]["body"].clone(), bob[1]["seq"].clone()), (json!("three"), json!(3)), "the next one is live");
}
