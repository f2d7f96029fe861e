//! Big rooms through the fan-out queue: the sender queues pages instead of posting, each worker
//! posts one page with the sender's rules, 429s are retried per connection and a page that keeps
//! failing is handed back to the queue. On the in-memory store and queue; the local gateway runs
//! the same workers in-process.

use chat_core::PostError;
use chat_core::delivery::queue::{FanOutPage, MemoryQueue};
use chat_core::metrics::Metrics;
use chat_core::protocol::RoomId;
use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_core::sqs::{SqsEvent, SqsMessage};
use chat_core::store::{ConnectionStore, SubscriptionStore};
use chat_testing::recording::{gone, throttled};
use chat_testing::{Chat, events};
use serde_json::{Value, json};

/// A room, `arena`, of `members` users with one connection each: `c0` (user `u0`), `c1`, ...
async fn arena(members: usize) -> Chat {
    let chat = Chat::with(&[]).await;
    for n in 0..members {
        assert_eq!(chat.connect(&format!("c{n}"), &format!("u{n}")).await, 200);
        assert_eq!(chat.join(&format!("c{n}"), "arena").await, 200);
    }
    chat
}

/// `c0` says `body` to the arena through `queue`, a minute after connecting.
async fn say_through(chat: &Chat, queue: &MemoryQueue, body: &str) -> i64 {
    let frame = json!({"action": "sendMessage", "roomId": "arena", "body": body}).to_string();
    let event = events::message_after(Route::SendMessage, "c0", &frame, 60);
    routes::handle(
        Route::SendMessage,
        &event,
        &Services::new(&chat.store).with_messenger(&chat.messenger).with_queue(Some(queue)),
    )
    .await
    .status()
}

fn drain(pages: &mut tokio::sync::mpsc::Receiver<FanOutPage>) -> Vec<FanOutPage> {
    std::iter::from_fn(|| pages.try_recv().ok()).collect()
}

fn bodies_to(chat: &Chat, connection_id: &str, body: &str) -> usize {
    chat.messenger.frames_to(connection_id).iter().filter(|frame| frame["body"] == body).count()
}

async fn post(chat: &Chat, page: &FanOutPage) -> (Result<(), chat_core::delivery::page::PageFailed>, Metrics) {
    let mut metrics = Metrics::new(Route::SendMessage);
    let result = chat_core::delivery::page::fan_out_page(page, &chat.store, &chat.messenger, None, &mut metrics).await;
    (result, metrics)
}

#[tokio::test]
async fn a_room_of_more_than_one_page_is_queued_and_each_member_gets_the_message_once_from_a_worker() {
    let chat = arena(2501).await;
    let (queue, mut pages) = MemoryQueue::new(10);
    let posted_before = chat.messenger.posts().len();

    assert_eq!(say_through(&chat, &queue, "to everyone").await, 200);

    assert_eq!(chat.messenger.posts().len(), posted_before, "the sender posts to no member");
    let pages = drain(&mut pages);
    let sizes: Vec<usize> = pages.iter().map(|page| page.connection_ids.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 2500, "every member but the sender: {sizes:?}");
    assert!(sizes.iter().all(|size| *size <= chat_core::limits::FAN_OUT_PAGE), "{sizes:?}");
    let frame: Value = serde_json::from_str(&pages[0].frame).unwrap();
    assert_eq!(chat_testing::stored(&frame), json!({"senderId": "u0", "roomId": "arena", "body": "to everyone"}));
    assert_eq!(frame["seq"], 1);
    assert_eq!(pages[0].room_id, RoomId::parse("arena").unwrap());

    for page in &pages {
        let (result, metrics) = post(&chat, page).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(metrics.messages_delivered, page.connection_ids.len() as u64);
    }
    for n in 1..2501 {
        assert_eq!(bodies_to(&chat, &format!("c{n}"), "to everyone"), 1, "c{n} once");
    }
    assert_eq!(bodies_to(&chat, "c0", "to everyone"), 0, "not the sender's own connection");
}

