//! `sendMessage`: store a message at its conversation's next seq, then deliver it to every open
//! connection of a user (and the sender's other connections), or to every other member of a room.

use super::fan_out::{FanOut, Listed, Tally};
use super::{Outcome, Refusal, Reply, Request, unknown_connection};
use crate::error::Chain;
use crate::limits::{FAN_OUT_PAGE, MAX_MESSAGE_BYTES};
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::protocol::{
    self, Ack, Addressee, Answer, ConversationRef, Delivery, ErrorCode, Frame, FrameError, History, HistoryMessage,
    RoomDelivery, RoomId, SendMessage, UserId, fields,
};
use crate::queue::{FanOutPage, FanOutQueue, QueueError};
use crate::store::{Appended, Connection, Conversation, Idempotency, Store, StoredMessage};

/// Stores a message, then delivers it. To a user (`destinationUserId`),
/// `{"senderId","body","destinationUserId","seq","sentAt"}` reaches every connection of theirs
/// and every other connection of the sender, online or not: a user with no open connection
/// reads it later through history. To a room (`roomId`), `{"senderId","roomId","body","seq",
/// "sentAt"}` reaches every other member connection, read a page at a time. At most
/// [`MAX_POSTS_IN_FLIGHT`](crate::limits::MAX_POSTS_IN_FLIGHT) posts are in flight at once; `metrics` counts what was delivered,
/// gone and failed.
///
/// The sender's id comes from the store's record of the sending connection, never from the
/// frame. Refused frames, a room the connection has not joined and a failure to store are
/// reported to the sender alone as error frames. Once stored, a message is not refused: a post
/// that fails leaves it to history.
pub async fn send_message(
    request: &Request,
    store: &dyn Store,
    messenger: &dyn Messenger,
    metrics: &mut Metrics,
) -> Outcome {
    send_message_through(request, store, messenger, None, metrics).await
}

/// [`send_message`], with a fan-out queue: a room with more than
/// [`FAN_OUT_PAGE`](crate::limits::FAN_OUT_PAGE) other subscribed connections is delivered by
/// queueing its members in pages for workers ([`super::fan_out_page`]) instead of posting to
/// each; smaller rooms and direct messages are posted as without one. Pages the queue does not
/// take are posted here.
pub async fn send_message_through(
    request: &Request,
    store: &dyn Store,
    messenger: &dyn Messenger,
    queue: Option<&dyn FanOutQueue>,
    metrics: &mut Metrics,
) -> Outcome {
    let message = SendMessage::parse(request.body.as_deref())?;
    let record: Connection = store.find(&request.connection_id).await?.ok_or_else(unknown_connection)?;
    let fan_out = FanOut::new(request, store, messenger);
    let mut tally = Tally::default();
    let sender = &record.user_id;
    let sent_at = request.request_time_ms;
    let idempotency = request.client_request_id.as_ref().map(|id| Idempotency { client_request_id: id.as_str() });
    let to = &message.to;
    let conversation = match to {
        Addressee::User(user) => Conversation::direct(sender, user),
        Addressee::Room(room) => {
            if !record.rooms.contains(room) {
                return Err(Refusal::new(ErrorCode::NotInRoom, format!("join room {room} before sending to it")));
            }
            Conversation::Room(room.clone())
        }
    };
    fits(sender, &message.body, to)?;
    let stored = match store.append(&conversation, sender, &message.body, sent_at, idempotency).await? {
        Appended::Stored(stored) => stored,
        // Delivered again (at least once: clients drop a seq they hold), so that a failure
        // between storing and posting is healed by the client's retry.
        Appended::Repeat(first) => first,
        Appended::DifferentBody => {
            return Err(FrameError::InvalidField {
                field: fields::CLIENT_REQUEST_ID,
                problem: "was used for a different message to this conversation within 24 hours".into(),
            }
            .into());
        }
        Appended::InProgress => {
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "the first send with this clientRequestId is still being stored; send it again in a moment",
            ));
        }
    };
    // Acknowledged once stored, before the fan-out: the sender may stop retrying.
    let acknowledged = match &request.client_request_id {
        Some(id) => {
            let ack = Ack {
                kind: "ack".into(),
                client_request_id: id.clone(),
                destination_user_id: match &to {
                    Addressee::User(user) => Some(user.clone()),
                    Addressee::Room(_) => None,
                },
                room_id: match &to {
                    Addressee::Room(room) => Some(room.clone()),
                    Addressee::User(_) => None,
                },
                seq: stored.seq,
                sent_at: stored.sent_at,
            };
            super::outcome::post(request, &Answer::Ack(ack), Some(messenger), metrics).await;
            true
        }
        None => false,
    };
    // The conversation lists `sync` reads, beside the fan-out (a repeat records again, healing
    // a send that stopped before).
    let record = async {
        let recorded = match to {
            Addressee::User(user) => store.record_direct(user, &stored).await,
            Addressee::Room(room) => {
                store.mark_read(sender, &ConversationRef::Room(room.clone()), stored.seq).await.map(drop)
            }
        };
        if let Err(error) = &recorded {
            tracing::error!(error = %Chain(error), "could not record the message in the conversation lists; the next message will");
        }
        recorded.is_err()
    };
    let deliver = async {
        match to {
            Addressee::User(user) => to_user(request, &fan_out, user, &stored, &mut tally).await,
            Addressee::Room(room) => to_room(request, &fan_out, queue, room, &stored, &mut tally).await,
        }
    };
    let (unrecorded, ()) = futures::join!(record, deliver);
    tally.record(metrics);
    metrics.backend_failures += u64::from(unrecorded);
    let (delivered, failed, queued) = (tally.delivered, tally.failed, tally.queued);
    tracing::info!(connections = delivered + tally.gone + failed + queued, delivered, failed, queued, "sendMessage");
    Ok(Reply::Done(if acknowledged { "acknowledged" } else { "stored" }))
}

