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
use crate::store::messages::{HISTORY_PAGE_BYTES, SIZES_KEPT, page_size};
use crate::store::schema::{
    BODY, CONVERSATION, EXPIRES_AT, LAST_BODY, LAST_SENDER_ID, LAST_SENT_AT, LAST_SEQ, PREVIOUS_SIZES, REQUEST_KEY,
    SENDER_ID, SENT_AT, SEQ,
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
        Ok(self.newest(table, key).await?.0)
    }

    /// The conversation's latest seq, and the page sizes ([`page_size`]) of its newest messages,
    /// newest first, at most [`SIZES_KEPT`]: what the next message records as its
    /// [`PREVIOUS_SIZES`].
    pub(super) async fn newest(&self, table: &str, key: &str) -> Result<(u64, Vec<usize>), StoreError> {
        let output = self.newest_item(table, key).await?;
        let Some(item) = output else {
            // No message, and no head in the partition: a direct conversation's head is kept
            // apart (a room's would have been found).
            let head = head_key(key);
            let latest = if head == key { 0 } else { self.head_seq_at(table, &head).await? };
            return Ok((latest, Vec::new()));
        };
        let attribute = |name| read_number(&item, name, key);
        match attribute(SEQ)? {
            // The previous version's head of a direct conversation, in its partition.
            0 => Ok((
                self.head_seq(table, key).await?.max(item.get(LAST_SEQ).map_or(Ok(0), |_| attribute(LAST_SEQ))?),
                Vec::new(),
            )),
            seq => {
                let message = read_message(&item, key)?;
                let mut sizes = vec![page_size(&message)];
                sizes.extend(previous_sizes(&item).into_iter().take(SIZES_KEPT - 1));
                Ok((seq, sizes))
            }
        }
    }

    /// The conversation's newest item, strongly consistent: its newest message, or the previous
    /// version's head (seq 0) once every message is gone, or none.
    pub(super) async fn newest_item(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
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
        Ok(output.items.unwrap_or_default().into_iter().next())
    }

    /// A room's latest seq and its last message, if retained at `now_ms`, for `sync`: from its
    /// newest message (which expires with its text), or its head once every message is gone.
    pub(in crate::store) async fn room_latest(
        &self,
        room: &crate::protocol::RoomId,
        now_ms: i64,
    ) -> Result<(u64, Option<StoredMessage>), StoreError> {
        let (table, _) = self.messages()?;
        let key = Conversation::Room(room.clone()).key();
        let Some(item) = self.newest_item(table, &key).await? else { return Ok((0, None)) };
        match read_number(&item, SEQ, &key)? {
            0 => Ok((item.get(LAST_SEQ).map_or(Ok(0), |_| read_number(&item, LAST_SEQ, &key))?, None)),
            seq => {
                let retained = read_number(&item, EXPIRES_AT, &key)? as i64 > now_ms / 1000;
                let message = read_message(&item, &key)?;
                let preview = StoredMessage { body: crate::store::users::preview(&message.body), ..message };
                Ok((seq, retained.then_some(preview)))
            }
        }
    }

    /// Raises the head to `message`: its seq and time, which numbering needs once every message
    /// has expired (and `sync` orders rooms by); a head already past it stays as it is. It
    /// holds no text and never expires: the sender and preview the previous version kept on it
    /// go with the first raise. A direct conversation's head is keyed by a hash of the pair
    /// ([`head_key`]), so that it names nobody.
    pub(super) async fn raise_head(&self, table: &str, key: &str, seq: u64, sent_at: i64) {
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(seq_zero(&head_key(key))))
            .update_expression("SET #last = :seq, #at = :at REMOVE #sender, #body")
            .condition_expression("attribute_not_exists(#last) OR #last < :seq")
            .expression_attribute_names("#last", LAST_SEQ)
            .expression_attribute_names("#sender", LAST_SENDER_ID)
            .expression_attribute_names("#body", LAST_BODY)
            .expression_attribute_names("#at", LAST_SENT_AT)
            .expression_attribute_values(":seq", number(seq))
            .expression_attribute_values(":at", number(sent_at))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {}
            // Numbering once every message has expired relies on it: the next message, or this
            // one's retry, raises it again.
            Err(error) => tracing::warn!(error = %crate::error::Chain(&error), "could not raise a conversation's head"),
        }
    }
}

