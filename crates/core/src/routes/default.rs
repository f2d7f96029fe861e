//! `$default`: the classic `{"action":"send"}` echo, and a helpful error for anything else.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use super::{Handled, Sender, malformed_event};
use crate::messenger::Messenger;
use crate::metrics::Metrics;
use crate::protocol::{DefaultRequest, Echo, ErrorFrame, PONG, Route};

/// Answers `{"action":"send"}` with a pong, `{"action":"send","message":m}` with `m`, and any
/// other frame with `unknownAction` and the list of actions.
pub async fn default(request: &ApiGatewayWebsocketProxyRequest, messenger: &dyn Messenger) -> Handled {
    let metrics = Metrics::new(Route::Default);
    let sender = match Sender::of(request, messenger) {
        Ok(sender) => sender,
        Err(field) => return malformed_event(field, metrics),
    };
    match DefaultRequest::parse(request.body.as_deref()) {
        Ok(DefaultRequest::Ping) => sender.answer(&Echo { message: PONG }, "answered", metrics).await,
        Ok(DefaultRequest::Echo(message)) => sender.answer(&Echo { message: &message }, "answered", metrics).await,
        Ok(DefaultRequest::Unknown) => sender.refuse(ErrorFrame::unknown_action(), 400, metrics).await,
        Err(error) => sender.refuse(error.to_frame(), 400, metrics).await,
    }
}