#[tokio::test]
async fn a_room_within_one_page_is_posted_by_the_sender_even_with_a_queue() {
    let chat = arena(10).await;
    let (queue, mut pages) = MemoryQueue::new(10);

    assert_eq!(say_through(&chat, &queue, "small room").await, 200);

    assert!(drain(&mut pages).is_empty());
    for n in 1..10 {
        assert_eq!(bodies_to(&chat, &format!("c{n}"), "small room"), 1);
    }
}

#[tokio::test]
async fn pages_the_queue_refuses_are_posted_by_the_sender() {
    let chat = arena(1201).await;
    let (queue, pages) = MemoryQueue::new(10);
    drop(pages);

    assert_eq!(say_through(&chat, &queue, "queue down").await, 200);

    for n in 1..1201 {
        assert_eq!(bodies_to(&chat, &format!("c{n}"), "queue down"), 1, "c{n}");
    }
}

/// A page of `count` arena members (`c1`...), as the sender queues it.
async fn page_of(chat: &Chat, count: usize) -> FanOutPage {
    let (queue, mut pages) = MemoryQueue::new(10);
    let _ = say_through(chat, &queue, "paged").await;
    let mut page = drain(&mut pages).remove(0);
    page.connection_ids.truncate(count);
    assert_eq!(page.connection_ids.len(), count, "the arena is big enough");
    page
}

#[tokio::test]
async fn a_connection_still_throttled_after_its_retries_is_left_and_the_page_goes_on() {
    let chat = arena(1101).await;
    let page = page_of(&chat, 900).await;
    let slow = page.connection_ids[5].clone();
    chat.messenger.fail(&slow, throttled);

    let (result, metrics) = post(&chat, &page).await;

    assert!(result.is_ok(), "one full client does not fail its page: {result:?}");
    assert_eq!((metrics.messages_delivered, metrics.posts_failed), (899, 1));
    assert_eq!(bodies_to(&chat, &slow, "paged"), 0);
    assert_eq!(bodies_to(&chat, &page.connection_ids[6], "paged"), 1);
}

#[tokio::test]
async fn a_connection_throttled_once_is_posted_again_after_a_pause() {
    let chat = arena(1101).await;
    let page = page_of(&chat, 900).await;
    let briefly = page.connection_ids[7].clone();
    chat.messenger.fail(&briefly, throttled);
    let healer = {
        let briefly = briefly.clone();
        let messenger = &chat.messenger;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            messenger.heal(&briefly);
        }
    };

    let ((result, metrics), ()) = futures::join!(post(&chat, &page), healer);

    assert!(result.is_ok());
    assert_eq!((metrics.messages_delivered, metrics.posts_failed), (900, 0));
    assert_eq!(bodies_to(&chat, &briefly, "paged"), 1, "delivered on its retry");
}

#[tokio::test]
async fn a_page_mostly_throttled_fails_whole_to_be_tried_again_later() {
    let chat = arena(1101).await;
    let page = page_of(&chat, 40).await;
    for id in &page.connection_ids[..30] {
        chat.messenger.fail(id, throttled);
    }

    let (result, _) = post(&chat, &page).await;

    let failed = result.expect_err("the account's throttle: the page backs off whole");
    assert_eq!((failed.posts, failed.throttled), (40, 30));
}

#[tokio::test]
async fn a_worker_applies_the_410_rule_gone_members_lose_their_record() {
    let chat = arena(1101).await;
    let page = page_of(&chat, 900).await;
    let gone_one = page.connection_ids[3].clone();
    chat.messenger.fail(&gone_one, gone);

    let (result, metrics) = post(&chat, &page).await;

    assert!(result.is_ok());
    assert_eq!(metrics.connections_gone, 1);
    assert!(chat.store.find(&gone_one).await.unwrap().is_none(), "its record is removed");
    let members = chat.store.members(&RoomId::parse("arena").unwrap(), None).await.unwrap().connection_ids;
    assert!(!members.contains(&gone_one), "and its membership");
}

