//! Lambda REQUEST authorizer for `$connect` (token mode): verifies the connect's JWT against the
//! issuer's JWKS and answers API Gateway with an Allow for the verified user, or a Deny.

use std::sync::Arc;

use chat_core::auth::{self, AuthConfig, AuthorizerRequest, HttpJwks, Verifier};
use chat_core::{ConfigError, config};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = AuthConfig::from_env()?.ok_or(ConfigError::Missing(config::AUTH_ISSUER))?;
    let source = HttpJwks::new(&config.jwks_url)?;
    let verifier = &Verifier::new(config, Arc::new(source));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerRequest>| async move {
        Ok::<_, Error>(auth::authorize(&event.payload, verifier).await?)
    }))
    .await
}
