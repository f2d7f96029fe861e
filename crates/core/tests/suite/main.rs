//! The core crate's behaviour, as one test binary (one link instead of twelve): the route
//! handlers driven by the sample events, every store behaviour on both stores (in memory, and
//! DynamoDB on dynalite), the protocol's contract, token verification, metrics and logs.

mod asyncapi;
mod auth;
mod claims;
mod conversations;
mod fan_out_queue;
mod frames;
mod history_reads;
mod logs;
mod metrics;
mod read_state;
mod rooms;
mod routes;
mod store_contract;
mod subscriptions;
