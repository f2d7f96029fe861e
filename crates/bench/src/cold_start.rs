//! Cold starts: each function's release binary started against a minimal Lambda Runtime API on
//! loopback, timed from exec to its first `GET …/invocation/next` (init) and to the `…/response`
//! for its sample event, with its peak resident memory.

use std::path::Path;
use std::time::Instant;

use chat_core::config;
use chat_core::routes::Route;
use chat_core::store::ConnectionStore;
use chat_local_gateway::Running;
use chat_testing::dynalite::{MEMBERSHIPS_TABLE, MESSAGES_TABLE, TABLE, USERS_TABLE};
use chat_testing::issuer::CLIENT_ID;
use chat_testing::{Dynalite, Issuer, deployment, events};

use crate::report::{Figure, Target, mb, ms, percentile, resident};
use crate::runtime_api::RuntimeApi;

/// A function's environment variables.
type Env = [(String, String)];

/// One start: (init µs, first response µs, peak RSS bytes).
async fn start_once(binary: &Path, env: &[(String, String)], api: &mut RuntimeApi, event: &[u8]) -> (f64, f64, u64) {
    api.queue([event.to_vec()]);
    let started = Instant::now();
    let mut child = api.spawn(binary, env);
    let first_next = api.next_request(binary).await;
    let answered = api.answer(binary).await;
    api.next_request(binary).await;
    let peak = child.id().and_then(|pid| resident(pid, "VmHWM:")).unwrap_or(0);
    let _ = child.kill().await;
    let micros = |at: Instant| at.duration_since(started).as_secs_f64() * 1e6;
    (micros(first_next), micros(answered), peak)
}

/// The functions' environment as Lambda sets it, with DynamoDB and @connections pointed at
/// `dynalite` and `management_url` (stage included).
pub fn function_env(dynalite: &Dynalite, management_url: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_LEVEL", "error"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        (config::TABLE_NAME, TABLE),
        (config::MEMBERSHIPS_TABLE_NAME, MEMBERSHIPS_TABLE),
        (config::MESSAGES_TABLE_NAME, MESSAGES_TABLE),
        (config::USERS_TABLE_NAME, USERS_TABLE),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynalite.endpoint()),
        (config::MANAGEMENT_ENDPOINT, management_url),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Cold starts of every function in `dir` (release binaries named after their routes).
pub async fn measure(dir: &Path, starts: usize, gateway: &Running, figures: &mut Vec<Figure>) {
    let mut api = RuntimeApi::start().await;
    // The functions' DynamoDB: dynalite with the sample sender (user 1) and a live user 2.
    let dynalite = Dynalite::start();
    let store = dynalite.create_table(TABLE).await;
    let recipient = crate::gateway_load::connect_client(&gateway.url(), "2").await;
    let user = chat_core::protocol::UserId::parse("2").expect("a valid user id");
    let recipient_id = gateway
        .store()
        .expect("in-process")
        .connections_of(&user, chat_local_gateway::events::now_ms())
        .await
        .expect("memory")[0]
        .clone();
    store.save(&events::connection(&recipient_id, "2")).await.expect("seed");

    let env = function_env(&dynalite, &gateway.management_url());

    // The authorizer verifies a token from a local issuer, whose JWKS it fetches on its first event.
    let issuer = Issuer::start().await;
    let mut authorizer_env = env.clone();
    authorizer_env.push((config::AUTH_ISSUER.to_owned(), issuer.issuer().to_owned()));
    authorizer_env.push((config::AUTH_AUDIENCE.to_owned(), CLIENT_ID.to_owned()));
    let token = issuer.token("1");
    let authorizer_event = serde_json::to_value(events::authorizer(Some(&token))).expect("the authorizer's event");

    let authorizer = deployment::authorizer_binary();
    let mut functions: Vec<(String, &Env, serde_json::Value)> =
        Route::ALL.iter().map(|route| (deployment::binary_of(*route), env.as_slice(), events::json(*route))).collect();
    functions.push((authorizer.clone(), authorizer_env.as_slice(), authorizer_event));
    for (name, env, event) in functions {
        let name = name.as_str();
        let binary = dir.join(name);
        let event = serde_json::to_vec(&event).expect("sample event");
        let (mut inits, mut firsts, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..starts {
            // Each run starts from the same records: the sample sender is connected.
            store.save(&events::connection("L0SM9cOFvHcCIhw=", "1")).await.expect("seed");
            let (init, first, peak) = start_once(&binary, env, &mut api, &event).await;
            inits.push(init);
            firsts.push(first);
            peaks.push(peak);
        }
        if name == authorizer {
            let answer = api.last_answer();
            assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow", "the authorizer allows: {answer}");
        }
        for samples in [&mut inits, &mut firsts] {
            samples.sort_by(f64::total_cmp);
        }
        peaks.sort();
        let median_init = percentile(&inits, 50.0);
        let first = if name == authorizer { " (the JWKS fetched from a local issuer)" } else { "" };
        figures.push(Figure {
            name: format!("{name} init (exec → first /next), median / p90"),
            value: format!("{} / {}", ms(median_init), ms(percentile(&inits, 90.0))),
            target: Some(Target::at_most(median_init, 10_000.0, "median ≤ 10 ms")),
        });
        figures.push(Figure {
            name: format!("{name} exec → first /response{first}, median / p90"),
            value: format!("{} / {}", ms(percentile(&firsts, 50.0)), ms(percentile(&firsts, 90.0))),
            target: None,
        });
        figures.push(Figure {
            name: format!("{name} peak resident memory"),
            value: mb(*peaks.last().unwrap_or(&0)),
            target: None,
        });
    }
    drop(recipient);
}
