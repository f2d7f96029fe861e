//! What each event costs on DynamoDB (on demand), CloudWatch Logs and metrics, computed from the
//! calls it made, sized by DynamoDB's rules ([`chat_testing::capacity`]) against dynalite; how
//! many of those calls ran one after another; and the two user-day workloads of the cost issue.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use chat_core::identity::Mode;
use chat_core::messenger::{Endpoint, Messenger};
use chat_core::protocol::{RoomId, UserId};
use chat_core::routes::{self, Route, Services};
use chat_core::store::{ConnectionStore, Conversation, DynamoDbStore, MessageStore, UserStore, subscriptions};
use chat_core::{ApiGatewayWebsocketProxyRequest, PostError};
use chat_testing::capacity::{CapacityMeter, Metered, one_after_another, units};
use chat_testing::{Dynalite, events};
use serde_json::json;

use crate::prices;
use crate::report::Figure;

/// A messenger that delivers nowhere and notes when each post began, and to which connection.
#[derive(Default)]
struct TimedMessenger(Mutex<Vec<(String, Instant)>>);

#[async_trait]
impl Messenger for TimedMessenger {
    async fn post(&self, _: &Endpoint, connection_id: &str, _: &[u8]) -> Result<(), PostError> {
        self.0.lock().expect("posts").push((connection_id.to_owned(), Instant::now()));
        Ok(())
    }
}

/// What one event cost.
#[derive(Clone, Debug, Default)]
struct Bill {
    read_units: f64,
    write_units: f64,
    /// What the function logged (its EMF line).
    log_bytes: f64,
    invocations: f64,
}

impl Bill {
    fn dynamodb(&self) -> f64 {
        self.read_units * prices::DYNAMODB_READ_UNIT + self.write_units * prices::DYNAMODB_WRITE_UNIT
    }

    fn logs(&self) -> f64 {
        (self.log_bytes + self.invocations * prices::LAMBDA_PLATFORM_LOG_BYTES) * prices::LOGS_INGESTED_PER_BYTE
    }

    fn times(&self, n: f64) -> Self {
        Self {
            read_units: self.read_units * n,
            write_units: self.write_units * n,
            log_bytes: self.log_bytes * n,
            invocations: self.invocations * n,
        }
    }

    fn plus(&self, other: &Self) -> Self {
        Self {
            read_units: self.read_units + other.read_units,
            write_units: self.write_units + other.write_units,
            log_bytes: self.log_bytes + other.log_bytes,
            invocations: self.invocations + other.invocations,
        }
    }
}

/// The calls taken, counted by operation: `1 GetItem + 2 Query`.
fn counted(calls: &[Metered]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        *counts.entry(call.operation.as_str()).or_default() += 1;
    }
    counts.iter().map(|(operation, count)| format!("{count} {operation}")).collect::<Vec<_>>().join(" + ")
}

struct Bench {
    meter: CapacityMeter,
    store: DynamoDbStore,
    seeding: DynamoDbStore,
    mode: Mode,
}

/// The sizes measured: full, or tiny for `--smoke`.
pub struct Sizes {
    pub rooms: [usize; 3],
    pub conversations: [usize; 2],
}

