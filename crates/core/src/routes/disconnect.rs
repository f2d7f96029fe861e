//! `$disconnect`: forget the connection.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use super::{Handled, malformed_event, respond};
use crate::error::Chain;
use crate::metrics::Metrics;
use crate::protocol::Route;
use crate::store::ConnectionStore;

/// Deletes the connection's record. API Gateway may never call this (network loss), which is
/// why records also carry a TTL.
pub async fn disconnect(request: &ApiGatewayWebsocketProxyRequest, store: &dyn ConnectionStore) -> Handled {
    let mut metrics = Metrics::new(Route::Disconnect);
    let context = &request.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else { return malformed_event("connectionId", metrics) };
    match store.remove(connection_id).await {
        Ok(()) => {
            tracing::info!(connection_id, status = context.disconnect_status_code, "disconnected");
            respond(200, "disconnected", metrics)
        }
        Err(error) => {
            tracing::error!(connection_id, error = %Chain(&error), "could not delete the connection's record");
            metrics.backend_failures += 1;
            respond(500, "could not delete the connection's record", metrics)
        }
    }
}
