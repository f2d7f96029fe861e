//! CloudWatch metrics in the Embedded Metric Format (EMF): each invocation writes one JSON line
//! to standard output, and CloudWatch Logs turns it into metrics, with no API call.
//!
//! Every line carries each counter its route can increment ([`Route::counters`]; a counter
//! published is billed per month, counted or not) twice over: per route (dimension `Route`) and
//! for the whole chat (no dimension, which the template's alarms watch). A refused frame or connection also
//! counts under its error code (dimensions `Route`, `ErrorCode`).

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::protocol::ErrorCode;
use crate::routes::Route;

/// The CloudWatch namespace of every metric; `template.yaml`'s alarms name it too.
pub const NAMESPACE: &str = "RustWebSocketChat";

/// A counter, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Chat messages that reached a recipient connection (replies to the sender are not counted).
    MessagesDelivered,
    /// Recipient connections that answered 410: closed since their record was written.
    ConnectionsGone,
    /// Posts that failed for any reason but 410.
    PostsFailed,
    /// Of those, posts still answered 429 (the account's throttle, or a client's full buffer)
    /// after their retries.
    PostsThrottled,
    /// Frames answered with an error frame.
    FramesRefused,
    /// `$connect` requests refused.
    ConnectionsRefused,
    /// DynamoDB calls that failed.
    BackendFailures,
}

impl Metric {
    /// Every counter, in the order a line lists them.
    pub const ALL: [Metric; 7] = [
        Metric::MessagesDelivered,
        Metric::ConnectionsGone,
        Metric::PostsFailed,
        Metric::PostsThrottled,
        Metric::FramesRefused,
        Metric::ConnectionsRefused,
        Metric::BackendFailures,
    ];

    /// The metric's name in CloudWatch.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::MessagesDelivered => "MessagesDelivered",
            Metric::ConnectionsGone => "ConnectionsGone",
            Metric::PostsFailed => "PostsFailed",
            Metric::PostsThrottled => "PostsThrottled",
            Metric::FramesRefused => "FramesRefused",
            Metric::ConnectionsRefused => "ConnectionsRefused",
            Metric::BackendFailures => "BackendFailures",
        }
    }
}

/// The dimension that names the route.
pub const ROUTE_DIMENSION: &str = "Route";

/// The dimension that names a refusal's error code.
pub const ERROR_CODE_DIMENSION: &str = "ErrorCode";

/// What one invocation did, counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// The route invoked.
    pub route: Route,
    /// See [`Metric::MessagesDelivered`].
    pub messages_delivered: u64,
    /// See [`Metric::ConnectionsGone`].
    pub connections_gone: u64,
    /// See [`Metric::PostsFailed`].
    pub posts_failed: u64,
    /// See [`Metric::PostsThrottled`].
    pub posts_throttled: u64,
    /// See [`Metric::BackendFailures`].
    pub backend_failures: u64,
    /// Why the frame (or, on `$connect`, the connection) was refused, if it was.
    pub refused: Option<ErrorCode>,
}

impl Metrics {
    /// Nothing counted yet, for an invocation of `route`.
    pub fn new(route: Route) -> Self {
        Self {
            route,
            messages_delivered: 0,
            connections_gone: 0,
            posts_failed: 0,
            posts_throttled: 0,
            backend_failures: 0,
            refused: None,
        }
    }

    /// The value of one counter.
    pub fn get(&self, metric: Metric) -> u64 {
        let refused = u64::from(self.refused.is_some());
        match metric {
            Metric::MessagesDelivered => self.messages_delivered,
            Metric::ConnectionsGone => self.connections_gone,
            Metric::PostsFailed => self.posts_failed,
            Metric::PostsThrottled => self.posts_throttled,
            Metric::BackendFailures => self.backend_failures,
            Metric::FramesRefused if self.route != Route::Connect => refused,
            Metric::ConnectionsRefused if self.route == Route::Connect => refused,
            Metric::FramesRefused | Metric::ConnectionsRefused => 0,
        }
    }

    /// The counters the line publishes: those the route declares ([`Route::counters`]), in
    /// [`Metric::ALL`]'s order, and any other that was counted all the same (a test holds the
    /// declarations to what the handlers count, so that is never).
    pub fn published(&self) -> Vec<Metric> {
        let declared = self.route.counters();
        Metric::ALL.into_iter().filter(|metric| declared.contains(metric) || self.get(*metric) > 0).collect()
    }

    /// Counters that were counted though the route does not declare them: none, or a route's
    /// `COUNTERS` is out of date (debug builds assert it after every invocation).
    pub fn undeclared(&self) -> Vec<Metric> {
        let declared = self.route.counters();
        Metric::ALL.into_iter().filter(|metric| !declared.contains(metric) && self.get(*metric) > 0).collect()
    }

    /// The EMF document for these counts, stamped `timestamp_ms` (epoch milliseconds).
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let definitions = |metrics: &[Metric]| {
            metrics.iter().map(|m| json!({ "Name": m.name(), "Unit": "Count" })).collect::<Vec<_>>()
        };
        let published = self.published();
        let mut directives = vec![json!({
            "Namespace": NAMESPACE,
            "Dimensions": [[ROUTE_DIMENSION], []],
            "Metrics": definitions(&published),
        })];
        let mut root = Map::new();
        root.insert(ROUTE_DIMENSION.into(), self.route.key().into());
        for metric in published {
            root.insert(metric.name().into(), self.get(metric).into());
        }
        if let Some(code) = self.refused {
            let metric = if self.route == Route::Connect { Metric::ConnectionsRefused } else { Metric::FramesRefused };
            directives.push(json!({
                "Namespace": NAMESPACE,
                "Dimensions": [[ROUTE_DIMENSION, ERROR_CODE_DIMENSION]],
                "Metrics": definitions(&[metric]),
            }));
            root.insert(ERROR_CODE_DIMENSION.into(), serde_json::to_value(code).unwrap_or_default());
        }
        root.insert("_aws".into(), json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": directives }));
        root.into()
    }

    /// Writes the EMF line to standard output, where Lambda's log agent picks it up.
    pub fn emit(&self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let line = self.to_emf(now.as_millis() as i64).to_string();
        // One write of the whole line, so concurrent log output cannot split it.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}
