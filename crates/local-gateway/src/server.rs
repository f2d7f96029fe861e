//! HTTP serving with bounded handshakes: a time limit on reading each request's headers, a cap
//! on connections still in their HTTP phase (not yet upgraded) that makes room by closing the
//! oldest silent one, and API Gateway's rate of new WebSocket connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::headers::{HeadLog, Watched};

/// How the HTTP side is bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpLimits {
    /// A client must send a request's headers within this long (idle keep-alive included).
    pub header_read_timeout: Duration,
    /// Connections not yet upgraded (or plain HTTP) at once; a new one past it takes the place
    /// of the oldest that has sent nothing, or is closed on accept when all have.
    pub max_pending: usize,
}

/// Connections in their HTTP phase, oldest first, each with what it has sent and a way to
/// close it.
#[derive(Default)]
struct Pending {
    next: u64,
    open: BTreeMap<u64, (Arc<HeadLog>, CancellationToken)>,
}

impl Pending {
    fn add(&mut self, log: Arc<HeadLog>, close: CancellationToken) -> u64 {
        self.next += 1;
        self.open.insert(self.next, (log, close));
        self.next
    }

    /// Closes the oldest connection that has not sent a byte, if there is one.
    fn close_oldest_silent(&mut self) -> bool {
        let silent = self.open.iter().find(|(_, (log, _))| !log.spoke()).map(|(&key, _)| key);
        silent.and_then(|key| self.open.remove(&key)).map(|(_, close)| close.cancel()).is_some()
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // Each update is one map operation, so a poisoned lock holds a valid map.
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts connections until `stop` fires, serving each with `app`.
///
/// At most `max_pending` connections may be in their HTTP phase. When a new one finds them all
/// taken, the oldest that has sent nothing at all is closed to make room: a flood of sockets
/// that never speak cannot lock out clients that complete their handshake promptly. When every
/// place is held by a connection that has spoken, the new one is closed at once.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_pending));
    let pending = Arc::new(Mutex::new(Pending::default()));
    loop {
        let (tcp, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => return Ok(()),
        };
        let permit = match places.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if lock(&pending).close_oldest_silent() => {
                tracing::info!(max = limits.max_pending, "handshakes at the cap; closed the oldest silent one");
                // The closed connection's task gives its place back at once.
                match tokio::time::timeout(Duration::from_secs(1), places.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => continue,
                }
            }
            Err(_) => {
                tracing::warn!(max = limits.max_pending, "too many connections in their handshake; closing a new one");
                continue;
            }
        };
        // Small frames go out at once, as from API Gateway: without TCP_NODELAY, Nagle's
        // algorithm holds a frame back while an earlier one is unacknowledged.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let (tcp, heads) = Watched::new(tcp);
        let close = CancellationToken::new();
        let key = lock(&pending).add(heads.clone(), close.clone());
        let service = app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(client));
            if let Some(head) = heads.next_head() {
                request.extensions_mut().insert(head);
            } else {
                tracing::debug!("a request's head was not seen: its event gets lower-case header names");
            }
            decode_at_sign(request.uri_mut());
            request.map(Body::new)
        });
        let pending = pending.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
                .with_upgrades();
            // Ends when the connection closes, is handed over to the WebSocket, or is closed to
            // make room.
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                },
                () = close.cancelled() => {}
            }
            lock(&pending).open.remove(&key);
            drop(permit);
        });
    }
}

/// `/{stage}/%40connections/…` → `/{stage}/@connections/…`: AWS's developer guide encodes the
/// `@` in its own example (`…/prod/%40connections/R0oXAdfD0kwCH6w%3D`, "Use @connections
/// commands in your backend service"), and the router matches paths as sent.
fn decode_at_sign(uri: &mut hyper::Uri) {
    let path = uri.path();
    let Some(at) = path.find("/%40") else { return };
    let decoded = format!("{}/@{}", &path[..at], &path[at + "/%40".len()..]);
    let path_and_query = match uri.query() {
        Some(query) => format!("{decoded}?{query}"),
        None => decoded,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(rewritten) = hyper::Uri::from_parts(parts) {
        *uri = rewritten;
    }
}

/// A rate limit: `rate` requests a second, in bursts of up to `burst` (the generic cell rate
/// algorithm of [`governor`], which is what a token bucket of that size and rate allows). A
/// rate or burst of 0 allows nothing, as API Gateway refuses everything past limits left at 0.
#[derive(Debug)]
pub(crate) struct RateLimit(Option<governor::DefaultDirectRateLimiter>);

impl RateLimit {
    /// `rate` a second, in bursts of `rate`.
    pub fn per_second(rate: u32) -> Self {
        Self::new(f64::from(rate), rate)
    }

    /// `rate` a second (fractions allowed), in bursts of up to `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        let quota = (rate > 0.0 && rate.is_finite())
            .then(|| governor::Quota::with_period(Duration::from_secs_f64(1.0 / rate)))
            .flatten()
            .zip(std::num::NonZeroU32::new(burst))
            .map(|(quota, burst)| quota.allow_burst(burst));
        Self(quota.map(governor::RateLimiter::direct))
    }

    /// Takes one request's worth of the limit, if there is one now.
    pub fn try_take(&self) -> bool {
        self.0.as_ref().is_some_and(|limiter| limiter.check().is_ok())
    }
}

/// Whether clients on other machines could reach `address`.
pub(crate) fn is_exposed(address: &SocketAddr) -> bool {
    !address.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::RateLimit;

    #[test]
    fn a_rate_limit_allows_its_burst_at_once_then_nothing_until_it_refills() {
        let limit = RateLimit::new(1.0, 5);
        let allowed = (0..8).filter(|_| limit.try_take()).count();
        assert_eq!(allowed, 5);
        assert!(!RateLimit::new(0.0, 0).try_take(), "limits left at 0 allow nothing");
        assert!(!RateLimit::new(3.0, 0).try_take());
    }
}
