//! Subscriptions (the memberships table): an UpdateItem on the connection's record and a
//! PutItem (subscribe), a DeleteItem and an UpdateItem (unsubscribe), and one strongly
//! consistent Query per page of a room's subscribed connections.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::error::StoreError;
use crate::protocol::RoomId;
use crate::store::schema::{CONNECTION_ID, EXPIRES_AT, ROOM_ID, ROOMS};
use crate::store::{MembersPage, Subscribed, SubscriptionStore};

use super::{DynamoDbStore, number, string};

#[async_trait]
impl SubscriptionStore for DynamoDbStore {
    async fn subscribe(&self, connection_id: &str, room: &RoomId) -> Result<Subscribed, StoreError> {
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
                return Ok(Subscribed::UnknownConnection);
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
        Ok(Subscribed::Member)
    }

    async fn unsubscribe(&self, connection_id: &str, room: &RoomId) -> Result<(), StoreError> {
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
