//! `sendMessage`: deliver a message to every open connection of a user, or to every other
//! member of a room.

use futures::StreamExt;

use super::{Outcome, Refusal, Reply, Request, unknown_connection};
use crate::error::{Chain, PostError};
use crate::limits::{GONE_AFTER, MAX_MESSAGE_BYTES, MAX_POSTS_IN_FLIGHT};
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
use crate::protocol::{
    self, Addressee, Delivery, ErrorCode, Frame, FrameError, RoomDelivery, RoomId, SendMessage, UserId,
};
use crate::store::{Connection, Store};

/// Delivers a message: to a user (`destinationUserId`), `{"senderId","body"}` reaches every
/// connection of theirs; to a room (`roomId`), `{"senderId","roomId","body"}` reaches every
/// other member connection, read a page at a time. At most [`MAX_POSTS_IN_FLIGHT`] posts are in
/// flight at once; `metrics` counts what was delivered, gone and failed.
///
/// The sender's id comes from the store's record of the sending connection, never from the
/// frame. Refused frames, an offline recipient, a room the connection has not joined and
/// backend failures are reported to the sender alone as error frames; nothing reaches anyone
/// else.
pub async fn send_message(
    request: &Request,
    store: &dyn Store,
    messenger: &dyn Messenger,
    metrics: &mut Metrics,
) -> Outcome {
    let message = SendMessage::parse(request.body.as_deref())?;
    // A record younger than this may belong to a connection whose handshake is still completing.
    let opened_by = request.request_time_ms - GONE_AFTER.as_millis() as i64;
    let fan_out = FanOut { store, messenger, endpoint: &request.endpoint, opened_by };
    let mut tally = Tally::default();
    let sent = match &message.to {
        Addressee::User(user) => to_user(request, &fan_out, user, &message.body, &mut tally).await,
        Addressee::Room(room) => to_room(request, &fan_out, room, &message.body, &mut tally).await,
    };
    // Counted even when a later page of a room fails: those members did get the message.
    tally.record(metrics);
    sent?;
    let (delivered, failed) = (tally.delivered, tally.failed);
    tracing::info!(connections = delivered + tally.gone + failed, delivered, failed, "sendMessage");

    if failed > 0 {
        let text =
            format!("the message reached {delivered} of {} connections; try again in a moment", delivered + failed);
        return Err(Refusal::new(ErrorCode::Unavailable, text));
    }
    match &message.to {
        Addressee::User(user) if delivered == 0 => Err(not_connected(user)),
        // A room whose only member is the sender: nothing delivered, and nothing to answer.
        _ => Ok(Reply::Done("delivered")),
    }
}

/// A direct message: the sender's record and the recipient's connections are read at once.
async fn to_user(
    request: &Request,
    fan_out: &FanOut<'_>,
    user: &UserId,
    body: &str,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    let (record, recipients) =
        futures::join!(fan_out.store.find(&request.connection_id), fan_out.store.connections_of(user));
    let record = record?.ok_or_else(unknown_connection)?;
    let frame = encode(&Delivery { sender_id: record.user_id.as_str(), body })?;
    *tally += fan_out.deliver(recipients?, &frame).await;
    Ok(())
}

/// A room message: the sender's membership is checked, then the members are read a page at a
/// time, so a room of any size holds one page of ids in memory.
async fn to_room(
    request: &Request,
    fan_out: &FanOut<'_>,
    room: &RoomId,
    body: &str,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    let record: Connection = fan_out.store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?;
    if !record.rooms.contains(room) {
        return Err(Refusal::new(ErrorCode::NotInRoom, format!("join room {room} before sending to it")));
    }
    let frame = encode(&RoomDelivery { sender_id: record.user_id.as_str(), room_id: room.as_str(), body })?;
    let mut after: Option<String> = None;
    loop {
        let page = fan_out.store.members(room, after.as_deref()).await?;
        let others = page.connection_ids.into_iter().filter(|id| *id != request.connection_id).collect();
        *tally += fan_out.deliver(others, &frame).await;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// The delivered frame's bytes, refused when they would exceed API Gateway's 128 KB.
fn encode(frame: &impl Frame) -> Result<Vec<u8>, Refusal> {
    let bytes = protocol::to_bytes(frame)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(FrameError::BodyTooLarge { size: bytes.len() }.into());
    }
    Ok(bytes)
}

fn not_connected(user_id: &UserId) -> Refusal {
    Refusal::new(ErrorCode::RecipientNotConnected, format!("user {user_id} has no open connection"))
}

/// What happened to the posts of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    delivered: usize,
    /// Connections that answered 410; their records were removed if old enough to be gone.
    gone: usize,
    /// Of the gone, those whose record could not be removed (the TTL will).
    records_kept: usize,
    failed: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.gone += other.gone;
        self.records_kept += other.records_kept;
        self.failed += other.failed;
    }
}

impl Tally {
    fn record(&self, metrics: &mut Metrics) {
        metrics.messages_delivered = self.delivered as u64;
        metrics.connections_gone = self.gone as u64;
        metrics.posts_failed = self.failed as u64;
        metrics.backend_failures = self.records_kept as u64;
    }
}

/// Posts one frame to many connections, [`MAX_POSTS_IN_FLIGHT`] at a time.
struct FanOut<'a> {
    store: &'a dyn Store,
    messenger: &'a dyn Messenger,
    endpoint: &'a Endpoint,
    /// Epoch ms: a gone connection opened by then loses its record.
    opened_by: i64,
}

impl FanOut<'_> {
    async fn deliver(&self, recipients: Vec<String>, frame: &[u8]) -> Tally {
        // Collected first: a lazy map over borrowed ids trips the compiler's higher-ranked
        // lifetime check once the future is boxed (async_trait).
        let posts: Vec<_> = recipients.iter().map(|id| self.deliver_one(id, frame)).collect();
        let tallies = futures::stream::iter(posts).buffer_unordered(MAX_POSTS_IN_FLIGHT);
        tallies
            .fold(Tally::default(), |mut sum, one| async move {
                sum += one;
                sum
            })
            .await
    }

    /// Posts the frame to one connection. A connection that is gone loses its record, if it
    /// was opened by `opened_by`: a younger one may still be completing its handshake.
    async fn deliver_one(&self, connection_id: &str, frame: &[u8]) -> Tally {
        match self.messenger.post(self.endpoint, connection_id, frame).await {
            Ok(()) => Tally { delivered: 1, ..Tally::default() },
            Err(PostError::Gone(_)) => match self.store.remove_if_opened_by(connection_id, self.opened_by).await {
                Ok(removed) => {
                    tracing::info!(recipient = connection_id, removed, "recipient connection is gone");
                    Tally { gone: 1, ..Tally::default() }
                }
                Err(error) => {
                    // The record's TTL will remove it eventually; the delivery outcome stands.
                    tracing::warn!(recipient = connection_id, error = %Chain(&error), "could not delete a gone connection's record");
                    Tally { gone: 1, records_kept: 1, ..Tally::default() }
                }
            },
            Err(error) => {
                tracing::error!(recipient = connection_id, error = %Chain(&error), "delivery failed");
                Tally { failed: 1, ..Tally::default() }
            }
        }
    }
}
