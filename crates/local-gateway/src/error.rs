//! Errors of the local gateway.

use chat_template::TemplateError;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--web-root` names a folder without the page.
    #[error("--web-root {}: no index.html there; point it at the chat's web/ folder", .0.display())]
    WebRoot(std::path::PathBuf),
    /// The template could not be read or understood.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The route selection expression is not of the form `$request.body.<field>`.
    #[error(
        "resource {resource}: property Properties.RouteSelectionExpression is {expression:?}; the local gateway supports $request.body.<field>"
    )]
    Selection {
        /// The API's logical id.
        resource: String,
        /// The expression found.
        expression: String,
    },
    /// A route response the gateway cannot serve as API Gateway would.
    #[error("resource {resource}: {problem}")]
    RouteResponse {
        /// The route or route response's logical id.
        resource: String,
        /// What is unsupported, and what to do.
        problem: String,
    },
    /// The contract to check frames against cannot be read.
    #[error("cannot use the contract {path}: {cause}")]
    Contract {
        /// The document's path.
        path: std::path::PathBuf,
        /// What went wrong.
        cause: String,
    },
    /// A route the core crate has no handler for, so it cannot run in-process.
    #[error(
        "resource {function}: serves route {key:?}, which chat-core has no handler for; use --lambda-endpoint to run it as a Lambda"
    )]
    UnknownRoute {
        /// The function's logical id.
        function: String,
        /// The route key.
        key: String,
    },
    /// The `$connect` authorizer cannot run in-process with the environment the template gives it.
    #[error(
        "resource {function}: cannot run the authorizer in-process: {cause}; check --parameter-overrides (AuthIssuer, AuthAudience)"
    )]
    Authorizer {
        /// The authorizer function's logical id.
        function: String,
        /// What is wrong.
        cause: String,
    },
    /// The fan-out worker's environment does not configure it.
    #[error(
        "resource {function}: cannot run the fan-out workers in-process: {cause}; check --parameter-overrides (FanOutPostsPerSecond, FanOutWorkers)"
    )]
    FanOutWorker {
        /// The worker function's logical id.
        function: String,
        /// What is wrong.
        cause: String,
    },
    /// The functions' environment sets a retention the functions would refuse.
    #[error(
        "resource {function}: cannot keep messages in-process: {cause}; check --parameter-overrides (MessageRetentionDays)"
    )]
    Retention {
        /// The function whose environment sets it.
        function: String,
        /// What is wrong.
        cause: String,
    },
    /// An authorizer's identity source is neither a header nor a query parameter.
    #[error(
        "resource {authorizer}: identity source {found:?} is not route.request.header.<Name> or route.request.querystring.<name>"
    )]
    IdentitySource {
        /// The authorizer's logical id.
        authorizer: String,
        /// The source found.
        found: String,
    },
    /// The port could not be bound.
    #[error("cannot listen on {address}: {source}; is another gateway running? pick another --port")]
    Bind {
        /// The address tried.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A route's integration failed: API Gateway would answer `Internal server error`.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler panicked.
    #[error("the handler panicked")]
    Panicked,
    /// The handler did not answer within the integration timeout.
    #[error("the integration timed out after {0:?}")]
    TimedOut(std::time::Duration),
    /// The Lambda Invoke API call failed.
    #[error("invoking {function} through the Lambda Invoke API failed")]
    Invoke {
        /// The function name invoked.
        function: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_lambda::Error>,
    },
    /// The function reported an error (`X-Amz-Function-Error`).
    #[error("function {function} failed ({kind}): {payload}")]
    FunctionError {
        /// The function name invoked.
        function: String,
        /// `Unhandled` or `Handled`.
        kind: String,
        /// The error payload the function returned.
        payload: String,
    },
    /// The gateway built an event the handlers cannot read: a bug in the gateway.
    #[error("the event for {function} does not parse as an API Gateway WebSocket event: {source}")]
    BadEvent {
        /// The function the event was for.
        function: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The function's answer is JSON but not a proxy response (API Gateway's "Execution failed
    /// due to configuration error: Malformed Lambda proxy response").
    #[error("function {function}: execution failed due to configuration error")]
    Malformed {
        /// The function's logical id.
        function: String,
        /// What is wrong with the answer.
        #[source]
        source: crate::proxy::Malformed,
    },
    /// The function's answer is not JSON.
    #[error("function {function} answered something that is not JSON: {source}")]
    BadResponse {
        /// The function name invoked.
        function: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
}
