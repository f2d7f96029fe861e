//! How frames become bytes: only the protocol's frame types can be serialized, and an answer
//! carries its request's `clientRequestId` back as its last field.

use serde::Serialize;

use super::fields;
use super::ids::ClientRequestId;

/// A frame this protocol defines: only these can be serialized with [`to_bytes`]. A route's
/// module declares its own frames with [`frames!`](crate::protocol::frames).
pub trait Frame: Serialize + sealed::Sealed {}

pub(crate) mod sealed {
    /// Keeps [`super::Frame`] to the crate's own types.
    pub trait Sealed {}
}

/// Declares types as frames: `frames!(Joined, Left);`.
macro_rules! frames {
    ($($frame:ty),* $(,)?) => {
        $(
            impl $crate::protocol::encoding::sealed::Sealed for $frame {}
            impl $crate::protocol::Frame for $frame {}
        )*
    };
}
pub(crate) use frames;

frames!(super::deliveries::Delivery<'_>, super::deliveries::RoomDelivery<'_>, super::errors::ErrorFrame,);

/// A frame could not be serialized.
#[derive(Debug, thiserror::Error)]
#[error("could not serialize a {frame} frame")]
pub struct EncodeError {
    /// The frame's type.
    pub frame: &'static str,
    /// What serde_json reported.
    #[source]
    pub source: serde_json::Error,
}

/// Serializes a frame to the bytes posted to a connection.
///
/// # Errors
/// [`EncodeError`] if serde_json fails, which the protocol's frames (strings, numbers,
/// booleans and lists of strings, no maps) cannot make it do; it is an error rather than an
/// empty frame all the same, so a future frame type that could fail is never posted as nothing.
pub fn to_bytes<T: Frame>(frame: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(frame).map_err(|source| EncodeError { frame: std::any::type_name::<T>(), source })
}

/// A frame a request is answered with, to the sending connection alone, encoded: handlers
/// build it from their route's answer type, and [`Answer::bytes`] adds the request's
/// `clientRequestId` in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    json: Vec<u8>,
    /// Whether the frame names the request itself (an acknowledgement's `clientRequestId`).
    names_request: bool,
}

impl Answer {
    /// The answer `frame`.
    ///
    /// # Errors
    /// [`EncodeError`], as [`to_bytes`].
    pub fn new<T: Frame>(frame: &T) -> Result<Self, EncodeError> {
        Ok(Self { json: to_bytes(frame)?, names_request: false })
    }

    /// An answer that already carries the request's `clientRequestId` among its own fields.
    ///
    /// # Errors
    /// [`EncodeError`], as [`to_bytes`].
    pub fn naming_request<T: Frame>(frame: &T) -> Result<Self, EncodeError> {
        Ok(Self { json: to_bytes(frame)?, names_request: true })
    }

    /// The frame as encoded, without a `clientRequestId`.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The bytes posted: the frame with `"clientRequestId":id` added as its last field, unless
    /// it names the request already. The id's alphabet needs no escaping.
    pub fn bytes(&self, client_request_id: Option<&ClientRequestId>) -> Vec<u8> {
        let mut bytes = self.json.clone();
        if let (Some(id), false) = (client_request_id, self.names_request)
            && bytes.last() == Some(&b'}')
        {
            bytes.pop();
            bytes.extend_from_slice(format!(",\"{}\":\"{}\"}}", fields::CLIENT_REQUEST_ID, id.as_str()).as_bytes());
        }
        bytes
    }
}
