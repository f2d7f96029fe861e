//! Events shaped like API Gateway's, field for field (`events/*.json` are the reference).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::headers::ClientHeaders;
use time::macros::format_description;

/// What the gateway knows of a connection, for its events.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The connection's id.
    pub connection_id: String,
    /// When it was opened, epoch milliseconds.
    pub connected_at: i64,
    /// The client's IP address.
    pub source_ip: String,
    /// The client's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// What the `$connect` authorizer allowed: `principalId` and its context, values as
    /// strings. Every event of the connection carries it as `requestContext.authorizer`.
    pub authorizer: Option<Map<String, Value>>,
}

/// The API's own coordinates, the same in every event.
#[derive(Clone, Debug)]
pub struct Api {
    /// The API id (`local` unless told otherwise).
    pub api_id: String,
    /// The stage.
    pub stage: String,
    /// The `Host` clients connect to, e.g. `127.0.0.1:3001`.
    pub domain_name: String,
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn request_time(epoch_ms: i64) -> String {
    let format = format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    OffsetDateTime::from_unix_timestamp(epoch_ms / 1000)
        .ok()
        .and_then(|time| time.format(format).ok())
        .unwrap_or_default()
}

/// An ISO-8601 timestamp with milliseconds, as the @connections API writes them.
pub fn iso8601(epoch_ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .ok()
        .and_then(|time| time.format(format).ok())
        .unwrap_or_default()
}

fn request_context(api: &Api, peer: &Peer, route_key: &str, event_type: &str, request_id: &str) -> Map<String, Value> {
    let now = now_ms();
    let mut context = Map::new();
    context.insert("routeKey".into(), route_key.into());
    context.insert("eventType".into(), event_type.into());
    context.insert("extendedRequestId".into(), request_id.into());
    context.insert("requestTime".into(), request_time(now).into());
    context.insert("messageDirection".into(), "IN".into());
    context.insert("stage".into(), api.stage.clone().into());
    context.insert("connectedAt".into(), peer.connected_at.into());
    context.insert("requestTimeEpoch".into(), now.into());
    let mut identity = Map::new();
    if let Some(agent) = &peer.user_agent {
        identity.insert("userAgent".into(), agent.clone().into());
    }
    identity.insert("sourceIp".into(), peer.source_ip.clone().into());
    context.insert("identity".into(), identity.into());
    context.insert("requestId".into(), request_id.into());
    context.insert("domainName".into(), api.domain_name.clone().into());
    context.insert("connectionId".into(), peer.connection_id.clone().into());
    context.insert("apiId".into(), api.api_id.clone().into());
    if let Some(authorizer) = &peer.authorizer {
        context.insert("authorizer".into(), authorizer.clone().into());
    }
    context
}

fn header_maps(pairs: &[(String, String)]) -> (Map<String, Value>, Map<String, Value>) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for (name, value) in pairs {
        single.insert(name.clone(), value.clone().into());
        match multi.entry(name.clone()).or_insert_with(|| json!([])) {
            Value::Array(values) => values.push(value.clone().into()),
            _ => unreachable!("multi-value entries are arrays"),
        }
    }
    (single, multi)
}

/// The CONNECT event: the upgrade request's headers (plus API Gateway's own) and query.
pub fn connect(api: &Api, peer: &Peer, headers: &ClientHeaders, query: &[(String, String)], request_id: &str) -> Value {
    let mut event = upgrade_request(api, peer, headers, query, request_id, &[]);
    event.insert("isBase64Encoded".into(), false.into());
    event.into()
}

/// The `$connect` route's ARN, as a REQUEST authorizer's `methodArn` names it.
pub fn method_arn(api: &Api) -> String {
    format!("arn:aws:execute-api:us-east-1:123456789012:{}/{}/$connect", api.api_id, api.stage)
}

/// The REQUEST authorizer's event: the upgrade's headers and query, `methodArn`, and the same
/// `requestContext` the `$connect` event gets.
pub fn authorizer(
    api: &Api,
    peer: &Peer,
    headers: &ClientHeaders,
    query: &[(String, String)],
    request_id: &str,
) -> Value {
    let mut event = Map::new();
    event.insert("type".into(), "REQUEST".into());
    event.insert("methodArn".into(), method_arn(api).into());
    event.extend(upgrade_request(api, peer, headers, query, request_id, &AUTHORIZER_HEADERS));
    event.insert("stageVariables".into(), Map::new().into());
    event.into()
}

/// Headers the authorizer's event carries and the `$connect` event after it does not, as AWS
/// sends them (captured on AWS in localstack/localstack#7191; the developer guide's example
/// authorizer input for WebSocket APIs has them too).
const AUTHORIZER_HEADERS: [(&str, &str); 3] =
    [("Connection", "upgrade"), ("content-length", "0"), ("Upgrade", "websocket")];

/// Headers, query and request context of the upgrade request, shared by `$connect` and its
/// authorizer; `added` are headers API Gateway adds for this event alone.
fn upgrade_request(
    api: &Api,
    peer: &Peer,
    headers: &ClientHeaders,
    query: &[(String, String)],
    request_id: &str,
    added: &[(&str, &str)],
) -> Map<String, Value> {
    // The client's headers with the client's spelling, then those API Gateway adds with its own.
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("upgrade"))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    pairs.push(("X-Amzn-Trace-Id".into(), format!("Root=1-{:08x}-{}", now_ms() / 1000, request_id)));
    pairs.push(("X-Forwarded-For".into(), peer.source_ip.clone()));
    pairs.push(("X-Forwarded-Port".into(), api.domain_name.rsplit(':').next().unwrap_or("80").to_owned()));
    pairs.push(("X-Forwarded-Proto".into(), "http".into()));
    pairs.extend(added.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    let (headers, multi_headers) = header_maps(&pairs);
    let mut event = Map::new();
    event.insert("headers".into(), headers.into());
    event.insert("multiValueHeaders".into(), multi_headers.into());
    if !query.is_empty() {
        let (single, multi) = header_maps(query);
        event.insert("queryStringParameters".into(), single.into());
        event.insert("multiValueQueryStringParameters".into(), multi.into());
    }
    event.insert("requestContext".into(), request_context(api, peer, "$connect", "CONNECT", request_id).into());
    event
}

/// A MESSAGE event for a text frame routed to `route_key`.
pub fn message(api: &Api, peer: &Peer, route_key: &str, body: &str, request_id: &str, message_id: &str) -> Value {
    let mut context = request_context(api, peer, route_key, "MESSAGE", request_id);
    context.insert("messageId".into(), message_id.into());
    json!({ "requestContext": context, "body": body, "isBase64Encoded": false })
}

/// The DISCONNECT event, with the close code and reason.
pub fn disconnect(api: &Api, peer: &Peer, status_code: u16, reason: &str, request_id: &str) -> Value {
    let mut context = request_context(api, peer, "$disconnect", "DISCONNECT", request_id);
    context.insert("disconnectStatusCode".into(), status_code.into());
    context.insert("disconnectReason".into(), reason.into());
    let pairs = [
        ("Host".to_owned(), api.domain_name.clone()),
        ("x-api-key".to_owned(), String::new()),
        ("X-Forwarded-For".to_owned(), String::new()),
        ("x-restapi".to_owned(), String::new()),
    ];
    let (headers, multi_headers) = header_maps(&pairs);
    json!({
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": context,
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times_are_written_as_api_gateway_writes_them() {
        assert_eq!(request_time(1_795_255_200_000), "21/Nov/2026:10:00:00 +0000");
        assert_eq!(iso8601(1_795_255_200_123), "2026-11-21T10:00:00.123Z");
    }
}
