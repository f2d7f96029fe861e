//! A `clientRequestId`'s claim on its message (a conditional PutItem): how a request is stored
//! once.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use crate::error::StoreError;
use crate::protocol::UserId;
use crate::store::schema::{
    BODY_HASH, BODY_SHA256, CLAIMED_AT, CONVERSATION, EXPIRES_AT, LAST_SEQ, MESSAGE_SEQ, RECEIVED_AT, REQUEST_KEY,
    SENT_AT, SEQ,
};
use crate::store::{Appended, IDEMPOTENCY_WINDOW, StoredMessage};

use super::messages::{read_message, read_number};
use super::{DynamoDbStore, number, seq_zero, string};

/// A `clientRequestId`'s claim on its message: an item of the messages table keyed
/// `k#<sender>#<clientRequestId>#<conversation>` (seq 0), holding the body's hash and when it
/// was claimed on the functions' clock. It expires after [`IDEMPOTENCY_WINDOW`]. (The previous
/// version also wrote the conversation's latest seq then, and completed the claim with its
/// message's seq and time; claims it completed are still read so.)
///
/// Why a request is stored once: the claim is a conditional put, made beside the read of the
/// conversation's latest seq, so of concurrent repeats one claims and the others read its claim;
/// each stored message names its claim (`requestKey`). A repeat finds the message among those
/// sent within a minute of the claim ([`DynamoDbStore::named_message`]: a binary search by time,
/// then a short scan), so nothing completes the claim. A claim whose message is not there and
/// that is older than the functions' timeout ([`TAKEOVER_AFTER`]) belongs to a function that
/// failed, and is taken over.
pub(super) struct Claim<'a> {
    pub(super) key: String,
    pub(super) conversation: String,
    pub(super) sender: UserId,
    pub(super) body: &'a str,
    /// When it is claimed, epoch ms, on the functions' clock: API Gateway's receive time, or
    /// later when the function started late (a cold start), so that staleness is never
    /// overstated.
    pub(super) claimed_at: i64,
    /// When API Gateway received the request, epoch ms: the `sentAt` its message is stored
    /// with.
    pub(super) received_at: i64,
}

/// A pending claim older than this belongs to a function that failed (the functions time out
/// after 10 s) and may be taken over; a claimed message is stored within it.
pub(super) const TAKEOVER_AFTER: i64 = 15_000;

/// How far apart in time API Gateway can have received two messages stored in the other order:
/// a request's function stores its message within API Gateway's integration timeout of
/// receiving it (29 s; the functions time out sooner).
const RECEIVED_WITHIN: i64 = crate::limits::INTEGRATION_TIMEOUT.as_millis() as i64;

/// How often, and how long apart, a repeat reads a claim that is still pending before answering
/// [`Appended::InProgress`].
pub(super) const PENDING_READS: (usize, std::time::Duration) = (5, std::time::Duration::from_millis(200));

pub(super) enum Claimed {
    /// This invocation stores the message.
    Ours,
    /// The request was already stored, is still being stored, or named another body.
    Answered(Appended),
}

impl<'a> Claim<'a> {
    pub(super) fn new(
        conversation: &str,
        sender: &UserId,
        client_request_id: &str,
        body: &'a str,
        sent_at: i64,
        now: i64,
    ) -> Self {
        Self {
            key: format!("k#{sender}#{client_request_id}#{conversation}"),
            conversation: conversation.to_owned(),
            sender: sender.clone(),
            body,
            claimed_at: sent_at.max(now),
            received_at: sent_at,
        }
    }

    /// What a repeat answers once the claim's message is found: the message as stored (never
    /// the repeat's text), if the repeat's body is the one stored.
    pub(super) fn answer(&self, stored: StoredMessage) -> Appended {
        if stored.body == self.body { Appended::Repeat(stored) } else { Appended::DifferentBody }
    }
}

