//! Token mode: the authorizer's verification, table-driven, against real keys served as a JWKS
//! over HTTP by a local issuer; its answers to API Gateway; and `$connect` reading its verdict.

use std::sync::Arc;

use chat_core::auth::{self, AuthConfig, HttpJwks, TokenError, Verifier, VerifyError};
use chat_core::identity::Mode;
use chat_core::protocol::UserId;
use chat_core::routes::Services;
use chat_core::routes::{self, Route};
use chat_core::store::{ConnectionStore, MemoryStore};
use chat_testing::issuer::{CLIENT_ID, Signer, id_claims, now};
use chat_testing::{Issuer, events};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

fn config(issuer: &Issuer) -> AuthConfig {
    AuthConfig {
        issuer: issuer.issuer().to_owned(),
        audiences: vec!["another-app".to_owned(), CLIENT_ID.to_owned()],
        jwks_url: issuer.jwks_url(),
        user_claim: "sub".to_owned(),
    }
}

fn verifier_with(config: AuthConfig) -> Verifier {
    let source = HttpJwks::new(&config.jwks_url).expect("a valid JWKS URL");
    Verifier::new(config, Arc::new(source))
}

/// The verifier's verdict on `token`; a verification that cannot decide fails the test.
async fn check(verifier: &Verifier, token: &str) -> Result<UserId, TokenError> {
    match verifier.verify(token).await {
        Ok(user) => Ok(user),
        Err(VerifyError::Refused(error)) => Err(error),
        Err(VerifyError::Undecided(error)) => panic!("no decision: {error}"),
    }
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().expect("an object").remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

/// A token whose header says `alg` and `kid: rsa-1`, with a made-up signature part.
fn token_with_alg(alg: &str, claims: &Value) -> String {
    use base64::Engine;
    let encode = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", encode(&json!({"alg": alg, "typ": "JWT", "kid": "rsa-1"})), encode(claims))
}

#[tokio::test]
async fn tokens_are_accepted_or_refused_for_the_right_reason() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    let rsa = issuer.signer("rsa-1");
    let ec = issuer.signer("ec-1");
    let claims = id_claims(issuer.issuer(), "alice");
    let access = with(claims.clone(), json!({"token_use": "access", "aud": null, "client_id": CLIENT_ID}));
    let impostor = Signer::rsa("rsa-1"); // Another key under the issuer's key id.
    let mut hmac_header = Header::new(jsonwebtoken::Algorithm::HS256);
    hmac_header.kid = Some("rsa-1".into());
    let public_key_bytes = serde_json::to_vec(&rsa.jwk).expect("the JWK as bytes");
    let hs256_with_public_key =
        jsonwebtoken::encode(&hmac_header, &claims, &EncodingKey::from_secret(&public_key_bytes)).expect("sign");
    let ec_header_rsa_kid = {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("rsa-1".into());
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("an EC key");
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref())).expect("sign")
    };

    let cases: Vec<(&str, String, Result<&str, TokenError>)> = vec![
        ("a valid RS256 ID token", rsa.sign(&claims), Ok("alice")),
        ("a valid ES256 ID token", ec.sign(&claims), Ok("alice")),
        ("an audience given as a list", rsa.sign(&with(claims.clone(), json!({"aud": ["x", CLIENT_ID]}))), Ok("alice")),
        (
            "a token without token_use (a non-Cognito issuer)",
            rsa.sign(&with(claims.clone(), json!({"token_use": null}))),
            Ok("alice"),
        ),
        ("a Cognito access token with the client in client_id", rsa.sign(&access), Ok("alice")),
        (
            "expired 30 s ago: inside the 60 s leeway",
            rsa.sign(&with(claims.clone(), json!({"exp": now() - 30}))),
            Ok("alice"),
        ),
        (
            "expired 2 minutes ago",
            rsa.sign(&with(claims.clone(), json!({"exp": now() - 120}))),
            Err(TokenError::Expired),
        ),
        (
            "not valid for 2 more minutes",
            rsa.sign(&with(claims.clone(), json!({"nbf": now() + 120}))),
            Err(TokenError::NotYetValid),
        ),
        ("without exp", rsa.sign(&with(claims.clone(), json!({"exp": null}))), Err(TokenError::Malformed)),
        (
            "from another issuer",
            rsa.sign(&with(claims.clone(), json!({"iss": "https://evil.example"}))),
            Err(TokenError::WrongIssuer),
        ),
        ("without iss", rsa.sign(&with(claims.clone(), json!({"iss": null}))), Err(TokenError::WrongIssuer)),
        (
            "for another audience",
            rsa.sign(&with(claims.clone(), json!({"aud": "someone-else"}))),
            Err(TokenError::WrongAudience),
        ),
        (
            "an access token whose client is only in aud",
            rsa.sign(&with(access.clone(), json!({"client_id": null, "aud": CLIENT_ID}))),
            Err(TokenError::WrongAudience),
        ),
        (
            "an ID token whose client is only in client_id",
            rsa.sign(&with(claims.clone(), json!({"aud": null, "client_id": CLIENT_ID}))),
            Err(TokenError::WrongAudience),
        ),
        (
            "token_use refresh",
            rsa.sign(&with(claims.clone(), json!({"token_use": "refresh"}))),
            Err(TokenError::WrongTokenUse),
        ),
        ("signed by another key under the issuer's kid", impostor.sign(&claims), Err(TokenError::BadSignature)),
        ("alg none", token_with_alg("none", &claims), Err(TokenError::Algorithm)),
        ("HS256 signed with the public key's bytes", hs256_with_public_key, Err(TokenError::Algorithm)),
        ("ES256 naming the RSA key", ec_header_rsa_kid, Err(TokenError::KeyMismatch)),
        ("a kid the issuer does not have", Signer::rsa("made-up").sign(&claims), Err(TokenError::UnknownKey)),
        (
            "a user id that fails the user-id rules",
            rsa.sign(&with(claims.clone(), json!({"sub": "not valid!"}))),
            Err(TokenError::InvalidUserId { claim: "sub".into() }),
        ),
        (
            "no user-id claim",
            rsa.sign(&with(claims.clone(), json!({"sub": null}))),
            Err(TokenError::NoUserClaim("sub".into())),
        ),
        ("not a JWT at all", "hello".to_owned(), Err(TokenError::Malformed)),
    ];
    let mut wrong = Vec::new();
    for (name, token, expected) in cases {
        let got = check(&verifier, &token).await;
        let expected = expected.map(|user| UserId::parse(user).expect("a valid user id"));
        if got != expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_user_id_comes_from_the_configured_claim() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(AuthConfig { user_claim: "cognito:username".into(), ..config(&issuer) });
    let claims = with(
        id_claims(issuer.issuer(), "alice"),
        json!({"sub": "3f2a1c9e-0000-4000-8000-000000000001", "cognito:username": "alice@example.com"}),
    );
    let user = check(&verifier, &issuer.signer("rsa-1").sign(&claims)).await;
    assert_eq!(user, Ok(UserId::parse("alice@example.com").expect("valid")));

    let verifier = verifier_with(AuthConfig { user_claim: "email".into(), ..config(&issuer) });
    let refused = check(&verifier, &issuer.signer("rsa-1").sign(&claims)).await;
    assert_eq!(refused, Err(TokenError::NoUserClaim("email".into())));
}

