//! `markRead`: the user has read a conversation up to a seq; their other connections, and in a
//! direct conversation the other user, hear it.

use super::fan_out::tell_user;
use super::{Outcome, Refusal, Reply, Request, unknown_connection};
use crate::error::Chain;
use crate::messenger::Messenger;
use crate::protocol::{Answer, ConversationRef, ErrorCode, MarkRead, Read, ReadReceipt};
use crate::store::{Conversation, Store};

/// Raises the user's `readSeq` to `seq`, clamped to the conversation's latest seq and never
/// lowered, and answers `{"type":"read","userId"|"roomId":…,"readSeq":…}` with the result,
/// which the user's other connections also get. In a direct conversation with someone else,
/// every connection of theirs gets `{"type":"readReceipt","userId":<reader>,"readSeq":…}` and
/// their `sync` shows it as `peerReadSeq`. A room must have been joined (`notInRoom`).
pub async fn mark_read(request: &Request, store: &dyn Store, messenger: &dyn Messenger) -> Outcome {
    let ask = MarkRead::parse(request.body.as_deref())?;
    let user = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?.user_id;
    let conversation = match &ask.conversation {
        ConversationRef::User(other) => Conversation::direct(&user, other),
        ConversationRef::Room(room) => {
            if !store.in_room(&user, room).await? {
                return Err(Refusal::new(ErrorCode::NotInRoom, format!("join room {room} to mark it read")));
            }
            Conversation::Room(room.clone())
        }
    };
    let latest = store.latest_seq(&conversation).await?;
    let marked = store.mark_read(&user, &ask.conversation, ask.seq.min(latest)).await?;
    let read_seq = marked.read_seq;
    let (user_id, room_id) = match &ask.conversation {
        ConversationRef::User(other) => (Some(other.clone()), None),
        ConversationRef::Room(room) => (None, Some(room.clone())),
    };
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
    Ok(Reply::Answer(Answer::Read(read)))
}
