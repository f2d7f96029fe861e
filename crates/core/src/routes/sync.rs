//! `sync`: the user's conversations, most recently active first, with their latest seq, read
//! state and last message: what a client shows after any absence, on any device.

use super::{Outcome, Reply, Request, unknown_connection};
use crate::protocol::{Answer, ConversationRef, LastMessage, Sync, SyncConversation, SyncRequest};
use crate::store::Store;

/// Answers `{"type":"sync","userId":…,"conversations":[…],"nextCursor":…}`: up to `limit`
/// conversations after `cursor`, each with `userId` or `roomId`, `seq`, `readSeq`, in a direct
/// conversation `peerReadSeq`, and `lastMessage` cut to 100 characters (100 conversations of the
/// longest ids stay far inside 128 KB). Strongly consistent. The user's id is the server's
/// record of the connection, never the frame's.
pub async fn sync(request: &Request, store: &dyn Store) -> Outcome {
    let ask = SyncRequest::parse(request.body.as_deref())?;
    let user = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?.user_id;
    let page = store.sync(&user, ask.cursor.as_ref(), ask.limit, request.request_time_ms).await?;
    let conversations = page
        .conversations
        .into_iter()
        .map(|entry| {
            let (user_id, room_id, peer_read_seq) = match entry.conversation {
                ConversationRef::User(other) => (Some(other), None, Some(entry.peer_read_seq)),
                ConversationRef::Room(room) => (None, Some(room), None),
            };
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
    Ok(Reply::Answer(Answer::Sync(Sync { kind: "sync".into(), user_id: user, conversations, next_cursor })))
}
