//! The sample events in `events/`, the same files `sam local invoke -e` and
//! `cargo lambda invoke --data-file` use, with small changes for each test.

use chat_core::ApiGatewayWebsocketProxyRequest;
use chat_core::protocol::UserId;
use chat_core::routes::Route;
use chat_core::store::Connection;

/// The file name of a route's sample event: its route key without the `$`.
pub fn file_of(route: Route) -> String {
    format!("{}.json", route.key().trim_start_matches('$'))
}

/// A route's sample event as raw JSON.
pub fn json(route: Route) -> serde_json::Value {
    let path = crate::workspace_root().join("events").join(file_of(route));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// A route's sample event, parsed as the Lambda runtime parses it.
pub fn load(route: Route) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(json(route)).unwrap_or_else(|error| panic!("{} does not parse: {error}", file_of(route)))
}

/// A sample event by its file name without `.json` (`sendRoomMessage`, `sendMessageWithId`).
pub fn named(name: &str) -> ApiGatewayWebsocketProxyRequest {
    let path = crate::workspace_root().join("events").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} does not parse: {error}", path.display()))
}

/// The sample connect event, for another connection and user query.
pub fn connect(connection_id: &str, user_id: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut event = json(Route::Connect);
    event["requestContext"]["connectionId"] = connection_id.into();
    match user_id {
        Some(user) => {
            event["queryStringParameters"] = serde_json::json!({ "userId": user });
            event["multiValueQueryStringParameters"] = serde_json::json!({ "userId": [user] });
        }
        None => {
            let object = event.as_object_mut().expect("the connect event is an object");
            object.remove("queryStringParameters");
            object.remove("multiValueQueryStringParameters");
        }
    }
    serde_json::from_value(event).expect("the edited connect event parses")
}

/// The sample event of a MESSAGE route, sent by another connection with another body.
pub fn message(route: Route, connection_id: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = json(route);
    event["requestContext"]["connectionId"] = connection_id.into();
    event["body"] = body.into();
    serde_json::from_value(event).expect("the edited message event parses")
}

/// The sample disconnect event, for another connection.
pub fn disconnect(connection_id: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = json(Route::Disconnect);
    event["requestContext"]["connectionId"] = connection_id.into();
    serde_json::from_value(event).expect("the edited disconnect event parses")
}

/// The sample event of a MESSAGE route, sent by another connection with another body,
/// `seconds` after the sample connection opened (the sample events' `connectedAt`).
pub fn message_after(route: Route, connection_id: &str, body: &str, seconds: i64) -> ApiGatewayWebsocketProxyRequest {
    let mut request = message(route, connection_id, body);
    request.request_context.request_time_epoch = request.request_context.connected_at + seconds * 1000;
    request
}

/// The sample `sendMessage` event's time (epoch ms), 5 s after the sample connection opened:
/// "now" for a test that reads the store directly, when every [`connection`] is open.
pub fn now_ms() -> i64 {
    load(Route::SendMessage).request_context.request_time_epoch
}

/// A connection record for a test, opened at the sample events' `connectedAt`.
pub fn connection(connection_id: &str, user_id: &str) -> Connection {
    let connected_at = load(Route::Connect).request_context.connected_at;
    Connection::new(connection_id, UserId::parse(user_id).expect("a valid test user id"), connected_at)
}

/// The authorizer's sample event (`events/authorizer.json`) as raw JSON.
pub fn authorizer_json() -> serde_json::Value {
    let path = crate::workspace_root().join("events/authorizer.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// The authorizer's sample event carrying `token` in the query (or no token at all).
pub fn authorizer(token: Option<&str>) -> chat_core::auth::AuthorizerRequest {
    let mut event = authorizer_json();
    match token {
        Some(token) => {
            event["queryStringParameters"]["token"] = token.into();
            event["multiValueQueryStringParameters"]["token"] = serde_json::json!([token]);
        }
        None => {
            event.as_object_mut().expect("an object").remove("queryStringParameters");
            event.as_object_mut().expect("an object").remove("multiValueQueryStringParameters");
        }
    }
    serde_json::from_value(event).expect("the authorizer's sample event parses")
}
