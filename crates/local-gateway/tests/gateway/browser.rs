//! The web page (`web/`) in real headless Chromium, served by the local gateway: direct
//! messages, rooms, error frames, reconnects and token mode, as people use them.

use std::time::Duration;

use crate::support::browser::{Browser, Page};
use crate::support::proxy::Proxy;
use crate::support::{Client, WAIT, connection_of, management, settings};
use chat_core::protocol::{ErrorCode, RoomId, UserId};
use chat_core::store::{ConnectionStore, Conversation, Cursor, MessageStore, SubscriptionStore};
use chat_local_gateway::{Running, serve};
use chat_testing::Issuer;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A gateway serving the page.
async fn gateway_with_page() -> Running {
    let mut settings = settings();
    settings.web_root = Some(chat_testing::workspace_root().join("web"));
    serve(settings).await.expect("the gateway starts with the page")
}

/// Polls `check` (a look at the gateway's store) until it holds; fails saying `what` after [`WAIT`].
async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl FnMut() -> F) {
    chat_testing::until(what, WAIT, check).await;
}

/// A browser window on the page `gateway` serves, signed in as `user` (demo mode).
async fn signed_in(browser: &Browser, gateway: &Running, user: &str) -> Page {
    let page = browser.open(&gateway.page_url().expect("serves the page")).await;
    page.sign_in(user).await;
    page
}

#[tokio::test]
async fn the_gateway_redirects_to_the_page_with_its_own_websocket_url() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let page = browser.open(&gateway.page_url().unwrap()).await;

    let url = page.url().await;
    let field = page.element("#url").await.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(field, gateway.url(), "the URL field holds the gateway's own WebSocket URL ({url})");
    page.wait_for_state("closed").await;
    page.close().await;
}

#[tokio::test]
async fn alice_and_bob_exchange_direct_messages_in_two_browsers() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let alice = signed_in(&browser, &gateway, "alice").await;
    let bob = signed_in(&browser, &gateway, "bob").await;

    alice.message_user("bob").await;
    alice.say("hello there!").await;
    bob.wait_for_unread("direct:alice", 1).await;
    bob.open_conversation("direct:alice").await;
    let received = bob.wait_for_text("#messages", "hello there!").await;
    assert!(received.contains("alice · "), "who sent it and when: {received}");
    // Bob opened it: alice's page shows that he read it (his markRead's receipt).
    alice.element("#messages li.own[data-state=\"read\"]").await;
    bob.say("hi alice, bob here").await;

    alice.wait_for_text("#messages", "hi alice, bob here").await;
    alice.say("how is the weather?").await;
    bob.wait_for_text("#messages", "how is the weather?").await;
    assert_eq!(bob.unread("direct:alice").await, 0, "the open conversation has nothing unread");
    alice.element("#messages li.own:last-child[data-state=\"read\"]").await;

    // For the screenshot: a room with history, and unread messages from someone else.
    alice.join("lobby").await;
    alice.open_conversation("direct:bob").await;
    let mut carol = Client::connect(&gateway, "carol").await;
    carol.send_json(serde_json::json!({"action": "joinRoom", "roomId": "lobby"})).await;
    carol.receive().await;
    for body in ["who is around?", "lunch at one?"] {
        carol.send_json(serde_json::json!({"action": "sendMessage", "roomId": "lobby", "body": body})).await;
    }
    for body in ["alice, got a minute?", "it is about the release", "no rush"] {
        carol.send_message("alice", body).await;
    }
    alice.wait_for_unread("direct:carol", 3).await;
    alice.wait_for_unread("room:lobby", 2).await;
    alice.element("#messages li.own:last-child[data-state=\"read\"]").await;
    screenshot(&alice).await;
    alice.close().await;
    bob.close().await;
}

/// Saves the page as `target/screenshots/chat.png` (and as `$CHAT_SCREENSHOT`, which
/// `make screenshot` sets to docs/chat.png).
async fn screenshot(page: &Page) {
    let png = page.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let folder = chat_testing::workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("chat.png"), &png).unwrap();
    if let Ok(path) = std::env::var("CHAT_SCREENSHOT") {
        std::fs::write(chat_testing::workspace_root().join(path), &png).unwrap();
    }
}

