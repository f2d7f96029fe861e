//! The chat end to end through the local gateway (in-process backend) with real WebSocket clients.

use crate::support::{Client, eventually, gateway, refused_status};
use serde_json::json;

#[tokio::test]
async fn two_users_chat_and_the_sender_gets_no_echo() {
    let gateway = gateway().await;
    let mut one = Client::connect(&gateway, "1").await;
    let mut two = Client::connect(&gateway, "2").await;

    one.send_message("2", "hello there!").await;
    two.send_message("1", "hi back").await;

    assert_eq!(two.receive_message().await, json!({"senderId": "1", "body": "hello there!", "destinationUserId": "2"}));
    assert_eq!(one.receive_message().await, json!({"senderId": "2", "body": "hi back", "destinationUserId": "1"}));
    one.expect_nothing_before_echo(&gateway).await;
    two.expect_nothing_before_echo(&gateway).await;
}

#[tokio::test]
async fn a_user_with_two_tabs_receives_in_both() {
    let gateway = gateway().await;
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut alice_other_tab = Client::connect(&gateway, "alice").await;
    let mut bob_phone = Client::connect(&gateway, "bob").await;
    let mut bob_laptop = Client::connect(&gateway, "bob").await;

    alice.send_message("bob", "hi").await;

    let hi = json!({"senderId": "alice", "body": "hi", "destinationUserId": "bob"});
    for bob in [&mut bob_phone, &mut bob_laptop] {
        assert_eq!(bob.receive_message().await, hi);
    }
    assert_eq!(alice_other_tab.receive_message().await, hi, "the sender's other tab shows what it sent");
    // Once that message is handled, a note to herself reaches her other tab next: nothing else
    // was sent to it.
    gateway.settled().await;
    alice.send_message("alice", "marker").await;
    alice_other_tab.next_message_is(json!({"senderId": "alice", "body": "marker", "destinationUserId": "alice"})).await;
}

#[tokio::test]
async fn a_message_to_an_offline_user_waits_in_history_for_them() {
    let gateway = gateway().await;
    let mut alice = Client::connect(&gateway, "alice").await;

    alice.send_message("bob", "anyone?").await;
    alice.expect_nothing_before_echo(&gateway).await;
    let mut bob = Client::connect(&gateway, "bob").await;
    bob.send_json(json!({"action": "getHistory", "userId": "alice"})).await;

    let history = bob.receive().await;
    assert_eq!(history["type"], "history");
    assert_eq!(history["userId"], "alice");
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(chat_testing::stored(&history["messages"][0]), json!({"senderId": "alice", "body": "anyone?"}));
    assert_eq!(history["messages"][0]["seq"], 1);
    assert_eq!((history["hasMore"].clone(), history["oldestSeq"].clone()), (json!(false), json!(1)));
}

#[tokio::test]
async fn invalid_send_message_frames_get_error_frames_and_reach_nobody() {
    let gateway = gateway().await;
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;

    alice.send_json(json!({"action": "sendMessage", "body": "hi"})).await;
    let missing = alice.receive().await;
    alice.send_json(json!({"action": "sendMessage", "destinationUserId": "bob", "body": 5})).await;
    let invalid = alice.receive().await;

    assert_eq!(missing["error"], "missingField");
    assert!(missing["message"].as_str().unwrap().contains("destinationUserId"));
    assert_eq!(invalid["error"], "invalidField");
    alice.send_message("bob", "marker").await;
    bob.next_message_is(json!({"senderId": "alice", "body": "marker", "destinationUserId": "bob"})).await;
}

