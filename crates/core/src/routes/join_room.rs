//! `joinRoom`: a user enters a room on every connection, and each of their connections hears
//! that they did.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::{Context, Failure, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::delivery::tell_user;
use crate::limits::MAX_ROOMS_PER_USER;
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, parse_object, room_field};
use crate::protocol::{Answer, ConversationRef, ErrorCode, FrameError, RoomId, frames};
use crate::store::{self, RoomJoin, subscriptions};

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

/// A valid `joinRoom` or `leaveRoom` frame: the room it names.
#[derive(Debug, PartialEq, Eq)]
pub struct RoomRequest {
    /// The room.
    pub room_id: RoomId,
}

impl RoomRequest {
    /// Parses and validates a `joinRoom` or `leaveRoom` frame's body.
    ///
    /// # Errors
    /// The first mistake, as a [`FrameError`] naming its field.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let object = parse_object(body)?;
        Ok(Self { room_id: room_field(&object)? })
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

frames!(Joined);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<RoomRequest>("joinRoom", "Join a room."),
        Message::answer::<Joined>("joined", "joinRoom's answer, also sent to the user's other connections."),
    ]
}

/// Makes the connection's user a member of `roomId`, subscribes every connection of theirs
/// (including ones opened later, until they leave) and answers `{"roomId":…,"joined":true,
/// "seq":…}` with the room's latest seq, read once every subscription is in place; their other
/// connections get the same frame. A first join starts the user's read state at that seq (a
/// newcomer has nothing unread); joining again answers the same. Past [`MAX_ROOMS_PER_USER`]
/// rooms it answers `tooManyRooms`.
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store, messenger) = (context.request, context.store()?, context.messenger()?);
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    let user = context.user().await?;
    let first = match store.add_room(&user, &room_id).await? {
        RoomJoin::Member { first } => first,
        RoomJoin::TooManyRooms => {
            let text = format!("a user may be in at most {MAX_ROOMS_PER_USER} rooms; leave one first");
            return Err(Failure::refused(ErrorCode::TooManyRooms, text));
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
    Ok(Reply::Answer(Answer::new(&joined)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::to_bytes;

    #[test]
    fn room_frames_are_exactly_as_documented() {
        let lobby = RoomId::parse("lobby").unwrap();
        let joined =
            String::from_utf8(to_bytes(&Joined { room_id: lobby.clone(), joined: true, seq: 41 }).unwrap()).unwrap();
        assert_eq!(joined, r#"{"roomId":"lobby","joined":true,"seq":41}"#);
        let left = super::super::leave_room::Left { room_id: lobby, left: true };
        assert_eq!(String::from_utf8(to_bytes(&left).unwrap()).unwrap(), r#"{"roomId":"lobby","left":true}"#);
        assert_eq!(RoomRequest::parse(Some(r#"{"action":"joinRoom"}"#)), Err(FrameError::MissingField("roomId")));
    }
}
