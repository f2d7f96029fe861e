//! Backends that fail as real ones do, on free ports: a server that accepts connections and
//! never answers, and a DynamoDB API that throttles every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use chat_core::DynamoDbStore;
use tokio::net::TcpListener;

use crate::dynalite::client_for;

/// A server that accepts every connection and then says nothing; stopped when dropped.
pub struct Stalled {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Stalled {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { endpoint, task }
    }

    /// Its URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A connection store whose DynamoDB is this server, with the functions' time limits.
    pub fn store(&self) -> DynamoDbStore {
        crate::dynalite::store_with(client_for(&self.endpoint, 3))
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A DynamoDB API that answers every request with `ThrottlingException`, as DynamoDB does
/// when a table's or account's throughput is exceeded; stopped when dropped.
pub struct Throttling {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Throttling {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let mut response = (StatusCode::BAD_REQUEST, body).into_response();
                let headers = response.headers_mut();
                headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
                headers.insert("x-amzn-ErrorType", HeaderValue::from_static("ThrottlingException"));
                response
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, requests, task }
    }

    /// A connection store whose DynamoDB is this server, with the functions' retries and limits.
    pub fn store(&self) -> DynamoDbStore {
        crate::dynalite::store_with(client_for(&self.endpoint, 3))
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Throttling {
    fn drop(&mut self) {
        self.task.abort();
    }
}
