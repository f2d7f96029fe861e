//! Lambda for `sendMessage`: stores a message at its conversation's next seq, then delivers it to
//! every open connection of a user (and the sender's other connections), or to every other member
//! connection of a room; a room of more than one page of members through the fan-out queue.

use chat_core::queue::{FanOutQueue, SqsQueue};
use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, DynamoDbStore, routes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

// Each post allocates and frees many small buffers in the SDK's pipeline: mimalloc spends less
// CPU on that than glibc's allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread, so no CPU goes on handing work between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = chat_core::aws_config().await;
    let store = &DynamoDbStore::from_env(&aws)?;
    let messenger = &ApiGatewayMessenger::from_env(&aws)?;
    // Big rooms go through the fan-out queue when there is one (FAN_OUT_QUEUE_URL).
    let queue = &SqsQueue::from_env(&aws);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        let queue = queue.as_ref().map(|queue| queue as &dyn FanOutQueue);
        Ok::<_, Error>(routes::send_message_through(&event.payload, store, messenger, queue).await.emit())
    }))
    .await
}
