//! The web page as a chat people can rely on, in real headless Chromium: reloads, absences, an
//! outbox that survives drops and reloads, dead connections noticed by the keep-alive, refusals
//! beside what they refuse, and a chaos run of three pages while the network is cut at random.
//! Networks are broken from outside the browser: `DELETE @connections`, and a TCP proxy between
//! the browsers and the gateway that stalls or cuts connections.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, PAGE_WAIT, Page};
use crate::support::proxy::Proxy;
use crate::support::{Client, management, settings};
use chat_core::protocol::UserId;
use chat_core::store::{ConnectionStore, Conversation, Cursor, MessageStore, UserStore};
use chat_local_gateway::{Running, serve};
use chat_testing::until;
use serde_json::json;

/// A gateway serving the page, and a proxy in front of its WebSocket API.
async fn gateway_and_proxy() -> (Running, Proxy) {
    let mut settings = settings();
    settings.web_root = Some(chat_testing::workspace_root().join("web"));
    let gateway = serve(settings).await.expect("the gateway starts with the page");
    let proxy = Proxy::start(gateway.address()).await;
    (gateway, proxy)
}

async fn signed_in(browser: &Browser, url: &str, user: &str) -> Page {
    let page = browser.open(url).await;
    page.sign_in(user).await;
    page
}

async fn stored_bodies(gateway: &Running, conversation: &Conversation) -> Vec<String> {
    let store = gateway.store().unwrap();
    let page = store.history(conversation, Cursor::Newest, 100, 0).await.unwrap();
    page.messages.into_iter().map(|message| message.body).collect()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// The wall clock in milliseconds since the epoch, as the page's `Date.now()` reads it.
fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// alice (a plain client) sends `count` direct messages to `to`, numbered from `from`, and
/// waits for every acknowledgement.
async fn send_many(client: &mut Client, to: serde_json::Value, prefix: &str, count: usize) {
    for n in 1..=count {
        let mut frame = json!({"action": "sendMessage", "body": format!("{prefix} {n}"), "clientRequestId": format!("{}{n}", prefix.replace(' ', "-"))});
        frame.as_object_mut().unwrap().extend(to.as_object().unwrap().clone());
        client.send_json(frame).await;
        loop {
            let answer = client.receive().await;
            if answer["type"] == "ack" {
                break;
            }
        }
    }
}

#[tokio::test]
async fn after_a_reload_the_page_shows_the_latest_page_scrolls_back_to_the_first_message_and_counts_unread() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 10);
    let bob = signed_in(&browser, &url, "bob").await;
    bob.join("lobby").await;
    let mut alice = Client::connect(&gateway, "alice").await;
    alice.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
    alice.receive().await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "direct", 120).await;
    bob.wait_for_unread("direct:alice", 120).await;
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "direct 120").await;
    send_many(&mut alice, json!({"roomId": "lobby"}), "room", 3).await;
    bob.wait_for_unread("room:lobby", 3).await;

    bob.reload().await;

    bob.wait_for_state("connected").await;
    bob.wait_for_text("#conversation-title", "Direct messages with alice").await;
    bob.wait_for_text("#messages", "direct 120").await;
    let latest: Vec<u64> = bob.shown().await.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(latest, (71..=120).collect::<Vec<_>>(), "the latest page, in order");
    bob.wait_for_unread("room:lobby", 3).await;
    assert_eq!(bob.unread("direct:alice").await, 0, "the open conversation was read before the reload");

    bob.scroll_to_start().await;
    let all = bob.shown().await;
    assert_eq!(all.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), (1..=120).collect::<Vec<_>>());
    assert_eq!(all[0].1, "direct 1");
    bob.wait_for_text("#messages .edge", "The start of the conversation.").await;
    bob.close().await;
}

