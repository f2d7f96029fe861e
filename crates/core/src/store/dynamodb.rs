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
//! `clientRequestId`'s claim (a conditional PutItem, completed with an UpdateItem). Every read is
//! strongly consistent; nothing scans.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};

use super::schema::{
    BODY, BODY_HASH, BODY_SHA256, CLAIMED_AT, CONNECTED_AT, CONNECTION_ID, CONVERSATION, ENTRY, EXPIRES_AT, LAST_BODY,
    LAST_SENDER_ID, LAST_SENT_AT, LAST_SEQ, MESSAGE_SEQ, REQUEST_KEY, ROOM_ID, ROOMS, SENDER_ID, SENT_AT, SEQ, USER_ID,
};
use super::{
    Appended, Connection, ConnectionStore, Conversation, Cursor, HistoryPage, IDEMPOTENCY_WINDOW, Idempotency, Joined,
    MembersPage, MessageStore, RoomStore, StoredMessage,
};
use crate::config;
use crate::error::{ConfigError, StoreError};
use crate::limits::APPEND_TIME_LIMIT;
use crate::protocol::{RoomId, UserId};

/// Connections in a DynamoDB table laid out as [`super::schema`] says.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    memberships: Option<String>,
    users: Option<String>,
    messages: Option<(String, std::time::Duration)>,
    page_size: Option<i32>,
}

impl DynamoDbStore {
    /// A store over `table`, reached with `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), memberships: None, users: None, messages: None, page_size: None }
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

