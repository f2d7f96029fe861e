//! How to run the gateway: every setting in one place, with the defaults `make dev` runs (the
//! command line takes its defaults from [`Settings::default`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_core::limits;

use crate::backend::FunctionNaming;

/// Where routes run.
#[derive(Clone, Debug)]
pub enum BackendChoice {
    /// The core crate's handlers in this process, on an in-memory store.
    InProcess,
    /// Real functions behind the Lambda Invoke API at this URL.
    Lambda {
        /// e.g. `http://127.0.0.1:9000` (`cargo lambda watch`) or `http://127.0.0.1:3002` (`sam local start-lambda --port 3002`).
        endpoint: String,
        /// How the functions are named there.
        naming: FunctionNaming,
        /// Invocations in flight per function; more wait in the gateway (see
        /// [`crate::LambdaInvoke`]).
        concurrency: usize,
    },
}

/// How to run the gateway. `Settings::default()` is what `make dev` runs, on port 3001 (the
/// command line also serves `web/` when that folder exists).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen; port 0 picks a free one.
    pub address: SocketAddr,
    /// The stage clients connect to: `ws://host:port/{stage}`.
    pub stage: String,
    /// The SAM template the routes come from.
    pub template: PathBuf,
    /// Close connections with no traffic (frames from the client, or posts to it) for this long.
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
    /// Handle a client's frames one at a time, in the order they came. Off by default, as in
    /// the cloud, where each frame is its own invocation and a later one may finish first.
    pub strict_order: bool,
    /// Apply the template stage's route throttling (`DefaultRouteSettings`, `RouteSettings`) and
    /// the account-level throttle, as API Gateway does; off lifts both (`--no-throttling`).
    pub throttling: bool,
    /// The account-level throttle over client frames and @connections calls together: requests
    /// per second and burst (API Gateway's default: 10,000 and 5,000). A frame past it gets a
    /// `Too Many Requests` frame; a call past it gets 429 `LimitExceededException`.
    pub account_throttle: AccountThrottle,
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
            strict_order: false,
            throttling: true,
            account_throttle: AccountThrottle::default(),
            backend: BackendChoice::InProcess,
            parameter_overrides: Vec::new(),
            web_root: None,
            contract: None,
        }
    }
}

/// A rate in requests per second, with a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountThrottle {
    /// Requests a second, refilled steadily.
    pub per_second: u32,
    /// Requests at once after a quiet spell.
    pub burst: u32,
}

impl Default for AccountThrottle {
    /// API Gateway's default account-level throttle.
    fn default() -> Self {
        Self { per_second: limits::ACCOUNT_REQUESTS_PER_SECOND, burst: limits::ACCOUNT_BURST }
    }
}
