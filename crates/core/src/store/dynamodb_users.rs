//! Users' rooms and conversations in the users table: one partition per user, an entry per
//! joined room (`r#<roomId>`) and per direct conversation (`d#<userId>`), and a local index on
//! direct conversations' activity for `sync`. Rooms' latest seq and last message come from the
//! rooms' heads in the messages table, so a room message writes nothing per member.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};

use super::dynamodb::{number, string};
use super::schema::{
    ACTIVITY, ACTIVITY_INDEX, ENTRY, EXPIRES_AT, LAST_BODY, LAST_SENDER_ID, LAST_SENT_AT, LAST_SEQ, PEER_READ_SEQ,
    READ_SEQ, USER_ID,
};
use super::users::{
    ConversationEntry, ReadMark, RoomJoin, SyncCursor, SyncPage, UserStore, conversation_of, entry_key, page_of,
};
use super::{Conversation, DynamoDbStore, StoredMessage};
use crate::error::StoreError;
use crate::limits::MAX_ROOMS_PER_USER;
use crate::protocol::{ConversationRef, RoomId, UserId};

type Item = HashMap<String, AttributeValue>;

/// The prefix of a joined room's entry in the users table (see [`entry_key`]).
const ROOM_PREFIX: &str = "r#";

/// A number attribute, 0 when absent or not a number.
fn count(item: &Item, attribute: &str) -> u64 {
    item.get(attribute).and_then(|value| value.as_n().ok()).and_then(|text| text.parse().ok()).unwrap_or(0)
}

/// The last message an entry or head records, if it records one and it has not expired.
fn last_message(item: &Item, now_ms: i64, retention: std::time::Duration) -> Option<StoredMessage> {
    let sent_at = item.get(LAST_SENT_AT)?.as_n().ok()?.parse::<i64>().ok()?;
    if super::expires_at(sent_at, retention) <= now_ms / 1000 {
        return None;
    }
    Some(StoredMessage {
        seq: count(item, LAST_SEQ),
        sender_id: UserId::parse(item.get(LAST_SENDER_ID)?.as_s().ok()?).ok()?,
        body: item.get(LAST_BODY)?.as_s().ok()?.clone(),
        sent_at,
    })
}

fn conditional_failed<E>(error: &aws_sdk_dynamodb::error::SdkError<E>, check: impl Fn(&E) -> bool) -> bool {
    error.as_service_error().is_some_and(check)
}

impl DynamoDbStore {
    /// One entry of a user's partition, strongly consistent.
    async fn entry(&self, user: &UserId, entry: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.users()?)
            .key(USER_ID, string(user.as_str()))
            .key(ENTRY, string(entry))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("GetItem"))?;
        Ok(output.item)
    }

    /// The user's room entries, strongly consistent.
    async fn room_entries(&self, user: &UserId) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut pages = self.entries_query(user, ROOM_PREFIX)?.into_paginator().send();
        while let Some(page) = pages.next().await {
            items.extend(page.map_err(StoreError::dynamodb("Query"))?.items.unwrap_or_default());
        }
        Ok(items)
    }

    /// Raises one attribute of an entry to `seq`, never lowering it; whether it did. A room's
    /// entry is its membership, so it must exist; a direct conversation's is created if need be
    /// (a read can arrive before the message's entry is written: the two run side by side).
    async fn raise(&self, user: &UserId, entry: &str, attribute: &str, seq: u64) -> Result<bool, StoreError> {
        let room = entry.starts_with(ROOM_PREFIX);
        let condition = if room {
            "attribute_exists(#entry) AND (attribute_not_exists(#a) OR #a < :seq)"
        } else {
            "attribute_not_exists(#a) OR #a < :seq"
        };
        // A direct conversation's entry made here (a read ahead of the message's record) names
        // the other user, so it expires like one the message made: a retention from now, until
        // the message's record sets its own.
        let update = if room { "SET #a = :seq" } else { "SET #a = :seq, #expires = if_not_exists(#expires, :expires)" };
        let mut request = self
            .client()
            .update_item()
            .table_name(self.users()?)
            .key(USER_ID, string(user.as_str()))
            .key(ENTRY, string(entry))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":seq", number(seq));
        if room {
            request = request.expression_attribute_names("#entry", ENTRY);
        } else {
            let (_, retention) = self.messages()?;
            request = request
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":expires", number(super::expires_at(self.now_ms(), retention)));
        }
        updated(request.send().await)
    }

    /// Writes a direct message into one side's entry: its seq, sender, preview, activity and
    /// expiry, plus `read` (`", #read = :seq"`, or nothing), on `condition`. `None` when the
    /// condition was not met, else whether the write made the entry (it had no message before).
    async fn record_entry(
        &self,
        owner: &UserId,
        entry: &str,
        message: &StoredMessage,
        read: &str,
        condition: &str,
    ) -> Result<Option<bool>, StoreError> {
        let (_, retention) = self.messages()?;
        let update = format!(
            "SET #last = :seq, #sender = :sender, #body = :body, #at = :at, #activity = :activity, #expires = :expires{read}"
        );
        let mut request = self
            .client()
            .update_item()
            .table_name(self.users()?)
            .key(USER_ID, string(owner.as_str()))
            .key(ENTRY, string(entry))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#last", LAST_SEQ)
            .expression_attribute_names("#sender", LAST_SENDER_ID)
            .expression_attribute_names("#body", LAST_BODY)
            .expression_attribute_names("#at", LAST_SENT_AT)
            .expression_attribute_names("#activity", ACTIVITY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":sender", string(message.sender_id.as_str()))
            .expression_attribute_values(":body", string(&super::users::preview(&message.body)))
            .expression_attribute_values(":at", number(message.sent_at))
            .expression_attribute_values(":activity", string(SyncCursor::new(message.sent_at, entry).as_str()))
            .expression_attribute_values(":expires", number(super::expires_at(message.sent_at, retention)));
        if read.contains("#read") || condition.contains("#read") {
            request = request.expression_attribute_names("#read", READ_SEQ);
        }
        match request.return_values(ReturnValue::UpdatedOld).send().await {
            Ok(output) => Ok(Some(output.attributes.is_none_or(|old| !old.contains_key(LAST_SEQ)))),
            Err(error) if conditional_failed(&error, UpdateItemError::is_conditional_check_failed_exception) => {
                Ok(None)
            }
            Err(error) => Err(StoreError::dynamodb("UpdateItem")(error)),
        }
    }
}

