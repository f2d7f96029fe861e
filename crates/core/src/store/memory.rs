//! The connection, room and message store for one machine: maps behind a lock, for the local
//! gateway.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::users::{ConversationEntry, ReadMark, RoomJoin, SyncCursor, SyncPage, UserStore, page_of, preview};
use super::{
    Appended, Connection, ConnectionStore, Conversation, Cursor, HistoryPage, IDEMPOTENCY_WINDOW, Idempotency,
    MembersPage, MessageStore, StoredMessage, Subscribed, SubscriptionStore,
};
use crate::error::StoreError;
use crate::limits::{MAX_ROOMS_PER_USER, MESSAGE_RETENTION};
use crate::protocol::{ConversationRef, RoomId, UserId};

/// Members per page of [`SubscriptionStore::members`], as a DynamoDB page holds many.
const PAGE: usize = 1000;

/// Messages kept at most, across every conversation: past it the oldest go first, as if they
/// had expired (history's `oldestSeq` moves past them), so a long-running local gateway's
/// memory stays bounded (about 12 MB of messages and their bookkeeping).
pub const MAX_MESSAGES: usize = 20_000;

/// Connections, rooms and messages kept in process memory, indexed by connection and by user.
#[derive(Debug)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    retention: std::time::Duration,
    capacity: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { inner: RwLock::default(), retention: MESSAGE_RETENTION, capacity: MAX_MESSAGES }
    }
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<String, Connection>,
    by_user: HashMap<UserId, HashSet<String>>,
    members: HashMap<RoomId, BTreeSet<String>>,
    conversations: HashMap<Conversation, Log>,
    /// By conversation, sender and `clientRequestId`: the body's hash, the message's seq and
    /// when the claim lapses (epoch ms).
    requests: HashMap<(Conversation, UserId, String), (String, u64, i64)>,
    /// By user: the rooms they joined, each with their readSeq.
    rooms: HashMap<UserId, HashMap<RoomId, u64>>,
    /// By user and other user: their direct conversation's entry.
    directs: HashMap<UserId, HashMap<UserId, Direct>>,
    /// Every stored message, oldest first, to drop the oldest past the capacity.
    stored: std::collections::VecDeque<(Conversation, u64)>,
}

/// One side's entry for a direct conversation.
#[derive(Debug, Default, Clone)]
struct Direct {
    last_seq: u64,
    read_seq: u64,
    peer_read_seq: u64,
    /// The last message, its body cut to a preview.
    last: Option<StoredMessage>,
}

/// One conversation's messages and the latest seq it ever had.
#[derive(Debug, Default)]
struct Log {
    last_seq: u64,
    /// The last message stored, its body cut to a preview (a room's, for `sync`).
    last: Option<StoredMessage>,
    /// By seq: the message and when it expires, epoch seconds.
    messages: std::collections::BTreeMap<u64, (StoredMessage, i64)>,
}

impl Inner {
    /// Removes a connection from the user index and from every room it is in.
    fn unlink(&mut self, connection: &Connection) {
        if let Some(ids) = self.by_user.get_mut(&connection.user_id) {
            ids.remove(&connection.connection_id);
            if ids.is_empty() {
                self.by_user.remove(&connection.user_id);
            }
        }
        for room in &connection.rooms {
            self.drop_member(room, &connection.connection_id);
        }
    }

    /// Drops the oldest messages past `capacity`, and those expired at `now` (epoch seconds)
    /// from the oldest on, with the previews that show them: no text is held past the
    /// retention, as TTL deletes it on DynamoDB. Read state and numbering stay.
    fn prune(&mut self, capacity: usize, now: i64) {
        while let Some((oldest, seq)) = self.stored.front() {
            let expired = self
                .conversations
                .get(oldest)
                .and_then(|log| log.messages.get(seq))
                .is_none_or(|(_, expires_at)| *expires_at <= now);
            if self.stored.len() <= capacity && !expired {
                break;
            }
            let Some((oldest, seq)) = self.stored.pop_front() else { break };
            if let Some(log) = self.conversations.get_mut(&oldest) {
                log.messages.remove(&seq);
                if log.last.as_ref().is_some_and(|last| last.seq == seq) {
                    log.last = None;
                }
            }
            if let Conversation::Direct(a, b) = &oldest {
                for (owner, other) in [(a, b), (b, a)] {
                    let entry = self.directs.get_mut(owner).and_then(|directs| directs.get_mut(other));
                    if let Some(entry) = entry.filter(|entry| entry.last.as_ref().is_some_and(|last| last.seq == seq)) {
                        entry.last = None;
                    }
                }
            }
        }
    }

