//! `sendMessage`: store a message at its conversation's next seq, then deliver it to every open
//! connection of a user (and the sender's other connections), or to every other member of a room.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::get_history::{History, HistoryMessage};
use super::{Context, Failure, Outcome, Reply, Request, Service};
use crate::asyncapi::Message;
use crate::delivery::queue::{FanOutPage, FanOutQueue, QueueError};
use crate::delivery::{FanOut, Listed, Tally};
use crate::error::Chain;
use crate::limits::{FAN_OUT_PAGE, MAX_MESSAGE_BYTES};
use crate::metrics::{Metric, Metrics};
use crate::protocol::fields::{self, parse_object, required_string, room_field};
use crate::protocol::{
    self, Answer, ClientRequestId, ConversationRef, Delivery, ErrorCode, Frame, FrameError, RoomDelivery, RoomId,
    UserId, frames,
};
use crate::store::{Appended, Conversation, Idempotency, StoredMessage};

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store, Service::Messenger, Service::Queue];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] = &[
    Metric::MessagesDelivered,
    Metric::ConnectionsGone,
    Metric::PostsFailed,
    Metric::PostsThrottled,
    Metric::FramesRefused,
    Metric::BackendFailures,
];

/// A valid `sendMessage` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// Who receives the message: every open connection of a user (`destinationUserId`), or
    /// every other member connection of a room (`roomId`).
    pub to: ConversationRef,
    /// The text delivered, unchanged.
    pub body: String,
}
/// `sendMessage`'s acknowledgement, to the sending connection once the message is stored and
/// before it is delivered: `{"type":"ack","clientRequestId":"r1","destinationUserId":"bob",
/// "seq":7,"sentAt":…}` (or `"roomId"`). A repeat of the request is acknowledged the same.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Always `ack`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "ack"))]
    pub kind: String,
    /// The request's id.
    pub client_request_id: ClientRequestId,
    /// The recipient, for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_user_id: Option<UserId>,
    /// The room, for a room message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// The stored message's seq.
    pub seq: u64,
    /// When it was stored, epoch milliseconds.
    pub sent_at: i64,
}
impl SendMessage {
    /// Parses and validates a `sendMessage` frame's body.
    ///
    /// # Errors
    /// The first mistake, as a [`FrameError`] naming its field.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let object = parse_object(body)?;
        let has = |field| !matches!(object.get(field), None | Some(Value::Null));
        let to = match (has(fields::DESTINATION_USER_ID), has(fields::ROOM_ID)) {
            (true, true) => {
                return Err(FrameError::InvalidField {
                    field: fields::ROOM_ID,
                    problem: "cannot be given with destinationUserId: send to a user or to a room".into(),
                });
            }
            (false, false) => return Err(FrameError::MissingField("destinationUserId\" or \"roomId")),
            (false, true) => ConversationRef::Room(room_field(&object)?),
            (true, false) => {
                let destination = required_string(&object, fields::DESTINATION_USER_ID)?;
                ConversationRef::User(UserId::parse(destination).map_err(|problem| FrameError::InvalidField {
                    field: fields::DESTINATION_USER_ID,
                    problem: format!("is not a valid user id: it {problem}"),
                })?)
            }
        };
        let body = required_string(&object, fields::BODY)?.to_owned();
        Ok(Self { to, body })
    }
}
impl JsonSchema for SendMessage {
    fn schema_name() -> Cow<'static, str> {
        "SendMessage".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let (user, room) = (generator.subschema_for::<UserId>(), generator.subschema_for::<RoomId>());
        json_schema!({
            "description": "A message to every connection of a user (destinationUserId), or to every other member connection of a room the user has joined (roomId): exactly one of the two.",
            "type": "object",
            "properties": {
                (fields::DESTINATION_USER_ID): user,
                (fields::ROOM_ID): room,
                (fields::BODY): {
                    "type": "string",
                    "minLength": 1,
                    "description": "The text delivered, unchanged; the delivered frame must fit in 128 KB.",
                },
            },
            "required": [fields::BODY],
            "oneOf": [{ "required": [fields::DESTINATION_USER_ID] }, { "required": [fields::ROOM_ID] }],
        })
    }
}

frames!(Ack);

pub(super) fn messages() -> Vec<Message> {
    vec![
        Message::request::<SendMessage>(
            "sendMessage",
            "A message to every connection of a user, or to every other member of a room.",
        ),
        Message::sent::<Delivery<'_>>(
            "delivery",
            "A direct message, stored, to every connection of its recipient and every other connection of its sender.",
        ),
        Message::sent::<RoomDelivery<'_>>(
            "roomDelivery",
            "A room message, stored, to every member connection but the sending one.",
        ),
        Message::sent::<Ack>(
            "ack",
            "sendMessage's acknowledgement, when it carried a clientRequestId: the message is stored.",
        ),
    ]
}

