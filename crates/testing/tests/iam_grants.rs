//! The template's IAM grants checked against what the code really calls: each route runs through
//! its paths against a real DynamoDB API server (dynalite) while every request is recorded, and
//! each call must be granted to the route's function, on the table or index it names. (The
//! template test checks the other way: that nothing more is granted.)

use std::collections::{BTreeMap, BTreeSet};

use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_testing::calls::DynamoDbCalls;
use chat_testing::dynalite::{MEMBERSHIPS_TABLE, MESSAGES_TABLE, TABLE, USERS_TABLE};
use chat_testing::{Dynalite, RecordingMessenger, deployment, events};
use serde_json::json;

/// The grants of the function serving `route`, as `(action, resource)`.
fn granted(route: Route) -> BTreeSet<(String, String)> {
    let template = deployment::template();
    let routes = template.routes().expect("every route resolves to a function");
    let spec = routes.iter().find(|spec| spec.key == route.key()).expect("the route is declared");
    granted_to(&spec.function)
}

/// A recorded DynamoDB call as the grant it needs: `(dynamodb:Operation, ${Table.Arn}[/index/i])`.
fn grant_needed(call: &chat_testing::calls::Call) -> (String, String) {
    let table = match call.table.as_str() {
        TABLE => "ConnectionsTable",
        MEMBERSHIPS_TABLE => "MembershipsTable",
        USERS_TABLE => "UsersTable",
        MESSAGES_TABLE => "MessagesTable",
        other => panic!("an unknown table {other}"),
    };
    let resource = match &call.index {
        Some(index) => format!("${{{table}.Arn}}/index/{index}"),
        None => format!("${{{table}.Arn}}"),
    };
    (format!("dynamodb:{}", call.operation), resource)
}

/// The grants of the function `logical_id`, as `(action, resource)`.
fn granted_to(logical_id: &str) -> BTreeSet<(String, String)> {
    let template = deployment::template();
    let function =
        template.functions().into_iter().find(|function| function.logical_id == logical_id).expect("the function");
    function
        .statements
        .iter()
        .flat_map(|statement| {
            statement.actions.iter().flat_map(move |action| {
                statement.resources.iter().map(move |resource| (action.clone(), resource.clone()))
            })
        })
        .collect()
}

#[tokio::test]
async fn every_dynamodb_call_a_route_makes_is_granted_to_its_function_on_that_table() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let record = DynamoDbCalls::default();
    let store = chat_testing::dynalite::store_with(record.client(&dynalite.client()));
    let messenger = RecordingMessenger::new();
    let message = |route: Route, from: &str, frame: serde_json::Value| {
        // A minute after connecting: old enough for a gone connection to lose its record.
        (route, events::message_after(route, from, &frame.to_string(), 60))
    };
    let direct = |to: &str, id: Option<&str>| {
        let mut frame = json!({"action": "sendMessage", "destinationUserId": to, "body": "hi"});
        if let Some(id) = id {
            frame["clientRequestId"] = json!(id);
        }
        frame
    };
    let to_lobby = json!({"action": "sendMessage", "roomId": "lobby", "body": "hi all"});
    let script = vec![
        (Route::Connect, events::connect("a1", Some("alice"))),
        (Route::Connect, events::connect("a2", Some("alice"))),
        (Route::Connect, events::connect("b1", Some("bob"))),
        message(Route::JoinRoom, "a1", json!({"action": "joinRoom", "roomId": "lobby"})),
        message(Route::JoinRoom, "b1", json!({"action": "joinRoom", "roomId": "lobby"})),
        // Connecting when the user has rooms subscribes the new connection.
        (Route::Connect, events::connect("a3", Some("alice"))),
        message(Route::SendMessage, "a1", direct("bob", None)),
        message(Route::SendMessage, "a1", direct("bob", Some("r1"))),
        message(Route::SendMessage, "a1", direct("bob", Some("r1"))),
        message(Route::SendMessage, "a1", direct("carol", None)),
        message(Route::SendMessage, "a1", to_lobby.clone()),
        message(Route::GetHistory, "b1", json!({"action": "getHistory", "userId": "alice"})),
        message(Route::GetHistory, "b1", json!({"action": "getHistory", "roomId": "lobby"})),
        message(Route::Sync, "a1", json!({"action": "sync"})),
        message(Route::MarkRead, "b1", json!({"action": "markRead", "userId": "alice", "seq": 2})),
        message(Route::MarkRead, "b1", json!({"action": "markRead", "roomId": "lobby", "seq": 1})),
        message(Route::LeaveRoom, "a2", json!({"action": "leaveRoom", "roomId": "lobby"})),
        message(Route::JoinRoom, "a2", json!({"action": "joinRoom", "roomId": "lobby"})),
        (Route::Disconnect, events::disconnect("a3")),
    ];
    let mut observed: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut run = async |route: Route, event| {
        let handled = routes::handle(route, &event, &Services::new(&store).with_messenger(&messenger)).await;
        assert!(handled.status() < 500, "{} answered {}", route.key(), handled.status());
        observed.entry(route.key()).or_default().extend(record.take().iter().map(grant_needed));
    };
    for (route, event) in script {
        run(route, event).await;
    }
    // Gone connections are removed by whoever posts to them; one whose record is already gone
    // loses the membership no record lists.
    messenger.mark_gone("b1");
    let (route, event) = message(Route::SendMessage, "a1", to_lobby.clone());
    run(route, event).await;
    run(Route::Connect, events::connect("b2", Some("bob"))).await;
    let (route, event) = message(Route::JoinRoom, "b2", json!({"action": "joinRoom", "roomId": "lobby"}));
    run(route, event).await;
    dynalite
        .client()
        .delete_item()
        .table_name(TABLE)
        .key("connectionId", aws_sdk_dynamodb::types::AttributeValue::S("b2".into()))
        .send()
        .await
        .expect("dynalite");
    messenger.mark_gone("b2");
    let (route, event) = message(Route::SendMessage, "a1", to_lobby);
    run(route, event).await;

    for route in Route::ALL.iter().copied().filter(|route| *route != Route::Default) {
        let calls = observed.get(route.key()).unwrap_or_else(|| panic!("{} was exercised", route.key()));
        let grants = granted(route);
        let missing: Vec<_> = calls.difference(&grants).collect();
        assert!(missing.is_empty(), "{}'s function calls what it is not granted: {missing:?}", route.key());
    }
}

