//! The open connections: what the socket tasks and the @connections API share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use tokio::sync::Notify;

use crate::events::{Peer, now_ms};

/// One open connection. Whoever sends to it (the @connections API, the gateway's own error
/// frames) writes to its socket directly, so a frame costs no extra task switch.
#[derive(Debug)]
pub struct Live {
    /// Ids, times and client of the connection.
    pub peer: Peer,
    last_active: AtomicI64,
    sink: tokio::sync::Mutex<SplitSink<WebSocket, Message>>,
    closing: AtomicBool,
    close_reason: Mutex<Option<(u16, String)>>,
    /// Woken when the server closes the connection, so its reader stops waiting for frames.
    pub closed: Notify,
}

impl Live {
    /// A connection that writes to `sink`.
    pub fn new(peer: Peer, sink: SplitSink<WebSocket, Message>) -> Self {
        Self {
            last_active: AtomicI64::new(peer.connected_at),
            peer,
            sink: tokio::sync::Mutex::new(sink),
            closing: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed: Notify::new(),
        }
    }

    /// Records client activity now.
    pub fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// When the client last sent a data frame, epoch ms.
    pub fn last_active(&self) -> i64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Sends data to the client (text when it is UTF-8, as API Gateway sends it); false once the
    /// connection is closing or the write fails.
    pub async fn send(&self, data: Vec<u8>) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return false;
        }
        let message = match String::from_utf8(data) {
            Ok(text) => Message::Text(text.into()),
            Err(bytes) => Message::Binary(bytes.into_bytes().into()),
        };
        self.sink.lock().await.send(message).await.is_ok()
    }

    /// Closes the connection from the server side with `code`; the first reason given wins.
    pub async fn close(&self, code: u16, reason: &str) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((code, reason.to_owned()));
        self.closed.notify_one();
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = self.sink.lock().await.send(Message::Close(Some(frame))).await;
    }

    /// Marks the connection closed by the client, so nothing more is sent to it.
    pub fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// The code and reason the server closed with, if it did.
    pub fn server_close(&self) -> Option<(u16, String)> {
        self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Open connections by id.
#[derive(Debug, Default)]
pub struct Registry {
    connections: RwLock<HashMap<String, Arc<Live>>>,
}

impl Registry {
    /// Adds a connection whose handshake completed.
    pub fn insert(&self, live: Arc<Live>) {
        self.write().insert(live.peer.connection_id.clone(), live);
    }

    /// Removes a connection; nothing can be posted to it afterwards.
    pub fn remove(&self, connection_id: &str) -> Option<Arc<Live>> {
        self.write().remove(connection_id)
    }

    /// An open connection.
    pub fn get(&self, connection_id: &str) -> Option<Arc<Live>> {
        self.connections.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(connection_id).cloned()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.connections.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Live>>> {
        self.connections.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
