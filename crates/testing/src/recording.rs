//! A messenger that records each post instead of sending it, and can play a gone connection.

use std::collections::HashSet;
use std::sync::Mutex;

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
}

/// Records every successful post; connections marked gone answer [`PostError::Gone`].
#[derive(Debug, Default)]
pub struct RecordingMessenger {
    posts: Mutex<Vec<Post>>,
    gone: Mutex<HashSet<String>>,
}

impl RecordingMessenger {
    /// A messenger with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes posts to this connection fail as API Gateway's 410 GoneException does.
    pub fn mark_gone(&self, connection_id: &str) {
        self.gone.lock().expect("lock").insert(connection_id.to_owned());
    }

    /// Every successful post, in order.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("lock").clone()
    }

    /// The frames delivered to one connection, in order.
    pub fn frames_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.posts().into_iter().filter(|post| post.connection_id == connection_id).map(|post| post.frame).collect()
    }
}

#[async_trait]
impl Messenger for RecordingMessenger {
    async fn post(&self, endpoint: &Endpoint, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        if self.gone.lock().expect("lock").contains(connection_id) {
            return Err(PostError::Gone(connection_id.to_owned()));
        }
        let frame = serde_json::from_slice(data).expect("every frame is JSON");
        self.posts.lock().expect("lock").push(Post {
            endpoint: endpoint.clone(),
            connection_id: connection_id.to_owned(),
            frame,
        });
        Ok(())
    }
}
