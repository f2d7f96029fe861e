//! The gateway's @connections API through the real `aws-sdk-apigatewaymanagement` client.

use std::time::Duration;

use crate::support::{Client, connection_of, eventually, gateway, management};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_core::store::ConnectionStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn posting_to_a_connection_delivers_the_data_as_a_frame() {
    let gateway = gateway().await;
    let mut client = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;

    management(&gateway).post_to_connection().connection_id(&id).data(Blob::new(r#"{"hi":1}"#)).send().await.unwrap();

    assert_eq!(client.receive().await, json!({"hi": 1}));
}

#[tokio::test]
async fn posting_to_an_unknown_connection_is_a_gone_exception() {
    let gateway = gateway().await;

    let error = management(&gateway)
        .post_to_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();

    assert!(error.as_service_error().is_some_and(|error| error.is_gone_exception()), "{error:?}");
}

#[tokio::test]
async fn posting_more_than_128_kb_is_a_payload_too_large_exception_at_any_size() {
    let gateway = gateway().await;
    let _client = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;

    for size in [128 * 1024 + 1, 600 * 1024, 5 * 1024 * 1024] {
        let error = management(&gateway)
            .post_to_connection()
            .connection_id(&id)
            .data(Blob::new(vec![b'x'; size]))
            .send()
            .await
            .unwrap_err();

        assert!(
            error.as_service_error().is_some_and(|error| error.is_payload_too_large_exception()),
            "{size}: {error:?}"
        );
    }
}

#[tokio::test]
async fn getting_a_connection_tells_when_it_opened_and_who_is_on_it() {
    let gateway = gateway().await;
    let _client = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;

    let connection = management(&gateway).get_connection().connection_id(&id).send().await.unwrap();

    let identity = connection.identity().unwrap();
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some("chat-tests/1.0"));
    let connected = connection.connected_at().unwrap().secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - connected).abs() < 60, "connectedAt {connected} is now");
    assert!(connection.last_active_at().unwrap().secs() >= connected);
}

#[tokio::test]
async fn deleting_a_connection_closes_the_socket_and_fires_disconnect() {
    let gateway = gateway().await;
    let mut client = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;

    management(&gateway).delete_connection().connection_id(&id).send().await.unwrap();

    assert_eq!(client.closed_with().await, 1000);
    let store = gateway.store().unwrap();
    eventually("$disconnect removed the record", || store.is_empty()).await;
    let again = management(&gateway).delete_connection().connection_id(&id).send().await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|error| error.is_gone_exception()));
}

#[tokio::test]
async fn unsigned_requests_are_forbidden() {
    let gateway = gateway().await;
    let mut stream = tokio::net::TcpStream::connect(gateway.address()).await.unwrap();

    let request = "POST /dev/@connections/L0SM9cOFvHcCIhw%3D HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await.unwrap().unwrap();

    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(response.to_lowercase().contains("x-amzn-errortype: forbiddenexception"), "{response}");
}

#[tokio::test]
async fn a_send_message_to_a_connection_that_is_gone_cleans_its_record() {
    let gateway = gateway().await;
    let store = gateway.store().unwrap();
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;
    // A record whose socket closed a minute ago, as when $disconnect never ran (not yet expired:
    // an expired one is no recipient at all).
    let bob_id = chat_core::protocol::UserId::parse("bob").unwrap();
    let opened = chat_local_gateway::events::now_ms() - 60_000;
    store.save(&chat_core::store::Connection::new("GoneGoneGoneGo==", bob_id, opened)).await.unwrap();

    alice.send_message("bob", "hi").await;

    assert_eq!(bob.receive_message().await, json!({"senderId": "alice", "body": "hi", "destinationUserId": "bob"}));
    eventually("the stale record is gone", || store.len() == 2).await;
    alice.expect_nothing_before_echo(&gateway).await;
}