#[tokio::test]
async fn the_classic_send_transcript_answers_pong_and_echoes() {
    let gateway = gateway().await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text(r#"{"action":"send"}"#).await;
    let pong = client.receive().await;
    client.send_text(r#"{"action":"send","message":"psst"}"#).await;
    let echo = client.receive().await;

    assert_eq!(pong, json!({"message": "🏓 pong"}));
    assert_eq!(echo, json!({"message": "psst"}));
}

#[tokio::test]
async fn frames_that_match_no_route_reach_default_and_list_the_actions() {
    let gateway = gateway().await;
    let mut client = Client::connect(&gateway, "1").await;

    for frame in ["not json at all", "{}", r#"{"action":"SendMessage"}"#, r#"{"action":42}"#] {
        client.send_text(frame).await;
        let answer = client.receive().await;
        assert_eq!(answer["error"], "unknownAction", "{frame}");
        assert_eq!(
            answer["actions"],
            json!(["sendMessage", "joinRoom", "leaveRoom", "getHistory", "sync", "markRead", "send"]),
            "{frame}"
        );
    }
}

#[tokio::test]
async fn connecting_without_a_user_id_is_refused_with_400_and_leaves_nothing() {
    let gateway = gateway().await;

    let status = refused_status(Client::try_connect(&gateway.url()).await.err().expect("refused"));
    let invalid = refused_status(Client::try_connect(&format!("{}?userId=a%20b", gateway.url())).await.err().unwrap());

    assert_eq!((status, invalid), (400, 400));
    assert_eq!(gateway.open_connections(), 0);
    assert!(gateway.store().unwrap().is_empty());
}

#[tokio::test]
async fn connecting_to_another_stage_is_forbidden() {
    let gateway = gateway().await;
    let url = gateway.url().replace("/dev", "/prod") + "?userId=1";

    let status = refused_status(Client::try_connect(&url).await.err().expect("refused"));

    assert_eq!(status, 403);
}

#[tokio::test]
async fn connection_ids_look_like_api_gateways() {
    let gateway = gateway().await;
    let _client = Client::connect(&gateway, "1").await;
    let store = gateway.store().unwrap();

    let ids = store
        .connections_of(&chat_core::protocol::UserId::parse("1").unwrap(), chat_local_gateway::events::now_ms())
        .await
        .unwrap();

    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].len(), 16, "{}", ids[0]);
    assert!(ids[0].ends_with('='), "{}", ids[0]);
}

use chat_core::store::ConnectionStore;

#[tokio::test]
async fn messages_from_one_client_arrive_in_the_order_sent() {
    let gateway = gateway().await;
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;

    for n in 0..50 {
        alice.send_message("bob", &n.to_string()).await;
    }

    for n in 0..50 {
        assert_eq!(bob.receive().await["body"], n.to_string());
    }
}

#[tokio::test]
async fn the_store_is_empty_after_everyone_leaves_however_they_leave() {
    let gateway = gateway().await;
    let store = gateway.store().unwrap();
    let polite = Client::connect(&gateway, "1").await;
    let silent = Client::connect(&gateway, "2").await;
    let vanishing = Client::connect(&gateway, "3").await;
    assert_eq!(store.len(), 3);

    polite.close(Some(1000)).await;
    silent.close(None).await;
    vanishing.drop_connection();

    eventually("every record is gone", || store.is_empty()).await;
    eventually("no connection is open", || gateway.open_connections() == 0).await;
}

#[tokio::test]
async fn a_client_close_is_answered_so_the_closing_handshake_completes() {
    let gateway = gateway().await;
    let client = Client::connect(&gateway, "1").await;

    let reply = client.close_and_read_reply(1000).await;

    assert_eq!(reply, Some(1000));
}

#[tokio::test]
async fn shutting_down_closes_every_socket_with_1001_and_forgets_them() {
    let gateway = gateway().await;
    let store = gateway.store().unwrap();
    let mut clients = vec![Client::connect(&gateway, "1").await, Client::connect(&gateway, "2").await];

    let stopping = tokio::spawn(gateway.shutdown());

    for client in &mut clients {
        assert_eq!(client.closed_with().await, 1001);
    }
    stopping.await.unwrap().unwrap();
    assert!(store.is_empty());
}

#[tokio::test]
async fn three_clients_in_a_room_talk_through_the_gateway_with_routes_from_the_template() {
    let gateway = gateway().await;
    let mut clients = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let mut client = Client::connect(&gateway, user).await;
        client.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
        assert_eq!(client.receive().await, json!({"roomId": "lobby", "joined": true, "seq": 0}));
        clients.push(client);
    }
    clients[0].send_json(json!({"action": "sendMessage", "roomId": "lobby", "body": "hi all"})).await;
    for client in &mut clients[1..] {
        assert_eq!(client.receive_message().await, json!({"senderId": "alice", "roomId": "lobby", "body": "hi all"}));
    }
    clients[0].expect_nothing_before_echo(&gateway).await;
    clients[2].send_json(json!({"action": "leaveRoom", "roomId": "lobby"})).await;
    assert_eq!(clients[2].receive().await, json!({"roomId": "lobby", "left": true}));
}

#[tokio::test]
async fn in_process_messages_are_kept_for_the_templates_retention() {
    let mut settings = crate::support::settings();
    settings.parameter_overrides = vec![("MessageRetentionDays".into(), "7".into())];
    let seven = chat_local_gateway::serve(settings).await.expect("the gateway starts");
    let seven_days = std::time::Duration::from_secs(7 * 24 * 60 * 60);
    assert_eq!(seven.store().map(|store| store.retention()), Some(seven_days));

    let default = gateway().await.store().expect("in-process").retention();
    assert_eq!(default, chat_core::limits::MESSAGE_RETENTION, "the template's default, 30 days");
}
