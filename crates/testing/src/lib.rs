//! Test helpers shared by the workspace's tests: the sample events users invoke with, a
//! messenger that records what it was asked to send, and a real DynamoDB API server (dynalite).

pub mod dynalite;
pub mod events;
pub mod recording;

pub use dynalite::Dynalite;
pub use recording::RecordingMessenger;

use std::path::PathBuf;

/// The workspace's root folder, where `template.yaml` and `events/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}