#[tokio::test]
async fn every_dynamodb_call_the_fan_out_worker_makes_is_granted_to_it_on_that_table() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let record = DynamoDbCalls::default();
    let store = chat_testing::dynalite::store_with(record.client(&dynalite.client()));
    let messenger = RecordingMessenger::new();
    for (connection, user) in [("a1", "alice"), ("b1", "bob"), ("c1", "carol")] {
        assert_eq!(
            routes::handle(
                Route::Connect,
                &events::connect(connection, Some(user)),
                &Services::new(&store).with_messenger(&messenger)
            )
            .await
            .status(),
            200
        );
        let join = events::message_after(Route::JoinRoom, connection, r#"{"action":"joinRoom","roomId":"lobby"}"#, 60);
        assert_eq!(
            routes::handle(Route::JoinRoom, &join, &Services::new(&store).with_messenger(&messenger)).await.status(),
            200
        );
    }
    record.take();
    // b1 is gone; c1 is gone and its record already deleted (its membership is orphaned).
    messenger.mark_gone("b1");
    messenger.mark_gone("c1");
    dynalite
        .client()
        .delete_item()
        .table_name(TABLE)
        .key("connectionId", aws_sdk_dynamodb::types::AttributeValue::S("c1".into()))
        .send()
        .await
        .expect("dynalite");
    let page = chat_core::delivery::queue::FanOutPage {
        api_id: "a1b2c3d4e5".into(),
        stage: "dev".into(),
        room_id: chat_core::protocol::RoomId::parse("lobby").unwrap(),
        frame: r#"{"senderId":"alice","roomId":"lobby","body":"hi","seq":1,"sentAt":1}"#.into(),
        opened_by: i64::MAX,
        connection_ids: vec!["a1".into(), "b1".into(), "c1".into()],
    };
    let mut metrics = chat_core::metrics::Metrics::new(Route::SendMessage);

    chat_core::delivery::page::fan_out_page(&page, &store, &messenger, None, &mut metrics)
        .await
        .expect("the page is posted");

    assert_eq!((metrics.messages_delivered, metrics.connections_gone), (1, 2));
    let calls: BTreeSet<(String, String)> = record.take().iter().map(grant_needed).collect();
    assert!(calls.contains(&("dynamodb:DeleteItem".to_owned(), "${MembershipsTable.Arn}".to_owned())), "{calls:?}");
    let grants = granted_to("FanOutWorkerFunction");
    let missing: Vec<_> = calls.difference(&grants).collect();
    assert!(missing.is_empty(), "the worker calls what it is not granted: {missing:?}");
}
