//! `local-gateway`: API Gateway's WebSocket API on one machine. `make dev` runs it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_local_gateway::{AccountThrottle, BackendChoice, FunctionNaming, Settings, serve};
use clap::Parser;

/// A local API Gateway WebSocket API: routes from template.yaml, handlers in-process or behind
/// the Lambda Invoke API, the @connections API on the same port.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (WebSocket and @connections).
    #[arg(long, default_value_t = Settings::default().address.port(), env = "PORT")]
    port: u16,
    /// Address to listen on. Anything but loopback exposes the @connections API, which does not
    /// verify signatures, to everyone who can reach the port.
    #[arg(long, default_value_t = Settings::default().address.ip())]
    host: IpAddr,
    /// Stage: clients connect to ws://host:port/{stage}.
    #[arg(long, default_value_t = Settings::default().stage)]
    stage: String,
    /// The SAM template to read routes from.
    #[arg(long, default_value_os_t = Settings::default().template)]
    template: PathBuf,
    /// Close a connection after this many seconds without data frames.
    #[arg(long, default_value_t = Settings::default().idle_timeout.as_secs())]
    idle_timeout_secs: u64,
    /// Close every connection after this many seconds: at most API Gateway's 2 hours, which the
    /// records' expiry assumes (a connection past it would stop receiving messages).
    #[arg(long, default_value_t = Settings::default().max_duration.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=chat_core::limits::MAX_CONNECTION_DURATION.as_secs()))]
    max_duration_secs: u64,
    /// Close a connection whose client has not taken a frame for this many seconds.
    #[arg(long, default_value_t = Settings::default().write_timeout.as_secs())]
    write_timeout_secs: u64,
    /// Close an HTTP connection that has not sent its request headers within this many seconds.
    #[arg(long, default_value_t = Settings::default().header_read_timeout.as_secs())]
    header_read_timeout_secs: u64,
    /// Connections still in their HTTP phase at once; more are closed on accept.
    #[arg(long, default_value_t = Settings::default().max_pending_handshakes)]
    max_pending_handshakes: usize,
    /// New WebSocket connections per second (API Gateway's quota); more are refused with 429.
    #[arg(long, default_value_t = Settings::default().max_connects_per_second)]
    max_connects_per_sec: u32,
    /// Longest upgrade URL in characters (API Gateway's limit); longer is refused with 414.
    #[arg(long, default_value_t = Settings::default().max_url_chars)]
    max_url_chars: usize,
    /// Handle each client's frames one at a time, in order. By default they run concurrently,
    /// as on API Gateway, which documents no order between a connection's invocations.
    #[arg(long)]
    strict_order: bool,
    /// Lift the stage's route throttling (the template's DefaultRouteSettings and RouteSettings),
    /// which the gateway applies as API Gateway does: a message past it gets a `Too Many
    /// Requests` frame, a connection past `$connect`'s gets 429.
    #[arg(long)]
    no_throttling: bool,
    /// The account-level throttle, shared by client frames and @connections calls: requests per
    /// second (API Gateway's default; 2,500 in newer regions). Past it, a frame gets a `Too Many
    /// Requests` frame and a call 429 `LimitExceededException`.
    #[arg(long, default_value_t = AccountThrottle::default().per_second)]
    account_rate: u32,
    /// The account-level throttle's burst.
    #[arg(long, default_value_t = AccountThrottle::default().burst)]
    account_burst: u32,
    /// Template parameter values, as `sam deploy --parameter-overrides` takes them, e.g.
    /// `AuthIssuer=http://127.0.0.1:9001 AuthAudience=chat-local` for token mode.
    #[arg(long, num_args = 1.., value_parser = key_value)]
    parameter_overrides: Vec<(String, String)>,
    /// Run routes as Lambda functions behind this Lambda Invoke API instead of in-process,
    /// e.g. http://127.0.0.1:9000 for `cargo lambda watch`.
    #[arg(long)]
    lambda_endpoint: Option<String>,
    /// How functions are named on the Lambda Invoke API: logical-id (sam local start-lambda)
    /// or binary (cargo lambda watch).
    #[arg(long, value_enum, default_value_t = FunctionNaming::LogicalId)]
    function_names: FunctionNaming,
    /// With --lambda-endpoint: invocations in flight per function, the rest waiting in the
    /// gateway (`cargo lambda watch` stops answering for good past 100 waiting per function).
    #[arg(long, default_value_t = chat_local_gateway::LAMBDA_CONCURRENCY)]
    lambda_concurrency: usize,
    /// The chat's web page, served at `/`: default `web` when that folder exists.
    #[arg(long)]
    web_root: Option<PathBuf>,
    /// Check every frame the in-process handlers post, and every routed frame, against this
    /// AsyncAPI document (e.g. docs/asyncapi.yaml): each mismatch is logged as an error, and
    /// the gateway exits with a panic listing them. The tests always check. Needs the crate's
    /// `contract` feature (`cargo run -p chat-local-gateway --features contract`).
    #[arg(long)]
    contract: Option<PathBuf>,
    /// Log filter, e.g. info, warn, or chat_local_gateway=debug.
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log_level: String,
}

// Thousands of connections allocate and free small buffers on every message; glibc's
// allocator spends a fifth of the gateway's CPU on that under load, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `Key=Value`, as `sam` takes parameter overrides.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not Key=Value")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level)).init();
    let backend = match args.lambda_endpoint {
        Some(endpoint) => {
            BackendChoice::Lambda { endpoint, naming: args.function_names, concurrency: args.lambda_concurrency }
        }
        None => BackendChoice::InProcess,
    };
    let settings = Settings {
        address: SocketAddr::new(args.host, args.port),
        stage: args.stage,
        template: args.template,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_duration: Duration::from_secs(args.max_duration_secs),
        write_timeout: Duration::from_secs(args.write_timeout_secs),
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
        max_pending_handshakes: args.max_pending_handshakes,
        max_connects_per_second: args.max_connects_per_sec,
        max_url_chars: args.max_url_chars,
        strict_order: args.strict_order,
        throttling: !args.no_throttling,
        account_throttle: AccountThrottle { per_second: args.account_rate, burst: args.account_burst },
        backend,
        parameter_overrides: args.parameter_overrides,
        web_root: args.web_root.or_else(|| Some(PathBuf::from("web")).filter(|root| root.is_dir())),
        contract: args.contract,
        ..Settings::default()
    };
    let gateway = match serve(settings).await {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("local-gateway: {}", chat_core::error::Chain(&error));
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(url = gateway.url(), management = gateway.management_url(), "local WebSocket API ready");
    if gateway.is_exposed() {
        tracing::warn!(
            address = %gateway.address(),
            "listening beyond loopback: anyone who can reach this port can post to, read and close every \
             connection through the @connections API, which does not verify signatures here"
        );
    }
    if gateway.token_mode() {
        println!("WebSocket API:   {}?token=<JWT>   (token mode: `make token USER=alice` prints one)", gateway.url());
    } else {
        println!("WebSocket API:   {}?userId=1   (demo mode: ?userId= is trusted as is)", gateway.url());
    }
    println!("@connections:    {}/@connections/{{connectionId}}", gateway.management_url());
    if let Some(page) = gateway.page_url() {
        println!("Chat page:       {page}   (open it in a browser)");
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping: closing every connection with 1001");
    match gateway.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("local-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}
