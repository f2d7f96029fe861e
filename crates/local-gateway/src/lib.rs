//! A local emulator of API Gateway's WebSocket API, so the whole chat runs on one machine with
//! no AWS account and no Docker.
//!
//! Routes come from `template.yaml`. Each route runs either in-process (the core crate's
//! handlers on the in-memory store, posting back through this gateway's own @connections API
//! with the real SDK client) or as a real Lambda binary behind the Lambda Invoke API. Behaviour
//! follows AWS's developer guide for WebSocket APIs
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api.html>,
//! its quotas page and the @connections reference): event shapes, ids, limits, close codes,
//! error frames and the @connections API.

mod authorizer;
mod backend;
mod connections;
pub mod contract;
pub mod error;
pub mod events;
mod ids;
mod management;
pub mod routing;
mod server;
mod socket;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use chat_core::MemoryStore;
use chat_core::limits;
use chat_template::Template;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use backend::{Backend, FunctionNaming, InProcess, InProcessConfig, LambdaInvoke};
use connections::Registry;
pub use error::{InvokeError, StartError};
use ids::IdGenerator;
use routing::{ConnectAuthorizer, RouteTable};

/// Where routes run.
#[derive(Clone, Debug)]
pub enum BackendChoice {
    /// The core crate's handlers in this process, on an in-memory store.
    InProcess,
    /// Real functions behind the Lambda Invoke API at this URL.
    Lambda {
        /// e.g. `http://127.0.0.1:9000` (`cargo lambda watch`) or `http://127.0.0.1:3001` (`sam local start-lambda`).
        endpoint: String,
        /// How the functions are named there.
        naming: FunctionNaming,
    },
}

/// How to run the gateway. `Settings::default()` is what `make dev` runs, on port 3001.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen; port 0 picks a free one.
    pub address: SocketAddr,
    /// The stage clients connect to: `ws://host:port/{stage}`.
    pub stage: String,
    /// The SAM template the routes come from.
    pub template: PathBuf,
    /// Close connections with no data frames for this long.
    pub idle_timeout: Duration,
    /// Close every connection after this long.
    pub max_duration: Duration,
    /// Give up on an integration after this long.
    pub integration_timeout: Duration,
    /// Close a connection when writing one frame to it takes longer than this (the client is
    /// not reading).
    pub write_timeout: Duration,
    /// A client must send its request headers within this long.
    pub header_read_timeout: Duration,
    /// Connections still in their HTTP phase (handshakes, @connections calls) at once.
    pub max_pending_handshakes: usize,
    /// New WebSocket connections accepted per second; more get 429.
    pub max_connects_per_second: u32,
    /// Longest upgrade URL accepted, in characters; longer gets 414.
    pub max_url_chars: usize,
    /// Where routes run.
    pub backend: BackendChoice,
    /// Template parameter values (`Key=Value`, as `sam deploy --parameter-overrides` takes
    /// them): they decide the template's conditions, and with them whether `$connect` has an
    /// authorizer, and the functions' environment.
    pub parameter_overrides: Vec<(String, String)>,
    /// The chat's web page to serve at `/` (a folder with `index.html`); none serves no page.
    pub web_root: Option<PathBuf>,
    /// The protocol's AsyncAPI document (`docs/asyncapi.yaml`) to check frames against: posts
    /// of the in-process handlers and routed frames. Tests set it; a gateway with violations
    /// panics when dropped.
    pub contract: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 3001)),
            stage: "dev".into(),
            template: "template.yaml".into(),
            idle_timeout: limits::IDLE_TIMEOUT,
            max_duration: limits::MAX_CONNECTION_DURATION,
            integration_timeout: limits::INTEGRATION_TIMEOUT,
            write_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            max_connects_per_second: limits::MAX_NEW_CONNECTIONS_PER_SECOND,
            max_url_chars: limits::MAX_URL_CHARS,
            backend: BackendChoice::InProcess,
            parameter_overrides: Vec::new(),
            web_root: None,
            contract: None,
        }
    }
}

/// The bounds each connection is held to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    write_timeout: Duration,
    max_url_chars: usize,
}

/// The state shared by the socket tasks and the @connections API.
pub(crate) struct Gateway {
    api: events::Api,
    routes: RouteTable,
    authorizer: Option<ConnectAuthorizer>,
    backend: Arc<dyn Backend>,
    connections: Registry,
    ids: IdGenerator,
    idle_timeout: Duration,
    max_duration: Duration,
    integration_timeout: Duration,
    limits: ConnectionLimits,
    new_connections: server::RateLimit,
    shutdown: watch::Receiver<bool>,
    contract: Option<Arc<contract::Contract>>,
}

/// A gateway that is serving.
pub struct Running {
    address: SocketAddr,
    stage: String,
    store: Option<Arc<MemoryStore>>,
    serves_page: bool,
    gateway: Arc<Gateway>,
    stop_connections: watch::Sender<bool>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `ws://{address}/{stage}`.
    pub fn url(&self) -> String {
        format!("ws://{}/{}", self.address, self.stage)
    }

    /// The chat page's address, when it serves one.
    pub fn page_url(&self) -> Option<String> {
        self.serves_page.then(|| format!("http://{}/", self.address))
    }

