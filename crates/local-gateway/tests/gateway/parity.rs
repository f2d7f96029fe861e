//! Local–cloud parity: inputs on which public reports show emulators answering differently from
//! API Gateway, each given AWS's answer. Every test names what AWS's behaviour rests on.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{METHOD_ARN, allow};
use crate::support::{
    Client, LambdaApi, Reply, all_ok, connection_of, gateway, gateway_with_lambda, management, settings, token_mode,
};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_local_gateway::serve;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` on a new TCP connection and reads until the server closes it (or, for an
/// upgrade, until the end of its 101's head); the response as text.
async fn http(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            response.extend_from_slice(&chunk[..n]);
            if n == 0 || response.starts_with(b"HTTP/1.1 101") && response.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    });
    read.await.expect("the server answers within 5 s");
    String::from_utf8_lossy(&response).into_owned()
}

/// A WebSocket upgrade written by hand, so that header names are spelled as a test chooses.
fn upgrade_request(path: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn posts_to_a_client_that_only_reads_keep_its_connection_open_and_set_last_active_at() {
    // Posts count as traffic (observed on AWS: hotsock.io's keep-alive documentation;
    // andyrichardson/subscriptionless#3).
    // Posts a fifth of the idle timeout apart, six of them: the posts alone span more than the
    // idle timeout, and a post may come up to four fifths of it late on a busy machine.
    let idle = Duration::from_secs(2);
    let every = idle / 5;
    let mut settings = settings();
    settings.idle_timeout = idle;
    let gateway = serve(settings).await.unwrap();
    let mut reader = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;
    let management = management(&gateway);
    let opened = management.get_connection().connection_id(&id).send().await.unwrap();

    for post in 0..6 {
        tokio::time::sleep(every).await;
        management.post_to_connection().connection_id(&id).data(Blob::new(format!("{post}"))).send().await.unwrap();
        assert_eq!(reader.receive().await, json!(post), "open after {:?} of posts alone", every * (post + 1));
    }

    let after = management.get_connection().connection_id(&id).send().await.unwrap();
    let moved =
        after.last_active_at().unwrap().to_millis().unwrap() - opened.last_active_at().unwrap().to_millis().unwrap();
    let spanned = (every * 6).as_millis() as i64;
    assert!(moved >= spanned, "lastActiveAt follows the posts: it moved {moved} ms in at least {spanned} ms of posts");
    // And without posts, the same connection does go idle.
    assert_eq!(reader.closed_with().await, 1001);
}

#[tokio::test]
async fn ping_frames_alone_do_not_keep_a_connection_open() {
    // Unverified on AWS (see socket.rs): kept strict.
    let idle = Duration::from_millis(600);
    let mut settings = settings();
    settings.idle_timeout = idle;
    let gateway = serve(settings).await.unwrap();
    let mut client = Client::connect(&gateway, "1").await;

    // Pings a quarter of the idle timeout apart, for five idle timeouts: the connection must
    // close while they go on (were pings traffic, it would close only once they stopped).
    let ping = tokio_tungstenite::tungstenite::Message::Ping(vec![1].into());
    let closed = client.closed_while_sending(ping, idle / 4, idle * 5).await;

    assert_eq!(closed, Some(1001), "closed as idle while pinging");
}

/// A gateway in token mode whose authorizer allows every connection, as alice.
async fn behind_an_allowing_authorizer(issuer: &chat_testing::Issuer) -> (chat_local_gateway::Running, LambdaApi) {
    let behaviour = Arc::new(|function: &str, _: &Value| match function {
        "AuthorizerFunction" => Reply::Json(allow("alice", METHOD_ARN)),
        _ => Reply::Status(200),
    });
    gateway_with_lambda(behaviour, |settings| settings.parameter_overrides = token_mode(issuer)).await
}

#[tokio::test]
async fn header_names_reach_connect_and_the_authorizer_as_the_client_spelled_them() {
    // serverless-offline#753 (an AWS event with `x-api-key`), sst#3327 ("AWS does not lowercase
    // header names").
    let issuer = chat_testing::Issuer::start().await;
    let (gateway, lambda) = behind_an_allowing_authorizer(&issuer).await;

    let response = http(
        gateway.address(),
        &upgrade_request("/dev?token=t", "x-api-key: k1\r\nTest: a\r\nTEST: b\r\norigin: http://o\r\n"),
    )
    .await;

    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    for function in ["AuthorizerFunction", "ConnectFunction"] {
        let event = &lambda.events_of(function)[0];
        let names: Vec<&String> = event["headers"].as_object().unwrap().keys().collect();
        for sent in ["host", "sec-websocket-key", "sec-websocket-version", "x-api-key", "origin"] {
            assert!(names.iter().any(|name| *name == sent), "{function} lacks `{sent}` as sent: {names:?}");
        }
        assert_eq!(event["headers"]["x-api-key"], "k1", "{function}");
        assert_eq!(event["multiValueHeaders"]["x-api-key"], json!(["k1"]), "{function}");
        assert_eq!(event["multiValueHeaders"]["Test"], json!(["a"]), "{function}");
        assert_eq!(event["multiValueHeaders"]["TEST"], json!(["b"]), "{function}");
        for recased in ["X-Api-Key", "Origin", "Host", "Sec-WebSocket-Key"] {
            assert!(event["headers"].get(recased).is_none(), "{function} re-cased {recased}");
        }
        // The headers API Gateway adds keep API Gateway's spelling.
        assert!(event["headers"].get("X-Forwarded-For").is_some(), "{function}");
    }
}

#[tokio::test]
async fn only_the_authorizers_event_carries_connection_content_length_and_upgrade() {
    // localstack/localstack#7191 (events captured on AWS); the developer guide's example input.
    let issuer = chat_testing::Issuer::start().await;
    let (gateway, lambda) = behind_an_allowing_authorizer(&issuer).await;

    let response = http(gateway.address(), &upgrade_request("/dev?token=t", "")).await;

    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    let added = [("Connection", "upgrade"), ("content-length", "0"), ("Upgrade", "websocket")];
    let authorizer = &lambda.events_of("AuthorizerFunction")[0];
    let connect = &lambda.events_of("ConnectFunction")[0];
    for (name, value) in added {
        assert_eq!(authorizer["headers"][name], value, "the authorizer's {name}");
        assert_eq!(authorizer["multiValueHeaders"][name], json!([value]), "the authorizer's {name}");
        for map in ["headers", "multiValueHeaders"] {
            let names: Vec<&String> = connect[map].as_object().unwrap().keys().collect();
            assert!(!names.iter().any(|n| n.eq_ignore_ascii_case(name)), "$connect's {map} hold {name}: {names:?}");
        }
    }
}

#[tokio::test]
async fn only_the_subprotocol_of_connects_answer_reaches_the_101() {
    // aws/chalice PR#1768: API Gateway passes `Sec-WebSocket-Protocol` from `$connect`'s answer
    // to the client, and drops its other headers.
    let answer = json!({
        "statusCode": 200,
        "headers": {"Sec-WebSocket-Protocol": "chat", "Set-Cookie": "session=1", "X-Custom": "x"},
        "multiValueHeaders": {"Access-Control-Allow-Origin": ["*"]},
    });
    let behaviour = Arc::new(move |function: &str, _: &Value| match function {
        "ConnectFunction" => Reply::Json(answer.clone()),
        _ => Reply::Status(200),
    });
    let (gateway, _lambda) = gateway_with_lambda(behaviour, |_| {}).await;

    let response = http(gateway.address(), &upgrade_request("/dev?userId=1", "sec-websocket-protocol: chat\r\n")).await;

    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    let head = response.to_ascii_lowercase();
    assert!(head.contains("sec-websocket-protocol: chat\r\n"), "{response}");
    for dropped in ["set-cookie", "x-custom", "access-control-allow-origin"] {
        assert!(!head.contains(dropped), "{dropped} reached the 101: {response}");
    }
}

#[tokio::test]
async fn an_at_connections_url_reaches_the_connection_with_its_id_and_at_sign_encoded_or_not() {
    // AWS's developer guide URL-encodes both in its own example ("Use @connections commands in
    // your backend service": `/prod/%40connections/R0oXAdfD0kwCH6w%3D`).
    let gateway = gateway().await;
    let mut client = Client::connect(&gateway, "1").await;
    let id = connection_of(&gateway, "1").await;
    let encoded = id.replace('=', "%3D");

    for (n, path) in
        [format!("@connections/{id}"), format!("@connections/{encoded}"), format!("%40connections/{encoded}")]
            .iter()
            .enumerate()
    {
        let post = format!(
            "POST /dev/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=local\r\n\
             Content-Length: 1\r\nConnection: close\r\n\r\n{n}"
        );
        let response = http(gateway.address(), &post).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
        assert_eq!(client.receive().await, json!(n), "{path}");
    }
}

#[tokio::test]
async fn a_request_without_the_stage_is_forbidden_whether_or_not_the_page_is_served() {
    // aws-sdk-php#1955: `/@connections/{id}` without the stage answers 403 {"message":"Forbidden"}.
    let mut with_page = settings();
    with_page.web_root = Some(chat_testing::workspace_root().join("web"));
    for gateway in [serve(settings()).await.unwrap(), serve(with_page).await.unwrap()] {
        for request in [
            "POST /@connections/V-M0CclhjoECETA%3D HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            "DELETE /@connections/V-M0CclhjoECETA%3D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        ] {
            let response = http(gateway.address(), request).await;
            assert!(response.starts_with("HTTP/1.1 403"), "page {:?}: {request}\n{response}", gateway.page_url());
            assert!(response.ends_with(r#"{"message":"Forbidden"}"#), "{response}");
        }
    }
}

#[tokio::test]
async fn connection_ids_use_the_url_safe_alphabet() {
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |_| {}).await;
    for _ in 0..30 {
        Client::connect(&gateway, "1").await.close(Some(1000)).await;
    }

    let ids: Vec<String> = lambda
        .events_of("ConnectFunction")
        .iter()
        .map(|event| event["requestContext"]["connectionId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 30);
    for id in &ids {
        assert_eq!(id.len(), 16, "{id}");
        assert!(!id.contains('+') && !id.contains('/'), "{id}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_a_proxy_response_gets_internal_server_error() {
    // The proxy output format (AWS Lambda developer guide, "Handle Lambda errors with an API
    // Gateway API"); a `null` answer logs "Malformed Lambda proxy response" on WebSocket APIs
    // (michalkvasnicak/aws-lambda-graphql#48).
    let malformed = [
        json!({"statusCode": 200, "ConnectionId": "x", "Data": "y"}),
        json!({"body": "no status"}),
        json!("a string"),
        Value::Null,
        json!({"statusCode": 200, "body": {"not": "a string"}}),
    ];
    let answers = std::sync::Mutex::new(malformed.to_vec());
    let behaviour = Arc::new(move |function: &str, _: &Value| match function {
        "DefaultFunction" => Reply::Json(answers.lock().unwrap().remove(0)),
        _ => Reply::Status(200),
    });
    let (gateway, _lambda) = gateway_with_lambda(behaviour, |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;

    for answer in &malformed {
        client.send_text("hello").await;
        assert_eq!(client.receive().await["message"], "Internal server error", "{answer}");
    }
}

#[tokio::test]
async fn a_connect_integration_that_fails_or_answers_no_proxy_response_refuses_the_upgrade_with_502() {
    for reply in [Reply::FunctionError, Reply::Json(json!({"statusCode": 200, "Data": "y"}))] {
        let reply = std::sync::Mutex::new(Some(reply));
        let behaviour = Arc::new(move |function: &str, _: &Value| match function {
            "ConnectFunction" => reply.lock().unwrap().take().unwrap_or(Reply::Status(200)),
            _ => Reply::Status(200),
        });
        let (gateway, _lambda) = gateway_with_lambda(behaviour, |_| {}).await;

        let error = Client::try_connect(&format!("{}?userId=1", gateway.url())).await.err().expect("refused");

        assert_eq!(crate::support::refused_status(error), 502);
    }
}

/// The template with `$default` made two-way: its route gets `RouteResponseSelectionExpression`
/// and a `$default` route response (AWS's developer guide, "Set up a route response").
fn two_way_default(name: &str, response_key: &str, expression: bool) -> std::path::PathBuf {
    crate::support::template_changed(name, |template| {
        let resources = template["Resources"].as_mapping_mut().unwrap();
        if expression {
            resources["DefaultRoute"]["Properties"]["RouteResponseSelectionExpression"] = "$default".into();
        }
        let response: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
            "Type: AWS::ApiGatewayV2::RouteResponse\nProperties:\n  ApiId: !Ref ChatApi\n  RouteId: !Ref DefaultRoute\n  RouteResponseKey: '{response_key}'\n"
        ))
        .unwrap();
        resources.insert("DefaultRouteResponse".into(), response);
    })
}

#[tokio::test]
async fn a_two_way_route_sends_the_functions_body_back_whatever_its_status() {
    // serverless-offline#1301 ("API Gateway will return whatever is in `body`"); the status is
    // not looked at (yai333/React-Chat-App-using-AWS-API-Gateway-Websocket-and-Serverless-Framework#2).
    let template = two_way_default("two-way", "$default", true);
    let behaviour = Arc::new(|function: &str, event: &Value| match (function, event["body"].as_str()) {
        ("DefaultFunction", Some("ok")) => Reply::Json(json!({"statusCode": 200, "body": "{\"answer\":1}"})),
        ("DefaultFunction", _) => Reply::Json(json!({"statusCode": 500, "body": "{\"answer\":2}"})),
        _ => Reply::Status(200),
    });
    let (gateway, _lambda) = gateway_with_lambda(behaviour, |settings| settings.template = template.clone()).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text("ok").await;
    assert_eq!(client.receive().await, json!({"answer": 1}));
    client.send_text("failed").await;
    assert_eq!(client.receive().await, json!({"answer": 2}));
    let _ = std::fs::remove_file(template);
}

#[tokio::test]
async fn a_route_response_the_gateway_cannot_serve_is_refused_at_start_up() {
    for (name, key, expression, says) in [
        ("other-key", "$other", true, "only the $default route response"),
        ("no-expression", "$default", false, "no RouteResponseSelectionExpression"),
    ] {
        let mut settings = settings();
        settings.template = two_way_default(name, key, expression);

        let error = serve(settings).await.err().expect("refused").to_string();

        assert!(error.contains(says) && error.contains("DefaultRoute"), "{name}: {error}");
    }
}

#[tokio::test]
async fn a_slow_invocation_does_not_hold_up_the_same_clients_later_frames() {
    // API Gateway documents no order between a connection's invocations; AWS's pattern for
    // ordered processing adds an SQS FIFO queue (aws-samples/serverless-patterns,
    // apigw-websocket-api-sqs-lambda).
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let behaviour = Arc::new(move |function: &str, event: &Value| match (function, event["body"].as_str()) {
        ("DefaultFunction", Some("slow")) => Reply::WaitFor(gate.clone()),
        ("DefaultFunction", Some("fast")) => Reply::Release(gate.clone()),
        _ => Reply::Status(200),
    });
    let (gateway, lambda) = gateway_with_lambda(behaviour, |_| {}).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text("slow").await;
    client.send_text("fast").await;

    // "slow" returns only once "fast" has been invoked: in strict order, neither would finish.
    crate::support::eventually("both frames were invoked", || lambda.events_of("DefaultFunction").len() == 2).await;
    gateway.settled().await;
}

#[tokio::test]
async fn strict_order_invokes_a_clients_next_frame_only_after_the_previous_one_answered() {
    let behaviour = Arc::new(|function: &str, event: &Value| match (function, event["body"].as_str()) {
        ("DefaultFunction", Some("slow")) => Reply::Sleep(Duration::from_millis(700)),
        _ => Reply::Status(200),
    });
    let (gateway, lambda) = gateway_with_lambda(behaviour, |settings| settings.strict_order = true).await;
    let mut client = Client::connect(&gateway, "1").await;

    client.send_text("slow").await;
    client.send_text("next").await;
    crate::support::eventually("both frames were invoked", || lambda.events_of("DefaultFunction").len() == 2).await;

    let invoked = lambda.events_of("DefaultFunction");
    let at = |n: usize| invoked[n]["requestContext"]["requestTimeEpoch"].as_i64().unwrap();
    assert_eq!(invoked[0]["body"], "slow");
    assert!(at(1) - at(0) >= 700, "the next frame was invoked {} ms after the slow one", at(1) - at(0));
}

/// The template with the stage's route throttling set to `burst` requests at `rate` a second.
fn throttled_template(name: &str, burst: u32, rate: u32) -> std::path::PathBuf {
    crate::support::template_changed(name, |template| {
        let settings = &mut template["Resources"]["ChatStage"]["Properties"]["DefaultRouteSettings"];
        settings["ThrottlingBurstLimit"] = burst.into();
        settings["ThrottlingRateLimit"] = rate.into();
    })
}

#[tokio::test]
async fn messages_past_the_stages_route_throttling_get_too_many_requests_and_no_invocation() {
    // "Clients may receive 429 Too Many Requests error responses" (AWS developer guide,
    // "Protect your WebSocket API"); the frame's shape is unverified (see throttle.rs).
    let template = throttled_template("throttled", 3, 1);
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |settings| settings.template = template.clone()).await;
    let mut client = Client::connect(&gateway, "1").await;

    for _ in 0..5 {
        client.send_text("hello").await;
    }

    for _ in 0..2 {
        let frame = client.receive().await;
        assert_eq!(frame["message"], "Too Many Requests", "{frame}");
        assert!(frame["connectionId"].is_string() && frame["requestId"].is_string(), "{frame}");
    }
    gateway.settled().await;
    assert_eq!(lambda.events_of("DefaultFunction").len(), 3, "the burst went through, no more");
    let _ = std::fs::remove_file(template);
}

#[tokio::test]
async fn client_frames_and_connections_calls_share_the_account_level_throttle() {
    // "10,000 requests per second ... across HTTP APIs, REST APIs, WebSocket APIs, and WebSocket
    // callback APIs" (Amazon API Gateway quotas). Here a burst of 5 at 1 a second: the test takes
    // well under a second, so at most one more request is allowed by the refill.
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |settings| {
        settings.account_throttle = chat_local_gateway::AccountThrottle { per_second: 1, burst: 5 };
    })
    .await;
    let mut client = Client::connect(&gateway, "1").await;
    let connection_id =
        lambda.events_of("ConnectFunction")[0]["requestContext"]["connectionId"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();

    for _ in 0..3 {
        client.send_text("hello").await;
    }
    crate::support::eventually("three frames of the burst are invoked", || {
        lambda.events_of("DefaultFunction").len() == 3
    })
    .await;
    let management = management(&gateway);
    let mut throttled = 0;
    for _ in 0..4 {
        match management.post_to_connection().connection_id(&connection_id).data(Blob::new("{}")).send().await {
            Ok(_) => assert_eq!(client.receive().await, json!({})),
            Err(error) => {
                let error = error.into_service_error();
                assert!(error.is_limit_exceeded_exception(), "{error:?}");
                throttled += 1;
            }
        }
    }
    client.send_text("hello").await;
    let refused = client.receive().await;

    let refill = started.elapsed().as_secs() as usize + 1;
    assert!((2 - refill.min(2)..=2).contains(&throttled), "the calls took what the frames left: {throttled} throttled");
    assert_eq!(refused["message"], "Too Many Requests", "a frame past the throttle: {refused}");
    gateway.settled().await;
    assert!(lambda.events_of("DefaultFunction").len() < 3 + refill, "the throttled frame was not invoked");
}

#[tokio::test]
async fn connections_past_connects_throttling_are_refused_with_429_and_no_throttling_lifts_it() {
    // A stage whose limits were left at 0 refused every connection with 429
    // (hashicorp/terraform-provider-aws#14742).
    let template = throttled_template("throttled-connect", 0, 0);
    let (gateway, lambda) = gateway_with_lambda(all_ok(), |settings| settings.template = template.clone()).await;
    let (lifted, _) = gateway_with_lambda(all_ok(), |settings| {
        settings.template = template.clone();
        settings.throttling = false;
    })
    .await;

    let refused = Client::try_connect(&format!("{}?userId=1", gateway.url())).await.err().expect("refused");

    assert_eq!(crate::support::refused_status(refused), 429);
    assert!(lambda.events_of("ConnectFunction").is_empty());
    Client::connect(&lifted, "1").await.close(Some(1000)).await;
    let _ = std::fs::remove_file(template);
}