    /// Deletes the memberships of a connection whose record listed `rooms`.
    async fn drop_memberships(&self, connection_id: &str, rooms: &[String]) -> Result<(), StoreError> {
        if rooms.is_empty() {
            return Ok(());
        }
        let table = self.memberships()?;
        for chunk in rooms.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|room| {
                    let delete = DeleteRequest::builder()
                        .key(ROOM_ID, string(room))
                        .key(CONNECTION_ID, string(connection_id))
                        .build()
                        .expect("a key");
                    WriteRequest::builder().delete_request(delete).build()
                })
                .collect();
            // Unprocessed items are throttled ones: try them again a few times, then report.
            for _ in 0..4 {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(StoreError::dynamodb("BatchWriteItem"))?;
                requests = output.unprocessed_items.and_then(|mut left| left.remove(table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(StoreError::Unprocessed { operation: "BatchWriteItem", left: requests.len() });
            }
        }
        Ok(())
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

fn read_connection(item: &HashMap<String, AttributeValue>, connection_id: &str) -> Result<Connection, StoreError> {
    let malformed = |attribute| StoreError::Malformed { connection_id: connection_id.to_owned(), attribute };
    let user = item.get(USER_ID).and_then(|value| value.as_s().ok()).ok_or_else(|| malformed(USER_ID))?;
    let number = |attribute| {
        item.get(attribute)
            .and_then(|value| value.as_n().ok())
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| malformed(attribute))
    };
    let rooms = match item.get(ROOMS) {
        None => BTreeSet::new(),
        Some(value) => {
            let names = value.as_ss().map_err(|_| malformed(ROOMS))?;
            names.iter().map(|name| RoomId::parse(name).map_err(|_| malformed(ROOMS))).collect::<Result<_, _>>()?
        }
    };
    Ok(Connection {
        connection_id: connection_id.to_owned(),
        user_id: UserId::parse(user).map_err(|_| malformed(USER_ID))?,
        connected_at: number(CONNECTED_AT)?,
        expires_at: number(EXPIRES_AT)?,
        rooms,
    })
}

/// The rooms an `ALL_OLD` image lists.
fn rooms_of(item: Option<&HashMap<String, AttributeValue>>) -> Vec<String> {
    item.and_then(|item| item.get(ROOMS)).and_then(|value| value.as_ss().ok()).cloned().unwrap_or_default()
}

#[async_trait]
impl ConnectionStore for DynamoDbStore {
    async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
        let rooms: Vec<String> = connection.rooms.iter().map(|room| room.as_str().to_owned()).collect();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_ID, string(&connection.connection_id))
            .item(USER_ID, string(connection.user_id.as_str()))
            .item(CONNECTED_AT, number(connection.connected_at))
            .item(EXPIRES_AT, number(connection.expires_at));
        // DynamoDB has no empty sets: no rooms, no attribute.
        if !rooms.is_empty() {
            request = request.item(ROOMS, AttributeValue::Ss(rooms));
        }
        let previous =
            request.return_values(ReturnValue::AllOld).send().await.map_err(StoreError::dynamodb("PutItem"))?;
        // A record saved again replaces the one that listed its memberships (and, under another
        // user, would leave the first user's entry behind): forget what the old one held.
        if let Some(previous) = previous.attributes.as_ref() {
            self.forget(&connection.connection_id, Some(previous)).await?;
        }
        // The user's own fact, read strongly consistently by `connections_of`.
        self.client
            .put_item()
            .table_name(self.users()?)
            .item(USER_ID, string(connection.user_id.as_str()))
            .item(ENTRY, string(&connection_entry(&connection.connection_id)))
            .item(CONNECTED_AT, number(connection.connected_at))
            .item(EXPIRES_AT, number(connection.expires_at))
            .send()
            .await
            .map_err(StoreError::dynamodb("PutItem"))?;
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::dynamodb("DeleteItem"))?;
        self.forget(connection_id, output.attributes.as_ref()).await
    }

    async fn remove_if_opened_by(&self, connection_id: &str, opened_by: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .condition_expression("#connectedAt <= :openedBy")
            .expression_attribute_names("#connectedAt", CONNECTED_AT)
            .expression_attribute_values(":openedBy", number(opened_by))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.forget(connection_id, output.attributes.as_ref()).await?;
                Ok(true)
            }
            Err(error)
                if error.as_service_error().is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(error) => Err(StoreError::dynamodb("DeleteItem")(error)),
        }
    }

    async fn find(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        // Strongly consistent: a frame can follow its connect within milliseconds.
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("GetItem"))?;
        output.item.as_ref().map(|item| read_connection(item, connection_id)).transpose()
    }

    async fn connections_of(&self, user_id: &UserId, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut pages = self
            .entries_query(user_id, CONNECTION_PREFIX)?
            .projection_expression("#entry")
            // TTL deletes lazily: an entry past its expiry is a connection whose `$disconnect`
            // failed, and must not count toward the user's limit or receive posts.
            .filter_expression("#expiresAt > :now")
            .expression_attribute_names("#expiresAt", EXPIRES_AT)
            .expression_attribute_values(":now", number(now_ms / 1000))
            .set_limit(self.page_size)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::dynamodb("Query"))?;
            ids.extend(page.items().iter().filter_map(|item| {
                let entry = item.get(ENTRY).and_then(|value| value.as_s().ok())?;
                entry.strip_prefix(CONNECTION_PREFIX).map(str::to_owned)
            }));
        }
        Ok(ids)
    }

    async fn forget_entry(&self, user_id: &UserId, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.users()?)
            .key(USER_ID, string(user_id.as_str()))
            .key(ENTRY, string(&connection_entry(connection_id)))
            .send()
            .await
            .map_err(StoreError::dynamodb("DeleteItem"))?;
        Ok(())
    }
}

/// The prefix of a connection's entry in the users table.
const CONNECTION_PREFIX: &str = "c#";

impl DynamoDbStore {
    /// A strongly consistent Query of `user`'s entries in the users table whose keys start with
    /// `prefix` (`c#` connections, `r#` rooms); `#entry` names the sort key.
    pub(super) fn entries_query(
        &self,
        user: &UserId,
        prefix: &str,
    ) -> Result<aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder, StoreError> {
        Ok(self
            .client
            .query()
            .table_name(self.users()?)
            .consistent_read(true)
            .key_condition_expression("#user = :user AND begins_with(#entry, :prefix)")
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_names("#entry", ENTRY)
            .expression_attribute_values(":user", string(user.as_str()))
            .expression_attribute_values(":prefix", string(prefix)))
    }
}

/// A connection's entry in its user's partition of the users table.
fn connection_entry(connection_id: &str) -> String {
    format!("{CONNECTION_PREFIX}{connection_id}")
}