/// Stores a message, then delivers it. To a user (`destinationUserId`),
/// `{"senderId","body","destinationUserId","seq","sentAt"}` reaches every connection of theirs
/// and every other connection of the sender, online or not: a user with no open connection
/// reads it later through history. To a room (`roomId`), `{"senderId","roomId","body","seq",
/// "sentAt"}` reaches every other member connection, read a page at a time. At most
/// [`MAX_POSTS_IN_FLIGHT`](crate::limits::MAX_POSTS_IN_FLIGHT) posts are in flight at once; `metrics` counts what was delivered,
/// gone and failed.
///
/// With a fan-out queue, a room with more than [`FAN_OUT_PAGE`] other subscribed connections
/// is delivered by queueing its members in pages for workers ([`crate::delivery::page`]) instead
/// of posting to each; smaller rooms and direct messages are posted as without one. Pages the
/// queue does not take are posted here.
///
/// The sender's id comes from the caller ([`Context::user`]: the authorizer's verified user, or
/// the store's record of the sending connection), never from the frame; a room message needs
/// the sender's room entry, which the store reads beside the room's latest seq. Refused frames,
/// a room the user has not joined and a failure to store are reported to the sender alone as
/// error frames. Once stored, a message is not refused: a post
/// that fails leaves it to history.
pub async fn handle(context: &Context<'_>, metrics: &mut Metrics) -> Outcome {
    let (request, store, messenger, queue) =
        (context.request, context.store()?, context.messenger()?, context.services.queue);
    let message = SendMessage::parse(request.body.as_deref())?;
    let sender = &context.user().await?;
    let fan_out = FanOut::new(request, store, messenger);
    let mut tally = Tally::default();
    let sent_at = request.request_time_ms;
    let idempotency = request.client_request_id.as_ref().map(|id| Idempotency { client_request_id: id.as_str() });
    let to = &message.to;
    let conversation = match to {
        ConversationRef::User(user) => Conversation::direct(sender, user),
        ConversationRef::Room(room) => Conversation::Room(room.clone()),
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
        Appended::NotInRoom => {
            let room = if let ConversationRef::Room(room) = to { room.as_str() } else { "" };
            return Err(Failure::refused(ErrorCode::NotInRoom, format!("join room {room} before sending to it")));
        }
        Appended::InProgress => {
            return Err(Failure::refused(
                ErrorCode::Unavailable,
                "the first send with this clientRequestId is still being stored; send it again in a moment",
            ));
        }
    };
    // Acknowledged once stored, before the fan-out: the sender may stop retrying.
    let acknowledged = match &request.client_request_id {
        Some(id) => {
            let (destination_user_id, room_id) = to.to_fields();
            let ack = Ack {
                kind: "ack".into(),
                client_request_id: id.clone(),
                destination_user_id,
                room_id,
                seq: stored.seq,
                sent_at: stored.sent_at,
            };
            crate::lambda::outcome::post(request, &Answer::naming_request(&ack)?, Some(messenger), metrics).await;
            true
        }
        None => false,
    };
    // The conversation lists `sync` reads, beside the fan-out (a repeat records again, healing
    // a send that stopped before).
    let record = async {
        let (_, recorded) = futures::join!(store.record_latest(&conversation, &stored), async {
            match to {
                ConversationRef::User(user) => store.record_direct(user, &stored).await,
                ConversationRef::Room(room) => {
                    store.mark_read(sender, &ConversationRef::Room(room.clone()), stored.seq).await.map(drop)
                }
            }
        });
        if let Err(error) = &recorded {
            tracing::error!(error = %Chain(error), "could not record the message in the conversation lists; the next message will");
        }
        recorded.is_err()
    };
    let deliver = async {
        match to {
            ConversationRef::User(user) => to_user(request, &fan_out, user, &stored, &mut tally).await,
            ConversationRef::Room(room) => to_room(request, &fan_out, queue, room, &stored, &mut tally).await,
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
fn fits(sender: &UserId, body: &str, to: &ConversationRef) -> Result<(), FrameError> {
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
        ConversationRef::User(user) => {
            let delivered =
                Delivery { sender_id: sender.as_str(), body, destination_user_id: user.as_str(), seq, sent_at };
            let longer = if user.as_str().len() > sender.as_str().len() { user } else { sender };
            [size(&delivered)?, size(&page(Some(longer.clone()), None))?]
        }
        ConversationRef::Room(room) => {
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
            opened_by: crate::delivery::opened_by(request),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_message_frame_names_the_first_missing_field() {
        let error = SendMessage::parse(Some(r#"{"action":"sendMessage","body":"hi"}"#)).unwrap_err();
        assert_eq!(error, FrameError::MissingField("destinationUserId\" or \"roomId"));
        assert_eq!(error.to_string(), r#"the frame has no "destinationUserId" or "roomId" field"#);
        let error = SendMessage::parse(Some(r#"{"action":"sendMessage","destinationUserId":"2"}"#)).unwrap_err();
        assert_eq!(error, FrameError::MissingField("body"));
    }

    #[test]
    fn a_send_message_is_for_a_user_or_a_room_never_both() {
        let to_room = SendMessage::parse(Some(r#"{"action":"sendMessage","roomId":"lobby","body":"hi"}"#)).unwrap();
        assert_eq!(to_room.to, ConversationRef::Room(RoomId::parse("lobby").unwrap()));
        let both = r#"{"action":"sendMessage","roomId":"lobby","destinationUserId":"bob","body":"hi"}"#;
        assert!(matches!(SendMessage::parse(Some(both)), Err(FrameError::InvalidField { field: "roomId", .. })));
        let bad_room = r#"{"action":"sendMessage","roomId":"no spaces","body":"hi"}"#;
        assert!(matches!(SendMessage::parse(Some(bad_room)), Err(FrameError::InvalidField { field: "roomId", .. })));
    }
}
