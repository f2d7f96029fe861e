//! Who runs a route's function: the core crate's handlers in this process, or real Lambda
//! binaries behind the Lambda Invoke API (`cargo lambda watch`, `sam local start-lambda`).

use chat_core::delivery::queue::{FanOutPage, MemoryQueue, Pace};
use chat_core::routes::Services;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use chat_core::auth::{self, AuthConfig, AuthorizerRequest, HttpJwks, Verifier};
use chat_core::config::{self, Vars};
use chat_core::identity::Mode;
use chat_core::messenger::{Endpoint, Messenger};
use chat_core::routes::{self, Route};
use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, MemoryStore, PostError};
use futures::FutureExt;
use serde_json::Value;

use crate::contract::Contract;
use crate::error::{InvokeError, StartError};
use crate::routing::{Function, RouteTable};

/// Runs a route's function with an event and returns its answer.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Invokes `function` with `event`, as API Gateway's Lambda proxy integration does; its
    /// answer as the function wrote it (`proxy::read` reads it as API Gateway does).
    async fn invoke(&self, function: &Function, event: Value) -> Result<Value, InvokeError>;

    /// Invokes a REQUEST authorizer with its event; its answer as the function wrote it.
    async fn authorize(&self, function: &Function, event: Value) -> Result<Value, InvokeError>;
}

/// Posts the in-process handlers may have in flight at once, across every connection.
///
/// In the cloud each Lambda instance has its own HTTP pool; here every handler shares one SDK
/// client, whose pool keeps every connection it ever opened (hyper's idle limit per host is
/// unbounded). Without this bound, a load of 1,000 chatting clients held a thousand loopback
/// connections to the gateway's own @connections API, each with buffers on both ends:
/// two thirds of the gateway's memory. With it, the pool stays at this many connections.
pub const MAX_IN_PROCESS_POSTS: usize = 64;

/// The real @connections client, with at most [`MAX_IN_PROCESS_POSTS`] posts in flight.
struct BoundedMessenger {
    inner: ApiGatewayMessenger,
    in_flight: tokio::sync::Semaphore,
    contract: Option<Arc<Contract>>,
}

#[async_trait]
impl Messenger for BoundedMessenger {
    async fn post(&self, endpoint: &Endpoint, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        if let Some(contract) = &self.contract {
            contract.check_post(data);
        }
        let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        self.inner.post(endpoint, connection_id, data).await
    }
}

/// The core crate's handlers on an in-memory store, posting through this gateway's own
/// @connections API with the real SDK client, as the functions do in the cloud.
pub struct InProcess {
    store: Arc<MemoryStore>,
    messenger: Arc<BoundedMessenger>,
    /// Big rooms' pages, posted by in-process workers as SQS and its Lambda event source do in
    /// the cloud; none when the template has no [`FAN_OUT_WORKER`].
    queue: Option<MemoryQueue>,
    mode: Mode,
    verifier: Option<Verifier>,
}

