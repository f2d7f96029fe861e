//! Checks frames against the protocol's published contract (`docs/asyncapi.yaml`), so the
//! document cannot drift from the server: every frame the chat's handlers post, and every frame
//! a client routes, is checked, and each mismatch is kept as a violation.
//!
//! Tests turn it on ([`crate::Settings::contract`]); a gateway with violations panics when it is
//! dropped, failing the test that caused them. It covers the Rust, wscat and browser tests alike.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use chat_core::asyncapi;
use serde_json::Value;

use crate::error::StartError;

/// The contract's validators and the violations seen so far.
pub struct Contract {
    sent: jsonschema::Validator,
    received: HashMap<String, jsonschema::Validator>,
    violations: Mutex<Vec<String>>,
}

impl Contract {
    /// Reads the AsyncAPI document at `path`.
    pub fn load(path: &Path) -> Result<Self, StartError> {
        let failed = |cause: String| StartError::Contract { path: path.to_owned(), cause };
        let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
        let document: Value = serde_yaml_ng::from_str(&text).map_err(|error| failed(error.to_string()))?;
        let compile = |schema: &Value| jsonschema::draft7::new(schema).map_err(|error| failed(error.to_string()));
        let sent = compile(&asyncapi::sent_frames_schema(&document))?;
        let mut received = HashMap::new();
        for action in chat_core::protocol::ACTIONS {
            if let Some(schema) = asyncapi::received_frame_schema(&document, action) {
                received.insert(action.to_owned(), compile(&schema)?);
            }
        }
        Ok(Self { sent, received, violations: Mutex::default() })
    }

    /// Checks a frame a handler posts: it must be one the document says the chat sends.
    pub fn check_post(&self, data: &[u8]) {
        match serde_json::from_slice::<Value>(data) {
            Ok(frame) if self.sent.is_valid(&frame) => {}
            Ok(frame) => self.violation(format!("posted a frame the contract does not describe: {frame}")),
            Err(_) => self.violation(format!("posted a frame that is not JSON: {}", String::from_utf8_lossy(data))),
        }
    }

    /// Checks a routed frame against the function's answer: a frame the document accepts must
    /// not be refused as malformed (status 400).
    pub fn check_routed(&self, body: &str, status: i64) {
        let Ok(frame) = serde_json::from_str::<Value>(body) else { return };
        let Some(validator) = frame.get("action").and_then(Value::as_str).and_then(|action| self.received.get(action))
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

    /// Every violation so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/asyncapi.yaml")).expect("the contract")
    }

    #[test]
    fn an_undocumented_post_or_a_documented_frame_refused_as_malformed_is_a_violation() {
        let contract = contract();

        contract.check_post(br#"{"senderId":"alice","body":"hi"}"#);
        contract.check_routed(r#"{"action":"joinRoom","roomId":"lobby"}"#, 200);
        contract.check_routed(r#"{"action":"joinRoom","roomId":"no spaces"}"#, 400);
        assert!(contract.violations().is_empty(), "{:?}", contract.violations());

        contract.check_post(br#"{"senderId":"alice","body":"hi","seq":1}"#);
        contract.check_post(b"not json");
        contract.check_routed(r#"{"action":"joinRoom","roomId":"lobby"}"#, 400);
        assert_eq!(contract.violations().len(), 3, "{:?}", contract.violations());
    }
}
