//! Lambda for `$default`: the `send` echo, and `unknownAction` for anything else.

use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let messenger = &ApiGatewayMessenger::from_env(&chat_core::aws_config().await)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(routes::default(&event.payload, messenger).await.emit())
    }))
    .await
}
