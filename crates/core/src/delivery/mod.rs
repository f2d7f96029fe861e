//! Delivery: posting one frame to many connections, a bounded number at a time, removing the
//! records of those that are gone ([`FanOut`], counted in a [`Tally`]); telling a user's
//! connections what changed ([`tell_user`]); a big room's members handed to the fan-out queue in
//! pages ([`queue`]) and each page posted by a worker at its pace ([`page`]).

pub mod page;
pub mod queue;

use std::time::Duration;

use futures::StreamExt;

use crate::error::{Chain, PostError};
use crate::lambda::Request;
use crate::limits::{GONE_AFTER, MAX_POSTS_IN_FLIGHT};
use crate::messenger::{Endpoint, Messenger};
use crate::metrics::Metrics;
use crate::protocol::{self, Frame, RoomId, UserId};
use crate::store::Store;
use queue::Pace;

/// What happened to the posts of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) delivered: usize,
    /// Connections that answered 410; their records were removed if old enough to be gone.
    pub(crate) gone: usize,
    /// Of the gone, those whose record could not be removed (the TTL will).
    pub(crate) records_kept: usize,
    pub(crate) failed: usize,
    /// Of the failed, those answered 429 (throttled, or the client's buffer full) to the end.
    pub(crate) throttled: usize,
    /// Connections handed to the fan-out queue, posted by workers.
    pub(crate) queued: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.gone += other.gone;
        self.records_kept += other.records_kept;
        self.failed += other.failed;
        self.throttled += other.throttled;
        self.queued += other.queued;
    }
}

impl Tally {
    /// Adds these counts to what the invocation counted already (a failed acknowledgement,
    /// say), never replacing them.
    pub(crate) fn record(&self, metrics: &mut Metrics) {
        metrics.messages_delivered += self.delivered as u64;
        metrics.connections_gone += self.gone as u64;
        metrics.posts_failed += self.failed as u64;
        metrics.posts_throttled += self.throttled as u64;
        metrics.backend_failures += self.records_kept as u64;
    }
}

/// Posts one frame to many connections, [`MAX_POSTS_IN_FLIGHT`] at a time.
pub(crate) struct FanOut<'a> {
    pub(crate) store: &'a dyn Store,
    messenger: &'a dyn Messenger,
    endpoint: &'a Endpoint,
    /// Epoch ms: a gone connection opened by then loses its record.
    opened_by: i64,
    /// Posts again to a connection that answered 429 this many times (0 for the sender's own
    /// fan-out, which has a user waiting; workers retry).
    throttled_retries: u32,
    /// The rate posts keep to (workers: their share of the account's rate).
    pace: Option<&'a Pace>,
}

/// Where a recipient was listed, and so what must go with it when it is gone and has no record
/// left (its `$disconnect` deleted the record and then failed): no record lists it any more.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Listed<'a> {
    /// A room's member: its membership.
    Room(&'a RoomId),
    /// One of a user's connections: the user's entry for it.
    User(&'a UserId),
}

impl<'a> Listed<'a> {
    /// Each of `ids`, listed here.
    pub(crate) fn each(self, ids: Vec<String>) -> Vec<(String, Listed<'a>)> {
        ids.into_iter().map(|id| (id, self)).collect()
    }
}

impl FanOut<'_> {
    /// Posts the frame to each recipient, [`MAX_POSTS_IN_FLIGHT`] at a time.
    pub(crate) async fn deliver(&self, recipients: Vec<(String, Listed<'_>)>, frame: &[u8]) -> Tally {
        // Collected first: a lazy map over borrowed ids trips the compiler's higher-ranked
        // lifetime check once the future is boxed (async_trait).
        let posts: Vec<_> = recipients.iter().map(|(id, listed)| self.deliver_one(*listed, id, frame)).collect();
        let tallies = futures::stream::iter(posts).buffer_unordered(MAX_POSTS_IN_FLIGHT);
        tallies
            .fold(Tally::default(), |mut sum, one| async move {
                sum += one;
                sum
            })
            .await
    }

    async fn post(&self, connection_id: &str, frame: &[u8]) -> Result<(), PostError> {
        if let Some(pace) = self.pace {
            pace.ready().await;
        }
        self.messenger.post(self.endpoint, connection_id, frame).await
    }

    /// Posts the frame to one connection. A connection that is gone loses its record, if it
    /// was opened by `opened_by`: a younger one may still be completing its handshake. One that
    /// has no record any more loses what listed it.
    async fn deliver_one(&self, listed: Listed<'_>, connection_id: &str, frame: &[u8]) -> Tally {
        let mut posted = self.post(connection_id, frame).await;
        for retry in 0..self.throttled_retries {
            if !posted.as_ref().is_err_and(PostError::is_throttled) {
                break;
            }
            let pause = 100 * 2u64.pow(retry) + jitter(connection_id, retry) % 50;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            posted = self.post(connection_id, frame).await;
        }
        match posted {
            Ok(()) => Tally { delivered: 1, ..Tally::default() },
            Err(PostError::Gone(_)) => match self.store.remove_if_opened_by(connection_id, self.opened_by).await {
                Ok(removed) => {
                    // Not removed: too young to be taken for gone, or no record at all. Only the
                    // latter loses what listed it.
                    let orphan = !removed && matches!(self.store.find(connection_id).await, Ok(None));
                    if orphan && let Err(error) = self.forget(listed, connection_id).await {
                        tracing::warn!(recipient = connection_id, error = %Chain(&error), "could not forget a gone connection that has no record");
                    }
                    tracing::info!(
                        recipient = connection_id,
                        removed = removed || orphan,
                        "recipient connection is gone"
                    );
                    Tally { gone: 1, ..Tally::default() }
                }
                Err(error) => {
                    // The record's TTL will remove it eventually; the delivery outcome stands.
                    tracing::warn!(recipient = connection_id, error = %Chain(&error), "could not delete a gone connection's record");
                    Tally { gone: 1, records_kept: 1, ..Tally::default() }
                }
            },
            Err(error) if error.is_throttled() => {
                tracing::warn!(recipient = connection_id, "delivery throttled (429)");
                Tally { failed: 1, throttled: 1, ..Tally::default() }
            }
            Err(error) => {
                tracing::error!(recipient = connection_id, error = %Chain(&error), "delivery failed");
                Tally { failed: 1, ..Tally::default() }
            }
        }
    }
}

impl FanOut<'_> {
    /// Forgets what listed a connection that is gone and has no record.
    async fn forget(&self, listed: Listed<'_>, connection_id: &str) -> Result<(), crate::error::StoreError> {
        match listed {
            Listed::Room(room) => crate::store::SubscriptionStore::unsubscribe(self.store, connection_id, room).await,
            Listed::User(user) => self.store.forget_entry(user, connection_id).await,
        }
    }
}

