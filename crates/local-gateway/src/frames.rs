//! API Gateway's own frames: what it writes to a client itself, when no function answers.
//!
//! AWS writes them as `{"message": "<text>", "connectionId":"<id>", "requestId":"<id>"}`: in
//! that key order, with a space after `"message":` and after each comma and none after the other
//! colons (captures in aws/chalice#1406 and dvmatyun/web_socket#13). Clients that compare the
//! text, or parse it with a hand-written reader, see the same bytes here as on AWS.

/// Which of API Gateway's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GatewayFrame {
    /// No route matched and there is no `$default` route (user reports).
    Forbidden,
    /// The integration failed: the function threw, or its answer was no Lambda proxy response
    /// (observed against AWS by suites that run on AWS and emulators).
    InternalServerError,
    /// The integration ran past the 29 s integration timeout; the connection stays open
    /// (Kludex/mangum#128, aws/chalice#1406).
    EndpointRequestTimedOut,
    /// The stage's route throttling or the account-level throttle refused the frame. The text
    /// is that of API Gateway's `THROTTLED` gateway response; AWS says only that "clients may
    /// receive 429 Too Many Requests error responses" ("Protect your WebSocket API").
    TooManyRequests,
}

impl GatewayFrame {
    /// The `message` text.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Self::Forbidden => "Forbidden",
            Self::InternalServerError => "Internal server error",
            Self::EndpointRequestTimedOut => "Endpoint request timed out",
            Self::TooManyRequests => "Too Many Requests",
        }
    }

    /// The frame, byte for byte as AWS writes it.
    pub(crate) fn text(self, connection_id: &str, request_id: &str) -> String {
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
        format!(
            r#"{{"message": {}, "connectionId":{}, "requestId":{}}}"#,
            quoted(self.message()),
            quoted(connection_id),
            quoted(request_id)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayFrame;

    #[test]
    fn frames_are_written_as_the_captures_from_aws_show_them() {
        // The shape of the capture in aws/chalice#1406; the ids are made up.
        let captured = r#"{"message": "Endpoint request timed out", "connectionId":"PzQ8ae3BoAMCL4w=", "requestId":"PzQ9nHmNIAMFcNw="}"#;

        let ours = GatewayFrame::EndpointRequestTimedOut.text("PzQ8ae3BoAMCL4w=", "PzQ9nHmNIAMFcNw=");

        assert_eq!(ours, captured);
        for (frame, message) in [
            (GatewayFrame::Forbidden, "Forbidden"),
            (GatewayFrame::InternalServerError, "Internal server error"),
            (GatewayFrame::TooManyRequests, "Too Many Requests"),
        ] {
            let expected = format!(r#"{{"message": "{message}", "connectionId":"a=", "requestId":"b="}}"#);
            assert_eq!(frame.text("a=", "b="), expected);
        }
    }
}
