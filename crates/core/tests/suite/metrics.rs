//! The metrics each handler emits, checked against the embedded metric format's published JSON
//! schema and the rules of its specification that a schema cannot express.

use chat_core::identity::Mode;
use chat_core::metrics::{Metric, Metrics, NAMESPACE};
use chat_core::protocol::ErrorCode;
use chat_core::routes;
use chat_core::routes::Route;
use chat_core::routes::Services;
use chat_core::store::MemoryStore;
use chat_testing::{RecordingMessenger, dynalite, events};
use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let text = include_str!("../fixtures/emf-schema.json");
    jsonschema::validator_for(&serde_json::from_str(text).unwrap()).expect("the EMF schema compiles")
}

/// Checks a document as CloudWatch Logs would before extracting metrics from it.
fn assert_valid_emf(document: &Value) {
    let errors: Vec<String> = schema().iter_errors(document).map(|error| error.to_string()).collect();
    assert!(errors.is_empty(), "{document} does not match the EMF schema: {errors:?}");
    // The specification's rules beyond the schema: every directive's targets are members of the
    // root, dimension targets are strings, metric targets are numbers, at most 100 metrics.
    for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for dimension in directive["Dimensions"].as_array().unwrap().iter().flat_map(|set| set.as_array().unwrap()) {
            let name = dimension.as_str().unwrap();
            assert!(document[name].is_string(), "dimension {name} has no string value in {document}");
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap();
            assert!(document[name].is_number(), "metric {name} has no numeric value in {document}");
        }
    }
}

async fn lines_of_a_chat() -> Vec<Metrics> {
    let store = MemoryStore::new();
    let messenger = RecordingMessenger::new();
    let mut all = Vec::new();
    all.push(
        routes::handle(
            Route::Connect,
            &events::connect("alice-1", Some("alice")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await
        .metrics,
    );
    all.push(
        routes::handle(
            Route::Connect,
            &events::connect("bob-1", Some("bob")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await
        .metrics,
    );
    all.push(
        routes::handle(
            Route::Connect,
            &events::connect("x", Some("not valid")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await
        .metrics,
    );
    let message = |body: &str| events::message(Route::SendMessage, "alice-1", body);
    all.push(
        routes::handle(
            Route::SendMessage,
            &message(r#"{"destinationUserId":"bob","body":"hi"}"#),
            &Services::new(&store).with_messenger(&messenger),
        )
        .await
        .metrics,
    );
    all.push(
        routes::handle(Route::SendMessage, &message("not json"), &Services::new(&store).with_messenger(&messenger))
            .await
            .metrics,
    );
    all.push(
        routes::handle(Route::Default, &events::load(Route::Default), &Services::none().with_messenger(&messenger))
            .await
            .metrics,
    );
    all.push(routes::handle(Route::Disconnect, &events::disconnect("bob-1"), &Services::new(&store)).await.metrics);
    all.push(
        routes::handle(
            Route::Disconnect,
            &events::load(Route::Disconnect),
            &Services::new(&dynalite::unreachable_store()),
        )
        .await
        .metrics,
    );
    all
}

#[tokio::test]
async fn every_handlers_metrics_line_is_valid_embedded_metric_format() {
    for metrics in lines_of_a_chat().await {
        let document = metrics.to_emf(1_795_255_205_000);

        assert_valid_emf(&document);
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(document["Route"], metrics.route.key());
    }
}

#[tokio::test]
async fn the_counts_say_what_each_invocation_did() {
    let lines = lines_of_a_chat().await;

    let [alice, _bob, refused, delivered, invalid, pong, _left, failed] = &lines[..] else { panic!("eight lines") };
    assert_eq!(alice.get(Metric::ConnectionsRefused), 0);
    assert_eq!(refused.get(Metric::ConnectionsRefused), 1);
    assert_eq!(refused.refused, Some(ErrorCode::InvalidField));
    assert_eq!(delivered.get(Metric::MessagesDelivered), 1);
    assert_eq!(invalid.get(Metric::FramesRefused), 1);
    assert_eq!(invalid.refused, Some(ErrorCode::InvalidJson));
    assert_eq!(pong.get(Metric::FramesRefused), 0);
    assert_eq!(failed.get(Metric::BackendFailures), 1);
}

#[tokio::test]
async fn each_line_publishes_the_counters_its_route_declares_and_no_other() {
    for metrics in lines_of_a_chat().await {
        let document = metrics.to_emf(1_795_255_205_000);
        let declared = metrics.route.counters();

        for metric in Metric::ALL {
            let published = document.get(metric.name()).is_some();
            assert_eq!(published, declared.contains(&metric), "{} on {}", metric.name(), metrics.route.key());
        }
        assert!(metrics.undeclared().is_empty(), "{} counted {:?}", metrics.route.key(), metrics.undeclared());
    }
    assert!(!Route::Sync.counters().contains(&Metric::MessagesDelivered), "sync delivers no messages");
    assert!(!Route::Connect.counters().contains(&Metric::PostsFailed), "$connect posts nothing");
}

#[test]
fn a_refusal_is_counted_under_its_error_code_too() {
    let mut metrics = Metrics::new(Route::SendMessage);
    metrics.refused = Some(ErrorCode::BodyTooLarge);

    let document = metrics.to_emf(1_795_255_205_000);

    assert_valid_emf(&document);
    assert_eq!(document["ErrorCode"], "bodyTooLarge");
    assert_eq!(document["FramesRefused"], 1);
    let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert!(directives.iter().any(|directive| directive["Dimensions"] == serde_json::json!([["Route", "ErrorCode"]])));
}

#[test]
fn the_template_alarms_watch_metrics_the_handlers_emit_without_dimensions() {
    // Alarms in template.yaml watch the chat-wide metric: the empty dimension set.
    let document = Metrics::new(Route::SendMessage).to_emf(0);
    assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1], serde_json::json!([]));
}

#[test]
fn the_schema_check_rejects_a_document_that_breaks_the_format() {
    let mut document = Metrics::new(Route::Connect).to_emf(0);
    document["_aws"]["Timestamp"] = "yesterday".into();

    let errors = schema().iter_errors(&document).count();

    assert!(errors > 0);
}
