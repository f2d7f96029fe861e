//! The open connections: what the socket tasks and the @connections API share.
//!
//! Each connection has a bounded outbox. Posting puts a frame in it and returns at once (or
//! answers 429 when it is full, as API Gateway does when a client's buffer is full); the
//! connection's own writer drains it to the socket with a time limit per write. A client that
//! stops reading fills only its own outbox, and is closed when a write times out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::events::{Peer, now_ms};

/// Bytes of frames one connection may have waiting to be written; a post past it is refused
/// with 429. One frame is always accepted into an empty outbox, whatever its size.
pub const OUTBOX_BYTES: usize = 1024 * 1024;

/// The close code and reason reported to `$disconnect` when a write to the client times out:
/// no close frame can reach a client that does not read, so the close is abnormal (1006).
pub const WRITE_TIMED_OUT: (u16, &str) = (1006, "Write timed out: the client is not reading");

/// What became of a frame handed to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// It will be written.
    Accepted,
    /// The outbox is full: the client is not reading fast enough.
    Full,
    /// The connection is closing or closed.
    Closed,
}

#[derive(Debug, Default)]
struct Outbox {
    frames: VecDeque<Message>,
    bytes: usize,
    /// The server's close frame, written after the frames before it.
    close: Option<CloseFrame>,
}

/// One open connection.
#[derive(Debug)]
pub struct Live {
    /// Ids, times and client of the connection.
    pub peer: Peer,
    last_active: AtomicI64,
    outbox: Mutex<Outbox>,
    /// Woken when there is something to write, or the connection is closing.
    writer_wake: Notify,
    closing: AtomicBool,
    close_reason: Mutex<Option<(u16, String)>>,
    /// Woken when the server closes the connection, so its reader stops waiting for frames.
    pub closed: Notify,
}

impl Live {
    /// A connection whose socket is not open yet: frames posted now wait in its outbox.
    pub fn new(peer: Peer) -> Self {
        Self {
            last_active: AtomicI64::new(peer.connected_at),
            peer,
            outbox: Mutex::default(),
            writer_wake: Notify::new(),
            closing: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closed: Notify::new(),
        }
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // Each update is a few infallible operations, so a poisoned lock holds a valid outbox.
        self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records traffic on the connection now: a data frame from the client, or one queued for it.
    pub fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// When the connection last had traffic ([`Live::touch`]), epoch ms: what its idle timeout
    /// counts from and what `GET @connections/{id}` reports as `lastActiveAt`.
    pub fn last_active(&self) -> i64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Queues data for the client (text when it is UTF-8, as API Gateway sends it). Never waits.
    pub fn send(&self, data: Vec<u8>) -> Queued {
        if self.closing.load(Ordering::Acquire) {
            return Queued::Closed;
        }
        let size = data.len();
        let message = match String::from_utf8(data) {
            Ok(text) => Message::Text(text.into()),
            Err(bytes) => Message::Binary(bytes.into_bytes().into()),
        };
        {
            let mut outbox = self.outbox();
            if !outbox.frames.is_empty() && outbox.bytes + size > OUTBOX_BYTES {
                return Queued::Full;
            }
            outbox.bytes += size;
            outbox.frames.push_back(message);
        }
        // Posts to a client count as traffic: on AWS, a post every 9.5 minutes held a connection
        // open until the 2-hour limit (hotsock.io's keep-alive documentation), and idleness is
        // "direction agnostic" (andyrichardson/subscriptionless#3).
        self.touch();
        self.writer_wake.notify_one();
        Queued::Accepted
    }

    /// Closes the connection from the server side with `code`; the first reason given wins.
    /// Frames already queued are written first, within the close's time limit.
    pub fn close(&self, code: u16, reason: &str) {
        {
            // Under the outbox's lock, so a writer that sees `closing` also sees the close frame.
            let mut outbox = self.outbox();
            if self.closing.swap(true, Ordering::AcqRel) {
                return;
            }
            outbox.close = Some(CloseFrame { code, reason: reason.into() });
        }
        *self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((code, reason.to_owned()));
        self.writer_wake.notify_one();
        self.closed.notify_one();
    }

    /// Gives up on a connection that cannot be written to: nothing more is sent, not even a
    /// close frame, and `$disconnect` reports `code` and `reason`.
    fn abort(&self, (code, reason): (u16, &str)) {
        let mut outbox = self.outbox();
        // Replaces a server close whose frame could not be written: the client never saw it.
        self.closing.store(true, Ordering::Release);
        *self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((code, reason.to_owned()));
        *outbox = Outbox::default();
        drop(outbox);
        self.closed.notify_one();
    }

    /// Marks the connection closed by the client, so nothing more is sent to it.
    pub fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
        self.writer_wake.notify_one();
    }

    /// The code and reason the server closed with, if it did.
    pub fn server_close(&self) -> Option<(u16, String)> {
        self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Writes queued frames to `sink` until the connection closes. Each write must finish within
    /// `write_timeout`, and everything left once the connection is closing within `close_grace`;
    /// a write that does not aborts the connection ([`WRITE_TIMED_OUT`]).
    pub async fn write_to(
        &self,
        mut sink: SplitSink<WebSocket, Message>,
        write_timeout: Duration,
        close_grace: Duration,
    ) {
        let mut close_deadline = None;
        loop {
            let (next, closing) = {
                let mut outbox = self.outbox();
                let next = match outbox.frames.pop_front() {
                    Some(frame) => {
                        outbox.bytes -= frame_len(&frame);
                        Some(frame)
                    }
                    None => outbox.close.take().map(|frame| Message::Close(Some(frame))),
                };
                (next, self.closing.load(Ordering::Acquire))
            };
            if closing && close_deadline.is_none() {
                close_deadline = Some(Instant::now() + close_grace);
            }
            let Some(message) = next else {
                if closing {
                    return;
                }
                self.writer_wake.notified().await;
                continue;
            };
            let is_close = matches!(message, Message::Close(_));
            let deadline = close_deadline.unwrap_or_else(|| Instant::now() + write_timeout);
            match tokio::time::timeout_at(deadline, sink.send(message)).await {
                Ok(Ok(())) if is_close => return,
                Ok(Ok(())) => {}
                // The socket failed; the reader sees it too and reports how it ended.
                Ok(Err(_)) => {
                    self.mark_closing();
                    return;
                }
                Err(_) => {
                    tracing::warn!(connection_id = self.peer.connection_id, "write timed out; closing the connection");
                    self.abort(WRITE_TIMED_OUT);
                    return;
                }
            }
        }
    }
}

fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

/// Open connections by id.
#[derive(Debug, Default)]
pub struct Registry {
    connections: RwLock<HashMap<String, Arc<Live>>>,
}

impl Registry {
    /// Adds a connection whose `$connect` succeeded; it can be posted to from now on.
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

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Live>>> {
        self.connections.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
