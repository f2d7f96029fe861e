//! Lambda for `getHistory`: a page of a conversation's stored messages, to the asking connection.

use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, DynamoDbStore, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = chat_core::aws_config().await;
    let store = &DynamoDbStore::from_env(&aws)?;
    let messenger = &ApiGatewayMessenger::from_env(&aws)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(routes::get_history(&event.payload, store, messenger).await.emit())
    }))
    .await
}
