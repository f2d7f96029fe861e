//! The socket: the upgrade (authorizer and `$connect` before the handshake) and the loop that
//! reads a connection's frames, with API Gateway's idle, duration and size limits.
//!
//! A connection's frames are invoked concurrently, up to [`MAX_IN_FLIGHT_PER_CONNECTION`] at
//! once. API Gateway documents no order between a connection's invocations, and AWS's own
//! pattern for ordered processing puts an SQS FIFO queue behind the API ("The SQS FIFO queue is
//! used to ensure processing order of the websocket messages": aws-samples/serverless-patterns,
//! `apigw-websocket-api-sqs-lambda`); on re:Post, "you have no control in which order the
//! client messages will be processed". `--strict-order` handles them one at a time instead. The idle
//! timer counts from the connection's last traffic either way: a frame from the client or a
//! frame queued for it.
//!
//! A connection is registered as soon as `$connect` accepts it, before the 101 is sent, so a
//! post that follows `$connect` at once waits in its outbox instead of answering 410.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chat_core::limits::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use chat_core::routes::Route;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tokio::time::{Duration, sleep_until};

use crate::authorize::{self, Verdict};
use crate::connections::Live;
use crate::events::{Peer, now_ms};
use crate::gateway::Gateway;
use crate::headers::ClientHeaders;

/// Read buffer of each socket. tungstenite keeps one this size per connection (128 KiB by
/// default); 1 KiB holds a typical chat frame, and larger frames take several reads. With it,
/// 10,000 idle connections need about 6 KB each.
const SOCKET_BUFFER_BYTES: usize = 1024;

/// Frames of one connection whose invocations run at once; the connection's next frame is read
/// when one finishes, so a client that sends faster than its functions answer slows only
/// itself. API Gateway publishes no such bound (its invocations are bounded by the account's
/// Lambda concurrency); `--strict-order` makes it 1.
pub(crate) const MAX_IN_FLIGHT_PER_CONNECTION: usize = 32;

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
    headers: ClientHeaders,
    upgrade: WebSocketUpgrade,
) -> Response {
    if stage != gateway.api.stage {
        return forbidden();
    }
    let url_chars = uri.to_string().chars().count() + headers.get("host").map_or(0, str::len) + "wss://".len();
    if url_chars > gateway.settings.max_url_chars {
        tracing::info!(url_chars, "refused connection: URL too long");
        return refused(StatusCode::URI_TOO_LONG, "Request-URI Too Long");
    }
    if !gateway.new_connections.try_take() {
        tracing::info!("refused connection: over the new-connection rate");
        return refused(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    if !gateway.throttles.allows(Route::Connect.key()) {
        tracing::info!("refused connection: over the $connect route's throttling");
        return refused(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    let mut peer = Peer {
        connection_id: gateway.ids.next(),
        connected_at: now_ms(),
        source_ip: client.ip().to_string(),
        user_agent: headers.get("user-agent").map(str::to_owned),
        authorizer: None,
    };
    if let Some(authorizer) = &gateway.authorizer {
        match authorize::run(&gateway, authorizer, &peer, &headers, &query).await {
            Verdict::Allow(authorized) => peer.authorizer = Some(authorized),
            Verdict::Refuse(status, message) => return refused(status, message),
        }
    }
    // Headers the `$connect` integration answers with go into the 101 (the subprotocol echo).
    let answer_headers = match gateway.connect(&peer, &headers, &query).await {
        Ok(headers) => headers,
        Err(refusal) => return refusal,
    };

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
        .on_upgrade(move |socket| {
            let tracker = gateway.tasks.clone();
            tracker.track_future(run(gateway, live, socket))
        });
    response.headers_mut().extend(answer_headers);
    response
}

/// Serves one open connection until it closes, then fires `$disconnect`. The reader and the
/// writer run side by side in this one task: a slow handler does not hold up frames to the
/// client, and a client that does not read does not hold up its own frames' handling.
async fn run(gateway: Arc<Gateway>, live: Arc<Live>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let writer = live.write_to(sink, gateway.settings.write_timeout, CLOSE_GRACE);
    let ((), client_close) = tokio::join!(writer, read(&gateway, &live, stream));
    let (code, reason) = live.server_close().unwrap_or(client_close);
    gateway.disconnected(&live, code, &reason).await;
}

/// Reads and routes the client's frames until the connection closes; how the client closed it.
async fn read(gateway: &Gateway, live: &Live, mut stream: futures::stream::SplitStream<WebSocket>) -> (u16, String) {
    let max_deadline = tokio::time::Instant::now() + gateway.settings.max_duration;
    let mut shutdown = gateway.shutdown.clone();
    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    });
    let mut client_close = (1006, "Connection closed abnormally".to_owned());
    let idle_timeout_ms = gateway.settings.idle_timeout.as_millis() as i64;
    let most_in_flight = if gateway.settings.strict_order { 1 } else { MAX_IN_FLIGHT_PER_CONNECTION };
    let mut in_flight = FuturesUnordered::new();
    loop {
        let idle_for = Duration::from_millis((now_ms() - live.last_active()).max(0) as u64);
        let idle_deadline = tokio::time::Instant::now() + gateway.settings.idle_timeout.saturating_sub(idle_for);
        tokio::select! {
            _ = live.closed.notified() => break,
            _ = &mut stopping => { live.close(1001, "Going away"); break }
            // Traffic since the deadline was set moves it: check again from the new last activity.
            _ = sleep_until(idle_deadline) => {
                if now_ms() - live.last_active() >= idle_timeout_ms {
                    live.close(1001, "Idle timeout");
                    break;
                }
            }
            _ = sleep_until(max_deadline) => { live.close(1001, "Maximum connection duration reached"); break }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            frame = stream.next(), if in_flight.len() < most_in_flight => match frame {
                Some(Ok(Message::Text(text))) => {
                    live.touch();
                    let invocation = gateway.invocation_started();
                    in_flight.push(async move {
                        gateway.route_frame(live, text.as_str()).await;
                        drop(invocation);
                    });
                }
                Some(Ok(Message::Binary(_))) => { live.close(1003, "Binary frames are not supported"); break }
                // Unverified: AWS documents no answer to whether a client's ping or pong frames
                // reset the idle timer, and no public observation settles it (browsers cannot
                // send them). Kept strict: they do not, so a client relying on them is closed
                // here rather than, perhaps, in the cloud.
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
    // that never answers gets CLOSE_GRACE, no more. Invocations still running finish meanwhile
    // (each within the integration timeout), as they do in the cloud after a client leaves.
    let handshake = async {
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
    };
    tokio::join!(handshake, async { while in_flight.next().await.is_some() {} });
    client_close
}

/// Whether a read failed because a frame or message was over the size limits.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
    )
}