#[tokio::test]
async fn a_key_added_by_rotation_is_accepted_after_one_more_fetch() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    assert!(check(&verifier, &issuer.token("alice")).await.is_ok());
    assert_eq!(issuer.fetches(), 1, "the keys are fetched once and cached");
    assert!(check(&verifier, &issuer.token("alice")).await.is_ok());
    assert_eq!(issuer.fetches(), 1, "a known key id needs no fetch");

    tokio::time::pause(); // The refetch interval is on tokio's clock.
    tokio::time::advance(chat_core::limits::JWKS_REFETCH_INTERVAL).await;
    tokio::time::resume();
    let next = Signer::rsa("rsa-2");
    issuer.rotate(next.clone());
    let user = check(&verifier, &next.sign(&id_claims(issuer.issuer(), "bob"))).await;
    assert_eq!(user, Ok(UserId::parse("bob").expect("valid")));
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_made_up_key_ids_fetches_the_keys_at_most_once_per_interval() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    let claims = id_claims(issuer.issuer(), "mallory");
    let forger = Signer::rsa("forger");
    for n in 0..100 {
        let token = forger.sign_as(&format!("made-up-{n}"), &claims);
        assert_eq!(check(&verifier, &token).await, Err(TokenError::UnknownKey));
    }
    assert_eq!(issuer.fetches(), 1, "a hundred unknown key ids cost one fetch");
}

#[tokio::test]
async fn an_issuer_that_cannot_be_reached_fails_the_authorizer_and_cached_keys_keep_working() {
    let issuer = Issuer::start().await;
    issuer.set_available(false);
    let cold = verifier_with(config(&issuer));
    let undecided = auth::authorize(&events::authorizer(Some(&issuer.token("alice"))), &cold).await;
    let error = undecided.expect_err("no keys, no decision: the function fails and API Gateway answers 500");
    assert!(error.to_string().contains("keys cannot be fetched"), "{error}");

    issuer.set_available(true);
    let warm = verifier_with(config(&issuer));
    assert!(check(&warm, &issuer.token("alice")).await.is_ok());
    issuer.set_available(false);
    tokio::time::pause();
    tokio::time::advance(chat_core::limits::JWKS_REFETCH_INTERVAL * 3).await;
    tokio::time::resume();
    assert_eq!(check(&warm, &issuer.token("bob")).await, Ok(UserId::parse("bob").expect("valid")));
    let answer = auth::authorize(&events::authorizer(Some(&issuer.token("bob"))), &warm).await.expect("decided");
    assert_eq!(answer.policy_document.statement[0].effect, aws_lambda_events::iam::IamPolicyEffect::Allow);
}

