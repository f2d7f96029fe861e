//! The open connections: what the socket tasks and the @connections API share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{Notify, mpsc};

use crate::events::{Peer, now_ms};

/// What the socket's writer task is asked to send.
#[derive(Debug)]
pub enum Outbound {
    /// A data frame (text when the data is UTF-8, as API Gateway sends it).
    Data(Vec<u8>),
    /// A close frame; the writer stops after it.
    Close(u16, String),
}

/// One open connection.
#[derive(Debug)]
pub struct Live {
    /// Ids, times and client of the connection.
    pub peer: Peer,
    last_active: AtomicI64,
    outbox: mpsc::UnboundedSender<Outbound>,
    closing: AtomicBool,
    close_reason: Mutex<Option<(u16, String)>>,
    /// Woken when the server closes the connection, so its reader stops waiting for frames.
    pub closed: Notify,
}

impl Live {
    /// A connection whose frames go to `outbox`.
    pub fn new(peer: Peer, outbox: mpsc::UnboundedSender<Outbound>) -> Self {
        Self {
            last_active: AtomicI64::new(peer.connected_at),
            peer,
            outbox,
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

    /// Queues data for the client; false once the connection is closing or closed.
    pub fn send(&self, data: Vec<u8>) -> bool {
        !self.closing.load(Ordering::Acquire) && self.outbox.send(Outbound::Data(data)).is_ok()
    }

    /// Closes the connection from the server side with `code`; the first reason given wins.
    pub fn close(&self, code: u16, reason: &str) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((code, reason.to_owned()));
        let _ = self.outbox.send(Outbound::Close(code, reason.to_owned()));
        self.closed.notify_one();
    }

    /// Marks the connection closed by the client, so nothing more is queued for it.
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
    /// Adds a connection that `$connect` accepted.
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
