//! The wire protocol: every frame a client sends or receives, defined once.
//!
//! Clients send `{"action":"sendMessage","destinationUserId":"bob","body":"hi"}` and the
//! recipient receives `{"senderId":"alice","body":"hi","destinationUserId":"bob","seq":1,"sentAt":…}`
//! (fields are only ever added, after the existing ones); rooms, history, `sync` and `markRead`
//! have their requests and answers here too; `$default` answers the classic `{"action":"send"}`
//! echo; anything wrong gets an [`ErrorFrame`] with a stable [`ErrorCode`].

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::limits::MAX_MESSAGE_BYTES;

/// A route of the WebSocket API, by its key in API Gateway. Which function serves it is the
/// template's business (`template.yaml`), not the protocol's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `$connect`: records who the connection belongs to.
    Connect,
    /// `$disconnect`: forgets the connection.
    Disconnect,
    /// `$default`: the `send` echo, and help for unknown actions.
    Default,
    /// `sendMessage`: delivers a message to every connection of a user, or to a room.
    SendMessage,
    /// `joinRoom`: makes the connection a member of a room.
    JoinRoom,
    /// `leaveRoom`: ends the connection's membership of a room.
    LeaveRoom,
    /// `getHistory`: a page of a conversation's stored messages.
    GetHistory,
    /// `sync`: the user's conversations, most recently active first.
    Sync,
    /// `markRead`: raises the user's read state in a conversation.
    MarkRead,
}

impl Route {
    /// Every route, in the order docs/protocol.md lists them.
    pub const ALL: [Route; 9] = [
        Route::Connect,
        Route::Disconnect,
        Route::Default,
        Route::SendMessage,
        Route::JoinRoom,
        Route::LeaveRoom,
        Route::GetHistory,
        Route::Sync,
        Route::MarkRead,
    ];

    /// The route key API Gateway selects it by.
    pub const fn key(self) -> &'static str {
        match self {
            Route::Connect => "$connect",
            Route::Disconnect => "$disconnect",
            Route::Default => "$default",
            Route::SendMessage => "sendMessage",
            Route::JoinRoom => "joinRoom",
            Route::LeaveRoom => "leaveRoom",
            Route::GetHistory => "getHistory",
            Route::Sync => "sync",
            Route::MarkRead => "markRead",
        }
    }

    /// The route with this key; keys are case-sensitive.
    pub fn from_key(key: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|route| route.key() == key)
    }
}

/// The route selection expression of the WebSocket API.
pub const ROUTE_SELECTION_EXPRESSION: &str = "$request.body.action";

/// The field that selects a route.
pub const ACTION_FIELD: &str = "action";

/// The action `$default` answers itself: a ping (`{"action":"send"}`) or an echo.
pub const SEND_ACTION: &str = "send";

/// Every action a client can send, as listed in `unknownAction` error frames.
pub const ACTIONS: [&str; 7] = [
    Route::SendMessage.key(),
    Route::JoinRoom.key(),
    Route::LeaveRoom.key(),
    Route::GetHistory.key(),
    Route::Sync.key(),
    Route::MarkRead.key(),
    SEND_ACTION,
];

/// What `{"action":"send"}` without a message answers.
pub const PONG: &str = "🏓 pong";

/// The longest user id accepted.
pub const MAX_USER_ID_CHARS: usize = 128;

/// A user's id: 1 to 128 characters of ASCII letters, digits and `_ . @ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// A room's id: 1 to 128 characters of ASCII letters, digits and `_ . @ -`, as user ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

/// The rules user ids and room ids share, as a regular expression.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.@-]{1,128}$";

/// The rules user ids and room ids share: 1 to 128 ASCII letters, digits and `_ . @ -`.
fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_USER_ID_CHARS {
        return Err(format!("must be at most {MAX_USER_ID_CHARS} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.@-".contains(*c))) {
        return Err(format!("may hold only letters, digits and _ . @ - (found {bad:?})"));
    }
    Ok(())
}

/// What user ids and room ids share: validation by [`check_id`] (also when deserialized), the
/// text, and the published schema.
macro_rules! id_type {
    ($id:ident, $what:literal) => {
        impl $id {
            /// Validates an id, saying what is wrong with it.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_id(value).map(|()| Self(value.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $id {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                check_id(&value).map(|()| Self(value))
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $id {
            fn schema_name() -> Cow<'static, str> {
                stringify!($id).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": ID_PATTERN,
                    "minLength": 1,
                    "maxLength": MAX_USER_ID_CHARS,
                    "description": concat!("A ", $what, " id: 1 to 128 ASCII letters, digits and _ . @ -."),
                })
            }
        }
    };
}

