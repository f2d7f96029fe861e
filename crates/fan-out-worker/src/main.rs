//! Lambda for the fan-out queue (an SQS event source): posts each queued page of a big room's
//! message to its connections, at this worker's part of big rooms' share of the account's
//! request rate, and reports the pages to be tried again as batch item failures.

use chat_core::config::Vars;
use chat_core::queue::Pace;
use chat_core::sqs::SqsEvent;
use chat_core::{ApiGatewayMessenger, DynamoDbStore, routes};
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
    let pace = &Pace::from_vars(&Vars::env())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(routes::fan_out_worker(&event.payload, store, messenger, Some(pace)).await)
    }))
    .await
}
