//! Everything a refusal is made of: why a frame was refused ([`FrameError`]), the stable codes
//! clients match on ([`ErrorCode`]) and the frame that tells them ([`ErrorFrame`]), and API
//! Gateway's own error frame ([`GatewayError`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ACTION_FIELD;
use crate::limits::MAX_MESSAGE_BYTES;

/// Why a frame was refused. Each maps to one [`ErrorCode`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or JSON but not an object.
    #[error("the frame is not a JSON object: {0}")]
    InvalidJson(String),
    /// A required field is absent.
    #[error("the frame has no \"{0}\" field")]
    MissingField(&'static str),
    /// A field has the wrong type or an unusable value.
    #[error("\"{field}\" {problem}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong, as the end of a sentence.
        problem: String,
    },
    /// The delivered frame would exceed API Gateway's 128 KB.
    #[error(
        "the message is too large: the delivered frame would be {size} bytes and API Gateway allows {MAX_MESSAGE_BYTES}"
    )]
    BodyTooLarge {
        /// Size of the frame that would have been delivered.
        size: usize,
    },
}

impl FrameError {
    /// The stable code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::InvalidJson(_) => ErrorCode::InvalidJson,
            FrameError::MissingField(_) => ErrorCode::MissingField,
            FrameError::InvalidField { .. } => ErrorCode::InvalidField,
            FrameError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
        }
    }

    /// The error frame that tells the sender about it.
    pub fn to_frame(&self) -> ErrorFrame {
        ErrorFrame::new(self.code(), self.to_string())
    }
}

/// API Gateway's own error frame, sent by the service rather than by a function, written
/// `{"message": "…", "connectionId":"…", "requestId":"…"}`: `Internal server error` when a
/// route's function fails or answers something that is not a Lambda proxy response,
/// `Endpoint request timed out` when it runs past the 29 s integration timeout, `Forbidden`
/// when no route takes a frame, and `Too Many Requests` when the stage's route throttling
/// refuses it (AWS's developer guide: "clients may receive 429 Too Many Requests error
/// responses"; the frame's exact text is not documented).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayError {
    /// `Internal server error`, `Endpoint request timed out`, `Forbidden` or `Too Many Requests`.
    #[schemars(extend("enum" = ["Internal server error", "Endpoint request timed out", "Forbidden", "Too Many Requests"]))]
    pub message: String,
    /// The connection the frame came from.
    pub connection_id: String,
    /// API Gateway's id of the request.
    pub request_id: String,
}

/// Stable error codes; clients may match on them.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    InvalidJson,
    /// A required field is absent; the message names it.
    MissingField,
    /// A field has the wrong type, is empty, or is not a valid user id.
    InvalidField,
    /// The delivered frame, or a page of history holding the message alone, would exceed 128 KB.
    BodyTooLarge,
    /// The frame's action matches no route.
    UnknownAction,
    /// The sending connection has no record: it must reconnect.
    UnknownConnection,
    /// A backend call failed; trying again later may work.
    Unavailable,
    /// `$connect` only: the user already holds the most connections allowed.
    TooManyConnections,
    /// `$connect` only, token mode: the connection carries no verified identity.
    Unauthorized,
    /// A message to, or a read of, a room the user has not joined.
    NotInRoom,
    /// `joinRoom` past the most rooms one user may be in.
    TooManyRooms,
}

impl ErrorCode {
    /// The HTTP status a function answers API Gateway with when it refuses a request with this
    /// code. On `$connect` it is the status of the refused upgrade (what wscat prints); on other
    /// routes API Gateway only logs it, and the client learns the code from the error frame.
    pub const fn status(self) -> i64 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::MissingField | ErrorCode::InvalidField | ErrorCode::UnknownAction => {
                400
            }
            ErrorCode::UnknownConnection | ErrorCode::Unauthorized | ErrorCode::NotInRoom => 403,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::TooManyConnections | ErrorCode::TooManyRooms => 429,
            ErrorCode::Unavailable => 500,
        }
    }

    /// Every code, for clients that must know them all (the web page's plain words).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidJson,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::BodyTooLarge,
        ErrorCode::UnknownAction,
        ErrorCode::UnknownConnection,
        ErrorCode::Unavailable,
        ErrorCode::TooManyConnections,
        ErrorCode::Unauthorized,
        ErrorCode::NotInRoom,
        ErrorCode::TooManyRooms,
    ];
}

/// `{"error": code, "message": sentence}`, plus the list of actions for `unknownAction`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ErrorFrame {
    /// The stable code.
    pub error: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The actions a client can send, on `unknownAction` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
}

impl ErrorFrame {
    /// An error frame with a code and a sentence.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self { error, message: message.into(), actions: None }
    }

    /// The answer to a frame that matches none of `actions`.
    pub fn unknown_action(actions: &[&str]) -> Self {
        Self {
            actions: Some(actions.iter().map(|action| (*action).to_owned()).collect()),
            ..Self::new(
                ErrorCode::UnknownAction,
                format!("unknown action; send a JSON object whose \"{ACTION_FIELD}\" is one of {actions:?}"),
            )
        }
    }
}
