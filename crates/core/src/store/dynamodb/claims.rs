//! A `clientRequestId`'s claim on its message (a conditional PutItem, completed with an
//! UpdateItem): how a request is stored once.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use crate::error::StoreError;
use crate::protocol::UserId;
use crate::store::schema::{
    BODY_HASH, BODY_SHA256, CLAIMED_AT, CONVERSATION, EXPIRES_AT, LAST_SEQ, MESSAGE_SEQ, REQUEST_KEY, SENT_AT, SEQ,
};
use crate::store::{Appended, IDEMPOTENCY_WINDOW, StoredMessage};

use super::messages::{read_message, read_number};
use super::{DynamoDbStore, number, seq_zero, string};

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
pub(super) struct Claim<'a> {
    pub(super) key: String,
    pub(super) conversation: String,
    pub(super) sender: UserId,
    pub(super) body: &'a str,
    pub(super) sent_at: i64,
}

/// A pending claim older than this belongs to a function that failed (the functions time out
/// after 10 s) and may be taken over.
pub(super) const TAKEOVER_AFTER: i64 = 15_000;

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
    ) -> Self {
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
    pub(super) fn answer(&self, stored: StoredMessage) -> Appended {
        if stored.body == self.body { Appended::Repeat(stored) } else { Appended::DifferentBody }
    }
}

impl DynamoDbStore {
    /// Claims the request for this invocation, or says what became of it.
    pub(super) async fn claim(&self, table: &str, claim: &Claim<'_>, latest: u64) -> Result<Claimed, StoreError> {
        let lapses = (claim.sent_at + IDEMPOTENCY_WINDOW.as_millis() as i64) / 1000;
        let put = self
            .client
            .put_item()
            .table_name(table)
            .item(CONVERSATION, string(&claim.key))
            .item(SEQ, number(0))
            .item(BODY_SHA256, string(&crate::store::messages::body_hash(claim.body)))
            .item(BODY_HASH, string(&crate::store::messages::legacy_body_hash(claim.body)))
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
            if !crate::store::messages::claim_matches(sha256.map(String::as_str), &text(BODY_HASH), claim.body) {
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
    pub(super) async fn take_over(
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
    pub(super) async fn release_claim(&self, table: &str, claim: &Claim<'_>) {
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
    pub(super) async fn complete_claim(
        &self,
        table: &str,
        claim: &Claim<'_>,
        message: &StoredMessage,
    ) -> Result<(), StoreError> {
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
