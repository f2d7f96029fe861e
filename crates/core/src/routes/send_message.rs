//! `sendMessage`: deliver a message to every open connection of the destination user.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use futures::future::join_all;

use super::{Sender, malformed_event, respond};
use crate::error::{Chain, PostError};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::messenger::{Endpoint, Messenger};
use crate::protocol::{self, Delivery, ErrorCode, ErrorFrame, FrameError, SendMessage, UserId};
use crate::store::ConnectionStore;

/// What happened to the delivery to one recipient connection.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The connection had closed; its record was removed.
    Gone,
    Failed,
}

/// Delivers `{"senderId","body"}` to every connection of `destinationUserId`, concurrently.
///
/// The sender's id comes from the store's record of the sending connection, never from the
/// frame. Refused frames, an offline recipient and backend failures are reported to the sender
/// alone as error frames; nothing reaches anyone else.
pub async fn send_message(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn ConnectionStore,
    messenger: &dyn Messenger,
) -> ApiGatewayProxyResponse {
    let sender = match Sender::of(request, messenger) {
        Ok(sender) => sender,
        Err(field) => return malformed_event(field),
    };
    let message = match SendMessage::parse(request.body.as_deref()) {
        Ok(message) => message,
        Err(error) => return sender.refuse(error.to_frame(), 400).await,
    };

    let (record, recipients) =
        futures::join!(store.find(sender.connection_id), store.connections_of(&message.destination_user_id));
    let (record, recipients) = match (record, recipients) {
        (Ok(record), Ok(recipients)) => (record, recipients),
        (Err(error), _) | (_, Err(error)) => return sender.unavailable(&error).await,
    };
    let Some(record) = record else {
        let frame = ErrorFrame::new(
            ErrorCode::UnknownConnection,
            "this connection has no user on record; reconnect with ?userId=<your id>",
        );
        return sender.refuse(frame, 403).await;
    };

    let frame = protocol::to_bytes(&Delivery { sender_id: record.user_id.as_str(), body: &message.body });
    if frame.len() > MAX_MESSAGE_BYTES {
        return sender.refuse(FrameError::BodyTooLarge { size: frame.len() }.to_frame(), 413).await;
    }

    let outcomes = join_all(recipients.iter().map(|id| deliver(store, messenger, &sender.endpoint, id, &frame))).await;
    let count = |wanted| outcomes.iter().filter(|outcome| **outcome == wanted).count();
    let (delivered, failed) = (count(Outcome::Delivered), count(Outcome::Failed));
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
        return sender.refuse(frame, 500).await;
    }
    if delivered == 0 {
        return sender.refuse(not_connected(&message.destination_user_id), 404).await;
    }
    respond(200, "delivered")
}

fn not_connected(user_id: &UserId) -> ErrorFrame {
    ErrorFrame::new(ErrorCode::RecipientNotConnected, format!("user {user_id} has no open connection"))
}

/// Posts the frame to one connection; a connection that is gone loses its record.
async fn deliver(
    store: &dyn ConnectionStore,
    messenger: &dyn Messenger,
    endpoint: &Endpoint,
    connection_id: &str,
    frame: &[u8],
) -> Outcome {
    match messenger.post(endpoint, connection_id, frame).await {
        Ok(()) => Outcome::Delivered,
        Err(PostError::Gone(_)) => {
            if let Err(error) = store.remove(connection_id).await {
                // The record's TTL will remove it eventually; the delivery outcome stands.
                tracing::warn!(connection_id, error = %Chain(&error), "could not delete a gone connection's record");
            }
            Outcome::Gone
        }
        Err(error) => {
            tracing::error!(connection_id, error = %Chain(&error), "delivery failed");
            Outcome::Failed
        }
    }
}
