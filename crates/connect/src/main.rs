//! Lambda for `$connect`: records which user a new connection belongs to.

use chat_core::identity::Mode;
use chat_core::{ApiGatewayWebsocketProxyRequest, DynamoDbStore, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let store = &DynamoDbStore::from_env(&chat_core::aws_config().await)?;
    let mode = Mode::from_env();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(routes::connect(&event.payload, store, mode).await.emit())
    }))
    .await
}