#[tokio::test]
async fn bob_signs_in_after_an_absence_and_sees_what_he_missed_as_unread() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 10);
    let bob = signed_in(&browser, &url, "bob").await;
    bob.join("lobby").await;
    let mut alice = Client::connect(&gateway, "alice").await;
    alice.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
    alice.receive().await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "hello", 1).await;
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "hello 1").await;
    let (store, bob_id) = (gateway.store().unwrap(), user("bob"));
    until("bob's markRead is stored", PAGE_WAIT, || {
        let (store, bob_id) = (store.clone(), bob_id.clone());
        async move {
            let page = store.sync(&bob_id, None, 10, chat_now_ms()).await.unwrap();
            page.conversations.iter().all(|entry| entry.read_seq == entry.last_seq)
        }
    })
    .await;

    bob.click("#sign-out").await;
    bob.wait_for_state("closed").await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "direct", 20).await;
    send_many(&mut alice, json!({"roomId": "lobby"}), "room", 5).await;

    bob.sign_in("bob").await;
    bob.wait_for_unread("direct:alice", 20).await;
    bob.wait_for_unread("room:lobby", 5).await;
    let list = bob.element("#conversations").await.text().await.unwrap();
    assert!(list.find("lobby").unwrap() < list.find("alice").unwrap(), "the most recent first: {list}");
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "direct 20").await;
    let bodies: Vec<String> = bob.shown().await.into_iter().map(|(_, body, _)| body).collect();
    let expected: Vec<String> =
        std::iter::once("hello 1".to_owned()).chain((1..=20).map(|n| format!("direct {n}"))).collect();
    assert_eq!(bodies, expected);
    bob.open_conversation("room:lobby").await;
    bob.wait_for_text("#messages", "room 5").await;
    let bodies: Vec<String> = bob.shown().await.into_iter().map(|(_, body, _)| body).collect();
    assert_eq!(bodies, (1..=5).map(|n| format!("room {n}")).collect::<Vec<_>>());
    bob.wait_for_unread("direct:alice", 0).await;
    bob.close().await;
}

#[tokio::test]
async fn messages_typed_while_cut_off_survive_a_reload_and_are_delivered_once() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 3);
    let bob = signed_in(&browser, &url, "bob").await;
    bob.join("lobby").await;
    let mut alice = Client::connect(&gateway, "alice").await;
    alice.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
    alice.receive().await;
    bob.message_user("alice").await;

    // The network dies under an open socket: the messages are sent into it and never arrive.
    for link in proxy.flowing() {
        proxy.stall(link);
    }
    bob.type_into("#body", "typed while cut off\u{E007}").await;
    bob.element("#messages li.pending[data-state=\"sending\"]").await;
    bob.open_conversation("room:lobby").await;
    bob.type_into("#body", "to the room while cut off\u{E007}").await;
    bob.element("#messages li.pending[data-state=\"sending\"]").await;
    assert_eq!(bob.outbox_len().await, 2);
    proxy.set_down(true);
    bob.reload().await;

    // After the reload, still cut off: the room's message waits in the outbox, shown as sending.
    let waiting = bob.wait_for_text("#messages li[data-state=\"sending\"] .body", "to the room while cut off").await;
    assert_eq!(waiting, "to the room while cut off");
    bob.wait_for_state("reconnecting").await;
    proxy.set_down(false);
    bob.wait_for_state("connected").await;

    let mut delivered = vec![alice.receive_message().await, alice.receive_message().await];
    delivered.sort_by_key(|frame| frame["body"].to_string());
    assert_eq!(
        delivered,
        [
            json!({"senderId": "bob", "roomId": "lobby", "body": "to the room while cut off"}),
            json!({"senderId": "bob", "body": "typed while cut off", "destinationUserId": "alice"}),
        ]
    );
    bob.element("#messages li.own[data-seq=\"1\"][data-state=\"sent\"]").await;
    until("the outbox is empty", PAGE_WAIT, || async { bob.outbox_len().await == 0 }).await;
    assert_eq!(
        stored_bodies(&gateway, &Conversation::direct(&user("alice"), &user("bob"))).await,
        ["typed while cut off"]
    );
    let lobby = Conversation::Room(chat_core::protocol::RoomId::parse("lobby").unwrap());
    assert_eq!(stored_bodies(&gateway, &lobby).await, ["to the room while cut off"]);
    alice.expect_nothing_before_echo(&gateway).await;
    bob.close().await;
}

