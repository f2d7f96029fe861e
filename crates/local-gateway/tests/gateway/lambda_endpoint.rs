//! The `--lambda-endpoint` backend with the real Lambda binaries: `cargo lambda watch` serves
//! them on the Lambda Invoke API, and they store connections in dynalite.

use std::process::Stdio;
use std::time::Duration;

use crate::support::Client;
use chat_core::protocol::UserId;
use chat_core::store::ConnectionStore;
use chat_local_gateway::events::now_ms;
use chat_local_gateway::{BackendChoice, FunctionNaming, serve};
use chat_testing::Dynalite;
use chat_testing::dynalite::free_port;
use serde_json::json;
use tokio::process::{Child, Command};

use chat_core::config;
use chat_testing::dynalite::{MEMBERSHIPS_TABLE, MESSAGES_TABLE, TABLE, USERS_TABLE};

/// Builds the functions' binaries as `cargo lambda watch` builds them (`cargo build --bin …`, the
/// features those binaries resolve), so that it finds them built and serves them at once. (Built
/// with `make test`'s targets and features instead, they would reuse its dependencies, but cargo
/// lambda watch would then compile tokio and the SDKs again before its first answer.)
pub(crate) async fn build_functions() {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.arg("build").current_dir(chat_testing::workspace_root());
    for binary in chat_testing::deployment::binaries() {
        cargo.args(["--bin", &binary]);
    }
    assert!(cargo.status().await.expect("cargo runs").success(), "the functions build");
}

pub(crate) fn cargo_lambda_watch(
    invoke_port: u16,
    gateway_port: u16,
    dynamodb: &str,
    env: &[(String, String)],
) -> Child {
    let root = chat_testing::workspace_root();
    Command::new(chat_testing::tool("venv/bin/cargo-lambda"))
        .args(["lambda", "watch", "--ignore-changes", "--invoke-port", &invoke_port.to_string()])
        .current_dir(root)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env(config::TABLE_NAME, TABLE)
        .env(config::MEMBERSHIPS_TABLE_NAME, MEMBERSHIPS_TABLE)
        .env(config::MESSAGES_TABLE_NAME, MESSAGES_TABLE)
        .env(config::USERS_TABLE_NAME, USERS_TABLE)
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .env(config::MANAGEMENT_ENDPOINT, format!("http://127.0.0.1:{gateway_port}/dev"))
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch starts")
}

pub(crate) async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "cargo lambda watch did not listen on {port} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn stop(mut child: Child) {
    // SIGINT lets cargo lambda watch stop the function processes it started.
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// `cargo lambda watch` serving the functions on `dynamodb`, and a gateway in front of it.
async fn start_chat(dynamodb: &str) -> (chat_local_gateway::Running, Child) {
    start_chat_with(dynamodb, Vec::new()).await
}

/// The same, with template parameters for the gateway; in token mode the functions get the
/// issuer's settings too, as the template gives them in the cloud.
async fn start_chat_with(dynamodb: &str, parameters: Vec<(String, String)>) -> (chat_local_gateway::Running, Child) {
    let (gateway_port, invoke_port) = (free_port(), free_port());
    let value = |name: &str| parameters.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let env: Vec<(String, String)> =
        [("AuthIssuer", chat_core::config::AUTH_ISSUER), ("AuthAudience", chat_core::config::AUTH_AUDIENCE)]
            .iter()
            .filter_map(|(parameter, variable)| Some(((*variable).to_owned(), value(parameter)?)))
            .collect();
    let watch = cargo_lambda_watch(invoke_port, gateway_port, dynamodb, &env);
    wait_for_port(invoke_port).await;
    let mut settings = crate::support::settings();
    settings.address = ([127, 0, 0, 1], gateway_port).into();
    settings.backend = BackendChoice::Lambda {
        endpoint: format!("http://127.0.0.1:{invoke_port}"),
        naming: FunctionNaming::Binary,
        concurrency: chat_local_gateway::LAMBDA_CONCURRENCY,
    };
    settings.parameter_overrides = parameters;
    (serve(settings).await.expect("the gateway starts"), watch)
}