id_type!(UserId, "user");
id_type!(RoomId, "room");

/// Who a `sendMessage` is for.
#[derive(Debug, PartialEq, Eq)]
pub enum Addressee {
    /// Every open connection of a user (`destinationUserId`).
    User(UserId),
    /// Every other connection that is a member of a room (`roomId`).
    Room(RoomId),
}

/// A valid `sendMessage` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// Who receives the message.
    pub to: Addressee,
    /// The text delivered, unchanged.
    pub body: String,
}

/// A valid `joinRoom` or `leaveRoom` frame: the room it names.
#[derive(Debug, PartialEq, Eq)]
pub struct RoomRequest {
    /// The room.
    pub room_id: RoomId,
}

impl RoomRequest {
    /// Parses and validates a `joinRoom` or `leaveRoom` frame's body.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let object = parse_object(body)?;
        Ok(Self { room_id: room_field(&object)? })
    }
}

fn room_field(object: &Map<String, Value>) -> Result<RoomId, FrameError> {
    let room = required_string(object, fields::ROOM_ID)?;
    RoomId::parse(room).map_err(|problem| FrameError::InvalidField {
        field: fields::ROOM_ID,
        problem: format!("is not a valid room id: it {problem}"),
    })
}

/// Field names of the `sendMessage` frame.
pub mod fields {
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
}

/// The longest `clientRequestId` accepted.
pub const MAX_CLIENT_REQUEST_ID_CHARS: usize = 64;

/// A client's id for one request: 1 to 64 ASCII letters, digits, `_` or `-`. Any request may
/// carry one; the function's one answer to it (a reply, an acknowledgement or an error frame)
/// carries it back. For `sendMessage` it is also the idempotency key, per sender and
/// conversation, for 24 hours.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct ClientRequestId(String);

impl ClientRequestId {
    /// Validates an id.
    ///
    /// # Errors
    /// [`FrameError::InvalidField`] when it is empty, longer than 64 characters, or holds
    /// anything but letters, digits, `_` and `-`.
    pub fn parse(value: &str) -> Result<Self, FrameError> {
        let valid = (1..=MAX_CLIENT_REQUEST_ID_CHARS).contains(&value.len())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FrameError::InvalidField {
                field: fields::CLIENT_REQUEST_ID,
                problem: format!("must be 1 to {MAX_CLIENT_REQUEST_ID_CHARS} letters, digits, _ or -"),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A request's `clientRequestId`, if its body is a JSON object that has one.
    ///
    /// # Errors
    /// [`FrameError::InvalidField`] when it is present but not a valid id.
    pub fn of_request(body: Option<&str>) -> Result<Option<Self>, FrameError> {
        let Ok(object) = parse_object(body) else { return Ok(None) };
        match object.get(fields::CLIENT_REQUEST_ID) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => Self::parse(id).map(Some),
            Some(_) => {
                Err(FrameError::InvalidField { field: fields::CLIENT_REQUEST_ID, problem: "must be a string".into() })
            }
        }
    }
}

/// `sendMessage`'s acknowledgement, to the sending connection once the message is stored and
/// before it is delivered: `{"type":"ack","clientRequestId":"r1","destinationUserId":"bob",
/// "seq":7,"sentAt":…}` (or `"roomId"`). A repeat of the request is acknowledged the same.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Always `ack`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "ack"))]
    pub kind: String,
    /// The request's id.
    pub client_request_id: ClientRequestId,
    /// The recipient, for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_user_id: Option<UserId>,
    /// The room, for a room message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// The stored message's seq.
    pub seq: u64,
    /// When it was stored, epoch milliseconds.
    pub sent_at: i64,
}

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

/// Parses a frame's body as a JSON object.
pub fn parse_object(body: Option<&str>) -> Result<Map<String, Value>, FrameError> {
    let text = body.unwrap_or_default();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(FrameError::InvalidJson("expected an object like {\"action\":\"sendMessage\",...}".into())),
        Err(error) => Err(FrameError::InvalidJson(error.to_string())),
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, FrameError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(FrameError::InvalidField { field, problem: "must be a string".into() }),
    }
}

