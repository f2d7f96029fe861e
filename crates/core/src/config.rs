//! Configuration read from the environment once, at start-up.

use crate::error::ConfigError;

/// Names the DynamoDB table of connections. Required by every function that touches the store.
pub const TABLE_NAME: &str = "TABLE_NAME";

/// Names the DynamoDB table of room memberships. Required by every function that touches rooms
/// (removing a connection that is in a room included).
pub const MEMBERSHIPS_TABLE_NAME: &str = "MEMBERSHIPS_TABLE_NAME";

/// Overrides the @connections endpoint built from each event, for local runs
/// (e.g. `http://127.0.0.1:3001/dev` for the local gateway). Includes the stage.
pub const MANAGEMENT_ENDPOINT: &str = "APIGW_MANAGEMENT_ENDPOINT";

/// The region the functions run in; Lambda sets it. The @connections endpoint is built in it.
pub const REGION: &str = "AWS_REGION";

/// Reads a required variable, failing with an error that names it.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// Reads an optional variable; empty counts as unset.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}
