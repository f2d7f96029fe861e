//! A fan-out worker's job: post one queued page of a big room's message (see [`super::queue`]),
//! with the sender's rules (at most [`MAX_POSTS_IN_FLIGHT`](crate::limits::MAX_POSTS_IN_FLIGHT)
//! in flight, a gone connection loses its record) and bounded retries of throttled posts.

use super::queue::{FanOutPage, Pace};
use super::{FanOut, Listed};
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::store::Store;

/// A page to be tried again: the queue redelivers it (SQS after its visibility timeout, up to
/// the queue's `maxReceiveCount`, then to the dead-letter queue). Members that had it already
/// receive it twice and drop the repeated `seq`.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {posts} posts failed ({throttled} throttled to the end); the page will be tried again")]
pub struct PageFailed {
    /// Connections in the page.
    pub posts: usize,
    /// Posts that failed (410s are not failures).
    pub failed: usize,
    /// Of those, posts still answered 429 after their retries.
    pub throttled: usize,
}

/// Posts `page`'s frame to its connections. Succeeds when every post was delivered or found its
/// connection gone, or when the only failures are a few connections still throttled after their
/// retries (clients whose buffers are full: they read the message through history). Fails, so
/// the page is tried again, when any post failed otherwise (the endpoint unreachable, a 5xx) or
/// when most of the page was throttled (the account's throttle: the page backs off whole).
/// `metrics` (made for [`Route::SendMessage`](crate::routes::Route::SendMessage), whose
/// deliveries these are) counts what was delivered, gone and failed.
/// Every post waits its turn at `pace`, if given.
pub async fn fan_out_page(
    page: &FanOutPage,
    store: &dyn Store,
    messenger: &dyn Messenger,
    pace: Option<&Pace>,
    metrics: &mut Metrics,
) -> Result<(), PageFailed> {
    let endpoint = page.endpoint();
    let fan_out = FanOut::for_worker(store, messenger, &endpoint, page.opened_by, pace);
    let posts = page.connection_ids.len();
    let recipients = Listed::Room(&page.room_id).each(page.connection_ids.clone());
    let tally = fan_out.deliver(recipients, page.frame.as_bytes()).await;
    tally.record(metrics);
    tracing::info!(
        connections = posts,
        delivered = tally.delivered,
        gone = tally.gone,
        failed = tally.failed,
        throttled = tally.throttled,
        "fan-out page"
    );
    let failed_otherwise = tally.failed - tally.throttled;
    if failed_otherwise > 0 || tally.throttled * 2 > posts {
        return Err(PageFailed { posts, failed: tally.failed, throttled: tally.throttled });
    }
    Ok(())
}
