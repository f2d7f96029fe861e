//! The wire protocol's shared vocabulary: ids ([`UserId`], [`RoomId`], [`ClientRequestId`],
//! the [`ConversationRef`] a request names), field names and the readers parsers share
//! ([`fields`]), refusals ([`ErrorCode`], [`ErrorFrame`]), the frames messages are delivered with
//! ([`Delivery`], [`RoomDelivery`]) and how frames are encoded ([`Frame`], [`Answer`]).
//!
//! Each route's own frames (its request, with the parser that reads it and the schema that
//! publishes it, and its answer) live in its module under [`crate::routes`]. Frames evolve by
//! addition: no field is removed, renamed, retyped or given a new meaning, and new fields come
//! after the existing ones (before a trailing `clientRequestId`); docs/protocol.md states the
//! rule and `crates/core/tests/suite/asyncapi.rs` holds `docs/asyncapi.yaml` to it.

mod deliveries;
pub(crate) mod encoding;
mod errors;
pub mod fields;
mod ids;

pub use deliveries::{Delivery, RoomDelivery};
pub(crate) use encoding::frames;
pub use encoding::{Answer, EncodeError, Frame, to_bytes};
pub use errors::{ErrorCode, ErrorFrame, FrameError, GatewayError};
pub use fields::parse_object;
pub use ids::{
    ClientRequestId, ConversationRef, ID_PATTERN, MAX_CLIENT_REQUEST_ID_CHARS, MAX_USER_ID_CHARS, RoomId, UserId,
};

/// The route selection expression of the WebSocket API.
pub const ROUTE_SELECTION_EXPRESSION: &str = "$request.body.action";

/// The field that selects a route.
pub const ACTION_FIELD: &str = "action";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("alice.b-c_d@example.com").is_ok());
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_CHARS)).is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_CHARS + 1)).is_err());
        assert!(UserId::parse("bob smith").is_err());
        assert!(UserId::parse("bøb").is_err());
    }

    #[test]
    fn deliveries_are_exactly_as_documented() {
        let delivery = RoomDelivery { sender_id: "alice", room_id: "lobby", body: "hi", seq: 42, sent_at: 7 };
        assert_eq!(
            String::from_utf8(to_bytes(&delivery).unwrap()).unwrap(),
            r#"{"senderId":"alice","roomId":"lobby","body":"hi","seq":42,"sentAt":7}"#
        );
        let direct =
            Delivery { sender_id: "alice", body: "hi", destination_user_id: "bob", seq: 7, sent_at: 1764528000123 };
        assert_eq!(
            String::from_utf8(to_bytes(&direct).unwrap()).unwrap(),
            r#"{"senderId":"alice","body":"hi","destinationUserId":"bob","seq":7,"sentAt":1764528000123}"#
        );
    }
}
