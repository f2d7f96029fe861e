//! `$connect`: establish who the connection belongs to and record it.

use super::{Outcome, Refusal, Reply, Request};
use crate::identity::{self, Mode};
use crate::limits::MAX_CONNECTIONS_PER_USER;
use crate::protocol::ErrorCode;
use crate::store::{Connection, ConnectionStore};

/// Records the connection under the user it speaks for ([`identity::user_of`]). A missing or
/// invalid `userId` (demo mode) answers 400, no verified user (token mode) 403, and a user who
/// already holds [`MAX_CONNECTIONS_PER_USER`] connections 429; each refuses the upgrade and
/// stores nothing. A client that offered the `chat` subprotocol gets it back in the answer's
/// `Sec-WebSocket-Protocol` header, as browsers require.
pub async fn connect(request: &Request, store: &dyn ConnectionStore, mode: Mode) -> Outcome {
    let user_id =
        identity::user_of(&request.caller, mode).map_err(|error| Refusal::new(error.code(), error.to_string()))?;
    // A soft limit: two connects racing past it can both succeed, and the user index is
    // eventually consistent. It bounds fan-out and abuse, not exact counts.
    let open = store.connections_of(&user_id).await?.len();
    if open >= MAX_CONNECTIONS_PER_USER {
        let text = format!("a user may hold at most {MAX_CONNECTIONS_PER_USER} open connections; close one first");
        return Err(Refusal::new(ErrorCode::TooManyConnections, text));
    }
    store.save(&Connection::new(request.connection_id.clone(), user_id, request.connected_at_ms)).await?;
    // The mode only: user ids may be e-mail addresses, and logs are no place for them.
    tracing::info!(mode = mode.name(), "connected");
    Ok(Reply::Connected)
}