#[tokio::test]
async fn three_pages_in_a_room_hear_each_other_once() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let mut pages = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let page = signed_in(&browser, &gateway, user).await;
        page.join("lobby").await;
        pages.push(page);
    }

    pages[0].say("morning, all").await;
    for page in &pages[1..] {
        page.wait_for_text("#messages", "morning, all").await;
    }
    pages[2].say("morning, alice").await;
    for page in &pages[..2] {
        page.wait_for_text("#messages", "morning, alice").await;
    }
    pages[1].say("the end").await;
    for page in [&pages[0], &pages[2]] {
        let text = page.wait_for_text("#messages", "the end").await;
        assert_eq!(text.matches("morning, all").count(), 1, "each message once: {text}");
        assert_eq!(text.matches("morning, alice").count(), 1, "each message once: {text}");
    }
    pages[0].wait_for_text("#messages", "the end").await;
    let shown = pages[0].shown().await;
    let own = shown.iter().find(|(_, body, _)| body == "morning, all").expect("alice's own message");
    assert_eq!(own.2, "sent", "alice's own message is shown as sent: {shown:?}");
    let seqs: Vec<u64> = shown.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3], "each message once, in seq order: {shown:?}");
    for page in pages {
        page.close().await;
    }
}

#[tokio::test]
async fn a_message_to_an_offline_user_is_kept_and_one_too_large_for_a_frame_is_stopped_in_the_page() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let alice = signed_in(&browser, &gateway, "alice").await;

    alice.message_user("nobody").await;
    alice.say("anyone there?").await;

    // A message bigger than a frame may be is stopped in the page: sent, the gateway would close
    // the connection (1009) and the message would be lost.
    let long = "x".repeat(chat_core::limits::MAX_FRAME_BYTES);
    alice.client.execute("document.getElementById('body').value = arguments[0]", vec![long.into()]).await.unwrap();
    alice.element("#body").await.send_keys("\u{E007}").await.unwrap();
    alice.element(".message.failed .error[data-code=\"frameTooLarge\"]").await;
    alice.wait_for_state("connected").await;
    // The server stored the message for nobody: no error came back for it.
    let failed = alice.element("#messages").await.find_all(fantoccini::Locator::Css(".message.failed")).await.unwrap();
    assert_eq!(failed.len(), 1, "only the oversized message failed");
    gateway.settled().await;
    let stored = gateway.store().unwrap();
    let (alice_id, nobody) = (UserId::parse("alice").unwrap(), UserId::parse("nobody").unwrap());
    let page = stored.history(&Conversation::direct(&alice_id, &nobody), Cursor::Newest, 10, 0).await.unwrap();
    assert_eq!(page.messages.iter().map(|message| message.body.as_str()).collect::<Vec<_>>(), ["anyone there?"]);

    // On a phone-sized window the conversation list stacks above the conversation.
    alice.client.set_window_size(390, 844).await.expect("resize");
    let (_, list_top, _, list_height) = alice.element("nav").await.rectangle().await.unwrap();
    let (_, conversation_top, conversation_width, _) = alice.element("#conversation").await.rectangle().await.unwrap();
    assert!(
        conversation_top + 1.0 >= list_top + list_height,
        "stacked: the list ({list_top} + {list_height}) ends before the conversation ({conversation_top}) starts"
    );
    assert!(conversation_width <= 390.0, "nothing wider than the window");
    alice.close().await;
}

