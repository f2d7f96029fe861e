//! A Lambda proxy integration's answer, read as API Gateway reads it.
//!
//! The format is AWS's "output format of a Lambda function for proxy integration": a JSON object
//! with `statusCode` (an integer), and optionally `headers` (names to strings),
//! `multiValueHeaders` (names to lists of strings), `body` (a string) and `isBase64Encoded`.
//! Of anything else AWS says "API Gateway returns a 502 Bad Gateway error response" with
//! `{"message":"Internal server error"}` and logs "Malformed Lambda proxy response"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html>, REST and
//! HTTP APIs); a WebSocket route's client gets API Gateway's `Internal server error` frame
//! instead, and a `null` answer was seen to log the same line on a WebSocket API
//! (michalkvasnicak/aws-lambda-graphql#48). On a one-way route a well-formed answer reaches no
//! one, whatever its status ("regardless of any integration response configuration, no
//! response will be returned over the WebSocket channel": AWS's developer guide, "Integration
//! responses for WebSocket APIs").

use chat_core::ApiGatewayProxyResponse;
use serde_json::Value;

/// The keys of the proxy output format.
const KEYS: [&str; 5] = ["statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"];

/// Why an answer is not a proxy response: API Gateway's "Malformed Lambda proxy response".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Malformed Lambda proxy response: {0}")]
pub struct Malformed(pub String);

/// Reads a function's answer; what API Gateway would refuse is [`Malformed`].
///
/// Unverified against AWS on a WebSocket route, so answered as the gateway always has: no
/// `statusCode` is refused (the Rust runtime's response type requires it), and
/// `"isBase64Encoded": true` is accepted with a warning (binary answers are documented for REST
/// APIs only).
pub fn read(function: &str, answer: Value) -> Result<ApiGatewayProxyResponse, Malformed> {
    let Value::Object(fields) = &answer else {
        return Err(Malformed(format!("the answer is {}, not a JSON object", kind(&answer))));
    };
    if let Some(unknown) = fields.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(Malformed(format!("unknown key {unknown:?}; a proxy response has only {}", KEYS.join(", "))));
    }
    match fields.get("statusCode") {
        None => return Err(Malformed("no statusCode".into())),
        Some(Value::Number(status)) if status.is_i64() => {}
        Some(other) => return Err(Malformed(format!("statusCode is {}, not an integer", kind(other)))),
    }
    if let Some(body) = fields.get("body").filter(|body| !body.is_null() && !body.is_string()) {
        return Err(Malformed(format!("body is {}, not a string", kind(body))));
    }
    if fields.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        tracing::warn!(
            function,
            "an answer with \"isBase64Encoded\": true; how API Gateway treats it on a WebSocket route is unverified"
        );
    }
    serde_json::from_value(answer).map_err(|error| Malformed(error.to_string()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shape_outside_the_proxy_format_is_malformed() {
        for answer in [
            json!({"statusCode": 200, "ConnectionId": "x", "Data": "y"}),
            json!({"body": "no status"}),
            json!("a string"),
            Value::Null,
            json!([200]),
            json!({"statusCode": "200"}),
            json!({"statusCode": 200, "body": {"an": "object"}}),
            json!({"statusCode": 200, "headers": {"x": 1}}),
        ] {
            assert!(read("f", answer.clone()).is_err(), "{answer}");
        }
    }

    #[test]
    fn the_proxy_format_is_read() {
        for answer in [
            json!({"statusCode": 200}),
            json!({"statusCode": 500, "body": null, "isBase64Encoded": false}),
            json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat"}, "multiValueHeaders": {}, "body": "hi"}),
            json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}),
        ] {
            assert!(read("f", answer.clone()).is_ok(), "{answer}");
        }
    }
}
