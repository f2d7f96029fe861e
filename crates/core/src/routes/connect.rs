//! `$connect`: establish who the connection belongs to, record it, and subscribe it to its
//! user's rooms.

use super::{Context, Failure, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::error::Chain;
use crate::identity;
use crate::limits::MAX_CONNECTIONS_PER_USER;
use crate::metrics::{Metric, Metrics};
use crate::protocol::ErrorCode;
use crate::store::{Connection, ConnectionStore, subscriptions};

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] = &[Metric::ConnectionsRefused, Metric::BackendFailures];

/// Nothing of it is a frame.
pub(super) fn messages() -> Vec<Message> {
    Vec::new()
}

/// Records the connection under the user it speaks for ([`identity::user_of`]) and subscribes
/// it to every room the user has joined. A missing or invalid `userId` (demo mode) answers 400,
/// no verified user (token mode) 403, and a user who already holds [`MAX_CONNECTIONS_PER_USER`]
/// connections 429; each refuses the upgrade and stores nothing. A client that offered the
/// `chat` subprotocol gets it back in the answer's `Sec-WebSocket-Protocol` header, as browsers
/// require.
///
/// A `$connect` that fails after recording the connection (subscribing it failed) deletes the
/// record again and answers 500, which refuses the upgrade: the client connects again. Should
/// that delete fail too, the record expires with its TTL, and posts to the never-opened
/// connection answer 410, which removes it.
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    let (request, store, mode) = (context.request, context.store()?, context.services.mode);
    let user_id =
        identity::user_of(&request.caller, mode).map_err(|error| Failure::refused(error.code(), error.to_string()))?;
    // A soft limit: two connects racing past it can both succeed. It bounds fan-out and abuse,
    // not exact counts.
    let open = store.connections_of(&user_id, request.request_time_ms).await?.len();
    if open >= MAX_CONNECTIONS_PER_USER {
        let text = format!("a user may hold at most {MAX_CONNECTIONS_PER_USER} open connections; close one first");
        return Err(Failure::refused(ErrorCode::TooManyConnections, text));
    }
    let connection = Connection::new(request.connection_id.clone(), user_id, request.connected_at_ms);
    store.save(&connection).await?;
    if let Err(error) = subscriptions::settle_connection(store, &connection.connection_id, &connection.user_id).await {
        if let Err(undo) = ConnectionStore::remove(store, &connection.connection_id).await {
            tracing::warn!(error = %Chain(&undo), "could not delete the record of a connection that failed to open");
        }
        return Err(error.into());
    }
    // The mode only: user ids may be e-mail addresses, and logs are no place for them.
    tracing::info!(mode = mode.name(), "connected");
    Ok(Reply::Connected)
}
