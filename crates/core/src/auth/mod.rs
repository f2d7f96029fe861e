//! Token mode: who may connect, decided by a Lambda REQUEST authorizer that verifies a JWT from
//! an OpenID Connect issuer (Amazon Cognito, Auth0, Okta, Keycloak, ...) against its JWKS.
//!
//! The authorizer answers API Gateway with an IAM policy for the connect's `methodArn` and the
//! verified user id as principal; `$connect` then reads that principal (see [`crate::identity`]).

mod jwks;
mod verify;

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse, ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use jwks::{HttpJwks, JwksError, JwksSource, KeyCache};
pub use verify::{TokenError, Verifier, VerifyError};

use crate::config::{AUTH_AUDIENCE, AUTH_ISSUER, AUTH_JWKS_URL, AUTH_USER_CLAIM, Vars};
use crate::error::{Chain, ConfigError};
use crate::protocol::UserId;

/// The query parameter a token may come in.
pub const TOKEN_PARAM: &str = "token";
/// The subprotocol a browser offers beside its token, and the one `$connect` answers with.
pub const SUBPROTOCOL: &str = "chat";
/// The header browsers put their offered subprotocols in.
pub const SUBPROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Which tokens the authorizer accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The exact `iss` of accepted tokens.
    pub issuer: String,
    /// Accepted `aud` (or `client_id`) values; never empty.
    pub audiences: Vec<String>,
    /// The issuer's JWKS.
    pub jwks_url: String,
    /// The claim holding the user id.
    pub user_claim: String,
}

impl AuthConfig {
    /// Token mode's settings from the environment; `None` in demo mode (no `AUTH_ISSUER`).
    /// Token mode without an audience is refused: any token the issuer minted for any other
    /// application would otherwise get in.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&Vars::env())
    }

    /// The same, from any source of variables (the local gateway reads them from the template).
    pub fn from_vars(vars: &Vars<'_>) -> Result<Option<Self>, ConfigError> {
        let optional = |name: &str| vars.optional(name);
        let Some(issuer) = optional(AUTH_ISSUER) else { return Ok(None) };
        let audiences: Vec<String> = optional(AUTH_AUDIENCE)
            .ok_or(ConfigError::Missing(AUTH_AUDIENCE))?
            .split(',')
            .map(str::trim)
            .filter(|audience| !audience.is_empty())
            .map(str::to_owned)
            .collect();
        if audiences.is_empty() {
            return Err(ConfigError::Missing(AUTH_AUDIENCE));
        }
        let jwks_url = optional(AUTH_JWKS_URL)
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        let user_claim = optional(AUTH_USER_CLAIM).unwrap_or_else(|| "sub".to_owned());
        Ok(Some(Self { issuer, audiences, jwks_url, user_claim }))
    }
}

/// The event API Gateway sends a REQUEST authorizer of a WebSocket API: the `$connect`'s
/// headers and query, its `methodArn`, and the same `requestContext` as the `$connect` event.
///
/// `aws_lambda_events`' REST-style authorizer request drops the WebSocket context (the
/// connection id among it), hence this type.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerRequest {
    /// `REQUEST`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect`.
    #[serde(default)]
    pub method_arn: Option<String>,
    /// The upgrade request's headers, as the client wrote their names.
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    /// The query parameters (the last value of each).
    #[serde(default)]
    pub query_string_parameters: Option<HashMap<String, String>>,
    /// The connection's context, as in the `$connect` event.
    pub request_context: ApiGatewayWebsocketProxyRequestContext,
}

impl AuthorizerRequest {
    /// A header's value, whatever the case of its name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.headers.as_ref()?;
        headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The token it carries, from the query or the subprotocols.
    pub fn token(&self) -> Option<&str> {
        let query = self.query_string_parameters.as_ref().and_then(|query| query.get(TOKEN_PARAM));
        token_of(query.map(String::as_str), self.header(SUBPROTOCOL_HEADER))
    }
}

/// The token of a connect: `?token=` (`query`), else the subprotocol offered beside
/// [`SUBPROTOCOL`] in the `Sec-WebSocket-Protocol` header (`new WebSocket(url, ["chat", token])`).
pub fn token_of<'a>(query: Option<&'a str>, protocols: Option<&'a str>) -> Option<&'a str> {
    if let Some(token) = query.filter(|token| !token.is_empty()) {
        return Some(token);
    }
    protocols?.split(',').map(str::trim).find(|offered| !offered.is_empty() && *offered != SUBPROTOCOL)
}

/// Whether a `Sec-WebSocket-Protocol` header offers [`SUBPROTOCOL`], so `$connect` must answer with it.
pub fn offers_subprotocol(protocols: Option<&str>) -> bool {
    protocols.is_some_and(|protocols| protocols.split(',').any(|offered| offered.trim() == SUBPROTOCOL))
}

/// Why the authorizer could not decide: the function fails and API Gateway answers 500, so
/// clients retry later instead of taking it as a refusal.
#[derive(Debug, thiserror::Error)]
#[error("the issuer's keys cannot be fetched; new connections fail until they can")]
pub struct Undecided(#[source] pub JwksError);

/// Decides a connect: `Allow` for the connect's `methodArn` with the verified user as principal
/// and `context.userId`, or `Deny` (403) for a missing, invalid or expired token.
pub async fn authorize(
    request: &AuthorizerRequest,
    verifier: &Verifier,
) -> Result<ApiGatewayCustomAuthorizerResponse, Undecided> {
    let method_arn = request.method_arn.as_deref().unwrap_or_default();
    let connection_id = request.request_context.connection_id.as_deref().unwrap_or_default();
    let Some(token) = request.token() else {
        tracing::info!(connection_id, cause = %TokenError::Missing, "refused connection");
        return Ok(deny(method_arn));
    };
    match verifier.verify(token).await {
        Ok(user) => {
            // The connection id only: tokens and user ids stay out of logs.
            tracing::info!(connection_id, "authorized connection");
            Ok(allow(&user, method_arn))
        }
        Err(VerifyError::Refused(cause)) => {
            tracing::info!(connection_id, cause = %cause, "refused connection");
            Ok(deny(method_arn))
        }
        Err(VerifyError::Undecided(error)) => {
            tracing::error!(connection_id, error = %Chain(&error), "cannot verify tokens");
            Err(Undecided(error))
        }
    }
}

/// An `Allow` for `method_arn`, speaking for `user`.
pub fn allow(user: &UserId, method_arn: &str) -> ApiGatewayCustomAuthorizerResponse {
    let context = Value::Object([("userId".to_owned(), Value::String(user.to_string()))].into_iter().collect());
    policy(user.as_str(), IamPolicyEffect::Allow, method_arn, context)
}

/// A `Deny` for `method_arn`: API Gateway refuses the upgrade with 403.
pub fn deny(method_arn: &str) -> ApiGatewayCustomAuthorizerResponse {
    policy("anonymous", IamPolicyEffect::Deny, method_arn, Value::Object(Default::default()))
}

fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    method_arn: &str,
    context: Value,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_owned()];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".to_owned());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal.to_owned());
    response.policy_document = document;
    response.context = context;
    response
}

/// The verified user a `$connect` (or later) event carries from the authorizer, if any:
/// `requestContext.authorizer.userId`, else its `principalId`.
pub fn authorized_user(authorizer: &HashMap<String, Value>) -> Option<&str> {
    ["userId", "principalId"].iter().find_map(|key| authorizer.get(*key).and_then(Value::as_str))
}