#[test]
fn a_fan_out_page_is_sqs_json_with_the_frame_as_text() {
    let page = FanOutPage {
        api_id: "a1b2c3".into(),
        stage: "dev".into(),
        room_id: RoomId::parse("arena").unwrap(),
        frame: r#"{"senderId":"u0","roomId":"arena","body":"hi","seq":1,"sentAt":5}"#.into(),
        opened_by: 42,
        connection_ids: vec!["L0SM9cOFvHcCIhw=".into()],
    };
    let json: Value = serde_json::to_value(&page).unwrap();
    assert_eq!(
        json,
        json!({"apiId": "a1b2c3", "stage": "dev", "roomId": "arena", "frame": page.frame, "openedBy": 42,
               "connectionIds": ["L0SM9cOFvHcCIhw="]})
    );
    assert_eq!(serde_json::from_value::<FanOutPage>(json).unwrap(), page);
}

/// API Gateway answering 500 (its endpoint failing), as the SDK reports it.
fn internal_error(connection_id: &str) -> PostError {
    let exception = aws_sdk_apigatewaymanagement::types::error::ForbiddenException::builder().build();
    PostError::Api {
        connection_id: connection_id.to_owned(),
        source: Box::new(aws_sdk_apigatewaymanagement::Error::ForbiddenException(exception)),
    }
}

fn record(id: &str, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body.to_owned());
    message
}

#[tokio::test]
async fn the_worker_reports_only_the_pages_to_try_again_and_a_poison_message_as_failed_every_time() {
    let chat = arena(1101).await;
    let good = page_of(&chat, 20).await;
    let mut failing = good.clone();
    failing.connection_ids = page_of(&chat, 40).await.connection_ids[20..].to_vec();
    chat.messenger.fail(&failing.connection_ids[0], internal_error);
    let mut event = SqsEvent::default();
    event.records = vec![
        record("m-good", &serde_json::to_string(&good).unwrap()),
        record("m-failing", &serde_json::to_string(&failing).unwrap()),
        record("m-poison", r#"{"not":"a page"}"#),
    ];

    let response = chat_core::lambda::fan_out_worker(&event, &chat.store, &chat.messenger, None).await;

    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m-failing", "m-poison"]);
    assert_eq!(bodies_to(&chat, &good.connection_ids[0], "paged"), 1, "the good page was posted");
    assert_eq!(bodies_to(&chat, &failing.connection_ids[1], "paged"), 1, "the failing page's others were posted");
}

#[tokio::test]
async fn the_workers_sample_event_posts_its_page() {
    let chat = Chat::with(&[]).await;
    let event: SqsEvent = serde_json::from_str(
        &std::fs::read_to_string(chat_testing::workspace_root().join("events/fanOutWorker.json")).unwrap(),
    )
    .unwrap();
    let page: FanOutPage = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();

    let response = chat_core::lambda::fan_out_worker(&event, &chat.store, &chat.messenger, None).await;

    assert!(response.batch_item_failures.is_empty());
    for id in &page.connection_ids {
        assert_eq!(bodies_to(&chat, id, "hello room!"), 1, "{id}");
    }
}

#[tokio::test]
async fn a_worker_keeps_to_its_pace() {
    let chat = arena(1101).await;
    let page = page_of(&chat, 300).await;
    let pace = chat_core::delivery::queue::Pace::per_second(std::num::NonZeroU32::new(1000).unwrap());
    let mut metrics = Metrics::new(Route::SendMessage);
    let started = std::time::Instant::now();

    chat_core::delivery::page::fan_out_page(&page, &chat.store, &chat.messenger, Some(&pace), &mut metrics)
        .await
        .unwrap();

    // 300 posts at 1,000 a second, after a burst of 100: at least 0.2 s.
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(190), "{took:?}");
    assert_eq!(metrics.messages_delivered, 300);
}
