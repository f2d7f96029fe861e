//! The gateway under clients that misbehave: one that stops reading, one that never answers a
//! close, sockets that send nothing, floods of connections and oversized URLs.

use std::time::{Duration, Instant};

use crate::support::{
    Client, WAIT, all_ok, connection_of, eventually, gateway_with_lambda, management, refused_status, settings,
};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_local_gateway::serve;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &str = "GET /dev?userId=raw HTTP/1.1\r\nHost: local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads from a raw socket until `needle` has arrived, within 5 s; everything read.
async fn read_until(socket: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(crate::support::WAIT, async {
        while !seen.windows(needle.len()).any(|window| window == needle) {
            let read = socket.read(&mut buffer).await.expect("read");
            assert!(read > 0, "the socket closed before {:?} arrived", String::from_utf8_lossy(needle));
            seen.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("it arrives within 5 s");
    seen
}

/// Whether the server closes a raw socket (end of stream or reset) within `within`; what it
/// sent before (a close frame, say) is read and dropped.
async fn closed_by_server(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_frame_posted_before_the_client_has_read_the_101_is_delivered_after_it() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    let mut socket = TcpStream::connect(gateway.address()).await.unwrap();
    socket.write_all(UPGRADE.as_bytes()).await.unwrap();
    eventually("$connect ran", || !lambda.events_of("ConnectFunction").is_empty()).await;
    let id = lambda.events_of("ConnectFunction")[0]["requestContext"]["connectionId"].as_str().unwrap().to_owned();

    // The client has not read a byte: the connection exists from the moment $connect accepts it.
    let posted =
        management(&gateway).post_to_connection().connection_id(&id).data(Blob::new("early bird")).send().await;

    assert!(posted.is_ok(), "{posted:?}");
    let received = read_until(&mut socket, b"early bird").await;
    assert!(received.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&received));
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_nobody_gets_429_or_410_and_is_disconnected() {
    let mut settings = settings();
    settings.write_timeout = Duration::from_secs(1);
    let gateway = serve(settings).await.unwrap();
    let store = gateway.store().unwrap();
    let _stalled = Client::connect(&gateway, "stalled").await; // never read again
    let mut alice = Client::connect(&gateway, "alice").await;
    let mut bob = Client::connect(&gateway, "bob").await;
    let stalled_id = connection_of(&gateway, "stalled").await;

    // 1,000 frames of 30 KB (30 MB): more than the socket buffers and the outbox can hold.
    let flood = tokio::spawn({
        let client = management(&gateway);
        async move {
            let mut statuses = Vec::new();
            for _ in 0..1000 {
                let result = client
                    .post_to_connection()
                    .connection_id(&stalled_id)
                    .data(Blob::new(vec![b'x'; 30_000]))
                    .send()
                    .await;
                statuses.push(match result {
                    Ok(_) => 200,
                    Err(error) => error.raw_response().map(|response| response.status().as_u16()).unwrap_or(0),
                });
            }
            statuses
        }
    });
    let mut slowest = Duration::ZERO;
    for n in 0..30 {
        let sent = Instant::now();
        alice.send_message("bob", &format!("message {n}")).await;
        assert_eq!(
            bob.receive_message().await,
            json!({"senderId": "alice", "body": format!("message {n}"), "destinationUserId": "bob"})
        );
        slowest = slowest.max(sent.elapsed());
    }
    let statuses = flood.await.unwrap();

    assert!(slowest < Duration::from_millis(500), "the slowest message between others took {slowest:?}");
    assert!(statuses.iter().all(|status| [200, 429, 410].contains(status)), "{statuses:?}");
    let refused = statuses.iter().filter(|status| **status != 200).count();
    assert!(refused > 0, "posts to a client that does not read are refused once its buffers are full");
    eventually("the stalled client's $disconnect removed its record", || store.len() == 2).await;
    assert_eq!(gateway.open_connections(), 2);
}

#[tokio::test]
async fn a_server_close_completes_when_the_client_never_answers_and_disconnect_fires_once() {
    for close in ["idle timeout", "delete"] {
        let (gateway, lambda) = gateway_with_lambda(all_ok(), |settings| {
            if close == "idle timeout" {
                settings.idle_timeout = Duration::from_millis(300);
            }
        })
        .await;
        // A client that completes the handshake and then never reads or answers again.
        let mut socket = TcpStream::connect(gateway.address()).await.unwrap();
        socket.write_all(UPGRADE.as_bytes()).await.unwrap();
        read_until(&mut socket, b"\r\n\r\n").await;
        let id = lambda.events_of("ConnectFunction")[0]["requestContext"]["connectionId"].as_str().unwrap().to_owned();
        let started = Instant::now();

        if close == "delete" {
            management(&gateway).delete_connection().connection_id(&id).send().await.unwrap();
        }

        eventually("$disconnect ran", || !lambda.disconnects().is_empty()).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{close}: took {:?}", started.elapsed());
        assert_eq!(gateway.open_connections(), 0, "{close}");
        // A positive signal that no second $disconnect follows: the server has closed the socket.
        assert!(closed_by_server(&mut socket, crate::support::WAIT).await, "{close}");
        assert_eq!(lambda.disconnects().len(), 1, "{close}");
    }
}

#[tokio::test]
async fn a_socket_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let mut settings = settings();
    settings.header_read_timeout = Duration::from_millis(500);
    let gateway = serve(settings).await.unwrap();
    let mut silent = TcpStream::connect(gateway.address()).await.unwrap();

    assert!(closed_by_server(&mut silent, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn connections_past_the_cap_on_handshakes_that_have_all_spoken_are_closed_at_once() {
    let mut settings = settings();
    settings.max_pending_handshakes = 2;
    settings.header_read_timeout = Duration::from_millis(800);
    let gateway = serve(settings).await.unwrap();
    // Two clients that started a request head and never finish it (trickling is the connection
    // rate's business and the header timeout's, not the cap's).
    let mut trickling = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gateway.address()).await.unwrap();
        stream.write_all(b"GET /dev HTTP/1.1\r\n").await.unwrap();
        trickling.push(stream);
    }
    // No signal tells when the gateway has read those bytes; a moment on loopback does.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut third = TcpStream::connect(gateway.address()).await.unwrap();
    let refused_at_once = closed_by_server(&mut third, Duration::from_millis(300)).await;
    // Once the trickling ones time out (the server closes them), their places are free again.
    for stream in &mut trickling {
        assert!(closed_by_server(stream, WAIT).await, "the header read timeout closes a trickling client");
    }
    let mut later = Client::connect(&gateway, "later").await;

    assert!(refused_at_once);
    later.expect_nothing_before_echo(&gateway).await;
}

#[tokio::test]
async fn a_flood_of_silent_sockets_does_not_lock_out_a_client_that_handshakes_promptly() {
    let mut settings = settings();
    settings.max_pending_handshakes = 20;
    settings.header_read_timeout = Duration::from_secs(30);
    let gateway = serve(settings).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(gateway.address()).await.unwrap());
    }

    // The flood goes on while a real client connects.
    let flood = async {
        for _ in 0..200 {
            silent.push(TcpStream::connect(gateway.address()).await.unwrap());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (mut client, ()) = tokio::join!(Client::connect(&gateway, "prompt"), flood);

    client.expect_nothing_before_echo(&gateway).await;
    // The oldest silent sockets were closed to make room; the newest are still waiting.
    assert!(closed_by_server(&mut silent[0], Duration::from_secs(1)).await, "the oldest silent one was closed");
    let newest = silent.last_mut().unwrap();
    assert!(!closed_by_server(newest, Duration::from_millis(200)).await, "the newest silent one still waits");
}

#[tokio::test]
async fn new_connections_past_the_rate_are_refused_with_429() {
    let mut settings = settings();
    settings.max_connects_per_second = 3;
    let gateway = serve(settings).await.unwrap();

    let mut accepted = Vec::new();
    for n in 0..3 {
        accepted.push(Client::connect(&gateway, &format!("user{n}")).await);
    }
    let fourth = Client::try_connect(&format!("{}?userId=user4", gateway.url())).await;

    assert_eq!(refused_status(fourth.err().expect("refused")), 429);
    assert_eq!(gateway.open_connections(), 3);
}

#[tokio::test]
async fn a_url_over_4096_characters_is_refused_with_414() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;

    let long = Client::try_connect(&format!("{}?userId=1&pad={}", gateway.url(), "x".repeat(4096))).await;
    let short = Client::try_connect(&format!("{}?userId=1&pad={}", gateway.url(), "x".repeat(3000))).await;

    assert_eq!(refused_status(long.err().expect("refused")), 414);
    assert!(short.is_ok());
    assert_eq!(lambda.events_of("ConnectFunction").len(), 1, "the long one never reached $connect");
}

#[tokio::test]
async fn a_gateway_listening_beyond_loopback_says_it_is_exposed() {
    let mut settings = settings();
    settings.address = "0.0.0.0:0".parse().unwrap();
    let exposed = serve(settings).await.unwrap();
    let local = serve(crate::support::settings()).await.unwrap();

    assert!(exposed.is_exposed());
    assert!(!local.is_exposed());
}

#[tokio::test(flavor = "current_thread")]
async fn a_clients_close_reason_never_reaches_the_gateways_log() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let (captured, _guard) = chat_testing::logs::Captured::install(tracing::Level::TRACE);
    let gateway = crate::support::gateway().await;
    let mut client = Client::connect(&gateway, "1").await;

    let reason = "CLIENT-CHOSEN-TEXT";
    client.send_raw(Message::Close(Some(CloseFrame { code: 4000.into(), reason: reason.into() }))).await;
    // The close code says what kind of close it was.
    eventually("the disconnect is logged with its code", || captured.text().contains(r#""code":4000"#)).await;

    assert!(!captured.text().contains(reason), "the client's text reached the log:\n{}", captured.text());
}
