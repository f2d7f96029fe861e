//! `$connect`: establish who the connection belongs to and record it.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::http::HeaderValue;

use super::{Handled, malformed_event, respond};
use crate::auth;
use crate::error::Chain;
use crate::identity::{self, Mode};
use crate::limits::MAX_CONNECTIONS_PER_USER;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, Route};
use crate::store::{Connection, ConnectionStore};

/// Records the connection under the user it speaks for ([`identity::user_of`]). A missing or
/// invalid `userId` (demo mode) answers 400, no verified user (token mode) 403, and a user who
/// already holds [`MAX_CONNECTIONS_PER_USER`] connections 429; each refuses the upgrade and
/// stores nothing. A client that offered the `chat` subprotocol gets it back in the answer's
/// `Sec-WebSocket-Protocol` header, as browsers require.
pub async fn connect(request: &ApiGatewayWebsocketProxyRequest, store: &dyn ConnectionStore, mode: Mode) -> Handled {
    let mut metrics = Metrics::new(Route::Connect);
    let context = &request.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else { return malformed_event("connectionId", metrics) };
    let user_id = match identity::user_of(request, mode) {
        Ok(user_id) => user_id,
        Err(error) => {
            tracing::info!(connection_id, error = %error, "refused connection");
            metrics.refused = Some(error.code());
            return respond(error.status(), error.to_string(), metrics);
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
            tracing::info!(connection_id, mode = mode.name(), "connected");
            let mut handled = respond(200, "connected", metrics);
            let protocols = request.headers.get(auth::SUBPROTOCOL_HEADER).and_then(|value| value.to_str().ok());
            if auth::offers_subprotocol(protocols) {
                handled.response.headers.insert(auth::SUBPROTOCOL_HEADER, HeaderValue::from_static(auth::SUBPROTOCOL));
            }
            handled
        }
        Err(error) => backend_failure(connection_id, &error, metrics),
    }
}

fn backend_failure(connection_id: &str, error: &crate::StoreError, mut metrics: Metrics) -> Handled {
    tracing::error!(connection_id, error = %Chain(error), "could not record the connection");
    metrics.backend_failures += 1;
    respond(500, "could not record the connection", metrics)
}
