//! The WebSocket side: `$connect` before the handshake, frames routed in order, `$disconnect` after.
//!
//! A connection is registered as soon as `$connect` accepts it, before the 101 is sent, so a
//! post that follows `$connect` at once waits in its outbox instead of answering 410.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chat_core::error::Chain;
use chat_core::limits::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use chat_core::routes::Route;
use futures::StreamExt;
use serde_json::json;
use tokio::time::{Duration, sleep_until};

use crate::Gateway;
use crate::authorizer::{self, Verdict};
use crate::connections::Live;
use crate::events::{self, Peer, now_ms};

/// Read buffer of each socket. tungstenite keeps one this size per connection (128 KiB by
/// default); 1 KiB holds a typical chat frame, and larger frames take several reads. With it,
/// 10,000 idle connections need about 6 KB each.
const SOCKET_BUFFER_BYTES: usize = 1024;

/// How long a closing connection waits for the client's closing handshake, and for the frames
/// still queued for it to be written.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, axum::Json(json!({ "message": "Forbidden" }))).into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// `GET /{stage}?…` with an upgrade: runs `$connect`, then the connection.
pub(crate) async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    Path(stage): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if stage != gateway.api.stage {
        return forbidden();
    }
    let url_chars =
        uri.to_string().chars().count() + headers.get(header::HOST).map_or(0, |host| host.len()) + "wss://".len();
    if url_chars > gateway.limits.max_url_chars {
        tracing::info!(url_chars, "refused connection: URL too long");
        return refused(StatusCode::URI_TOO_LONG, "Request-URI Too Long");
    }
    if !gateway.new_connections.try_take() {
        tracing::info!("refused connection: over the new-connection rate");
        return refused(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    let mut peer = Peer {
        connection_id: gateway.ids.next(),
        connected_at: now_ms(),
        source_ip: client.ip().to_string(),
        user_agent: headers.get(header::USER_AGENT).and_then(|agent| agent.to_str().ok()).map(str::to_owned),
        authorizer: None,
    };
    if let Some(authorizer) = &gateway.authorizer {
        match authorizer::run(&gateway, authorizer, &peer, &headers, &query).await {
            Verdict::Allow(authorized) => peer.authorizer = Some(authorized),
            Verdict::Refuse(status, message) => return refused(status, message),
        }
    }
    // Headers the `$connect` integration answers with go into the 101 (the subprotocol echo).
    let mut answer_headers = HeaderMap::new();
    if let Some(function) = gateway.routes.function(Route::Connect.key()) {
        let request_id = gateway.ids.next();
        let event = events::connect(&gateway.api, &peer, &headers, &query, &request_id);
        let (result, took) = gateway.invoke(function, event).await;
        let status = match &result {
            Ok(response) => response.status_code,
            Err(error) => {
                tracing::error!(connection_id = peer.connection_id, error = %Chain(error), "$connect integration failed");
                500
            }
        };
        tracing::info!(connection_id = peer.connection_id, route = "$connect", status, took_ms = took, "connect");
        if !(200..300).contains(&status) {
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = result.ok().and_then(|response| response.body).map(|body| body.to_vec()).unwrap_or_default();
            return (status, body).into_response();
        }
        if let Ok(response) = result {
            answer_headers = integration_headers(&response);
        }
    }

    let live = Arc::new(Live::new(peer));
    gateway.connections.insert(live.clone());
    let on_failure = (gateway.clone(), live.clone());
    let mut response = upgrade
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(move |error| {
            let (gateway, live) = on_failure;
            tracing::warn!(connection_id = live.peer.connection_id, %error, "the WebSocket handshake failed");
            tokio::spawn(async move { gateway.disconnected(&live, 1006, "Connection closed abnormally").await });
        })
        .on_upgrade(move |socket| run(gateway, live, socket));
    response.headers_mut().extend(answer_headers);
    response
}

/// The headers of a `$connect` integration's answer that may go into the 101: all but those
/// the handshake itself owns.
fn integration_headers(response: &chat_core::ApiGatewayProxyResponse) -> HeaderMap {
    let owned = [header::CONNECTION, header::UPGRADE, header::SEC_WEBSOCKET_ACCEPT, header::CONTENT_LENGTH];
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers.iter().chain(response.multi_value_headers.iter()) {
        if !owned.contains(name) && !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers
}

/// Serves one open connection until it closes, then fires `$disconnect`. The reader and the
/// writer run side by side in this one task: a slow handler does not hold up frames to the
/// client, and a client that does not read does not hold up its own frames' handling.
async fn run(gateway: Arc<Gateway>, live: Arc<Live>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let writer = live.write_to(sink, gateway.limits.write_timeout, CLOSE_GRACE);
    let ((), client_close) = tokio::join!(writer, read(&gateway, &live, stream));
    let (code, reason) = live.server_close().unwrap_or(client_close);
    gateway.disconnected(&live, code, &reason).await;
}

/// Reads and routes the client's frames until the connection closes; how the client closed it.
async fn read(gateway: &Gateway, live: &Live, mut stream: futures::stream::SplitStream<WebSocket>) -> (u16, String) {
    let max_deadline = tokio::time::Instant::now() + gateway.max_duration;
    let mut shutdown = gateway.shutdown.clone();
    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    });
    let mut client_close = (1006, "Connection closed abnormally".to_owned());
    loop {
        let idle_for = Duration::from_millis((now_ms() - live.last_active()).max(0) as u64);
        let idle_deadline = tokio::time::Instant::now() + gateway.idle_timeout.saturating_sub(idle_for);
        tokio::select! {
            _ = live.closed.notified() => break,
            _ = &mut stopping => { live.close(1001, "Going away"); break }
            _ = sleep_until(idle_deadline) => { live.close(1001, "Idle timeout"); break }
            _ = sleep_until(max_deadline) => { live.close(1001, "Maximum connection duration reached"); break }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    live.touch();
                    gateway.route_frame(live, text.as_str()).await;
                }
                Some(Ok(Message::Binary(_))) => { live.close(1003, "Binary frames are not supported"); break }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    live.mark_closing();
                    if let Some(frame) = frame {
                        client_close = (frame.code, frame.reason.to_string());
                    } else {
                        client_close = (1005, "Client-side close frame status not set".to_owned());
                    }
                    break;
                }
                Some(Err(error)) => {
                    if is_too_big(error) {
                        live.close(1009, "Message too big");
                    }
                    live.mark_closing();
                    break;
                }
                None => {
                    live.mark_closing();
                    break;
                }
            }
        }
    }

    // Finish the closing handshake: read until the client's close frame (after ours) or the
    // end of the stream; reading also flushes tungstenite's reply to a client's close. A client
    // that never answers gets CLOSE_GRACE, no more.
    if live.server_close().is_none_or(|(code, _)| code != crate::connections::WRITE_TIMED_OUT.0) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    client_close
}