#[tokio::test]
async fn after_the_gateway_closes_it_the_page_reconnects_and_fetches_what_it_missed_without_rejoining() {
    let gateway = gateway_with_page().await;
    let proxy = Proxy::start(gateway.address()).await;
    let browser = Browser::shared();
    let alice = browser.open(&proxy.page_url(&gateway, 60, 10)).await;
    alice.sign_in("alice").await;
    alice.join("lobby").await;
    let mut bob = Client::connect(&gateway, "bob").await;
    bob.send_json(serde_json::json!({"action": "joinRoom", "roomId": "lobby"})).await;
    bob.receive().await;
    bob.send_json(serde_json::json!({"action": "sendMessage", "roomId": "lobby", "body": "before the drop"})).await;
    alice.wait_for_text("#messages", "before the drop").await;
    let first = connection_of(&gateway, "alice").await;

    // The gateway closes alice's connection; while she is away (her reconnects refused by the
    // network until bob's message is stored), bob posts to the room.
    alice.record_states().await;
    proxy.set_refusing(true);
    management(&gateway).delete_connection().connection_id(&first).send().await.expect("deleted");
    alice.wait_until_seen("reconnecting").await;
    let away = serde_json::json!({"action": "sendMessage", "roomId": "lobby", "body": "while you were away", "clientRequestId": "away"});
    bob.send_json(away).await;
    let ack = bob.receive().await;
    assert_eq!((&ack["type"], &ack["seq"]), (&"ack".into(), &2.into()), "stored while alice was away: {ack}");
    proxy.set_refusing(false);
    alice.wait_for_state("connected").await;

    // The server resumed her room on the new connection; the page fetched what it missed.
    let shown = alice.wait_for_text("#messages", "while you were away").await;
    assert_eq!(shown.matches("You joined lobby.").count(), 1, "no second join: {shown}");
    let (store, first) = (&gateway.store().unwrap(), &first);
    let (alice_id, lobby) = (&UserId::parse("alice").unwrap(), &RoomId::parse("lobby").unwrap());
    until("alice's new connection is subscribed to lobby", || async move {
        let ids = store.connections_of(alice_id, chat_local_gateway::events::now_ms()).await.unwrap();
        let members = store.members(lobby, None).await.unwrap().connection_ids;
        ids.len() == 1 && ids[0] != *first && members.contains(&ids[0])
    })
    .await;
    bob.send_json(serde_json::json!({"action": "sendMessage", "roomId": "lobby", "body": "live again"})).await;
    alice.wait_for_text("#messages", "live again").await;
    let seqs: Vec<u64> = alice.shown().await.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(alice.element("#send").await.is_enabled().await.unwrap(), "the composer is enabled");
    alice.close().await;
}

#[tokio::test]
async fn a_reconnect_the_gateway_refuses_stops_and_says_so_instead_of_retrying() {
    let gateway = gateway_with_page().await;
    let proxy = Proxy::start(gateway.address()).await;
    let browser = Browser::shared();
    let alice = browser.open(&proxy.page_url(&gateway, 60, 10)).await;
    alice.sign_in("alice").await;
    let page_connection = connection_of(&gateway, "alice").await;
    let mut tabs = Vec::new();
    for _ in 1..chat_core::limits::MAX_CONNECTIONS_PER_USER {
        tabs.push(Client::connect(&gateway, "alice").await);
    }

    // The page drops; while the network refuses its retries, another tab takes its place, so
    // the gateway refuses the reconnect once the network is back (429, too many connections).
    alice.record_states().await;
    proxy.set_refusing(true);
    management(&gateway).delete_connection().connection_id(&page_connection).send().await.expect("deleted");
    alice.wait_until_seen("reconnecting").await;
    tabs.push(Client::connect(&gateway, "alice").await);
    proxy.set_refusing(false);

    let refused = alice.wait_for_state("refused").await;
    assert!(refused.contains("refused this connection"), "{refused}");
    assert!(alice.element("#reconnect").await.is_displayed().await.unwrap(), "Reconnect now is offered");

    tabs.pop().unwrap().close(None).await;
    let (store, alice_id) = (&gateway.store().unwrap(), &UserId::parse("alice").unwrap());
    until("the closed tab's record is removed", || async move {
        store.connections_of(alice_id, chat_local_gateway::events::now_ms()).await.unwrap().len()
            < chat_core::limits::MAX_CONNECTIONS_PER_USER
    })
    .await;
    alice.click("#reconnect").await;
    alice.wait_for_state("connected").await;
    alice.close().await;
}