/// Refuses a message whose delivered frame, or a page of history holding it alone, would
/// exceed API Gateway's 128 KB, measured with the largest seq and time: so that any page of
/// history can hold at least one message.
fn fits(sender: &UserId, body: &str, to: &Addressee) -> Result<(), FrameError> {
    let (seq, sent_at) = (u64::MAX, i64::MAX);
    let message = HistoryMessage { sender_id: sender.clone(), body: body.to_owned(), seq, sent_at };
    let page = |user_id: Option<UserId>, room_id: Option<RoomId>| History {
        kind: "history".into(),
        user_id,
        room_id,
        messages: vec![message.clone()],
        has_more: true,
        oldest_seq: seq,
    };
    let sizes = match to {
        Addressee::User(user) => {
            let delivered =
                Delivery { sender_id: sender.as_str(), body, destination_user_id: user.as_str(), seq, sent_at };
            let longer = if user.as_str().len() > sender.as_str().len() { user } else { sender };
            [size(&delivered)?, size(&page(Some(longer.clone()), None))?]
        }
        Addressee::Room(room) => {
            let delivered = RoomDelivery { sender_id: sender.as_str(), room_id: room.as_str(), body, seq, sent_at };
            [size(&delivered)?, size(&page(None, Some(room.clone())))?]
        }
    };
    match sizes.into_iter().max().unwrap_or_default() {
        size if size > MAX_MESSAGE_BYTES => Err(FrameError::BodyTooLarge { size }),
        _ => Ok(()),
    }
}

fn size(frame: &impl Frame) -> Result<usize, FrameError> {
    protocol::to_bytes(frame).map(|bytes| bytes.len()).map_err(|_| FrameError::BodyTooLarge { size: usize::MAX })
}

