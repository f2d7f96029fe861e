//! Limits: API Gateway's WebSocket quotas that the handlers respect and the local gateway
//! enforces, and this project's own bounds on fan-out, connections and time.

use std::time::Duration;

/// Largest single WebSocket frame API Gateway accepts (32 KB); larger closes with 1009.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Largest message, and largest @connections post payload (128 KB); larger closes with 1009.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// A connection with no data frames for this long is closed by API Gateway.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// API Gateway closes every connection after this long, whatever its traffic.
pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(2 * 60 * 60);

/// How long API Gateway waits for a route's integration before it gives up.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// New connections API Gateway accepts per second (per account and region).
pub const MAX_NEW_CONNECTIONS_PER_SECOND: u32 = 500;

/// API Gateway's account-level throttle, per region: requests per second "across HTTP APIs, REST
/// APIs, WebSocket APIs, and WebSocket callback APIs" (client frames and @connections calls share
/// it), in bursts of up to [`ACCOUNT_BURST`]. Newer regions default to 2,500 and 1,250. Source:
/// Amazon API Gateway Developer Guide, *Amazon API Gateway quotas*.
pub const ACCOUNT_REQUESTS_PER_SECOND: u32 = 10_000;

/// The account-level throttle's burst (see [`ACCOUNT_REQUESTS_PER_SECOND`]).
pub const ACCOUNT_BURST: u32 = 5_000;

/// Longest URL API Gateway accepts on the upgrade request, in characters.
pub const MAX_URL_CHARS: usize = 4096;

/// How long a connection record outlives its connection's start, for the table's TTL.
///
/// `$disconnect` is best effort, so every record must expire by itself; the margin past the
/// maximum connection duration keeps a live connection's record from expiring under it.
pub const RECORD_TTL: Duration = Duration::from_secs(MAX_CONNECTION_DURATION.as_secs() + 60 * 60);

/// How long messages are kept by default (`MessageRetentionDays` in `template.yaml`).
pub const MESSAGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How long `sendMessage` keeps trying to store a message at its conversation's next seq, each
/// lost try meaning another sender took that seq, before giving up with `unavailable`: well
/// inside the function's 10 s, which must also hold the reads, the acknowledgement and the
/// fan-out.
pub const APPEND_TIME_LIMIT: Duration = Duration::from_secs(4);

/// Messages in a page of history when the client names no limit, and the most it may ask for.
pub const HISTORY_PAGE: usize = 50;
/// The largest `limit` of `getHistory`.
pub const MAX_HISTORY_PAGE: usize = 100;

/// Posts to one user's connections in flight at once; the rest wait their turn.
pub const MAX_POSTS_IN_FLIGHT: usize = 32;

/// Rooms one user may have joined at once; the next `joinRoom` is refused. A soft limit: two
/// joins racing past it from two tabs can both succeed.
pub const MAX_ROOMS_PER_USER: usize = 50;

/// Characters of a conversation's last message that `sync` shows.
pub const PREVIEW_CHARS: usize = 100;

/// Conversations in a page of `sync` when the client names no limit, and the most it may ask for.
pub const SYNC_PAGE: usize = 50;
/// The largest `limit` of `sync`.
pub const MAX_SYNC_PAGE: usize = 100;

/// Connections per fan-out page: a room with more subscribed connections than this is
/// delivered through the fan-out queue, a page per queued message, each posted by a worker. At
/// about 20 ms per post and [`MAX_POSTS_IN_FLIGHT`] in flight a worker posts a page in about
/// 0.6 s; the page's ids (about 20 KB) and a 128 KB frame fit an SQS message (256 KB).
pub const FAN_OUT_PAGE: usize = 1000;

/// How many times a worker posts again to a connection that answered 429, pausing 100 ms, then
/// 200 ms (plus jitter): a client whose buffer is full, or the account's throttle, slows only
/// that connection's post, and the page goes on around it.
pub const FAN_OUT_THROTTLED_RETRIES: u32 = 2;

/// Open connections one user may hold; the next `$connect` is refused with 429.
pub const MAX_CONNECTIONS_PER_USER: usize = 20;

/// How old a connection must be before a 410 from it is taken as proof that it is gone.
///
/// API Gateway completes the handshake after `$connect` returns, and a post in between answers
/// 410 for a connection that is about to open. The handshake takes milliseconds; ten seconds
/// leaves a wide margin for a slow client, and costs little: a connection that really is gone
/// in its first ten seconds keeps its record until `$disconnect` (or the TTL) removes it, and
/// posts to it meanwhile answer 410 again, which is cheap.
pub const GONE_AFTER: Duration = Duration::from_secs(10);

/// Time for one attempt of a DynamoDB or @connections call, connecting included.
pub const BACKEND_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);

/// Time for one DynamoDB or @connections call, retries included.
///
/// A handler makes at most four of these one after the other (the reads, the posts, the
/// deletes of gone connections, the reply to the sender), so 4 × 2 s stays inside the
/// functions' 10 s timeout (`template.yaml`) and a stalled backend answers `unavailable`
/// instead of timing the function out.
pub const BACKEND_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Time to open a TCP (and TLS) connection to DynamoDB or @connections.
pub const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The authorizer fetches the issuer's JWKS at most this often when a token names a key it has
/// not seen, so a flood of made-up key ids cannot hammer the issuer.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Time to fetch the issuer's JWKS, connecting included.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest JWKS document the authorizer reads.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Leeway on `exp` and `nbf` for clocks that disagree a little.
pub const TOKEN_LEEWAY: Duration = Duration::from_secs(60);
