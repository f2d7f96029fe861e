//! Big rooms through the fan-out queue, with real WebSocket clients: on the real binaries
//! (`cargo lambda watch`, dynalite, moto's SQS and the development event source), and in-process
//! as `make dev` runs them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_local_gateway::{BackendChoice, FunctionNaming, Running, serve};
use chat_testing::Dynalite;
use chat_testing::dynalite::{TABLE, free_port};
use chat_testing::event_source::{EventSource, EventSourceConfig};
use chat_testing::faults::FailingConnections;
use chat_testing::sqs::Moto;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::lambda_endpoint::{build_functions, cargo_lambda_watch, stop, wait_for_port};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `count` members of room `arena`, users `u0`, `u1`..., connected and joined `in_flight` at a
/// time; each connection's frames are read by its own task, which counts those whose `body` is
/// one of `bodies` (per connection, per body).
struct Arena {
    senders: Vec<futures::stream::SplitSink<Socket, Message>>,
    counts: Arc<Vec<Vec<AtomicU32>>>,
    bodies: Vec<&'static str>,
}

impl Arena {
    async fn join(gateway: &Running, count: usize, in_flight: usize, bodies: Vec<&'static str>) -> Self {
        let counts: Arc<Vec<Vec<AtomicU32>>> =
            Arc::new((0..count).map(|_| bodies.iter().map(|_| AtomicU32::new(0)).collect()).collect());
        let url = gateway.url();
        let joined = futures::stream::iter(0..count)
            .map(|n| {
                let url = url.clone();
                async move {
                    let (mut socket, _) =
                        tokio_tungstenite::connect_async(format!("{url}?userId=u{n}")).await.expect("connects");
                    let join = json!({"action": "joinRoom", "roomId": "arena"}).to_string();
                    socket.send(Message::Text(join.into())).await.expect("send");
                    loop {
                        let frame = socket.next().await.expect("open").expect("a frame");
                        let Message::Text(text) = frame else { continue };
                        let value: Value = serde_json::from_str(&text).unwrap();
                        if value["joined"] == true {
                            break;
                        }
                        assert!(value.get("error").is_none(), "u{n} could not join: {value}");
                    }
                    (n, socket)
                }
            })
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await;
        let mut senders: Vec<Option<_>> = (0..count).map(|_| None).collect();
        for (n, socket) in joined {
            let (sink, mut stream) = socket.split();
            senders[n] = Some(sink);
            let (counts, bodies) = (counts.clone(), bodies.clone());
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let Message::Text(text) = frame else { continue };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                    if let Some(at) = bodies.iter().position(|body| value["body"] == *body) {
                        counts[n][at].fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        Self { senders: senders.into_iter().map(|sink| sink.expect("every member joined")).collect(), counts, bodies }
    }

    async fn say(&mut self, member: usize, body: &str) {
        let frame = json!({"action": "sendMessage", "roomId": "arena", "body": body}).to_string();
        self.senders[member].send(Message::Text(frame.into())).await.expect("send");
    }

    /// How many copies of `body` each member but `sender` holds.
    fn copies(&self, sender: usize, body: &str) -> Vec<u32> {
        let at = self.bodies.iter().position(|known| *known == body).expect("a counted body");
        let all = self.counts.iter().enumerate().filter(|(n, _)| *n != sender);
        all.map(|(_, counts)| counts[at].load(Ordering::SeqCst)).collect()
    }

    /// Waits until every member but `sender` holds `body` at least once.
    async fn wait_for_everyone(&self, sender: usize, body: &str, within: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        loop {
            let copies = self.copies(sender, body);
            let missing = copies.iter().filter(|count| **count == 0).count();
            if missing == 0 {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "{missing} members still without {body:?} after {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn on_the_real_binaries_a_room_of_2000_gets_its_message_through_sqs_despite_failing_posts_and_a_poison_message_is_dead_lettered()
 {
    build_functions().await;
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let moto = Moto::start();
    // A 10 s visibility timeout (the template's is 360 s) so a failed page comes back soon, yet
    // twice the 5 s a page of 1,000 posts was seen to take on a machine busy with other tests
    // (half a second at the workers' pace on a quiet one): a page still being posted when its
    // visibility timeout ends is delivered again, as SQS does.
    let queues = moto.create_fan_out_queue("chat-fan-out", Duration::from_secs(10), 5).await;
    let (gateway_port, invoke_port) = (free_port(), free_port());
    // The first five connections posted the message fail all three of the SDK's attempts:
    // their pages fail and SQS delivers them again, repeating the posts that had succeeded.
    // (Three failures each, whether the SDK makes its three attempts or its time limit cuts
    // them at two: either way the page's second delivery succeeds.)
    let chosen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let fail = move |id: &str, frame: &[u8]| {
        if !String::from_utf8_lossy(frame).contains("to all 2000") {
            return false;
        }
        let mut chosen = chosen.lock().unwrap();
        let room = chosen.len() < 5;
        match chosen.get_mut(id) {
            Some(failed) if *failed < 3 => *failed += 1,
            Some(_) => return false,
            None if room => {
                chosen.insert(id.to_owned(), 1);
            }
            None => return false,
        }
        true
    };
    let connections = FailingConnections::start(&format!("http://127.0.0.1:{gateway_port}/dev"), Arc::new(fail)).await;
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint().to_owned()),
        (chat_core::config::FAN_OUT_QUEUE_URL, queues.url.clone()),
        (chat_core::config::FAN_OUT_POSTS_PER_SECOND, "4000".to_owned()),
        (chat_core::config::FAN_OUT_WORKERS, "2".to_owned()),
        (chat_core::config::MANAGEMENT_ENDPOINT, format!("{}/dev", connections.endpoint())),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let watch = cargo_lambda_watch(invoke_port, gateway_port, dynalite.endpoint(), &env);
    wait_for_port(invoke_port).await;
    let source = EventSource::start(EventSourceConfig {
        sqs_endpoint: moto.endpoint().to_owned(),
        queue_url: queues.url.clone(),
        queue_arn: queues.arn.clone(),
        lambda_endpoint: format!("http://127.0.0.1:{invoke_port}"),
        function: chat_testing::deployment::FAN_OUT_WORKER_BINARY.to_owned(),
        batch_size: 1,
        maximum_concurrency: 2,
    });
    let mut settings = crate::support::settings();
    settings.address = ([127, 0, 0, 1], gateway_port).into();
    settings.backend = BackendChoice::Lambda {
        endpoint: format!("http://127.0.0.1:{invoke_port}"),
        naming: FunctionNaming::Binary,
        concurrency: chat_local_gateway::LAMBDA_CONCURRENCY,
    };
    let gateway = serve(settings).await.expect("the gateway starts");
    let started = std::time::Instant::now();
    let mut arena = Arena::join(&gateway, 2000, 50, vec!["to all 2000", "and after"]).await;
    let joined_in = started.elapsed();

    // A poison message beside the room's pages: no page at all. The worker reports it failed
    // every time, and after five receives SQS moves it to the dead-letter queue.
    let sqs = moto.client();
    sqs.send_message().queue_url(&queues.url).message_body(r#"{"not":"a page"}"#).send().await.expect("moto");
    arena.say(0, "to all 2000").await;
    let delivered_in = arena.wait_for_everyone(0, "to all 2000", Duration::from_secs(120)).await;
    // Every redelivery done (the queue holds nothing), then one more message: each connection's
    // frames arrive in order, so once it holds the second, it holds every repeat of the first.
    // The poison message is received five times, a visibility timeout apart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while chat_testing::sqs::messages_in(&sqs, &queues.url).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the queue drained (the poison message dead-lettered)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    arena.say(0, "and after").await;
    arena.wait_for_everyone(0, "and after", Duration::from_secs(120)).await;

    let copies = arena.copies(0, "to all 2000");
    let repeats: u32 = copies.iter().map(|count| count - 1).sum();
    let stats = &source.stats;
    println!(
        "2000-connection room on the real binaries: joined in {joined_in:.1?}; every member had the message in \
         {delivered_in:.1?}; {} posts failed (injected), {} messages reported failed (the poison one five times, \
         then dead-lettered) and delivered again, {repeats} repeated deliveries (members drop a seq they hold); {} \
         worker invocations",
        connections.failed(),
        stats.failures.load(Ordering::SeqCst),
        stats.invocations.load(Ordering::SeqCst),
    );
    assert!(copies.iter().all(|count| *count >= 1), "every member had it at least once");
    assert!(connections.failed() >= 5, "five connections failed their first posts: {}", connections.failed());
    assert!(stats.failures.load(Ordering::SeqCst) >= 6, "a page and the poison message, five times, reported failed");
    assert!(repeats >= 1, "the redelivered page repeated posts that had succeeded");
    assert_eq!(arena.copies(0, "and after").iter().max(), Some(&1), "no failure injected: once each");
    assert_eq!(chat_testing::sqs::messages_in(&sqs, &queues.dead_letter_url).await, 1, "the poison message alone");
    let dead = sqs.receive_message().queue_url(&queues.dead_letter_url).send().await.expect("moto");
    assert_eq!(dead.messages()[0].body(), Some(r#"{"not":"a page"}"#));
    drop(arena);
    gateway.shutdown().await.unwrap();
    stop(watch).await;
}

#[tokio::test]
async fn in_process_a_room_of_2000_connections_is_paced_by_the_workers_and_a_direct_message_is_not_held_behind_it() {
    let mut settings = crate::support::settings();
    // The account's rate, scaled down, and big rooms' half of it: 1,000 posts a second, so the
    // room takes about two seconds, and direct messages keep the other 1,000.
    settings.account_throttle = chat_local_gateway::AccountThrottle { per_second: 2000, burst: 200 };
    settings.parameter_overrides =
        vec![("FanOutPostsPerSecond".into(), "1000".into()), ("FanOutWorkers".into(), "2".into())];
    let gateway = serve(settings).await.expect("the gateway starts");
    let mut arena = Arena::join(&gateway, 2000, 100, vec!["to all 2000", "psst"]).await;

    let sent = tokio::time::Instant::now();
    arena.say(0, "to all 2000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let direct = json!({"action": "sendMessage", "destinationUserId": "u1", "body": "psst"}).to_string();
    arena.senders[2].send(Message::Text(direct.into())).await.expect("send");
    let whispered = tokio::time::Instant::now();
    while arena.counts[1][1].load(Ordering::SeqCst) == 0 {
        assert!(whispered.elapsed() < Duration::from_secs(5), "the direct message arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let direct_took = whispered.elapsed();
    let room_members_by_then = arena.copies(0, "to all 2000").iter().filter(|count| **count > 0).count();
    let room_took = sent.elapsed() + arena.wait_for_everyone(0, "to all 2000", Duration::from_secs(30)).await;

    println!(
        "in-process 2000-connection room at 1,000 posts/s: everyone in {room_took:.2?}; a direct message sent 0.3 s in \
         arrived in {direct_took:.1?}, when {room_members_by_then} members had the room's"
    );
    assert!(room_members_by_then < 1999, "the direct message did not wait for the whole room");
    assert!(room_took >= Duration::from_millis(1500), "the workers kept to 1,000 posts a second: {room_took:?}");
    assert_eq!(arena.copies(0, "to all 2000").iter().max(), Some(&1), "exactly once each");
    gateway.shutdown().await.unwrap();
}
