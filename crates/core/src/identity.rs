//! Who a connection belongs to, decided once, at `$connect`.
//!
//! This is the one place that turns a connect request into a user id. Today it reads the
//! `userId` query parameter; signed tokens will be verified here too. Later routes never trust
//! what a frame claims: they look the user up in the store by connection id.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use crate::protocol::{ErrorCode, UserId};

/// The query parameter that names the user at connect time.
pub const USER_ID_PARAM: &str = "userId";

/// Why a connect request carries no usable identity.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No `userId` query parameter.
    #[error("connect with ?{USER_ID_PARAM}=<your id>")]
    Missing,
    /// The parameter is present but not a valid user id.
    #[error("{USER_ID_PARAM} {0}")]
    Invalid(String),
}

impl IdentityError {
    /// The stable code a refused connection is counted under.
    pub fn code(&self) -> ErrorCode {
        match self {
            IdentityError::Missing => ErrorCode::MissingField,
            IdentityError::Invalid(_) => ErrorCode::InvalidField,
        }
    }
}

/// The user a connect request speaks for.
pub fn user_of(request: &ApiGatewayWebsocketProxyRequest) -> Result<UserId, IdentityError> {
    let value = request.query_string_parameters.first(USER_ID_PARAM).ok_or(IdentityError::Missing)?;
    UserId::parse(value).map_err(IdentityError::Invalid)
}
