//! The fan-out queue: a big room's delivery handed out in pages, each posted by a worker, so
//! that no one invocation posts to every member. SQS in the cloud (Lambda's event source runs the
//! workers); in memory on one machine, behind the same trait.

use std::num::NonZeroU32;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::ConfigError;
use crate::messenger::Endpoint;
use crate::protocol::RoomId;

/// One page of a room message's fan-out: the delivered frame, and the connections to post it
/// to ([`FAN_OUT_PAGE`](crate::limits::FAN_OUT_PAGE) at most). It carries the frame itself, so
/// that workers do not read the stored message: hundreds of workers reading one item at once
/// would exceed a partition's read throughput.
///
/// As JSON (the SQS message body): `{"apiId","stage","roomId","frame","openedBy","connectionIds"}`
/// with `frame` the delivered frame's text (at most 128 KB) and `openedBy` in epoch ms (a
/// connection opened by then that answers 410 loses its record, as when the sender posts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanOutPage {
    /// The WebSocket API the connections live on.
    pub api_id: String,
    /// Its stage.
    pub stage: String,
    /// The room the message was sent to (a gone member without a record loses its membership).
    pub room_id: RoomId,
    /// The delivered frame, as its JSON text.
    pub frame: String,
    /// Epoch ms: see the type's documentation.
    pub opened_by: i64,
    /// The connections to post to.
    pub connection_ids: Vec<String>,
}

impl FanOutPage {
    /// The @connections endpoint the page posts through.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { api_id: self.api_id.clone(), stage: self.stage.clone() }
    }
}

/// Pages could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue refused them or did not answer: SQS unreachable, throttled past the SDK's
    /// retries, a page too big for one SQS message, or the in-memory queue closed.
    #[error("the fan-out queue did not take {} pages", refused.len())]
    Unavailable {
        /// The pages not queued: the caller posts them itself.
        refused: Vec<FanOutPage>,
        /// What the queue reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where a big room's pages go.
#[async_trait]
pub trait FanOutQueue: Send + Sync {
    /// Queues `pages`; on error, the pages the error returns were not queued (the others were).
    async fn enqueue(&self, pages: Vec<FanOutPage>) -> Result<(), QueueError>;
}

/// A queue in memory for one machine (`make dev`): a bounded channel whose receiving end the
/// local gateway's in-process workers read. Full, it makes the sender wait, as a slow SQS would.
#[derive(Clone, Debug)]
pub struct MemoryQueue {
    pages: mpsc::Sender<FanOutPage>,
}

impl MemoryQueue {
    /// A queue holding up to `capacity` pages, and the end workers read them from.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<FanOutPage>) {
        let (pages, receiver) = mpsc::channel(capacity.max(1));
        (Self { pages }, receiver)
    }
}

#[async_trait]
impl FanOutQueue for MemoryQueue {
    async fn enqueue(&self, pages: Vec<FanOutPage>) -> Result<(), QueueError> {
        let mut pages = pages.into_iter();
        while let Some(page) = pages.next() {
            if let Err(mpsc::error::SendError(page)) = self.pages.send(page).await {
                let refused = std::iter::once(page).chain(pages).collect();
                return Err(QueueError::Unavailable { refused, source: "the in-memory queue is closed".into() });
            }
        }
        Ok(())
    }
}

/// The most an SQS message body, and a `SendMessageBatch` request's bodies together, may hold:
/// 256 KiB, the limit every SQS endpoint accepts (AWS raised it to 1 MiB in 2025; Lambda's
/// event source and older tools still expect 256 KiB). See the Amazon SQS Developer Guide,
/// "Amazon SQS message quotas".
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Entries in one `SendMessageBatch` request at most (SQS's limit).
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;

/// Big rooms' pages as SQS messages, sent with `SendMessageBatch` (10 entries and 256 KiB per
/// request at most). The template's event source mapping runs the fan-out worker on them.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue at `queue_url`, through the SDK configuration `aws` (the endpoint override
    /// `AWS_ENDPOINT_URL_SQS` included).
    pub fn new(aws: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self { client: aws_sdk_sqs::Client::new(aws), queue_url: queue_url.into() }
    }

    /// The queue [`FAN_OUT_QUEUE_URL`](crate::config::FAN_OUT_QUEUE_URL) names, if it is set.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Option<Self> {
        crate::config::optional(crate::config::FAN_OUT_QUEUE_URL).map(|url| Self::new(aws, url))
    }
}