fn required_string<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, FrameError> {
    let text = string_field(object, field)?.ok_or(FrameError::MissingField(field))?;
    if text.is_empty() {
        return Err(FrameError::InvalidField { field, problem: "must not be empty".into() });
    }
    Ok(text)
}

impl SendMessage {
    /// Parses and validates a `sendMessage` frame's body.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let object = parse_object(body)?;
        let has = |field| !matches!(object.get(field), None | Some(Value::Null));
        let to = match (has(fields::DESTINATION_USER_ID), has(fields::ROOM_ID)) {
            (true, true) => {
                return Err(FrameError::InvalidField {
                    field: fields::ROOM_ID,
                    problem: "cannot be given with destinationUserId: send to a user or to a room".into(),
                });
            }
            (false, false) => return Err(FrameError::MissingField("destinationUserId\" or \"roomId")),
            (false, true) => Addressee::Room(room_field(&object)?),
            (true, false) => {
                let destination = required_string(&object, fields::DESTINATION_USER_ID)?;
                Addressee::User(UserId::parse(destination).map_err(|problem| FrameError::InvalidField {
                    field: fields::DESTINATION_USER_ID,
                    problem: format!("is not a valid user id: it {problem}"),
                })?)
            }
        };
        let body = required_string(&object, fields::BODY)?.to_owned();
        Ok(Self { to, body })
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

// The schemas of the frames clients send belong to the types that parse them: published in
// `docs/asyncapi.yaml` (with each route's `action`), and checked against the parsers by
// `crates/core/tests/suite/asyncapi.rs`. The parsers read field by field, to give each mistake its
// own sentence; these say the same rules in JSON Schema.

impl JsonSchema for SendMessage {
    fn schema_name() -> Cow<'static, str> {
        "SendMessage".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let (user, room) = (generator.subschema_for::<UserId>(), generator.subschema_for::<RoomId>());
        json_schema!({
            "description": "A message to every connection of a user (destinationUserId), or to every other member of a room the connection has joined (roomId): exactly one of the two.",
            "type": "object",
            "properties": {
                (fields::DESTINATION_USER_ID): user,
                (fields::ROOM_ID): room,
                (fields::BODY): {
                    "type": "string",
                    "minLength": 1,
                    "description": "The text delivered, unchanged; the delivered frame must fit in 128 KB.",
                },
            },
            "required": [fields::BODY],
            "oneOf": [{ "required": [fields::DESTINATION_USER_ID] }, { "required": [fields::ROOM_ID] }],
        })
    }
}

impl JsonSchema for RoomRequest {
    fn schema_name() -> Cow<'static, str> {
        "RoomRequest".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let room = generator.subschema_for::<RoomId>();
        json_schema!({
            "description": "The room to join or leave.",
            "type": "object",
            "properties": { (fields::ROOM_ID): room },
            "required": [fields::ROOM_ID],
        })
    }
}