#[tokio::test]
async fn a_conversation_read_while_the_connection_was_dead_is_marked_read_after_the_reconnect() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 3);
    let bob = signed_in(&browser, &url, "bob").await;
    bob.join("lobby").await;
    let mut alice = Client::connect(&gateway, "alice").await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "first", 1).await;
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "first 1").await;
    bob.open_conversation("room:lobby").await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "second", 1).await;
    bob.wait_for_unread("direct:alice", 1).await;

    // Bob reads it on a connection that has just died: his markRead never arrives.
    let [link] = proxy.flowing()[..] else { panic!("one connection") };
    proxy.stall(link);
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "second 1").await;
    bob.open_conversation("room:lobby").await;
    proxy.cut_stalled();
    bob.wait_for_state("connected").await;

    // After the reconnect the page tells the server what was read, so other devices agree.
    let (store, bob_id) = (gateway.store().unwrap(), user("bob"));
    until("bob's read of alice's second message is stored", PAGE_WAIT, || {
        let (store, bob_id) = (store.clone(), bob_id.clone());
        async move {
            let page = store.sync(&bob_id, None, 10, chat_now_ms()).await.unwrap();
            page.conversations.iter().any(|entry| entry.last_seq == 2 && entry.read_seq == 2)
        }
    })
    .await;
    assert_eq!(bob.unread("direct:alice").await, 0);
    bob.close().await;
}

#[tokio::test]
async fn a_dead_connection_is_noticed_by_the_keep_alive_and_nothing_sent_meanwhile_is_lost() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    // A keep-alive after 1 s of sending nothing, answered within 2 s.
    let url = proxy.page_url(&gateway, 1, 2);
    let bob = signed_in(&browser, &url, "bob").await;
    let mut alice = Client::connect(&gateway, "alice").await;
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "before", 1).await;
    bob.open_conversation("direct:alice").await;
    bob.wait_for_text("#messages", "before 1").await;

    // Traffic stops both ways; the socket stays open at both ends.
    let links = proxy.flowing();
    assert_eq!(links.len(), 1);
    bob.record_states().await;
    proxy.stall(links[0]);
    let stalled = epoch_ms();
    send_many(&mut alice, json!({"destinationUserId": "bob"}), "during", 3).await;

    // When the page gave up, by its own clock (how soon this test looks does not count).
    let (reason, at) = bob.wait_until_seen_at("reconnecting").await;
    let noticed = Duration::from_millis(at.saturating_sub(stalled));
    assert!(reason.contains("no answer to a keep-alive"), "{reason}");
    // The page checks twice a second: a keep-alive at most 1 s + 0.5 s after the last frame sent,
    // given up on at most 2 s + 0.5 s later (the URL's keepAlive=1 and timeout=2), and one more
    // check's half second for a timer that fires late.
    let bound = Duration::from_millis(1_500 + 2_500 + 500);
    assert!(noticed <= bound, "noticed within the keep-alive and its timeout: {noticed:?}");
    bob.wait_for_state("connected").await;
    bob.wait_for_text("#messages", "during 3").await;
    let bodies: Vec<String> = bob.shown().await.into_iter().map(|(_, body, _)| body).collect();
    assert_eq!(bodies, ["before 1", "during 1", "during 2", "during 3"]);
    assert_eq!(proxy.cut_stalled(), 1, "the dead connection was still open at the gateway's end");
    println!("the stalled connection was noticed after {noticed:?}");
    bob.close().await;
}

