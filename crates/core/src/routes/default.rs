//! `$default`: the classic `{"action":"send"}` echo, and a helpful error for anything else.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Failure, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, parse_object, string_field};
use crate::protocol::{ACTION_FIELD, Answer, ErrorFrame, FrameError, frames};

/// The action `$default` answers itself: a ping (`{"action":"send"}`) or an echo.
pub const SEND_ACTION: &str = "send";

/// What `{"action":"send"}` without a message answers.
pub const PONG: &str = "🏓 pong";

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

/// What `$default` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum DefaultRequest {
    /// `{"action":"send"}`: answer [`PONG`].
    Ping,
    /// `{"action":"send","message":"psst"}`: echo the message.
    Echo(String),
    /// Anything else.
    Unknown,
}

impl DefaultRequest {
    /// Reads a frame that reached `$default`.
    ///
    /// # Errors
    /// [`FrameError::InvalidField`] when `send`'s `message` is not a string.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let Ok(object) = parse_object(body) else { return Ok(Self::Unknown) };
        if object.get(ACTION_FIELD).and_then(Value::as_str) != Some(SEND_ACTION) {
            return Ok(Self::Unknown);
        }
        Ok(match string_field(&object, fields::MESSAGE)? {
            Some(message) => Self::Echo(message.to_owned()),
            None => Self::Ping,
        })
    }
}

impl JsonSchema for DefaultRequest {
    fn schema_name() -> Cow<'static, str> {
        "DefaultRequest".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A ping, answered with a pong, or with `message`, echoed back.",
            "type": "object",
            "properties": { (fields::MESSAGE): { "type": "string", "description": "Text to echo back." } },
        })
    }
}

/// The frame `$default` answers `{"action":"send"}` with.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Echo {
    /// The echoed text, or [`PONG`].
    pub message: String,
}

frames!(Echo);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<DefaultRequest>(
            SEND_ACTION,
            "A ping (answered with a pong) or an echo, served by $default.",
        ),
        Message::answer::<Echo>("echo", "send's answer: the pong, or the echoed message."),
    ]
}

/// Answers `{"action":"send"}` with `{"message":"🏓 pong"}` and `{"action":"send","message":m}`
/// with `{"message":m}`. Any other frame, including one whose action matches no route, gets
/// an `unknownAction` error frame listing the actions ([`super::actions`]).
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let message = match DefaultRequest::parse(context.request.body.as_deref())? {
        DefaultRequest::Ping => PONG.to_owned(),
        DefaultRequest::Echo(message) => message,
        DefaultRequest::Unknown => return Err(Failure::Refused(unknown_action())),
    };
    Ok(Reply::Answer(Answer::new(&Echo { message })?))
}

/// The answer to a frame that matches no action: `unknownAction`, listing every action.
pub fn unknown_action() -> ErrorFrame {
    ErrorFrame::unknown_action(&super::actions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_action_frames_list_every_action() {
        let frame = serde_json::to_value(unknown_action()).unwrap();
        assert_eq!(frame["error"], "unknownAction");
        assert_eq!(
            frame["actions"],
            serde_json::json!(["sendMessage", "joinRoom", "leaveRoom", "getHistory", "sync", "markRead", "send"])
        );
    }
}
