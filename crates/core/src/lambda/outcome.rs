//! What a handler decides, and the one place that turns it into everything an invocation
//! produces: the frame posted to the sender, the metrics, the log line and the Lambda response.

use std::error::Error;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;

use super::event::{MalformedEvent, Request};
use crate::auth;
use crate::error::{Chain, PostError, StoreError};
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::protocol::{Answer, EncodeError, ErrorCode, ErrorFrame, FrameError};

/// What a handler returns.
pub type Outcome = Result<Reply, Failure>;

/// A request the handler carried out.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing for the sender; API Gateway gets 200 and this text (logs and tests read it).
    Done(&'static str),
    /// A frame for the sender; 200, or 500 when it cannot be posted.
    Answer(Answer),
    /// `$connect` accepted: 200, with the `chat` subprotocol echoed when the client offered it.
    Connected,
}

/// Why a handler did not carry a request out. Each variant decides the sender's error frame,
/// the metrics and the status in [`conclude`]; handlers use `?` on store, messenger and frame
/// errors.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The frame is malformed: its [`FrameError::code`], with the status of that code.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Refused with a code and a sentence (the frame the sender receives).
    #[error("{}", .0.message)]
    Refused(ErrorFrame),
    /// A backend call failed. The log gets the whole cause chain; the sender gets
    /// `unavailable` and a sentence, nothing more.
    #[error("a backend call failed")]
    Backend(#[source] Box<dyn Error + Send + Sync>),
}

impl Failure {
    /// A refusal with `code` and a sentence for the sender.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure::Refused(ErrorFrame::new(code, message))
    }

    /// The frame the sender receives, and the status API Gateway gets.
    fn frame(&self) -> ErrorFrame {
        match self {
            Failure::Frame(error) => error.to_frame(),
            Failure::Refused(frame) => frame.clone(),
            Failure::Backend(_) => ErrorFrame::new(ErrorCode::Unavailable, UNAVAILABLE),
        }
    }
}

/// What the sender of a request that hit a backend failure is told.
pub const UNAVAILABLE: &str = "the chat is unavailable right now; try again in a moment";

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Backend(Box::new(error))
    }
}

impl From<PostError> for Failure {
    fn from(error: PostError) -> Self {
        Failure::Backend(Box::new(error))
    }
}

impl From<EncodeError> for Failure {
    fn from(error: EncodeError) -> Self {
        Failure::Backend(Box::new(error))
    }
}

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

fn respond(status: i64, text: impl Into<String>, metrics: Metrics) -> Handled {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(Body::Text(text.into()));
    Handled { response, metrics }
}

/// The answer to an event the handlers cannot read: 500, logged, nothing posted.
pub(crate) fn malformed(error: &MalformedEvent, metrics: Metrics) -> Handled {
    tracing::error!(error = %error, "malformed event");
    respond(500, error.to_string(), metrics)
}

/// Turns a handler's outcome into the invocation's effects:
/// - a reply frame or error frame is posted to the sender (when `messenger` is given: not on
///   `$connect` or `$disconnect`), and a post that fails is logged and counted;
/// - a refusal is counted under its code, a backend failure as one, with the whole cause chain
///   in the log and a plain sentence for the sender;
/// - the status is the code's ([`ErrorCode::status`]): 200 for a reply, 500 for a backend
///   failure or a reply that could not be posted.
pub async fn conclude(
    request: &Request,
    outcome: Outcome,
    messenger: Option<&dyn Messenger>,
    mut metrics: Metrics,
) -> Handled {
    let refusal = match outcome {
        Ok(Reply::Done(text)) => return respond(200, text, metrics),
        Ok(Reply::Connected) => {
            let mut handled = respond(200, "connected", metrics);
            if request.caller.offers_subprotocol {
                handled.response.headers.insert(auth::SUBPROTOCOL_HEADER, HeaderValue::from_static(auth::SUBPROTOCOL));
            }
            return handled;
        }
        Ok(Reply::Answer(answer)) => {
            return if post(request, &answer, messenger, &mut metrics).await {
                respond(200, "answered", metrics)
            } else {
                respond(500, "could not answer the sender", metrics)
            };
        }
        Err(refusal) => refusal,
    };
    let frame = refusal.frame();
    let status = frame.error.status();
    if let Failure::Backend(cause) = &refusal {
        metrics.backend_failures += 1;
        tracing::error!(error = %Chain(cause.as_ref()), "backend call failed");
        if messenger.is_none() {
            // `$connect` and `$disconnect`: nobody to tell but API Gateway, and no client refused.
            return respond(status, "a backend call failed; see the function's log", metrics);
        }
    } else {
        // The code only: sentences may name users and rooms, and logs are no place for them.
        tracing::info!(code = ?frame.error, "refused");
    }
    metrics.refused = Some(frame.error);
    let text = frame.message.clone();
    match Answer::new(&frame) {
        Ok(answer) => {
            post(request, &answer, messenger, &mut metrics).await;
        }
        Err(error) => tracing::error!(error = %Chain(&error), "could not encode an error frame"),
    }
    respond(status, text, metrics)
}

/// Posts `answer` to the sender, with the request's `clientRequestId`; whether it arrived
/// (nothing to post counts as arrived). A failure is logged, as there is nobody else to tell,
/// and counted as a failed post (and a throttled one when answered 429). Handlers that must answer before they finish (`sendMessage`'s
/// acknowledgement, before its fan-out) call it themselves and then reply [`Reply::Done`].
pub(crate) async fn post(
    request: &Request,
    answer: &Answer,
    messenger: Option<&dyn Messenger>,
    metrics: &mut Metrics,
) -> bool {
    let Some(messenger) = messenger else { return true };
    let data = answer.bytes(request.client_request_id.as_ref());
    let posted = messenger.post(&request.endpoint, &request.connection_id, &data).await.inspect_err(|error| {
        metrics.posts_throttled += u64::from(error.is_throttled());
    });
    if let Err(error) = &posted {
        tracing::warn!(error = %Chain(error), "could not reply to the sender");
        metrics.posts_failed += 1;
    }
    posted.is_ok()
}
