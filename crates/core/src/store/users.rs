//! What each user owns: the rooms they joined and their conversations with read state, listed
//! by `sync` most recently active first. (Their open connections are [`super::ConnectionStore`]'s.)

use async_trait::async_trait;

use super::StoredMessage;
use crate::error::StoreError;
use crate::limits::PREVIEW_CHARS;
use crate::protocol::{ConversationRef, RoomId, UserId};

/// One of a user's conversations, as `sync` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationEntry {
    /// The other user, or the room.
    pub conversation: ConversationRef,
    /// The conversation's latest seq (0 before its first message).
    pub last_seq: u64,
    /// The latest seq the user has read.
    pub read_seq: u64,
    /// In a direct conversation, the latest seq the other user has read (0 in a room).
    pub peer_read_seq: u64,
    /// The last message, its body cut to [`PREVIEW_CHARS`] characters.
    pub last: Option<StoredMessage>,
}

impl ConversationEntry {
    /// Where the entry sorts: the last message's time, then its key.
    pub fn position(&self) -> SyncCursor {
        SyncCursor::new(self.last.as_ref().map_or(0, |last| last.sent_at), &entry_key(&self.conversation))
    }
}

/// The sort key of a user's entry for a conversation: `d#<userId>` or `r#<roomId>`.
pub fn entry_key(conversation: &ConversationRef) -> String {
    match conversation {
        ConversationRef::User(user) => format!("d#{user}"),
        ConversationRef::Room(room) => format!("r#{room}"),
    }
}

/// The conversation an entry's sort key names, if it names one.
pub fn conversation_of(entry: &str) -> Option<ConversationRef> {
    match entry.split_once('#')? {
        ("d", user) => UserId::parse(user).ok().map(ConversationRef::User),
        ("r", room) => RoomId::parse(room).ok().map(ConversationRef::Room),
        _ => None,
    }
}

/// A body cut to [`PREVIEW_CHARS`] characters, for `sync`.
pub fn preview(body: &str) -> String {
    body.chars().take(PREVIEW_CHARS).collect()
}

/// A position in a user's conversations, most recently active first: the last message's time
/// (15 digits of epoch ms), `#`, and the entry's key. Positions are unique and totally ordered,
/// so a cursor keeps its meaning while entries move: a conversation that becomes active after a
/// page was read moves above the cursor (its message is delivered live), and none is listed
/// twice or skipped among those that stay put.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncCursor(String);

impl SyncCursor {
    /// The position of an entry whose last message was stored at `active_at` (epoch ms).
    pub fn new(active_at: i64, entry: &str) -> Self {
        Self(format!("{:015}#{entry}", active_at.max(0)))
    }

    /// A cursor a client sent back, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let (time, entry) = text.split_once('#')?;
        let valid =
            time.len() == 15 && time.bytes().all(|byte| byte.is_ascii_digit()) && conversation_of(entry).is_some();
        valid.then(|| Self(text.to_owned()))
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of `sync`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPage {
    /// Most recently active first.
    pub conversations: Vec<ConversationEntry>,
    /// Where the next page starts, if there is one: the last entry's position.
    pub next: Option<SyncCursor>,
}

/// What a [`UserStore::mark_read`] left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMark {
    /// The user's `readSeq` in the conversation now.
    pub read_seq: u64,
    /// Whether this call raised it (a read of what was read already changes nothing).
    pub raised: bool,
}

/// What became of a user's `joinRoom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomJoin {
    /// The user is a member now; `first` when they were not before.
    Member {
        /// Whether this join made them one.
        first: bool,
    },
    /// The user is already in [`crate::limits::MAX_ROOMS_PER_USER`] other rooms.
    TooManyRooms,
}

/// A user's rooms and conversations. Every read is strongly consistent.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Records that the user joined a room, at most
    /// [`MAX_ROOMS_PER_USER`](crate::limits::MAX_ROOMS_PER_USER) at once. Joining again
    /// changes nothing.
    async fn add_room(&self, user: &UserId, room: &RoomId) -> Result<RoomJoin, StoreError>;

    /// Records that the user left a room (their read state in it goes too). Leaving a room one
    /// is not in succeeds.
    async fn remove_room(&self, user: &UserId, room: &RoomId) -> Result<(), StoreError>;

    /// The rooms the user has joined, in no particular order.
    async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError>;

    /// Whether the user has joined the room.
    async fn in_room(&self, user: &UserId, room: &RoomId) -> Result<bool, StoreError>;

    /// Records a stored direct message on both sides' entries: the conversation's latest seq,
    /// its last message and activity; the sender has read it. An entry already past the message
    /// (a later one recorded first) keeps its newer state.
    async fn record_direct(&self, recipient: &UserId, message: &StoredMessage) -> Result<(), StoreError>;

    /// Raises the user's `readSeq` in a conversation to `seq`, never lowering it; the resulting
    /// `readSeq`, and whether this call raised it. The caller clamps `seq` to the conversation's
    /// latest, and checks room membership (a room's read state lives on the membership: without
    /// one, nothing is kept and the answer is 0).
    async fn mark_read(&self, user: &UserId, conversation: &ConversationRef, seq: u64) -> Result<ReadMark, StoreError>;

    /// Raises, on the user's entry for their direct conversation with `peer`, the seq `peer`
    /// has read, never lowering it; whether this call raised it.
    async fn mark_peer_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<bool, StoreError>;

    /// One page of the user's conversations (direct ones sent or received, rooms joined), most
    /// recently active first, starting after `after`; at most `limit`. Direct conversations
    /// whose messages have all expired (at `now_ms`) are left out.
    async fn sync(
        &self,
        user: &UserId,
        after: Option<&SyncCursor>,
        limit: usize,
        now_ms: i64,
    ) -> Result<SyncPage, StoreError>;
}

/// Sorts candidate entries most recently active first, keeps those after `after`, and cuts
/// the page at `limit`: what both stores' `sync` end with.
pub(crate) fn page_of(mut entries: Vec<ConversationEntry>, after: Option<&SyncCursor>, limit: usize) -> SyncPage {
    let mut keyed: Vec<(SyncCursor, ConversationEntry)> = entries
        .drain(..)
        .map(|entry| (entry.position(), entry))
        .filter(|(position, _)| after.is_none_or(|after| position < after))
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0));
    let next = (keyed.len() > limit).then(|| keyed[limit - 1].0.clone());
    keyed.truncate(limit);
    SyncPage { conversations: keyed.into_iter().map(|(_, entry)| entry).collect(), next }
}
