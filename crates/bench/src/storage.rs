//! What storing messages costs a function: the send-message, get-history and sync release
//! binaries, warm, against dynalite, posting to a counting @connections endpoint; and the
//! DynamoDB calls one stored message makes.

use std::path::Path;

use chat_core::protocol::{RoomId, UserId};
use chat_core::routes::Route;
use chat_core::store::{ConnectionStore, Conversation, MessageStore, StoredMessage, UserStore, subscriptions};
use chat_testing::{Dynalite, events};
use serde_json::{Value, json};

use crate::cold_start::function_env;
use crate::report::{Figure, ms, percentile};
use crate::rooms::ConnectionsSink;
use crate::runtime_api::{RuntimeApi, Warm};

/// Members of the room measured, the sender included.
const ROOM: usize = 10;
/// Messages in the conversation `getHistory` reads, and conversations of the user `sync` lists.
const HUNDRED: usize = 100;

fn event(route: Route, body: Value) -> Vec<u8> {
    let mut event = events::json(route);
    event["requestContext"]["routeKey"] = json!(route.key());
    event["body"] = body.to_string().into();
    serde_json::to_vec(&event).expect("an event")
}

/// `invocations` warm runs of each: a direct message to a user with one connection, a message
/// to a room of [`ROOM`], a `getHistory` of 100 messages, a `sync` of 100 conversations.
pub async fn measure(dir: &Path, invocations: usize, figures: &mut Vec<Figure>) {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(chat_testing::dynalite::TABLE).await;
    let endpoint = ConnectionsSink::start().await;
    let user = |id: &str| UserId::parse(id).expect("a valid user id");
    let lobby = RoomId::parse("lobby").expect("a valid room id");

    // The sample events' sender (user 1), a recipient with one connection, and a room of ten.
    let members: Vec<(String, String)> = (0..ROOM)
        .map(
            |n| if n == 0 { ("L0SM9cOFvHcCIhw=".into(), "1".into()) } else { (format!("member{n}="), format!("m{n}")) },
        )
        .collect();
    for (id, owner) in members.iter().cloned().chain([("two=".to_owned(), "2".to_owned())]) {
        store.save(&events::connection(&id, &owner)).await.expect("seeding dynalite");
    }
    for (_, owner) in &members {
        store.add_room(&user(owner), &lobby).await.expect("seeding dynalite");
        subscriptions::settle_room(&store, &user(owner), &lobby, events::now_ms()).await.expect("seeding dynalite");
    }
    // A conversation of 100 messages, and 100 conversations of user 1 (99 direct, the room).
    let with_three = Conversation::direct(&user("1"), &user("3"));
    for n in 0..HUNDRED {
        let body = format!("message {n}: {}", "x".repeat(80));
        store.append(&with_three, &user("3"), &body, 1_795_255_200_000 + n as i64, None).await.expect("seeding");
    }
    for n in 0..HUNDRED - 1 {
        let message = StoredMessage {
            seq: 1,
            sender_id: user(&format!("friend-{n}")),
            body: "hello there, how have you been?".into(),
            sent_at: 1_795_255_200_000 + n as i64,
        };
        store.record_direct(&user("1"), &message).await.expect("seeding dynalite");
    }

    let env = function_env(&dynalite, &endpoint.url);
    let mut api = RuntimeApi::start().await;
    let binary = |route| dir.join(chat_testing::deployment::binary_of(route));
    let runs = [
        (
            "sendMessage to a user with 1 connection, stored",
            Route::SendMessage,
            json!({"action": "sendMessage", "destinationUserId": "2", "body": "hello there!"}),
        ),
        (
            "sendMessage to a room of 10 members, stored",
            Route::SendMessage,
            json!({"action": "sendMessage", "roomId": "lobby", "body": "hello, room"}),
        ),
        ("getHistory of 100 messages", Route::GetHistory, json!({"action": "getHistory", "userId": "3", "limit": 100})),
        (
            "sync of a user with 100 conversations, one page of 100",
            Route::Sync,
            json!({"action": "sync", "limit": 100}),
        ),
    ];
    for (name, route, body) in runs {
        let Warm { times, cpu, .. } = api.run_warm(&binary(route), &env, event(route, body), invocations).await;
        figures.push(Figure {
            name: format!("{name}: per invocation, median / p90; CPU per invocation"),
            value: format!(
                "{} / {}; {:.0} µs ({invocations} invocations)",
                ms(percentile(&times, 50.0)),
                ms(percentile(&times, 90.0)),
                cpu * 1e6 / (invocations + 1) as f64
            ),
            target: None,
        });
    }
    let counts = endpoint.counts.lock().expect("counts").clone();
    assert_eq!(counts.get("two="), Some(&(invocations + 1)), "the recipient got every direct message");
    assert_eq!(counts.get("member1="), Some(&(invocations + 1)), "a member got every room message");
    let sender = store.find("L0SM9cOFvHcCIhw=").await.expect("dynalite").expect("the sender's record");
    assert!(sender.rooms.contains(&lobby));
}
