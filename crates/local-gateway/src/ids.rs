//! Ids shaped like API Gateway's: 16 characters of padded base64, such as `L0SM9cOFvHcCIhw=`,
//! so that code which forgets to URL-encode them breaks locally, not only in the cloud.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Makes ids unique within the process and unpredictable across runs.
#[derive(Debug, Default)]
pub struct IdGenerator {
    seed: RandomState,
    counter: AtomicU64,
}

impl IdGenerator {
    /// A new id: 11 bytes (8 of a keyed hash of a counter, 3 of the counter) as padded base64.
    pub fn next(&self) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 11];
        bytes[..8].copy_from_slice(&self.seed.hash_one(count).to_le_bytes());
        bytes[8..].copy_from_slice(&count.to_le_bytes()[..3]);
        STANDARD.encode(bytes)
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
        for id in made.iter().take(50) {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.ends_with('='), "{id}");
        }
    }
}