impl JsonSchema for GetHistory {
    fn schema_name() -> Cow<'static, str> {
        "GetHistory".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        use crate::limits::{HISTORY_PAGE, MAX_HISTORY_PAGE};
        let (user, room) = (generator.subschema_for::<UserId>(), generator.subschema_for::<RoomId>());
        let seq = |description: &str| json!({ "type": "integer", "minimum": 0, "description": description });
        json_schema!({
            "description": "A page of a conversation's history: with a user (userId, from the asking user's side; one's own id for notes to oneself) or of a room (roomId), exactly one; before or after (exclusive, not both; neither is the newest page).",
            "type": "object",
            "properties": {
                (fields::USER_ID): user,
                (fields::ROOM_ID): room,
                (fields::BEFORE): seq("Messages older than this seq."),
                (fields::AFTER): seq("Messages newer than this seq."),
                (fields::LIMIT): {
                    "type": "integer", "minimum": 1, "maximum": MAX_HISTORY_PAGE, "default": HISTORY_PAGE,
                    "description": "At most this many messages."
                },
            },
            "oneOf": conversation_one_of(),
            "not": { "required": [fields::BEFORE, fields::AFTER] },
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

/// The frame a direct message reaches every connection of its recipient, and every other
/// connection of its sender, with: today's fields first, then the stored message's.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery<'a> {
    /// The sender's user id, from the server's own record of the sending connection.
    pub sender_id: &'a str,
    /// The message text, unchanged.
    pub body: &'a str,
    /// The recipient's user id: with `senderId`, it names the conversation on both sides.
    pub destination_user_id: &'a str,
    /// The message's position in its conversation, from 1.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}

/// The frame every other member of a room receives.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomDelivery<'a> {
    /// The sender's user id, from the server's own record of the sending connection.
    pub sender_id: &'a str,
    /// The room.
    pub room_id: &'a str,
    /// The message text, unchanged.
    pub body: &'a str,
    /// The message's position in the room, from 1.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}

/// A conversation as a request names it, from the requesting user's side: the other user
/// (`userId`; one's own id for notes to oneself), or a room (`roomId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationRef {
    /// A direct conversation with this user.
    User(UserId),
    /// A room.
    Room(RoomId),
}

/// A valid `getHistory` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct GetHistory {
    /// The conversation.
    pub conversation: ConversationRef,
    /// Where the page starts.
    pub cursor: crate::store::Cursor,
    /// At most this many messages (1 to [`crate::limits::MAX_HISTORY_PAGE`]).
    pub limit: usize,
}

impl GetHistory {
    /// Parses and validates a `getHistory` frame's body.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        use crate::limits::{HISTORY_PAGE, MAX_HISTORY_PAGE};
        use crate::store::Cursor;
        let object = parse_object(body)?;
        let conversation = conversation_field(&object)?;
        let seq = |field: &'static str| -> Result<Option<u64>, FrameError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value.as_u64().map(Some).ok_or_else(|| FrameError::InvalidField {
                    field,
                    problem: "must be a whole number, 0 or more".into(),
                }),
            }
        };
        let cursor = match (seq(fields::BEFORE)?, seq(fields::AFTER)?) {
            (Some(_), Some(_)) => {
                return Err(FrameError::InvalidField {
                    field: fields::AFTER,
                    problem: "cannot be given with before: page backwards or forwards".into(),
                });
            }
            (Some(before), None) => Cursor::Before(before),
            (None, Some(after)) => Cursor::After(after),
            (None, None) => Cursor::Newest,
        };
        let limit = match seq(fields::LIMIT)? {
            None => HISTORY_PAGE,
            Some(limit @ 1..) if limit as usize <= MAX_HISTORY_PAGE => limit as usize,
            Some(_) => {
                return Err(FrameError::InvalidField {
                    field: fields::LIMIT,
                    problem: format!("must be from 1 to {MAX_HISTORY_PAGE}"),
                });
            }
        };
        Ok(Self { conversation, cursor, limit })
    }
}

/// The schema of what [`conversation_field`] accepts: `userId` or `roomId`, exactly one.
fn conversation_one_of() -> Value {
    json!([
        { "required": [fields::USER_ID], "not": { "required": [fields::ROOM_ID] } },
        { "required": [fields::ROOM_ID], "not": { "required": [fields::USER_ID] } },
    ])
}

/// The conversation a request names: `userId` or `roomId`, exactly one.
fn conversation_field(object: &Map<String, Value>) -> Result<ConversationRef, FrameError> {
    let has = |field| !matches!(object.get(field), None | Some(Value::Null));
    match (has(fields::USER_ID), has(fields::ROOM_ID)) {
        (true, true) => Err(FrameError::InvalidField {
            field: fields::ROOM_ID,
            problem: "cannot be given with userId: name a user or a room".into(),
        }),
        (false, false) => Err(FrameError::MissingField("userId\" or \"roomId")),
        (false, true) => Ok(ConversationRef::Room(room_field(object)?)),
        (true, false) => {
            let user = required_string(object, fields::USER_ID)?;
            Ok(ConversationRef::User(UserId::parse(user).map_err(|problem| FrameError::InvalidField {
                field: fields::USER_ID,
                problem: format!("is not a valid user id: it {problem}"),
            })?))
        }
    }
}

/// One message of a page of history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryMessage {
    /// Who sent it.
    pub sender_id: UserId,
    /// The text, unchanged.
    pub body: String,
    /// Its position in the conversation, from 1.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}

