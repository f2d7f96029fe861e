//! `sync`: the user's conversations, most recently active first, with their latest seq, read
//! state and last message: what a client shows after any absence, on any device.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, parse_object};
use crate::protocol::{Answer, FrameError, RoomId, UserId, frames};
use crate::store::SyncCursor;

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

/// A valid `sync` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Where the page starts: the previous page's `nextCursor`; none for the first page.
    pub cursor: Option<SyncCursor>,
    /// At most this many conversations (1 to [`crate::limits::MAX_SYNC_PAGE`]).
    pub limit: usize,
}

impl SyncRequest {
    /// Parses and validates a `sync` frame's body.
    ///
    /// # Errors
    /// The first mistake, as a [`FrameError`] naming its field.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        use crate::limits::{MAX_SYNC_PAGE, SYNC_PAGE};
        let object = parse_object(body)?;
        let cursor = match object.get(fields::CURSOR) {
            None | Some(Value::Null) => None,
            Some(value) => {
                Some(value.as_str().and_then(SyncCursor::parse).ok_or_else(|| FrameError::InvalidField {
                    field: fields::CURSOR,
                    problem: "is not a cursor this server gave: send the previous page's nextCursor unchanged".into(),
                })?)
            }
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
#[schemars(rename = "Sync")]
pub struct SyncPage {
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

frames!(SyncPage);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<SyncRequest>(
            "sync",
            "A page of the user's conversations, most recently active first: what a client shows after any absence.",
        ),
        Message::answer::<SyncPage>(
            "sync",
            "sync's answer: a page of the user's conversations with their latest seq, read state and last message.",
        ),
    ]
}

/// Answers `{"type":"sync","userId":…,"conversations":[…],"nextCursor":…}`: up to `limit`
/// conversations after `cursor`, each with `userId` or `roomId`, `seq`, `readSeq`, in a direct
/// conversation `peerReadSeq`, and `lastMessage` cut to 100 characters (100 conversations of the
/// longest ids stay far inside 128 KB). Strongly consistent. The user's id is the server's
/// record of the connection, never the frame's.
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store) = (context.request, context.store()?);
    let ask = SyncRequest::parse(request.body.as_deref())?;
    let user = context.user().await?;
    let page = store.sync(&user, ask.cursor.as_ref(), ask.limit, request.request_time_ms).await?;
    let conversations = page
        .conversations
        .into_iter()
        .map(|entry| {
            let (user_id, room_id) = entry.conversation.to_fields();
            let peer_read_seq = user_id.is_some().then_some(entry.peer_read_seq);
            SyncConversation {
                user_id,
                room_id,
                seq: entry.last_seq,
                read_seq: entry.read_seq,
                peer_read_seq,
                last_message: entry.last.map(|last| LastMessage {
                    sender_id: last.sender_id,
                    body: last.body,
                    seq: last.seq,
                    sent_at: last.sent_at,
                }),
            }
        })
        .collect();
    let next_cursor = page.next.map(|cursor| cursor.as_str().to_owned());
    tracing::info!(more = next_cursor.is_some(), "sync");
    Ok(Reply::Answer(Answer::new(&SyncPage { kind: "sync".into(), user_id: user, conversations, next_cursor })?))
}
