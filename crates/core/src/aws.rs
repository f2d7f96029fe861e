//! The AWS SDK as every function uses it: one dated behaviour version and explicit time limits,
//! so an SDK upgrade cannot silently change retries or timeouts.

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

use crate::limits::{BACKEND_ATTEMPT_TIMEOUT, BACKEND_CALL_TIMEOUT, BACKEND_CONNECT_TIMEOUT};

/// The SDK defaults (retries, timeouts, stalled-stream protection) this code was tested with.
/// Move it forward on purpose, reading the SDK's changelog, never by accident.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// Time limits of every DynamoDB and @connections call: see [`crate::limits`].
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(BACKEND_CONNECT_TIMEOUT)
        .operation_attempt_timeout(BACKEND_ATTEMPT_TIMEOUT)
        .operation_timeout(BACKEND_CALL_TIMEOUT)
        .build()
}

/// Loads the SDK configuration (region, credentials, endpoint overrides) from the environment,
/// with [`behavior_version`] and [`timeouts`].
///
/// Call it once per process, at start-up, and share the result between clients.
pub async fn load() -> aws_config::SdkConfig {
    aws_config::defaults(behavior_version()).timeout_config(timeouts()).load().await
}

/// SDK configuration for local endpoints (dynalite, the local gateway, `cargo lambda watch`): a
/// fixed region (`us-east-1`) and dummy credentials, with [`behavior_version`] and [`timeouts`].
/// Clients built from it set their own `endpoint_url`.
pub fn local() -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(behavior_version())
        .timeout_config(timeouts())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("local", "local", None, None, "local")))
        .build()
}

/// The DNS suffix of the AWS partition a region belongs to, e.g. `amazonaws.com.cn` for
/// `cn-north-1`. Endpoints built by hand (the @connections API has no regional default) need it.
pub fn dns_suffix(region: &str) -> &'static str {
    // The partitions of the SDK's endpoint rules (partitions.json), matched by region prefix.
    const PARTITIONS: [(&str, &str); 5] = [
        ("cn-", "amazonaws.com.cn"),
        ("us-isob-", "sc2s.sgov.gov"),
        ("us-isof-", "csp.hci.ic.gov"),
        ("us-iso-", "c2s.ic.gov"),
        ("eu-isoe-", "cloud.adc-e.uk"),
    ];
    PARTITIONS.iter().find(|(prefix, _)| region.starts_with(prefix)).map_or("amazonaws.com", |(_, suffix)| suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_has_its_own_dns_suffix() {
        assert_eq!(dns_suffix("eu-west-1"), "amazonaws.com");
        assert_eq!(dns_suffix("us-gov-west-1"), "amazonaws.com");
        assert_eq!(dns_suffix("cn-northwest-1"), "amazonaws.com.cn");
        assert_eq!(dns_suffix("us-iso-east-1"), "c2s.ic.gov");
        assert_eq!(dns_suffix("us-isob-east-1"), "sc2s.sgov.gov");
        assert_eq!(dns_suffix("eu-isoe-west-1"), "cloud.adc-e.uk");
    }

    #[test]
    fn every_backend_call_has_a_time_limit() {
        let timeouts = timeouts();
        assert_eq!(timeouts.operation_timeout(), Some(BACKEND_CALL_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(BACKEND_ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.connect_timeout(), Some(BACKEND_CONNECT_TIMEOUT));
    }
}
