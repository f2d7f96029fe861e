//! The WebSocket chat's core: the routes, the stores, the messenger, delivery and the wire
//! protocol.
//!
//! The Lambda functions of `crates/functions` and the local gateway are thin shells around
//! [`routes`] and [`auth`]. [`routes`] holds the route table (every route once, with the
//! function that serves it) and one module per route, each a handler of a
//! [`routes::Context`]: the request, and the services it uses: the stores of [`store`]
//! (connections, subscriptions, messages and users; DynamoDB in the cloud, memory on one
//! machine), the [`messenger::Messenger`] (API Gateway's @connections API) and, for big rooms,
//! the [`delivery::queue::FanOutQueue`] (SQS). [`lambda`] adapts Lambda's events and answers,
//! [`delivery`] posts a frame to many connections, [`protocol`] is the frames' shared
//! vocabulary, and [`asyncapi`] publishes every frame as `docs/asyncapi.yaml`.

pub mod asyncapi;
pub mod auth;
pub mod aws;
pub mod config;
pub mod delivery;
pub mod error;
pub mod identity;
pub mod lambda;
pub mod limits;
pub mod messenger;
pub mod metrics;
pub mod protocol;
pub mod routes;
pub mod store;

pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
/// The SQS event and batch response types of the fan-out worker.
pub use aws_lambda_events::sqs;
pub use error::{ConfigError, PostError, StoreError};
pub use messenger::{ApiGatewayMessenger, Endpoint, Messenger};
pub use routes::Route;
pub use store::{Connection, ConnectionStore, DynamoDbStore, MemoryStore};

/// Loads the AWS SDK configuration from the environment with the pinned behaviour version and
/// time limits of [`aws`]. Call it once per process, at start-up, and share the result.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws::load().await
}