impl<'a> FanOut<'a> {
    /// Posts for `request`: a connection whose record is younger than [`GONE_AFTER`] may still be
    /// completing its handshake, so a 410 from it keeps its record.
    pub(crate) fn new(request: &'a Request, store: &'a dyn Store, messenger: &'a dyn Messenger) -> Self {
        Self {
            store,
            messenger,
            endpoint: &request.endpoint,
            opened_by: opened_by(request),
            throttled_retries: 0,
            pace: None,
        }
    }

    /// Posts for a fan-out worker: `opened_by` as the sender computed it, at `pace`, and 429s
    /// retried [`FAN_OUT_THROTTLED_RETRIES`](crate::limits::FAN_OUT_THROTTLED_RETRIES) times.
    pub(crate) fn for_worker(
        store: &'a dyn Store,
        messenger: &'a dyn Messenger,
        endpoint: &'a Endpoint,
        opened_by: i64,
        pace: Option<&'a Pace>,
    ) -> Self {
        let throttled_retries = crate::limits::FAN_OUT_THROTTLED_RETRIES;
        Self { store, messenger, endpoint, opened_by, throttled_retries, pace }
    }
}

/// Epoch ms: a connection opened by then that answers 410 is gone; a younger one may still be
/// completing its handshake.
pub(crate) fn opened_by(request: &Request) -> i64 {
    request.request_time_ms - GONE_AFTER.as_millis() as i64
}

/// A few milliseconds that differ between connections and retries, so that throttled posts do
/// not all come back at once.
fn jitter(connection_id: &str, retry: u32) -> u64 {
    connection_id.bytes().fold(u64::from(retry), |sum, byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)))
}

/// Tells every connection of `user` but the requesting one `frame`: a change made in one tab
/// (joining a room, reading) reaches the user's others, and a read receipt the other user of a
/// conversation. Failures are logged; the change stands, and those connections learn it from
/// `sync` after reconnecting.
pub(crate) async fn tell_user(
    request: &Request,
    store: &dyn Store,
    messenger: &dyn Messenger,
    user: &UserId,
    frame: &impl Frame,
) {
    let bytes = match protocol::to_bytes(frame) {
        Ok(bytes) => bytes,
        Err(error) => {
            return tracing::error!(error = %Chain(&error), "could not encode a frame for a user's connections");
        }
    };
    let others = match store.connections_of(user, request.request_time_ms).await {
        Ok(ids) => ids.into_iter().filter(|id| *id != request.connection_id).collect(),
        Err(error) => return tracing::warn!(error = %Chain(&error), "could not read a user's connections"),
    };
    let tally = FanOut::new(request, store, messenger).deliver(Listed::User(user).each(others), &bytes).await;
    if tally.failed > 0 {
        tracing::warn!(failed = tally.failed, "could not tell some of a user's connections");
    }
}