/// Pages as SQS message bodies, each at most [`SQS_MAX_MESSAGE_BYTES`]: a page whose body is
/// bigger (a big frame) is split in halves until it fits. Pages that cannot fit even with one
/// connection are returned apart, whole.
pub fn bodies(pages: Vec<FanOutPage>) -> (Vec<(FanOutPage, String)>, Vec<FanOutPage>) {
    let (mut fit, mut unfit) = (Vec::new(), Vec::new());
    let mut todo = pages;
    while let Some(page) = todo.pop() {
        let body = serde_json::to_string(&page).unwrap_or_default();
        let alone = || {
            let first = page.connection_ids.first().cloned().into_iter().collect();
            serde_json::to_string(&FanOutPage { connection_ids: first, ..page.clone() }).unwrap_or_default().len()
        };
        if body.len() <= SQS_MAX_MESSAGE_BYTES && !body.is_empty() {
            fit.push((page, body));
        } else if page.connection_ids.len() > 1 && alone() <= SQS_MAX_MESSAGE_BYTES {
            let mut second = page.clone();
            let first_ids = page.connection_ids[..page.connection_ids.len() / 2].to_vec();
            second.connection_ids.drain(..first_ids.len());
            todo.push(FanOutPage { connection_ids: first_ids, ..page });
            todo.push(second);
        } else {
            // One page of those that cannot fit, whatever their number.
            unfit.push(page);
        }
    }
    (fit, unfit)
}

/// Groups bodies into `SendMessageBatch` requests: [`SQS_MAX_BATCH_ENTRIES`] and
/// [`SQS_MAX_MESSAGE_BYTES`] in all at most each.
pub fn batches(bodies: Vec<(FanOutPage, String)>) -> Vec<Vec<(FanOutPage, String)>> {
    let mut batches: Vec<Vec<(FanOutPage, String)>> = Vec::new();
    let mut bytes = 0;
    for (page, body) in bodies {
        let full = batches
            .last()
            .is_none_or(|batch| batch.len() == SQS_MAX_BATCH_ENTRIES || bytes + body.len() > SQS_MAX_MESSAGE_BYTES);
        if full {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += body.len();
        batches.last_mut().expect("just pushed").push((page, body));
    }
    batches
}

#[async_trait]
impl FanOutQueue for SqsQueue {
    async fn enqueue(&self, pages: Vec<FanOutPage>) -> Result<(), QueueError> {
        let (fit, mut refused) = bodies(pages);
        let mut failure: Option<Box<dyn std::error::Error + Send + Sync>> =
            (!refused.is_empty()).then(|| "a page is bigger than an SQS message even with one connection".into());
        for batch in batches(fit) {
            let entries = batch.iter().enumerate().map(|(n, (_, body))| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body are set")
            });
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    for entry in output.failed() {
                        if let Some((page, _)) = entry.id().parse::<usize>().ok().and_then(|n| batch.get(n)) {
                            refused.push(page.clone());
                        }
                    }
                    if let Some(entry) = output.failed().first() {
                        failure = Some(
                            format!("SQS refused an entry: {} {}", entry.code(), entry.message().unwrap_or("")).into(),
                        );
                    }
                }
                Err(error) => {
                    refused.extend(batch.into_iter().map(|(page, _)| page));
                    failure = Some(Box::new(aws_sdk_sqs::Error::from(error)));
                }
            }
        }
        match failure {
            Some(source) => Err(QueueError::Unavailable { refused, source }),
            None => Ok(()),
        }
    }
}

/// How many fan-out workers run at once: [`FAN_OUT_WORKERS`](crate::config::FAN_OUT_WORKERS).
///
/// # Errors
/// [`ConfigError`] when it is unset or outside 2 to 1,000 (the event source's
/// `MaximumConcurrency` range).
pub fn fan_out_workers(vars: &crate::config::Vars<'_>) -> Result<u32, ConfigError> {
    vars.number(crate::config::FAN_OUT_WORKERS, 2, 1000, "a whole number of workers from 2 to 1000")
}

