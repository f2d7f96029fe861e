//! The @connections API on the gateway's own port: `POST`, `GET` and `DELETE
//! /{stage}/@connections/{connectionId}`, with API Gateway's status codes and error types.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::limits::MAX_MESSAGE_BYTES;
use serde_json::json;

use crate::Gateway;
use crate::events::iso8601;

/// An error as the @connections API returns it: the status, `x-amzn-ErrorType` and a message.
fn error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "message": message }))).into_response();
    response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    response
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "")
}

/// Refuses requests that are not SigV4-signed, as API Gateway does. Signatures are not
/// verified: locally every credential is a dummy.
fn unsigned(headers: &HeaderMap) -> Option<Response> {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 "));
    (!signed).then(|| {
        error(StatusCode::FORBIDDEN, "ForbiddenException", "Missing Authentication Token: sign the request with SigV4")
    })
}

type Params = Path<(String, String)>;

fn check(gateway: &Gateway, stage: &str, headers: &HeaderMap) -> Option<Response> {
    if stage != gateway.api.stage {
        return Some(error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"));
    }
    unsigned(headers)
}

/// `POST`: sends the body to the connection as one frame.
pub(crate) async fn post(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = check(&gateway, &stage, &headers) {
        return refused;
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("Request data must be at most {MAX_MESSAGE_BYTES} bytes"),
        );
    }
    match gateway.connections.get(&connection_id) {
        Some(live) if live.send(body.to_vec()) => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

/// `GET`: when the connection was opened and last active, and who is on it.
pub(crate) async fn get(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Params,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check(&gateway, &stage, &headers) {
        return refused;
    }
    let Some(live) = gateway.connections.get(&connection_id) else { return gone() };
    let peer = &live.peer;
    let mut identity = json!({ "sourceIp": peer.source_ip });
    if let Some(agent) = &peer.user_agent {
        identity["userAgent"] = agent.clone().into();
    }
    axum::Json(json!({
        "connectedAt": iso8601(peer.connected_at),
        "identity": identity,
        "lastActiveAt": iso8601(live.last_active()),
    }))
    .into_response()
}

/// `DELETE`: closes the connection; `$disconnect` follows.
pub(crate) async fn delete(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Params,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check(&gateway, &stage, &headers) {
        return refused;
    }
    match gateway.connections.get(&connection_id) {
        Some(live) => {
            live.close(1000, "Connection deleted through the @connections API");
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}