impl DynamoDbStore {
    /// After a connection's record was deleted (its `ALL_OLD` image): deletes its entry in the
    /// users table and its memberships.
    async fn forget(
        &self,
        connection_id: &str,
        record: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<(), StoreError> {
        let Some(record) = record else { return Ok(()) };
        // The memberships first: only the deleted record listed them, while the user's entry
        // expires by itself (and counts toward their connections until it does).
        let dropped = self.drop_memberships(connection_id, &rooms_of(Some(record))).await;
        if let Some(user) = record.get(USER_ID).and_then(|value| value.as_s().ok()) {
            self.client
                .delete_item()
                .table_name(self.users()?)
                .key(USER_ID, string(user))
                .key(ENTRY, string(&connection_entry(connection_id)))
                .send()
                .await
                .map_err(StoreError::dynamodb("DeleteItem"))?;
        }
        dropped
    }
}

#[async_trait]
impl RoomStore for DynamoDbStore {
    async fn join(&self, connection_id: &str, room: &RoomId) -> Result<Joined, StoreError> {
        let table = self.memberships()?;
        // The record first, so that removing the connection always finds the membership.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("ADD #rooms :room")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_names("#rooms", ROOMS)
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.as_str().to_owned()]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let record = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                return Ok(Joined::UnknownConnection);
            }
            Err(error) => return Err(StoreError::dynamodb("UpdateItem")(error)),
        };
        let expires_at = record.get(EXPIRES_AT).cloned().unwrap_or_else(|| number(0));
        self.client
            .put_item()
            .table_name(table)
            .item(ROOM_ID, string(room.as_str()))
            .item(CONNECTION_ID, string(connection_id))
            .item(EXPIRES_AT, expires_at)
            .send()
            .await
            .map_err(StoreError::dynamodb("PutItem"))?;
        Ok(Joined::Member)
    }

    async fn leave(&self, connection_id: &str, room: &RoomId) -> Result<(), StoreError> {
        let table = self.memberships()?;
        self.client
            .delete_item()
            .table_name(table)
            .key(ROOM_ID, string(room.as_str()))
            .key(CONNECTION_ID, string(connection_id))
            .send()
            .await
            .map_err(StoreError::dynamodb("DeleteItem"))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("DELETE #rooms :room")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_names("#rooms", ROOMS)
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.as_str().to_owned()]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The connection is gone already: nothing to update.
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(error) => Err(StoreError::dynamodb("UpdateItem")(error)),
        }
    }

    async fn members(&self, room: &RoomId, after: Option<&str>) -> Result<MembersPage, StoreError> {
        let table = self.memberships()?;
        let mut request = self
            .client
            .query()
            .table_name(table)
            // Strongly consistent: a member that has just joined hears the next message.
            .consistent_read(true)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM_ID)
            .expression_attribute_names("#id", CONNECTION_ID)
            .projection_expression("#id")
            .expression_attribute_values(":room", string(room.as_str()))
            .set_limit(self.page_size);
        if let Some(after) = after {
            request = request
                .exclusive_start_key(ROOM_ID, string(room.as_str()))
                .exclusive_start_key(CONNECTION_ID, string(after));
        }
        let output = request.send().await.map_err(StoreError::dynamodb("Query"))?;
        let connection_ids = output
            .items()
            .iter()
            .filter_map(|item| item.get(CONNECTION_ID).and_then(|value| value.as_s().ok()).cloned())
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get(CONNECTION_ID))
            .and_then(|value| value.as_s().ok())
            .cloned();
        Ok(MembersPage { connection_ids, next })
    }
}

