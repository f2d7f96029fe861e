//! A development stand-in for Lambda's SQS event source mapping: polls a queue and invokes a
//! function through the Lambda Invoke API (`cargo lambda watch`) with each batch, as the cloud's
//! pollers do, so the real fan-out worker runs on one machine.
//!
//! As in the cloud (Lambda developer guide, "Using Lambda with Amazon SQS"): batches of up to
//! `BatchSize` messages, at most `MaximumConcurrency` invocations at once, the event shaped as
//! SQS events are, the messages the function does not report in `batchItemFailures` deleted,
//! and those it reports (or all of a batch whose invocation failed) left to reappear after the
//! queue's visibility timeout; the queue's redrive policy moves a message received
//! `maxReceiveCount` times to its dead-letter queue. Not emulated: the pollers' scaling (up to
//! `MaximumConcurrency` from the start here) and batching windows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

/// Where to poll and whom to invoke.
#[derive(Clone, Debug)]
pub struct EventSourceConfig {
    /// The SQS API's URL (e.g. moto's).
    pub sqs_endpoint: String,
    /// The queue's URL and ARN.
    pub queue_url: String,
    /// The queue's ARN, as the events name it.
    pub queue_arn: String,
    /// The Lambda Invoke API's URL (`cargo lambda watch`: `http://127.0.0.1:9000`).
    pub lambda_endpoint: String,
    /// The function to invoke (its binary's name under `cargo lambda watch`).
    pub function: String,
    /// Messages per invocation at most (`BatchSize`).
    pub batch_size: i32,
    /// Invocations at once at most (`ScalingConfig.MaximumConcurrency`).
    pub maximum_concurrency: usize,
}

/// What the event source did, counted.
#[derive(Debug, Default)]
pub struct EventSourceStats {
    /// Invocations made.
    pub invocations: AtomicU64,
    /// Messages handed to the function (a message received again counts again).
    pub messages: AtomicU64,
    /// Messages the function reported in `batchItemFailures`, or whose invocation failed.
    pub failures: AtomicU64,
    /// Messages deleted after the function handled them.
    pub deleted: AtomicU64,
}

/// A running event source; stops when dropped.
pub struct EventSource {
    task: tokio::task::JoinHandle<()>,
    /// Its counts so far.
    pub stats: Arc<EventSourceStats>,
}

impl Drop for EventSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventSource {
    /// Starts polling.
    pub fn start(config: EventSourceConfig) -> Self {
        let stats = Arc::new(EventSourceStats::default());
        let task = tokio::spawn(poll(config, stats.clone()));
        Self { task, stats }
    }
}

async fn poll(config: EventSourceConfig, stats: Arc<EventSourceStats>) {
    // Long polls (1 s) outlast the functions' time limit per attempt (0.8 s).
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&chat_core::aws::local())
            .endpoint_url(&config.sqs_endpoint)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build(),
    );
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&chat_core::aws::local())
            .endpoint_url(&config.lambda_endpoint)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .timeout_config(aws_config::timeout::TimeoutConfig::disabled())
            .build(),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(config.maximum_concurrency.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let received = sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(config.batch_size.clamp(1, 10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                eprintln!("event source: ReceiveMessage failed: {:?}", aws_sdk_sqs::Error::from(error));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let (sqs, lambda, config, stats) = (sqs.clone(), lambda.clone(), config.clone(), stats.clone());
        tokio::spawn(async move {
            invoke(&sqs, &lambda, &config, &stats, messages).await;
            drop(slot);
        });
    }
}

/// One invocation with `messages`, then the deletes its answer allows.
async fn invoke(
    sqs: &aws_sdk_sqs::Client,
    lambda: &aws_sdk_lambda::Client,
    config: &EventSourceConfig,
    stats: &EventSourceStats,
    messages: Vec<aws_sdk_sqs::types::Message>,
) {
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(|message| record(message, config)).collect();
    stats.invocations.fetch_add(1, Ordering::Relaxed);
    stats.messages.fetch_add(messages.len() as u64, Ordering::Relaxed);
    let payload = serde_json::to_vec(&event).unwrap_or_default();
    let answer = lambda.invoke().function_name(&config.function).payload(Blob::new(payload)).send().await;
    let failed: Vec<String> = match answer {
        Ok(output) if output.function_error.is_none() => {
            let payload = output.payload.map(Blob::into_inner).unwrap_or_default();
            match serde_json::from_slice::<SqsBatchResponse>(&payload) {
                Ok(response) => {
                    response.batch_item_failures.into_iter().map(|failure| failure.item_identifier).collect()
                }
                // An answer that is no batch response fails the whole batch, as in the cloud.
                Err(_) => messages.iter().filter_map(|message| message.message_id.clone()).collect(),
            }
        }
        _ => messages.iter().filter_map(|message| message.message_id.clone()).collect(),
    };
    stats.failures.fetch_add(failed.len() as u64, Ordering::Relaxed);
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|message| !message.message_id.as_ref().is_some_and(|id| failed.contains(id)))
        .enumerate()
        .filter_map(|(n, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(message.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    if done.is_empty() {
        return;
    }
    let count = done.len() as u64;
    match sqs.delete_message_batch().queue_url(&config.queue_url).set_entries(Some(done)).send().await {
        Ok(_) => {
            stats.deleted.fetch_add(count, Ordering::Relaxed);
        }
        Err(error) => eprintln!("event source: DeleteMessageBatch failed: {}", aws_sdk_sqs::Error::from(error)),
    }
}

/// An SQS message as Lambda's event gives it.
fn record(message: &aws_sdk_sqs::types::Message, config: &EventSourceConfig) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(config.queue_arn.clone());
    record.aws_region = Some("us-east-1".to_owned());
    if let Some(attributes) = &message.attributes {
        record.attributes = attributes.iter().map(|(name, value)| (name.as_str().to_owned(), value.clone())).collect();
    }
    record
}

/// The fan-out queue's settings as `template.yaml` declares them (parameters at their defaults
/// or `overrides`), so that local runs poll as the cloud's event source would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateFanOut {
    /// `FanOutEventSource`'s `BatchSize`.
    pub batch_size: i32,
    /// `FanOutEventSource`'s `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: usize,
    /// `FanOutQueue`'s `VisibilityTimeout`.
    pub visibility: Duration,
    /// `FanOutQueue`'s `RedrivePolicy.maxReceiveCount`.
    pub max_receives: u32,
}

impl TemplateFanOut {
    /// Reads them from `template`.
    ///
    /// # Panics
    /// When the template lacks the fan-out resources or a value is not a number.
    pub fn from(template: &chat_template::Template, overrides: &[(String, String)]) -> Self {
        let context = chat_template::Context::new(template, overrides).expect("the parameters resolve");
        let property = |resource: &str, path: &[&str]| -> u64 {
            let mut value = &template.resource_named(resource).unwrap_or_else(|| panic!("no {resource}")).properties;
            for key in path {
                value = &value[*key];
            }
            let resolved = context.plain(value).or_else(|| value.as_u64().map(|n| n.to_string()));
            resolved
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("{resource}.{} is no number", path.join(".")))
        };
        Self {
            batch_size: property("FanOutEventSource", &["BatchSize"]) as i32,
            maximum_concurrency: property("FanOutEventSource", &["ScalingConfig", "MaximumConcurrency"]) as usize,
            visibility: Duration::from_secs(property("FanOutQueue", &["VisibilityTimeout"])),
            max_receives: property("FanOutQueue", &["RedrivePolicy", "maxReceiveCount"]) as u32,
        }
    }
}
