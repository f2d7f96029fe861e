//! Waiting until something holds, with a deadline: the tests' one polling helper.

use std::future::Future;
use std::time::Duration;

/// Checks `check` every 20 ms until it holds; fails saying `what` once `within` has passed.
/// For a state with no signal to wait on (a store's contents, a page's text).
pub async fn until<F: Future<Output = bool>>(what: &str, within: Duration, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
