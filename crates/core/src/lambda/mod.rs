//! The AWS adapters, the only code that knows Lambda's event shapes: API Gateway's WebSocket
//! event read into a [`Request`] and run through a route ([`event`]), a handler's [`Outcome`]
//! turned into the frame to the sender, the metrics, the log line and the Lambda proxy response
//! ([`outcome`]), and the fan-out worker's SQS batch ([`sqs`]).

pub mod event;
pub mod outcome;
pub mod sqs;

pub use event::{Caller, MalformedEvent, Request};
pub use outcome::{Failure, Handled, Outcome, Reply};
pub use sqs::fan_out_worker;
