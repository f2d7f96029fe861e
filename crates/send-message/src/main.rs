//! Lambda for `sendMessage`: stores a message at its conversation's next seq, then delivers it to
//! every open connection of a user (and the sender's other connections), or to every other member
//! connection of a room.

use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, DynamoDbStore, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

// Each post allocates and frees many small buffers in the SDK's pipeline: mimalloc spends less
// CPU on that than glibc's allocator (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread, so no CPU goes on handing work between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = chat_core::aws_config().await;
    let store = &DynamoDbStore::from_env(&aws)?;
    let messenger = &ApiGatewayMessenger::from_env(&aws)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        Ok::<_, Error>(routes::send_message(&event.payload, store, messenger).await.emit())
    }))
    .await
}
