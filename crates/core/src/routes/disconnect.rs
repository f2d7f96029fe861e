//! `$disconnect`: forget the connection.

use super::{Outcome, Reply, Request};
use crate::store::ConnectionStore;

/// Deletes the connection's record, and its room memberships. API Gateway may never call this
/// (network loss), which is why records also carry a TTL.
pub async fn disconnect(request: &Request, store: &dyn ConnectionStore) -> Outcome {
    store.remove(&request.connection_id).await?;
    tracing::info!("disconnected");
    Ok(Reply::Done("disconnected"))
}
