//! `joinRoom` and `leaveRoom`: a user enters or leaves a room on every connection, and each of
//! their connections hears that they did.

use super::fan_out::tell_user;
use super::{Outcome, Refusal, Reply, Request, unknown_connection};
use crate::limits::MAX_ROOMS_PER_USER;
use crate::messenger::Messenger;
use crate::protocol::{Answer, ConversationRef, ErrorCode, Joined, Left, RoomRequest};
use crate::store::{self, RoomJoin, Store, subscriptions};

/// Makes the connection's user a member of `roomId`, subscribes every connection of theirs
/// (including ones opened later, until they leave) and answers `{"roomId":…,"joined":true,
/// "seq":…}` with the room's latest seq, read once every subscription is in place; their other
/// connections get the same frame. A first join starts the user's read state at that seq (a
/// newcomer has nothing unread); joining again answers the same. Past [`MAX_ROOMS_PER_USER`]
/// rooms it answers `tooManyRooms`.
pub async fn join_room(request: &Request, store: &dyn Store, messenger: &dyn Messenger) -> Outcome {
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    let user = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?.user_id;
    let first = match store.add_room(&user, &room_id).await? {
        RoomJoin::Member { first } => first,
        RoomJoin::TooManyRooms => {
            let text = format!("a user may be in at most {MAX_ROOMS_PER_USER} rooms; leave one first");
            return Err(Refusal::new(ErrorCode::TooManyRooms, text));
        }
    };
    let conversation = store::Conversation::Room(room_id.clone());
    if first {
        // A newcomer has nothing unread: what is stored before the join counts as read. Read
        // before the subscriptions, so a message stored meanwhile counts as unread (it is in
        // history), and written first, so a retry after a failure below does not skip it.
        let before = store.latest_seq(&conversation).await?;
        if before > 0 {
            store.mark_read(&user, &ConversationRef::Room(room_id.clone()), before).await?;
        }
    }
    subscriptions::settle_room(store, &user, &room_id, request.request_time_ms).await?;
    // Read after the subscriptions are in place, so nothing stored after it can be missed.
    let seq = store.latest_seq(&conversation).await?;
    let joined = Joined { room_id, joined: true, seq };
    tell_user(request, store, messenger, &user, &joined).await;
    tracing::info!(first, "joined a room");
    Ok(Reply::Answer(Answer::Joined(joined)))
}

/// Ends the user's membership of `roomId` on every connection and answers
/// `{"roomId":…,"left":true}`, also when they were not a member; their other connections get
/// the same frame.
pub async fn leave_room(request: &Request, store: &dyn Store, messenger: &dyn Messenger) -> Outcome {
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    let user = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?.user_id;
    store.remove_room(&user, &room_id).await?;
    subscriptions::settle_room(store, &user, &room_id, request.request_time_ms).await?;
    let left = Left { room_id, left: true };
    tell_user(request, store, messenger, &user, &left).await;
    tracing::info!("left a room");
    Ok(Reply::Answer(Answer::Left(left)))
}
