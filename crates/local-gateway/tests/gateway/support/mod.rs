//! Helpers for the gateway's end-to-end tests: a real WebSocket client, gateways on free ports,
//! and a recording Lambda Invoke API to watch what the gateway sends its functions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use chat_core::protocol::UserId;
use chat_core::store::ConnectionStore;
use chat_local_gateway::{BackendChoice, FunctionNaming, Running, Settings, serve};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod browser;
pub mod proxy;

pub const WAIT: Duration = Duration::from_secs(5);

pub fn template_path() -> std::path::PathBuf {
    chat_testing::workspace_root().join("template.yaml")
}

/// Settings for a gateway on a free port, reading the project's template.
pub fn settings() -> Settings {
    Settings {
        address: "127.0.0.1:0".parse().unwrap(),
        template: template_path(),
        // Every frame the handlers post and every frame a client routes is checked against
        // docs/asyncapi.yaml; a mismatch fails the test when the gateway is dropped.
        contract: Some(chat_testing::contract::path()),
        ..Settings::default()
    }
}

/// A gateway on a free port with the in-process backend.
pub async fn gateway() -> Running {
    serve(settings()).await.expect("the gateway starts")
}

/// The real @connections client, for `gateway`'s stage, with the SDK's retries off so every
/// answer is seen as sent.
pub fn management(gateway: &Running) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&chat_core::aws::local())
        .endpoint_url(gateway.management_url())
        .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// The one connection `user` holds on an in-process gateway.
pub async fn connection_of(gateway: &Running, user: &str) -> String {
    let store = gateway.store().unwrap();
    let ids = store.connections_of(&UserId::parse(user).unwrap(), chat_local_gateway::events::now_ms()).await.unwrap();
    assert_eq!(ids.len(), 1);
    ids[0].clone()
}

/// A WebSocket client.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt ended when it was refused.
pub fn refused_status(error: tokio_tungstenite::tungstenite::Error) -> u16 {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

impl Client {
    pub async fn try_connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("user-agent", HeaderValue::from_static("chat-tests/1.0"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket })
    }

    /// Connects to `gateway` as `user`.
    /// Connects offering `protocols` in `Sec-WebSocket-Protocol`, as a browser's
    /// `new WebSocket(url, protocols)` does; the subprotocol the server chose, if any.
    pub async fn try_connect_offering(
        url: &str,
        protocols: &str,
    ) -> Result<(Self, Option<String>), tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(protocols).expect("a header value"));
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        let chosen =
            response.headers().get("sec-websocket-protocol").and_then(|value| value.to_str().ok()).map(str::to_owned);
        Ok((Self { socket }, chosen))
    }

    pub async fn connect(gateway: &Running, user: &str) -> Self {
        Self::try_connect(&format!("{}?userId={user}", gateway.url())).await.expect("the upgrade succeeds")
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.into())).await.expect("send");
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_message(&mut self, to: &str, body: &str) {
        self.send_json(json!({"action": "sendMessage", "destinationUserId": to, "body": body})).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        let _ = self.socket.send(message).await;
    }

    /// The next data frame, as JSON, within a few seconds.
    pub async fn receive(&mut self) -> Value {
        serde_json::from_str(&self.receive_text().await).expect("a JSON frame")
    }

    /// The next data frame's text, byte for byte, within a few seconds.
    pub async fn receive_text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame arrives within 5 s")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return text.as_str().to_owned(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next data frame, a delivered message, without its `seq` and `sentAt` (which it must
    /// carry: [`chat_testing::stored`]).
    pub async fn receive_message(&mut self) -> Value {
        chat_testing::stored(&self.receive().await)
    }

    /// Asserts that the next frame is the message `marker` (compared without `seq` and
    /// `sentAt`): a positive signal that nothing arrived before it.
    pub async fn next_message_is(&mut self, marker: Value) {
        assert_eq!(self.receive_message().await, marker, "a frame arrived before the marker");
    }

    /// Asserts that the next frame is `marker`, a frame the test made sure comes after anything
    /// it expects not to arrive: a positive signal that nothing did, with no bare sleep.
    pub async fn next_is(&mut self, marker: Value) {
        assert_eq!(self.receive().await, marker, "a frame arrived before the marker");
    }

    /// Once `gateway` has handled every frame read so far (frames run concurrently), echoes a
    /// marker through `$default` (in-process backend) and asserts it is the next frame: whatever
    /// the earlier frames caused was queued before it.
    pub async fn expect_nothing_before_echo(&mut self, gateway: &Running) {
        gateway.settled().await;
        self.send_json(json!({"action": "send", "message": "marker"})).await;
        self.next_is(json!({"message": "marker"})).await;
    }

    /// Waits for the server to close the connection and returns the close code.
    pub async fn closed_with(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await.expect("the server closes within 5 s") {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("the connection failed instead of closing: {error}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Sends `frame` every `every` until the server closes the connection; returns its close
    /// code, or `None` when the connection is still open after `within`.
    pub async fn closed_while_sending(&mut self, frame: Message, every: Duration, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        let mut next = tokio::time::Instant::now() + every;
        loop {
            tokio::select! {
                received = self.socket.next() => match received {
                    Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code.into()),
                    Some(Ok(Message::Close(None))) => return Some(1005),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => panic!("the connection failed instead of closing: {error}"),
                    None => panic!("the connection ended without a close frame"),
                },
                () = tokio::time::sleep_until(next) => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    let _ = self.socket.send(frame.clone()).await;
                    next += every;
                }
            }
        }
    }

    /// Closes with `code` and returns the code of the server's answering close frame, if any.
    pub async fn close_and_read_reply(mut self, code: u16) -> Option<u16> {
        let frame = CloseFrame { code: code.into(), reason: "bye".into() };
        self.socket.send(Message::Close(Some(frame))).await.expect("send close");
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await.expect("the server answers within 5 s") {
                Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code.into()),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    pub async fn close(mut self, code: Option<u16>) {
        let frame = code.map(|code| CloseFrame { code: code.into(), reason: "bye".into() });
        let _ = self.socket.close(frame).await;
        let _ = tokio::time::timeout(WAIT, async { while self.socket.next().await.is_some() {} }).await;
    }

    /// Drops the TCP connection without a closing handshake.
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// Polls `condition` until it holds, for up to 5 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    chat_testing::until(what, WAIT, || std::future::ready(condition())).await;
}

/// One invocation the recording Lambda Invoke API received.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub function: String,
    pub event: Value,
}