/// `getHistory`'s answer: `{"type":"history","userId":"bob","messages":[…],"hasMore":true,
/// "oldestSeq":1}` (or `"roomId"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Always `history`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "history"))]
    pub kind: String,
    /// The other user, for a direct conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The room, for a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// In ascending seq, contiguous; within 128 KB in all.
    pub messages: Vec<HistoryMessage>,
    /// Whether more lie in the cursor's direction: older for the newest page and `before`,
    /// newer for `after`.
    pub has_more: bool,
    /// The oldest retained seq: every seq below it has expired. With nothing retained, the seq
    /// the next message will get.
    pub oldest_seq: u64,
}

/// A valid `sync` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Where the page starts: the previous page's `nextCursor`; none for the first page.
    pub cursor: Option<crate::store::SyncCursor>,
    /// At most this many conversations (1 to [`crate::limits::MAX_SYNC_PAGE`]).
    pub limit: usize,
}

impl SyncRequest {
    /// Parses and validates a `sync` frame's body.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        use crate::limits::{MAX_SYNC_PAGE, SYNC_PAGE};
        let object = parse_object(body)?;
        let cursor = match object.get(fields::CURSOR) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_str().and_then(crate::store::SyncCursor::parse).ok_or_else(|| {
                FrameError::InvalidField {
                    field: fields::CURSOR,
                    problem: "is not a cursor this server gave: send the previous page's nextCursor unchanged".into(),
                }
            })?),
        };
        let limit = match object.get(fields::LIMIT) {
            None | Some(Value::Null) => SYNC_PAGE,
            Some(value) => match value.as_u64() {
                Some(limit @ 1..) if limit as usize <= MAX_SYNC_PAGE => limit as usize,
                _ => {
                    return Err(FrameError::InvalidField {
                        field: fields::LIMIT,
                        problem: format!("must be a whole number from 1 to {MAX_SYNC_PAGE}"),
                    });
                }
            },
        };
        Ok(Self { cursor, limit })
    }
}

impl JsonSchema for SyncRequest {
    fn schema_name() -> Cow<'static, str> {
        "Sync".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        use crate::limits::{MAX_SYNC_PAGE, SYNC_PAGE};
        json_schema!({
            "description": "A page of the user's conversations, most recently active first.",
            "type": "object",
            "properties": {
                (fields::CURSOR): {
                    "type": "string", "maxLength": 160,
                    "description": "The previous page's nextCursor; absent for the first page."
                },
                (fields::LIMIT): {
                    "type": "integer", "minimum": 1, "maximum": MAX_SYNC_PAGE, "default": SYNC_PAGE,
                    "description": "At most this many conversations."
                },
            },
        })
    }
}

/// A valid `markRead` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct MarkRead {
    /// The conversation.
    pub conversation: ConversationRef,
    /// The latest seq the user has read.
    pub seq: u64,
}

impl MarkRead {
    /// Parses and validates a `markRead` frame's body.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let object = parse_object(body)?;
        let conversation = conversation_field(&object)?;
        let seq = match object.get(fields::SEQ) {
            None | Some(Value::Null) => return Err(FrameError::MissingField(fields::SEQ)),
            Some(value) => value.as_u64().ok_or_else(|| FrameError::InvalidField {
                field: fields::SEQ,
                problem: "must be a whole number, 0 or more".into(),
            })?,
        };
        Ok(Self { conversation, seq })
    }
}

impl JsonSchema for MarkRead {
    fn schema_name() -> Cow<'static, str> {
        "MarkRead".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let (user, room) = (generator.subschema_for::<UserId>(), generator.subschema_for::<RoomId>());
        json_schema!({
            "description": "Raises the user's readSeq in a conversation (with a user, or a room they joined) to seq, clamped to the latest seq, never lowered.",
            "type": "object",
            "properties": {
                (fields::USER_ID): user,
                (fields::ROOM_ID): room,
                (fields::SEQ): { "type": "integer", "minimum": 0, "description": "The latest seq read." },
            },
            "required": [fields::SEQ],
            "oneOf": conversation_one_of(),
        })
    }
}

/// A conversation's last message, as `sync` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    /// Who sent it.
    pub sender_id: UserId,
    /// Its first 100 characters.
    pub body: String,
    /// Its seq.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}

/// One conversation in `sync`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncConversation {
    /// The other user, for a direct conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The room, for a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// The conversation's latest seq (0 before its first message).
    pub seq: u64,
    /// The latest seq the user has read: `seq - readSeq` messages are unread.
    pub read_seq: u64,
    /// In a direct conversation, the latest seq the other user has read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<u64>,
    /// The last message, unless it has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessage>,
}

