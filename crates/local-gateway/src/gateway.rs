//! Route and invoke: the state every connection shares, and what happens to a frame between
//! the socket and the function. `$connect`'s integration before the handshake, each text
//! frame's route and function, `$disconnect` after the close, and API Gateway's own error
//! frames when a function fails, all within one integration timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::ApiGatewayProxyResponse;
use chat_core::error::Chain;
use chat_core::routes::Route;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::authorize::ConnectAuthorizer;
use crate::backend::Backend;
use crate::connections::{Live, Registry};
use crate::contract::Contract;
use crate::error::InvokeError;
use crate::events::{self, Peer};
use crate::frames::GatewayFrame;
use crate::headers::ClientHeaders;
use crate::ids::IdGenerator;
use crate::proxy;
use crate::routing::{Function, RouteTable};
use crate::server::RateLimit;
use crate::settings::Settings;
use crate::throttle::Throttles;

/// The state shared by the socket tasks and the @connections API.
pub(crate) struct Gateway {
    /// How it was started.
    pub settings: Settings,
    /// The API's id, stage and domain, as events name them.
    pub api: events::Api,
    pub routes: RouteTable,
    pub authorizer: Option<ConnectAuthorizer>,
    pub backend: Arc<dyn Backend>,
    pub connections: Registry,
    pub ids: IdGenerator,
    /// API Gateway's rate of new connections.
    pub new_connections: RateLimit,
    /// The stage's route throttling.
    pub throttles: Throttles,
    /// The account-level throttle, shared by client frames and @connections calls; none when
    /// throttling is lifted.
    pub account: Option<RateLimit>,
    /// Becomes true when the gateway stops: every connection closes with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Every connection's task, so a shutdown can wait for their `$disconnect`s.
    pub tasks: TaskTracker,
    /// The protocol's contract, checked in tests.
    pub contract: Option<Arc<Contract>>,
    /// Frames read and not yet handled, across every connection.
    pub in_flight: watch::Sender<usize>,
}

/// One frame being handled; counted in [`Gateway::in_flight`] until dropped.
pub(crate) struct Invocation<'a>(&'a watch::Sender<usize>);

impl Drop for Invocation<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count -= 1);
    }
}

impl Gateway {
    /// Takes one request from the account-level throttle: false when it is spent.
    pub(crate) fn account_allows(&self) -> bool {
        self.account.as_ref().is_none_or(RateLimit::try_take)
    }

