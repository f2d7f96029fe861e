//! The connection store in the cloud: one DynamoDB table keyed by connection, with an index on user.
//!
//! Every operation is a single request: PutItem, DeleteItem (conditional on `connectedAt` for
//! gone connections), GetItem, and one Query on the user index, read page by page. Nothing scans.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::schema::{CONNECTED_AT, CONNECTION_ID, EXPIRES_AT, USER_ID, USER_INDEX};
use super::{Connection, ConnectionStore};
use crate::config;
use crate::error::{ConfigError, StoreError};
use crate::protocol::UserId;

/// Connections in a DynamoDB table laid out as [`super::schema`] says.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    page_size: Option<i32>,
}

impl DynamoDbStore {
    /// A store over `table`, reached with `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), page_size: None }
    }

    /// Reads at most `items` keys per Query page (DynamoDB's own limit is 1 MB a page), e.g. to
    /// exercise pagination in tests.
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// A store over the table named by `TABLE_NAME`. The endpoint honours the SDK's
    /// `AWS_ENDPOINT_URL_DYNAMODB`, for dynalite or DynamoDB Local.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(Client::new(aws), config::required(config::TABLE_NAME)?))
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
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
    Ok(Connection {
        connection_id: connection_id.to_owned(),
        user_id: UserId::parse(user).map_err(|_| malformed(USER_ID))?,
        connected_at: number(CONNECTED_AT)?,
        expires_at: number(EXPIRES_AT)?,
    })
}

#[async_trait]
impl ConnectionStore for DynamoDbStore {
    async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_ID, string(&connection.connection_id))
            .item(USER_ID, string(connection.user_id.as_str()))
            .item(CONNECTED_AT, number(connection.connected_at))
            .item(EXPIRES_AT, number(connection.expires_at))
            .send()
            .await
            .map_err(StoreError::dynamodb("PutItem"))?;
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, string(connection_id))
            .send()
            .await
            .map_err(StoreError::dynamodb("DeleteItem"))?;
        Ok(())
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
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(error.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) =>
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

    async fn connections_of(&self, user_id: &UserId) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_values(":user", string(user_id.as_str()))
            .set_limit(self.page_size)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::dynamodb("Query"))?;
            ids.extend(
                page.items()
                    .iter()
                    .filter_map(|item| item.get(CONNECTION_ID).and_then(|value| value.as_s().ok()).cloned()),
            );
        }
        Ok(ids)
    }
}