/// The template's fan-out worker function (logical id): its environment sets how many workers
/// run (`FAN_OUT_WORKERS`) and at what pace (`FAN_OUT_POSTS_PER_SECOND`).
pub const FAN_OUT_WORKER: &str = "FanOutWorkerFunction";
/// Pages the in-memory queue holds before a sender waits: 1,000 pages, a million connections.
const QUEUE_PAGES: usize = 1000;
/// Times a page is tried before it is given up (SQS's `maxReceiveCount` in the template).
const MAX_RECEIVES: u32 = 5;
/// The pause before a failed page is tried again (SQS's visibility timeout, shortened).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `workers` fan-out workers over `pages`, each at its own `pace` (as each Lambda worker
/// keeps to its part of the share), until the queue closes (the gateway stops).
fn start_workers(
    pages: tokio::sync::mpsc::Receiver<FanOutPage>,
    store: Arc<MemoryStore>,
    messenger: Arc<BoundedMessenger>,
    workers: u32,
    pace: impl Fn() -> Pace,
) {
    let pages = Arc::new(tokio::sync::Mutex::new(pages));
    for _ in 0..workers {
        let (pages, store, messenger, pace) = (pages.clone(), store.clone(), messenger.clone(), pace());
        tokio::spawn(async move {
            loop {
                let Some(page) = pages.lock().await.recv().await else { return };
                for receive in 1..=MAX_RECEIVES {
                    let mut metrics = chat_core::metrics::Metrics::new(Route::SendMessage);
                    let posted = chat_core::delivery::page::fan_out_page(
                        &page,
                        store.as_ref(),
                        messenger.as_ref(),
                        Some(&pace),
                        &mut metrics,
                    );
                    match posted.await {
                        Ok(()) => break,
                        Err(failed) if receive < MAX_RECEIVES => {
                            tracing::warn!(receive, error = %failed, "fan-out page failed; trying it again");
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        Err(failed) => {
                            tracing::error!(receive, error = %failed, "fan-out page failed every time; given up (in the cloud: the dead-letter queue)");
                        }
                    }
                }
            }
        });
    }
}

/// What the in-process functions are configured with: each function's environment as the
/// template declares it, and the authorizer's function, if `$connect` has one.
pub struct InProcessConfig {
    /// The environment of each function, by logical id.
    pub environments: HashMap<String, BTreeMap<String, String>>,
    /// The logical id of the `$connect` authorizer's function.
    pub authorizer: Option<String>,
    /// The contract the handlers' posts are checked against, if any.
    pub contract: Option<Arc<Contract>>,
}

impl InProcess {
    /// Handlers for every function of `table`, posting to `management_url` (stage included).
    pub fn new(table: &RouteTable, management_url: String, config: &InProcessConfig) -> Result<Self, StartError> {
        // Each frame reaches its handler by the route key API Gateway selected, as in the
        // cloud; a route the core crate has no handler for cannot run here.
        if let Some((key, function)) = table.routes().find(|(key, _)| Route::from_key(key).is_none()) {
            return Err(StartError::UnknownRoute { function: function.logical_id.clone(), key: key.to_owned() });
        }
        let messenger = BoundedMessenger {
            inner: ApiGatewayMessenger::with_endpoint(&chat_core::aws::local(), management_url),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_PROCESS_POSTS),
            contract: config.contract.clone(),
        };
        let environment = |function: &str| config.environments.get(function).cloned().unwrap_or_default();
        let connect = table.function(Route::Connect.key()).map(|function| environment(&function.logical_id));
        let mode = connect.as_ref().map_or(Mode::Demo, |env| Mode::from_vars(&Vars::from_map(env)));
        let verifier = match &config.authorizer {
            None => None,
            Some(function) => {
                let failed = |cause: String| StartError::Authorizer { function: function.clone(), cause };
                let env = environment(function);
                let settings = AuthConfig::from_vars(&Vars::from_map(&env))
                    .map_err(|error| failed(error.to_string()))?
                    .ok_or_else(|| failed(format!("its environment sets no {}", config::AUTH_ISSUER)))?;
                let source = HttpJwks::new(&settings.jwks_url).map_err(|error| failed(error.to_string()))?;
                Some(Verifier::new(settings, Arc::new(source)))
            }
        };
        // Messages are kept as long as the template tells sendMessage's function to keep them.
        let retention = match table.function(Route::SendMessage.key()) {
            None => chat_core::limits::MESSAGE_RETENTION,
            Some(function) => {
                Vars::from_map(&environment(&function.logical_id)).message_retention().map_err(|error| {
                    StartError::Retention { function: function.logical_id.clone(), cause: error.to_string() }
                })?
            }
        };
        let store = MemoryStore::new().with_retention(retention);
        let (store, messenger) = (Arc::new(store), Arc::new(messenger));
        let queue = match config.environments.get(FAN_OUT_WORKER) {
            None => None,
            Some(env) => {
                let vars = Vars::from_map(env);
                let failed = |error: chat_core::ConfigError| StartError::FanOutWorker {
                    function: FAN_OUT_WORKER.to_owned(),
                    cause: error.to_string(),
                };
                Pace::from_vars(&vars).map_err(failed)?;
                let workers = chat_core::delivery::queue::fan_out_workers(&vars).map_err(failed)?;
                let (queue, pages) = MemoryQueue::new(QUEUE_PAGES);
                let pace = || Pace::from_vars(&Vars::from_map(env)).expect("checked above");
                start_workers(pages, store.clone(), messenger.clone(), workers, pace);
                Some(queue)
            }
        };
        Ok(Self { store, messenger, queue, mode, verifier })
    }

    /// The store the handlers use.
    pub fn store(&self) -> Arc<MemoryStore> {
        self.store.clone()
    }
}

#[async_trait]
impl Backend for InProcess {
    async fn invoke(&self, function: &Function, event: Value) -> Result<Value, InvokeError> {
        let request: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event)
            .map_err(|source| InvokeError::BadEvent { function: function.logical_id.clone(), source })?;
        let key = request.request_context.route_key.as_deref().unwrap_or_default();
        let route = Route::from_key(key).ok_or_else(|| InvokeError::FunctionError {
            function: function.logical_id.clone(),
            kind: "Unhandled".into(),
            payload: format!("no handler for route {key:?}"),
        })?;
        // A panicking handler fails its integration and nothing else, as a crashed Lambda would.
        AssertUnwindSafe(
            routes::handle(
                route,
                &request,
                &Services::new(self.store.as_ref())
                    .with_messenger(self.messenger.as_ref())
                    .with_queue(self.queue.as_ref().map(|queue| queue as _))
                    .with_mode(self.mode),
            )
            .map(|handled| handled.response),
        )
        .catch_unwind()
        .await
        .map(|response| serde_json::to_value(response).unwrap_or_default())
        .map_err(|_| InvokeError::Panicked)
    }

    async fn authorize(&self, function: &Function, event: Value) -> Result<Value, InvokeError> {
        // As a Lambda that fails reports it: an unhandled error.
        let failed = |payload: String| InvokeError::FunctionError {
            function: function.logical_id.clone(),
            kind: "Unhandled".into(),
            payload,
        };
        let verifier = self.verifier.as_ref().ok_or_else(|| failed("no authorizer configured in-process".into()))?;
        let request: AuthorizerRequest = serde_json::from_value(event)
            .map_err(|source| InvokeError::BadEvent { function: function.logical_id.clone(), source })?;
        let answer = auth::authorize(&request, verifier)
            .await
            .map_err(|error| failed(chat_core::error::Chain(&error).to_string()))?;
        Ok(serde_json::to_value(answer).unwrap_or_default())
    }
}

