//! What the chat remembers: connections, room memberships, messages and each user's rooms and
//! conversations, each behind a trait with a DynamoDB and an in-memory implementation.

mod dynamodb;
mod dynamodb_users;
mod memory;
mod messages;
pub mod subscriptions;
mod users;

use async_trait::async_trait;

pub use dynamodb::{Clock, DynamoDbStore, HeadsStripped};
pub use memory::MemoryStore;
pub use messages::{
    Appended, Conversation, Cursor, HISTORY_PAGE_BYTES, HistoryPage, IDEMPOTENCY_WINDOW, Idempotency, MessageStore,
    StoredMessage, expires_at, page_size,
};
pub use users::{ConversationEntry, ReadMark, RoomJoin, SyncCursor, SyncPage, UserStore};

use std::collections::BTreeSet;

use crate::error::StoreError;
use crate::protocol::{RoomId, UserId};

/// The table's layout, shared by the DynamoDB store, `template.yaml` (checked by a test) and
/// the test helpers that create the table.
pub mod schema {
    /// The connections table's logical id in `template.yaml`.
    pub const CONNECTIONS_TABLE: &str = "ConnectionsTable";
    /// Partition key of the table: API Gateway's connection id.
    pub const CONNECTION_ID: &str = "connectionId";
    /// The connection's user; the partition key of the users table.
    pub const USER_ID: &str = "userId";
    /// When the connection was opened, epoch milliseconds.
    pub const CONNECTED_AT: &str = "connectedAt";
    /// When DynamoDB's TTL may delete the record, epoch seconds.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// On a connection's record: the rooms it is a member of (a string set), so that its
    /// memberships can be removed with it, without a scan.
    pub const ROOMS: &str = "rooms";

    /// The memberships table's logical id in `template.yaml`.
    pub const MEMBERSHIPS_TABLE: &str = "MembershipsTable";
    /// Partition key of the memberships table; its sort key is [`CONNECTION_ID`], and each
    /// membership carries its connection's [`EXPIRES_AT`].
    pub const ROOM_ID: &str = "roomId";

    /// The messages table's logical id in `template.yaml`.
    pub const MESSAGES_TABLE: &str = "MessagesTable";
    /// Partition key of the messages table: the conversation's key (`d#alice#bob`, `r#lobby`).
    pub const CONVERSATION: &str = "conversation";
    /// Sort key of the messages table (a number): the message's position, from 1; 0 is the
    /// conversation's head record (a room's in its partition; a direct conversation's under
    /// `h#` and the SHA-256 of its key, so that it names nobody).
    pub const SEQ: &str = "seq";
    /// On the head record: the latest seq ever stored (with [`LAST_SENT_AT`], all it holds).
    pub const LAST_SEQ: &str = "lastSeq";
    /// On a message: the sender's user id.
    pub const SENDER_ID: &str = "senderId";
    /// On a message: its text.
    pub const BODY: &str = "body";
    /// On a message: when it was stored, epoch milliseconds.
    pub const SENT_AT: &str = "sentAt";
    /// On a message: the history page sizes of the messages before it, newest first, in 32-byte
    /// units rounded up, base 36, comma separated, at most [`crate::store::messages::SIZES_KEPT`] (absent on messages stored
    /// before they were kept).
    pub const PREVIOUS_SIZES: &str = "previousSizes";
    /// On a message sent with a `clientRequestId`: the key of its claim.
    pub const REQUEST_KEY: &str = "requestKey";
    /// On a claim: the 64-bit FNV-1a of the body it was made for, as hex. The previous version
    /// compares only this, so claims carry it for as long as that version may run beside this
    /// one (a deployment, a rollback); this version trusts it only on claims without
    /// [`BODY_SHA256`], which the previous version wrote.
    pub const BODY_HASH: &str = "bodyHash";
    /// On a claim: the SHA-256 of the body it was made for, as hex.
    pub const BODY_SHA256: &str = "bodySha256";
    /// On a claim: when it was made (or taken over), epoch milliseconds, on the functions'
    /// clock (the previous version wrote API Gateway's receive time).
    pub const CLAIMED_AT: &str = "claimedAt";
    /// On a claim: when API Gateway received the request that holds it, epoch milliseconds (its
    /// message's `sentAt`).
    pub const RECEIVED_AT: &str = "receivedAt";
    /// On a claim the previous version completed, once its message was stored: the message's
    /// seq.
    pub const MESSAGE_SEQ: &str = "messageSeq";
    /// On a direct conversation's entry: the last message's sender (heads the previous version
    /// raised held it too, until raised again).
    pub const LAST_SENDER_ID: &str = "lastSenderId";
    /// On a direct conversation's entry (and the previous version's heads): the last message's
    /// text, cut to
    /// [`crate::limits::PREVIEW_CHARS`].
    pub const LAST_BODY: &str = "lastBody";
    /// On a head record and a direct conversation's entry: when the last message was stored.
    pub const LAST_SENT_AT: &str = "lastSentAt";

