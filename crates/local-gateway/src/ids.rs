//! Ids shaped like API Gateway's: 16 characters of padded URL-safe base64, such as
//! `V-M0CclhjoECETA=`. AWS documents no format; ids seen on AWS hold `-` and `_`, never `+` or
//! `/`, and the developer guide URL-encodes the `=` when it builds an @connections URL
//! (`/%40connections/R0oXAdfD0kwCH6w%3D`, "Use @connections commands in your backend service").
//! Code that builds that URL meets the same characters here as in the cloud; the gateway
//! accepts the id with its `=` encoded or not.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;

/// Makes ids unique within the process and unpredictable across runs.
#[derive(Debug, Default)]
pub struct IdGenerator {
    seed: RandomState,
    counter: AtomicU64,
}

impl IdGenerator {
    /// A new id: 11 bytes (8 of a keyed hash of a counter, 3 of the counter) as padded URL-safe
    /// base64.
    pub fn next(&self) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 11];
        bytes[..8].copy_from_slice(&self.seed.hash_one(count).to_le_bytes());
        bytes[8..].copy_from_slice(&count.to_le_bytes()[..3]);
        URL_SAFE.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateways_and_do_not_repeat() {
        let ids = IdGenerator::default();
        let made: std::collections::HashSet<String> = (0..10_000).map(|_| ids.next()).collect();

        assert_eq!(made.len(), 10_000);
        for id in &made {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.ends_with('='), "{id}");
            assert!(id[..15].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{id}");
        }
        // The URL-safe alphabet's own characters do occur (about 1 id in 3 has one).
        assert!(made.iter().any(|id| id.contains('-')) && made.iter().any(|id| id.contains('_')));
    }
}
