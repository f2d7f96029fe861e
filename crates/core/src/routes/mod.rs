//! The routes of the WebSocket API: one module per route, each a plain async function of a
//! [`Request`] and the dependencies it uses, returning an [`Outcome`].
//!
//! [`request`] is the adapter from API Gateway's event (the only code here that reads it) and
//! [`outcome`] the one place an outcome becomes the sender's frame, metrics, log line and status.
//! The functions named after the routes below take the event itself: what each Lambda binary,
//! the local gateway and the benchmarks call.

mod connect;
mod default;
mod disconnect;
mod fan_out;
mod fan_out_page;
mod history;
pub mod outcome;
mod read;
pub mod request;
mod rooms;
mod send_message;
mod sync;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

pub use fan_out_page::{PageFailed, fan_out_page, fan_out_worker};
pub use outcome::{Handled, Outcome, Refusal, Reply};
pub use request::{Caller, MalformedEvent, Request};

use crate::identity::Mode;
use crate::messenger::Messenger;
pub use crate::protocol::Route;
use crate::queue::FanOutQueue;
use crate::store::{ConnectionStore, Store};

/// The handlers themselves, for tests and other callers that have a [`Request`] rather than an
/// event. Each records what it delivered in the [`crate::metrics::Metrics`] it is given.
pub mod handlers {
    pub use super::connect::connect;
    pub use super::default::default;
    pub use super::disconnect::disconnect;
    pub use super::history::get_history;
    pub use super::read::mark_read;
    pub use super::rooms::{join_room, leave_room};
    pub use super::send_message::{send_message, send_message_through};
    pub use super::sync::sync;
}

/// `$connect`: see [`handlers::connect`].
pub async fn connect(event: &ApiGatewayWebsocketProxyRequest, store: &dyn Store, mode: Mode) -> Handled {
    request::run(Route::Connect, event, None, async |request, _| connect::connect(request, store, mode).await).await
}

/// `$disconnect`: see [`handlers::disconnect`].
pub async fn disconnect(event: &ApiGatewayWebsocketProxyRequest, store: &dyn ConnectionStore) -> Handled {
    request::run(Route::Disconnect, event, None, async |request, _| disconnect::disconnect(request, store).await).await
}

/// `$default`: see [`handlers::default`].
pub async fn default(event: &ApiGatewayWebsocketProxyRequest, messenger: &dyn Messenger) -> Handled {
    request::run(Route::Default, event, Some(messenger), async |request, _| default::default(request)).await
}

/// `sendMessage`: see [`handlers::send_message`].
pub async fn send_message(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    send_message_through(event, store, messenger, None).await
}

/// `sendMessage` with a fan-out queue for big rooms: see [`handlers::send_message_through`].
pub async fn send_message_through(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
    queue: Option<&dyn FanOutQueue>,
) -> Handled {
    let handler = async |request: &Request, metrics: &mut _| {
        send_message::send_message_through(request, store, messenger, queue, metrics).await
    };
    request::run(Route::SendMessage, event, Some(messenger), handler).await
}

/// `joinRoom`: see [`handlers::join_room`].
pub async fn join_room(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    request::run(Route::JoinRoom, event, Some(messenger), async |request, _| {
        rooms::join_room(request, store, messenger).await
    })
    .await
}

/// `leaveRoom`: see [`handlers::leave_room`].
pub async fn leave_room(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    request::run(Route::LeaveRoom, event, Some(messenger), async |request, _| {
        rooms::leave_room(request, store, messenger).await
    })
    .await
}

/// `getHistory`: see [`handlers::get_history`].
pub async fn get_history(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    request::run(Route::GetHistory, event, Some(messenger), async |request, _| {
        history::get_history(request, store).await
    })
    .await
}

/// `sync`: see [`handlers::sync`].
pub async fn sync(event: &ApiGatewayWebsocketProxyRequest, store: &dyn Store, messenger: &dyn Messenger) -> Handled {
    request::run(Route::Sync, event, Some(messenger), async |request, _| sync::sync(request, store).await).await
}

/// `markRead`: see [`handlers::mark_read`].
pub async fn mark_read(
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
) -> Handled {
    request::run(Route::MarkRead, event, Some(messenger), async |request, _| {
        read::mark_read(request, store, messenger).await
    })
    .await
}

/// Runs a route's handler with every dependency at hand (the local gateway and benchmarks do;
/// each Lambda binary calls its own route with only what it needs).
pub async fn handle(
    route: Route,
    event: &ApiGatewayWebsocketProxyRequest,
    store: &dyn Store,
    messenger: &dyn Messenger,
    queue: Option<&dyn FanOutQueue>,
    mode: Mode,
) -> Handled {
    match route {
        Route::Connect => connect(event, store, mode).await,
        Route::Disconnect => disconnect(event, store).await,
        Route::Default => default(event, messenger).await,
        Route::SendMessage => send_message_through(event, store, messenger, queue).await,
        Route::JoinRoom => join_room(event, store, messenger).await,
        Route::LeaveRoom => leave_room(event, store, messenger).await,
        Route::GetHistory => get_history(event, store, messenger).await,
        Route::Sync => sync(event, store, messenger).await,
        Route::MarkRead => mark_read(event, store, messenger).await,
    }
}

/// The refusal of a frame from a connection the store has no record of: it expired, or its
/// `$connect` never completed. Right in both modes: a new connection gets a new record.
pub(crate) fn unknown_connection() -> Refusal {
    Refusal::new(
        crate::protocol::ErrorCode::UnknownConnection,
        "this connection is not on record (it may have expired); open a new connection",
    )
}
