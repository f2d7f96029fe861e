//! Connections: a PutItem of the record and one of the user's `c#` entry; DeleteItems
//! (conditional on `connectedAt` for gone connections); GetItem; and a strongly consistent
//! Query of the user's `c#` entries, filtered on `expiresAt` (TTL deletes late). A connection's
//! record lists its rooms, so deleting it returns them (`ALL_OLD`) and their memberships are
//! deleted in batches of 25.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};

use crate::error::StoreError;
use crate::protocol::{RoomId, UserId};
use crate::store::schema::{CONNECTED_AT, CONNECTION_ID, ENTRY, EXPIRES_AT, ROOM_ID, ROOMS, USER_ID};
use crate::store::{Connection, ConnectionStore};

use super::{DynamoDbStore, number, string};

impl DynamoDbStore {
    /// Deletes the memberships of a connection whose record listed `rooms`.
    pub(super) async fn drop_memberships(&self, connection_id: &str, rooms: &[String]) -> Result<(), StoreError> {
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
}

pub(super) fn read_connection(
    item: &HashMap<String, AttributeValue>,
    connection_id: &str,
) -> Result<Connection, StoreError> {
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
pub(super) fn rooms_of(item: Option<&HashMap<String, AttributeValue>>) -> Vec<String> {
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
pub(super) const CONNECTION_PREFIX: &str = "c#";

impl DynamoDbStore {
    /// A strongly consistent Query of `user`'s entries in the users table whose keys start with
    /// `prefix` (`c#` connections, `r#` rooms); `#entry` names the sort key.
    pub(in crate::store) fn entries_query(
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
pub(super) fn connection_entry(connection_id: &str) -> String {
    format!("{CONNECTION_PREFIX}{connection_id}")
}

impl DynamoDbStore {
    /// After a connection's record was deleted (its `ALL_OLD` image): deletes its entry in the
    /// users table and its memberships.
    pub(super) async fn forget(
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