/// Messages: one item per message, keyed by conversation and seq, and the conversation's head
/// (seq 0). Appending is a strongly consistent Query for the newest item, a conditional PutItem
/// of the next seq (tried again on the next one when another sender took it), and an
/// UpdateItem raising the head; history is one or two strongly consistent Queries.
impl DynamoDbStore {
    /// The conversation's latest seq: its newest message's, or the head's once every message
    /// has expired, or 0.
    async fn latest_seq(&self, table: &str, key: &str) -> Result<u64, StoreError> {
        let output = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#c = :c AND #s >= :zero")
            .expression_attribute_names("#c", CONVERSATION)
            .expression_attribute_names("#s", SEQ)
            .expression_attribute_values(":c", string(key))
            .expression_attribute_values(":zero", number(0))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("Query"))?;
        let Some(item) = output.items.unwrap_or_default().into_iter().next() else { return Ok(0) };
        let attribute = |name| read_number(&item, name, key);
        match attribute(SEQ)? {
            0 => Ok(item.get(LAST_SEQ).map_or(Ok(0), |_| attribute(LAST_SEQ))?),
            seq => Ok(seq),
        }
    }

    /// Raises the head to `message`: its seq, and its sender, time and preview for `sync`; a
    /// head already past it stays as it is.
    async fn raise_head(&self, table: &str, key: &str, message: &StoredMessage) {
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(seq_zero(key)))
            .update_expression("SET #last = :seq, #sender = :sender, #body = :body, #at = :at")
            .condition_expression("attribute_not_exists(#last) OR #last < :seq")
            .expression_attribute_names("#last", LAST_SEQ)
            .expression_attribute_names("#sender", LAST_SENDER_ID)
            .expression_attribute_names("#body", LAST_BODY)
            .expression_attribute_names("#at", LAST_SENT_AT)
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":sender", string(message.sender_id.as_str()))
            .expression_attribute_values(":body", string(&super::users::preview(&message.body)))
            .expression_attribute_values(":at", number(message.sent_at))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {}
            // A room's latest seq in `sync`, and numbering once every message has expired, rely
            // on it: the next message, or this one's retry, raises it again.
            Err(error) => tracing::warn!(error = %crate::error::Chain(&error), "could not raise a conversation's head"),
        }
    }
}

#[async_trait]
impl MessageStore for DynamoDbStore {
    async fn append(
        &self,
        conversation: &Conversation,
        sender: &UserId,
        body: &str,
        sent_at: i64,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Appended, StoreError> {
        let (table, retention) = self.messages()?;
        let key = conversation.key();
        let mut latest = self.latest_seq(table, &key).await?;
        let claim = match idempotency {
            None => None,
            Some(request) => {
                let claim = Claim::new(&key, sender, request.client_request_id, body, sent_at);
                match self.claim(table, &claim, latest).await? {
                    Claimed::Ours => Some(claim),
                    Claimed::Answered(Appended::Repeat(first)) => {
                        // The first send may have died before raising the head, which `sync`
                        // reads a room's latest seq from; raising it again changes nothing else.
                        self.raise_head(table, &key, &first).await;
                        return Ok(Appended::Repeat(first));
                    }
                    Claimed::Answered(answer) => return Ok(answer),
                }
            }
        };
        let started = std::time::Instant::now();
        let mut attempt = 0;
        while attempt == 0 || started.elapsed() < APPEND_TIME_LIMIT {
            attempt += 1;
            let seq = latest + 1;
            let mut put = self
                .client
                .put_item()
                .table_name(table)
                .item(CONVERSATION, string(&key))
                .item(SEQ, number(seq))
                .item(SENDER_ID, string(sender.as_str()))
                .item(BODY, string(body))
                .item(SENT_AT, number(sent_at))
                .item(EXPIRES_AT, number(super::expires_at(sent_at, retention)))
                .condition_expression("attribute_not_exists(#s)")
                .expression_attribute_names("#s", SEQ);
            if let Some(claim) = &claim {
                put = put.item(REQUEST_KEY, string(&claim.key));
            }
            match put.send().await {
                Ok(_) => {
                    let message = StoredMessage { seq, sender_id: sender.clone(), body: body.to_owned(), sent_at };
                    self.raise_head(table, &key, &message).await;
                    // Stored: a claim left pending is taken over by the client's retry, which
                    // finds this message, so a failure to complete it is no failure to store.
                    if let Some(claim) = &claim
                        && let Err(error) = self.complete_claim(table, claim, &message).await
                    {
                        tracing::warn!(error = %crate::error::Chain(&error), "a stored message's claim was left pending");
                    }
                    return Ok(Appended::Stored(message));
                }
                // Another sender stored a message at this seq first: after a short random pause
                // (so that senders who lost together do not collide again), take the next one.
                Err(error)
                    if error.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) =>
                {
                    tokio::time::sleep(super::messages::contention_pause(attempt)).await;
                    latest = self.latest_seq(table, &key).await?;
                }
                Err(error) => {
                    if let Some(claim) = &claim {
                        self.release_claim(table, claim).await;
                    }
                    return Err(StoreError::dynamodb("PutItem")(error));
                }
            }
        }
        // Nothing was stored: the claim goes, so that the client's retry is not told to wait.
        if let Some(claim) = &claim {
            self.release_claim(table, claim).await;
        }
        Err(StoreError::Contended { conversation: key, attempts: attempt })
    }

