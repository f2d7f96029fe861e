//! Sending frames to connections: the @connections API behind a trait.

mod apigw;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;

pub use apigw::ApiGatewayMessenger;

use crate::error::PostError;

/// Which WebSocket API and stage a connection lives on, as the event names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The API's id, e.g. `a1b2c3d4e5`.
    pub api_id: String,
    /// The stage, e.g. `dev`.
    pub stage: String,
}

impl Endpoint {
    /// The API and stage of the event's connection, if the event names both.
    pub fn of(context: &ApiGatewayWebsocketProxyRequestContext) -> Option<Self> {
        Some(Self { api_id: context.apiid.clone()?, stage: context.stage.clone()? })
    }

    /// The @connections endpoint in `region`: `https://{apiId}.execute-api.{region}.{suffix}/{stage}`,
    /// with the DNS suffix of the region's partition (`amazonaws.com`, `amazonaws.com.cn`, ...).
    ///
    /// Built from the API id rather than the event's `domainName`, which is the custom domain
    /// when one is configured and does not serve @connections.
    pub fn url(&self, region: &str) -> String {
        let suffix = crate::aws::dns_suffix(region);
        format!("https://{}.execute-api.{region}.{suffix}/{}", self.api_id, self.stage)
    }
}

/// Sends data to one open connection.
#[async_trait]
pub trait Messenger: Send + Sync {
    /// Posts `data` to a connection of `endpoint`'s API. [`PostError::Gone`] means the
    /// connection is closed and its record can go.
    async fn post(&self, endpoint: &Endpoint, connection_id: &str, data: &[u8]) -> Result<(), PostError>;
}