#[tokio::test]
async fn a_refusal_is_shown_beside_the_message_it_refuses_not_the_latest_one() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 3);
    let bob = signed_in(&browser, &url, "bob").await;
    bob.join("lobby").await;
    let mut other_tab = Client::connect(&gateway, "bob").await;

    // Cut off, bob writes to the room, then to alice. Meanwhile his other tab leaves the room.
    for link in proxy.flowing() {
        proxy.stall(link);
    }
    bob.type_into("#body", "to the room I left\u{E007}").await;
    bob.message_user("alice").await;
    bob.type_into("#body", "to alice\u{E007}").await;
    other_tab.send_json(json!({"action": "leaveRoom", "roomId": "lobby"})).await;
    assert_eq!(other_tab.receive().await["left"], true);
    proxy.cut_stalled();

    bob.wait_for_state("connected").await;
    bob.element("#messages li.own[data-state=\"sent\"]").await;
    assert_eq!(stored_bodies(&gateway, &Conversation::direct(&user("alice"), &user("bob"))).await, ["to alice"]);
    bob.open_conversation("room:lobby").await;
    bob.wait_for_text("#conversation-title", "you left it").await;
    let refused = bob.element("#messages li[data-state=\"failed\"]").await;
    assert_eq!(
        refused.find(fantoccini::Locator::Css(".body")).await.unwrap().text().await.unwrap(),
        "to the room I left"
    );
    let error = refused.find(fantoccini::Locator::Css(".error")).await.unwrap();
    assert_eq!(error.attr("data-code").await.unwrap().as_deref(), Some("notInRoom"));
    assert!(
        stored_bodies(&gateway, &Conversation::Room(chat_core::protocol::RoomId::parse("lobby").unwrap()))
            .await
            .is_empty()
    );

    // Discarding it empties the outbox.
    bob.click("#messages li[data-state=\"failed\"] .discard").await;
    until("the outbox is empty", PAGE_WAIT, || async { bob.outbox_len().await == 0 }).await;
    bob.close().await;
}

#[tokio::test]
async fn a_message_left_in_a_closed_tabs_outbox_is_sent_once_by_another_tab() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 3);
    let first_tab = signed_in(&browser, &url, "bob").await;
    let [first_link] = proxy.flowing()[..] else { panic!("one connection") };
    let second_tab = first_tab.new_window(&url).await;
    second_tab.sign_in("bob").await;
    let mut alice = Client::connect(&gateway, "alice").await;

    // The first tab's network dies; what it sends waits in the browser's shared outbox.
    proxy.stall(first_link);
    first_tab.message_user("alice").await;
    first_tab.type_into("#body", "from the tab I closed\u{E007}").await;
    first_tab.element("#messages li[data-state=\"sending\"]").await;
    second_tab.message_user("alice").await;
    second_tab.wait_for_text("#messages li[data-state=\"sending\"] .body", "from the tab I closed").await;
    first_tab.close_window().await;

    // The second tab finds the entry's tab gone (its Web Lock released) and sends it.
    let (store, conversation) = (gateway.store().unwrap(), Conversation::direct(&user("alice"), &user("bob")));
    until("another tab sends it", PAGE_WAIT, || async {
        !store.history(&conversation, Cursor::Newest, 1, 0).await.unwrap().messages.is_empty()
    })
    .await;
    let delivered = alice.receive_message().await;
    assert_eq!(delivered, json!({"senderId": "bob", "body": "from the tab I closed", "destinationUserId": "alice"}));
    second_tab.element("#messages li.own[data-seq=\"1\"][data-state=\"sent\"]").await;
    until("the outbox is empty", PAGE_WAIT, || async { second_tab.outbox_len().await == 0 }).await;
    assert_eq!(proxy.cut_stalled(), 1);
    alice.expect_nothing_before_echo(&gateway).await;
    assert_eq!(
        stored_bodies(&gateway, &Conversation::direct(&user("alice"), &user("bob"))).await,
        ["from the tab I closed"]
    );
}

