//! `sendMessage`: deliver a message to every open connection of the destination user.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures::StreamExt;

use super::{Handled, Sender, malformed_event, respond};
use crate::error::{Chain, PostError};
use crate::limits::{GONE_AFTER, MAX_MESSAGE_BYTES, MAX_POSTS_IN_FLIGHT};
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
use crate::protocol::{self, Delivery, ErrorCode, ErrorFrame, FrameError, Route, SendMessage, UserId};
use crate::store::ConnectionStore;

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

/// Delivers `{"senderId","body"}` to every connection of `destinationUserId`, at most
/// [`MAX_POSTS_IN_FLIGHT`] at a time.
///
/// The sender's id comes from the store's record of the sending connection, never from the
/// frame. Refused frames, an offline recipient and backend failures are reported to the sender
/// alone as error frames; nothing reaches anyone else.
pub async fn send_message(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn ConnectionStore,
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

    let (record, recipients) =
        futures::join!(store.find(sender.connection_id), store.connections_of(&message.destination_user_id));
    let (record, recipients) = match (record, recipients) {
        (Ok(record), Ok(recipients)) => (record, recipients),
        (Err(error), _) | (_, Err(error)) => return sender.unavailable(&error, metrics).await,
    };
    let Some(record) = record else {
        let frame = ErrorFrame::new(
            ErrorCode::UnknownConnection,
            "this connection has no user on record; reconnect with ?userId=<your id>",
        );
        return sender.refuse(frame, 403, metrics).await;
    };

    let frame = protocol::to_bytes(&Delivery { sender_id: record.user_id.as_str(), body: &message.body });
    if frame.len() > MAX_MESSAGE_BYTES {
        return sender.refuse(FrameError::BodyTooLarge { size: frame.len() }.to_frame(), 413, metrics).await;
    }

    // A record younger than this may belong to a connection whose handshake is still completing.
    let opened_by = request.request_context.request_time_epoch - GONE_AFTER.as_millis() as i64;
    // Collected first: a lazy map over borrowed ids trips the compiler's higher-ranked lifetime
    // check once the future is boxed (async_trait). Each future is a few words until polled.
    let deliveries: Vec<_> =
        recipients.iter().map(|id| deliver(store, messenger, &sender.endpoint, id, &frame, opened_by)).collect();
    let outcomes: Vec<Outcome> =
        futures::stream::iter(deliveries).buffer_unordered(MAX_POSTS_IN_FLIGHT).collect().await;
    let count = |wanted: &[Outcome]| outcomes.iter().filter(|outcome| wanted.contains(outcome)).count();
    let (delivered, failed) = (count(&[Outcome::Delivered]), count(&[Outcome::Failed]));
    metrics.messages_delivered = delivered as u64;
    metrics.connections_gone = count(&[Outcome::Gone, Outcome::GoneRecordKept]) as u64;
    metrics.posts_failed = failed as u64;
    metrics.backend_failures = count(&[Outcome::GoneRecordKept]) as u64;
    tracing::info!(
        connection_id = sender.connection_id,
        connections = recipients.len(),
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
    if delivered == 0 {
        return sender.refuse(not_connected(&message.destination_user_id), 404, metrics).await;
    }
    respond(200, "delivered", metrics)
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
