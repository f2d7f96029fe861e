//! Configuration: every environment variable a function reads, named once and read at start-up,
//! where a missing one stops the function with an error that names it.
//!
//! | variable | read by | required |
//! |---|---|---|
//! | `TABLE_NAME` | every function but `$default` and the authorizer | yes |
//! | `MEMBERSHIPS_TABLE_NAME` | the same | yes |
//! | `USERS_TABLE_NAME` | the same | yes |
//! | `MESSAGES_TABLE_NAME` | the same | yes |
//! | `MESSAGE_RETENTION_DAYS` | the same | no: 30 |
//! | `APIGW_MANAGEMENT_ENDPOINT` | functions that post | no: built from the event and `AWS_REGION` |
//! | `AWS_REGION` | functions that post (Lambda sets it) | when no endpoint is set |
//! | `AUTH_ISSUER` | `$connect` (turns token mode on), the authorizer | the authorizer |
//! | `AUTH_AUDIENCE` | the authorizer | in token mode |
//! | `AUTH_JWKS_URL`, `AUTH_USER_CLAIM` | the authorizer | no |
//! | `FAN_OUT_QUEUE_URL` | `sendMessage` | no: big rooms are posted by the sender |
//! | `FAN_OUT_POSTS_PER_SECOND` | the fan-out worker | yes |
//! | `FAN_OUT_WORKERS` | the fan-out worker | yes |

use std::collections::BTreeMap;

use crate::error::ConfigError;

/// Names the DynamoDB table of connections.
pub const TABLE_NAME: &str = "TABLE_NAME";

/// Names the DynamoDB table of room memberships.
pub const MEMBERSHIPS_TABLE_NAME: &str = "MEMBERSHIPS_TABLE_NAME";

/// Names the DynamoDB table of users' connections, rooms and conversations.
pub const USERS_TABLE_NAME: &str = "USERS_TABLE_NAME";

/// Names the DynamoDB table of messages.
pub const MESSAGES_TABLE_NAME: &str = "MESSAGES_TABLE_NAME";

/// How many days messages are kept (`MessageRetentionDays` in `template.yaml`).
pub const MESSAGE_RETENTION_DAYS: &str = "MESSAGE_RETENTION_DAYS";

/// Overrides the @connections endpoint built from each event, for local runs
/// (e.g. `http://127.0.0.1:3001/dev` for the local gateway). Includes the stage.
pub const MANAGEMENT_ENDPOINT: &str = "APIGW_MANAGEMENT_ENDPOINT";

/// The region the functions run in; Lambda sets it. The @connections endpoint is built in it.
pub const REGION: &str = "AWS_REGION";

/// The issuer (`iss`) whose tokens are accepted. Set, it turns token mode on.
pub const AUTH_ISSUER: &str = "AUTH_ISSUER";

/// Accepted audiences, comma-separated: `aud` of ID tokens, `client_id` of Cognito access tokens.
pub const AUTH_AUDIENCE: &str = "AUTH_AUDIENCE";

/// Where the issuer's keys are; `{issuer}/.well-known/jwks.json` when unset.
pub const AUTH_JWKS_URL: &str = "AUTH_JWKS_URL";

/// The claim that holds the user id; `sub` when unset.
pub const AUTH_USER_CLAIM: &str = "AUTH_USER_CLAIM";

/// The SQS queue big rooms' fan-out pages go to (`FanOutQueue` in `template.yaml`). Unset, the
/// sender posts to every member itself.
pub const FAN_OUT_QUEUE_URL: &str = "FAN_OUT_QUEUE_URL";

/// Posts per second all fan-out workers together may make: big rooms' share of the account's
/// API Gateway request rate (`FanOutPostsPerSecond` in `template.yaml`).
pub const FAN_OUT_POSTS_PER_SECOND: &str = "FAN_OUT_POSTS_PER_SECOND";

/// How many fan-out workers run at once at most (the event source's `MaximumConcurrency`,
/// `FanOutWorkers` in `template.yaml`); each worker takes its equal part of
/// [`FAN_OUT_POSTS_PER_SECOND`].
pub const FAN_OUT_WORKERS: &str = "FAN_OUT_WORKERS";

/// Where variables come from: the process's environment, or a function's environment as the
/// template declares it (the local gateway runs functions in-process).
pub struct Vars<'a> {
    lookup: Box<Lookup<'a>>,
}

/// Reads one variable by name.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl Vars<'static> {
    /// The process's environment.
    pub fn env() -> Self {
        Self { lookup: Box::new(|name| std::env::var(name).ok()) }
    }
}

impl<'a> Vars<'a> {
    /// A function's environment, e.g. from `template.yaml`.
    pub fn from_map(map: &'a BTreeMap<String, String>) -> Self {
        Self { lookup: Box::new(|name| map.get(name).cloned()) }
    }

    /// A variable's value. Empty or blank counts as unset: a template that passes an empty
    /// parameter through means "not set".
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// A variable's value.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming the variable when it is unset or empty.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }
}

impl Vars<'_> {
    /// How long messages are kept: [`MESSAGE_RETENTION_DAYS`], or 30 days when unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when it is not a whole number of days from 1 to 36,500.
    pub fn message_retention(&self) -> Result<std::time::Duration, ConfigError> {
        let Some(value) = self.optional(MESSAGE_RETENTION_DAYS) else { return Ok(crate::limits::MESSAGE_RETENTION) };
        match value.trim().parse::<u64>() {
            Ok(days @ 1..=36_500) => Ok(std::time::Duration::from_secs(days * 24 * 60 * 60)),
            _ => Err(ConfigError::Invalid {
                name: MESSAGE_RETENTION_DAYS,
                value,
                expected: "a whole number of days from 1 to 36500",
            }),
        }
    }
}

impl Vars<'_> {
    /// A whole number from `min` to `max`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when unset, [`ConfigError::Invalid`] when out of range.
    pub fn number(&self, name: &'static str, min: u32, max: u32, expected: &'static str) -> Result<u32, ConfigError> {
        let value = self.required(name)?;
        match value.trim().parse::<u32>() {
            Ok(number) if (min..=max).contains(&number) => Ok(number),
            _ => Err(ConfigError::Invalid { name, value, expected }),
        }
    }
}

/// Reads a required variable of the process's environment: see [`Vars::required`].
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    Vars::env().required(name)
}

/// Reads an optional variable of the process's environment: see [`Vars::optional`].
pub fn optional(name: &str) -> Option<String> {
    Vars::env().optional(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_values_count_as_unset_and_required_ones_are_named() {
        let map = BTreeMap::from([("A".to_owned(), " ".to_owned()), ("B".to_owned(), "x".to_owned())]);
        let vars = Vars::from_map(&map);

        assert_eq!(vars.optional("A"), None);
        assert_eq!(vars.optional("B").as_deref(), Some("x"));
        let error = vars.required(TABLE_NAME).unwrap_err();
        assert!(error.to_string().contains("TABLE_NAME"), "{error}");
    }
}
