//! `sendMessage`: deliver a message to every open connection of a user, or to every other
//! member of a room.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures::StreamExt;

use super::{Handled, Sender, malformed_event, respond};
use crate::error::{Chain, PostError, StoreError};
use crate::limits::{GONE_AFTER, MAX_MESSAGE_BYTES, MAX_POSTS_IN_FLIGHT};
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
use crate::protocol::{
    self, Addressee, Delivery, ErrorCode, ErrorFrame, FrameError, RoomDelivery, RoomId, Route, SendMessage, UserId,
};
use crate::store::{ConnectionStore, Store};

/// Who a message goes to, as far as it is known before the sender's record is checked.
enum Recipients<'a> {
    /// A user's connections, read alongside the sender's record.
    User(Result<Vec<String>, StoreError>),
    /// A room, whose members are read a page at a time.
    Room(&'a RoomId),
}

/// What happened to the delivery to one recipient connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The connection answered 410; its record was removed if it was old enough to be gone.
    Gone,
    /// As [`Outcome::Gone`], but removing the record failed.
    GoneRecordKept,
    Failed,
}

/// Delivers a message: to a user (`destinationUserId`), `{"senderId","body"}` reaches every
/// connection of theirs; to a room (`roomId`), `{"senderId","roomId","body"}` reaches every
/// other member connection, read a page at a time. At most [`MAX_POSTS_IN_FLIGHT`] posts are in
/// flight at once.
///
/// The sender's id comes from the store's record of the sending connection, never from the
/// frame. Refused frames, an offline recipient, a room the connection has not joined and
/// backend failures are reported to the sender alone as error frames; nothing reaches anyone
/// else.
pub async fn send_message(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    let mut metrics = Metrics::new(Route::SendMessage);
    let sender = match Sender::of(request, messenger) {
        Ok(sender) => sender,
        Err(field) => return malformed_event(field, metrics),
    };
    let message = match SendMessage::parse(request.body.as_deref()) {
        Ok(message) => message,
        Err(error) => return sender.refuse(error.to_frame(), 400, metrics).await,
    };
    // A direct message reads the sender's record and the recipient's connections at once; a
    // room's members are read after the sender's membership is checked.
    let (record, recipients) = match &message.to {
        Addressee::User(user) => {
            let (record, ids) = futures::join!(store.find(sender.connection_id), store.connections_of(user));
            (record, Recipients::User(ids))
        }
        Addressee::Room(room) => (store.find(sender.connection_id).await, Recipients::Room(room)),
    };
    let record = match record {
        Ok(Some(record)) => record,
        Ok(None) => {
            let frame = ErrorFrame::new(
                ErrorCode::UnknownConnection,
                "this connection has no user on record; reconnect with ?userId=<your id>",
            );
            return sender.refuse(frame, 403, metrics).await;
        }
        Err(error) => return sender.unavailable(&error, metrics).await,
    };

    let frame = match &message.to {
        Addressee::User(_) => protocol::to_bytes(&Delivery { sender_id: record.user_id.as_str(), body: &message.body }),
        Addressee::Room(room) => protocol::to_bytes(&RoomDelivery {
            sender_id: record.user_id.as_str(),
            room_id: room.as_str(),
            body: &message.body,
        }),
    };
    if frame.len() > MAX_MESSAGE_BYTES {
        return sender.refuse(FrameError::BodyTooLarge { size: frame.len() }.to_frame(), 413, metrics).await;
    }
    // A record younger than this may belong to a connection whose handshake is still completing.
    let opened_by = request.request_context.request_time_epoch - GONE_AFTER.as_millis() as i64;
    let deliver_all = |recipients: Vec<String>| {
        let frame = &frame;
        let endpoint = &sender.endpoint;
        async move {
            // Collected first: a lazy map over borrowed ids trips the compiler's higher-ranked
            // lifetime check once the future is boxed (async_trait).
            let deliveries: Vec<_> =
                recipients.iter().map(|id| deliver(store, messenger, endpoint, id, frame, opened_by)).collect();
            futures::stream::iter(deliveries).buffer_unordered(MAX_POSTS_IN_FLIGHT).collect::<Vec<Outcome>>().await
        }
    };

    let mut outcomes = Vec::new();
    match recipients {
        Recipients::User(Ok(ids)) => outcomes = deliver_all(ids).await,
        Recipients::User(Err(error)) => return sender.unavailable(&error, metrics).await,
        Recipients::Room(room) => {
            if !record.rooms.contains(room) {
                let frame = ErrorFrame::new(ErrorCode::NotInRoom, format!("join room {room} before sending to it"));
                return sender.refuse(frame, 403, metrics).await;
            }
            // One page of members at a time: a room of any size holds one page of ids in memory.
            let mut after: Option<String> = None;
            loop {
                let page = match store.members(room, after.as_deref()).await {
                    Ok(page) => page,
                    Err(error) => return sender.unavailable(&error, metrics).await,
                };
                let others = page.connection_ids.into_iter().filter(|id| id != sender.connection_id).collect();
                outcomes.extend(deliver_all(others).await);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }

    let count = |wanted: &[Outcome]| outcomes.iter().filter(|outcome| wanted.contains(outcome)).count();
    let (delivered, failed) = (count(&[Outcome::Delivered]), count(&[Outcome::Failed]));
    metrics.messages_delivered = delivered as u64;
    metrics.connections_gone = count(&[Outcome::Gone, Outcome::GoneRecordKept]) as u64;
    metrics.posts_failed = failed as u64;
    metrics.backend_failures = count(&[Outcome::GoneRecordKept]) as u64;
    tracing::info!(
        connection_id = sender.connection_id,
        connections = outcomes.len(),
        delivered,
        failed,
        "sendMessage"
    );

    if failed > 0 {
        let frame = ErrorFrame::new(
            ErrorCode::Unavailable,
            format!("the message reached {delivered} of {} connections; try again in a moment", delivered + failed),
        );
        return sender.refuse(frame, 500, metrics).await;
    }
    match &message.to {
        Addressee::User(user) if delivered == 0 => sender.refuse(not_connected(user), 404, metrics).await,
        // A room whose only member is the sender: nothing delivered, and nothing to answer.
        _ => respond(200, "delivered", metrics),
    }
}

fn not_connected(user_id: &UserId) -> ErrorFrame {
    ErrorFrame::new(ErrorCode::RecipientNotConnected, format!("user {user_id} has no open connection"))
}

/// Posts the frame to one connection. A connection that is gone loses its record, if it was
/// opened by `opened_by` (epoch ms): a younger one may still be completing its handshake.
async fn deliver(
    store: &dyn ConnectionStore,
    messenger: &dyn Messenger,
    endpoint: &Endpoint,
    connection_id: &str,
    frame: &[u8],
    opened_by: i64,
) -> Outcome {
    match messenger.post(endpoint, connection_id, frame).await {
        Ok(()) => Outcome::Delivered,
        Err(PostError::Gone(_)) => match store.remove_if_opened_by(connection_id, opened_by).await {
            Ok(removed) => {
                tracing::info!(connection_id, removed, "recipient connection is gone");
                Outcome::Gone
            }
            Err(error) => {
                // The record's TTL will remove it eventually; the delivery outcome stands.
                tracing::warn!(connection_id, error = %Chain(&error), "could not delete a gone connection's record");
                Outcome::GoneRecordKept
            }
        },
        Err(error) => {
            tracing::error!(connection_id, error = %Chain(&error), "delivery failed");
            Outcome::Failed
        }
    }
}