    /// The @connections endpoint, stage included: `http://{address}/{stage}`.
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.address, self.stage)
    }

    /// The in-process backend's store (none with `--lambda-endpoint`).
    pub fn store(&self) -> Option<Arc<MemoryStore>> {
        self.store.clone()
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        self.gateway.connections.len()
    }

    /// Whether `$connect` has an authorizer (token mode).
    pub fn token_mode(&self) -> bool {
        self.gateway.authorizer.is_some()
    }

    /// Whether clients on other machines can reach it (it listens on more than loopback).
    pub fn is_exposed(&self) -> bool {
        server::is_exposed(&self.address)
    }

    /// Closes every connection with 1001 (firing `$disconnect` for each), then stops serving.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop_connections.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.gateway.connections.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.unwrap_or(Ok(()))
    }
}

impl Drop for Running {
    /// With [`Settings::contract`], fails loudly when any frame broke the contract.
    fn drop(&mut self) {
        let violations = self.gateway.contract.as_ref().map(|contract| contract.violations()).unwrap_or_default();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!("frames broke the contract (docs/asyncapi.yaml):\n{}", violations.join("\n"));
        }
    }
}

/// Reads the template, binds the port and starts serving.
pub async fn serve(settings: Settings) -> Result<Running, StartError> {
    let template = Template::load(&settings.template)?;
    let context = chat_template::Context::new(&template, &settings.parameter_overrides)?;
    let routes = RouteTable::from_template(&template)?;
    let authorizer = ConnectAuthorizer::from_template(&template, &context)?;
    let mut authorizer_env = authorizer
        .as_ref()
        .map(|authorizer| template.environment(&authorizer.function.logical_id, &context))
        .unwrap_or_default();
    let page = settings.web_root.clone().map(|root| web::Page {
        root,
        stage: settings.stage.clone(),
        issuer: authorizer_env.remove(chat_core::config::AUTH_ISSUER),
        user_claim: authorizer_env.remove(chat_core::config::AUTH_USER_CLAIM).filter(|claim| !claim.is_empty()),
    });
    if let Some(root) = settings.web_root.as_ref().filter(|root| !web::is_page(root)) {
        return Err(StartError::WebRoot(root.clone()));
    }
    let listener = TcpListener::bind(settings.address)
        .await
        .map_err(|source| StartError::Bind { address: settings.address.to_string(), source })?;
    let address =
        listener.local_addr().map_err(|source| StartError::Bind { address: settings.address.to_string(), source })?;
    let management_url = format!("http://{address}/{}", settings.stage);
    let contract = settings.contract.as_deref().map(contract::Contract::load).transpose()?.map(Arc::new);

    let (backend, store): (Arc<dyn Backend>, _) = match &settings.backend {
        BackendChoice::InProcess => {
            let config = InProcessConfig {
                environments: template
                    .functions()
                    .into_iter()
                    .map(|function| {
                        let environment = template.environment(&function.logical_id, &context);
                        (function.logical_id, environment)
                    })
                    .collect(),
                authorizer: authorizer.as_ref().map(|authorizer| authorizer.function.logical_id.clone()),
                contract: contract.clone(),
            };
            let in_process = InProcess::new(&routes, management_url, &config)?;
            let store = in_process.store();
            (Arc::new(in_process), Some(store))
        }
        BackendChoice::Lambda { endpoint, naming } => (Arc::new(LambdaInvoke::new(endpoint, *naming)), None),
    };
    let (stop_connections, shutdown) = watch::channel(false);
    let gateway = Arc::new(Gateway {
        api: events::Api { api_id: "local".into(), stage: settings.stage.clone(), domain_name: address.to_string() },
        routes,
        authorizer,
        backend,
        connections: Registry::default(),
        ids: IdGenerator::default(),
        idle_timeout: settings.idle_timeout,
        max_duration: settings.max_duration,
        integration_timeout: settings.integration_timeout,
        limits: ConnectionLimits { write_timeout: settings.write_timeout, max_url_chars: settings.max_url_chars },
        new_connections: server::RateLimit::per_second(settings.max_connects_per_second),
        shutdown,
        contract,
    });

    let api = Router::new().route("/{stage}", get(socket::upgrade)).route(
        "/{stage}/@connections/{connection_id}",
        get(management::get).post(management::post).delete(management::delete),
    );
    let serves_page = page.is_some();
    let app = match page {
        Some(page) => api.merge(web::router(page)),
        None => api.fallback(any(|| async { socket::forbidden() })),
    };
    let app = app
        // The @connections POST reads its body itself, to answer any oversized post with API
        // Gateway's 413 rather than axum's.
        .layer(DefaultBodyLimit::disable())
        .with_state(gateway.clone());
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = server::HttpLimits {
        header_read_timeout: settings.header_read_timeout,
        max_pending: settings.max_pending_handshakes,
    };
    let server = tokio::spawn(server::serve(listener, app, http, stopped));
    Ok(Running {
        address,
        stage: settings.stage,
        store,
        serves_page,
        gateway,
        stop_connections,
        stop_server: Some(stop_server),
        server,
    })
}