/// A direct message: to every connection of the recipient and of the sender but the sending
/// one (a note to oneself: the sender's other connections).
async fn to_user(request: &Request, fan_out: &FanOut<'_>, user: &UserId, stored: &StoredMessage, tally: &mut Tally) {
    let sender = &stored.sender_id;
    let frame = Delivery {
        sender_id: sender.as_str(),
        body: &stored.body,
        destination_user_id: user.as_str(),
        seq: stored.seq,
        sent_at: stored.sent_at,
    };
    let Some(frame) = encoded(&frame) else { return };
    let now = request.request_time_ms;
    let (theirs, mine) = if user == sender {
        (fan_out.store.connections_of(user, now).await, Ok(Vec::new()))
    } else {
        futures::join!(fan_out.store.connections_of(user, now), fan_out.store.connections_of(sender, now))
    };
    let mut recipients = Vec::new();
    for (owner, connections) in [(user, theirs), (sender, mine)] {
        match connections {
            Ok(ids) => recipients.extend(Listed::User(owner).each(ids)),
            // Stored all the same: these connections read it through history.
            Err(error) => {
                tracing::error!(error = %Chain(&error), "could not read recipients; the message waits in history");
                tally.failed += 1;
            }
        }
    }
    recipients.retain(|(id, _)| *id != request.connection_id);
    *tally += fan_out.deliver(recipients, &frame).await;
}

/// A room message: the members are read a page at a time, so a room of any size holds one
/// page of ids in memory. With a queue, a room of more than one fan-out page is queued.
async fn to_room(
    request: &Request,
    fan_out: &FanOut<'_>,
    queue: Option<&dyn FanOutQueue>,
    room: &RoomId,
    stored: &StoredMessage,
    tally: &mut Tally,
) {
    let frame = RoomDelivery {
        sender_id: stored.sender_id.as_str(),
        room_id: room.as_str(),
        body: &stored.body,
        seq: stored.seq,
        sent_at: stored.sent_at,
    };
    let Some(frame) = encoded(&frame) else { return };
    let mut after: Option<String> = None;
    loop {
        let page = match fan_out.store.members(room, after.as_deref()).await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(error = %Chain(&error), "could not read the room's members; the rest read the message through history");
                tally.failed += 1;
                return;
            }
        };
        let others: Vec<String> = page.connection_ids.into_iter().filter(|id| *id != request.connection_id).collect();
        let big = tally.queued > 0 || page.next.is_some() || others.len() > FAN_OUT_PAGE;
        match queue {
            Some(queue) if big => *tally += queued(request, fan_out, queue, room, others, &frame).await,
            _ => *tally += fan_out.deliver(Listed::Room(room).each(others), &frame).await,
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return,
        }
    }
}

/// Queues one page of members in fan-out pages; posts itself those the queue does not take.
async fn queued(
    request: &Request,
    fan_out: &FanOut<'_>,
    queue: &dyn FanOutQueue,
    room: &RoomId,
    members: Vec<String>,
    frame: &[u8],
) -> Tally {
    let text = String::from_utf8_lossy(frame).into_owned();
    let pages: Vec<FanOutPage> = members
        .chunks(FAN_OUT_PAGE)
        .map(|ids| FanOutPage {
            api_id: request.endpoint.api_id.clone(),
            stage: request.endpoint.stage.clone(),
            room_id: room.clone(),
            frame: text.clone(),
            opened_by: super::fan_out::opened_by(request),
            connection_ids: ids.to_vec(),
        })
        .collect();
    match queue.enqueue(pages).await {
        Ok(()) => Tally { queued: members.len(), ..Tally::default() },
        Err(QueueError::Unavailable { refused, source }) => {
            let unsent: usize = refused.iter().map(|page| page.connection_ids.len()).sum();
            tracing::error!(pages = refused.len(), error = %Chain(source.as_ref()), "the fan-out queue refused pages; posting them from here");
            let mut tally = Tally { queued: members.len() - unsent.min(members.len()), ..Tally::default() };
            for page in refused {
                tally += fan_out.deliver(Listed::Room(room).each(page.connection_ids), frame).await;
            }
            tally
        }
    }
}

/// The delivered frame's bytes (already known to fit: [`fits`]).
fn encoded(frame: &impl Frame) -> Option<Vec<u8>> {
    protocol::to_bytes(frame)
        .map_err(|error| tracing::error!(error = %Chain(&error), "could not encode a delivery"))
        .ok()
}
