//! The fan-out queue: a big room's delivery handed out in pages, each posted by a worker, so
//! that no one invocation posts to every member. SQS in the cloud (Lambda's event source runs the
//! workers); in memory on one machine, behind the same trait.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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

/// A page could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue refused or did not answer: SQS unreachable, throttled past the SDK's retries, or
    /// the in-memory queue closed.
    #[error("the fan-out queue did not take {pages} pages")]
    Unavailable {
        /// How many pages were not queued.
        pages: usize,
        /// What the queue reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where a big room's pages go.
#[async_trait]
pub trait FanOutQueue: Send + Sync {
    /// Queues `pages`; on error, none of the pages the error counts was queued (the caller
    /// delivers those itself).
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
        let count = pages.len();
        for (sent, page) in pages.into_iter().enumerate() {
            if let Err(error) = self.pages.send(page).await {
                return Err(QueueError::Unavailable { pages: count - sent, source: Box::new(error) });
            }
        }
        Ok(())
    }
}