/// Whether a conditional UpdateItem wrote (`false`: its condition was not met).
fn updated<T>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if conditional_failed(&error, UpdateItemError::is_conditional_check_failed_exception) => Ok(false),
        Err(error) => Err(StoreError::dynamodb("UpdateItem")(error)),
    }
}

#[async_trait]
impl UserStore for DynamoDbStore {
    async fn add_room(&self, user: &UserId, room: &RoomId) -> Result<RoomJoin, StoreError> {
        let entry = entry_key(&ConversationRef::Room(room.clone()));
        if self.entry(user, &entry).await?.is_some() {
            return Ok(RoomJoin::Member { first: false });
        }
        // A soft limit: two joins racing past it can both succeed.
        let output = self
            .entries_query(user, ROOM_PREFIX)?
            .select(Select::Count)
            .send()
            .await
            .map_err(StoreError::dynamodb("Query"))?;
        if output.count as usize >= MAX_ROOMS_PER_USER {
            return Ok(RoomJoin::TooManyRooms);
        }
        let result = self
            .client()
            .put_item()
            .table_name(self.users()?)
            .item(USER_ID, string(user.as_str()))
            .item(ENTRY, string(&entry))
            .item(READ_SEQ, number(0))
            .condition_expression("attribute_not_exists(#entry)")
            .expression_attribute_names("#entry", ENTRY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(RoomJoin::Member { first: true }),
            // Another tab joined it first.
            Err(error) if conditional_failed(&error, PutItemError::is_conditional_check_failed_exception) => {
                Ok(RoomJoin::Member { first: false })
            }
            Err(error) => Err(StoreError::dynamodb("PutItem")(error)),
        }
    }