/// Whether a read failed because a frame or message was over the size limits.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
    )
}

impl Gateway {
    /// Routes one text frame and runs its function; failures answer as API Gateway does.
    pub(crate) async fn route_frame(&self, live: &Live, body: &str) {
        let connection_id = &live.peer.connection_id;
        let key = self.routes.select(body);
        let request_id = self.ids.next();
        let Some(function) = self.routes.function(key) else {
            tracing::info!(connection_id, route = key, "no route and no $default: Forbidden");
            self.reply_to(live, "Forbidden", &request_id).await;
            return;
        };
        let event = events::message(&self.api, &live.peer, key, body, &request_id, &self.ids.next());
        let (result, took) = self.invoke(function, event).await;
        match result {
            Ok(response) => {
                tracing::info!(connection_id, route = key, status = response.status_code, took_ms = took, "route");
                if let Some(contract) = &self.contract {
                    contract.check_routed(body, response.status_code);
                }
            }
            Err(error) => {
                tracing::error!(connection_id, route = key, took_ms = took, error = %Chain(&error), "integration failed");
                self.reply_to(live, "Internal server error", &request_id).await;
            }
        }
    }

    /// Sends one of API Gateway's own frames (`Forbidden`, `Internal server error`) to a client.
    async fn reply_to(&self, live: &Live, message: &str, request_id: &str) {
        let frame = json!({ "message": message, "connectionId": live.peer.connection_id, "requestId": request_id });
        live.send(frame.to_string().into_bytes());
    }

    /// Forgets a closed connection and fires its `$disconnect` once.
    pub(crate) async fn disconnected(&self, live: &Live, code: u16, reason: &str) {
        if self.connections.remove(&live.peer.connection_id).is_some() {
            self.fire_disconnect(&live.peer, code, reason).await;
        }
    }

    /// Runs `$disconnect` for a connection that `$connect` accepted.
    async fn fire_disconnect(&self, peer: &Peer, code: u16, reason: &str) {
        let connection_id = &peer.connection_id;
        let status = match self.routes.function(Route::Disconnect.key()) {
            Some(function) => {
                let event = events::disconnect(&self.api, peer, code, reason, &self.ids.next());
                match self.invoke(function, event).await.0 {
                    Ok(response) => Some(response.status_code),
                    Err(error) => {
                        tracing::error!(connection_id, error = %Chain(&error), "$disconnect integration failed");
                        Some(500)
                    }
                }
            }
            None => None,
        };
        tracing::info!(connection_id, code, reason, status, "disconnect");
    }

    /// Invokes a function within the integration timeout; returns the result and the ms it took.
    pub(crate) async fn invoke(
        &self,
        function: &crate::routing::Function,
        event: serde_json::Value,
    ) -> (Result<chat_core::ApiGatewayProxyResponse, crate::error::InvokeError>, u128) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.integration_timeout, self.backend.invoke(function, event)).await {
            Ok(result) => result,
            Err(_) => Err(crate::error::InvokeError::TimedOut(self.integration_timeout)),
        };
        (result, started.elapsed().as_millis())
    }
}
