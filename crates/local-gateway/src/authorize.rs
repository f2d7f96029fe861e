//! Authorize: `$connect`'s Lambda REQUEST authorizer, read from the template and run as API
//! Gateway runs it: the identity sources
//! checked first (401 without invoking), the event built, and the answer's policy applied
//! (`Deny`, or no `Allow` matching the `methodArn`: 403; a function that fails with the error
//! `Unauthorized`: 401; a malformed answer or any other failure: 500). On `Allow`, the principal
//! and context become `requestContext.authorizer`.

use axum::http::StatusCode;
use chat_core::error::Chain;
use serde_json::{Map, Value};

use chat_template::Template;

use crate::error::StartError;
use crate::events::{self, Peer};
use crate::gateway::Gateway;
use crate::headers::ClientHeaders;
use crate::routing::Function;

/// Where an authorizer's identity source reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// `route.request.header.<Name>`.
    Header(String),
    /// `route.request.querystring.<name>`.
    Query(String),
}

/// The Lambda REQUEST authorizer on `$connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectAuthorizer {
    /// The function it invokes.
    pub function: Function,
    /// What must be present, non-empty, before it is invoked; else 401.
    pub identity_sources: Vec<IdentitySource>,
}

impl ConnectAuthorizer {
    /// The authorizer the template puts on `$connect` under `context`'s parameters, if any.
    pub fn from_template(template: &Template, context: &chat_template::Context) -> Result<Option<Self>, StartError> {
        let Some(spec) = template.connect_authorizer(context)? else { return Ok(None) };
        let binary = template.functions().into_iter().find(|f| f.logical_id == spec.function).and_then(|f| f.binary);
        let identity_sources = spec
            .identity_sources
            .iter()
            .map(|source| {
                if let Some(name) = source.strip_prefix("route.request.header.") {
                    Ok(IdentitySource::Header(name.to_owned()))
                } else if let Some(name) = source.strip_prefix("route.request.querystring.") {
                    Ok(IdentitySource::Query(name.to_owned()))
                } else {
                    Err(StartError::IdentitySource { authorizer: spec.logical_id.clone(), found: source.clone() })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { function: Function { logical_id: spec.function, binary }, identity_sources }))
    }
}

/// What the authorizer decided.
pub(crate) enum Verdict {
    /// Connect, with this as `requestContext.authorizer`.
    Allow(Map<String, Value>),
    /// Refuse the upgrade with this status and message.
    Refuse(StatusCode, &'static str),
}

/// Runs the authorizer for an upgrade request.
pub(crate) async fn run(
    gateway: &Gateway,
    authorizer: &ConnectAuthorizer,
    peer: &Peer,
    headers: &ClientHeaders,
    query: &[(String, String)],
) -> Verdict {
    let present = |source: &IdentitySource| match source {
        IdentitySource::Header(name) => headers.get(name).is_some_and(|value| !value.is_empty()),
        IdentitySource::Query(name) => query.iter().any(|(key, value)| key == name && !value.is_empty()),
    };
    if !authorizer.identity_sources.iter().all(present) {
        tracing::info!(connection_id = peer.connection_id, "refused connection: an identity source is missing");
        return Verdict::Refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let event = events::authorizer(&gateway.api, peer, headers, query, &gateway.ids.next());
    let invoked = gateway.backend.authorize(&authorizer.function, event);
    let answer = match gateway.within_integration_timeout(invoked).await.0 {
        Ok(answer) => answer,
        Err(error) if refuses_as_unauthorized(&error) => {
            tracing::info!(
                connection_id = peer.connection_id,
                "refused connection: the authorizer failed with Unauthorized"
            );
            return Verdict::Refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        Err(error) => {
            tracing::error!(connection_id = peer.connection_id, error = %Chain(&error), "the authorizer failed");
            return Verdict::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    };
    match decide(&answer, &events::method_arn(&gateway.api)) {
        Ok(Some(authorized)) => Verdict::Allow(authorized),
        Ok(None) => {
            tracing::info!(connection_id = peer.connection_id, "refused connection: the authorizer denied it");
            Verdict::Refuse(StatusCode::FORBIDDEN, "Forbidden")
        }
        Err(problem) => {
            tracing::error!(connection_id = peer.connection_id, problem, "the authorizer's answer is malformed");
            Verdict::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

/// Whether an authorizer's failure is its way of saying 401: the error `Unauthorized` (Node's
/// `callback("Unauthorized")` or `throw new Error("Unauthorized")`, an `Err` whose message is
/// `Unauthorized` from Rust), which the Invoke API reports as `{"errorMessage":"Unauthorized",…}`.
/// AWS documents this for REST APIs' Lambda authorizers and calls WebSocket APIs' "similar";
/// it is observed on WebSocket APIs in localstack/localstack#6368, and AWS's own samples
/// (aws/aws-lambda-go `events/README_ApiGatewayCustomAuthorizer.md`) fail this way to refuse.
fn refuses_as_unauthorized(error: &crate::error::InvokeError) -> bool {
    let crate::error::InvokeError::FunctionError { payload, .. } = error else { return false };
    serde_json::from_str::<Value>(payload).is_ok_and(|payload| payload["errorMessage"] == "Unauthorized")
}

/// The `requestContext.authorizer` an answer allows, `None` if it does not allow `method_arn`,
/// or what is malformed about it.
fn decide(answer: &Value, method_arn: &str) -> Result<Option<Map<String, Value>>, &'static str> {
    let principal = answer["principalId"].as_str().ok_or("principalId is missing or not a string")?;
    let statements = match &answer["policyDocument"]["Statement"] {
        Value::Array(statements) => statements.as_slice(),
        statement @ Value::Object(_) => std::slice::from_ref(statement),
        _ => return Err("policyDocument.Statement is missing"),
    };
    let (mut allowed, mut denied) = (false, false);
    for statement in statements {
        let resources = match &statement["Resource"] {
            Value::String(resource) => vec![resource.as_str()],
            Value::Array(resources) => resources.iter().filter_map(Value::as_str).collect(),
            _ => return Err("a statement has no Resource"),
        };
        let matches = resources.iter().any(|resource| wildcard_match(resource, method_arn));
        match statement["Effect"].as_str() {
            Some("Allow") => allowed |= matches,
            Some("Deny") => denied |= matches,
            _ => return Err("a statement's Effect is neither Allow nor Deny"),
        }
    }
    if denied || !allowed {
        return Ok(None);
    }
    let mut authorized = Map::new();
    match &answer["context"] {
        Value::Null => {}
        Value::Object(context) => {
            for (key, value) in context {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(_) | Value::Bool(_) => value.to_string(),
                    _ => return Err("context values must be strings, numbers or booleans"),
                };
                authorized.insert(key.clone(), text.into());
            }
        }
        _ => return Err("context is not an object"),
    }
    authorized.insert("principalId".into(), principal.into());
    Ok(Some(authorized))
}

/// IAM's resource matching: `*` matches any run of characters, `?` any one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t, mut star, mut resume) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            resume = t;
            p += 1;
        } else if let Some(at) = star {
            p = at + 1;
            resume += 1;
            t = resume;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:local/dev/$connect";

    fn answer(effect: &str, resource: Value) -> Value {
        json!({"principalId": "alice", "policyDocument": {"Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
            "context": {"userId": "alice", "level": 3, "admin": false}})
    }

    #[test]
    fn an_allow_for_the_method_arn_or_a_wildcard_over_it_connects_with_context_as_strings() {
        for resource in [json!(ARN), json!([ARN]), json!("arn:aws:execute-api:*:*:local/dev/*"), json!("*")] {
            let authorized = decide(&answer("Allow", resource.clone()), ARN).unwrap().expect("allowed");
            assert_eq!(
                Value::Object(authorized),
                json!({"principalId": "alice", "userId": "alice", "level": "3", "admin": "false"}),
                "{resource}"
            );
        }
    }

    #[test]
    fn a_deny_or_an_allow_for_another_resource_refuses() {
        assert_eq!(decide(&answer("Deny", json!(ARN)), ARN), Ok(None));
        assert_eq!(
            decide(&answer("Allow", json!("arn:aws:execute-api:us-east-1:123456789012:local/dev/*/*")), ARN),
            Ok(None),
            "REST-style"
        );
        assert_eq!(
            decide(&answer("Allow", json!("arn:aws:execute-api:us-east-1:123456789012:other/dev/$connect")), ARN),
            Ok(None)
        );
    }

    #[test]
    fn a_malformed_answer_is_an_error() {
        assert!(decide(&json!({"policyDocument": {}}), ARN).is_err(), "no principal");
        assert!(decide(&json!({"principalId": "a"}), ARN).is_err(), "no policy");
        assert!(decide(&answer("Maybe", json!(ARN)), ARN).is_err());
        let mut nested = answer("Allow", json!(ARN));
        nested["context"]["deep"] = json!({"no": "objects"});
        assert!(decide(&nested, ARN).is_err());
    }
}
