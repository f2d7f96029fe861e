//! The protocol's published contract, `docs/asyncapi.yaml`: generated from the Rust types by
//! `make asyncapi`, and read back by the tests and the local gateway's frame checks.

use std::path::PathBuf;

/// Where the contract is committed.
pub fn path() -> PathBuf {
    crate::workspace_root().join("docs/asyncapi.yaml")
}

/// The document the code generates, as the YAML committed at [`path`].
pub fn generated_yaml() -> String {
    let header = "# Generated from the types of crates/core/src/protocol and crates/core/src/routes by `make asyncapi`; do not edit by hand.\n";
    let body = serde_yaml_ng::to_string(&chat_core::asyncapi::document()).expect("the document is plain JSON");
    format!("{header}{body}")
}

/// The document as the rule that frames evolve by addition began to be checked
/// (`crates/core/tests/fixtures/asyncapi-baseline.yaml`): [`committed`] may only grow from it.
///
/// # Panics
/// When it cannot be read or parsed.
pub fn baseline() -> serde_json::Value {
    let path = crate::workspace_root().join("crates/core/tests/fixtures/asyncapi-baseline.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The committed document, parsed.
///
/// # Panics
/// When it cannot be read or parsed, saying how to regenerate it.
pub fn committed() -> serde_json::Value {
    let text = std::fs::read_to_string(path())
        .unwrap_or_else(|error| panic!("{}: {error}; run make asyncapi", path().display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}; run make asyncapi", path().display()))
}
