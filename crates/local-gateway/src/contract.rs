//! Checks frames against the protocol's published contract (`docs/asyncapi.yaml`), so the
//! document cannot drift from the server: every frame the chat's handlers post, and every frame
//! a client routes, is checked, and each mismatch is kept as a violation.
//!
//! Tests turn it on ([`crate::Settings::contract`]); a gateway with violations panics when it is
//! dropped, failing the test that caused them. It checks what the in-process handlers post and
//! what every client routes, so it covers the Rust, wscat and browser tests that run the
//! handlers in-process; with `--lambda-endpoint` only routed frames are checked (the real
//! functions post to the @connections API directly, where tests also post raw data on purpose).
//! It needs the crate's `contract` feature (the tests enable it); a gateway built without it
//! refuses a contract at start-up, saying so.

use std::path::Path;
use std::sync::Mutex;

use crate::error::StartError;

/// The contract's validators and the violations seen so far.
pub struct Contract {
    #[cfg(feature = "contract")]
    checks: checks::Checks,
    /// Without the feature no contract can be loaded, so none exists.
    #[cfg(not(feature = "contract"))]
    never: std::convert::Infallible,
    violations: Mutex<Vec<String>>,
}

#[cfg(not(feature = "contract"))]
impl Contract {
    /// Refuses: this build cannot check frames.
    pub fn load(path: &Path) -> Result<Self, StartError> {
        let cause = "this local-gateway was built without the contract feature; build it with --features contract";
        Err(StartError::Contract { path: path.to_owned(), cause: cause.into() })
    }

    /// Never called: no contract exists without the feature.
    pub fn check_post(&self, _: &[u8]) {
        match self.never {}
    }

    /// Never called: no contract exists without the feature.
    pub fn check_routed(&self, _: &str, _: i64) {
        match self.never {}
    }
}

#[cfg(feature = "contract")]
mod checks {
    use std::collections::HashMap;

    /// The validators of one document.
    pub(super) struct Checks {
        pub sent: jsonschema::Validator,
        pub received: HashMap<String, jsonschema::Validator>,
    }
}

#[cfg(feature = "contract")]
impl Contract {
    /// Reads the AsyncAPI document at `path`.
    pub fn load(path: &Path) -> Result<Self, StartError> {
        use chat_core::asyncapi;
        use serde_json::Value;

        let failed = |cause: String| StartError::Contract {
            path: path.to_owned(),
            cause: format!("{cause}; run make asyncapi"),
        };
        let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
        let document: Value = serde_yaml_ng::from_str(&text).map_err(|error| failed(error.to_string()))?;
        let compile = |schema: &Value| jsonschema::draft7::new(schema).map_err(|error| failed(error.to_string()));
        let sent = compile(&asyncapi::sent_frames_schema(&document))?;
        let mut received = std::collections::HashMap::new();
        for action in chat_core::routes::actions() {
            if let Some(schema) = asyncapi::received_frame_schema(&document, action) {
                received.insert(action.to_owned(), compile(&schema)?);
            }
        }
        Ok(Self { checks: checks::Checks { sent, received }, violations: Mutex::default() })
    }

    /// Checks a frame a handler posts: it must be one the document says the chat sends.
    pub fn check_post(&self, data: &[u8]) {
        use serde_json::Value;
        match serde_json::from_slice::<Value>(data) {
            Ok(frame) if self.checks.sent.is_valid(&frame) => {}
            Ok(frame) => self.violation(format!("posted a frame the contract does not describe: {frame}")),
            Err(_) => self.violation(format!("posted a frame that is not JSON: {}", String::from_utf8_lossy(data))),
        }
    }

    /// Checks a routed frame against the function's answer: a frame the document accepts must
    /// not be refused as malformed (status 400).
    pub fn check_routed(&self, body: &str, status: i64) {
        use serde_json::Value;
        let Ok(frame) = serde_json::from_str::<Value>(body) else { return };
        let received = &self.checks.received;
        let Some(validator) = frame.get("action").and_then(Value::as_str).and_then(|action| received.get(action))
        else {
            return;
        };
        if validator.is_valid(&frame) && status == 400 {
            self.violation(format!("a frame the contract accepts was refused with 400: {frame}"));
        }
    }

    fn violation(&self, text: String) {
        tracing::error!(violation = %text, "contract violation");
        self.violations.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(text);
    }
}

impl Contract {
    /// Every violation so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[cfg(all(test, feature = "contract"))]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/asyncapi.yaml")).expect("the contract")
    }

    #[test]
    fn an_undocumented_post_or_a_documented_frame_refused_as_malformed_is_a_violation() {
        let contract = contract();

        contract.check_post(br#"{"senderId":"alice","body":"hi","destinationUserId":"bob","seq":1,"sentAt":7}"#);
        contract.check_routed(r#"{"action":"joinRoom","roomId":"lobby"}"#, 200);
        contract.check_routed(r#"{"action":"joinRoom","roomId":"no spaces"}"#, 400);
        assert!(contract.violations().is_empty(), "{:?}", contract.violations());

        contract.check_post(br#"{"senderId":"alice","body":"hi","seq":1}"#);
        contract.check_post(b"not json");
        contract.check_routed(r#"{"action":"joinRoom","roomId":"lobby"}"#, 400);
        assert_eq!(contract.violations().len(), 3, "{:?}", contract.violations());
    }
}
