//! Test helpers shared by the workspace's tests: the sample events users invoke with, a
//! messenger that records what it was asked to send, a real DynamoDB API server (dynalite), and
//! backends that fail as real ones do.

pub mod calls;
pub mod capacity;
pub mod chat;
pub mod contract;
pub mod deployment;
pub mod dynalite;
pub mod event_source;
pub mod events;
pub mod faults;
pub mod issuer;
pub mod logs;
pub mod poll;
pub mod recording;
pub mod sqs;

pub use chat::Chat;
pub use dynalite::Dynalite;
pub use issuer::Issuer;
pub use poll::until;
pub use recording::RecordingMessenger;

use std::path::PathBuf;

/// A delivered message frame without what storing it added (`seq`, at least 1, and `sentAt`,
/// epoch ms), which it must carry: what tests compare when the seq or time is not theirs to know.
///
/// # Panics
/// When the frame lacks either, or holds one of the wrong type.
pub fn stored(frame: &serde_json::Value) -> serde_json::Value {
    assert!(frame["seq"].as_u64().is_some_and(|seq| seq >= 1), "a delivered message carries its seq: {frame}");
    assert!(frame["sentAt"].as_i64().is_some_and(|at| at > 0), "a delivered message carries sentAt: {frame}");
    let mut rest = frame.clone();
    if let Some(object) = rest.as_object_mut() {
        object.remove("seq");
        object.remove("sentAt");
    }
    rest
}

/// A tool `make tools` installs under `.tools/`, e.g. `node/node_modules/.bin/wscat`.
///
/// # Panics
/// When it is not installed, saying how to install it.
pub fn tool(relative: &str) -> PathBuf {
    let path = workspace_root().join(".tools").join(relative);
    assert!(path.exists(), "{} is not installed: run `make tools` (or `make test`, which installs it)", path.display());
    path
}

/// The workspace's root folder, where `template.yaml` and `events/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// The value after `--name` on the command line of a development binary (`dev-dynamodb`,
/// `dev-issuer`), or `default`.
pub fn flag(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|arg| arg == name).and_then(|at| args.get(at + 1)).cloned().unwrap_or_else(|| default.into())
}

/// Every member connection of `room`, read page by page as a room fan-out reads them, sorted.
///
/// # Panics
/// When the room id is invalid or the store fails.
pub async fn members_of(store: &(impl chat_core::store::SubscriptionStore + ?Sized), room: &str) -> Vec<String> {
    let room = chat_core::protocol::RoomId::parse(room).expect("a valid room id");
    let (mut ids, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = store.members(&room, after.as_deref()).await.expect("the store answers");
        ids.extend(page.connection_ids);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    ids.sort();
    ids
}

/// Runs store behaviours on both stores. Each `case` is an `async fn case(store: &S)` of the
/// calling module, generic over the store traits; the macro makes a module of tests on a fresh
/// [`chat_core::store::MemoryStore`] each, and one on fresh tables of the test binary's shared
/// dynalite each ([`dynalite::tables`]), reading `page_size` items per Query page when given (small
/// pages make every lookup of more than a few items read several, as DynamoDB's 1 MB pages do at
/// scale).
///
/// ```ignore
/// chat_testing::on_both_stores!(case_one, case_two);                     // mod memory, mod dynamodb
/// chat_testing::on_both_stores!(page_size = 7; case_one, case_two);
/// chat_testing::on_both_stores!(@ forced_memory, forced_dynamodb, page_size = 3; case_three);
/// ```
#[macro_export]
macro_rules! on_both_stores {
    (@ $memory:ident, $dynamodb:ident, page_size = $page:expr; $($case:ident),* $(,)?) => {
        $crate::on_both_stores!(@@ $memory, $dynamodb, Some($page); $($case),*);
    };
    (@ $memory:ident, $dynamodb:ident; $($case:ident),* $(,)?) => {
        $crate::on_both_stores!(@@ $memory, $dynamodb, None; $($case),*);
    };
    (page_size = $page:expr; $($case:ident),* $(,)?) => {
        $crate::on_both_stores!(@@ memory, dynamodb, Some($page); $($case),*);
    };
    (@@ $memory:ident, $dynamodb:ident, $page:expr; $($case:ident),*) => {
        mod $memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&chat_core::store::MemoryStore::new()).await;
                }
            )*
        }

        mod $dynamodb {
            // The page size may name a constant of the calling module.
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let store = $crate::dynalite::tables().await.store;
                    let page: Option<i32> = $page;
                    let store = match page {
                        Some(items) => store.with_page_size(items),
                        None => store,
                    };
                    super::$case(&store).await;
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        $crate::on_both_stores!(@@ memory, dynamodb, None; $($case),*);
    };
}