/// What a function of the recording API does with an event.
pub type Behaviour = Arc<dyn Fn(&str, &Value) -> Reply + Send + Sync>;

/// How the recording API answers an invocation.
pub enum Reply {
    Status(i64),
    Json(Value),
    /// Fails with the error "boom", as a function that panics.
    FunctionError,
    /// Fails with this error message (an authorizer's `Unauthorized`, say).
    FailsWith(&'static str),
    Sleep(Duration),
    WaitFor(Arc<tokio::sync::Notify>),
    Release(Arc<tokio::sync::Notify>),
}

#[derive(Clone)]
pub struct LambdaApi {
    pub invocations: Arc<Mutex<Vec<Invocation>>>,
    behaviour: Behaviour,
}

impl LambdaApi {
    pub fn events_of(&self, function: &str) -> Vec<Value> {
        let invocations = self.invocations.lock().unwrap();
        invocations.iter().filter(|call| call.function == function).map(|call| call.event.clone()).collect()
    }

    pub fn disconnects(&self) -> Vec<(i64, String)> {
        self.events_of("DisconnectFunction")
            .iter()
            .map(|event| {
                let context = &event["requestContext"];
                (
                    context["disconnectStatusCode"].as_i64().unwrap(),
                    context["disconnectReason"].as_str().unwrap().into(),
                )
            })
            .collect()
    }
}

async fn invoke(State(api): State<LambdaApi>, Path(function): Path<String>, body: axum::body::Bytes) -> Response {
    let event: Value = serde_json::from_slice(&body).expect("the gateway invokes with a JSON event");
    api.invocations.lock().unwrap().push(Invocation { function: function.clone(), event: event.clone() });
    let ok = |status: i64| Json(json!({"statusCode": status})).into_response();
    match (api.behaviour)(&function, &event) {
        Reply::Status(status) => ok(status),
        Reply::Json(answer) => Json(answer).into_response(),
        Reply::FunctionError => function_error("boom"),
        Reply::FailsWith(message) => function_error(message),
        Reply::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            ok(200)
        }
        Reply::WaitFor(notify) => {
            notify.notified().await;
            ok(200)
        }
        Reply::Release(notify) => {
            notify.notify_one();
            ok(200)
        }
    }
}

/// A function's failure, as the Invoke API reports it.
fn function_error(message: &str) -> Response {
    let mut response = Json(json!({"errorType": "Error", "errorMessage": message})).into_response();
    response.headers_mut().insert("X-Amz-Function-Error", HeaderValue::from_static("Unhandled"));
    response
}

/// A recording Lambda Invoke API on a free port, and a gateway that invokes it.
pub async fn gateway_with_lambda(behaviour: Behaviour, tweak: impl FnOnce(&mut Settings)) -> (Running, LambdaApi) {
    let api = LambdaApi { invocations: Arc::default(), behaviour };
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invoke))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut settings = settings();
    let concurrency = chat_local_gateway::LAMBDA_CONCURRENCY;
    settings.backend = BackendChoice::Lambda { endpoint, naming: FunctionNaming::LogicalId, concurrency };
    tweak(&mut settings);
    (serve(settings).await.expect("the gateway starts"), api)
}

/// Settings for token mode with `issuer` (its tokens are for [`chat_testing::issuer::CLIENT_ID`]).
pub fn token_mode(issuer: &chat_testing::Issuer) -> Vec<(String, String)> {
    vec![
        ("AuthIssuer".to_owned(), issuer.issuer().to_owned()),
        ("AuthAudience".to_owned(), chat_testing::issuer::CLIENT_ID.to_owned()),
    ]
}

/// Every function answers 200.
pub fn all_ok() -> Behaviour {
    Arc::new(|_, _| Reply::Status(200))
}

/// The paths of every field of a JSON value (`requestContext.identity.sourceIp`), leaving out
/// the inside of maps whose keys vary by request (headers and query parameters).
pub fn field_paths(value: &Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        if let Value::Object(map) = value {
            for (key, child) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.insert(path.clone());
                if !key.to_lowercase().contains("headers") && !key.contains("QueryStringParameters") {
                    walk(child, &path, out);
                }
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// A copy of `template.yaml` changed by `change`, in a file of its own for one test (`name`).
pub fn template_changed(name: &str, change: impl FnOnce(&mut serde_yaml_ng::Value)) -> std::path::PathBuf {
    let mut template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(template_path()).unwrap()).unwrap();
    change(&mut template);
    let path = std::env::temp_dir().join(format!("template-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_yaml_ng::to_string(&template).unwrap()).unwrap();
    path
}