    async fn latest_seq(&self, conversation: &Conversation) -> Result<u64, StoreError> {
        let (table, _) = self.messages()?;
        DynamoDbStore::latest_seq(self, table, &conversation.key()).await
    }

    async fn history(
        &self,
        conversation: &Conversation,
        cursor: Cursor,
        limit: usize,
        now_ms: i64,
    ) -> Result<HistoryPage, StoreError> {
        let (table, _) = self.messages()?;
        let key = conversation.key();
        let now = now_ms / 1000;
        if cursor == Cursor::Before(1) || cursor == Cursor::Before(0) {
            // Nothing comes before the first message.
            return Ok(HistoryPage {
                messages: Vec::new(),
                has_more: false,
                oldest_seq: self.oldest_retained(table, &key, now).await?,
            });
        }
        let (condition, bound, forward) = match cursor {
            Cursor::Newest => ("#c = :c AND #s >= :bound", 1, false),
            Cursor::Before(before) => ("#c = :c AND #s BETWEEN :one AND :bound", before - 1, false),
            Cursor::After(after) => ("#c = :c AND #s > :bound", after, true),
        };
        let mut query = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression(condition)
            .expression_attribute_names("#c", CONVERSATION)
            .expression_attribute_names("#s", SEQ)
            .expression_attribute_values(":c", string(&key))
            .expression_attribute_values(":bound", number(bound))
            .scan_index_forward(forward)
            .limit(limit as i32 + 1)
            .consistent_read(true);
        if condition.contains(":one") {
            query = query.expression_attribute_values(":one", number(1));
        }
        let items = query.send().await.map_err(StoreError::dynamodb("Query"))?.items.unwrap_or_default();
        // TTL deletes lazily, up to days late: expired messages are left out here.
        let mut messages = Vec::with_capacity(items.len());
        for item in &items {
            if read_number(item, EXPIRES_AT, &key)? as i64 > now {
                messages.push(read_message(item, &key)?);
            }
        }
        let has_more = messages.len() > limit;
        messages.truncate(limit);
        if !forward {
            messages.reverse();
        }
        let oldest_seq = self.oldest_retained(table, &key, now).await?;
        Ok(HistoryPage { messages, has_more, oldest_seq })
    }
}

impl DynamoDbStore {
    /// The oldest seq not yet expired, or the next seq when none is retained. Reads past the
    /// expired messages TTL has not deleted yet, a page at a time.
    pub(super) async fn oldest_retained(&self, table: &str, key: &str, now: i64) -> Result<u64, StoreError> {
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#c = :c AND #s >= :one")
                .filter_expression("#e > :now")
                .expression_attribute_names("#c", CONVERSATION)
                .expression_attribute_names("#s", SEQ)
                .expression_attribute_names("#e", EXPIRES_AT)
                .expression_attribute_values(":c", string(key))
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":now", number(now))
                .projection_expression("#s")
                .limit(100)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb("Query"))?;
            if let Some(item) = output.items.unwrap_or_default().first() {
                return read_number(item, SEQ, key);
            }
            match output.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(self.latest_seq(table, key).await? + 1),
            }
        }
    }
}

impl DynamoDbStore {
    /// The message at `seq`, strongly consistent, if it is still stored.
    async fn message_at(&self, table: &str, key: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(CONVERSATION, string(key))
            .key(SEQ, number(seq))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("GetItem"))?;
        output.item.as_ref().map(|item| read_message(item, key)).transpose()
    }
}

fn read_number(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
    conversation: &str,
) -> Result<u64, StoreError> {
    item.get(attribute)
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| StoreError::MalformedMessage { conversation: conversation.to_owned(), attribute })
}

