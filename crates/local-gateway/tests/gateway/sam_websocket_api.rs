//! Any SAM WebSocket app, not only this one: a minimal template written with
//! `AWS::Serverless::WebSocketApi` (routes and `Auth`) served through the Lambda Invoke API.

use crate::support::{Client, Reply, eventually, gateway_with_lambda, refused_status};
use serde_json::{Value, json};

fn fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sam-websocket-api.yaml")
}

fn behaviour() -> crate::support::Behaviour {
    std::sync::Arc::new(|function: &str, _: &Value| match function {
        "GateFunction" => Reply::Json(json!({
            "principalId": "ticket-holder",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*:*:local/dev/*"}]},
        })),
        _ => Reply::Status(200),
    })
}

#[tokio::test]
async fn its_routes_and_authorizer_come_from_the_serverless_websocket_api() {
    let (gateway, lambda) = gateway_with_lambda(behaviour(), |settings| settings.template = fixture()).await;
    assert!(gateway.token_mode(), "its Auth block puts an authorizer on $connect");
    let mut client = Client::try_connect(&format!("{}?ticket=42", gateway.url())).await.expect("connects");
    client.send_text(r#"{"kind":"shout","text":"hey"}"#).await;
    client.send_text(r#"{"kind":"whisper"}"#).await;
    eventually("both frames were routed", || {
        !lambda.events_of("ShoutFunction").is_empty() && !lambda.events_of("EchoFunction").is_empty()
    })
    .await;
    let gate = &lambda.events_of("GateFunction")[0];
    assert_eq!(gate["queryStringParameters"], json!({"ticket": "42"}));
    let hello = &lambda.events_of("HelloFunction")[0];
    assert_eq!(hello["requestContext"]["authorizer"], json!({"principalId": "ticket-holder"}));
    assert_eq!(lambda.events_of("ShoutFunction")[0]["requestContext"]["routeKey"], "shout");
    assert_eq!(lambda.events_of("EchoFunction")[0]["requestContext"]["routeKey"], "$default");
}

#[tokio::test]
async fn a_missing_identity_source_is_401_without_invoking_the_authorizer() {
    let (gateway, lambda) = gateway_with_lambda(behaviour(), |settings| settings.template = fixture()).await;
    for url in [gateway.url(), format!("{}?ticket=", gateway.url())] {
        let error = Client::try_connect(&url).await.err().expect("refused");
        assert_eq!(refused_status(error), 401);
    }
    assert!(lambda.events_of("GateFunction").is_empty());
    assert!(lambda.events_of("HelloFunction").is_empty());
}
