//! Runs big rooms' fan-out on one machine, for the real Lambda binaries (`make fan-out`, beside
//! `make dynalite` and `make watch`): moto's SQS server with the fan-out queue and its
//! dead-letter queue as `template.yaml` declares them, and an event source that invokes the
//! `fan-out-worker` binary through `make watch`'s Lambda Invoke API with the template's batch
//! size and maximum concurrency.

use chat_testing::event_source::{EventSource, EventSourceConfig, TemplateFanOut};
use chat_testing::sqs::Moto;

#[tokio::main]
async fn main() {
    let port: u16 = chat_testing::flag("--port", "4576").parse().expect("--port takes a port number");
    let queue = chat_testing::flag("--queue", "chat-fan-out");
    let lambda = chat_testing::flag("--lambda-endpoint", "http://127.0.0.1:9000");
    let template = chat_testing::deployment::template();
    let settings = TemplateFanOut::from(&template, &[]);

    let moto = Moto::start_on(port);
    let queues = moto.create_fan_out_queue(&queue, settings.visibility, settings.max_receives).await;
    let _source = EventSource::start(EventSourceConfig {
        sqs_endpoint: moto.endpoint().to_owned(),
        queue_url: queues.url.clone(),
        queue_arn: queues.arn.clone(),
        lambda_endpoint: lambda.clone(),
        function: "fan-out-worker".to_owned(),
        batch_size: settings.batch_size,
        maximum_concurrency: settings.maximum_concurrency,
    });

    println!(
        "SQS API (moto) at {}: fan-out queue {}, dead letters {}",
        moto.endpoint(),
        queues.url,
        queues.dead_letter_url
    );
    println!(
        "invoking fan-out-worker at {lambda} with batches of {} and at most {} at once; Ctrl-C stops it",
        settings.batch_size, settings.maximum_concurrency
    );
    let _ = tokio::signal::ctrl_c().await;
}
