//! `getHistory`: a page of a conversation's stored messages, for a user who belongs to it.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Context, Failure, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::limits::MAX_MESSAGE_BYTES;
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, conversation_field, conversation_one_of, parse_object};
use crate::protocol::{self, Answer, ConversationRef, ErrorCode, FrameError, RoomId, UserId, frames};
use crate::store::{Conversation, Cursor};

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

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
/// A valid `getHistory` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct GetHistory {
    /// The conversation.
    pub conversation: ConversationRef,
    /// Where the page starts.
    pub cursor: Cursor,
    /// At most this many messages (1 to [`crate::limits::MAX_HISTORY_PAGE`]).
    pub limit: usize,
}

impl GetHistory {
    /// Parses and validates a `getHistory` frame's body.
    ///
    /// # Errors
    /// The first mistake, as a [`FrameError`] naming its field.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        use crate::limits::{HISTORY_PAGE, MAX_HISTORY_PAGE};
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

frames!(History);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<GetHistory>("getHistory", "A page of a conversation's stored messages."),
        Message::answer::<History>("history", "getHistory's answer: a page of messages in ascending seq."),
    ]
}

/// Room the answer leaves for fields every answer may gain (a client's request id).
const ANSWER_HEADROOM: usize = 256;

/// Answers `{"type":"history",…}`: up to `limit` messages from the cursor, strongly consistent,
/// in ascending seq. A direct conversation is the requesting user's with `userId` (the user is
/// one side by construction); a room's history is for its members (rooms are public by name:
/// anyone who joins may read it). The page is cut to fit API Gateway's 128 KB by dropping the
/// messages farthest from the cursor, which sets `hasMore`; it always holds one message if one
/// exists (`sendMessage` refuses a message that could not fit alone).
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store) = (context.request, context.store()?);
    let ask = GetHistory::parse(request.body.as_deref())?;
    let user = context.user().await?;
    let conversation = match &ask.conversation {
        ConversationRef::User(other) => Conversation::direct(&user, other),
        ConversationRef::Room(room) => {
            if !store.in_room(&user, room).await? {
                return Err(Failure::refused(ErrorCode::NotInRoom, format!("join room {room} to read its history")));
            }
            Conversation::Room(room.clone())
        }
    };
    let (user_id, room_id) = ask.conversation.to_fields();
    let page = store.history(&conversation, ask.cursor, ask.limit, request.request_time_ms).await?;
    let messages = page
        .messages
        .into_iter()
        .map(|message| HistoryMessage {
            sender_id: message.sender_id,
            body: message.body,
            seq: message.seq,
            sent_at: message.sent_at,
        })
        .collect();
    let mut history = History {
        kind: "history".into(),
        user_id,
        room_id,
        messages,
        has_more: page.has_more,
        oldest_seq: page.oldest_seq,
    };
    while history.messages.len() > 1 && protocol::to_bytes(&history)?.len() + ANSWER_HEADROOM > MAX_MESSAGE_BYTES {
        match ask.cursor {
            Cursor::After(_) => history.messages.pop(),
            Cursor::Newest | Cursor::Before(_) => Some(history.messages.remove(0)),
        };
        history.has_more = true;
    }
    Ok(Reply::Answer(Answer::new(&history)?))
}
