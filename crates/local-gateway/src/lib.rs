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
//!
//! A frame's trip, one file per step: `socket.rs` (the upgrade and the socket loop),
//! `authorize.rs` (the `$connect` authorizer), `routing.rs` (the route selection expression),
//! `gateway.rs` (route and invoke, within the integration timeout), `backend.rs` (in-process
//! or the Lambda Invoke API), `management.rs` (the @connections API) and `web.rs` (the page).
//! [`Settings`] says how it runs; this file starts it and stops it.

mod authorize;
mod backend;
mod connections;
pub mod contract;
pub mod error;
pub mod events;
mod frames;
mod gateway;
pub mod headers;
mod ids;
mod management;
mod proxy;
pub mod routing;
mod server;
mod settings;
mod socket;
mod throttle;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use chat_core::MemoryStore;
use chat_template::{Context, Template};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use authorize::ConnectAuthorizer;
pub use backend::{Backend, FunctionNaming, InProcess, InProcessConfig, LAMBDA_CONCURRENCY, LambdaInvoke};
use connections::Registry;
pub use error::{InvokeError, StartError};
use gateway::Gateway;
use ids::IdGenerator;
use routing::RouteTable;
pub use settings::{AccountThrottle, BackendChoice, Settings};

/// How long a shutdown waits for every connection's `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A gateway that is serving.
pub struct Running {
    address: SocketAddr,
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
        format!("ws://{}/{}", self.address, self.gateway.settings.stage)
    }

    /// The chat page's address, when it serves one.
    pub fn page_url(&self) -> Option<String> {
        self.serves_page.then(|| format!("http://{}/", self.address))
    }

    /// The @connections endpoint, stage included: `http://{address}/{stage}`.
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.address, self.gateway.settings.stage)
    }

    /// The in-process backend's store (none with `--lambda-endpoint`).
    pub fn store(&self) -> Option<Arc<MemoryStore>> {
        self.store.clone()
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        self.gateway.connections.len()
    }

    /// Waits until no frame is being handled: every frame read so far has had its function
    /// run, and whatever that function posted is queued for its connection.
    pub async fn settled(&self) {
        let mut in_flight = self.gateway.in_flight.subscribe();
        let _ = in_flight.wait_for(|count| *count == 0).await;
    }

    /// Whether `$connect` has an authorizer (token mode).
    pub fn token_mode(&self) -> bool {
        self.gateway.authorizer.is_some()
    }

    /// Whether clients on other machines can reach it (it listens on more than loopback).
    pub fn is_exposed(&self) -> bool {
        server::is_exposed(&self.address)
    }

    /// Closes every connection with 1001 and waits (at most 10 s) for their tasks, each of which
    /// fires its `$disconnect`, then stops serving.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop_connections.send(true);
        self.gateway.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.gateway.tasks.wait()).await.is_err() {
            tracing::warn!(open = self.gateway.connections.len(), "connections still open after the shutdown grace");
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
    let context = Context::new(&template, &settings.parameter_overrides)?;
    let routes = RouteTable::from_template(&template)?;
    let throttles = match settings.throttling {
        true => throttle::Throttles::new(&template.stage_throttling(&context)?, &routes),
        false => throttle::Throttles::default(),
    };
    let authorizer = ConnectAuthorizer::from_template(&template, &context)?;
    let page = page(&settings, &template, &context, authorizer.as_ref())?;
    let listener = TcpListener::bind(settings.address)
        .await
        .map_err(|source| StartError::Bind { address: settings.address.to_string(), source })?;
    let address =
        listener.local_addr().map_err(|source| StartError::Bind { address: settings.address.to_string(), source })?;
    let contract = settings.contract.as_deref().map(contract::Contract::load).transpose()?.map(Arc::new);
    let management_url = format!("http://{address}/{}", settings.stage);
    let (backend, store) =
        backend(&settings, &template, &context, &routes, authorizer.as_ref(), management_url, &contract)?;

    let (stop_connections, shutdown) = watch::channel(false);
    let gateway = Arc::new(Gateway {
        api: events::Api { api_id: "local".into(), stage: settings.stage.clone(), domain_name: address.to_string() },
        routes,
        authorizer,
        backend,
        connections: Registry::default(),
        ids: IdGenerator::default(),
        new_connections: server::RateLimit::per_second(settings.max_connects_per_second),
        throttles,
        account: settings.throttling.then(|| {
            let AccountThrottle { per_second, burst } = settings.account_throttle;
            server::RateLimit::new(f64::from(per_second), burst)
        }),
        shutdown,
        tasks: TaskTracker::new(),
        contract,
        in_flight: watch::Sender::new(0),
        settings,
    });
    let serves_page = page.is_some();
    let app = router(gateway.clone(), page);
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = server::HttpLimits {
        header_read_timeout: gateway.settings.header_read_timeout,
        max_pending: gateway.settings.max_pending_handshakes,
    };
    let server = tokio::spawn(server::serve(listener, app, http, stopped));
    Ok(Running { address, store, serves_page, gateway, stop_connections, stop_server: Some(stop_server), server })
}