/// A rate that posts keep to: each post waits its turn, so the fan-out workers together stay
/// within their share of the account's API Gateway request rate
/// ([`FAN_OUT_POSTS_PER_SECOND`](crate::config::FAN_OUT_POSTS_PER_SECOND)) and leave the rest to
/// direct messages and small rooms.
#[derive(Debug)]
pub struct Pace {
    limiter: governor::DefaultDirectRateLimiter,
    /// Posts wait their turn here, one at a time at the limiter: 32 posts waiting on it at
    /// once would all wake at each refill and all but one sleep again.
    turn: tokio::sync::Mutex<()>,
    per_second: u32,
}

impl Pace {
    /// At most `per_second` posts a second, in bursts of a tenth of that.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        let burst = NonZeroU32::new(per_second.get() / 10).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: governor::RateLimiter::direct(quota),
            turn: tokio::sync::Mutex::new(()),
            per_second: per_second.get(),
        }
    }

    /// One worker's pace: [`FAN_OUT_POSTS_PER_SECOND`](crate::config::FAN_OUT_POSTS_PER_SECOND)
    /// divided by [`FAN_OUT_WORKERS`](crate::config::FAN_OUT_WORKERS).
    ///
    /// # Errors
    /// [`ConfigError`] naming a variable that is unset or out of range (1 to 100,000 posts a
    /// second; 2 to 1,000 workers, the event source's `MaximumConcurrency` range).
    pub fn from_vars(vars: &crate::config::Vars<'_>) -> Result<Self, ConfigError> {
        use crate::config::FAN_OUT_POSTS_PER_SECOND;
        let rate =
            vars.number(FAN_OUT_POSTS_PER_SECOND, 1, 100_000, "a whole number of posts per second from 1 to 100000")?;
        let workers = fan_out_workers(vars)?;
        Ok(Self::per_second(NonZeroU32::new(rate / workers).unwrap_or(NonZeroU32::MIN)))
    }

    /// Posts per second at most.
    pub fn posts_per_second(&self) -> u32 {
        self.per_second
    }

    /// Waits until one more post keeps to the pace.
    pub async fn ready(&self) {
        let _turn = self.turn.lock().await;
        self.limiter.until_ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(frame_bytes: usize, connections: usize) -> FanOutPage {
        FanOutPage {
            api_id: "a1b2c3d4e5".into(),
            stage: "dev".into(),
            room_id: RoomId::parse("arena").unwrap(),
            frame: format!(r#"{{"body":"{}"}}"#, "x".repeat(frame_bytes)),
            opened_by: 0,
            connection_ids: (0..connections).map(|n| format!("L0SM9cOFvH{n:05}=")).collect(),
        }
    }

    #[test]
    fn a_page_too_big_for_one_sqs_message_is_split_and_none_is_lost() {
        let big = page(120 * 1024, 1000);
        let bigger = page(260 * 1024, 1000);
        let (fit, unfit) = bodies(vec![big.clone(), bigger]);

        assert!(fit.iter().all(|(_, body)| body.len() <= SQS_MAX_MESSAGE_BYTES));
        let mut ids: Vec<_> = fit.iter().flat_map(|(page, _)| page.connection_ids.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000, "each connection once, in one page or the other");
        assert_eq!(fit.iter().filter(|(page, _)| page.frame == big.frame).count(), 1, "the 120 KB page fits whole");
        assert_eq!(unfit.len(), 1, "a 260 KB frame cannot go with even one connection");
        assert_eq!(unfit[0].connection_ids.len(), 1000);
    }

    #[test]
    fn batches_hold_ten_entries_and_256_kib_at_most() {
        let (fit, _) = bodies((0..25).map(|_| page(10, 1000)).chain((0..3).map(|_| page(100 * 1024, 10))).collect());
        let batches = batches(fit);

        assert!(batches.iter().all(|batch| batch.len() <= SQS_MAX_BATCH_ENTRIES));
        assert!(
            batches
                .iter()
                .all(|batch| batch.iter().map(|(_, body)| body.len()).sum::<usize>() <= SQS_MAX_MESSAGE_BYTES)
        );
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 28);
    }
}