#[tokio::test]
async fn reconnect_waits_double_with_jitter_up_to_thirty_seconds() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let page = browser.open(&gateway.page_url().unwrap()).await;

    // The page's own module, in the browser: the wait before each retry, at both ends of the jitter.
    let script = r#"
        const [done] = arguments;
        import("./app/connection.js").then(({ backoff }) =>
            done([0, 1, 2, 3, 4, 5, 6, 10].map((n) => [backoff(n, () => 0), backoff(n, () => 0.999999)])));
    "#;
    let waits = page.client.execute_async(script, vec![]).await.expect("the module runs");
    let waits: Vec<(u64, u64)> = serde_json::from_value(waits).unwrap();
    let ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000];
    for ((low, high), ceiling) in waits.iter().zip(ceilings) {
        assert_eq!(*low, ceiling / 2, "at least half the doubled wait");
        assert_eq!(*high, ceiling, "at most the doubled wait, capped at 30 s");
    }
    page.close().await;
}

#[test]
fn the_page_has_plain_words_for_every_error_code() {
    let protocol = std::fs::read_to_string(chat_testing::workspace_root().join("web/app/protocol.js")).unwrap();
    for code in ErrorCode::ALL {
        let name = serde_json::to_value(code).unwrap();
        let name = name.as_str().unwrap();
        assert!(protocol.contains(&format!("  {name}: \"")), "web/app/protocol.js has no words for {name}");
    }
}

#[tokio::test]
async fn the_page_keeps_messages_by_seq_notices_gaps_and_keeps_the_outbox_in_order() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let page = browser.open(&gateway.page_url().unwrap()).await;
    // The page's own modules, in the browser.
    let script = r#"
        const done = arguments[arguments.length - 1];
        Promise.all([import("/app/conversations.js"), import("/app/outbox.js")]).then(([{ Conversation }, { Outbox, RESEND_WINDOW_MS }]) => {
          const message = (seq) => ({ seq, senderId: "alice", body: `m${seq}`, sentAt: 1000 + seq });
          const c = new Conversation("direct", "alice");
          const seen = [];
          c.mergeNewest({ messages: [1, 2, 3].map(message), hasMore: false, oldestSeq: 1 });
          seen.push([c.top(), c.hasGap(), c.unread]);
          seen.push(c.add(message(3)));              // a repeat delivery
          c.add(message(5));                          // past a hole
          seen.push([c.top(), c.hasGap()]);
          c.add(message(4));                          // the late one
          seen.push([c.top(), c.hasGap(), c.sorted().map((m) => m.seq)]);
          c.heard(7);                                 // sync says there is more
          seen.push([c.top(), c.hasGap(), c.unread]);
          c.read(6); c.read(2);                       // never lowered
          seen.push(c.readSeq);
          const expired = new Conversation("room", "lobby");   // seqs 1 and 2 have expired
          expired.mergeNewest({ messages: [3, 4].map(message), hasMore: true, oldestSeq: 3 });
          seen.push([expired.start, expired.expiredBefore]);
          expired.mergeOlder({ messages: [], hasMore: false, oldestSeq: 3 });
          seen.push([expired.start, expired.expiredBefore]);

          localStorage.clear();
          const outbox = new Outbox("bob", "tab-1");
          const now = Date.now();
          const first = outbox.add("direct:alice", "first", now - 3000);
          outbox.add("room:lobby", "elsewhere", now - 2000);
          outbox.add("direct:alice", "second", now - 1000);
          const old = outbox.add("direct:carol", "old", Date.now() - RESEND_WINDOW_MS - 1);
          seen.push(outbox.next("direct:alice").body);
          outbox.remove(first.clientRequestId);
          seen.push(outbox.next("direct:alice").body);
          seen.push([outbox.next("direct:carol") ?? null, outbox.stateOf(old)]);
          seen.push(new Outbox("bob", "tab-2").next("room:lobby")?.body ?? null);  // another tab's
          outbox.clear();
          seen.push(outbox.entries().length);
          done(seen);
        }).catch((error) => done(`${error}`));
    "#;
    let seen = page.run_async(script).await;
    assert_eq!(
        seen,
        serde_json::json!([
            [3, false, 3],
            false,
            [3, true],
            [5, false, [1, 2, 3, 4, 5]],
            [5, true, 7],
            6,
            [false, false],
            [true, true],
            "first",
            "second",
            [null, "expired"],
            null,
            0
        ])
    );
    page.close().await;
}

