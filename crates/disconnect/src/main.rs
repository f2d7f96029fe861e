//! Lambda for `$disconnect`: deletes the closed connection's record.

use chat_core::{ApiGatewayWebsocketProxyRequest, DynamoDbStore, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let store = &DynamoDbStore::from_env(&chat_core::aws_config().await)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(routes::disconnect(&event.payload, store).await.emit())
    }))
    .await
}
