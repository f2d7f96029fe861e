//! `getHistory`: a page of a conversation's stored messages, for a user who belongs to it.

use super::{Outcome, Refusal, Reply, Request, unknown_connection};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::protocol::{self, Answer, ConversationRef, ErrorCode, GetHistory, History, HistoryMessage};
use crate::store::{Conversation, Cursor, Store};

/// Room the answer leaves for fields every answer may gain (a client's request id).
const ANSWER_HEADROOM: usize = 256;

/// Answers `{"type":"history",…}`: up to `limit` messages from the cursor, strongly consistent,
/// in ascending seq. A direct conversation is the requesting user's with `userId` (the user is
/// one side by construction); a room's history is for its members (rooms are public by name:
/// anyone who joins may read it). The page is cut to fit API Gateway's 128 KB by dropping the
/// messages farthest from the cursor, which sets `hasMore`; it always holds one message if one
/// exists (`sendMessage` refuses a message that could not fit alone).
pub async fn get_history(request: &Request, store: &dyn Store) -> Outcome {
    let ask = GetHistory::parse(request.body.as_deref())?;
    let record = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?;
    let (conversation, user_id, room_id) = match &ask.conversation {
        ConversationRef::User(other) => (Conversation::direct(&record.user_id, other), Some(other.clone()), None),
        ConversationRef::Room(room) => {
            if !store.in_room(&record.user_id, room).await? {
                return Err(Refusal::new(ErrorCode::NotInRoom, format!("join room {room} to read its history")));
            }
            (Conversation::Room(room.clone()), None, Some(room.clone()))
        }
    };
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
    Ok(Reply::Answer(Answer::History(history)))
}
