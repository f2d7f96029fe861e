//! Stored messages: every message of a conversation, numbered 1, 2, 3, … by `seq`, kept for the
//! retention period and read back a page at a time.
//!
//! How `seq` stays consecutive with no gap and no repeat, under any number of concurrent senders
//! and a crash at any step: a message *is* its slot. Appending reads the conversation's latest
//! seq, then writes the message at the next one on the condition that the slot is empty; a
//! sender that loses the race reads again and takes the slot after. Nothing is reserved before
//! the message is written, so a crash leaves either the whole message or nothing. A small head
//! record (seq 0), raised after each write, remembers the latest seq once every message has
//! expired, so numbering never restarts.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::protocol::{RoomId, UserId};

/// A conversation: direct between two users (named, from each side, by the other user's id; a
/// user may message themself), or a room.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conversation {
    /// Between two users, held in order so that both sides name the same conversation.
    Direct(UserId, UserId),
    /// A room.
    Room(RoomId),
}

impl Conversation {
    /// The direct conversation between `a` and `b`, whichever side names it.
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        if a <= b { Self::Direct(a.clone(), b.clone()) } else { Self::Direct(b.clone(), a.clone()) }
    }

    /// Its key in the store: `d#alice#bob` or `r#lobby` (ids never hold `#`).
    pub fn key(&self) -> String {
        match self {
            Self::Direct(a, b) => format!("d#{a}#{b}"),
            Self::Room(room) => format!("r#{room}"),
        }
    }
}

/// A message as stored and as history returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its position in its conversation, from 1.
    pub seq: u64,
    /// Who sent it.
    pub sender_id: UserId,
    /// The text, unchanged.
    pub body: String,
    /// Server time it was stored, epoch milliseconds.
    pub sent_at: i64,
}

/// Where a page of history starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The newest messages.
    Newest,
    /// Messages older than this seq (exclusive).
    Before(u64),
    /// Messages newer than this seq (exclusive).
    After(u64),
}

/// One page of a conversation's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// In ascending `seq`, contiguous.
    pub messages: Vec<StoredMessage>,
    /// Whether more lie in the cursor's direction: older for [`Cursor::Newest`] and
    /// [`Cursor::Before`], newer for [`Cursor::After`].
    pub has_more: bool,
    /// The oldest retained seq; every seq below it has expired. With nothing retained, the seq
    /// the next message will get.
    pub oldest_seq: u64,
}

/// What became of an [`MessageStore::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, at the conversation's next seq.
    Stored(StoredMessage),
    /// A repeat of a request already stored (same sender, conversation, `clientRequestId` and
    /// body, within 24 hours): nothing new was stored; this is the first one.
    Repeat(StoredMessage),
    /// The `clientRequestId` was used, within 24 hours, for a different body.
    DifferentBody,
    /// The first request with this `clientRequestId` is still being stored by another
    /// invocation; ask again in a moment.
    InProgress,
    /// A room message from a user who is not a member of the room (no room entry): nothing was
    /// stored.
    NotInRoom,
}

/// The bytes of messages a page of history holds at most, as [`page_size`] counts them: what
/// fits API Gateway's 128 KB frame with room for the answer's other fields. Both stores stop
/// reading there, so a page of large messages reads what it returns.
pub const HISTORY_PAGE_BYTES: usize = crate::limits::MAX_MESSAGE_BYTES - 1024;

/// A message's share of a history frame beyond its body and sender: its field names, seq and
/// time, the JSON around them.
pub const MESSAGE_FRAME_BYTES: usize = 96;

/// How many of the messages before it a stored message keeps the page sizes of, so that a page
/// of history asks for exactly the messages that fit.
pub const SIZES_KEPT: usize = 50;

/// What a message takes of a history page ([`HISTORY_PAGE_BYTES`]): its body and sender, and
/// the frame around them.
pub fn page_size(message: &StoredMessage) -> usize {
    message.body.len() + message.sender_id.as_str().len() + MESSAGE_FRAME_BYTES
}

