//! `$connect`: establish who the connection belongs to and record it.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use super::{malformed_event, respond};
use crate::error::Chain;
use crate::identity;
use crate::store::{Connection, ConnectionStore};

/// Records the connection under the user it speaks for. A missing or invalid `userId` answers
/// 400, which refuses the upgrade, and stores nothing.
pub async fn connect(
    request: &ApiGatewayWebsocketProxyRequest,
    store: &dyn ConnectionStore,
) -> ApiGatewayProxyResponse {
    let context = &request.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else { return malformed_event("connectionId") };
    let user_id = match identity::user_of(request) {
        Ok(user_id) => user_id,
        Err(error) => {
            tracing::info!(connection_id, error = %error, "refused connection");
            return respond(400, error.to_string());
        }
    };
    let connection = Connection::new(connection_id, user_id, context.connected_at);
    match store.save(&connection).await {
        Ok(()) => {
            tracing::info!(connection_id, user_id = %connection.user_id, "connected");
            respond(200, "connected")
        }
        Err(error) => {
            tracing::error!(connection_id, error = %Chain(&error), "could not record the connection");
            respond(500, "could not record the connection")
        }
    }
}
