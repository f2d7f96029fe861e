//! `markRead`: the user has read a conversation up to a seq; their other connections, and in a
//! direct conversation the other user, hear it.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Failure, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::delivery::tell_user;
use crate::error::Chain;
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, conversation_field, conversation_one_of, parse_object};
use crate::protocol::{Answer, ConversationRef, ErrorCode, FrameError, RoomId, UserId, frames};
use crate::store::Conversation;

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

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
    ///
    /// # Errors
    /// The first mistake, as a [`FrameError`] naming its field.
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

frames!(Read, ReadReceipt);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<MarkRead>("markRead", "Raise the user's read state in a conversation."),
        Message::answer::<Read>(
            "read",
            "markRead's answer, also sent to the user's other connections: their read state in a conversation.",
        ),
        Message::sent::<ReadReceipt>(
            "readReceipt",
            "To every connection of the other user of a direct conversation: how far the user has read.",
        ),
    ]
}

/// Raises the user's `readSeq` to `seq`, clamped to the conversation's latest seq and never
/// lowered, and answers `{"type":"read","userId"|"roomId":…,"readSeq":…}` with the result,
/// which the user's other connections also get. In a direct conversation with someone else,
/// every connection of theirs gets `{"type":"readReceipt","userId":<reader>,"readSeq":…}` and
/// their `sync` shows it as `peerReadSeq`. A room must have been joined (`notInRoom`).
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store, messenger) = (context.request, context.store()?, context.messenger()?);
    let ask = MarkRead::parse(request.body.as_deref())?;
    let user = context.user().await?;
    let conversation = match &ask.conversation {
        ConversationRef::User(other) => Conversation::direct(&user, other),
        ConversationRef::Room(room) => {
            if !store.in_room(&user, room).await? {
                return Err(Failure::refused(ErrorCode::NotInRoom, format!("join room {room} to mark it read")));
            }
            Conversation::Room(room.clone())
        }
    };
    let latest = store.latest_seq(&conversation).await?;
    let marked = store.mark_read(&user, &ask.conversation, ask.seq.min(latest)).await?;
    let read_seq = marked.read_seq;
    let (user_id, room_id) = ask.conversation.to_fields();
    let read = Read { kind: "read".into(), user_id, room_id, read_seq };
    // The user's other connections hear of a read that moved their state; one that did not
    // (read already, in this tab or another) posts nothing.
    let tabs = async {
        if marked.raised {
            tell_user(request, store, messenger, &user, &read).await;
        }
    };
    let receipt = async {
        let ConversationRef::User(other) = &ask.conversation else { return };
        // None to oneself, and none before there is anything read (a conversation with no
        // message: the receipt would only reach a stranger).
        if *other == user || read_seq == 0 {
            return;
        }
        // A receipt when what the other user knows of this read moves: also after a reply,
        // which raised the reader's own readSeq but told the other user nothing.
        match store.mark_peer_read(other, &user, read_seq).await {
            Ok(false) => return,
            Ok(true) => {}
            Err(error) => tracing::warn!(error = %Chain(&error), "could not record a read receipt"),
        }
        let receipt = ReadReceipt { kind: "readReceipt".into(), user_id: user.clone(), read_seq };
        tell_user(request, store, messenger, other, &receipt).await;
    };
    futures::join!(tabs, receipt);
    tracing::info!("marked read");
    Ok(Reply::Answer(Answer::new(&read)?))
}