    async fn remove_room(&self, user: &UserId, room: &RoomId) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(self.users()?)
            .key(USER_ID, string(user.as_str()))
            .key(ENTRY, string(&entry_key(&ConversationRef::Room(room.clone()))))
            .send()
            .await
            .map_err(StoreError::dynamodb("DeleteItem"))?;
        Ok(())
    }

    async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        let entries = self.room_entries(user).await?;
        Ok(entries
            .iter()
            .filter_map(|item| item.get(ENTRY).and_then(|value| value.as_s().ok()))
            .filter_map(|entry| match conversation_of(entry) {
                Some(ConversationRef::Room(room)) => Some(room),
                _ => None,
            })
            .collect())
    }

    async fn in_room(&self, user: &UserId, room: &RoomId) -> Result<bool, StoreError> {
        Ok(self.entry(user, &entry_key(&ConversationRef::Room(room.clone()))).await?.is_some())
    }

    async fn record_direct(&self, recipient: &UserId, message: &StoredMessage) -> Result<(), StoreError> {
        let sender = &message.sender_id;
        let sides: &[(&UserId, &UserId)] =
            if recipient == sender { &[(sender, sender)] } else { &[(recipient, sender), (sender, recipient)] };
        for &(owner, other) in sides {
            let entry = entry_key(&ConversationRef::User(other.clone()));
            let later = "attribute_not_exists(#last) OR #last < :seq";
            if owner != sender {
                let written = self.record_entry(owner, &entry, message, "", later).await?;
                if written == Some(true) && message.seq > 1 {
                    // An entry made anew past seq 1: TTL took the old one with its expired
                    // messages (or an earlier record failed). What has expired cannot be read,
                    // so the reader starts before the oldest message retained.
                    let (table, _) = self.messages()?;
                    let key = Conversation::direct(owner, other).key();
                    let oldest = self.oldest_retained(table, &key, message.sent_at / 1000).await?;
                    if oldest > 1 {
                        self.raise(owner, &entry, READ_SEQ, oldest - 1).await?;
                    }
                }
                continue;
            }
            // The sender has read their own message: in the same write while no read state is
            // ahead of it.
            let unread = format!("({later}) AND (attribute_not_exists(#read) OR #read < :seq)");
            if self.record_entry(owner, &entry, message, ", #read = :seq", &unread).await?.is_none() {
                // A later message was recorded first (its state stands), or a read ran ahead of
                // this write (another tab marked the message read as it arrived): the record
                // goes in if it is the latest, and the read state is only raised.
                self.record_entry(owner, &entry, message, "", later).await?;
                self.raise(owner, &entry, READ_SEQ, message.seq).await?;
            }
        }
        Ok(())
    }

    async fn mark_read(&self, user: &UserId, conversation: &ConversationRef, seq: u64) -> Result<ReadMark, StoreError> {
        let entry = entry_key(conversation);
        if seq > 0 && self.raise(user, &entry, READ_SEQ, seq).await? {
            return Ok(ReadMark { read_seq: seq, raised: true });
        }
        let read_seq = self.entry(user, &entry).await?.map_or(0, |item| count(&item, READ_SEQ));
        Ok(ReadMark { read_seq, raised: false })
    }

    async fn mark_peer_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<bool, StoreError> {
        self.raise(user, &entry_key(&ConversationRef::User(peer.clone())), PEER_READ_SEQ, seq).await
    }

    async fn sync(
        &self,
        user: &UserId,
        after: Option<&SyncCursor>,
        limit: usize,
        now_ms: i64,
    ) -> Result<SyncPage, StoreError> {
        let (_, retention) = self.messages()?;
        let rooms = self.room_entries(user).await?;
        let room_ids: Vec<(RoomId, u64)> = rooms
            .iter()
            .filter_map(|item| {
                let entry = item.get(ENTRY)?.as_s().ok()?;
                match conversation_of(entry)? {
                    ConversationRef::Room(room) => Some((room, count(item, READ_SEQ))),
                    ConversationRef::User(_) => None,
                }
            })
            .collect();
        // Each room's newest message (its text expires with it), a few at a time.
        let latest: Vec<(u64, Option<StoredMessage>)> = {
            use futures::{StreamExt, TryStreamExt};
            let reads: Vec<_> = room_ids.iter().map(|(room, _)| self.room_latest(room, now_ms)).collect();
            futures::stream::iter(reads).buffered(16).try_collect().await?
        };
        let mut entries: Vec<ConversationEntry> = room_ids
            .into_iter()
            .zip(latest)
            .map(|((room, read_seq), (last_seq, last))| ConversationEntry {
                conversation: ConversationRef::Room(room),
                last_seq,
                read_seq,
                peer_read_seq: 0,
                last,
            })
            .collect();
        // Direct conversations from the activity index, newest first, until the page is full
        // (expired ones, which TTL deletes lazily, are skipped).
        let mut wanted = limit + 1;
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client()
                .query()
                .table_name(self.users()?)
                .index_name(ACTIVITY_INDEX)
                .consistent_read(true)
                .scan_index_forward(false)
                .expression_attribute_names("#user", USER_ID)
                .expression_attribute_values(":user", string(user.as_str()))
                .limit(wanted as i32)
                .set_exclusive_start_key(start.take());
            query = match after {
                Some(after) => query
                    .key_condition_expression("#user = :user AND #activity < :after")
                    .expression_attribute_names("#activity", ACTIVITY)
                    .expression_attribute_values(":after", string(after.as_str())),
                None => query.key_condition_expression("#user = :user"),
            };
            let output = query.send().await.map_err(StoreError::dynamodb("Query"))?;
            for item in output.items.unwrap_or_default() {
                let Some(ConversationRef::User(other)) =
                    item.get(ENTRY).and_then(|value| value.as_s().ok()).and_then(|entry| conversation_of(entry))
                else {
                    continue;
                };
                // Expiry follows activity: past the first expired entry, every one has expired.
                let Some(last) = last_message(&item, now_ms, retention) else {
                    wanted = 0;
                    break;
                };
                entries.push(ConversationEntry {
                    conversation: ConversationRef::User(other),
                    last_seq: count(&item, LAST_SEQ),
                    read_seq: count(&item, READ_SEQ),
                    peer_read_seq: count(&item, PEER_READ_SEQ),
                    last: Some(last),
                });
                wanted = wanted.saturating_sub(1);
            }
            match output.last_evaluated_key {
                Some(key) if wanted > 0 => start = Some(key),
                _ => break,
            }
        }
        Ok(page_of(entries, after, limit))
    }
}
