//! The routes of the WebSocket API: one module per route, each owning all of it (its request
//! type with the parser that reads it and the schema that publishes it, its answer, and its
//! handler), and one table, below, that lists every route once.
//!
//! # The table
//! Each line of [`routes!`] names a route's variant of [`Route`], its route key in API Gateway,
//! its module, and the Lambda function (a cargo binary of `crates/functions`) that serves it.
//! Several routes may share a function. From the table come [`Route`] and its keys, the actions
//! an `unknownAction` error lists ([`actions`]), dispatch ([`handle`]), the messages of
//! `docs/asyncapi.yaml`, and [`FUNCTIONS`] (with the functions that serve no route, listed
//! beside it): what the binaries, the Makefile and the template tests enumerate.
//!
//! Each route module provides `async fn handle(&Context<'_>, &mut Metrics) -> Outcome`, `const
//! USES: &[Service]` (what the function serving it must be given; a route that uses no
//! messenger, `$connect` and `$disconnect`, whose connection cannot be posted to, is answered
//! by its status alone), `const COUNTERS: &[Metric]` (the counters it can increment, the only
//! ones its EMF line publishes) and `fn messages() -> Vec<Message>` (its frames as
//! `docs/asyncapi.yaml` publishes them).
//!
//! # Adding a route
//! Its module here, a line in the table, its route and function in `template.yaml`, and a
//! sample event in `events/`; a file in `crates/functions/src/bin` only for a new function.

mod connect;
pub mod context;
pub mod default;
mod disconnect;
pub mod get_history;
pub mod join_room;
pub mod leave_room;
pub mod mark_read;
pub mod send_message;
pub mod sync;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

/// The vocabulary of handlers, from the Lambda adapter.
pub use crate::lambda::{Caller, Failure, Handled, MalformedEvent, Outcome, Reply, Request};
pub use context::{Context, Services};

use crate::asyncapi::Message;
use crate::metrics::Metrics;

/// Declares every route once; see the module's documentation.
macro_rules! routes {
    ($( $(#[$doc:meta])* $route:ident $key:literal $module:ident $function:literal, )*) => {
        /// A route of the WebSocket API, by its key in API Gateway.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Route {
            $( $(#[$doc])* $route, )*
        }

        impl Route {
            /// Every route, in the table's order.
            pub const ALL: &[Route] = &[$(Route::$route),*];

            /// The route key API Gateway selects it by.
            pub const fn key(self) -> &'static str {
                match self {
                    $( Route::$route => $key, )*
                }
            }

            /// The Lambda function (cargo binary) that serves it.
            pub const fn function(self) -> &'static str {
                match self {
                    $( Route::$route => $function, )*
                }
            }

            /// The services its handler uses: what the function serving it is given.
            pub const fn uses(self) -> &'static [Service] {
                match self {
                    $( Route::$route => $module::USES, )*
                }
            }

            /// The counters its handler can increment: the only ones its metrics line publishes
            /// (each metric published is billed per month).
            pub const fn counters(self) -> &'static [crate::metrics::Metric] {
                match self {
                    $( Route::$route => $module::COUNTERS, )*
                }
            }

            /// Its frames, as `docs/asyncapi.yaml` publishes them.
            pub(crate) fn messages(self) -> Vec<Message> {
                match self {
                    $( Route::$route => $module::messages(), )*
                }
            }

            async fn run(self, context: &Context<'_>, metrics: &mut Metrics) -> Outcome {
                match self {
                    $( Route::$route => $module::handle(context, metrics).await, )*
                }
            }
        }
    };
}

routes! {
    /// `$connect`: records who the connection belongs to.
    Connect "$connect" connect "connect",
    /// `$disconnect`: forgets the connection.
    Disconnect "$disconnect" disconnect "disconnect",
    /// `$default`: the `send` echo, and help for unknown actions.
    Default "$default" default "default",
    /// `sendMessage`: delivers a message to every connection of a user, or to a room.
    SendMessage "sendMessage" send_message "send-message",
    /// `joinRoom`: makes the user a member of a room.
    JoinRoom "joinRoom" join_room "join-room",
    /// `leaveRoom`: ends the user's membership of a room.
    LeaveRoom "leaveRoom" leave_room "leave-room",
    /// `getHistory`: a page of a conversation's stored messages.
    GetHistory "getHistory" get_history "get-history",
    /// `sync`: the user's conversations, most recently active first.
    Sync "sync" sync "sync",
    /// `markRead`: raises the user's read state in a conversation.
    MarkRead "markRead" mark_read "mark-read",
}

/// A service a route uses: what the function serving it is built with ([`Services`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The store (DynamoDB in the cloud): the tables' environment variables.
    Store,
    /// API Gateway's @connections API, to answer the sender and deliver.
    Messenger,
    /// The fan-out queue (SQS), when the deployment has one.
    Queue,
}

/// The functions that serve no route: the fan-out worker (SQS) and the `$connect` authorizer.
pub const WORKERS: &[&str] = &["fan-out-worker", "authorizer"];

/// Every Lambda function (cargo binary), in the table's order, then [`WORKERS`].
pub fn functions() -> Vec<&'static str> {
    let mut functions: Vec<&'static str> = Vec::new();
    for function in Route::ALL.iter().map(|route| route.function()).chain(WORKERS.iter().copied()) {
        if !functions.contains(&function) {
            functions.push(function);
        }
    }
    functions
}

impl Route {
    /// The route with this key; keys are case-sensitive.
    pub fn from_key(key: &str) -> Option<Route> {
        Route::ALL.iter().copied().find(|route| route.key() == key)
    }

    /// Whether a client selects it by name (every route but API Gateway's `$` routes).
    pub fn is_action(self) -> bool {
        !self.key().starts_with('$')
    }

    /// The routes `function` serves, in the table's order.
    pub fn served_by(function: &str) -> impl Iterator<Item = Route> + '_ {
        Route::ALL.iter().copied().filter(move |route| route.function() == function)
    }
}

/// Every action a client can send, as `unknownAction` error frames list them: the routes
/// selected by name, in the table's order, then `$default`'s own [`default::SEND_ACTION`].
pub fn actions() -> Vec<&'static str> {
    Route::ALL.iter().filter(|route| route.is_action()).map(|route| route.key()).chain([default::SEND_ACTION]).collect()
}

/// Runs `route`'s handler on a [`Request`] of plain values and gives its outcome as the
/// handler decided it: nothing is posted, logged or concluded. For tests and other callers that
/// have a request rather than an event.
pub async fn outcome_of(route: Route, request: &Request, services: &Services<'_>, metrics: &mut Metrics) -> Outcome {
    route.run(&Context { request, services }, metrics).await
}

/// Runs `route`'s handler on an API Gateway event: reads the event, runs the handler with the
/// services, and concludes its outcome (the sender's frame, the metrics, the log line and the
/// Lambda response). What every Lambda function, the local gateway and the benchmarks call.
pub async fn handle(route: Route, event: &ApiGatewayWebsocketProxyRequest, services: &Services<'_>) -> Handled {
    let messenger = if route.uses().contains(&Service::Messenger) { services.messenger } else { None };
    crate::lambda::event::run(route, event, messenger, async |request, metrics| {
        route.run(&Context { request, services }, metrics).await
    })
    .await
}
