//! `joinRoom` and `leaveRoom`: a connection enters or leaves a room, and hears that it did.

use super::{Outcome, Refusal, Reply, Request};
use crate::limits::MAX_ROOMS_PER_CONNECTION;
use crate::protocol::{Answer, ErrorCode, Joined, Left, RoomRequest};
use crate::store::{self, Store};

/// Makes the connection a member of `roomId` and answers `{"roomId":…,"joined":true,"seq":…}`
/// with the room's latest seq; joining again answers the same. Past [`MAX_ROOMS_PER_CONNECTION`] rooms it answers `tooManyRooms`.
pub async fn join_room(request: &Request, store: &dyn Store) -> Outcome {
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    match store.join(&request.connection_id, &room_id).await? {
        store::Joined::Member => {
            // Read after the membership is in place, so nothing stored after it can be missed.
            let seq = store.latest_seq(&store::Conversation::Room(room_id.clone())).await?;
            tracing::info!("joined a room");
            Ok(Reply::Answer(Answer::Joined(Joined { room_id, joined: true, seq })))
        }
        store::Joined::TooManyRooms => {
            let text = format!("a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms; leave one first");
            Err(Refusal::new(ErrorCode::TooManyRooms, text))
        }
        store::Joined::UnknownConnection => Err(super::unknown_connection()),
    }
}

/// Ends the connection's membership of `roomId` and answers `{"roomId":…,"left":true}`, also
/// when it was not a member.
pub async fn leave_room(request: &Request, store: &dyn Store) -> Outcome {
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    store.leave(&request.connection_id, &room_id).await?;
    tracing::info!("left a room");
    Ok(Reply::Answer(Answer::Left(Left { room_id, left: true })))
}