/// How functions are named on the Lambda Invoke API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FunctionNaming {
    /// The template's logical id, e.g. `SendMessageFunction` (`sam local start-lambda`).
    LogicalId,
    /// The cargo binary, e.g. `send-message` (`cargo lambda watch`).
    Binary,
}

/// Invocations in flight per function through the Lambda Invoke API, by default: well under the
/// 100 `cargo lambda watch` can hold, and enough to keep `sam local start-lambda`'s containers busy.
pub const LAMBDA_CONCURRENCY: usize = 8;

/// How long an invocation the gateway stopped waiting for (past the integration timeout) may
/// still hold its function's place: Lambda's longest function timeout.
const ABANDONED_INVOCATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Real Lambda binaries behind the Lambda Invoke API.
///
/// Each function has at most `concurrency` invocations in flight, as Lambda runs at most one
/// event per instance and a function at most its concurrency of instances; the rest wait here,
/// within the integration timeout. `cargo lambda watch` (1.9.2) needs that bound: it queues at
/// most 100 requests per function and, once a function has that many waiting, deadlocks for
/// good (the scheduler awaits room in the full queue while holding the lock that the runtime's
/// `/next` needs to drain it; `crates/cargo-lambda-watch/src/state.rs`, `RequestCache::upsert`).
/// An invocation the gateway stopped waiting for is still queued there, so it keeps its place
/// until it completes.
pub struct LambdaInvoke {
    client: aws_sdk_lambda::Client,
    naming: FunctionNaming,
    concurrency: usize,
    in_flight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl LambdaInvoke {
    /// Invokes functions at `endpoint`, e.g. `http://127.0.0.1:9000`, at most `concurrency` at a
    /// time each.
    pub fn new(endpoint: &str, naming: FunctionNaming, concurrency: usize) -> Self {
        let config = aws_sdk_lambda::config::Builder::from(&chat_core::aws::local())
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            // The integration timeout bounds each invocation, as in API Gateway; the functions'
            // own backend time limits would cut off a function that is still starting.
            .timeout_config(aws_config::timeout::TimeoutConfig::disabled())
            .build();
        let client = aws_sdk_lambda::Client::from_conf(config);
        Self { client, naming, concurrency: concurrency.max(1), in_flight: Default::default() }
    }

    /// The places of one function's invocations.
    fn places(&self, name: &str) -> Arc<tokio::sync::Semaphore> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        in_flight
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.concurrency)))
            .clone()
    }

    /// Invokes a function and returns its answer's bytes, or its error.
    async fn call(&self, function: &Function, event: Value) -> Result<(String, Vec<u8>), InvokeError> {
        let name = match (self.naming, &function.binary) {
            (FunctionNaming::Binary, Some(binary)) => binary.clone(),
            _ => function.logical_id.clone(),
        };
        let place = self.places(&name).acquire_owned().await.expect("the semaphore is never closed");
        let invoke = self
            .client
            .invoke()
            .function_name(&name)
            .payload(Blob::new(serde_json::to_vec(&event).unwrap_or_default()));
        // Its own task, holding the place: when the caller stops waiting, the invocation goes on
        // (as a Lambda function runs on after API Gateway's timeout) and frees it when done.
        let task = tokio::spawn(async move {
            let output = tokio::time::timeout(ABANDONED_INVOCATION_LIMIT, invoke.send()).await;
            drop(place);
            output
        });
        let output = match task.await {
            Ok(Ok(output)) => output,
            Ok(Err(_)) => return Err(InvokeError::TimedOut(ABANDONED_INVOCATION_LIMIT)),
            Err(_) => return Err(InvokeError::Panicked),
        }
        .map_err(|error| InvokeError::Invoke { function: name.clone(), source: Box::new(error.into()) })?;
        let payload = output.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(kind) = output.function_error {
            let payload = String::from_utf8_lossy(&payload).into_owned();
            return Err(InvokeError::FunctionError { function: name, kind, payload });
        }
        Ok((name, payload))
    }
}

#[async_trait]
impl Backend for LambdaInvoke {
    async fn invoke(&self, function: &Function, event: Value) -> Result<Value, InvokeError> {
        let (name, payload) = self.call(function, event).await?;
        serde_json::from_slice(&payload).map_err(|source| InvokeError::BadResponse { function: name, source })
    }

    async fn authorize(&self, function: &Function, event: Value) -> Result<Value, InvokeError> {
        let (name, payload) = self.call(function, event).await?;
        serde_json::from_slice(&payload).map_err(|source| InvokeError::BadResponse { function: name, source })
    }
}