fn read_message(item: &HashMap<String, AttributeValue>, conversation: &str) -> Result<StoredMessage, StoreError> {
    let malformed = |attribute| StoreError::MalformedMessage { conversation: conversation.to_owned(), attribute };
    let text = |attribute| item.get(attribute).and_then(|value| value.as_s().ok()).ok_or_else(|| malformed(attribute));
    Ok(StoredMessage {
        seq: read_number(item, SEQ, conversation)?,
        sender_id: UserId::parse(text(SENDER_ID)?).map_err(|_| malformed(SENDER_ID))?,
        body: text(BODY)?.clone(),
        sent_at: read_number(item, SENT_AT, conversation)? as i64,
    })
}

/// A `clientRequestId`'s claim on its message: an item of the messages table keyed
/// `k#<sender>#<clientRequestId>#<conversation>` (seq 0), holding the body's hash, when it was
/// claimed, the conversation's latest seq then, and once stored the message's seq and time. It
/// expires after [`IDEMPOTENCY_WINDOW`].
///
/// Why a request is stored once: the claim is a conditional put, so of concurrent repeats one
/// claims and the others read its claim; each stored message names its claim (`requestKey`).
/// A claim left pending by a function that failed can be taken over once it is older than the
/// functions' timeout ([`TAKEOVER_AFTER`]); the new owner first looks for a message that names the
/// claim among those stored since it was made, so a failure after the write and before the
/// claim was completed does not store the message twice.
struct Claim<'a> {
    key: String,
    conversation: String,
    sender: UserId,
    body: &'a str,
    sent_at: i64,
}

/// A pending claim older than this belongs to a function that failed (the functions time out
/// after 10 s) and may be taken over.
const TAKEOVER_AFTER: i64 = 15_000;

/// How often, and how long apart, a repeat reads a claim that is still pending before answering
/// [`Appended::InProgress`].
const PENDING_READS: (usize, std::time::Duration) = (5, std::time::Duration::from_millis(200));

enum Claimed {
    /// This invocation stores the message.
    Ours,
    /// The request was already stored, is still being stored, or named another body.
    Answered(Appended),
}

impl<'a> Claim<'a> {
    fn new(conversation: &str, sender: &UserId, client_request_id: &str, body: &'a str, sent_at: i64) -> Self {
        Self {
            key: format!("k#{sender}#{client_request_id}#{conversation}"),
            conversation: conversation.to_owned(),
            sender: sender.clone(),
            body,
            sent_at,
        }
    }

    /// What a repeat answers once the claim's message is found: the message as stored (never
    /// the repeat's text), if the repeat's body is the one stored.
    fn answer(&self, stored: StoredMessage) -> Appended {
        if stored.body == self.body { Appended::Repeat(stored) } else { Appended::DifferentBody }
    }
}