#[tokio::test]
async fn the_real_binaries_chat_through_cargo_lambda_watch_and_dynalite() {
    build_functions().await;
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(TABLE).await;
    let (gateway, watch) = start_chat(dynalite.endpoint()).await;

    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;
    alice.send_message("bob", "hello from a real Lambda binary").await;
    let received = bob.receive().await;
    alice.send_text(r#"{"action":"send"}"#).await;
    let pong = alice.receive().await;
    bob.close(Some(1000)).await;
    let bob_id = UserId::parse("bob").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !store.connections_of(&bob_id, now_ms()).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "$disconnect deleted bob's record in dynalite");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(
        chat_testing::stored(&received),
        json!({"senderId": "alice", "body": "hello from a real Lambda binary", "destinationUserId": "bob"})
    );
    assert_eq!(pong, json!({"message": "🏓 pong"}));
    assert_eq!(store.connections_of(&UserId::parse("alice").unwrap(), now_ms()).await.unwrap().len(), 1);
    alice.close(Some(1000)).await;
    gateway.shutdown().await.unwrap();
    stop(watch).await;
}

#[tokio::test]
async fn when_dynalite_stops_mid_chat_senders_hear_unavailable_and_the_chat_recovers_without_a_restart() {
    build_functions().await;
    let data = std::env::temp_dir().join(format!("chat-dynalite-{}", free_port()));
    let dynamodb_port = free_port();
    let dynalite = Dynalite::start_persistent(dynamodb_port, &data);
    dynalite.create_table(TABLE).await;
    let (gateway, mut watch) = start_chat(dynalite.endpoint()).await;
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;
    alice.send_message("bob", "before").await;
    assert_eq!(bob.receive_message().await, json!({"senderId": "alice", "body": "before", "destinationUserId": "bob"}));

    drop(dynalite);
    alice.send_message("bob", "during").await;
    let during = alice.receive().await;
    let still_running = watch.try_wait().expect("cargo lambda watch can be asked").is_none();
    let _dynalite = Dynalite::start_persistent(dynamodb_port, &data);
    alice.send_message("bob", "after").await;
    let after = bob.receive().await;

    assert_eq!(during["error"], "unavailable", "{during}");
    assert!(still_running, "no process crashed");
    assert_eq!(
        chat_testing::stored(&after),
        json!({"senderId": "alice", "body": "after", "destinationUserId": "bob"}),
        "bob got nothing during the outage, then this"
    );
    alice.close(Some(1000)).await;
    bob.close(Some(1000)).await;
    gateway.shutdown().await.unwrap();
    stop(watch).await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn token_mode_runs_the_real_authorizer_binary_against_the_issuers_jwks() {
    build_functions().await;
    let issuer = chat_testing::Issuer::start().await;
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(TABLE).await;
    let (gateway, watch) = start_chat_with(dynalite.endpoint(), crate::support::token_mode(&issuer)).await;

    let offered = format!("chat, {}", issuer.token("alice"));
    let (mut alice, chosen) =
        Client::try_connect_offering(&format!("{}?userId=bob", gateway.url()), &offered).await.expect("alice connects");
    assert_eq!(chosen.as_deref(), Some("chat"));
    let mut bob =
        Client::try_connect(&format!("{}?token={}", gateway.url(), issuer.token("bob"))).await.expect("bob connects");
    bob.send_message("alice", "verified hello").await;
    assert_eq!(
        alice.receive_message().await,
        json!({"senderId": "bob", "body": "verified hello", "destinationUserId": "alice"})
    );
    assert_eq!(store.connections_of(&UserId::parse("alice").unwrap(), now_ms()).await.unwrap().len(), 1);
    assert_eq!(
        store.connections_of(&UserId::parse("bob").unwrap(), now_ms()).await.unwrap().len(),
        1,
        "bob's own tab only"
    );

    let forged =
        chat_testing::issuer::Signer::rsa("rsa-1").sign(&chat_testing::issuer::id_claims(issuer.issuer(), "mallory"));
    let refused = Client::try_connect(&format!("{}?token={forged}", gateway.url())).await.err().expect("refused");
    assert_eq!(crate::support::refused_status(refused), 403);
    assert!(store.connections_of(&UserId::parse("mallory").unwrap(), now_ms()).await.unwrap().is_empty());
    assert_eq!(issuer.fetches(), 1, "the warm authorizer fetched the JWKS once");

    alice.close(Some(1000)).await;
    bob.close(Some(1000)).await;
    gateway.shutdown().await.unwrap();
    stop(watch).await;
}

#[tokio::test]
async fn on_the_real_binaries_and_dynalite_a_client_back_from_an_absence_holds_all_1100_messages() {
    build_functions().await;
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let (gateway, watch) = start_chat(dynalite.endpoint()).await;

    crate::resumption::a_client_back_from_an_absence_catches_up_on_everything(&gateway, 1000, 100).await;

    stop(watch).await;
}

#[tokio::test]
async fn a_burst_of_300_room_messages_is_stored_once_and_delivered_and_the_next_client_connects_at_once() {
    use chat_core::store::{Conversation, Cursor, MessageStore};
    build_functions().await;
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(TABLE).await;
    let (gateway, watch) = start_chat(dynalite.endpoint()).await;
    let mut clients = Vec::new();
    for n in 0..10 {
        let mut client = Client::connect(&gateway, &format!("user{n}")).await;
        client.send_json(json!({"action": "joinRoom", "roomId": "lobby"})).await;
        assert_eq!(client.receive().await["joined"], true);
        clients.push(client);
    }

    // Ten clients each write 30 messages at once: 300 sendMessage frames within a second.
    let started = tokio::time::Instant::now();
    for (n, client) in clients.iter_mut().enumerate() {
        for k in 0..30 {
            client.send_json(json!({"action": "sendMessage", "roomId": "lobby", "body": format!("{n}-{k}")})).await;
        }
    }
    let written = started.elapsed();
    // While the burst is being handled, a new client connects.
    let connecting = tokio::time::Instant::now();
    let late = Client::connect(&gateway, "late").await;
    let connected_in = connecting.elapsed();
    let mut received = Vec::new();
    for client in &mut clients {
        let mut bodies = Vec::new();
        for _ in 0..270 {
            let frame = client.receive().await;
            assert!(frame["senderId"].is_string(), "only messages, no gateway frame: {frame}");
            bodies.push(frame["body"].as_str().unwrap().to_owned());
        }
        received.push(bodies);
    }

    assert!(written < Duration::from_secs(1), "the burst took {written:?} to write");
    for (n, bodies) in received.iter().enumerate() {
        let mut expected: Vec<String> =
            (0..10).filter(|m| *m != n).flat_map(|m| (0..30).map(move |k| format!("{m}-{k}"))).collect();
        let mut got = bodies.clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "user{n} received every other member's messages once");
    }
    let lobby = Conversation::Room(chat_core::protocol::RoomId::parse("lobby").unwrap());
    let mut stored = Vec::new();
    let mut cursor = Cursor::After(0);
    loop {
        let page = store.history(&lobby, cursor, 100, now_ms()).await.unwrap();
        stored.extend(page.messages.iter().map(|message| (message.seq, message.body.clone())));
        match (page.has_more, page.messages.last()) {
            (true, Some(last)) => cursor = Cursor::After(last.seq),
            _ => break,
        }
    }
    assert_eq!(stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (1..=300).collect::<Vec<u64>>());
    let mut bodies: Vec<&String> = stored.iter().map(|(_, body)| body).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 300, "each message stored once");
    assert!(connected_in < Duration::from_secs(5), "a new client connected in {connected_in:?}");
    drop(late);
    gateway.shutdown().await.unwrap();
    stop(watch).await;
}
