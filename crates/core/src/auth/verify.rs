//! Verifying one token: its header, its signature against the issuer's key, its issuer,
//! audience and times, and the user id it carries.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::KeyAlgorithm;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::AuthConfig;
use super::jwks::{JwksError, JwksSource, KeyCache, KeyKind};
use crate::limits::TOKEN_LEEWAY;
use crate::protocol::UserId;

/// Why a token is refused. The messages never quote the token or its claims' values.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token in the query or the subprotocols.
    #[error("no token: connect with ?token=<JWT> or offer the subprotocols [\"chat\", <JWT>]")]
    Missing,
    /// Not a JWT, or a claim has the wrong shape.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// Signed with anything but RS256 or ES256 (`none` and HMAC included). The token's `alg` is
    /// not kept: it is the client's text, and refusals are logged.
    #[error("tokens must be signed with RS256 or ES256")]
    Algorithm,
    /// The header names no key id, or one the issuer does not have.
    #[error("the token's key id is not one of the issuer's keys")]
    UnknownKey,
    /// The key's type or algorithm does not match the token's algorithm.
    #[error("the token's algorithm does not match its key")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Past `exp` (with the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (with the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// `aud` (or `client_id`) is not an accepted audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `token_use` is neither `id` nor `access`.
    #[error("the token's token_use must be id or access")]
    WrongTokenUse,
    /// The user-id claim is absent or not a string.
    #[error("the token has no {0} claim to take the user id from")]
    NoUserClaim(String),
    /// The user-id claim fails the user-id rules. What is wrong with it is not kept: that would
    /// quote the claim's value, which is the client's text.
    #[error("the token's {claim} claim is not a valid user id (1 to 128 ASCII letters, digits and _ . @ -)")]
    InvalidUserId {
        /// The claim (the operator's configuration, not the token's).
        claim: String,
    },
}

/// A verification that did not end in a user id.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is refused.
    #[error(transparent)]
    Refused(TokenError),
    /// The keys could not be had: no decision is possible.
    #[error(transparent)]
    Undecided(JwksError),
}

impl From<TokenError> for VerifyError {
    fn from(error: TokenError) -> Self {
        VerifyError::Refused(error)
    }
}

/// Verifies tokens for one issuer, with its keys cached.
pub struct Verifier {
    config: AuthConfig,
    keys: KeyCache,
}

impl Verifier {
    /// A verifier for `config`, fetching keys from `source`.
    pub fn new(config: AuthConfig, source: Arc<dyn JwksSource>) -> Self {
        Self { config, keys: KeyCache::new(source) }
    }

    /// The user a token speaks for, why it is refused, or why no decision is possible.
    pub async fn verify(&self, token: &str) -> Result<UserId, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| match (error.kind(), has_alg(token)) {
            // An algorithm the library does not know (`none`, say) is refused as an algorithm.
            (ErrorKind::Json(_), true) => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })?;
        let kind = match header.alg {
            Algorithm::RS256 => KeyKind::Rsa,
            Algorithm::ES256 => KeyKind::EcP256,
            _ => return Err(TokenError::Algorithm.into()),
        };
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).await.map_err(VerifyError::Undecided)?.ok_or(TokenError::UnknownKey)?;
        let named = key.algorithm.map(|algorithm| matches_alg(algorithm, header.alg));
        if key.kind != kind || named == Some(false) {
            return Err(TokenError::KeyMismatch.into());
        }

        let mut validation = Validation::new(header.alg);
        validation.leeway = TOKEN_LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = false; // Checked below, with Cognito's access-token rule.
        validation.iss = Some(HashSet::from([self.config.issuer.clone()]));
        validation.required_spec_claims = ["exp", "iss"].iter().map(|claim| (*claim).to_owned()).collect();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::KeyMismatch,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            })?
            .claims;
        self.check_audience(&claims)?;

        let claim = &self.config.user_claim;
        let value = claims.get(claim).and_then(Value::as_str).ok_or_else(|| TokenError::NoUserClaim(claim.clone()))?;
        Ok(UserId::parse(value).map_err(|_| TokenError::InvalidUserId { claim: claim.clone() })?)
    }

    /// Cognito's ID tokens carry the app client in `aud`, its access tokens in `client_id`;
    /// other issuers' tokens (no `token_use`) in `aud`, a string or a list.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let audience_claim = match claims.get("token_use").map(Value::as_str) {
            None => "aud",
            Some(Some("id")) => "aud",
            Some(Some("access")) => "client_id",
            Some(_) => return Err(TokenError::WrongTokenUse),
        };
        let accepted =
            |value: &Value| value.as_str().is_some_and(|value| self.config.audiences.iter().any(|a| a == value));
        let ok = match claims.get(audience_claim) {
            Some(Value::Array(values)) => values.iter().any(accepted),
            Some(value) => accepted(value),
            None => false,
        };
        if ok { Ok(()) } else { Err(TokenError::WrongAudience) }
    }
}

fn matches_alg(named: KeyAlgorithm, alg: Algorithm) -> bool {
    matches!((named, alg), (KeyAlgorithm::RS256, Algorithm::RS256) | (KeyAlgorithm::ES256, Algorithm::ES256))
}

/// Whether the header names an `alg` as text, for tokens whose algorithm the library cannot
/// parse: those are refused for their algorithm, the rest as malformed.
fn has_alg(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else { return false };
    serde_json::from_slice::<Value>(&bytes).is_ok_and(|value| value.get("alg").is_some_and(Value::is_string))
}
