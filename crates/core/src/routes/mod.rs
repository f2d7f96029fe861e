//! The four routes of the WebSocket API, each a plain async function of an event and its dependencies.
//!
//! Handlers answer with an HTTP status that API Gateway reads (only `$connect`'s reaches the
//! client, as the status of the upgrade) and the invocation's [`Metrics`]; what clients see
//! otherwise goes through the messenger.

mod connect;
mod default;
mod disconnect;
mod rooms;
mod send_message;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

pub use connect::connect;
pub use default::default;
pub use disconnect::disconnect;
pub use rooms::{join_room, leave_room};
pub use send_message::send_message;

use crate::error::Chain;
use crate::identity::Mode;
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
pub use crate::protocol::Route;
use crate::protocol::{self, ErrorCode, ErrorFrame};
use crate::store::Store;

/// What a handler did: the answer for API Gateway and what the invocation counted.
#[derive(Debug)]
pub struct Handled {
    /// The answer API Gateway reads.
    pub response: ApiGatewayProxyResponse,
    /// The invocation's counters, for CloudWatch.
    pub metrics: Metrics,
}

impl Handled {
    /// Writes the metrics as one EMF log line and gives the answer for API Gateway: what each
    /// Lambda binary returns.
    pub fn emit(self) -> ApiGatewayProxyResponse {
        self.metrics.emit();
        self.response
    }

    /// The answer's HTTP status.
    pub fn status(&self) -> i64 {
        self.response.status_code
    }
}

/// Runs a route's handler with every dependency at hand (the local gateway and benchmarks do;
/// each Lambda binary calls its own handler with only what it needs).
pub async fn handle(
    route: Route,
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
    mode: Mode,
) -> Handled {
    match route {
        Route::Connect => connect(request, store, mode).await,
        Route::Disconnect => disconnect(request, store).await,
        Route::Default => default(request, messenger).await,
        Route::SendMessage => send_message(request, store, messenger).await,
        Route::JoinRoom => join_room(request, store, messenger).await,
        Route::LeaveRoom => leave_room(request, store, messenger).await,
    }
}

/// A handler's answer: a status and a short text for logs and refused upgrades.
pub(crate) fn respond(status: i64, text: impl Into<String>, metrics: Metrics) -> Handled {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(Body::Text(text.into()));
    Handled { response, metrics }
}

/// An event without a field API Gateway always sends: a bad test event or a misconfigured route.
pub(crate) fn malformed_event(field: &str, metrics: Metrics) -> Handled {
    tracing::error!(field, "event has no requestContext.{field}; is this an API Gateway WebSocket event?");
    respond(500, format!("event has no requestContext.{field}"), metrics)
}

/// The connection a MESSAGE event came from, able to receive frames in reply.
pub(crate) struct Sender<'a> {
    pub connection_id: &'a str,
    pub endpoint: Endpoint,
    pub messenger: &'a dyn Messenger,
}

impl<'a> Sender<'a> {
    /// The sender of `request`, or the name of the field the event lacks.
    pub fn of(
        request: &'a ApiGatewayWebsocketProxyRequest,
        messenger: &'a dyn Messenger,
    ) -> Result<Self, &'static str> {
        let context = &request.request_context;
        let connection_id = context.connection_id.as_deref().ok_or("connectionId")?;
        let endpoint = Endpoint::of(context).ok_or("apiId and stage")?;
        Ok(Self { connection_id, endpoint, messenger })
    }

    /// Sends a frame to the sender; whether it arrived. A failure is logged, as there is
    /// nobody else to tell, and counted as a failed post.
    pub async fn reply(&self, frame: &impl serde::Serialize, metrics: &mut Metrics) -> bool {
        let data = protocol::to_bytes(frame);
        match self.messenger.post(&self.endpoint, self.connection_id, &data).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(connection_id = self.connection_id, error = %Chain(&error), "could not reply to the sender");
                metrics.posts_failed += 1;
                false
            }
        }
    }

    /// Replies with `frame` and answers 200 with `text`, or 500 when the reply did not arrive.
    pub async fn answer(&self, frame: &impl serde::Serialize, text: &str, mut metrics: Metrics) -> Handled {
        if self.reply(frame, &mut metrics).await {
            respond(200, text, metrics)
        } else {
            respond(500, "could not answer the sender", metrics)
        }
    }

    /// Tells the sender why its frame was refused and answers with `status`.
    pub async fn refuse(&self, frame: ErrorFrame, status: i64, mut metrics: Metrics) -> Handled {
        metrics.refused = Some(frame.error);
        self.reply(&frame, &mut metrics).await;
        respond(status, frame.message, metrics)
    }

    /// Logs a backend failure with its cause chain, tells the sender it is unavailable, answers 500.
    pub async fn unavailable(
        &self,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        mut metrics: Metrics,
    ) -> Handled {
        tracing::error!(connection_id = self.connection_id, error = %Chain(error), "backend call failed");
        metrics.backend_failures += 1;
        let frame = ErrorFrame::new(ErrorCode::Unavailable, "the chat is unavailable right now; try again in a moment");
        self.refuse(frame, 500, metrics).await
    }
}
