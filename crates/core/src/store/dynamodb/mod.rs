//! The store in the cloud: DynamoDB tables of connections (keyed by connection), memberships
//! (by room and connection), users (by user and entry: their connections, rooms and direct
//! conversations) and messages (by conversation and seq; see [`super::messages`]).
//!
//! Connections: a PutItem of the record and one of the user's `c#` entry; DeleteItems
//! (conditional on `connectedAt` for gone connections); GetItem; and a strongly consistent
//! Query of the user's `c#` entries, filtered on `expiresAt` (TTL deletes late). A connection's record lists its rooms, so deleting it
//! returns them (`ALL_OLD`) and their memberships are deleted in batches of 25. Memberships: an
//! UpdateItem on the record and a PutItem (join), a DeleteItem and an UpdateItem (leave), and one
//! strongly consistent Query per page of members. Users: GetItem, PutItem, UpdateItem, DeleteItem
//! and Query on their partition; `sync` also reads rooms' heads with BatchGetItem. Messages: a
//! conditional PutItem per message, its conversation's head raised with an UpdateItem, and a
//! `clientRequestId`'s claim (a conditional PutItem beside the latest seq's Query). Every read is
//! strongly consistent; nothing scans.

mod claims;
mod connections;
mod messages;
mod subscriptions;

pub use messages::HeadsStripped;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::schema::{CONVERSATION, SEQ};
use crate::config;
use crate::error::{ConfigError, StoreError};

/// Connections in a DynamoDB table laid out as [`super::schema`] says.
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    memberships: Option<String>,
    users: Option<String>,
    messages: Option<(String, std::time::Duration)>,
    page_size: Option<i32>,
    clock: Clock,
}

/// The functions' clock, epoch milliseconds.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .field("memberships", &self.memberships)
            .field("users", &self.users)
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl DynamoDbStore {
    /// A store over `table`, reached with `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let clock: Clock = std::sync::Arc::new(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64
        });
        Self { client, table: table.into(), memberships: None, users: None, messages: None, page_size: None, clock }
    }

    /// Reads the time from `clock` (epoch ms) rather than the system's: for tests that play out
    /// a function failing and its client retrying later.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The functions' clock, epoch ms.
    pub(super) fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Keeps users' connections, rooms and conversations in `table`.
    pub fn with_users(mut self, table: impl Into<String>) -> Self {
        self.users = Some(table.into());
        self
    }

    pub(super) fn users(&self) -> Result<&str, StoreError> {
        self.users.as_deref().ok_or(StoreError::NoUsersTable)
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Keeps messages in `table`, each for `retention`.
    pub fn with_messages(mut self, table: impl Into<String>, retention: std::time::Duration) -> Self {
        self.messages = Some((table.into(), retention));
        self
    }

    pub(super) fn messages(&self) -> Result<(&str, std::time::Duration), StoreError> {
        self.messages.as_ref().map(|(table, retention)| (table.as_str(), *retention)).ok_or(StoreError::NoMessagesTable)
    }

    /// Keeps room memberships in `table`.
    pub fn with_memberships(mut self, table: impl Into<String>) -> Self {
        self.memberships = Some(table.into());
        self
    }

    /// Reads at most `items` keys per Query page (DynamoDB's own limit is 1 MB a page), e.g. to
    /// exercise pagination in tests.
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// A store over the tables named by `TABLE_NAME`, `MEMBERSHIPS_TABLE_NAME`,
    /// `USERS_TABLE_NAME` and `MESSAGES_TABLE_NAME`, keeping messages for
    /// `MESSAGE_RETENTION_DAYS`. The endpoint honours the SDK's `AWS_ENDPOINT_URL_DYNAMODB`, for
    /// dynalite or DynamoDB Local. (IAM, not configuration, limits what each function may do.)
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming the first variable that is unset, at start-up rather
    /// than at the first call; [`ConfigError::Invalid`] when the retention is not a number of
    /// days.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let vars = config::Vars::env();
        Ok(Self::new(Client::new(aws), vars.required(config::TABLE_NAME)?)
            .with_memberships(vars.required(config::MEMBERSHIPS_TABLE_NAME)?)
            .with_users(vars.required(config::USERS_TABLE_NAME)?)
            .with_messages(vars.required(config::MESSAGES_TABLE_NAME)?, vars.message_retention()?))
    }

    fn memberships(&self) -> Result<&str, StoreError> {
        self.memberships.as_deref().ok_or(StoreError::NoMembershipsTable)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

pub(super) fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The key of a conversation's item at seq 0: its head, or (under a claim's key) a claim.
pub(super) fn seq_zero(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(CONVERSATION.to_owned(), string(key)), (SEQ.to_owned(), number(0))])
}

/// A DynamoDB number. Seqs are `u64` and times `i64`: both are written as they are, never cast
/// to the other (a seq past 2^63 cast to `i64` turns negative and reads the head item).
pub(super) fn number(value: impl Into<i128>) -> AttributeValue {
    AttributeValue::N(value.into().to_string())
}
