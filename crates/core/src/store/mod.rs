//! Who is connected: the connection store, one trait with a DynamoDB and an in-memory implementation.

mod dynamodb;
mod memory;

use async_trait::async_trait;

pub use dynamodb::DynamoDbStore;
pub use memory::MemoryStore;

use crate::error::StoreError;
use crate::protocol::UserId;

/// The table's layout, shared by the DynamoDB store, `template.yaml` (checked by a test) and
/// the test helpers that create the table.
pub mod schema {
    /// The connections table's logical id in `template.yaml`.
    pub const CONNECTIONS_TABLE: &str = "ConnectionsTable";
    /// Partition key of the table: API Gateway's connection id.
    pub const CONNECTION_ID: &str = "connectionId";
    /// The connection's user, and the partition key of [`USER_INDEX`].
    pub const USER_ID: &str = "userId";
    /// When the connection was opened, epoch milliseconds.
    pub const CONNECTED_AT: &str = "connectedAt";
    /// When DynamoDB's TTL may delete the record, epoch seconds.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// Global secondary index on [`USER_ID`], projecting keys only.
    pub const USER_INDEX: &str = "userId-index";
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
}

impl Connection {
    /// A record for a connection opened at `connected_at` (epoch ms), expiring after
    /// [`crate::limits::RECORD_TTL`].
    pub fn new(connection_id: impl Into<String>, user_id: UserId, connected_at: i64) -> Self {
        let ttl = crate::limits::RECORD_TTL.as_secs() as i64;
        Self { connection_id: connection_id.into(), user_id, connected_at, expires_at: connected_at / 1000 + ttl }
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

    /// The ids of every open connection of a user, in no particular order.
    async fn connections_of(&self, user_id: &UserId) -> Result<Vec<String>, StoreError>;
}
