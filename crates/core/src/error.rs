//! Typed errors of the core crate, and a formatter that logs an error with its whole cause chain.

use std::error::Error;
use std::fmt;

/// Configuration that is missing or unusable at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required environment variable is unset or empty.
    #[error("environment variable {0} is not set; set it in template.yaml or your shell before starting")]
    Missing(&'static str),
    /// An environment variable holds a value the function cannot use.
    #[error("environment variable {name} is {value:?}; {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// A connection store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB rejected the call or could not be reached.
    #[error(
        "dynamodb {operation} failed; check that the table exists, that its endpoint is reachable and that the function may call {operation}"
    )]
    DynamoDb {
        /// The DynamoDB API operation, e.g. `PutItem`.
        operation: &'static str,
        /// What the SDK reported.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// A batch left items unprocessed after its retries (throttling).
    #[error("dynamodb {operation} left {left} items unprocessed after retries; the table is being throttled")]
    Unprocessed {
        /// The DynamoDB API operation.
        operation: &'static str,
        /// How many items were left.
        left: usize,
    },
    /// A room operation, on a store not told the memberships table.
    #[error("this function has no memberships table; set MEMBERSHIPS_TABLE_NAME in template.yaml")]
    NoMembershipsTable,
    /// A user operation, on a store not told the users table.
    #[error("this function has no users table; set USERS_TABLE_NAME in template.yaml")]
    NoUsersTable,
    /// A user's rooms or connections kept changing while their room subscriptions were being
    /// written.
    #[error("a user's rooms or connections changed in each of {rounds} rounds of settling their subscriptions")]
    Unsettled {
        /// How many rounds were made.
        rounds: usize,
    },
    /// A message operation, on a store not told the messages table.
    #[error("this function has no messages table; set MESSAGES_TABLE_NAME in template.yaml")]
    NoMessagesTable,
    /// Every try to store a message found its seq taken by another sender. (The text leaves the
    /// conversation's key out: it names users, and errors are logged.)
    #[error(
        "{attempts} tries to store a message all found their seq taken; too many senders at once to one conversation"
    )]
    Contended {
        /// The conversation's key.
        conversation: String,
        /// How many tries were made.
        attempts: usize,
    },
    /// A stored message lacks an attribute or holds one of the wrong type. (The text leaves the
    /// conversation's key out: it names users, and errors are logged.)
    #[error("a stored message has no valid {attribute} attribute; delete it or fix the writer")]
    MalformedMessage {
        /// The conversation's key.
        conversation: String,
        /// The attribute that is missing or malformed.
        attribute: &'static str,
    },
    /// A stored record lacks an attribute or holds one of the wrong type.
    #[error("the record of connection {connection_id} has no valid {attribute} attribute; delete it or fix the writer")]
    Malformed {
        /// The record's key.
        connection_id: String,
        /// The attribute that is missing or malformed.
        attribute: &'static str,
    },
}

impl StoreError {
    pub(crate) fn dynamodb<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        aws_sdk_dynamodb::Error: From<E>,
    {
        move |error| StoreError::DynamoDb { operation, source: Box::new(error.into()) }
    }
}

/// Posting to a connection through the @connections API failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The connection is closed or never existed (410 GoneException): its record is stale.
    #[error("connection {0} is gone")]
    Gone(String),
    /// The payload is over API Gateway's 128 KB (413 PayloadTooLargeException).
    #[error("the payload is over API Gateway's 128 KB limit")]
    PayloadTooLarge,
    /// Any other failure: forbidden, throttled past the SDK's retries, unreachable.
    #[error(
        "posting to connection {connection_id} failed; check the management endpoint and the execute-api:ManageConnections permission"
    )]
    Api {
        /// The connection that was posted to.
        connection_id: String,
        /// What the SDK reported.
        #[source]
        source: Box<aws_sdk_apigatewaymanagement::Error>,
    },
}

impl PostError {
    /// Whether API Gateway answered 429 `LimitExceededException`: the account's throttle, or the
    /// client's buffer is full ("the WebSocket client side buffer is full").
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Api { source, .. } if matches!(**source, aws_sdk_apigatewaymanagement::Error::LimitExceededException(_)))
    }
}

/// Displays an error followed by each of its sources: `outer: middle: root`.
///
/// Logs get the whole chain; clients get only a stable code and a sentence.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