/// How long a `clientRequestId` identifies one message of its sender in one conversation.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// A request with a `clientRequestId`, as an append carries it.
#[derive(Clone, Copy, Debug)]
pub struct Idempotency<'a> {
    /// The client's id for the request.
    pub client_request_id: &'a str,
}

/// Where messages are kept.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message as its conversation's next, sent at `sent_at` (epoch ms) and kept for
    /// the store's retention. With `idempotency`, a request already stored is not stored again
    /// ([`Appended::Repeat`]), within [`IDEMPOTENCY_WINDOW`]. A room's messages come from its
    /// members only: the sender's room entry is read beside the conversation's latest seq, and
    /// without one nothing is stored ([`Appended::NotInRoom`]).
    async fn append(
        &self,
        conversation: &Conversation,
        sender: &UserId,
        body: &str,
        sent_at: i64,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Appended, StoreError>;

    /// Records a stored message (or a repeat's first) as its conversation's latest, where `sync`
    /// reads a room's latest seq and numbering goes on once every message has expired: after
    /// the acknowledgement, beside the delivery. A head already past it stays; a failure is
    /// logged, and the next message records again.
    async fn record_latest(&self, conversation: &Conversation, message: &StoredMessage);

    /// The conversation's latest seq (0 before its first message), strongly consistent.
    async fn latest_seq(&self, conversation: &Conversation) -> Result<u64, StoreError>;

    /// Up to `limit` messages from `cursor`, in ascending seq, strongly consistent, within
    /// [`HISTORY_PAGE_BYTES`] (at least one, if any is retained). Messages whose retention ended
    /// by `now_ms` are never returned, even before TTL deletes them: `after` and `before` count
    /// from the oldest retained message.
    async fn history(
        &self,
        conversation: &Conversation,
        cursor: Cursor,
        limit: usize,
        now_ms: i64,
    ) -> Result<HistoryPage, StoreError>;
}

/// When a message sent at `sent_at` (epoch ms) expires, epoch seconds, after `retention`.
pub fn expires_at(sent_at: i64, retention: std::time::Duration) -> i64 {
    sent_at / 1000 + retention.as_secs() as i64
}

/// How long a sender that lost the race for a seq waits before trying again: random, up to
/// 5 ms more for each lost try, at most 100 ms (full jitter, as AWS's guidance on retries under
/// contention advises).
pub(crate) fn contention_pause(lost: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_us = (lost as u64 * 5_000).clamp(1_000, 100_000);
    std::time::Duration::from_micros(RandomState::new().hash_one(lost) % ceiling_us)
}

/// The SHA-256 of a body, as hex: what a `clientRequestId`'s claim remembers of its message, to
/// tell a repeat from a different message while the first is being stored. Collision-resistant:
/// the sender chooses both bodies, and a 64-bit hash can be matched by a birthday search.
pub(crate) fn body_hash(body: &str) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(body.as_bytes()).iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// The 64-bit FNV-1a of a body, as hex: what claims carried before [`body_hash`], and still
/// carry for the previous version to read. Two bodies that share it can be found with about
/// 2^32 hashes, so it decides nothing on a claim that has a SHA-256.
pub(crate) fn legacy_body_hash(body: &str) -> String {
    let hash = body
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

/// Whether a claim was made for `body`: by its SHA-256 when it has one, else (a claim the
/// previous version wrote, which lives for [`IDEMPOTENCY_WINDOW`]) by its FNV-1a. Only a claim
/// whose message is not stored yet is judged by a hash; a stored message's body is compared
/// itself.
pub(crate) fn claim_matches(sha256: Option<&str>, fnv: &str, body: &str) -> bool {
    match sha256 {
        Some(sha256) => sha256 == body_hash(body),
        None => fnv == legacy_body_hash(body),
    }
}
