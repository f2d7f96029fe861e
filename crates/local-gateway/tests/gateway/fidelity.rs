//! The gateway behaves as API Gateway does (AWS's developer guide for WebSocket APIs:
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api.html>), observed
//! through a recording Lambda Invoke API behind `--lambda-endpoint`.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{Client, Reply, all_ok, eventually, field_paths, gateway_with_lambda, refused_status};
use chat_core::routes::Route;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn sample(route: Route) -> Value {
    chat_testing::events::json(route)
}

#[tokio::test]
async fn events_have_the_fields_of_the_sample_events() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;
    client.send_text(r#"{"action":"sendMessage","destinationUserId":"2","body":"hi"}"#).await;
    client.send_text(r#"{"action":"send"}"#).await;
    client.close(Some(1000)).await;
    eventually("$disconnect ran", || !lambda.events_of("DisconnectFunction").is_empty()).await;

    let connect = &lambda.events_of("ConnectFunction")[0];
    let send = &lambda.events_of("SendMessageFunction")[0];
    let default = &lambda.events_of("DefaultFunction")[0];
    let disconnect = &lambda.events_of("DisconnectFunction")[0];

    assert_eq!(field_paths(connect), field_paths(&sample(Route::Connect)));
    assert_eq!(field_paths(send), field_paths(&sample(Route::SendMessage)));
    assert_eq!(field_paths(default), field_paths(&sample(Route::Default)));
    assert_eq!(field_paths(disconnect), field_paths(&sample(Route::Disconnect)));
    assert_eq!(connect["queryStringParameters"], json!({"userId": "1"}));
    assert_eq!(connect["multiValueQueryStringParameters"], json!({"userId": ["1"]}));
    for header in ["Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-Amzn-Trace-Id", "X-Forwarded-For"] {
        assert!(connect["headers"].get(header).is_some(), "CONNECT lacks header {header}: {}", connect["headers"]);
    }
    let disconnect_headers: Vec<&String> = disconnect["headers"].as_object().unwrap().keys().collect();
    let sample_headers: Vec<String> =
        sample(Route::Disconnect)["headers"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(disconnect_headers.len(), sample_headers.len());
    for event in [connect, send, default, disconnect] {
        assert_eq!(event["requestContext"]["connectionId"], connect["requestContext"]["connectionId"]);
        assert_eq!(event["requestContext"]["connectedAt"], connect["requestContext"]["connectedAt"]);
    }
    for (event, route) in
        [(connect, "$connect"), (send, "sendMessage"), (default, "$default"), (disconnect, "$disconnect")]
    {
        let parsed: chat_core::ApiGatewayWebsocketProxyRequest = serde_json::from_value(event.clone()).unwrap();
        assert_eq!(parsed.request_context.route_key.as_deref(), Some(route));
    }
}

/// An event AWS sent, vendored from the `aws_lambda_events` crate (tests/fixtures/aws/README.md).
fn captured(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Each field's path with its JSON type; header and query maps count as one field each (their
/// names are the client's).
fn typed_paths(value: &Value) -> std::collections::BTreeMap<String, &'static str> {
    let kind = |value: &Value| match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    field_paths(value)
        .into_iter()
        .map(|path| {
            let found = path.split('.').fold(value, |node, key| &node[key]);
            (path, kind(found))
        })
        .collect()
}

/// Compares an event the gateway built with one AWS sent: every field of each, with its type,
/// but the fields under `only_ours` (the other event's situation lacks them) and `only_theirs`.
fn assert_like_aws(ours: &Value, theirs: &Value, only_ours: &[&str], only_theirs: &[&str]) {
    let (ours, theirs) = (typed_paths(ours), typed_paths(theirs));
    let under = |path: &str, fields: &[&str]| {
        fields.iter().any(|field| path == *field || path.starts_with(&format!("{field}.")))
    };
    for (path, kind) in &ours {
        if !under(path, only_ours) {
            assert_eq!(
                theirs.get(path),
                Some(kind),
                "{path}: ours is a {kind}, AWS's event has {:?}",
                theirs.get(path)
            );
        }
    }
    for (path, kind) in &theirs {
        if !under(path, only_theirs) {
            assert_eq!(ours.get(path), Some(kind), "{path}: AWS sends a {kind}, ours has {:?}", ours.get(path));
        }
    }
}

#[tokio::test]
async fn connect_and_disconnect_events_carry_the_fields_of_events_captured_from_aws_and_no_others() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let client = Client::connect(&gateway, "1").await;
    client.close(None).await;
    eventually("$disconnect ran", || !lambda.events_of("DisconnectFunction").is_empty()).await;

    let connect = &lambda.events_of("ConnectFunction")[0];
    let disconnect = &lambda.events_of("DisconnectFunction")[0];

    // AWS's $connect was captured from a client that sent no query string and no User-Agent,
    // on an API that requires API keys; ours has a query (?userId=1) and a User-Agent (AWS's
    // `$context.identity.userAgent`, set when the client sends one), and no API key.
    let situational = ["queryStringParameters", "multiValueQueryStringParameters", "requestContext.identity.userAgent"];
    let api_key = ["requestContext.identity.apiKey", "requestContext.identity.apiKeyId"];
    let aws_connect = captured("example-apigw-websocket-request-without-method.json");
    assert_like_aws(connect, &aws_connect, &situational, &api_key);
    let user_agent = ["requestContext.identity.userAgent"];
    assert_like_aws(disconnect, &captured("example-apigw-websocket-request-disconnect-route.json"), &user_agent, &[]);
}

#[tokio::test]
async fn a_refused_connect_fails_the_upgrade_with_its_status_and_no_connection_exists() {
    let behaviour = Arc::new(|function: &str, event: &Value| {
        let refused = function == "ConnectFunction" && event["queryStringParameters"]["userId"] == "refused";
        Reply::Status(if refused { 401 } else { 200 })
    });
    let (gateway, lambda) = gateway_with_lambda(behaviour, |_| {}).await;

    let status = refused_status(Client::try_connect(&format!("{}?userId=refused", gateway.url())).await.err().unwrap());

    assert_eq!(status, 401);
    assert_eq!(gateway.open_connections(), 0);
    // A positive signal instead of a sleep: a later connection's $disconnect. A $disconnect for
    // the refused one would have come before it.
    Client::connect(&gateway, "accepted").await.close(Some(1000)).await;
    eventually("the accepted connection's $disconnect ran", || !lambda.disconnects().is_empty()).await;
    let connects = lambda.events_of("ConnectFunction");
    let disconnects = lambda.events_of("DisconnectFunction");
    assert_eq!(disconnects.len(), 1, "no $disconnect for a connection that never was");
    assert_eq!(disconnects[0]["requestContext"]["connectionId"], connects[1]["requestContext"]["connectionId"]);
}

#[tokio::test]
async fn a_failing_connect_integration_refuses_the_upgrade_with_502() {
    let behaviour = Arc::new(
        |function: &str, _: &Value| {
            if function == "ConnectFunction" { Reply::FunctionError } else { Reply::Status(200) }
        },
    );
    let (gateway, _lambda) = gateway_with_lambda(behaviour, |_| {}).await;

    let status = refused_status(Client::try_connect(&format!("{}?userId=1", gateway.url())).await.err().unwrap());

    assert_eq!(status, 502);
}

#[tokio::test]
async fn a_failing_handler_answers_internal_server_error_a_slow_one_endpoint_request_timed_out_and_the_connection_stays_open()
 {
    let behaviour = Arc::new(|function: &str, _: &Value| match function {
        "DefaultFunction" => Reply::FunctionError,
        "SendMessageFunction" => Reply::Sleep(Duration::from_secs(2)),
        _ => Reply::Status(200),
    });
    let (gateway, _lambda) =
        gateway_with_lambda(behaviour, |settings| settings.integration_timeout = Duration::from_millis(300)).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text("hello").await;
    let failed = client.receive_text().await;
    client.send_text(r#"{"action":"sendMessage"}"#).await;
    let timed_out = client.receive_text().await;

    // Byte for byte as AWS writes them (aws/chalice#1406, Kludex/mangum#128): key order, and a
    // space after "message": and after each comma.
    for (text, message) in [(&failed, "Internal server error"), (&timed_out, "Endpoint request timed out")] {
        let frame: Value = serde_json::from_str(text).unwrap();
        let (connection_id, request_id) =
            (frame["connectionId"].as_str().unwrap(), frame["requestId"].as_str().unwrap());
        assert_eq!(connection_id.len(), 16);
        let aws =
            format!(r#"{{"message": "{message}", "connectionId":"{connection_id}", "requestId":"{request_id}"}}"#);
        assert_eq!(*text, aws);
    }
    client.send_text("still there").await;
    assert_eq!(client.receive().await["message"], "Internal server error", "the connection is still open");
}

#[tokio::test]
async fn a_500_from_a_handler_sends_the_client_nothing() {
    // "marker" fails its integration, which the gateway answers with a frame of its own.
    let behaviour = Arc::new(|function: &str, event: &Value| match (function, event["body"].as_str()) {
        ("DefaultFunction", Some("marker")) => Reply::FunctionError,
        ("DefaultFunction", _) => Reply::Status(500),
        _ => Reply::Status(200),
    });
    let (gateway, lambda) = gateway_with_lambda(behaviour, |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text("hello").await;
    eventually("hello was invoked", || !lambda.events_of("DefaultFunction").is_empty()).await;
    gateway.settled().await;
    client.send_text("marker").await;

    let next = client.receive().await;
    assert_eq!(next["message"], "Internal server error", "the 500 sent nothing before the marker: {next}");
}

#[tokio::test]
async fn without_a_default_route_unmatched_frames_are_forbidden() {
    let mut template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(crate::support::template_path()).unwrap()).unwrap();
    template["Resources"].as_mapping_mut().unwrap().remove("DefaultRoute");
    let path = std::env::temp_dir().join(format!("template-without-default-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_yaml_ng::to_string(&template).unwrap()).unwrap();
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |settings| settings.template = path.clone()).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text(r#"{"action":"send"}"#).await;
    let text = client.receive_text().await;

    let frame: Value = serde_json::from_str(&text).unwrap();
    let (connection_id, request_id) = (frame["connectionId"].as_str().unwrap(), frame["requestId"].as_str().unwrap());
    assert_eq!(
        text,
        format!(r#"{{"message": "Forbidden", "connectionId":"{connection_id}", "requestId":"{request_id}"}}"#)
    );
    assert!(lambda.events_of("DefaultFunction").is_empty());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn route_selection_is_by_the_action_field_and_case_sensitive() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;

    for frame in [r#"{"action":"sendMessage"}"#, r#"{"action":"sendmessage"}"#, r#"{"action":"$connect"}"#, "[]"] {
        client.send_text(frame).await;
    }
    eventually("four frames routed", || {
        lambda.events_of("SendMessageFunction").len() + lambda.events_of("DefaultFunction").len() == 4
    })
    .await;

    assert_eq!(lambda.events_of("SendMessageFunction").len(), 1);
    assert_eq!(lambda.events_of("DefaultFunction").len(), 3);
}

async fn closes(frame: Message) -> (u16, (i64, String)) {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_raw(frame).await;
    let code = client.closed_with().await;

    eventually("$disconnect ran", || !lambda.disconnects().is_empty()).await;
    (code, lambda.disconnects()[0].clone())
}

#[tokio::test]
async fn a_frame_over_32_kb_closes_with_1009_and_fires_disconnect() {
    let (code, disconnect) = closes(Message::Text("x".repeat(32 * 1024 + 1).into())).await;

    assert_eq!(code, 1009);
    assert_eq!(disconnect.0, 1009);
}

#[tokio::test]
async fn a_message_over_128_kb_in_small_frames_closes_with_1009() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;
    let chunk = vec![b'x'; 30 * 1024];

    client.send_raw(Message::Frame(Frame::message(chunk.clone(), OpCode::Data(Data::Text), false))).await;
    for _ in 0..4 {
        client.send_raw(Message::Frame(Frame::message(chunk.clone(), OpCode::Data(Data::Continue), false))).await;
    }
    client.send_raw(Message::Frame(Frame::message(chunk, OpCode::Data(Data::Continue), true))).await;

    assert_eq!(client.closed_with().await, 1009);
    eventually("$disconnect ran", || !lambda.disconnects().is_empty()).await;
    assert_eq!(lambda.disconnects()[0].0, 1009);
    assert!(lambda.events_of("DefaultFunction").is_empty(), "the oversized message reached no route");
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let (code, disconnect) = closes(Message::Binary(vec![1, 2, 3].into())).await;

    assert_eq!(code, 1003);
    assert_eq!(disconnect.0, 1003);
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_fires_disconnect() {
    let (gateway, lambda) =
        gateway_with_lambda(all_ok(), |settings| settings.idle_timeout = Duration::from_millis(400)).await;
    let mut client = Client::connect(&gateway, "1").await;

    let code = client.closed_with().await;

    assert_eq!(code, 1001);
    eventually("$disconnect ran", || !lambda.disconnects().is_empty()).await;
    assert_eq!(lambda.disconnects()[0], (1001, "Idle timeout".to_owned()));
}

#[tokio::test]
async fn data_frames_keep_a_connection_from_going_idle() {
    let (gateway, _lambda) =
        gateway_with_lambda(all_ok(), |settings| settings.idle_timeout = Duration::from_millis(1000)).await;
    let mut client = Client::connect(&gateway, "1").await;

    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        client.send_text(r#"{"action":"send"}"#).await;
    }

    assert_eq!(gateway.open_connections(), 1, "2 s of traffic outlived a 1 s idle timeout");
}

#[tokio::test]
async fn a_connection_is_closed_at_its_maximum_duration_however_busy() {
    let (gateway, lambda) =
        gateway_with_lambda(all_ok(), |settings| settings.max_duration = Duration::from_millis(500)).await;
    let mut client = Client::connect(&gateway, "1").await;
    client.send_text(r#"{"action":"send"}"#).await;

    let code = client.closed_with().await;

    assert_eq!(code, 1001);
    eventually("$disconnect ran", || !lambda.disconnects().is_empty()).await;
    assert_eq!(lambda.disconnects()[0].1, "Maximum connection duration reached");
}

#[tokio::test]
async fn disconnect_reports_how_the_client_closed() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;

    Client::connect(&gateway, "1").await.close(Some(4000)).await;
    Client::connect(&gateway, "2").await.close(None).await;
    Client::connect(&gateway, "3").await.drop_connection();
    eventually("three $disconnects", || lambda.disconnects().len() == 3).await;

    let mut codes: Vec<i64> = lambda.disconnects().iter().map(|(code, _)| *code).collect();
    codes.sort();
    assert_eq!(codes, [1005, 1006, 4000]);
    assert!(lambda.disconnects().contains(&(1005, "Client-side close frame status not set".to_owned())));
}

#[tokio::test]
async fn a_slow_handler_for_one_connection_does_not_stall_another() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let behaviour = Arc::new(move |function: &str, event: &Value| match (function, event["body"].as_str()) {
        ("DefaultFunction", Some("slow")) => Reply::WaitFor(gate.clone()),
        ("DefaultFunction", Some("fast")) => Reply::Release(gate.clone()),
        _ => Reply::Status(200),
    });
    let (gateway, lambda) = gateway_with_lambda(behaviour, |_| {}).await;
    let mut slow = Client::connect(&gateway, "1").await;
    let mut fast = Client::connect(&gateway, "2").await;

    slow.send_text("slow").await;
    eventually("the slow frame is being handled", || lambda.events_of("DefaultFunction").len() == 1).await;
    fast.send_text("fast").await;

    // The slow handler returns only once the fast frame has been handled: were the gateway to
    // handle frames one at a time, neither would finish.
    eventually("both frames were handled", || lambda.events_of("DefaultFunction").len() == 2).await;
    drop(release);
}
