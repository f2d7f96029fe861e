//! The adapter between API Gateway and the handlers: the only code that reads the Lambda proxy
//! event, and the one driver every route runs through.
//!
//! [`run`] turns an [`ApiGatewayWebsocketProxyRequest`] into a [`Request`] of plain values,
//! opens the invocation's `tracing` span (route and connection id), runs the handler, and hands
//! its outcome to [`super::outcome::conclude`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use tracing::Instrument;

use super::outcome::{self, Handled, Outcome};
use crate::auth;
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
use crate::routes::Route;

/// What a handler needs of one API Gateway WebSocket event, read once by [`Request::from_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The route API Gateway selected.
    pub route: Route,
    /// The connection the event is about (`requestContext.connectionId`), e.g. `L0SM9cOFvHcCIhw=`.
    pub connection_id: String,
    /// The API and stage the connection lives on, for @connections posts.
    pub endpoint: Endpoint,
    /// When API Gateway received the request (`requestContext.requestTimeEpoch`), epoch ms.
    pub request_time_ms: i64,
    /// When the connection opened (`requestContext.connectedAt`), epoch ms.
    pub connected_at_ms: i64,
    /// The frame's text (MESSAGE events); `None` on `$connect` and `$disconnect`.
    pub body: Option<String>,
    /// The frame's `clientRequestId`, once [`run`] has read it: carried back by the answer.
    pub client_request_id: Option<crate::protocol::ClientRequestId>,
    /// Who the connection says it is, as far as the event says (read on every route; only
    /// `$connect` uses it).
    pub caller: Caller,
}

/// What a `$connect` event says about who is connecting. Which of it is believed is decided by
/// [`crate::identity::user_of`], by mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user the Lambda authorizer verified (`requestContext.authorizer.userId`, else its
    /// `principalId`).
    pub verified_user: Option<String>,
    /// The `userId` query parameter: what a demo-mode client says it is.
    pub claimed_user: Option<String>,
    /// Whether the client offered the `chat` subprotocol, which `$connect` must then echo.
    pub offers_subprotocol: bool,
}

/// An event that lacks a field API Gateway always sends: a hand-made test event, or a function
/// wired to something other than a WebSocket API.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the event has no requestContext.{0}; is this an API Gateway WebSocket event?")]
pub struct MalformedEvent(pub &'static str);

impl Request {
    /// Reads what the handlers need from an event of `route`.
    ///
    /// # Errors
    /// [`MalformedEvent`] naming the first missing field of `connectionId`, `apiId` and `stage`.
    pub fn from_event(route: Route, event: &ApiGatewayWebsocketProxyRequest) -> Result<Self, MalformedEvent> {
        let context = &event.request_context;
        let connection_id = context.connection_id.clone().ok_or(MalformedEvent("connectionId"))?;
        let api_id = context.apiid.clone().ok_or(MalformedEvent("apiId"))?;
        let stage = context.stage.clone().ok_or(MalformedEvent("stage"))?;
        let protocols = event.headers.get(auth::SUBPROTOCOL_HEADER).and_then(|value| value.to_str().ok());
        Ok(Self {
            route,
            connection_id,
            endpoint: Endpoint { api_id, stage },
            request_time_ms: context.request_time_epoch,
            connected_at_ms: context.connected_at,
            body: event.body.clone(),
            client_request_id: None,
            caller: Caller {
                verified_user: auth::authorized_user(&context.authorizer.fields).map(str::to_owned),
                claimed_user: event.query_string_parameters.first(crate::identity::USER_ID_PARAM).map(str::to_owned),
                offers_subprotocol: auth::offers_subprotocol(protocols),
            },
        })
    }

    /// The frame's text, or `""` when the event has none.
    pub fn body(&self) -> &str {
        self.body.as_deref().unwrap_or_default()
    }
}

/// Runs one invocation of `route`: reads the event, runs `handler` inside a span that names
/// the route and the connection, and concludes its outcome (the sender's frame through
/// `messenger`, the metrics, the log line, the Lambda response).
///
/// `messenger` is `None` for `$connect` and `$disconnect`, whose connection cannot be posted to.
pub async fn run(
    route: Route,
    event: &ApiGatewayWebsocketProxyRequest,
    messenger: Option<&dyn Messenger>,
    handler: impl AsyncFnOnce(&Request, &mut Metrics) -> Outcome,
) -> Handled {
    let mut metrics = Metrics::new(route);
    let request = match Request::from_event(route, event) {
        Ok(request) => request,
        Err(error) => return outcome::malformed(&error, metrics),
    };
    let span = tracing::info_span!("invocation", route = route.key(), connection_id = %request.connection_id);
    let mut request = request;
    async {
        // Read before the handler runs, so that every answer, error frames included, carries
        // it back; an invalid one is the request's error.
        let outcome = match crate::protocol::ClientRequestId::of_request(request.body.as_deref()) {
            Ok(id) => {
                request.client_request_id = id;
                handler(&request, &mut metrics).await
            }
            Err(error) => Err(error.into()),
        };
        let handled = outcome::conclude(&request, outcome, messenger, metrics).await;
        debug_assert!(
            handled.metrics.undeclared().is_empty(),
            "{} counted {:?}, which its COUNTERS do not declare",
            route.key(),
            handled.metrics.undeclared()
        );
        handled
    }
    .instrument(span)
    .await
}
