//! `$disconnect`: forget the connection.

use super::{Context, Outcome, Reply, Service};
use crate::asyncapi::Message;
use crate::metrics::{Metric, Metrics};
use crate::store::ConnectionStore;

/// The services it uses.
pub(super) const USES: &[Service] = &[Service::Store];

/// The counters it can increment: the only ones its metrics line publishes.
pub(super) const COUNTERS: &[Metric] = &[Metric::BackendFailures];

/// Nothing of it is a frame.
pub(super) fn messages() -> Vec<Message> {
    Vec::new()
}

/// Deletes the connection's record, and its room memberships. API Gateway may never call this
/// (network loss), which is why records also carry a TTL.
pub async fn handle(context: &Context<'_>, _: &mut Metrics) -> Outcome {
    ConnectionStore::remove(context.store()?, &context.request.connection_id).await?;
    tracing::info!("disconnected");
    Ok(Reply::Done("disconnected"))
}
