//! The fan-out worker's SQS batch: each record a page of a big room's members, posted by
//! [`crate::delivery::page`], and the batch item failures SQS redelivers.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::delivery::page::fan_out_page;
use crate::delivery::queue::{FanOutPage, Pace};
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::routes::Route;
use crate::store::Store;

/// The fan-out worker's Lambda handler: posts each page of an SQS batch (one after another, each
/// [`fan_out_page`](crate::delivery::page::fan_out_page)) and reports those to be tried again as batch item failures (the event
/// source mapping's `ReportBatchItemFailures`), so SQS redelivers only those after their
/// visibility timeout. A record whose body is not a page (a poison message) is reported failed
/// every time and so reaches the dead-letter queue after `maxReceiveCount` receives. Writes one
/// EMF line per page, under [`Route::SendMessage`] (these are its deliveries).
pub async fn fan_out_worker(
    event: &SqsEvent,
    store: &dyn Store,
    messenger: &dyn Messenger,
    pace: Option<&Pace>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let page = record.body.as_deref().map(serde_json::from_str::<FanOutPage>);
        let failed = match page {
            Some(Ok(page)) => {
                let mut metrics = Metrics::new(Route::SendMessage);
                let result = fan_out_page(&page, store, messenger, pace, &mut metrics).await;
                metrics.emit();
                if let Err(failed) = &result {
                    tracing::warn!(message_id = %id, error = %failed, "fan-out page failed");
                }
                result.is_err()
            }
            Some(Err(error)) => {
                tracing::error!(message_id = %id, error = %error, "an SQS message is not a fan-out page; it will reach the dead-letter queue");
                true
            }
            None => {
                tracing::error!(message_id = %id, "an SQS message has no body; it will reach the dead-letter queue");
                true
            }
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
