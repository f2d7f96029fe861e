//! A `clientRequestId`'s claim on DynamoDB: stale by the functions' own clock, and a repeat
//! finds its message in a bounded number of reads however many messages followed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chat_core::protocol::UserId;
use chat_core::store::schema::{BODY, CONVERSATION, EXPIRES_AT, SENDER_ID, SENT_AT, SEQ};
use chat_core::store::{Appended, Conversation, Idempotency, MessageStore};
use chat_testing::capacity::{CapacityMeter, units};
use chat_testing::dynalite::{Dynalite, MESSAGES_TABLE, TABLE, store_with};

const SENT: i64 = 1_795_255_200_000;

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

#[tokio::test]
async fn a_claim_made_late_by_a_cold_function_is_not_stale_until_its_own_clock_says_so() {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(TABLE).await;
    let clock = Arc::new(AtomicI64::new(SENT));
    let reading = clock.clone();
    let store = store.with_clock(Arc::new(move || reading.load(Ordering::SeqCst)));
    let chat = Conversation::direct(&user("alice"), &user("bob"));
    let id = Idempotency { client_request_id: "r1" };
    // The first request was received at SENT, but its function started 14 s later (a slow cold
    // start): it claims then, and is still storing when the client's retry comes 16 s after the
    // first was received.
    clock.store(SENT + 14_000, Ordering::SeqCst);
    let first = store.append(&chat, &user("alice"), "once", SENT, Some(id)).await.unwrap();
    assert!(matches!(first, Appended::Stored(_)), "{first:?}");
    // Played as still being stored: its message is taken away again, its claim left.
    dynalite
        .client()
        .delete_item()
        .table_name(MESSAGES_TABLE)
        .key(CONVERSATION, AttributeValue::S(chat.key()))
        .key(SEQ, AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    clock.store(SENT + 16_000, Ordering::SeqCst);

    let retry = store.append(&chat, &user("alice"), "once", SENT + 16_000, Some(id)).await.unwrap();

    assert_eq!(retry, Appended::InProgress, "2 s after its claim on the functions' clock, 16 s after API Gateway's");
    clock.store(SENT + 30_000, Ordering::SeqCst);
    let later = store.append(&chat, &user("alice"), "once", SENT + 30_000, Some(id)).await.unwrap();
    assert!(matches!(later, Appended::Stored(ref m) if m.seq == 1), "16 s after it, taken over: {later:?}");
}

#[tokio::test]
async fn a_repeat_a_day_later_finds_its_message_in_a_few_reads_past_two_thousand_later_ones() {
    let dynalite = Dynalite::start();
    let seeding = dynalite.create_table(TABLE).await;
    let chat = Conversation::direct(&user("alice"), &user("bob"));
    let id = Idempotency { client_request_id: "r1" };
    let first = seeding.append(&chat, &user("alice"), "once", SENT, Some(id)).await.unwrap();
    assert!(matches!(first, Appended::Stored(ref m) if m.seq == 1), "{first:?}");
    // 2,000 messages over the next hours, one every 10 s.
    let item = |seq: u64| {
        let at = SENT + seq as i64 * 10_000;
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .item(CONVERSATION, AttributeValue::S(chat.key()))
                    .item(SEQ, AttributeValue::N(seq.to_string()))
                    .item(SENDER_ID, AttributeValue::S("bob".into()))
                    .item(BODY, AttributeValue::S(format!("reply {seq}")))
                    .item(SENT_AT, AttributeValue::N(at.to_string()))
                    .item(
                        EXPIRES_AT,
                        AttributeValue::N(
                            chat_core::store::expires_at(at, chat_core::limits::MESSAGE_RETENTION).to_string(),
                        ),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let later: Vec<WriteRequest> = (2..=2_001).map(item).collect();
    for batch in later.chunks(25) {
        dynalite.client().batch_write_item().request_items(MESSAGES_TABLE, batch.to_vec()).send().await.unwrap();
    }
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let store = store_with(meter.client());

    let repeat = store.append(&chat, &user("alice"), "once", SENT + 86_000_000, Some(id)).await.unwrap();
    let calls = meter.take();

    assert!(matches!(repeat, Appended::Repeat(ref m) if m.seq == 1 && m.body == "once"), "{repeat:?}");
    // log2(2,001) is 11: a read a halving, the newest, the claim, and a scan of a few.
    assert!(calls.len() <= 18, "{} calls", calls.len());
    assert!(units(&calls).0 <= 24.0, "{} read units", units(&calls).0);
}
