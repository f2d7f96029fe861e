//! The ids the protocol names things by: users, rooms, a client's requests, and the
//! conversation a request names.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::FrameError;
use super::fields::{self, parse_object};

/// The longest user id accepted.
pub const MAX_USER_ID_CHARS: usize = 128;

/// A user's id: 1 to 128 characters of ASCII letters, digits and `_ . @ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// A room's id: 1 to 128 characters of ASCII letters, digits and `_ . @ -`, as user ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

/// The rules user ids and room ids share, as a regular expression.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.@-]{1,128}$";

/// The rules user ids and room ids share: 1 to 128 ASCII letters, digits and `_ . @ -`.
fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_USER_ID_CHARS {
        return Err(format!("must be at most {MAX_USER_ID_CHARS} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.@-".contains(*c))) {
        return Err(format!("may hold only letters, digits and _ . @ - (found {bad:?})"));
    }
    Ok(())
}

/// What user ids and room ids share: validation by [`check_id`] (also when deserialized), the
/// text, and the published schema.
macro_rules! id_type {
    ($id:ident, $what:literal) => {
        impl $id {
            /// Validates an id, saying what is wrong with it.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_id(value).map(|()| Self(value.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $id {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                check_id(&value).map(|()| Self(value))
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $id {
            fn schema_name() -> Cow<'static, str> {
                stringify!($id).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": ID_PATTERN,
                    "minLength": 1,
                    "maxLength": MAX_USER_ID_CHARS,
                    "description": concat!("A ", $what, " id: 1 to 128 ASCII letters, digits and _ . @ -."),
                })
            }
        }
    };
}

id_type!(UserId, "user");
id_type!(RoomId, "room");

/// The longest `clientRequestId` accepted.
pub const MAX_CLIENT_REQUEST_ID_CHARS: usize = 64;

/// A client's id for one request: 1 to 64 ASCII letters, digits, `_` or `-`. Any request may
/// carry one; the function's one answer to it (a reply, an acknowledgement or an error frame)
/// carries it back. For `sendMessage` it is also the idempotency key, per sender and
/// conversation, for 24 hours.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct ClientRequestId(String);

impl ClientRequestId {
    /// Validates an id.
    ///
    /// # Errors
    /// [`FrameError::InvalidField`] when it is empty, longer than 64 characters, or holds
    /// anything but letters, digits, `_` and `-`.
    pub fn parse(value: &str) -> Result<Self, FrameError> {
        let valid = (1..=MAX_CLIENT_REQUEST_ID_CHARS).contains(&value.len())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FrameError::InvalidField {
                field: fields::CLIENT_REQUEST_ID,
                problem: format!("must be 1 to {MAX_CLIENT_REQUEST_ID_CHARS} letters, digits, _ or -"),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A request's `clientRequestId`, if its body is a JSON object that has one.
    ///
    /// # Errors
    /// [`FrameError::InvalidField`] when it is present but not a valid id.
    pub fn of_request(body: Option<&str>) -> Result<Option<Self>, FrameError> {
        let Ok(object) = parse_object(body) else { return Ok(None) };
        match object.get(fields::CLIENT_REQUEST_ID) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => Self::parse(id).map(Some),
            Some(_) => {
                Err(FrameError::InvalidField { field: fields::CLIENT_REQUEST_ID, problem: "must be a string".into() })
            }
        }
    }
}

/// A conversation as a request names it, from the requesting user's side: the other user
/// (`userId`; one's own id for notes to oneself), or a room (`roomId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationRef {
    /// A direct conversation with this user.
    User(UserId),
    /// A room.
    Room(RoomId),
}

impl ConversationRef {
    /// The conversation as the two fields frames name it by, exactly one of them set: the other
    /// user (`userId`, or `destinationUserId` in an acknowledgement) and the room (`roomId`).
    pub fn to_fields(&self) -> (Option<UserId>, Option<RoomId>) {
        match self {
            ConversationRef::User(user) => (Some(user.clone()), None),
            ConversationRef::Room(room) => (None, Some(room.clone())),
        }
    }
}
