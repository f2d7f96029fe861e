//! A messenger that records each post instead of sending it, and can play any failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::PostError;
use chat_core::messenger::{Endpoint, Messenger};

/// One recorded post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    /// The API and stage posted to.
    pub endpoint: Endpoint,
    /// The connection posted to.
    pub connection_id: String,
    /// The frame, parsed as JSON.
    pub frame: serde_json::Value,
    /// The frame as posted, for tests of field order.
    pub text: String,
}

/// Makes the error a failing connection answers with.
pub type Failure = fn(&str) -> PostError;

/// Records every successful post; connections told to fail answer with their [`Failure`].
#[derive(Debug, Default)]
pub struct RecordingMessenger {
    posts: Mutex<Vec<Post>>,
    failures: Mutex<HashMap<String, Failure>>,
    latency: Option<Duration>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// API Gateway's 410 GoneException, as the real messenger reports it.
pub fn gone(connection_id: &str) -> PostError {
    PostError::Gone(connection_id.to_owned())
}

/// API Gateway's 429 LimitExceededException (throttled, or the client's buffer is full), as
/// the SDK reports it once its retries are spent.
pub fn throttled(connection_id: &str) -> PostError {
    let exception =
        aws_sdk_apigatewaymanagement::types::error::LimitExceededException::builder().message("Rate exceeded").build();
    PostError::Api {
        connection_id: connection_id.to_owned(),
        source: Box::new(aws_sdk_apigatewaymanagement::Error::LimitExceededException(exception)),
    }
}

impl RecordingMessenger {
    /// A messenger with nothing recorded, whose posts complete at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// A messenger whose every post takes `latency`, as a post over the network does.
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency: Some(latency), ..Self::default() }
    }

    /// Makes posts to this connection fail as API Gateway's 410 GoneException does.
    pub fn mark_gone(&self, connection_id: &str) {
        self.fail(connection_id, gone);
    }

    /// Makes posts to this connection fail with `failure`.
    pub fn fail(&self, connection_id: &str, failure: Failure) {
        self.failures.lock().expect("lock").insert(connection_id.to_owned(), failure);
    }

    /// Lets posts to this connection succeed again.
    pub fn heal(&self, connection_id: &str) {
        self.failures.lock().expect("lock").remove(connection_id);
    }

    /// Every successful post, in order.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("lock").clone()
    }

    /// The frames delivered to one connection, in order.
    pub fn frames_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.posts().into_iter().filter(|post| post.connection_id == connection_id).map(|post| post.frame).collect()
    }

    /// The message frames delivered to one connection, in order, each without its `seq` and
    /// `sentAt` (which each must carry: [`crate::stored`]).
    pub fn messages_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.frames_to(connection_id).iter().map(crate::stored).collect()
    }

    /// The frames delivered to one connection as posted, text, in order.
    pub fn texts_to(&self, connection_id: &str) -> Vec<String> {
        self.posts().into_iter().filter(|post| post.connection_id == connection_id).map(|post| post.text).collect()
    }

    /// The most posts that were in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Messenger for RecordingMessenger {
    async fn post(&self, endpoint: &Endpoint, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let failure = self.failures.lock().expect("lock").get(connection_id).copied();
        if let Some(failure) = failure {
            return Err(failure(connection_id));
        }
        let frame = serde_json::from_slice(data).expect("every frame is JSON");
        self.posts.lock().expect("lock").push(Post {
            endpoint: endpoint.clone(),
            connection_id: connection_id.to_owned(),
            frame,
            text: String::from_utf8_lossy(data).into_owned(),
        });
        Ok(())
    }
}
