//! A real SQS API server for one machine: moto's server mode (PyPI `moto[server]`, pinned in
//! `tools/requirements.txt`), on a free port, with the fan-out queue and its dead-letter queue
//! as `template.yaml` declares them.
//!
//! moto because it is the SQS server the package registries we reach offer: it speaks the SQS
//! JSON protocol the AWS SDK for Rust uses, and it applies redrive policies (a message received
//! `maxReceiveCount` times moves to the dead-letter queue) and visibility timeouts, which the
//! fan-out depends on.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

use crate::dynalite::free_port;

/// A moto server, killed when dropped.
pub struct Moto {
    child: Child,
    endpoint: String,
}

/// The fan-out queue and its dead-letter queue on a server.
#[derive(Clone, Debug)]
pub struct FanOutQueues {
    /// The queue's URL, for `FAN_OUT_QUEUE_URL`.
    pub url: String,
    /// The queue's ARN, as an event source names it.
    pub arn: String,
    /// The dead-letter queue's URL.
    pub dead_letter_url: String,
}

impl Moto {
    /// Starts moto's server on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When moto is not installed or does not come up, saying to run `make tools`.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts moto's server on `port`: see [`Moto::start`].
    pub fn start_on(port: u16) -> Self {
        let server = crate::tool("venv/bin/moto_server");
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run moto_server ({error}); run `make tools`"));
        let mut moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status} before listening on {address}; run `make tools`");
            }
            assert!(Instant::now() < deadline, "moto_server did not listen on {address} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// The server's URL, for `AWS_ENDPOINT_URL_SQS`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SQS client for this server.
    pub fn client(&self) -> aws_sdk_sqs::Client {
        client_for(&self.endpoint)
    }

    /// Creates the fan-out queue `name` and its dead-letter queue `{name}-dead-letters`: the
    /// queue's visibility timeout `visibility` (the template's is 360 s; tests shorten it) and
    /// messages dead-lettered after `max_receives` receives.
    pub async fn create_fan_out_queue(&self, name: &str, visibility: Duration, max_receives: u32) -> FanOutQueues {
        create_fan_out_queue(&self.client(), name, visibility, max_receives).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SQS client for `endpoint` with dummy credentials.
pub fn client_for(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&chat_core::aws::local()).endpoint_url(endpoint).build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Creates the fan-out queue and its dead-letter queue through `sqs`: see
/// [`Moto::create_fan_out_queue`].
pub async fn create_fan_out_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: Duration,
    max_receives: u32,
) -> FanOutQueues {
    let arn_of = async |url: &str| -> String {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the SQS server answers GetQueueAttributes");
        attributes.attributes().and_then(|map| map.get(&QueueAttributeName::QueueArn)).cloned().expect("an ARN")
    };
    let dead_letters = sqs.create_queue().queue_name(format!("{name}-dead-letters")).send().await;
    let dead_letter_url = dead_letters.expect("the SQS server creates a queue").queue_url.expect("a URL");
    let dead_letter_arn = arn_of(&dead_letter_url).await;
    let redrive = serde_json::json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives});
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.as_secs().max(1).to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("the SQS server creates a queue");
    let url = queue.queue_url.expect("a URL");
    let arn = arn_of(&url).await;
    FanOutQueues { url, arn, dead_letter_url }
}

/// How many messages `queue_url` holds, visible or in flight (approximate, as SQS counts).
pub async fn messages_in(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("the SQS server answers GetQueueAttributes");
    let count = |name| {
        attributes.attributes().and_then(|map| map.get(&name)).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0)
    };
    count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}
