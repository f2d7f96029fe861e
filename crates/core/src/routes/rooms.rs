//! `joinRoom` and `leaveRoom`: a connection enters or leaves a room, and hears that it did.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use super::{Handled, Sender, malformed_event};
use crate::limits::MAX_ROOMS_PER_CONNECTION;
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, ErrorFrame, Joined, Left, RoomId, RoomRequest, Route};
use crate::store::{self, Store};

/// Makes the connection a member of `roomId` and answers `{"roomId":…,"joined":true}`; joining
/// again answers the same. Past [`MAX_ROOMS_PER_CONNECTION`] rooms it answers `tooManyRooms`.
pub async fn join_room(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    let (sender, room, metrics) = match parse(request, messenger, Route::JoinRoom).await {
        Ok(parsed) => parsed,
        Err(handled) => return handled,
    };
    match store.join(sender.connection_id, &room).await {
        Ok(store::Joined::Member) => {
            tracing::info!(connection_id = sender.connection_id, "joined a room");
            sender.answer(&Joined { room_id: room.as_str(), joined: true }, "joined", metrics).await
        }
        Ok(store::Joined::TooManyRooms) => {
            let text = format!("a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms; leave one first");
            sender.refuse(ErrorFrame::new(ErrorCode::TooManyRooms, text), 429, metrics).await
        }
        Ok(store::Joined::UnknownConnection) => {
            let frame = ErrorFrame::new(ErrorCode::UnknownConnection, "this connection has no record; reconnect");
            sender.refuse(frame, 403, metrics).await
        }
        Err(error) => sender.unavailable(&error, metrics).await,
    }
}

/// Ends the connection's membership of `roomId` and answers `{"roomId":…,"left":true}`, also
/// when it was not a member.
pub async fn leave_room(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    let (sender, room, metrics) = match parse(request, messenger, Route::LeaveRoom).await {
        Ok(parsed) => parsed,
        Err(handled) => return handled,
    };
    if let Err(error) = store.leave(sender.connection_id, &room).await {
        return sender.unavailable(&error, metrics).await;
    }
    tracing::info!(connection_id = sender.connection_id, "left a room");
    sender.answer(&Left { room_id: room.as_str(), left: true }, "left", metrics).await
}

/// The sender and the room of a `joinRoom` or `leaveRoom` event, or the answer to a bad one.
async fn parse<'a>(
    request: &'a ApiGatewayWebsocketProxyRequest,
    messenger: &'a dyn Messenger,
    route: Route,
) -> Result<(Sender<'a>, RoomId, Metrics), Handled> {
    let metrics = Metrics::new(route);
    let sender = match Sender::of(request, messenger) {
        Ok(sender) => sender,
        Err(field) => return Err(malformed_event(field, metrics)),
    };
    match RoomRequest::parse(request.body.as_deref()) {
        Ok(parsed) => Ok((sender, parsed.room_id, metrics)),
        Err(error) => Err(sender.refuse(error.to_frame(), 400, metrics).await),
    }
}
