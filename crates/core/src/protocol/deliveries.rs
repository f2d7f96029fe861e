//! The frames a message is delivered with: to the connections of a direct conversation's two
//! users, and to a room's members. Clients recognise a delivery by its top-level `senderId`
//! and `body`, which no other frame carries together.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The frame a direct message reaches every connection of its recipient, and every other
/// connection of its sender, with: today's fields first, then the stored message's.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery<'a> {
    /// The sender's user id, from the server's own record of the sending connection.
    pub sender_id: &'a str,
    /// The message text, unchanged.
    pub body: &'a str,
    /// The recipient's user id: with `senderId`, it names the conversation on both sides.
    pub destination_user_id: &'a str,
    /// The message's position in its conversation, from 1.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}

/// The frame every other member of a room receives.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomDelivery<'a> {
    /// The sender's user id, from the server's own record of the sending connection.
    pub sender_id: &'a str,
    /// The room.
    pub room_id: &'a str,
    /// The message text, unchanged.
    pub body: &'a str,
    /// The message's position in the room, from 1.
    pub seq: u64,
    /// When the server stored it, epoch milliseconds.
    pub sent_at: i64,
}
