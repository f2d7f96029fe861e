//! What a DynamoDB client sends, recorded as it leaves the SDK (retries included): each
//! request's operation and the tables and index it names, for call counts in the benchmarks and
//! for checking the template's IAM grants against what the code really calls.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

/// One request: its operation (`PutItem`), and the table (`TableName`, or each table a batch
/// names) and index (`IndexName`) it touches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// The DynamoDB API operation.
    pub operation: String,
    /// The table's name.
    pub table: String,
    /// The index's name, for a Query of one.
    pub index: Option<String>,
}

/// An interceptor that records every DynamoDB request; clones share the record.
#[derive(Clone, Debug, Default)]
pub struct DynamoDbCalls(Arc<Mutex<Vec<Call>>>);

impl DynamoDbCalls {
    /// A client like `client` that records into this.
    pub fn client(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(self.clone()).build())
    }

    /// Every call recorded since the last take, in order; the record starts again.
    ///
    /// # Panics
    /// When a recording thread panicked.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().expect("the record"))
    }
}

impl Intercept for DynamoDbCalls {
    fn name(&self) -> &'static str {
        "DynamoDbCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body: serde_json::Value =
            request.body().bytes().and_then(|bytes| serde_json::from_slice(bytes).ok()).unwrap_or_default();
        let index = body["IndexName"].as_str().map(str::to_owned);
        let mut tables: Vec<String> = body["TableName"].as_str().map(str::to_owned).into_iter().collect();
        if let Some(items) = body["RequestItems"].as_object() {
            tables.extend(items.keys().cloned());
        }
        let mut calls = self.0.lock().expect("the record");
        calls.extend(tables.into_iter().map(|table| Call {
            operation: operation.clone(),
            table,
            index: index.clone(),
        }));
        Ok(())
    }
}