#[tokio::test]
async fn an_outbox_entry_older_than_the_deduplication_window_waits_for_the_user_to_retry() {
    let (gateway, proxy) = gateway_and_proxy().await;
    let browser = Browser::shared();
    let url = proxy.page_url(&gateway, 60, 10);
    let bob = signed_in(&browser, &url, "bob").await;
    // An entry typed 25 hours ago (the page was closed since): the server may no longer
    // recognise its clientRequestId, so sending it by itself could store it twice.
    let entry = json!({"clientRequestId": "typed25hoursago", "conversation": "direct:alice", "body": "an old draft",
                       "createdAt": chat_now_ms() - 25 * 3_600_000, "owner": "a-closed-tab", "state": "sending"});
    bob.run("localStorage.setItem('chat.outbox.bob.typed25hoursago', arguments[0]);", vec![json!(entry.to_string())])
        .await;
    bob.reload().await;
    bob.wait_for_state("connected").await;
    bob.message_user("alice").await;
    let waiting = bob.element("#messages li[data-state=\"expired\"]").await;
    assert!(waiting.text().await.unwrap().contains("Not sent for a day"), "it asks");
    let mut alice = Client::connect(&gateway, "alice").await;
    alice.expect_nothing_before_echo(&gateway).await;
    assert!(stored_bodies(&gateway, &Conversation::direct(&user("alice"), &user("bob"))).await.is_empty());

    bob.click("#messages li[data-state=\"expired\"] .retry").await;
    let delivered = alice.receive_message().await;
    assert_eq!(delivered["body"], "an old draft");
    bob.element("#messages li.own[data-seq=\"1\"][data-state=\"sent\"]").await;
    until("the outbox is empty", PAGE_WAIT, || async { bob.outbox_len().await == 0 }).await;
}