/// `sync`'s answer: `{"type":"sync","userId":"alice","conversations":[…],"nextCursor":"…"}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    /// Always `sync`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "sync"))]
    pub kind: String,
    /// The user's own id, as the server knows it.
    pub user_id: UserId,
    /// Most recently active first.
    pub conversations: Vec<SyncConversation>,
    /// Where the next page starts, when there is one: send it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A user's read state in a conversation: `markRead`'s answer, and what their other
/// connections are told: `{"type":"read","userId":"bob","readSeq":8}` (or `"roomId"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    /// Always `read`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "read"))]
    pub kind: String,
    /// The other user, for a direct conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The room, for a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// The user's readSeq now.
    pub read_seq: u64,
}

/// A read receipt, to every connection of the other user of a direct conversation:
/// `{"type":"readReceipt","userId":"bob","readSeq":8}` (bob has read up to 8).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    /// Always `readReceipt`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "readReceipt"))]
    pub kind: String,
    /// Who read: the conversation, from the receiving user's side.
    pub user_id: UserId,
    /// Their readSeq now.
    pub read_seq: u64,
}

/// `joinRoom`'s answer: `{"roomId":"lobby","joined":true,"seq":41}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The room.
    pub room_id: RoomId,
    /// Always true.
    pub joined: bool,
    /// The room's latest seq, read after the membership was in place: every later message is
    /// delivered to the connection, and every earlier one is in history (`before` seq + 1).
    pub seq: u64,
}

/// `leaveRoom`'s answer: `{"roomId":"lobby","left":true}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Left {
    /// The room.
    pub room_id: RoomId,
    /// Always true.
    pub left: bool,
}

/// The frame `$default` answers `{"action":"send"}` with.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Echo {
    /// The echoed text, or [`PONG`].
    pub message: String,
}

/// A frame a request is answered with, to the sending connection alone.
///
/// Answers are built by handlers and serialized in one place
/// ([`crate::routes`]'s outcome), so fields every answer carries (a client's request id, when
/// the protocol gains one) are added there once.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Answer {
    /// `$default`'s pong or echo.
    Echo(Echo),
    /// `joinRoom`'s confirmation.
    Joined(Joined),
    /// `leaveRoom`'s confirmation.
    Left(Left),
    /// `getHistory`'s page.
    History(History),
    /// `sync`'s page.
    Sync(Sync),
    /// `markRead`'s resulting read state.
    Read(Read),
    /// `sendMessage`'s acknowledgement (with a `clientRequestId`).
    Ack(Ack),
    /// Why the request was refused.
    Error(ErrorFrame),
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

    /// The answer to a frame that matches no action.
    pub fn unknown_action() -> Self {
        Self {
            actions: Some(ACTIONS.iter().map(|action| (*action).to_owned()).collect()),
            ..Self::new(
                ErrorCode::UnknownAction,
                format!("unknown action; send a JSON object whose \"{ACTION_FIELD}\" is one of {ACTIONS:?}"),
            )
        }
    }
}

/// A frame this protocol defines: only these can be serialized with [`to_bytes`].
pub trait Frame: Serialize + sealed::Sealed {}

mod sealed {
    /// Keeps [`super::Frame`] to the protocol's own types.
    pub trait Sealed {}
}

macro_rules! frames {
    ($($frame:ty),* $(,)?) => {
        $(impl sealed::Sealed for $frame {} impl Frame for $frame {})*
    };
}
frames!(Delivery<'_>, RoomDelivery<'_>, Echo, Joined, Left, History, Ack, Sync, Read, ReadReceipt, ErrorFrame, Answer);

/// A frame could not be serialized.
#[derive(Debug, thiserror::Error)]
#[error("could not serialize a {frame} frame")]
pub struct EncodeError {
    /// The frame's type.
    pub frame: &'static str,
    /// What serde_json reported.
    #[source]
    pub source: serde_json::Error,
}

/// An answer's bytes with `"clientRequestId":id` added as its last field (answers that name it
/// already, acknowledgements, are left as they are). The id's alphabet needs no escaping.
pub fn answer_bytes(answer: &Answer, client_request_id: Option<&ClientRequestId>) -> Result<Vec<u8>, EncodeError> {
    let mut bytes = to_bytes(answer)?;
    if let (Some(id), false) = (client_request_id, matches!(answer, Answer::Ack(_)))
        && bytes.last() == Some(&b'}')
    {
        bytes.pop();
        bytes.extend_from_slice(format!(",\"{}\":\"{}\"}}", fields::CLIENT_REQUEST_ID, id.as_str()).as_bytes());
    }
    Ok(bytes)
}

