//! `$connect`: establish who the connection belongs to and record it.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use super::{Handled, malformed_event, respond};
use crate::error::Chain;
use crate::identity;
use crate::limits::MAX_CONNECTIONS_PER_USER;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, Route};
use crate::store::{Connection, ConnectionStore};

/// Records the connection under the user it speaks for. A missing or invalid `userId` answers
/// 400 and a user who already holds [`MAX_CONNECTIONS_PER_USER`] connections 429; either
/// refuses the upgrade and stores nothing.
pub async fn connect(request: &ApiGatewayWebsocketProxyRequest, store: &dyn ConnectionStore) -> Handled {
    let mut metrics = Metrics::new(Route::Connect);
    let context = &request.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else { return malformed_event("connectionId", metrics) };
    let user_id = match identity::user_of(request) {
        Ok(user_id) => user_id,
        Err(error) => {
            tracing::info!(connection_id, error = %error, "refused connection");
            metrics.refused = Some(error.code());
            return respond(400, error.to_string(), metrics);
        }
    };

    // A soft limit: two connects racing past it can both succeed, and the user index is
    // eventually consistent. It bounds fan-out and abuse, not exact counts.
    let open = match store.connections_of(&user_id).await {
        Ok(ids) => ids.len(),
        Err(error) => return backend_failure(connection_id, &error, metrics),
    };
    if open >= MAX_CONNECTIONS_PER_USER {
        tracing::info!(connection_id, open, "refused connection: too many connections for one user");
        metrics.refused = Some(ErrorCode::TooManyConnections);
        let text = format!("a user may hold at most {MAX_CONNECTIONS_PER_USER} open connections; close one first");
        return respond(429, text, metrics);
    }

    let connection = Connection::new(connection_id, user_id, context.connected_at);
    match store.save(&connection).await {
        Ok(()) => {
            // Connection ids only: user ids may be e-mail addresses, and logs are no place for them.
            tracing::info!(connection_id, "connected");
            respond(200, "connected", metrics)
        }
        Err(error) => backend_failure(connection_id, &error, metrics),
    }
}

fn backend_failure(connection_id: &str, error: &crate::StoreError, mut metrics: Metrics) -> Handled {
    tracing::error!(connection_id, error = %Chain(error), "could not record the connection");
    metrics.backend_failures += 1;
    respond(500, "could not record the connection", metrics)
}