impl Bench {
    /// Runs one event, and gives its bill and a line describing it.
    async fn run(&self, route: Route, event: &ApiGatewayWebsocketProxyRequest) -> (Bill, String) {
        self.meter.take();
        let messenger = TimedMessenger::default();
        let services = Services::new(&self.store).with_messenger(&messenger).with_mode(self.mode);
        let handled = routes::handle(route, event, &services).await;
        assert!(handled.status() < 500, "{} answered {}", route.key(), handled.status());
        let calls = self.meter.take();
        let (read_units, write_units) = units(&calls);
        let log_bytes = handled.metrics.to_emf(events::now_ms()).to_string().len() + 1;
        let bill = Bill { read_units, write_units, log_bytes: log_bytes as f64, invocations: 1.0 };
        let posts = messenger.0.lock().expect("posts").clone();
        let sender = event.request_context.connection_id.clone().unwrap_or_default();
        let before = |at: Option<Instant>| {
            at.map(|at| one_after_another(&calls.iter().filter(|call| call.ended <= at).cloned().collect::<Vec<_>>()))
        };
        let ack = posts.iter().find(|(to, _)| *to == sender).map(|(_, at)| *at);
        let delivery = posts.iter().find(|(to, _)| *to != sender).map(|(_, at)| *at);
        let mut chain = format!("{} one after another", one_after_another(&calls));
        if let Some(depth) = before(ack) {
            chain += &format!(", {depth} before the answer");
        }
        if let Some(depth) = before(delivery) {
            chain += &format!(", {depth} before the first delivery");
        }
        // What only the cloud decides, modelled: API Gateway bills the frame in and each post;
        // Lambda runs for its calls one after another and its waves of posts.
        let api_gateway = (1 + posts.len()) as f64 * prices::API_GATEWAY_MESSAGE;
        let waves = posts.len().div_ceil(chat_core::limits::MAX_POSTS_IN_FLIGHT);
        let seconds =
            (one_after_another(&calls) as f64 * prices::MODEL_CALL_MS + waves as f64 * prices::MODEL_POST_MS) / 1e3;
        let lambda = prices::LAMBDA_REQUEST + seconds * prices::MODEL_MEMORY_GB * prices::LAMBDA_GB_SECOND;
        let line = format!(
            "{} ({}; {chain}); {:.1} read units, {:.0} write units; {} log bytes + Lambda's; posts: {}; per million: DynamoDB ${:.2}, Logs ${:.2}, API Gateway ${:.2}, Lambda ${:.2} (modelled {:.0} ms); total ${:.2}",
            calls.len(),
            counted(&calls),
            read_units,
            write_units,
            log_bytes,
            posts.len(),
            bill.dynamodb() * 1e6,
            bill.logs() * 1e6,
            api_gateway * 1e6,
            lambda * 1e6,
            seconds * 1e3,
            (bill.dynamodb() + bill.logs() + api_gateway + lambda) * 1e6,
        );
        (bill, line)
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

/// A body of exactly `bytes` bytes.
fn body_of(bytes: usize) -> String {
    "x".repeat(bytes)
}

fn send(from: &str, to: serde_json::Value, body: &str, request_id: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut frame = json!({"action": "sendMessage", "body": body});
    let object = frame.as_object_mut().expect("an object");
    for (field, value) in to.as_object().expect("an object") {
        object.insert(field.clone(), value.clone());
    }
    if let Some(id) = request_id {
        object.insert("clientRequestId".into(), id.into());
    }
    message(Route::SendMessage, from, &frame.to_string())
}

/// A time for the next event: a second after the last, so that each message moves its
/// conversation as it would in use (not two in one millisecond).
fn next_time() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = events::now_ms();
    let _ = LAST.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    LAST.fetch_add(1_000, Ordering::Relaxed) + 1_000
}

/// A frame on `connection`, from a connection whose user is its name before `-`, with the
/// authorizer's context naming that user (what token mode reads; demo mode reads the record).
fn message(route: Route, connection: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = events::message(route, connection, body);
    event.request_context.request_time_epoch = next_time();
    let owner = connection.split('-').next().unwrap_or(connection);
    event.request_context.authorizer.fields.insert("userId".into(), owner.into());
    event
}

/// Measures every event the cost issue lists, in `mode`, and the two user-day workloads.
pub async fn measure(sizes: &Sizes, mode: Mode, figures: &mut Vec<Figure>) {
    let dynalite = Dynalite::start();
    let seeding = dynalite.create_table(chat_testing::dynalite::TABLE).await;
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let store = chat_testing::dynalite::store_with(meter.client());
    let bench = Bench { meter, store, seeding, mode };
    let now = events::now_ms();
    let hundred = body_of(100);

    // Connections: the sender, users with 1, 2 and 20, and the rooms' members.
    let connect = |id: String, owner: &str| events::connection(&id, owner);
    bench.seeding.save(&connect("alice-1".into(), "alice")).await.expect("seeding");
    for (owner, count) in [("one", 1), ("two", 2), ("twenty", 20)] {
        for n in 0..count {
            bench.seeding.save(&connect(format!("{owner}-{n}"), owner)).await.expect("seeding");
        }
        // An existing conversation.
        let conversation = Conversation::direct(&user("alice"), &user(owner));
        if let chat_core::store::Appended::Stored(first) =
            bench.seeding.append(&conversation, &user("alice"), &hundred, now, None).await.expect("seeding")
        {
            bench.seeding.record_direct(&user(owner), &first).await.expect("seeding");
        }
    }
    for &members in &sizes.rooms {
        let room = RoomId::parse(&format!("room{members}")).expect("a room id");
        for n in 0..members {
            let owner = if n == 0 { "alice".to_owned() } else { format!("m{members}x{n}") };
            if n > 0 {
                bench.seeding.save(&connect(format!("{owner}-1"), &owner)).await.expect("seeding");
            }
            bench.seeding.add_room(&user(&owner), &room).await.expect("seeding");
            subscriptions::settle_room(&bench.seeding, &user(&owner), &room, now).await.expect("seeding");
        }
    }
    // Readers with conversations, each with a message from its peer.
    for &count in &sizes.conversations {
        let reader = format!("reader{count}");
        bench.seeding.save(&connect(format!("{reader}-1"), &reader)).await.expect("seeding");
        for n in 0..count {
            let peer = user(&format!("peer{n}"));
            let conversation = Conversation::direct(&user(&reader), &peer);
            let sent_at = now - 1_000_000 + n as i64;
            if let chat_core::store::Appended::Stored(message) =
                bench.seeding.append(&conversation, &peer, &hundred, sent_at, None).await.expect("seeding")
            {
                bench.seeding.record_direct(&user(&reader), &message).await.expect("seeding");
            }
        }
    }
    // A conversation of small messages and one of 100 KB messages, for getHistory.
    let big = body_of(100 * 1024);
    for (peer, body) in [("small", &hundred), ("large", &big)] {
        bench.seeding.save(&connect(format!("{peer}-1"), peer)).await.expect("seeding");
        let conversation = Conversation::direct(&user("alice"), &user(peer));
        for n in 0..60 {
            bench.seeding.append(&conversation, &user(peer), body, now - 100_000 + n, None).await.expect("seeding");
        }
    }
    let mode_name = match mode {
        Mode::Demo => "demo mode",
        Mode::Token => "token mode",
    };
    let mut row = |name: String, line: String| {
        figures.push(Figure { name: format!("{name} ({mode_name})"), value: line, target: None });
    };

    let to = |user: &str| json!({"destinationUserId": user});
    let mut direct_with_id = Bill::default();
    for (owner, count) in [("one", 1), ("two", 2), ("twenty", 20)] {
        let (_, line) = bench.run(Route::SendMessage, &send("alice-1", to(owner), &hundred, None)).await;
        row(format!("direct message of 100 bytes to {count} connection(s), existing conversation"), line);
        let id = format!("r-{owner}");
        let (bill, line) = bench.run(Route::SendMessage, &send("alice-1", to(owner), &hundred, Some(&id))).await;
        row("the same with a clientRequestId".into(), line);
        if count == 1 {
            direct_with_id = bill;
            let (_, line) = bench.run(Route::SendMessage, &send("alice-1", to(owner), &hundred, Some(&id))).await;
            row("a repeat of it (same clientRequestId)".into(), line);
        }
    }
    // A lost race: another sender's message takes the seq first (the meter writes it), and this
    // one reads the latest again and takes the next.
    bench.meter.lose_races(1);
    let (_, line) = bench.run(Route::SendMessage, &send("alice-1", to("one"), &hundred, Some("r-race"))).await;
    row("direct message with a clientRequestId that loses one race for its seq".into(), line);
    let (_, line) = bench.run(Route::SendMessage, &send("alice-1", to("newcomer"), &hundred, Some("r-new"))).await;
    row("first direct message of a conversation, with a clientRequestId".into(), line);
    let (_, line) = bench.run(Route::SendMessage, &send("alice-1", to("one"), &body_of(4096), Some("r-4k"))).await;
    row("direct message of 4 KB with a clientRequestId".into(), line);
    for &members in &sizes.rooms {
        let room = json!({"roomId": format!("room{members}")});
        let (_, line) = bench.run(Route::SendMessage, &send("alice-1", room.clone(), &hundred, None)).await;
        row(format!("room message of 100 bytes, room of {members}"), line);
        let (_, line) = bench.run(Route::SendMessage, &send("alice-1", room, &hundred, Some("r-room"))).await;
        row("the same with a clientRequestId".into(), line);
    }

    let mut sync_pages: BTreeMap<usize, (Bill, usize)> = BTreeMap::new();
    for &count in &sizes.conversations {
        let connection = format!("reader{count}-1");
        let mut cursor: Option<String> = None;
        let mut total = Bill::default();
        let mut pages = 0;
        loop {
            let mut frame = json!({"action": "sync", "limit": 100});
            if let Some(cursor) = &cursor {
                frame["cursor"] = cursor.clone().into();
            }
            let (bill, line) = bench.run(Route::Sync, &message(Route::Sync, &connection, &frame.to_string())).await;
            if pages == 0 {
                row(format!("sync of {count} conversations, first page of 100"), line);
            }
            total = total.plus(&bill);
            pages += 1;
            cursor = next_cursor(&bench, &connection, &frame).await;
            if cursor.is_none() || pages >= 10 {
                break;
            }
        }
        row(
            format!("sync of {count} conversations, every page of 100"),
            format!(
                "{pages} page(s): {:.1} read units in all, {:.1} a page; per million syncs of every page: DynamoDB ${:.2}",
                total.read_units,
                total.read_units / pages as f64,
                total.dynamodb() * 1e6
            ),
        );
        sync_pages.insert(count, (total, pages));
    }
    for peer in ["small", "large"] {
        let frame = json!({"action": "getHistory", "userId": peer, "limit": 50});
        let (_, line) = bench.run(Route::GetHistory, &message(Route::GetHistory, "alice-1", &frame.to_string())).await;
        let size = if peer == "small" { "100-byte" } else { "100 KB" };
        row(format!("getHistory of {size} messages, limit 50"), line);
    }
    let frame = json!({"action": "markRead", "userId": "alice", "seq": 1});
    let (_, line) = bench.run(Route::MarkRead, &message(Route::MarkRead, "one-0", &frame.to_string())).await;
    row("markRead of a direct conversation".into(), line);
    let mut connect_event = events::connect("carol-1", Some("carol"));
    connect_event.request_context.authorizer.fields.insert("userId".into(), "carol".into());
    let (_, line) = bench.run(Route::Connect, &connect_event).await;
    row("connect".into(), line);
    let (_, line) = bench.run(Route::Disconnect, &events::disconnect("carol-1")).await;
    row("disconnect".into(), line);

    // The user-day workloads: 30 direct messages with a clientRequestId, and 12 syncs.
    let [few, many] = sizes.conversations;
    for (name, count, pages_wanted) in [("(a)", few, 1), ("(b)", many, 10)] {
        let (sync_total, pages) = &sync_pages[&count];
        let sync = sync_total.times(pages_wanted.min(*pages) as f64 / *pages as f64);
        let day = direct_with_id.times(30.0).plus(&sync.times(12.0));
        row(
            format!(
                "user-day {name}: 30 direct messages with a clientRequestId, {count} conversations, 12 syncs of {pages_wanted} page(s)"
            ),
            format!(
                "{:.0} read units + {:.0} write units: DynamoDB ${:.7} (messages ${:.7}, syncs ${:.7}); Logs ${:.7}",
                day.read_units,
                day.write_units,
                day.dynamodb(),
                direct_with_id.times(30.0).dynamodb(),
                sync.times(12.0).dynamodb(),
                day.logs(),
            ),
        );
    }
}

/// The cursor a sync page answered, read back by running the same page on the store directly.
async fn next_cursor(bench: &Bench, connection: &str, frame: &serde_json::Value) -> Option<String> {
    let reader = connection.split('-').next().unwrap_or(connection);
    let after = frame["cursor"].as_str().and_then(chat_core::store::SyncCursor::parse);
    let page = bench.seeding.sync(&user(reader), after.as_ref(), 100, events::now_ms()).await.expect("dynalite");
    page.next.map(|cursor| cursor.as_str().to_owned())
}

/// What the functions' custom metrics cost a month: one metric per name and dimension set their
/// EMF lines publish (each route's counters by route and in all), refusals by error code aside.
pub fn metrics_month(figures: &mut Vec<Figure>) {
    let mut metrics = std::collections::BTreeSet::new();
    for route in Route::ALL {
        for counter in route.counters() {
            metrics.insert((counter.name(), Some(route.key())));
            metrics.insert((counter.name(), None));
        }
    }
    figures.push(Figure {
        name: "custom metrics a month (the routes' counters, by route and in all)".into(),
        value: format!(
            "{} metrics: ${:.2} a month, plus ${:.2} for each (route, error code) pair refusals publish",
            metrics.len(),
            metrics.len() as f64 * prices::METRIC_MONTH,
            prices::METRIC_MONTH
        ),
        target: None,
    });
}