/// Where a conversation's head lives: a room's in its partition (`r#lobby`, seq 0); a direct
/// conversation's under `h#` and the SHA-256 of its key, which names neither user (anyone who
/// can read the table and guess both ids can still test a pair: the hash hides the pair from a
/// listing, it is no secret).
pub(super) fn head_key(key: &str) -> String {
    if key.starts_with("d#") { format!("h#{}", crate::store::messages::body_hash(key)) } else { key.to_owned() }
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
        // The sender's room entry and the request's claim, beside the latest seq: one call
        // one after another before the message is written.
        let member = async {
            match conversation {
                Conversation::Room(room) => self.in_room(sender, room).await,
                Conversation::Direct(..) => Ok(true),
            }
        };
        let claim = idempotency
            .map(|request| Claim::new(&key, sender, request.client_request_id, body, sent_at, self.now_ms()));
        let claimed = async {
            match &claim {
                Some(claim) => self.claim(table, claim).await.map(Some),
                None => Ok(None),
            }
        };
        let ((latest, sizes), member, claimed) = futures::try_join!(self.newest(table, &key), member, claimed)?;
        let ours = matches!(claimed, Some(Claimed::Ours));
        if !member {
            if let (true, Some(claim)) = (ours, &claim) {
                self.release_claim(table, claim).await;
            }
            return Ok(Appended::NotInRoom);
        }
        if let Some(Claimed::Answered(answer)) = claimed {
            return Ok(answer);
        }
        let claim = claim.filter(|_| ours);
        let (mut latest, mut sizes) = (latest, sizes);
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
                .item(PREVIOUS_SIZES, string(&encode_sizes(&sizes)))
                .condition_expression("attribute_not_exists(#s)")
                .expression_attribute_names("#s", SEQ);
            if let Some(claim) = &claim {
                put = put.item(REQUEST_KEY, string(&claim.key));
            }
            match put.send().await {
                Ok(_) => {
                    let message = StoredMessage { seq, sender_id: sender.clone(), body: body.to_owned(), sent_at };
                    return Ok(Appended::Stored(message));
                }
                // Another sender stored a message at this seq first: after a short random pause
                // (so that senders who lost together do not collide again), take the next one.
                Err(error)
                    if error.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) =>
                {
                    tokio::time::sleep(crate::store::messages::contention_pause(attempt)).await;
                    (latest, sizes) = self.newest(table, &key).await?;
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

    async fn record_latest(&self, conversation: &Conversation, message: &StoredMessage) {
        if let Ok((table, _)) = self.messages() {
            self.raise_head(table, &conversation.key(), message.seq, message.sent_at).await;
        }
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
        let limit = limit.max(1);
        match cursor {
            Cursor::Newest | Cursor::Before(_) => {
                let below = match cursor {
                    Cursor::Before(before) => before,
                    _ => u64::MAX,
                };
                // The page and the oldest retained seq side by side: the page stops at the
                // first expired message it meets.
                let (messages, oldest_seq) = futures::try_join!(
                    self.read_down(table, &key, below, limit, now),
                    self.oldest_retained(table, &key, now)
                )?;
                let has_more = messages.first().is_some_and(|first| first.seq > oldest_seq);
                Ok(HistoryPage { messages, has_more, oldest_seq })
            }
            Cursor::After(after) => {
                let (mut page, latest, oldest_seq) = futures::try_join!(
                    self.read_up(table, &key, after, limit, now),
                    self.head_seq(table, &key),
                    self.oldest_retained(table, &key, now)
                )?;
                if page.first_expired {
                    // The page began among expired messages TTL has not deleted yet: it starts
                    // again at the oldest retained one.
                    page = self.read_up(table, &key, after.max(oldest_seq.saturating_sub(1)), limit, now).await?;
                }
                let last = page.messages.last().map_or(after, |last| last.seq);
                let has_more = page.stopped && last < latest.max(page.highest_seen);
                Ok(HistoryPage { messages: page.messages, has_more, oldest_seq })
            }
        }
    }
}

/// What [`DynamoDbStore::read_up`] read.
struct UpPage {
    messages: Vec<StoredMessage>,
    /// The first message it met had expired.
    first_expired: bool,
    /// It stopped for the limit or the page's bytes, not for want of messages.
    stopped: bool,
    /// The highest seq it saw, returned or not.
    highest_seen: u64,
}

impl DynamoDbStore {
    /// Up to `limit` retained messages below `below`, in ascending seq, within
    /// [`HISTORY_PAGE_BYTES`]: read newest first, each Query asking for exactly the messages
    /// that fit, as the sizes each message keeps of the ones before it tell ([`PREVIOUS_SIZES`]);
    /// a message without them (written before they were kept) is read on its own.
    async fn read_down(
        &self,
        table: &str,
        key: &str,
        below: u64,
        limit: usize,
        now: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut messages: Vec<StoredMessage> = Vec::new();
        let (mut used, mut largest, mut upper, mut known) = (0, 0, below, Vec::new());
        while messages.len() < limit && upper > 1 {
            let left = limit - messages.len();
            let wanted = match (messages.is_empty(), known.is_empty()) {
                // The first message on its own.
                (true, _) => 1,
                // Sizes not kept (messages stored before they were): as many as fit if none is
                // larger than the largest so far; one that does not fit is read and dropped.
                (false, true) => ((HISTORY_PAGE_BYTES.saturating_sub(used)) / largest.max(1)).min(left),
                (false, false) => fitting(&known, used, left),
            };
            if wanted == 0 {
                break;
            }
            let items = self.query_range(table, key, 1, upper - 1, false, wanted).await?;
            let count = items.len();
            for item in &items {
                if read_number(item, EXPIRES_AT, key)? as i64 <= now {
                    messages.reverse();
                    return Ok(messages);
                }
                let message = read_message(item, key)?;
                let size = page_size(&message);
                if !messages.is_empty() && used + size > HISTORY_PAGE_BYTES {
                    messages.reverse();
                    return Ok(messages);
                }
                used += size;
                largest = largest.max(size);
                upper = message.seq;
                known = previous_sizes(item);
                messages.push(message);
            }
            if count < wanted {
                break;
            }
        }
        messages.reverse();
        Ok(messages)
    }

    /// Up to `limit` messages above `after`, in ascending seq, within [`HISTORY_PAGE_BYTES`]:
    /// the first on its own, then, for as many more as the largest message seen so far says
    /// could fit, the highest of them, whose [`PREVIOUS_SIZES`] tell exactly which of those
    /// below it fit. At most that one message is read and not returned, each time a message
    /// larger than all before it ends the page.
    async fn read_up(&self, table: &str, key: &str, after: u64, limit: usize, now: i64) -> Result<UpPage, StoreError> {
        let mut page = UpPage { messages: Vec::new(), first_expired: false, stopped: false, highest_seen: after };
        let (mut used, mut largest) = (0, 0);
        loop {
            let last = page.messages.last().map_or(after, |last| last.seq);
            let left = limit - page.messages.len();
            if left == 0 {
                page.stopped = true;
                return Ok(page);
            }
            if after == u64::MAX {
                return Ok(page);
            }
            if page.messages.is_empty() {
                let Some(item) = self.query_range(table, key, after + 1, u64::MAX, true, 1).await?.pop() else {
                    return Ok(page);
                };
                if read_number(&item, EXPIRES_AT, key)? as i64 <= now {
                    page.first_expired = true;
                    return Ok(page);
                }
                let message = read_message(&item, key)?;
                (used, largest) = (page_size(&message), page_size(&message));
                page.highest_seen = message.seq;
                page.messages.push(message);
                continue;
            }
            let guess = ((HISTORY_PAGE_BYTES - used) / largest.max(1)).min(left).min(SIZES_KEPT);
            if guess == 0 {
                page.stopped = true;
                return Ok(page);
            }
            // The highest of the next `guess`, then those below it that fit.
            let Some(item) =
                self.query_range(table, key, last + 1, last.saturating_add(guess as u64), false, 1).await?.pop()
            else {
                return Ok(page);
            };
            let top = read_message(&item, key)?;
            page.highest_seen = page.highest_seen.max(top.seq);
            let between = (top.seq - last - 1) as usize;
            let sizes: Vec<usize> = previous_sizes(&item).into_iter().take(between).rev().collect();
            let fit = if sizes.len() < between {
                // Sizes not kept (messages stored before they were): those below it as if none
                // were larger than the largest so far, each checked as it comes.
                between
            } else {
                fitting(&sizes, used, between)
            };
            if fit > 0 {
                let items = self.query_range(table, key, last + 1, last + fit as u64, true, fit).await?;
                for item in &items {
                    let message = read_message(item, key)?;
                    if used + page_size(&message) > HISTORY_PAGE_BYTES {
                        page.stopped = true;
                        return Ok(page);
                    }
                    used += page_size(&message);
                    largest = largest.max(page_size(&message));
                    page.messages.push(message);
                }
            }
            if fit < between || used + page_size(&top) > HISTORY_PAGE_BYTES || page.messages.len() >= limit {
                page.stopped = true;
                return Ok(page);
            }
            used += page_size(&top);
            largest = largest.max(page_size(&top));
            page.messages.push(top);
        }
    }

    /// Up to `limit` items of the conversation with seqs from `low` to `high`, strongly
    /// consistent, ascending or not.
    pub(super) async fn query_range(
        &self,
        table: &str,
        key: &str,
        low: u64,
        high: u64,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        if low.max(1) > high {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#c = :c AND #s BETWEEN :low AND :high")
            .expression_attribute_names("#c", CONVERSATION)
            .expression_attribute_names("#s", SEQ)
            .expression_attribute_values(":c", string(key))
            .expression_attribute_values(":low", number(low.max(1)))
            .expression_attribute_values(":high", number(high))
            .scan_index_forward(forward)
            .limit(limit.min(i32::MAX as usize) as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("Query"))?;
        Ok(output.items.unwrap_or_default())
    }

    /// The latest seq the head (seq 0) records: a small read.
    pub(super) async fn head_seq(&self, table: &str, key: &str) -> Result<u64, StoreError> {
        if head_key(key) == key {
            return self.head_seq_at(table, key).await;
        }
        // A direct conversation's, and the previous version's in its partition, until raised.
        let hashed = head_key(key);
        let (head, legacy) = futures::try_join!(self.head_seq_at(table, &hashed), self.head_seq_at(table, key))?;
        Ok(head.max(legacy))
    }

    /// The latest seq the head at `head` (seq 0) records, 0 without one.
    async fn head_seq_at(&self, table: &str, head: &str) -> Result<u64, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(seq_zero(head)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb("GetItem"))?;
        output
            .item
            .map_or(Ok(0), |item| if item.contains_key(LAST_SEQ) { read_number(&item, LAST_SEQ, head) } else { Ok(0) })
    }

    /// The oldest seq not yet expired, or the next seq when none is retained, in a bounded
    /// number of single-message reads whatever TTL's lag: the first message (all it takes while
    /// nothing has expired), and if it has expired, the newest, then a binary search between
    /// them, at most two reads a halving (messages
    /// expire in seq order, give or take the milliseconds between concurrent senders' clocks).
    pub(in crate::store) async fn oldest_retained(&self, table: &str, key: &str, now: i64) -> Result<u64, StoreError> {
        let retained = |item: &HashMap<String, AttributeValue>| -> Result<bool, StoreError> {
            Ok(read_number(item, EXPIRES_AT, key)? as i64 > now)
        };
        let seq = |item: &HashMap<String, AttributeValue>| read_number(item, SEQ, key);
        let Some(first) = self.query_range(table, key, 1, u64::MAX, true, 1).await?.pop() else {
            return Ok(self.head_seq(table, key).await? + 1);
        };
        if retained(&first)? {
            return seq(&first);
        }
        let Some(newest) = self.query_range(table, key, 1, u64::MAX, false, 1).await?.pop() else {
            return Ok(self.head_seq(table, key).await? + 1);
        };
        if !retained(&newest)? {
            return Ok(self.head_seq(table, key).await?.max(seq(&newest)?) + 1);
        }
        // Every seq below `low` has expired (or is gone); `high` is retained.
        let (mut low, mut high) = (seq(&first)? + 1, seq(&newest)?);
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(above) = self.query_range(table, key, middle, high, true, 1).await?.pop() else { break };
            if !retained(&above)? {
                low = seq(&above)? + 1;
                continue;
            }
            // Retained, and nothing is left between `middle` and it.
            high = seq(&above)?;
            if middle == low {
                break;
            }
            match self.query_range(table, key, low, middle - 1, false, 1).await?.pop() {
                Some(below) if retained(&below)? => high = seq(&below)?,
                // The highest below `middle` has expired, or none is left: `high` is the oldest.
                _ => break,
            }
        }
        Ok(high)
    }
}