#[test]
fn the_pages_readme_states_the_size_of_its_javascript() {
    let root = chat_testing::workspace_root();
    let bytes: u64 = std::fs::read_dir(root.join("web/app"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "js"))
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    let readme = std::fs::read_to_string(root.join("web/README.md")).unwrap();
    let stated = readme.split(" KB of JavaScript").next().and_then(|before| before.rsplit('(').next()).unwrap();
    let stated: u64 = stated.parse().unwrap_or_else(|_| panic!("web/README.md states no size: {stated:?}"));
    let kb = (bytes + 500) / 1000;
    assert!(stated.abs_diff(kb) <= 1, "web/README.md says {stated} KB of JavaScript; web/app/*.js holds {kb} KB");
}

#[tokio::test]
async fn api_gateways_own_frames_are_errors_to_the_page_not_pongs() {
    let gateway = gateway_with_page().await;
    let browser = Browser::shared();
    let page = browser.open(&gateway.page_url().unwrap()).await;
    let script = r#"
        const done = arguments[arguments.length - 1];
        import("/app/protocol.js").then((protocol) => done([
            protocol.readFrame('{"message":"Internal server error","connectionId":"V-M0CclhjoECETA=","requestId":"abc="}'),
            protocol.readFrame('{"message":"Forbidden","connectionId":"V-M0CclhjoECETA=","requestId":"abc="}'),
            protocol.readFrame('{"message":"🏓 pong"}'),
        ]));
    "#;

    let kinds = page.client.execute_async(script, Vec::new()).await.expect("the page's protocol module runs");

    assert_eq!(kinds[0], serde_json::json!({"kind": "gateway", "message": "Internal server error"}));
    assert_eq!(kinds[1], serde_json::json!({"kind": "gateway", "message": "Forbidden"}));
    assert_eq!(kinds[2], serde_json::json!({"kind": "pong", "message": "🏓 pong"}));
    page.close().await;
}