    fn drop_member(&mut self, room: &RoomId, connection_id: &str) {
        if let Some(ids) = self.members.get_mut(room) {
            ids.remove(connection_id);
            if ids.is_empty() {
                self.members.remove(room);
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps messages for `retention` instead of [`MESSAGE_RETENTION`].
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Keeps at most `messages` messages instead of [`MAX_MESSAGES`], dropping the oldest first.
    pub fn with_capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// How many connections are recorded.
    pub fn len(&self) -> usize {
        self.read().connections.len()
    }

    /// How long it keeps messages.
    pub fn retention(&self) -> std::time::Duration {
        self.retention
    }

    /// How many messages it holds, expired ones TTL would not have deleted yet included.
    pub fn messages_held(&self) -> usize {
        self.read().stored.len()
    }

    /// Whether no connection is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave the maps half-updated (each update is a
    // few infallible map operations), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(previous) = inner.connections.insert(connection.connection_id.clone(), connection.clone()) {
            inner.unlink(&previous);
        }
        for room in &connection.rooms {
            inner.members.entry(room.clone()).or_default().insert(connection.connection_id.clone());
        }
        inner.by_user.entry(connection.user_id.clone()).or_default().insert(connection.connection_id.clone());
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(previous) = inner.connections.remove(connection_id) {
            inner.unlink(&previous);
        }
        Ok(())
    }

    async fn remove_if_opened_by(&self, connection_id: &str, opened_by: i64) -> Result<bool, StoreError> {
        let mut inner = self.write();
        match inner.connections.get(connection_id) {
            Some(connection) if connection.connected_at <= opened_by => {
                if let Some(previous) = inner.connections.remove(connection_id) {
                    inner.unlink(&previous);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn find(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.read().connections.get(connection_id).cloned())
    }

    async fn connections_of(&self, user_id: &UserId, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let inner = self.read();
        let open = |id: &&String| inner.connections.get(*id).is_some_and(|record| record.expires_at > now_ms / 1000);
        Ok(inner.by_user.get(user_id).map(|ids| ids.iter().filter(open).cloned().collect()).unwrap_or_default())
    }

    async fn forget_entry(&self, user_id: &UserId, connection_id: &str) -> Result<(), StoreError> {
        // Here the user index changes with the record, so an entry outlives no record; the
        // check keeps the contract all the same.
        let mut inner = self.write();
        if inner.connections.get(connection_id).is_none_or(|record| record.user_id != *user_id)
            && let Some(ids) = inner.by_user.get_mut(user_id)
        {
            ids.remove(connection_id);
            if ids.is_empty() {
                inner.by_user.remove(user_id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SubscriptionStore for MemoryStore {
    async fn subscribe(&self, connection_id: &str, room: &RoomId) -> Result<Subscribed, StoreError> {
        let mut inner = self.write();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return Ok(Subscribed::UnknownConnection);
        };
        connection.rooms.insert(room.clone());
        inner.members.entry(room.clone()).or_default().insert(connection_id.to_owned());
        Ok(Subscribed::Member)
    }

    async fn unsubscribe(&self, connection_id: &str, room: &RoomId) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(connection) = inner.connections.get_mut(connection_id) {
            connection.rooms.remove(room);
        }
        inner.drop_member(room, connection_id);
        Ok(())
    }

    async fn members(&self, room: &RoomId, after: Option<&str>) -> Result<MembersPage, StoreError> {
        let inner = self.read();
        let Some(ids) = inner.members.get(room) else { return Ok(MembersPage::default()) };
        let from = after.map_or(std::ops::Bound::Unbounded, |after| std::ops::Bound::Excluded(after.to_owned()));
        let mut page: Vec<String> = ids.range((from, std::ops::Bound::Unbounded)).take(PAGE + 1).cloned().collect();
        let next = (page.len() > PAGE).then(|| {
            page.pop();
            page.last().cloned().unwrap_or_default()
        });
        Ok(MembersPage { connection_ids: page, next })
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append(
        &self,
        conversation: &Conversation,
        sender: &UserId,
        body: &str,
        sent_at: i64,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Appended, StoreError> {
        let mut inner = self.write();
        if let Conversation::Room(room) = conversation
            && !inner.rooms.get(sender).is_some_and(|rooms| rooms.contains_key(room))
        {
            return Ok(Appended::NotInRoom);
        }
        let key =
            idempotency.map(|request| (conversation.clone(), sender.clone(), request.client_request_id.to_owned()));
        let hash = super::messages::body_hash(body);
        if let Some((first_hash, seq, lapses)) = key.as_ref().and_then(|key| inner.requests.get(key))
            && *lapses > sent_at
        {
            // The stored message's own body decides; its hash only once the message is gone.
            let first = inner.conversations.get(conversation).and_then(|log| log.messages.get(seq));
            match first {
                Some((message, _)) if message.body == body => return Ok(Appended::Repeat(message.clone())),
                Some(_) => return Ok(Appended::DifferentBody),
                None if *first_hash != hash => return Ok(Appended::DifferentBody),
                None => {}
            }
        }
        let log = inner.conversations.entry(conversation.clone()).or_default();
        log.last_seq += 1;
        let message = StoredMessage { seq: log.last_seq, sender_id: sender.clone(), body: body.to_owned(), sent_at };
        log.last = Some(StoredMessage { body: preview(body), ..message.clone() });
        log.messages.insert(message.seq, (message.clone(), super::expires_at(sent_at, self.retention)));
        if let Some(key) = key {
            let lapses = sent_at + IDEMPOTENCY_WINDOW.as_millis() as i64;
            if inner.requests.len() >= self.capacity {
                inner.requests.retain(|_, (_, _, lapses)| *lapses > sent_at);
            }
            inner.requests.insert(key, (hash, message.seq, lapses));
        }
        inner.stored.push_back((conversation.clone(), message.seq));
        inner.prune(self.capacity, sent_at / 1000);
        Ok(Appended::Stored(message))
    }

    async fn record_latest(&self, _: &Conversation, _: &StoredMessage) {
        // Recorded by the append, under the same lock.
    }

    async fn latest_seq(&self, conversation: &Conversation) -> Result<u64, StoreError> {
        Ok(self.read().conversations.get(conversation).map_or(0, |log| log.last_seq))
    }

    async fn history(
        &self,
        conversation: &Conversation,
        cursor: Cursor,
        limit: usize,
        now_ms: i64,
    ) -> Result<HistoryPage, StoreError> {
        let inner = self.read();
        let Some(log) = inner.conversations.get(conversation) else {
            return Ok(HistoryPage { oldest_seq: 1, ..HistoryPage::default() });
        };
        let now = now_ms / 1000;
        let retained = || log.messages.values().filter(|(_, expires)| *expires > now).map(|(message, _)| message);
        let oldest_seq = retained().next().map_or(log.last_seq + 1, |message| message.seq);
        let mut messages: Vec<StoredMessage> = match cursor {
            Cursor::Newest => retained().rev().take(limit + 1).cloned().collect(),
            Cursor::Before(before) => {
                retained().rev().filter(|message| message.seq < before).take(limit + 1).cloned().collect()
            }
            Cursor::After(after) => retained().filter(|message| message.seq > after).take(limit + 1).cloned().collect(),
        };
        let mut has_more = messages.len() > limit;
        messages.truncate(limit);
        // Within the page's bytes, at least one.
        let mut used = 0;
        let fit = messages
            .iter()
            .take_while(|message| {
                used += super::page_size(message);
                used <= super::HISTORY_PAGE_BYTES
            })
            .count()
            .max(1);
        if fit < messages.len() {
            messages.truncate(fit);
            has_more = true;
        }
        if !matches!(cursor, Cursor::After(_)) {
            messages.reverse();
        }
        Ok(HistoryPage { messages, has_more, oldest_seq })
    }
}

/// Raises `seq` to `to`, never lowering it; whether it moved.
fn raise(seq: &mut u64, to: u64) -> bool {
    let raised = to > *seq;
    *seq = (*seq).max(to);
    raised
}

impl MemoryStore {
    /// Whether a message stored at `sent_at` (epoch ms) has expired at `now_ms`.
    fn expired(&self, sent_at: i64, now_ms: i64) -> bool {
        super::expires_at(sent_at, self.retention) <= now_ms / 1000
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn add_room(&self, user: &UserId, room: &RoomId) -> Result<RoomJoin, StoreError> {
        let mut inner = self.write();
        let rooms = inner.rooms.entry(user.clone()).or_default();
        if rooms.contains_key(room) {
            return Ok(RoomJoin::Member { first: false });
        }
        if rooms.len() >= MAX_ROOMS_PER_USER {
            return Ok(RoomJoin::TooManyRooms);
        }
        rooms.insert(room.clone(), 0);
        Ok(RoomJoin::Member { first: true })
    }

    async fn remove_room(&self, user: &UserId, room: &RoomId) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(rooms) = inner.rooms.get_mut(user) {
            rooms.remove(room);
        }
        Ok(())
    }

    async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        Ok(self.read().rooms.get(user).map(|rooms| rooms.keys().cloned().collect()).unwrap_or_default())
    }

    async fn in_room(&self, user: &UserId, room: &RoomId) -> Result<bool, StoreError> {
        Ok(self.read().rooms.get(user).is_some_and(|rooms| rooms.contains_key(room)))
    }

    async fn record_direct(&self, recipient: &UserId, message: &StoredMessage) -> Result<(), StoreError> {
        let mut inner = self.write();
        let sender = &message.sender_id;
        let last = StoredMessage { body: preview(&message.body), ..message.clone() };
        for (owner, other) in [(recipient, sender), (sender, recipient)] {
            let entry = inner.directs.entry(owner.clone()).or_default().entry(other.clone()).or_default();
            if entry.last_seq < message.seq {
                entry.last_seq = message.seq;
                entry.last = Some(last.clone());
            }
            if owner == sender {
                entry.read_seq = entry.read_seq.max(message.seq);
            }
        }
        Ok(())
    }

    async fn mark_read(&self, user: &UserId, conversation: &ConversationRef, seq: u64) -> Result<ReadMark, StoreError> {
        let mut inner = self.write();
        let read_seq = match conversation {
            ConversationRef::User(other) => {
                Some(&mut inner.directs.entry(user.clone()).or_default().entry(other.clone()).or_default().read_seq)
            }
            ConversationRef::Room(room) => inner.rooms.get_mut(user).and_then(|rooms| rooms.get_mut(room)),
        };
        Ok(read_seq.map_or(ReadMark { read_seq: 0, raised: false }, |read_seq| ReadMark {
            raised: raise(read_seq, seq),
            read_seq: *read_seq,
        }))
    }

    async fn mark_peer_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<bool, StoreError> {
        let mut inner = self.write();
        let entry = inner.directs.entry(user.clone()).or_default().entry(peer.clone()).or_default();
        Ok(raise(&mut entry.peer_read_seq, seq))
    }

    async fn sync(
        &self,
        user: &UserId,
        after: Option<&SyncCursor>,
        limit: usize,
        now_ms: i64,
    ) -> Result<SyncPage, StoreError> {
        let inner = self.read();
        let mut entries = Vec::new();
        for (room, read_seq) in inner.rooms.get(user).into_iter().flatten() {
            let log = inner.conversations.get(&Conversation::Room(room.clone()));
            entries.push(ConversationEntry {
                conversation: ConversationRef::Room(room.clone()),
                last_seq: log.map_or(0, |log| log.last_seq),
                read_seq: *read_seq,
                peer_read_seq: 0,
                last: log.and_then(|log| log.last.clone()).filter(|last| !self.expired(last.sent_at, now_ms)),
            });
        }
        for (other, direct) in inner.directs.get(user).into_iter().flatten() {
            let Some(last) = direct.last.clone().filter(|last| !self.expired(last.sent_at, now_ms)) else { continue };
            entries.push(ConversationEntry {
                conversation: ConversationRef::User(other.clone()),
                last_seq: direct.last_seq,
                read_seq: direct.read_seq,
                peer_read_seq: direct.peer_read_seq,
                last: Some(last),
            });
        }
        Ok(page_of(entries, after, limit))
    }
}
