//! What the handlers write to their logs: connection ids, never user ids, which may be e-mail
//! addresses.

use chat_core::identity::Mode;
use chat_core::routes;
use chat_core::routes::Route;
use chat_core::routes::Services;
use chat_core::store::MemoryStore;
use chat_testing::logs::Captured;
use chat_testing::{RecordingMessenger, events};
use serde_json::json;

/// A verifier of `issuer`'s tokens, taking the user id from `sub`.
fn verifier_for(issuer: &chat_testing::Issuer) -> chat_core::auth::Verifier {
    let config = chat_core::auth::AuthConfig {
        issuer: issuer.issuer().to_owned(),
        audiences: vec![chat_testing::issuer::CLIENT_ID.to_owned()],
        jwks_url: issuer.jwks_url(),
        user_claim: "sub".to_owned(),
    };
    let source = chat_core::auth::HttpJwks::new(&config.jwks_url).unwrap();
    chat_core::auth::Verifier::new(config, std::sync::Arc::new(source))
}

#[tokio::test(flavor = "current_thread")]
async fn a_whole_chat_logs_connection_ids_and_no_user_id_at_info_level() {
    let (captured, _guard) = Captured::install(tracing::Level::INFO);
    let (store, messenger) = (MemoryStore::new(), RecordingMessenger::new());
    let (alice, bob) = ("alice@example.com", "bob.smith@example.org");

    routes::handle(
        Route::Connect,
        &events::connect("alice-1", Some(alice)),
        &Services::new(&store).with_mode(Mode::Demo),
    )
    .await;
    routes::handle(Route::Connect, &events::connect("bob-1", Some(bob)), &Services::new(&store).with_mode(Mode::Demo))
        .await;
    for body in [
        json!({"action": "sendMessage", "destinationUserId": bob, "body": "hi"}),
        json!({"destinationUserId": "nobody@example.com", "body": "x"}),
    ] {
        routes::handle(
            Route::SendMessage,
            &events::message(Route::SendMessage, "alice-1", &body.to_string()),
            &Services::new(&store).with_messenger(&messenger),
        )
        .await;
    }
    messenger.mark_gone("bob-1");
    let late = json!({"action": "sendMessage", "destinationUserId": bob, "body": "gone?"});
    routes::handle(
        Route::SendMessage,
        &events::message_after(Route::SendMessage, "alice-1", &late.to_string(), 60),
        &Services::new(&store).with_messenger(&messenger),
    )
    .await;
    routes::handle(Route::Disconnect, &events::disconnect("alice-1"), &Services::new(&store)).await;

    let logs = captured.text();
    assert!(logs.contains("alice-1") && logs.contains("bob-1"), "connection ids are logged: {logs}");
    for user in [alice, bob, "nobody@example.com"] {
        assert!(!logs.contains(user), "{user} appears in the logs:\n{logs}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_authorizer_logs_neither_tokens_nor_the_users_they_name_at_any_level() {
    let (captured, _guard) = Captured::install(tracing::Level::TRACE);
    let issuer = chat_testing::Issuer::start().await;
    let verifier = verifier_for(&issuer);
    let alice = "alice@example.com";
    let good = issuer.token(alice);
    let mut expired_claims = chat_testing::issuer::id_claims(issuer.issuer(), alice);
    expired_claims["exp"] = json!(chat_testing::issuer::now() - 600);
    let expired = issuer.signer("rsa-1").sign(&expired_claims);
    for token in [&good, &expired, &"garbage-token-value".to_owned()] {
        chat_core::auth::authorize(&events::authorizer(Some(token)), &verifier).await.expect("decided");
    }
    let mut in_header = events::authorizer(None);
    in_header.headers.get_or_insert_default().insert("Sec-WebSocket-Protocol".into(), format!("chat, {good}"));
    chat_core::auth::authorize(&in_header, &verifier).await.expect("decided");

    let logs = captured.text();
    assert!(logs.contains("L0SM9cOFvHcCIhw="), "connection ids are logged: {logs}");
    assert!(logs.contains("expired"), "refusals say why: {logs}");
    for secret in [good.as_str(), expired.as_str(), "garbage-token-value", alice] {
        assert!(!logs.contains(secret), "{secret} appears in the logs:\n{logs}");
    }
    // No part of a token either: its header, claims or signature.
    for part in good.split('.') {
        assert!(!logs.contains(part), "a part of a token appears in the logs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_tokens_own_text_never_reaches_the_authorizers_log() {
    use base64::Engine;
    let (captured, _guard) = Captured::install(tracing::Level::TRACE);
    let issuer = chat_testing::Issuer::start().await;
    let verifier = verifier_for(&issuer);
    let encode = |value: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = chat_testing::issuer::id_claims(issuer.issuer(), "alice");
    // An algorithm named with the attacker's text, and a user id holding a character it chose.
    let forged_alg =
        format!("{}.{}.", encode(json!({"alg": "INJECTED-ALG-TEXT", "kid": "rsa-1"})), encode(claims.clone()));
    let mut bad_user = claims;
    bad_user["sub"] = json!("mallory\u{2603}");
    let bad_user = issuer.signer("rsa-1").sign(&bad_user);

    for token in [&forged_alg, &bad_user] {
        chat_core::auth::authorize(&events::authorizer(Some(token)), &verifier).await.expect("decided");
    }

    let logs = captured.text();
    assert!(logs.contains("RS256 or ES256") && logs.contains("not a valid user id"), "the kinds are logged: {logs}");
    for attacker_text in ["INJECTED-ALG-TEXT", "\u{2603}", "\\u2603", "mallory"] {
        assert!(!logs.contains(attacker_text), "{attacker_text} appears in the logs:\n{logs}");
    }
}