/// Serializes a frame to the bytes posted to a connection.
///
/// # Errors
/// [`EncodeError`] if serde_json fails, which the protocol's frames (strings, numbers,
/// booleans and lists of strings, no maps) cannot make it do; it is an error rather than an
/// empty frame all the same, so a future frame type that could fail is never posted as nothing.
pub fn to_bytes<T: Frame>(frame: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(frame).map_err(|source| EncodeError { frame: std::any::type_name::<T>(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("alice.b-c_d@example.com").is_ok());
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_CHARS)).is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_CHARS + 1)).is_err());
        assert!(UserId::parse("bob smith").is_err());
        assert!(UserId::parse("bøb").is_err());
    }

    #[test]
    fn a_send_message_frame_names_the_first_missing_field() {
        let error = SendMessage::parse(Some(r#"{"action":"sendMessage","body":"hi"}"#)).unwrap_err();
        assert_eq!(error, FrameError::MissingField("destinationUserId\" or \"roomId"));
        assert_eq!(error.to_string(), r#"the frame has no "destinationUserId" or "roomId" field"#);
        let error = SendMessage::parse(Some(r#"{"action":"sendMessage","destinationUserId":"2"}"#)).unwrap_err();
        assert_eq!(error, FrameError::MissingField("body"));
    }

    #[test]
    fn unknown_action_frames_list_every_action() {
        let frame = serde_json::to_value(ErrorFrame::unknown_action()).unwrap();
        assert_eq!(frame["error"], "unknownAction");
        assert_eq!(
            frame["actions"],
            serde_json::json!(["sendMessage", "joinRoom", "leaveRoom", "getHistory", "sync", "markRead", "send"])
        );
    }

    #[test]
    fn a_send_message_is_for_a_user_or_a_room_never_both() {
        let to_room = SendMessage::parse(Some(r#"{"action":"sendMessage","roomId":"lobby","body":"hi"}"#)).unwrap();
        assert_eq!(to_room.to, Addressee::Room(RoomId::parse("lobby").unwrap()));
        let both = r#"{"action":"sendMessage","roomId":"lobby","destinationUserId":"bob","body":"hi"}"#;
        assert!(matches!(SendMessage::parse(Some(both)), Err(FrameError::InvalidField { field: "roomId", .. })));
        let bad_room = r#"{"action":"sendMessage","roomId":"no spaces","body":"hi"}"#;
        assert!(matches!(SendMessage::parse(Some(bad_room)), Err(FrameError::InvalidField { field: "roomId", .. })));
    }

    #[test]
    fn room_frames_are_exactly_as_documented() {
        let lobby = RoomId::parse("lobby").unwrap();
        let joined =
            String::from_utf8(to_bytes(&Joined { room_id: lobby.clone(), joined: true, seq: 41 }).unwrap()).unwrap();
        assert_eq!(joined, r#"{"roomId":"lobby","joined":true,"seq":41}"#);
        let left = String::from_utf8(to_bytes(&Left { room_id: lobby, left: true }).unwrap()).unwrap();
        assert_eq!(left, r#"{"roomId":"lobby","left":true}"#);
        let delivery = RoomDelivery { sender_id: "alice", room_id: "lobby", body: "hi", seq: 42, sent_at: 7 };
        assert_eq!(
            String::from_utf8(to_bytes(&delivery).unwrap()).unwrap(),
            r#"{"senderId":"alice","roomId":"lobby","body":"hi","seq":42,"sentAt":7}"#
        );
        let direct =
            Delivery { sender_id: "alice", body: "hi", destination_user_id: "bob", seq: 7, sent_at: 1764528000123 };
        assert_eq!(
            String::from_utf8(to_bytes(&direct).unwrap()).unwrap(),
            r#"{"senderId":"alice","body":"hi","destinationUserId":"bob","seq":7,"sentAt":1764528000123}"#
        );
        assert_eq!(RoomRequest::parse(Some(r#"{"action":"joinRoom"}"#)), Err(FrameError::MissingField("roomId")));
    }
}
