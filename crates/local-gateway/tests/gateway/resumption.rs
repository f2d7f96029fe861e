//! A client that was away while a conversation moved on comes back and, with `sync` and
//! `getHistory` alone, holds every message it missed, in order, with no gap: through the gateway
//! with real WebSocket clients, on the in-process functions here and on the real binaries with a
//! DynamoDB API server in `lambda_endpoint.rs`.

use std::collections::BTreeMap;

use chat_local_gateway::Running;
use serde_json::{Value, json};

use crate::support::{Client, gateway};

/// Sends are pipelined this deep: each is acknowledged once stored.
const WINDOW: usize = 16;

/// Sends every frame with its `clientRequestId`, at most [`WINDOW`] unacknowledged at once,
/// sending again any the function answered `unavailable` (too many senders on one seq at once):
/// as a client with an outbox does. Returns when every one is acknowledged.
async fn send_all(client: &mut Client, frames: Vec<Value>) {
    let mut pending: BTreeMap<String, Value> = BTreeMap::new();
    let mut queue = frames.into_iter();
    loop {
        while pending.len() < WINDOW {
            let Some(frame) = queue.next() else { break };
            let id = frame["clientRequestId"].as_str().expect("each frame has an id").to_owned();
            client.send_json(frame.clone()).await;
            pending.insert(id, frame);
        }
        if pending.is_empty() {
            return;
        }
        let answer = client.receive().await;
        let id = answer["clientRequestId"].as_str().unwrap_or_default().to_owned();
        match (answer["type"].as_str(), answer["error"].as_str()) {
            (Some("ack"), _) => {
                pending.remove(&id).unwrap_or_else(|| panic!("an ack for a request not pending: {answer}"));
            }
            (_, Some("unavailable")) => client.send_json(pending[&id].clone()).await,
            _ => panic!("an unexpected answer while sending: {answer}"),
        }
    }
}

/// Every message of a conversation after `after`, read a page at a time with `getHistory`.
async fn history_after(client: &mut Client, conversation: (&str, &str), mut after: u64) -> Vec<(u64, String)> {
    let mut messages = Vec::new();
    loop {
        let mut ask = json!({"action": "getHistory", "after": after, "limit": 100});
        ask[conversation.0] = json!(conversation.1);
        client.send_json(ask).await;
        let page = client.receive().await;
        assert_eq!(page["type"], "history", "{page}");
        for message in page["messages"].as_array().unwrap() {
            messages.push((message["seq"].as_u64().unwrap(), message["body"].as_str().unwrap().to_owned()));
        }
        if page["hasMore"] != true {
            return messages;
        }
        after = messages.last().expect("a page with more holds a message").0;
    }
}

/// Bob, who joined `lobby` and read everything, goes away; alice sends `room` messages to the
/// room and `direct` to bob; bob comes back and catches up with `sync` and `getHistory` only.
pub async fn a_client_back_from_an_absence_catches_up_on_everything(gateway: &Running, room: u64, direct: u64) {
    let mut bob = Client::connect(gateway, "bob").await;
    bob.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
    assert_eq!(bob.receive().await["joined"], true);
    bob.close(Some(1000)).await;

    let mut alice = Client::connect(gateway, "alice").await;
    alice.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
    assert_eq!(alice.receive().await["joined"], true);
    let mut frames: Vec<Value> = (1..=room)
        .map(|n| json!({"action": "sendMessage", "roomId": "lobby", "body": format!("room {n}"), "clientRequestId": format!("r{n}")}))
        .collect();
    frames.extend((1..=direct).map(|n| {
        json!({"action": "sendMessage", "destinationUserId": "bob", "body": format!("direct {n}"), "clientRequestId": format!("d{n}")})
    }));
    send_all(&mut alice, frames).await;

    let mut bob = Client::connect(gateway, "bob").await;
    bob.send_json(json!({"action": "sync"})).await;
    let sync = bob.receive().await;
    assert_eq!(sync["userId"], "bob");
    let entries = sync["conversations"].as_array().unwrap();
    let entry = |key: &str, value: &str| {
        entries.iter().find(|entry| entry[key] == value).unwrap_or_else(|| panic!("{key} {value} in {sync}")).clone()
    };
    let (lobby, with_alice) = (entry("roomId", "lobby"), entry("userId", "alice"));
    assert_eq!((lobby["seq"].as_u64(), lobby["readSeq"].as_u64()), (Some(room), Some(0)));
    assert_eq!((with_alice["seq"].as_u64(), with_alice["readSeq"].as_u64()), (Some(direct), Some(0)));

    let lobby_messages = history_after(&mut bob, ("roomId", "lobby"), 0).await;
    let direct_messages = history_after(&mut bob, ("userId", "alice"), 0).await;

    // Every seq once, in order, with no gap; each body exactly once (sends interleave, so which
    // seq a body got is the store's to choose).
    let seqs = |messages: &[(u64, String)]| messages.iter().map(|(seq, _)| *seq).collect::<Vec<_>>();
    assert_eq!(seqs(&lobby_messages), (1..=room).collect::<Vec<_>>());
    assert_eq!(seqs(&direct_messages), (1..=direct).collect::<Vec<_>>());
    let bodies = |messages: &[(u64, String)]| {
        let mut bodies: Vec<String> = messages.iter().map(|(_, body)| body.clone()).collect();
        bodies.sort();
        bodies
    };
    let mut expected_room: Vec<String> = (1..=room).map(|n| format!("room {n}")).collect();
    expected_room.sort();
    let mut expected_direct: Vec<String> = (1..=direct).map(|n| format!("direct {n}")).collect();
    expected_direct.sort();
    assert_eq!(bodies(&lobby_messages), expected_room);
    assert_eq!(bodies(&direct_messages), expected_direct);
}

#[tokio::test]
async fn a_client_away_while_1000_room_and_100_direct_messages_were_sent_holds_all_1100_after_sync_and_history() {
    let gateway = gateway().await;
    a_client_back_from_an_absence_catches_up_on_everything(&gateway, 1000, 100).await;
}
