//! Who a connection belongs to, decided once, at `$connect`.
//!
//! This is the one place that turns a connect request into a user id. In token mode it is the
//! user the authorizer verified (`requestContext.authorizer`), and the query is ignored; in demo
//! mode it is the `userId` query parameter, which anyone can set. Later routes never trust what a
//! frame claims: they look the user up in the store by connection id.

use crate::config::{AUTH_ISSUER, Vars};
use crate::protocol::{ErrorCode, UserId};
use crate::routes::Caller;

/// The query parameter that names the user at connect time, in demo mode.
pub const USER_ID_PARAM: &str = "userId";

/// Where identities come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `?userId=`: the client says who it is, and is believed. For trying the chat out.
    #[default]
    Demo,
    /// The user a Lambda authorizer verified from a signed token.
    Token,
}

impl Mode {
    /// Token mode when `AUTH_ISSUER` is set (the template sets it on `$connect` too).
    pub fn from_env() -> Self {
        Self::from_vars(&Vars::env())
    }

    /// Token mode when `vars` set `AUTH_ISSUER` (non-empty).
    pub fn from_vars(vars: &Vars<'_>) -> Self {
        if vars.optional(AUTH_ISSUER).is_some() { Mode::Token } else { Mode::Demo }
    }

    /// The mode's name, for logs and the stack's outputs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Demo => "demo",
            Mode::Token => "token",
        }
    }
}

/// Why a connect request carries no usable identity.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Demo mode: no `userId` query parameter.
    #[error("connect with ?{USER_ID_PARAM}=<your id>")]
    Missing,
    /// Demo mode: the parameter is present but not a valid user id.
    #[error("{USER_ID_PARAM} {0}")]
    Invalid(String),
    /// Token mode, but the event carries no verified user: the `$connect` route has no
    /// authorizer, or the authorizer answered without a principal.
    #[error("no verified identity: in token mode the $connect route must use the token authorizer")]
    Unverified,
}

impl IdentityError {
    /// The stable code a refused connection is counted under.
    pub fn code(&self) -> ErrorCode {
        match self {
            IdentityError::Missing => ErrorCode::MissingField,
            IdentityError::Invalid(_) => ErrorCode::InvalidField,
            IdentityError::Unverified => ErrorCode::Unauthorized,
        }
    }
}

/// The user a connect request speaks for: in token mode the authorizer's verified user, in demo
/// mode the `userId` the client claims.
pub fn user_of(caller: &Caller, mode: Mode) -> Result<UserId, IdentityError> {
    match mode {
        Mode::Token => {
            // The authorizer already applied the user-id rules; a value that fails them here
            // came from somewhere else, and is refused the same way.
            let user = caller.verified_user.as_deref();
            user.and_then(|user| UserId::parse(user).ok()).ok_or(IdentityError::Unverified)
        }
        Mode::Demo => {
            let value = caller.claimed_user.as_deref().ok_or(IdentityError::Missing)?;
            UserId::parse(value).map_err(IdentityError::Invalid)
        }
    }
}
