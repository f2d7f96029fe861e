//! Messages: a conditional PutItem per message, its conversation's head raised with an
//! UpdateItem, and history read by strongly consistent Queries.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::StoreError;
use crate::limits::APPEND_TIME_LIMIT;
use crate::protocol::UserId;
use crate::store::schema::{
    BODY, CONVERSATION, EXPIRES_AT, LAST_BODY, LAST_SENDER_ID, LAST_SENT_AT, LAST_SEQ, REQUEST_KEY, SENDER_ID, SENT_AT,
    SEQ,
};
use crate::store::{Appended, Conversation, Cursor, HistoryPage, Idempotency, MessageStore, StoredMessage};

use super::claims::{Claim, Claimed};
use super::{DynamoDbStore, number, seq_zero, string};
use crate::store::UserStore;

/// Messages: one item per message, keyed by conversation and seq, and the conversation's head
/// (seq 0). Appending is a strongly consistent Query for the newest item, a conditional PutItem
/// of the next seq (tried again on the next one when another sender took it), and an
/// UpdateItem raising the head; history is one or two strongly consistent Queries.
impl DynamoDbStore {
    /// The conversation's latest seq: its newest message's, or the head's once every message
    /// has expired, or 0.
    pub(super) async fn latest_seq(&self, table: &str, key: &str) -> Result<u64, StoreError> {
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
    pub(super) async fn raise_head(&self, table: &str, key: &str, message: &StoredMessage) {
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
            .expression_attribute_values(":body", string(&crate::store::users::preview(&message.body)))
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
        // The sender's room entry, beside the latest seq: no call more one after another.
        let member = async {
            match conversation {
                Conversation::Room(room) => self.in_room(sender, room).await,
                Conversation::Direct(..) => Ok(true),
            }
        };
        let (latest, member) = futures::try_join!(self.latest_seq(table, &key), member)?;
        if !member {
            return Ok(Appended::NotInRoom);
        }
        let mut latest = latest;
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
                .item(EXPIRES_AT, number(crate::store::expires_at(sent_at, retention)))
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
                    tokio::time::sleep(crate::store::messages::contention_pause(attempt)).await;
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
    pub(in crate::store) async fn oldest_retained(&self, table: &str, key: &str, now: i64) -> Result<u64, StoreError> {
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
    pub(super) async fn message_at(
        &self,
        table: &str,
        key: &str,
        seq: u64,
    ) -> Result<Option<StoredMessage>, StoreError> {
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

pub(super) fn read_number(
    item: &HashMap<String, AttributeValue>,
    attribute: &'static str,
    conversation: &str,
) -> Result<u64, StoreError> {
    item.get(attribute)
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| StoreError::MalformedMessage { conversation: conversation.to_owned(), attribute })
}

pub(super) fn read_message(
    item: &HashMap<String, AttributeValue>,
    conversation: &str,
) -> Result<StoredMessage, StoreError> {
    let malformed = |attribute| StoreError::MalformedMessage { conversation: conversation.to_owned(), attribute };
    let text = |attribute| item.get(attribute).and_then(|value| value.as_s().ok()).ok_or_else(|| malformed(attribute));
    Ok(StoredMessage {
        seq: read_number(item, SEQ, conversation)?,
        sender_id: UserId::parse(text(SENDER_ID)?).map_err(|_| malformed(SENDER_ID))?,
        body: text(BODY)?.clone(),
        sent_at: read_number(item, SENT_AT, conversation)? as i64,
    })
}