impl DynamoDbStore {
    /// Claims the request for this invocation, or says what became of it.
    async fn claim(&self, table: &str, claim: &Claim<'_>, latest: u64) -> Result<Claimed, StoreError> {
        let lapses = (claim.sent_at + IDEMPOTENCY_WINDOW.as_millis() as i64) / 1000;
        let put = self
            .client
            .put_item()
            .table_name(table)
            .item(CONVERSATION, string(&claim.key))
            .item(SEQ, number(0))
            .item(BODY_SHA256, string(&super::messages::body_hash(claim.body)))
            .item(BODY_HASH, string(&super::messages::legacy_body_hash(claim.body)))
            .item(CLAIMED_AT, number(claim.sent_at))
            .item(LAST_SEQ, number(latest))
            .item(EXPIRES_AT, number(lapses))
            // A claim past its window that TTL has not deleted yet counts as none.
            .condition_expression("attribute_not_exists(#c) OR #e < :now")
            .expression_attribute_names("#c", CONVERSATION)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", number(claim.sent_at / 1000))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claimed::Ours),
            Err(error) if error.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
            }
            Err(error) => return Err(StoreError::dynamodb("PutItem")(error)),
        }
        for read in 0..PENDING_READS.0 {
            let item = self
                .client
                .get_item()
                .table_name(table)
                .set_key(Some(seq_zero(&claim.key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(StoreError::dynamodb("GetItem"))?
                .item
                .unwrap_or_default();
            let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned().unwrap_or_default();
            let at = |name: &'static str| read_number(&item, name, &claim.key);
            let sha256 = item.get(BODY_SHA256).and_then(|value| value.as_s().ok());
            if !super::messages::claim_matches(sha256.map(String::as_str), &text(BODY_HASH), claim.body) {
                return Ok(Claimed::Answered(Appended::DifferentBody));
            }
            if item.contains_key(MESSAGE_SEQ) {
                let (seq, sent_at) = (at(MESSAGE_SEQ)?, at(SENT_AT)? as i64);
                // The message itself, so that a repeat delivers what history holds. Gone only
                // once its retention ended: then the hash that matched is all there is.
                let stored = match self.message_at(table, &claim.conversation, seq).await? {
                    Some(message) => message,
                    None => {
                        StoredMessage { seq, sender_id: claim.sender.clone(), body: claim.body.to_owned(), sent_at }
                    }
                };
                return Ok(Claimed::Answered(claim.answer(stored)));
            }
            let claimed_at = at(CLAIMED_AT)? as i64;
            if claim.sent_at - claimed_at > TAKEOVER_AFTER {
                return self.take_over(table, claim, claimed_at, at(LAST_SEQ)?).await;
            }
            if read + 1 < PENDING_READS.0 {
                tokio::time::sleep(PENDING_READS.1).await;
            }
        }
        Ok(Claimed::Answered(Appended::InProgress))
    }

    /// Takes over a claim a failed function left pending: unless it was stored after all.
    async fn take_over(
        &self,
        table: &str,
        claim: &Claim<'_>,
        claimed_at: i64,
        base: u64,
    ) -> Result<Claimed, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(seq_zero(&claim.key)))
            .update_expression("SET #at = :now")
            .condition_expression("#at = :then AND attribute_not_exists(#m)")
            .expression_attribute_names("#at", CLAIMED_AT)
            .expression_attribute_names("#m", MESSAGE_SEQ)
            .expression_attribute_values(":now", number(claim.sent_at))
            .expression_attribute_values(":then", number(claimed_at))
            .send()
            .await;
        match update {
            Ok(_) => {}
            // Another repeat took it over, or the first completed it, just now.
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                return Ok(Claimed::Answered(Appended::InProgress));
            }
            Err(error) => return Err(StoreError::dynamodb("UpdateItem")(error)),
        }
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#c = :c AND #s > :base")
                .filter_expression("#k = :k")
                .expression_attribute_names("#c", CONVERSATION)
                .expression_attribute_names("#s", SEQ)
                .expression_attribute_names("#k", REQUEST_KEY)
                .expression_attribute_values(":c", string(&claim.conversation))
                .expression_attribute_values(":base", number(base))
                .expression_attribute_values(":k", string(&claim.key))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb("Query"))?;
            if let Some(item) = output.items.unwrap_or_default().first() {
                let message = read_message(item, &claim.conversation)?;
                self.complete_claim(table, claim, &message).await?;
                return Ok(Claimed::Answered(claim.answer(message)));
            }
            match output.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(Claimed::Ours),
            }
        }
    }

    /// Deletes a claim whose message was not stored, if it is still this invocation's; a claim
    /// left behind is taken over after [`TAKEOVER_AFTER`] anyway.
    async fn release_claim(&self, table: &str, claim: &Claim<'_>) {
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(seq_zero(&claim.key)))
            .condition_expression("#at = :mine AND attribute_not_exists(#m)")
            .expression_attribute_names("#at", CLAIMED_AT)
            .expression_attribute_names("#m", MESSAGE_SEQ)
            .expression_attribute_values(":mine", number(claim.sent_at))
            .send()
            .await;
        if let Err(error) = result {
            tracing::info!(error = %crate::error::Chain(&error), "a claim was not released; it is taken over once stale");
        }
    }

    /// Records on the claim which message it stored.
    async fn complete_claim(&self, table: &str, claim: &Claim<'_>, message: &StoredMessage) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(table)
            .set_key(Some(seq_zero(&claim.key)))
            .update_expression("SET #m = :seq, #t = :at")
            .expression_attribute_names("#m", MESSAGE_SEQ)
            .expression_attribute_names("#t", SENT_AT)
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":at", number(message.sent_at))
            .send()
            .await
            .map_err(StoreError::dynamodb("UpdateItem"))?;
        Ok(())
    }
}
