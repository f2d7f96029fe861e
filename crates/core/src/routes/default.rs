//! `$default`: the classic `{"action":"send"}` echo, and a helpful error for anything else.

use super::{Outcome, Refusal, Reply, Request};
use crate::protocol::{Answer, DefaultRequest, Echo, ErrorFrame, PONG};

/// Answers `{"action":"send"}` with a pong, `{"action":"send","message":m}` with `m`, and any
/// other frame with `unknownAction` and the list of actions.
pub fn default(request: &Request) -> Outcome {
    let message = match DefaultRequest::parse(request.body.as_deref())? {
        DefaultRequest::Ping => PONG.to_owned(),
        DefaultRequest::Echo(message) => message,
        DefaultRequest::Unknown => return Err(Refusal::Refused(ErrorFrame::unknown_action())),
    };
    Ok(Reply::Answer(Answer::Echo(Echo { message })))
}
