//! The @connections API on the gateway's own port: `POST`, `GET` and `DELETE
//! /{stage}/@connections/{connectionId}`, with API Gateway's status codes and error types.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::limits::MAX_MESSAGE_BYTES;
use serde_json::json;

use crate::connections::Queued;
use crate::events::iso8601;
use crate::gateway::Gateway;

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

/// The connection a request names, once the request is known to be for this stage and signed.
pub(crate) struct Target(String);

impl FromRequestParts<Arc<Gateway>> for Target {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Response> {
        let Path((stage, connection_id)) =
            Path::<(String, String)>::from_request_parts(parts, gateway).await.map_err(IntoResponse::into_response)?;
        if stage != gateway.api.stage {
            return Err(error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"));
        }
        if let Some(refused) = unsigned(&parts.headers) {
            return Err(refused);
        }
        // Callbacks share the account-level throttle with client frames. The error type is the
        // API model's for PostToConnection, GetConnection and DeleteConnection; the message is
        // unverified.
        if !gateway.account_allows() {
            return Err(error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException", "Too Many Requests"));
        }
        Ok(Target(connection_id))
    }
}

/// `POST`: queues the body for the connection as one frame. Never waits for the client: a
/// client whose outbox is full gets 429 `LimitExceededException`, as API Gateway answers when
/// "the WebSocket client side buffer is full".
pub(crate) async fn post(State(gateway): State<Arc<Gateway>>, Target(connection_id): Target, body: Body) -> Response {
    // Read one byte past the limit at most, so any larger body is answered the same way.
    let Ok(body) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("Request data must be at most {MAX_MESSAGE_BYTES} bytes"),
        );
    };
    let Some(live) = gateway.connections.get(&connection_id) else { return gone() };
    match live.send(body.to_vec()) {
        Queued::Accepted => StatusCode::OK.into_response(),
        Queued::Full => error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException", "Limit Exceeded"),
        Queued::Closed => gone(),
    }
}

/// `GET`: when the connection was opened and last active, and who is on it.
pub(crate) async fn get(State(gateway): State<Arc<Gateway>>, Target(connection_id): Target) -> Response {
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
pub(crate) async fn delete(State(gateway): State<Arc<Gateway>>, Target(connection_id): Target) -> Response {
    match gateway.connections.get(&connection_id) {
        Some(live) => {
            live.close(1000, "Connection deleted through the @connections API");
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}