fn chat_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A small random source for the chaos run, seeded from the OS (the seed is printed).
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish() | 1;
        println!("chaos seed {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Each page sends `count` messages at random moments over about `span_ms`, half to the room
/// and half to `peer`, through its own composer; `window.chaos` tells the test how it went.
const SEND_AT_RANDOM: &str = r#"
    const [prefix, peer, count, spanMs] = arguments;
    window.chaos = { done: false, bodies: [], offline: 0 };
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    (async () => {
      for (let n = 1; n <= count; n += 1) {
        await sleep(Math.random() * 2 * spanMs / count);
        const room = Math.random() < 0.5;
        if (room) {
          document.querySelector('#conversations button[data-key="room:lobby"]').click();
        } else {
          document.getElementById("direct-user").value = peer;
          document.getElementById("new-direct").requestSubmit();
        }
        const body = `${prefix} ${n}`;
        if (document.getElementById("state").dataset.state !== "connected") window.chaos.offline += 1;
        document.getElementById("body").value = body;
        document.getElementById("composer").requestSubmit();
        window.chaos.bodies.push([room ? "room" : "direct", body]);
      }
      window.chaos.done = true;
    })();
    return true;
"#;

/// What a page shows of its connection, its outbox and its messages still sending (with their
/// conversation and text, so that a page that never settles says what it holds).
const SETTLED: &str = r#"
    const sending = [...document.querySelectorAll("[data-state=sending]")].map((li) => li.textContent);
    const outbox = Object.keys(localStorage).filter((key) => key.startsWith("chat.outbox."));
    const seen = { state: document.getElementById("state").dataset.state, outbox: outbox.length, sending: sending.length };
    if (seen.state !== "connected" || outbox.length || sending.length) {
      seen.words = document.getElementById("state").textContent;
      seen.entries = outbox.map((key) => localStorage.getItem(key));
      seen.shown = sending;
    }
    return seen;
"#;

#[tokio::test]
async fn three_pages_sending_while_connections_are_cut_at_random_end_with_the_same_messages() {
    const COUNT: usize = 100;
    let (gateway, proxy) = gateway_and_proxy().await;
    let (alice_browser, bob_browser) = (Browser::shared(), Browser::shared());
    let url = proxy.page_url(&gateway, 1, 2);
    let alice = signed_in(&alice_browser, &url, "alice").await;
    alice.join("lobby").await;
    let bob = signed_in(&bob_browser, &url, "bob").await;
    bob.join("lobby").await;
    // Bob's second tab: a window of the same browser, sharing its local storage (the outbox).
    let bob_again = bob.new_window(&url).await;
    bob_again.sign_in("bob").await;
    bob_again.element("#conversations button[data-key=\"room:lobby\"]").await;
    let pages = [("alice", "bob", &alice), ("bob", "alice", &bob), ("bob2", "alice", &bob_again)];
    for (name, peer, page) in pages {
        page.run(SEND_AT_RANDOM, vec![json!(name), json!(peer), json!(COUNT), json!(20_000)]).await;
    }

    // Cut connections at random, both ways, until every page has sent everything.
    let mut random = Random::new();
    let (mut deleted, mut stalled) = (0, 0);
    let mut stalls: Vec<Instant> = Vec::new();
    let management = management(&gateway);
    let store = gateway.store().unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(300 + random.below(900))).await;
        if random.below(2) == 0 {
            let who = if random.below(2) == 0 { "alice" } else { "bob" };
            let ids = store.connections_of(&user(who), chat_local_gateway::events::now_ms()).await.unwrap();
            if !ids.is_empty() {
                let id = &ids[random.below(ids.len() as u64) as usize];
                if management.delete_connection().connection_id(id).send().await.is_ok() {
                    deleted += 1;
                }
            }
        } else {
            let links = proxy.flowing();
            if !links.is_empty() {
                proxy.stall(links[random.below(links.len() as u64) as usize]);
                stalls.push(Instant::now());
                stalled += 1;
            }
        }
        // A stalled connection ends in the end, as TCP gives up: its gateway side closes.
        if stalls.first().is_some_and(|at| at.elapsed() > Duration::from_secs(4)) {
            proxy.cut_stalled();
            stalls.clear();
        }
        let mut done = true;
        for (_, _, page) in pages {
            done &= page.run("return window.chaos.done;", vec![]).await == json!(true);
        }
        if done {
            break;
        }
    }
    proxy.cut_stalled();

    // Every page settles: connected, its outbox empty, nothing shown as sending.
    let settled = json!({"state": "connected", "outbox": 0, "sending": 0});
    for (name, _, page) in pages {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = page.run(SETTLED, vec![]).await;
            if seen == settled {
                break;
            }
            assert!(Instant::now() < deadline, "{name}'s page never settled within 60 s: {seen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // What each page sent, by conversation.
    let mut sent: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut offline = 0;
    for (_, _, page) in pages {
        let chaos = page.run("return window.chaos;", vec![]).await;
        offline += chaos["offline"].as_u64().unwrap();
        for entry in chaos["bodies"].as_array().unwrap() {
            let conversation = if entry[0] == "room" { "room" } else { "direct" };
            assert!(sent.entry(conversation).or_default().insert(entry[1].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(sent.values().map(BTreeSet::len).sum::<usize>(), 3 * COUNT);

    // Every page shows the same messages in each conversation, in seq order, each once.
    let mut views: BTreeMap<(&str, &str), Vec<(u64, String)>> = BTreeMap::new();
    for (name, peer, page) in pages {
        for (conversation, key) in [("room", "room:lobby".to_owned()), ("direct", format!("direct:{peer}"))] {
            let expected = &sent[conversation];
            page.open_conversation(&key).await;
            let last = (expected.len()) as u64;
            page.element(&format!("#messages li[data-seq=\"{last}\"]")).await;
            page.scroll_to_start().await;
            let shown = page.shown().await;
            let seqs: Vec<u64> = shown.iter().map(|(seq, _, _)| *seq).collect();
            assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "{name} {conversation}: seqs 1..{last}, each once");
            let bodies: BTreeSet<String> = shown.iter().map(|(_, body, _)| body.clone()).collect();
            assert_eq!(&bodies, expected, "{name} {conversation}: every message sent, none twice");
            for (seq, body, state) in &shown {
                let own = body.starts_with(&format!("{name} ")) || (name != "alice" && body.starts_with("bob"));
                if own {
                    assert!(state == "sent" || state == "read", "{name}: own message {seq} {body} shows {state}");
                }
            }
            views.insert((name, conversation), shown.into_iter().map(|(seq, body, _)| (seq, body)).collect());
        }
    }
    for conversation in ["room", "direct"] {
        assert_eq!(views[&("alice", conversation)], views[&("bob", conversation)], "{conversation}: alice and bob");
        assert_eq!(views[&("bob", conversation)], views[&("bob2", conversation)], "{conversation}: bob's two tabs");
    }
    println!(
        "chaos: {} cuts ({deleted} connections closed by DELETE @connections, {stalled} stalled in the proxy), \
         {} WebSocket connections in all; {} messages, each through its page's outbox, {offline} of them typed \
         while the page was not connected",
        deleted + stalled,
        proxy.accepted(),
        3 * COUNT,
    );
}
