//! `leaveRoom`: a user leaves a room on every connection, and each of their connections hears
//! that they did.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::join_room::RoomRequest;
use super::{Context, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::delivery::tell_user;
use crate::metrics::{Metric, Metrics};
use crate::protocol::{Answer, RoomId, frames};
use crate::store::subscriptions;

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] =
    &[Metric::FramesRefused, Metric::PostsFailed, Metric::PostsThrottled, Metric::BackendFailures];

/// `leaveRoom`'s answer: `{"roomId":"lobby","left":true}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Left {
    /// The room.
    pub room_id: RoomId,
    /// Always true.
    pub left: bool,
}

frames!(Left);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<RoomRequest>("leaveRoom", "Leave a room."),
        Message::answer::<Left>("left", "leaveRoom's answer, also sent to the user's other connections."),
    ]
}

/// Ends the user's membership of `roomId` on every connection and answers
/// `{"roomId":…,"left":true}`, also when they were not a member; their other connections get
/// the same frame.
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store, messenger) = (context.request, context.store()?, context.messenger()?);
    let room_id = RoomRequest::parse(request.body.as_deref())?.room_id;
    let user = context.user().await?;
    store.remove_room(&user, &room_id).await?;
    subscriptions::settle_room(store, &user, &room_id, request.request_time_ms).await?;
    let left = Left { room_id, left: true };
    tell_user(request, store, messenger, &user, &left).await;
    tracing::info!("left a room");
    Ok(Reply::Answer(Answer::new(&left)?))
}