/// The page to serve, told token mode's issuer and user-id claim; an error when the web root
/// holds no page.
fn page(
    settings: &Settings,
    template: &Template,
    context: &Context,
    authorizer: Option<&ConnectAuthorizer>,
) -> Result<Option<web::Page>, StartError> {
    let Some(root) = settings.web_root.clone() else { return Ok(None) };
    if !web::is_page(&root) {
        return Err(StartError::WebRoot(root));
    }
    let mut environment =
        authorizer.map(|authorizer| template.environment(&authorizer.function.logical_id, context)).unwrap_or_default();
    Ok(Some(web::Page {
        root,
        stage: settings.stage.clone(),
        issuer: environment.remove(chat_core::config::AUTH_ISSUER),
        user_claim: environment.remove(chat_core::config::AUTH_USER_CLAIM).filter(|claim| !claim.is_empty()),
    }))
}

/// Where the routes run, and the in-process store when they run here.
type Chosen = (Arc<dyn Backend>, Option<Arc<MemoryStore>>);

/// Builds the backend `settings` choose.
fn backend(
    settings: &Settings,
    template: &Template,
    context: &Context,
    routes: &RouteTable,
    authorizer: Option<&ConnectAuthorizer>,
    management_url: String,
    contract: &Option<Arc<contract::Contract>>,
) -> Result<Chosen, StartError> {
    match &settings.backend {
        BackendChoice::InProcess => {
            let config = InProcessConfig {
                environments: template
                    .functions()
                    .into_iter()
                    .map(|function| {
                        let environment = template.environment(&function.logical_id, context);
                        (function.logical_id, environment)
                    })
                    .collect(),
                authorizer: authorizer.map(|authorizer| authorizer.function.logical_id.clone()),
                contract: contract.clone(),
            };
            let in_process = InProcess::new(routes, management_url, &config)?;
            let store = in_process.store();
            Ok((Arc::new(in_process), Some(store)))
        }
        BackendChoice::Lambda { endpoint, naming, concurrency } => {
            Ok((Arc::new(LambdaInvoke::new(endpoint, *naming, *concurrency)), None))
        }
    }
}

/// The WebSocket API at `/{stage}`, the @connections API beside it, and the page (or 403).
fn router(gateway: Arc<Gateway>, page: Option<web::Page>) -> Router {
    let api = Router::new().route("/{stage}", get(socket::upgrade)).route(
        "/{stage}/@connections/{connection_id}",
        get(management::get).post(management::post).delete(management::delete),
    );
    let app = match page {
        Some(page) => api.merge(web::router(page)),
        None => api.fallback(any(|| async { socket::forbidden() })),
    };
    app
        // The @connections POST reads its body itself, to answer any oversized post with API
        // Gateway's 413 rather than axum's.
        .layer(DefaultBodyLimit::disable())
        .with_state(gateway)
}
