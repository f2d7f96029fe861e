//! A chat on one machine for the route handlers' tests: the in-memory store, a messenger that
//! records what it is asked to send, and the routes driven by the sample events in `events/`.

use chat_core::identity::Mode;
use chat_core::protocol::UserId;
use chat_core::routes::Services;
use chat_core::routes::{self, Handled, Route};
use chat_core::store::{ConnectionStore, MemoryStore};
use serde_json::{Value, json};

use crate::{RecordingMessenger, events};

/// The store and the recording messenger every route of one test shares.
pub struct Chat {
    /// The connections and rooms.
    pub store: MemoryStore,
    /// What the handlers posted.
    pub messenger: RecordingMessenger,
}

impl Chat {
    /// A chat where each `(connection id, user)` has connected, in demo mode.
    ///
    /// # Panics
    /// When a connect is refused.
    pub async fn with(connections: &[(&str, &str)]) -> Self {
        Self::with_messenger(connections, RecordingMessenger::new()).await
    }

    /// The same, posting through `messenger` (one that fails or is slow, say).
    ///
    /// # Panics
    /// When a connect is refused.
    pub async fn with_messenger(connections: &[(&str, &str)], messenger: RecordingMessenger) -> Self {
        let chat = Chat { store: MemoryStore::new(), messenger };
        for (connection_id, user) in connections {
            let response = routes::handle(
                Route::Connect,
                &events::connect(connection_id, Some(user)),
                &Services::new(&chat.store).with_mode(Mode::Demo),
            )
            .await;
            assert_eq!(response.status(), 200, "connecting {connection_id} as {user}");
        }
        chat
    }

    /// Opens one more connection for `user`; the status.
    pub async fn connect(&self, connection_id: &str, user: &str) -> i64 {
        routes::handle(
            Route::Connect,
            &events::connect(connection_id, Some(user)),
            &Services::new(&self.store).with_mode(Mode::Demo),
        )
        .await
        .status()
    }

    /// Sends `frame` to `route` from a connection, 5 s after it opened; the status.
    pub async fn request(&self, route: Route, from: &str, frame: Value) -> i64 {
        let event = events::message(route, from, &frame.to_string());
        routes::handle(route, &event, &Services::new(&self.store).with_messenger(&self.messenger)).await.status()
    }

    /// Sends a frame as the sample event does, 5 s after the connections opened; the status.
    pub async fn send(&self, from: &str, frame: Value) -> i64 {
        self.send_after(from, frame, 5).await.status()
    }

    /// Sends a frame `seconds` after the connections opened.
    pub async fn send_after(&self, from: &str, frame: Value, seconds: i64) -> Handled {
        let event = events::message_after(Route::SendMessage, from, &frame.to_string(), seconds);
        routes::handle(Route::SendMessage, &event, &Services::new(&self.store).with_messenger(&self.messenger)).await
    }

    /// Sends a frame a minute after the connections opened, when every record is old enough
    /// for a gone connection to lose it; the status.
    pub async fn say(&self, from: &str, frame: Value) -> i64 {
        self.send_after(from, frame, 60).await.status()
    }

    /// Sends `body` to `$default`; the status.
    pub async fn default(&self, from: &str, body: &str) -> i64 {
        routes::handle(
            Route::Default,
            &events::message(Route::Default, from, body),
            &Services::none().with_messenger(&self.messenger),
        )
        .await
        .status()
    }

    /// `joinRoom` from a connection; the status.
    pub async fn join(&self, connection_id: &str, room: &str) -> i64 {
        let body = json!({"action": "joinRoom", "roomId": room}).to_string();
        let event = events::message(Route::JoinRoom, connection_id, &body);
        routes::handle(Route::JoinRoom, &event, &Services::new(&self.store).with_messenger(&self.messenger))
            .await
            .status()
    }

    /// `leaveRoom` from a connection; the status.
    pub async fn leave(&self, connection_id: &str, room: &str) -> i64 {
        let body = json!({"action": "leaveRoom", "roomId": room}).to_string();
        let event = events::message(Route::LeaveRoom, connection_id, &body);
        routes::handle(Route::LeaveRoom, &event, &Services::new(&self.store).with_messenger(&self.messenger))
            .await
            .status()
    }

    /// Every frame posted to a connection, in order.
    pub fn frames_to(&self, connection_id: &str) -> Vec<Value> {
        self.messenger.frames_to(connection_id)
    }

    /// The error code of the one frame posted to a connection.
    ///
    /// # Panics
    /// Unless exactly one frame was posted to it.
    pub fn error_code_to(&self, connection_id: &str) -> Value {
        let frames = self.frames_to(connection_id);
        assert_eq!(frames.len(), 1, "exactly one frame to {connection_id}, got {frames:?}");
        frames[0]["error"].clone()
    }

    /// A user's connections on record, sorted.
    ///
    /// # Panics
    /// When the id is invalid.
    pub async fn users_connections(&self, user: &str) -> Vec<String> {
        let user = UserId::parse(user).expect("a valid user id");
        let mut ids =
            self.store.connections_of(&user, crate::events::now_ms()).await.expect("the memory store answers");
        ids.sort();
        ids
    }
}