/// The real gateway binary in token mode, as `make dev-auth` runs it, with its log captured.
struct GatewayProcess {
    child: tokio::process::Child,
    page: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl GatewayProcess {
    async fn start(issuer: &Issuer) -> Self {
        let root = chat_testing::workspace_root();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_local-gateway"))
            .current_dir(&root)
            .args(["--port", "0", "--log-level", "debug", "--parameter-overrides"])
            .arg(format!("AuthIssuer={}", issuer.issuer()))
            .arg(format!("AuthAudience={}", chat_testing::issuer::CLIENT_ID))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway binary starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (page_tx, page_rx) = tokio::sync::oneshot::channel();
        let mut page_tx = Some(page_tx);
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(url) = line.strip_prefix("Chat page:").and_then(|rest| rest.split_whitespace().next()) {
                    page_tx.take().map(|tx| tx.send(url.to_owned()));
                }
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let collected = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let page = tokio::time::timeout(Duration::from_secs(30), page_rx)
            .await
            .expect("the gateway prints its page's address")
            .unwrap();
        Self { child, page, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn token_mode_end_to_end_keeps_the_token_out_of_the_url_and_the_log() {
    let issuer = Issuer::start().await;
    let gateway = GatewayProcess::start(&issuer).await;
    let browser = Browser::shared();
    let alice = browser.open(&gateway.page).await;

    // A token nobody signed is refused, and the page says so instead of retrying.
    alice.click("input[name=mode][value=token]").await;
    alice.type_into("#token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl").await;
    alice.click("#connect").await;
    let refused = alice.wait_for_state("refused").await;
    assert!(refused.contains("refused"), "{refused}");

    // A token past its expiry (and the server's 60 s of leeway): the page says so.
    let mut claims = chat_testing::issuer::id_claims(issuer.issuer(), "alice");
    claims["exp"] = serde_json::json!(chat_testing::issuer::now() - 120);
    alice.type_into("#token", &issuer.signer("rsa-1").sign(&claims)).await;
    alice.click("#connect").await;
    alice.wait_for_text("#sign-in-error", "your token has expired").await;

    alice.type_into("#user-id", "alice").await;
    alice.click("#fetch-token").await;
    let token = loop {
        let value = alice.element("#token").await.prop("value").await.unwrap().unwrap_or_default();
        if value.split('.').count() == 3 && !value.contains("mallory") && value.len() > 100 {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    alice.click("#connect").await;
    let state = alice.wait_for_state("connected").await;
    assert_eq!(state, "Connected as alice");

    let url = gateway.page.replace("http://", "ws://") + "dev";
    let bob_token = issuer.token("bob");
    let mut bob = Client::try_connect(&format!("{url}?token={bob_token}")).await.expect("bob connects");
    bob.send_message("alice", "token mode works").await;
    alice.open_conversation("direct:bob").await;
    alice.wait_for_text("#messages", "token mode works").await;
    alice.say("it does").await;
    // Alice's page read bob's message, so bob hears her read receipt too.
    let delivered = loop {
        let frame = bob.receive().await;
        if frame["type"] != "readReceipt" {
            break frame;
        }
    };
    assert_eq!(delivered["senderId"], "alice", "the verified user, not a claim");

    // A reload signs in again by itself with the token kept in the tab's session storage.
    alice.reload().await;
    assert_eq!(alice.wait_for_state("connected").await, "Connected as alice");
    alice.wait_for_text("#messages", "token mode works").await;

    assert!(!alice.url().await.contains(&token), "the token is not in the page's URL");
    let log = gateway.log();
    assert!(log.contains("connect"), "the log was captured: {log}");
    assert!(!log.contains(&token), "the token is not in the gateway's log");
    assert!(!log.contains(&bob_token), "nor one sent in the query");
    alice.close().await;
    drop(gateway.child);
}

/// `GET path` over plain HTTP/1.0: the status line and headers, then the body.
async fn http_get(gateway: &Running, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.address()).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: chat.test\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn the_page_is_served_beside_the_apis_without_changing_them() {
    let gateway = gateway_with_page().await;

    let root = http_get(&gateway, "/").await;
    assert!(root.starts_with("HTTP/1.0 307"), "{root}");
    assert!(root.to_lowercase().contains("location: /?url=ws%3a%2f%2fchat.test%2fdev\r\n"), "{root}");
    let index = http_get(&gateway, "/?url=ws://chat.test/dev").await;
    assert!(index.starts_with("HTTP/1.0 200") && index.contains("<title>Chat</title>"), "{index}");
    let module = http_get(&gateway, "/app/chat.js").await;
    assert!(module.to_lowercase().contains("content-type: text/javascript"), "{module}");

    for path in ["/app/missing.js", "/some/other/path", "/../Cargo.toml"] {
        let answer = http_get(&gateway, path).await;
        assert!(answer.starts_with("HTTP/1.0 403"), "{path}: {answer}");
    }
    let management = http_get(&gateway, "/dev/@connections/L0SM9cOFvHcCIhw=").await;
    assert!(management.starts_with("HTTP/1.0 403"), "unsigned @connections calls are still refused: {management}");
}

#[tokio::test]
async fn a_web_root_without_a_page_is_refused_at_start() {
    let mut settings = settings();
    settings.web_root = Some(chat_testing::workspace_root().join("events"));
    let error = serve(settings).await.err().expect("refused");
    assert!(error.to_string().contains("no index.html"), "{error}");
}
