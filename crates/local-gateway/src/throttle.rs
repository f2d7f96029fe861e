//! Stage throttling: one token bucket per route, from the template stage's
//! `DefaultRouteSettings` and `RouteSettings` (`ThrottlingBurstLimit`, `ThrottlingRateLimit`),
//! shared by every client of the route as on API Gateway.
//!
//! What a throttled client gets: on `$connect`, the upgrade is refused with 429 (observed:
//! hashicorp/terraform-provider-aws#14742, a stage whose limits were left at 0 answered every
//! connection with 429); on a message route, API Gateway's own `Too Many Requests` frame
//! ([`crate::frames::GatewayFrame::TooManyRequests`]).

use std::collections::HashMap;

use chat_template::StageThrottling;

use crate::routing::RouteTable;
use crate::server::RateLimit;

/// Each route's bucket; a route without a limit has none.
#[derive(Debug, Default)]
pub(crate) struct Throttles(HashMap<String, RateLimit>);

impl Throttles {
    /// A bucket for every route of `routes` that `stage` limits.
    pub(crate) fn new(stage: &StageThrottling, routes: &RouteTable) -> Self {
        Self(
            routes
                .routes()
                .filter_map(|(key, _)| {
                    let limit = stage.of(key)?;
                    Some((key.to_owned(), RateLimit::new(limit.rate, limit.burst)))
                })
                .collect(),
        )
    }

    /// Whether a request to `route_key` may go through now (and takes its token if so).
    pub(crate) fn allows(&self, route_key: &str) -> bool {
        self.0.get(route_key).is_none_or(RateLimit::try_take)
    }
}