    /// The users table's logical id in `template.yaml`.
    pub const USERS_TABLE: &str = "UsersTable";
    /// Sort key of the users table: `c#<connectionId>` for an open connection, `r#<roomId>`
    /// for a joined room, `d#<userId>` for a direct conversation.
    pub const ENTRY: &str = "entry";
    /// On a direct conversation's entry: the sort key of [`ACTIVITY_INDEX`], the last
    /// message's time (15 digits of epoch ms) then `#` and the entry.
    pub const ACTIVITY: &str = "activity";
    /// Local secondary index of the users table on [`ACTIVITY`], projecting everything.
    pub const ACTIVITY_INDEX: &str = "activity-index";
    /// On a room's or a direct conversation's entry: the latest seq the user has read.
    pub const READ_SEQ: &str = "readSeq";
    /// On a direct conversation's entry: the latest seq the other user has read.
    pub const PEER_READ_SEQ: &str = "peerReadSeq";
}

/// One open WebSocket connection and the user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's id for the connection.
    pub connection_id: String,
    /// The user, as established at `$connect`.
    pub user_id: UserId,
    /// When the connection was opened, epoch milliseconds.
    pub connected_at: i64,
    /// When the record may be deleted by TTL, epoch seconds.
    pub expires_at: i64,
    /// The rooms it is a member of.
    pub rooms: BTreeSet<RoomId>,
}

impl Connection {
    /// A record for a connection opened at `connected_at` (epoch ms), expiring after
    /// [`crate::limits::RECORD_TTL`].
    pub fn new(connection_id: impl Into<String>, user_id: UserId, connected_at: i64) -> Self {
        let ttl = crate::limits::RECORD_TTL.as_secs() as i64;
        Self {
            connection_id: connection_id.into(),
            user_id,
            connected_at,
            expires_at: connected_at / 1000 + ttl,
            rooms: BTreeSet::new(),
        }
    }
}

/// Stores which user each open connection belongs to.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records a connection, replacing any record with the same id.
    async fn save(&self, connection: &Connection) -> Result<(), StoreError>;

    /// Forgets a connection. Forgetting an unknown connection succeeds.
    async fn remove(&self, connection_id: &str) -> Result<(), StoreError>;

    /// Forgets a connection only if it was opened at or before `opened_by` (epoch ms), in one
    /// conditional step; whether it did. A younger record, or none, is left as it is.
    ///
    /// A post that answers 410 calls this rather than [`ConnectionStore::remove`]: a connection
    /// whose `$connect` has just returned answers 410 until its handshake completes.
    async fn remove_if_opened_by(&self, connection_id: &str, opened_by: i64) -> Result<bool, StoreError>;

    /// The record of one connection, if there is one.
    async fn find(&self, connection_id: &str) -> Result<Option<Connection>, StoreError>;

    /// The ids of every open connection of a user, in no particular order, strongly
    /// consistent: a connection whose [`ConnectionStore::save`] has returned is among them.
    /// Connections whose record expired by `now_ms` (epoch ms) are left out, even before TTL
    /// deletes them (typically within a few days): their `$disconnect` failed.
    async fn connections_of(&self, user_id: &UserId, now_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Forgets the user's entry for a connection found to have no record any more (its
    /// `$disconnect` deleted the record, then failed before the entry), which
    /// [`ConnectionStore::remove_if_opened_by`] cannot reach. Forgetting an entry that is not
    /// there succeeds. API Gateway never reuses a connection id, so a record found missing does
    /// not come back between that read and this call.
    async fn forget_entry(&self, user_id: &UserId, connection_id: &str) -> Result<(), StoreError>;
}

/// What became of [`SubscriptionStore::subscribe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// The connection is subscribed now (or already was).
    Member,
    /// The connection has no record.
    UnknownConnection,
}

/// One page of a room's members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembersPage {
    /// Member connection ids, in id order.
    pub connection_ids: Vec<String>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

/// Which connections are in which rooms: derived from the rooms their users joined
/// ([`UserStore`]) by [`subscriptions`], so that a room message costs one paginated read of its
/// members. A connection's record lists its rooms, so removing the connection
/// ([`ConnectionStore::remove`], [`ConnectionStore::remove_if_opened_by`]) removes its
/// memberships too; each membership expires with its connection's record.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Subscribes a connection to a room's messages. Subscribing again changes nothing.
    async fn subscribe(&self, connection_id: &str, room: &RoomId) -> Result<Subscribed, StoreError>;

    /// Ends a subscription. Ending one that does not exist succeeds.
    async fn unsubscribe(&self, connection_id: &str, room: &RoomId) -> Result<(), StoreError>;

    /// One page of a room's members: the first when `after` is `None`, else the one after it.
    async fn members(&self, room: &RoomId, after: Option<&str>) -> Result<MembersPage, StoreError>;
}

/// Every store in one, as the handlers that touch connections, rooms and messages need them.
pub trait Store: ConnectionStore + SubscriptionStore + MessageStore + UserStore {}

impl<T: ConnectionStore + SubscriptionStore + MessageStore + UserStore> Store for T {}
