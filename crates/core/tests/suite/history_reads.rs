//! What a page of history reads from DynamoDB, metered by its sizing rules against dynalite: the
//! messages it returns, whatever their size, and a bounded number of single-message reads to
//! find the oldest retained message, however many expired ones TTL has not deleted yet.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chat_core::protocol::UserId;
use chat_core::store::schema::{BODY, CONVERSATION, EXPIRES_AT, SENDER_ID, SENT_AT, SEQ};
use chat_core::store::{Appended, Conversation, Cursor, MessageStore};
use chat_testing::capacity::{CapacityMeter, units};
use chat_testing::dynalite::{Dynalite, MESSAGES_TABLE, TABLE, store_with};

const SENT: i64 = 1_795_255_200_000;

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

#[tokio::test]
async fn a_page_of_100_kb_messages_reads_about_what_it_returns_whichever_way_it_goes() {
    let dynalite = Dynalite::start();
    let seeding = dynalite.create_table(TABLE).await;
    let chat = Conversation::direct(&user("alice"), &user("bob"));
    let body = "x".repeat(100 * 1024);
    for n in 0..12 {
        if let Appended::Stored(message) = seeding.append(&chat, &user("alice"), &body, SENT + n, None).await.unwrap() {
            seeding.record_latest(&chat, &message).await;
        }
    }
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let store = store_with(meter.client());
    // One 100 KB message is 26 read units: the page holds one, and the oldest retained seq is
    // the first message (one more single-message read while nothing has expired).
    let one_message = 26.0;

    for cursor in [Cursor::Newest, Cursor::Before(6), Cursor::After(3)] {
        let page = store.history(&chat, cursor, 50, SENT).await.unwrap();
        let (read, _) = units(&meter.take());

        assert_eq!(page.messages.len(), 1, "{cursor:?}");
        assert!(page.has_more, "{cursor:?}");
        // After a cursor, the head's two small reads (this version's and the previous one's).
        assert!(read <= 2.0 * one_message + 2.0, "{cursor:?} read {read} units");
    }
}

#[tokio::test]
async fn messages_stored_before_their_sizes_were_kept_are_paged_in_a_few_reads() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let chat = Conversation::direct(&user("alice"), &user("bob"));
    let requests: Vec<WriteRequest> = (1..=60).map(|seq| legacy_item(&chat, seq, SENT + seq as i64)).collect();
    for batch in requests.chunks(25) {
        dynalite.client().batch_write_item().request_items(MESSAGES_TABLE, batch.to_vec()).send().await.unwrap();
    }
    // Its head, which every version raises after each message.
    dynalite
        .client()
        .put_item()
        .table_name(MESSAGES_TABLE)
        .item(CONVERSATION, AttributeValue::S(chat.key()))
        .item(SEQ, AttributeValue::N("0".into()))
        .item(chat_core::store::schema::LAST_SEQ, AttributeValue::N("60".into()))
        .send()
        .await
        .unwrap();
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let store = store_with(meter.client());

    let newest = store.history(&chat, Cursor::Newest, 50, SENT).await.unwrap();
    let newest_calls = meter.take().len();
    let after = store.history(&chat, Cursor::After(0), 50, SENT).await.unwrap();
    let after_calls = meter.take().len();

    let seqs = |page: &chat_core::store::HistoryPage| page.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!((seqs(&newest), newest.has_more), ((11..=60).collect::<Vec<_>>(), true));
    assert_eq!((seqs(&after), after.has_more), ((1..=50).collect::<Vec<_>>(), true));
    assert!(newest_calls <= 4, "{newest_calls} calls");
    assert!(after_calls <= 6, "{after_calls} calls");
}

/// A message as the previous version stored it: no `previousSizes`.
fn legacy_item(chat: &Conversation, seq: u64, at: i64) -> WriteRequest {
    let value = |text: String| AttributeValue::S(text);
    let number = |n: i64| AttributeValue::N(n.to_string());
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .item(CONVERSATION, value(chat.key()))
                .item(SEQ, number(seq as i64))
                .item(SENDER_ID, value("alice".into()))
                .item(BODY, value(format!("message {seq}")))
                .item(SENT_AT, number(at))
                .item(EXPIRES_AT, number(chat_core::store::expires_at(at, chat_core::limits::MESSAGE_RETENTION)))
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn the_oldest_retained_message_is_found_in_few_reads_past_ten_thousand_expired_ones() {
    let dynalite = Dynalite::start();
    let seeding = dynalite.create_table(TABLE).await;
    let chat = Conversation::direct(&user("alice"), &user("bob"));
    let later = SENT + 31 * 24 * 60 * 60 * 1000;
    // 10,000 messages a month old, expired but not yet deleted by TTL, then three retained.
    let client = dynalite.client();
    let item = |seq: u64, at: i64| legacy_item(&chat, seq, at);
    let old: Vec<WriteRequest> = (1..=10_000).map(|seq| item(seq, SENT + seq as i64)).collect();
    for batch in old.chunks(25) {
        client.batch_write_item().request_items(MESSAGES_TABLE, batch.to_vec()).send().await.unwrap();
    }
    for n in 0..3 {
        let stored = seeding.append(&chat, &user("bob"), "new", later + n, None).await.unwrap();
        let Appended::Stored(message) = stored else { panic!("stored: {stored:?}") };
        assert_eq!(message.seq, 10_001 + n as u64);
        seeding.record_latest(&chat, &message).await;
    }
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let store = store_with(meter.client());

    for cursor in [Cursor::Newest, Cursor::After(0), Cursor::After(17), Cursor::Before(10_003)] {
        let page = store.history(&chat, cursor, 2, later).await.unwrap();
        let calls = meter.take();
        let (read, _) = units(&calls);

        assert_eq!(page.oldest_seq, 10_001, "{cursor:?}");
        assert!(page.messages.iter().all(|m| m.seq > 10_000), "{cursor:?}: only retained messages");
        assert!(!page.messages.is_empty(), "{cursor:?}");
        // log2(10,000) is about 14: at most two reads a halving, and a few around them.
        assert!(calls.len() <= 36, "{cursor:?} made {} calls", calls.len());
        assert!(read <= 36.0, "{cursor:?} read {read} units");
    }
    let after = store.history(&chat, Cursor::After(0), 2, later).await.unwrap();
    assert_eq!(after.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [10_001, 10_002]);
    assert!(after.has_more, "10,003 follows");
}