/// How many of the next messages, whose page sizes are `sizes` (in reading order), fit in what
/// is left of [`HISTORY_PAGE_BYTES`] after `used`, at most `most`.
fn fitting(sizes: &[usize], used: usize, most: usize) -> usize {
    let mut total = used;
    sizes
        .iter()
        .take(most)
        .take_while(|&&size| {
            total += size;
            total <= HISTORY_PAGE_BYTES
        })
        .count()
}

/// The unit sizes are kept in, rounded up: a page planned with them never overflows.
const SIZE_UNIT: usize = 32;

/// The sizes a message keeps of the ones before it, newest first, rounded up to
/// [`SIZE_UNIT`] (none on one written before they were kept).
fn previous_sizes(item: &HashMap<String, AttributeValue>) -> Vec<usize> {
    item.get(PREVIOUS_SIZES)
        .and_then(|value| value.as_s().ok())
        .map(|text| {
            text.split(',')
                .filter_map(|units| usize::from_str_radix(units, 36).ok())
                .map(|units| units * SIZE_UNIT)
                .collect()
        })
        .unwrap_or_default()
}

/// Sizes as [`PREVIOUS_SIZES`] keeps them: in [`SIZE_UNIT`]s, rounded up, base 36, comma
/// separated (about two bytes each for short messages).
fn encode_sizes(sizes: &[usize]) -> String {
    let base36 = |mut n: usize| {
        let mut digits = Vec::new();
        loop {
            digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
            if n == 0 {
                return digits.into_iter().rev().collect::<String>();
            }
        }
    };
    sizes.iter().map(|&size| base36(size.div_ceil(SIZE_UNIT))).collect::<Vec<_>>().join(",")
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

/// What [`DynamoDbStore::strip_head_text`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadsStripped {
    /// Direct conversations' heads moved to their hashed key.
    pub moved: usize,
    /// Rooms' heads whose sender and preview were removed.
    pub stripped: usize,
}

