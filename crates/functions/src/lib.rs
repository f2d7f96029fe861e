//! The chat's Lambda functions, each a cargo binary in `src/bin` named as `template.yaml`
//! builds it (`Metadata.BuildProperties.Binary`): the route functions of the table in
//! [`chat_core::routes`] ([`serve_routes`]), the fan-out worker ([`serve_fan_out_worker`]) and
//! the `$connect` authorizer ([`serve_authorizer`]). Each builds what its routes use from its
//! environment once, at start-up, and hands every event to [`chat_core::routes::handle`].

use std::sync::Arc;

use chat_core::auth::{self, AuthConfig, AuthorizerRequest, HttpJwks, Verifier};
use chat_core::config::{self, Vars};
use chat_core::delivery::queue::{FanOutQueue, Pace, SqsQueue};
use chat_core::identity::Mode;
use chat_core::routes::{self, Route, Service, Services};
use chat_core::sqs::SqsEvent;
use chat_core::{ApiGatewayMessenger, ApiGatewayWebsocketProxyRequest, ConfigError, DynamoDbStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Serves the routes the table maps to `function` (its binary's name). An event goes to the
/// route its `requestContext.routeKey` names when `function` serves it, else to the function's
/// first route (a function serving one route takes every event, as API Gateway only sends it
/// that route's).
///
/// # Errors
/// When the table maps no route to `function`, or its environment lacks what its routes use.
#[tokio::main(flavor = "current_thread")]
pub async fn serve_routes(function: &'static str) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let served: Vec<Route> = Route::served_by(function).collect();
    let first = *served.first().ok_or_else(|| format!("the route table maps no route to {function}"))?;
    let uses = |service| served.iter().any(|route| route.uses().contains(&service));
    let aws = chat_core::aws_config().await;
    let store = if uses(Service::Store) { Some(DynamoDbStore::from_env(&aws)?) } else { None };
    let messenger = if uses(Service::Messenger) { Some(ApiGatewayMessenger::from_env(&aws)?) } else { None };
    let queue = if uses(Service::Queue) { SqsQueue::from_env(&aws) } else { None };
    let services = Services {
        store: store.as_ref().map(|store| store as _),
        messenger: messenger.as_ref().map(|messenger| messenger as _),
        queue: queue.as_ref().map(|queue| queue as &dyn FanOutQueue),
        mode: Mode::from_env(),
    };
    let (served, services) = (&served, &services);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        let key = event.payload.request_context.route_key.as_deref();
        let route = served.iter().copied().find(|route| Some(route.key()) == key).unwrap_or(first);
        Ok::<_, Error>(routes::handle(route, &event.payload, services).await.emit())
    }))
    .await
}

/// Serves the fan-out queue: posts each page of a big room's members.
///
/// # Errors
/// When the environment lacks the tables or holds an invalid pace.
#[tokio::main(flavor = "current_thread")]
pub async fn serve_fan_out_worker() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = chat_core::aws_config().await;
    let store = &DynamoDbStore::from_env(&aws)?;
    let messenger = &ApiGatewayMessenger::from_env(&aws)?;
    let pace = &Pace::from_vars(&Vars::env())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(chat_core::lambda::fan_out_worker(&event.payload, store, messenger, Some(pace)).await)
    }))
    .await
}

/// Serves `$connect`'s Lambda REQUEST authorizer (token mode): verifies the connect's JWT
/// against the issuer's JWKS and answers API Gateway with an Allow for the verified user, or a
/// Deny.
///
/// # Errors
/// When `AUTH_ISSUER` is not set, or the JWKS URL is not one.
#[tokio::main(flavor = "current_thread")]
pub async fn serve_authorizer() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = AuthConfig::from_env()?.ok_or(ConfigError::Missing(config::AUTH_ISSUER))?;
    let source = HttpJwks::new(&config.jwks_url)?;
    let verifier = &Verifier::new(config, Arc::new(source));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerRequest>| async move {
        Ok::<_, Error>(auth::authorize(&event.payload, verifier).await?)
    }))
    .await
}