impl DynamoDbStore {
    /// Claims the request for this invocation, or says what became of it.
    pub(super) async fn claim(&self, table: &str, claim: &Claim<'_>) -> Result<Claimed, StoreError> {
        let lapses = (claim.claimed_at + IDEMPOTENCY_WINDOW.as_millis() as i64) / 1000;
        let put = self
            .client
            .put_item()
            .table_name(table)
            .item(CONVERSATION, string(&claim.key))
            .item(SEQ, number(0))
            .item(BODY_SHA256, string(&crate::store::messages::body_hash(claim.body)))
            .item(BODY_HASH, string(&crate::store::messages::legacy_body_hash(claim.body)))
            .item(CLAIMED_AT, number(claim.claimed_at))
            .item(RECEIVED_AT, number(claim.received_at))
            // Where the previous version's takeover searched from: from the start.
            .item(LAST_SEQ, number(0))
            .item(EXPIRES_AT, number(lapses))
            // A claim past its window that TTL has not deleted yet counts as none.
            .condition_expression("attribute_not_exists(#c) OR #e < :now")
            .expression_attribute_names("#c", CONVERSATION)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", number(claim.claimed_at / 1000))
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
            if !crate::store::messages::claim_matches(sha256.map(String::as_str), &text(BODY_HASH), claim.body) {
                return Ok(Claimed::Answered(Appended::DifferentBody));
            }
            if item.contains_key(MESSAGE_SEQ) {
                // Completed by the previous version.
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
            // The previous version's claims: its messages were stored with the claim's time.
            let received_at = if item.contains_key(RECEIVED_AT) { at(RECEIVED_AT)? as i64 } else { claimed_at };
            if let Some(message) = self.named_message(table, claim, received_at).await? {
                return Ok(Claimed::Answered(claim.answer(message)));
            }
            if claim.claimed_at - claimed_at > TAKEOVER_AFTER {
                return self.take_over(table, claim, claimed_at).await;
            }
            if read + 1 < PENDING_READS.0 {
                tokio::time::sleep(PENDING_READS.1).await;
            }
        }
        Ok(Claimed::Answered(Appended::InProgress))
    }

    /// Takes over a claim a failed function left pending (its message is not stored: the
    /// caller looked): unless another repeat took it over first.
    pub(super) async fn take_over(
        &self,
        table: &str,
        claim: &Claim<'_>,
        claimed_at: i64,
    ) -> Result<Claimed, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(seq_zero(&claim.key)))
            .update_expression("SET #at = :now, #received = :received")
            .condition_expression("#at = :then AND attribute_not_exists(#m)")
            .expression_attribute_names("#at", CLAIMED_AT)
            .expression_attribute_names("#received", RECEIVED_AT)
            .expression_attribute_names("#m", MESSAGE_SEQ)
            .expression_attribute_values(":received", number(claim.received_at))
            .expression_attribute_values(":now", number(claim.claimed_at))
            .expression_attribute_values(":then", number(claimed_at))
            .send()
            .await;
        match update {
            Ok(_) => Ok(Claimed::Ours),
            // Another repeat took it over just now.
            Err(error)
                if error.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(Claimed::Answered(Appended::InProgress))
            }
            Err(error) => Err(StoreError::dynamodb("UpdateItem")(error)),
        }
    }

    /// The message that names `claim`, if one is stored. It was stored with `sentAt` the time
    /// API Gateway received the claiming request (`received_at`, on the claim), within the
    /// functions' timeout of it; a message stored before it or after it was received at most a
    /// function's run ([`RECEIVED_WITHIN`]) apart. So it is among the few received that close:
    /// found by a binary search over seq by time (one single-message read a halving) and a
    /// scan of those, however many messages came before or after.
    pub(super) async fn named_message(
        &self,
        table: &str,
        claim: &Claim<'_>,
        received_at: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let key = &claim.conversation;
        let (from, until) = (received_at - RECEIVED_WITHIN, received_at + RECEIVED_WITHIN);
        let sent_at = |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
            read_number(item, SENT_AT, key).map(|at| at as i64)
        };
        let Some(newest) = self.query_range(table, key, 1, u64::MAX, false, 1).await?.pop() else { return Ok(None) };
        if sent_at(&newest)? < from {
            return Ok(None);
        }
        // The lowest seq whose first message at or above it was received since `from`.
        let (mut low, mut high) = (1, read_number(&newest, SEQ, key)?);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.query_range(table, key, middle, u64::MAX, true, 1).await?.pop() {
                Some(item) if sent_at(&item)? < from => low = read_number(&item, SEQ, key)? + 1,
                _ => high = middle,
            }
        }
        let mut start = low;
        loop {
            let items = self.query_range(table, key, start, u64::MAX, true, 25).await?;
            let Some(last) = items.last() else { return Ok(None) };
            start = read_number(last, SEQ, key)? + 1;
            for item in &items {
                if sent_at(item)? > until {
                    return Ok(None);
                }
                if item.get(REQUEST_KEY).and_then(|value| value.as_s().ok()) == Some(&claim.key) {
                    return read_message(item, key).map(Some);
                }
            }
        }
    }

    /// Deletes a claim whose message was not stored, if it is still this invocation's; a claim
    /// left behind is taken over after [`TAKEOVER_AFTER`] anyway.
    pub(super) async fn release_claim(&self, table: &str, claim: &Claim<'_>) {
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(seq_zero(&claim.key)))
            .condition_expression("#at = :mine AND attribute_not_exists(#m)")
            .expression_attribute_names("#at", CLAIMED_AT)
            .expression_attribute_names("#m", MESSAGE_SEQ)
            .expression_attribute_values(":mine", number(claim.claimed_at))
            .send()
            .await;
        if let Err(error) = result {
            tracing::info!(error = %crate::error::Chain(&error), "a claim was not released; it is taken over once stale");
        }
    }
}