impl DynamoDbStore {
    /// The one-off upgrade of heads the previous version wrote, which kept the last message's
    /// sender and preview and never expire: a direct conversation's moves to its hashed key
    /// ([`head_key`]) with its latest seq and time only, and a room's loses its sender and
    /// preview. One Scan of the messages table, a page at a time (it reads every item once: run it
    /// once, after the deployment); safe to run again, and beside the chat (each head is raised,
    /// never lowered). Heads the chat raises after the deployment are stripped as they are raised.
    ///
    /// # Errors
    /// A failed call, after which running it again picks up what is left.
    pub async fn strip_head_text(&self) -> Result<HeadsStripped, StoreError> {
        let (table, _) = self.messages()?;
        let mut done = HeadsStripped::default();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .filter_expression("#s = :zero AND (attribute_exists(#body) OR attribute_exists(#sender))")
                .expression_attribute_names("#s", SEQ)
                .expression_attribute_names("#body", LAST_BODY)
                .expression_attribute_names("#sender", LAST_SENDER_ID)
                .expression_attribute_values(":zero", number(0))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb("Scan"))?;
            for item in page.items.unwrap_or_default() {
                let Some(key) = item.get(CONVERSATION).and_then(|value| value.as_s().ok()).cloned() else { continue };
                let seq = read_number(&item, LAST_SEQ, &key).unwrap_or(0);
                let sent_at = read_number(&item, LAST_SENT_AT, &key).unwrap_or(0) as i64;
                // Raising strips: the hashed head for a direct conversation, the head itself for
                // a room (raised to where it is, with the condition that it not be lowered).
                if key.starts_with("d#") {
                    self.raise_head(table, &key, seq, sent_at).await;
                    self.client
                        .delete_item()
                        .table_name(table)
                        .set_key(Some(seq_zero(&key)))
                        .send()
                        .await
                        .map_err(StoreError::dynamodb("DeleteItem"))?;
                    done.moved += 1;
                } else {
                    self.client
                        .update_item()
                        .table_name(table)
                        .set_key(Some(seq_zero(&key)))
                        .update_expression("REMOVE #sender, #body")
                        .expression_attribute_names("#sender", LAST_SENDER_ID)
                        .expression_attribute_names("#body", LAST_BODY)
                        .send()
                        .await
                        .map_err(StoreError::dynamodb("UpdateItem"))?;
                    done.stripped += 1;
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(done),
            }
        }
    }
}
