//! The frames' field names, and the readers every request's parser shares: each mistake gets
//! its own sentence, naming the field.

use serde_json::{Map, Value, json};

use super::errors::FrameError;
use super::ids::{ConversationRef, RoomId, UserId};

/// The recipient's user id.
pub const DESTINATION_USER_ID: &str = "destinationUserId";
/// The room: of `joinRoom`, `leaveRoom`, and a `sendMessage` to a room.
pub const ROOM_ID: &str = "roomId";
/// The message text.
pub const BODY: &str = "body";
/// The text `{"action":"send"}` echoes.
pub const MESSAGE: &str = "message";
/// The other user of a direct conversation, in `getHistory`.
pub const USER_ID: &str = "userId";
/// `getHistory`: messages older than this seq.
pub const BEFORE: &str = "before";
/// `getHistory`: messages newer than this seq.
pub const AFTER: &str = "after";
/// `getHistory`: how many messages at most.
pub const LIMIT: &str = "limit";
/// Any request: the client's id for it, carried back by its answer.
pub const CLIENT_REQUEST_ID: &str = "clientRequestId";
/// `sync`: where the page starts (the previous page's `nextCursor`).
pub const CURSOR: &str = "cursor";
/// `markRead`: the latest seq read.
pub const SEQ: &str = "seq";

/// Parses a frame's body as a JSON object.
pub fn parse_object(body: Option<&str>) -> Result<Map<String, Value>, FrameError> {
    let text = body.unwrap_or_default();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(FrameError::InvalidJson("expected an object like {\"action\":\"sendMessage\",...}".into())),
        Err(error) => Err(FrameError::InvalidJson(error.to_string())),
    }
}

pub(crate) fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, FrameError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(FrameError::InvalidField { field, problem: "must be a string".into() }),
    }
}

pub(crate) fn required_string<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, FrameError> {
    let text = string_field(object, field)?.ok_or(FrameError::MissingField(field))?;
    if text.is_empty() {
        return Err(FrameError::InvalidField { field, problem: "must not be empty".into() });
    }
    Ok(text)
}

/// The `roomId` a request names.
pub(crate) fn room_field(object: &Map<String, Value>) -> Result<RoomId, FrameError> {
    let room = required_string(object, ROOM_ID)?;
    RoomId::parse(room).map_err(|problem| FrameError::InvalidField {
        field: ROOM_ID,
        problem: format!("is not a valid room id: it {problem}"),
    })
}

/// The schema of what [`conversation_field`] accepts: `userId` or `roomId`, exactly one.
pub(crate) fn conversation_one_of() -> Value {
    json!([
        { "required": [USER_ID], "not": { "required": [ROOM_ID] } },
        { "required": [ROOM_ID], "not": { "required": [USER_ID] } },
    ])
}

/// The conversation a request names: `userId` or `roomId`, exactly one.
pub(crate) fn conversation_field(object: &Map<String, Value>) -> Result<ConversationRef, FrameError> {
    let has = |field| !matches!(object.get(field), None | Some(Value::Null));
    match (has(USER_ID), has(ROOM_ID)) {
        (true, true) => Err(FrameError::InvalidField {
            field: ROOM_ID,
            problem: "cannot be given with userId: name a user or a room".into(),
        }),
        (false, false) => Err(FrameError::MissingField("userId\" or \"roomId")),
        (false, true) => Ok(ConversationRef::Room(room_field(object)?)),
        (true, false) => {
            let user = required_string(object, USER_ID)?;
            Ok(ConversationRef::User(UserId::parse(user).map_err(|problem| FrameError::InvalidField {
                field: USER_ID,
                problem: format!("is not a valid user id: it {problem}"),
            })?))
        }
    }
}
