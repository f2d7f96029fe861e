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

/// Decides whether a post fails, given the connection id and the frame.
pub type FailWhen = dyn Fn(&str, &[u8]) -> bool + Send + Sync;

/// An @connections endpoint in front of another (the local gateway's) that answers some posts
/// with 500, as API Gateway does when it fails, and passes the rest on through the real
/// `aws-sdk-apigatewaymanagement` client; stopped when dropped.
pub struct FailingConnections {
    endpoint: String,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FailingConnections {
    /// Starts one on a free port in front of `upstream` (stage included, e.g.
    /// `http://127.0.0.1:3001/dev`), failing the posts `fail` picks.
    pub async fn start(upstream: &str, fail: Arc<FailWhen>) -> Self {
        use axum::extract::{Path, State};

        #[derive(Clone)]
        struct Proxy {
            client: aws_sdk_apigatewaymanagement::Client,
            fail: Arc<FailWhen>,
            failed: Arc<AtomicUsize>,
        }
        async fn post(
            State(proxy): State<Proxy>,
            Path((_stage, id)): Path<(String, String)>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let fails = (proxy.fail)(&id, &body);
            let error = |status: StatusCode, kind: &'static str| {
                let mut response = (status, format!(r#"{{"message":"{kind}"}}"#)).into_response();
                response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
                response
            };
            if fails {
                proxy.failed.fetch_add(1, Ordering::SeqCst);
                return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerErrorException");
            }
            let posted = proxy
                .client
                .post_to_connection()
                .connection_id(&id)
                .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(body.to_vec()))
                .send()
                .await;
            use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError as E;
            match posted {
                Ok(_) => StatusCode::OK.into_response(),
                Err(failure) => match failure.as_service_error() {
                    Some(E::GoneException(_)) => error(StatusCode::GONE, "GoneException"),
                    Some(E::LimitExceededException(_)) => {
                        error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException")
                    }
                    _ => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerErrorException"),
                },
            }
        }
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&chat_core::aws::local())
            .endpoint_url(upstream)
            .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
            .build();
        let failed = Arc::new(AtomicUsize::new(0));
        let proxy =
            Proxy { client: aws_sdk_apigatewaymanagement::Client::from_conf(config), fail, failed: failed.clone() };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let app = axum::Router::new().route("/{stage}/@connections/{id}", axum::routing::post(post)).with_state(proxy);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, failed, task }
    }

    /// Its URL, without a stage.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts it answered with 500.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

impl Drop for FailingConnections {
    fn drop(&mut self) {
        self.task.abort();
    }
}
