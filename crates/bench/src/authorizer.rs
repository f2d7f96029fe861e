//! The authorizer's warm cost: CPU per verified token, RS256 and ES256, with the issuer's keys
//! cached as they are in a warm Lambda instance.

use std::sync::Arc;

use chat_core::auth::{AuthConfig, HttpJwks, Verifier};
use chat_testing::Issuer;
use chat_testing::issuer::{CLIENT_ID, id_claims};

use crate::report::{Figure, Target};

/// Verifies one token of each algorithm `iterations` times, on this thread.
pub async fn warm(iterations: usize, figures: &mut Vec<Figure>) {
    let issuer = Issuer::start().await;
    let config = AuthConfig {
        issuer: issuer.issuer().to_owned(),
        audiences: vec![CLIENT_ID.to_owned()],
        jwks_url: issuer.jwks_url(),
        user_claim: "sub".to_owned(),
    };
    let source = HttpJwks::new(&config.jwks_url).expect("the issuer's JWKS URL");
    let verifier = Verifier::new(config, Arc::new(source));
    for (kid, name) in [("rsa-1", "RS256"), ("ec-1", "ES256")] {
        let token = issuer.signer(kid).sign(&id_claims(issuer.issuer(), "alice"));
        verifier.verify(&token).await.expect("the warm-up verifies, and caches the keys");
        let cpu = cpu_time::ThreadTime::now();
        for _ in 0..iterations {
            assert!(verifier.verify(&token).await.is_ok());
        }
        let micros = cpu.elapsed().as_nanos() as f64 / 1e3 / iterations as f64;
        figures.push(Figure {
            name: format!("{name} token verified, warm (keys cached): CPU per token"),
            value: format!("{micros:.1} µs ({iterations} verifications)"),
            target: Some(Target::at_most(micros, 100.0, "≤ 100 µs")),
        });
    }
    assert_eq!(issuer.fetches(), 1, "a warm verifier fetches the JWKS once");
}
