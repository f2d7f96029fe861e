//! AWS's prices the benchmarks turn counts into dollars with: us-east-1, on demand, as AWS's
//! pricing pages listed them in late 2024, DynamoDB's after its 1 November 2024 cut (API Gateway,
//! Lambda, DynamoDB, SQS, CloudWatch:
//! <https://aws.amazon.com/api-gateway/pricing/>, <https://aws.amazon.com/lambda/pricing/>,
//! <https://aws.amazon.com/dynamodb/pricing/on-demand/>, <https://aws.amazon.com/sqs/pricing/>,
//! <https://aws.amazon.com/cloudwatch/pricing/>). Change them here only.

/// DynamoDB on demand: one write request unit (1 KB written; a transactional write costs 2).
pub const DYNAMODB_WRITE_UNIT: f64 = 0.625e-6;
/// DynamoDB on demand: one read request unit (4 KB read strongly consistent, 8 KB eventually).
pub const DYNAMODB_READ_UNIT: f64 = 0.125e-6;
/// CloudWatch Logs: ingestion, $0.50 per GB.
pub const LOGS_INGESTED_PER_BYTE: f64 = 0.50 / 1e9;
/// CloudWatch: one custom metric (a name and dimension set an EMF line publishes), per month.
pub const METRIC_MONTH: f64 = 0.30;
/// Lambda arm64: one GB-second.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda: one request.
pub const LAMBDA_REQUEST: f64 = 0.20e-6;
/// SQS standard: one request (per 64 KB chunk).
pub const SQS_REQUEST: f64 = 0.40e-6;
/// API Gateway WebSocket: one message (per 32 KB), sent or delivered (first billion a month).
pub const API_GATEWAY_MESSAGE: f64 = 1.00e-6;
/// What Lambda logs itself for each invocation, bytes (its `START`, `END` and `REPORT` lines,
/// about 60, 50 and 140 bytes; modelled: to check in the cloud).
pub const LAMBDA_PLATFORM_LOG_BYTES: f64 = 250.0;

/// The model of what only the cloud decides (to check in the cloud): a DynamoDB call from
/// Lambda in the same region takes about this long, ms.
pub const MODEL_CALL_MS: f64 = 5.0;
/// A wave of @connections posts (up to 32 in flight) takes about this long, ms.
pub const MODEL_POST_MS: f64 = 20.0;
/// The functions' memory in the model, GB (the template's 128 MB).
pub const MODEL_MEMORY_GB: f64 = 0.125;
