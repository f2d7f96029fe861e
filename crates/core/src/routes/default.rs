//! `$default`: the classic `{"action":"send"}` echo, and a helpful error for anything else.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use super::{Sender, malformed_event, respond};
use crate::messenger::Messenger;
use crate::protocol::{DefaultRequest, Echo, ErrorFrame, PONG};

/// Answers `{"action":"send"}` with a pong, `{"action":"send","message":m}` with `m`, and any
/// other frame with `unknownAction` and the list of actions.
pub async fn default(request: &ApiGatewayWebsocketProxyRequest, messenger: &dyn Messenger) -> ApiGatewayProxyResponse {
    let sender = match Sender::of(request, messenger) {
        Ok(sender) => sender,
        Err(field) => return malformed_event(field),
    };
    let answered = match DefaultRequest::parse(request.body.as_deref()) {
        Ok(DefaultRequest::Ping) => sender.reply(&Echo { message: PONG }).await,
        Ok(DefaultRequest::Echo(message)) => sender.reply(&Echo { message: &message }).await,
        Ok(DefaultRequest::Unknown) => return sender.refuse(ErrorFrame::unknown_action(), 400).await,
        Err(error) => return sender.refuse(error.to_frame(), 400).await,
    };
    if answered { respond(200, "answered") } else { respond(500, "could not answer the sender") }
}
