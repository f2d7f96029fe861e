//! API Gateway WebSocket quotas that the handlers respect and the local gateway enforces.

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

/// How long a connection record outlives its connection's start, for the table's TTL.
///
/// `$disconnect` is best effort, so every record must expire by itself; the margin past the
/// maximum connection duration keeps a live connection's record from expiring under it.
pub const RECORD_TTL: Duration = Duration::from_secs(MAX_CONNECTION_DURATION.as_secs() + 60 * 60);