#[tokio::test]
async fn the_authorizer_allows_the_verified_user_for_the_connects_method_arn_only() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    let event = events::authorizer(Some(&issuer.token("alice")));
    let answer = serde_json::to_value(auth::authorize(&event, &verifier).await.expect("decided")).expect("JSON");
    assert_eq!(answer["principalId"], "alice");
    assert_eq!(answer["context"], json!({"userId": "alice"}));
    assert_eq!(
        answer["policyDocument"],
        json!({"Version": "2012-10-17", "Statement": [{
            "Action": ["execute-api:Invoke"],
            "Effect": "Allow",
            "Resource": ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/$connect"],
        }]})
    );
}

#[tokio::test]
async fn a_missing_or_bad_token_is_denied_with_the_method_arn() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    for event in [events::authorizer(None), events::authorizer(Some("not-a-token"))] {
        let answer = serde_json::to_value(auth::authorize(&event, &verifier).await.expect("decided")).expect("JSON");
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(answer["policyDocument"]["Statement"][0]["Resource"][0], event.method_arn.clone().expect("an ARN"));
        assert_eq!(answer["context"], json!({}), "a refusal carries no identity");
    }
}

#[tokio::test]
async fn a_browser_token_comes_in_the_subprotocols_beside_chat() {
    let issuer = Issuer::start().await;
    let verifier = verifier_with(config(&issuer));
    let mut event = events::authorizer(None);
    let token = issuer.token("alice");
    event.headers.get_or_insert_default().insert("Sec-WebSocket-Protocol".into(), format!("chat, {token}"));
    let answer = serde_json::to_value(auth::authorize(&event, &verifier).await.expect("decided")).expect("JSON");
    assert_eq!(answer["principalId"], "alice");

    assert_eq!(auth::token_of(None, Some("chat")), None, "chat alone is no token");
    assert_eq!(auth::token_of(Some("from-query"), Some("chat, from-header")), Some("from-query"));
}

#[test]
fn the_sample_authorizer_event_has_every_field_of_awss_documented_example() {
    let documented: Value =
        serde_json::from_str(include_str!("../fixtures/aws-websocket-authorizer-event.json")).expect("JSON");
    let sample = events::authorizer_json();
    let keys = |value: &Value| value.as_object().expect("an object").keys().cloned().collect::<Vec<_>>();
    for key in keys(&documented) {
        assert!(sample.get(&key).is_some(), "events/authorizer.json lacks {key}");
    }
    for key in keys(&documented["requestContext"]) {
        assert!(sample["requestContext"].get(&key).is_some(), "events/authorizer.json lacks requestContext.{key}");
    }
    assert!(sample["methodArn"].as_str().expect("a string").ends_with("/dev/$connect"));
}

#[tokio::test]
async fn connect_in_token_mode_takes_the_verified_user_and_ignores_the_query() {
    let store = MemoryStore::new();
    let mut event = events::connect("conn-1", Some("bob"));
    event.request_context.authorizer.fields =
        [("principalId".to_owned(), json!("alice")), ("userId".to_owned(), json!("alice"))].into_iter().collect();
    assert_eq!(
        routes::handle(Route::Connect, &event, &Services::new(&store).with_mode(Mode::Token)).await.status(),
        200
    );
    let alice = UserId::parse("alice").expect("valid");
    assert_eq!(store.connections_of(&alice, events::now_ms()).await.expect("memory"), vec!["conn-1".to_owned()]);
    let bob = UserId::parse("bob").expect("valid");
    assert!(store.connections_of(&bob, events::now_ms()).await.expect("memory").is_empty(), "?userId=bob is ignored");
}

#[tokio::test]
async fn connect_in_token_mode_without_a_verified_user_is_refused_and_stores_nothing() {
    let store = MemoryStore::new();
    let handled = routes::handle(
        Route::Connect,
        &events::connect("conn-1", Some("bob")),
        &Services::new(&store).with_mode(Mode::Token),
    )
    .await;
    assert_eq!(handled.status(), 403);
    let bob = UserId::parse("bob").expect("valid");
    assert!(store.connections_of(&bob, events::now_ms()).await.expect("memory").is_empty());
}

#[tokio::test]
async fn connect_answers_with_the_chat_subprotocol_when_the_client_offered_it() {
    let store = MemoryStore::new();
    let mut event = events::connect("conn-1", Some("alice"));
    let offered = "chat, eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    event.headers.insert("sec-websocket-protocol", offered.parse().expect("a header value"));
    let handled = routes::handle(Route::Connect, &event, &Services::new(&store).with_mode(Mode::Demo)).await;
    assert_eq!(handled.response.headers.get("sec-websocket-protocol").map(|v| v.to_str().expect("text")), Some("chat"));

    let plain = routes::handle(
        Route::Connect,
        &events::connect("conn-2", Some("alice")),
        &Services::new(&store).with_mode(Mode::Demo),
    )
    .await;
    assert!(plain.response.headers.get("sec-websocket-protocol").is_none(), "nothing offered, nothing answered");
}