    /// Counts a frame as in flight until the returned guard is dropped.
    pub(crate) fn invocation_started(&self) -> Invocation<'_> {
        self.in_flight.send_modify(|count| *count += 1);
        Invocation(&self.in_flight)
    }

    /// Runs `call` within the integration timeout (29 s on AWS), as API Gateway bounds every
    /// integration and authorizer; the result and the milliseconds it took.
    pub(crate) async fn within_integration_timeout<T>(
        &self,
        call: impl Future<Output = Result<T, InvokeError>>,
    ) -> (Result<T, InvokeError>, u128) {
        let started = Instant::now();
        let timeout = self.settings.integration_timeout;
        let result = tokio::time::timeout(timeout, call).await.unwrap_or(Err(InvokeError::TimedOut(timeout)));
        (result, started.elapsed().as_millis())
    }

    /// Invokes a route's function with `event`, within the integration timeout.
    pub(crate) async fn invoke(
        &self,
        function: &Function,
        event: serde_json::Value,
    ) -> (Result<ApiGatewayProxyResponse, InvokeError>, u128) {
        let answer = async {
            let answer = self.backend.invoke(function, event).await?;
            proxy::read(&function.logical_id, answer)
                .map_err(|source| InvokeError::Malformed { function: function.logical_id.clone(), source })
        };
        self.within_integration_timeout(answer).await
    }

    /// Runs the `$connect` integration, if the API has one: the headers its answer puts into
    /// the 101, or the refused upgrade (its status and body; 500 when the function failed).
    pub(crate) async fn connect(
        &self,
        peer: &Peer,
        headers: &ClientHeaders,
        query: &[(String, String)],
    ) -> Result<HeaderMap, Response> {
        let Some(function) = self.routes.function(Route::Connect.key()) else { return Ok(HeaderMap::new()) };
        let event = events::connect(&self.api, peer, headers, query, &self.ids.next());
        let (result, took) = self.invoke(function, event).await;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                // A failed integration refuses the upgrade with 502 (observed:
                // michalkvasnicak/aws-lambda-graphql#107, serverless/serverless-websockets-plugin#13),
                // as a failed proxy integration answers on REST and HTTP APIs.
                tracing::error!(connection_id = peer.connection_id, error = %Chain(&error), "$connect integration failed");
                tracing::info!(
                    connection_id = peer.connection_id,
                    route = "$connect",
                    status = 502,
                    took_ms = took,
                    "connect"
                );
                let body = json!({ "message": "Internal server error" });
                return Err((StatusCode::BAD_GATEWAY, axum::Json(body)).into_response());
            }
        };
        let status = response.status_code;
        tracing::info!(connection_id = peer.connection_id, route = "$connect", status, took_ms = took, "connect");
        if !(200..300).contains(&status) {
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = response.body.map(|body| body.to_vec()).unwrap_or_default();
            return Err((status, body).into_response());
        }
        Ok(integration_headers(&response))
    }

    /// Routes one text frame and runs its function; failures answer as API Gateway does.
    pub(crate) async fn route_frame(&self, live: &Live, body: &str) {
        let connection_id = &live.peer.connection_id;
        let key = self.routes.select(body);
        let request_id = self.ids.next();
        let Some(function) = self.routes.function(key) else {
            tracing::info!(connection_id, route = key, "no route and no $default: Forbidden");
            self.reply_to(live, GatewayFrame::Forbidden, &request_id);
            return;
        };
        if !self.account_allows() {
            tracing::info!(connection_id, route = key, "over the account-level throttle: Too Many Requests");
            self.reply_to(live, GatewayFrame::TooManyRequests, &request_id);
            return;
        }
        if !self.throttles.allows(key) {
            tracing::info!(connection_id, route = key, "over the route's throttling: Too Many Requests");
            self.reply_to(live, GatewayFrame::TooManyRequests, &request_id);
            return;
        }
        let event = events::message(&self.api, &live.peer, key, body, &request_id, &self.ids.next());
        let (result, took) = self.invoke(function, event).await;
        match result {
            Ok(response) => {
                tracing::info!(connection_id, route = key, status = response.status_code, took_ms = took, "route");
                if let Some(contract) = &self.contract {
                    contract.check_routed(body, response.status_code);
                }
                // A two-way route sends the answer's body, whatever its status, and an empty
                // frame when it has none (observed: serverless-offline#1301, "API Gateway will
                // return whatever is in `body`"; serverless#6816 for the empty frame).
                if self.routes.is_two_way(key) {
                    live.send(response.body.map(|body| body.to_vec()).unwrap_or_default());
                }
            }
            Err(error) => {
                tracing::error!(connection_id, route = key, took_ms = took, error = %Chain(&error), "integration failed");
                let frame = match error {
                    InvokeError::TimedOut(_) => GatewayFrame::EndpointRequestTimedOut,
                    _ => GatewayFrame::InternalServerError,
                };
                self.reply_to(live, frame, &request_id);
            }
        }
    }

    /// Sends one of API Gateway's own frames to a client.
    fn reply_to(&self, live: &Live, frame: GatewayFrame, request_id: &str) {
        live.send(frame.text(&live.peer.connection_id, request_id).into_bytes());
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
        // The close code says what kind of close it was; the reason may be the client's text.
        tracing::info!(connection_id, code, status, "disconnect");
    }
}

/// The headers of a `$connect` integration's answer that reach the client's 101: only
/// `Sec-WebSocket-Protocol`, the subprotocol echo. API Gateway drops the rest (`Set-Cookie`,
/// CORS headers, anything else): aws/chalice PR#1768, which stopped sending others for that
/// reason. AWS's developer guide names only this header for `$connect`'s answer.
fn integration_headers(response: &chat_core::ApiGatewayProxyResponse) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let forwarded = response.headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    let multi = response.multi_value_headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    if let Some(value) = forwarded.chain(multi).next() {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value.clone());
    }
    headers
}
