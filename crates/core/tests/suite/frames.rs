//! Property tests of frame parsing: whatever a client sends, the sender gets a valid parse or
//! one clear error frame, nothing panics and nobody else hears of it.

use chat_core::identity::Mode;
use chat_core::protocol::ErrorCode;
use chat_core::routes;
use chat_core::routes::Route;
use chat_core::routes::Services;
use chat_core::routes::default::DefaultRequest;
use chat_core::routes::send_message::SendMessage;
use chat_core::store::MemoryStore;
use chat_testing::{RecordingMessenger, events};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |n| n.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A `sendMessage` frame whose fields hold anything at all.
fn send_message_like() -> impl Strategy<Value = Value> {
    (json_value(), json_value(), any::<bool>(), any::<bool>()).prop_map(|(destination, body, with_d, with_b)| {
        let mut frame = json!({"action": "sendMessage"});
        if with_d {
            frame["destinationUserId"] = destination;
        }
        if with_b {
            frame["body"] = body;
        }
        frame
    })
}

/// Runs `sendMessage` with `body` from alice, who may write to bob; checks the outcome.
fn check_through_the_handler(body: &str) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (store, messenger) = (MemoryStore::new(), RecordingMessenger::new());
        routes::handle(
            Route::Connect,
            &events::connect("alice-1", Some("alice")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await;
        routes::handle(
            Route::Connect,
            &events::connect("bob-1", Some("bob")),
            &Services::new(&store).with_mode(Mode::Demo),
        )
        .await;

        let handled = routes::handle(
            Route::SendMessage,
            &events::message(Route::SendMessage, "alice-1", body),
            &Services::new(&store).with_messenger(&messenger),
        )
        .await;

        let to_alice = messenger.frames_to("alice-1");
        match SendMessage::parse(Some(body)) {
            Ok(_) => prop_assert!(handled.status() == 200 || handled.status() == 404, "{}", handled.status()),
            Err(error) => {
                prop_assert_eq!(handled.status(), 400);
                prop_assert_eq!(to_alice.len(), 1);
                prop_assert_eq!(&to_alice[0]["error"], &serde_json::to_value(error.code()).unwrap());
                prop_assert!(to_alice[0]["message"].as_str().is_some_and(|text| !text.is_empty()));
                prop_assert!(messenger.frames_to("bob-1").is_empty());
            }
        }
        prop_assert_eq!(store.len(), 2);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_parse_or_get_a_clear_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = DefaultRequest::parse(Some(&text));
        check_through_the_handler(&text)?;
    }

    #[test]
    fn arbitrary_json_values_parse_or_get_a_clear_error(value in json_value()) {
        check_through_the_handler(&value.to_string())?;
    }

    #[test]
    fn send_message_frames_with_any_field_values_parse_or_name_the_field(frame in send_message_like()) {
        let body = frame.to_string();
        if let Err(error) = SendMessage::parse(Some(&body)) {
            prop_assert_ne!(error.code(), ErrorCode::InvalidJson, "an object is valid JSON: {}", body);
        }
        check_through_the_handler(&body)?;
    }
}

#[test]
fn deeply_nested_frames_are_invalid_json_not_a_stack_overflow() {
    for depth in [200, 10_000, 1_000_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            assert_eq!(SendMessage::parse(Some(&body)).unwrap_err().code(), ErrorCode::InvalidJson);
            check_through_the_handler(&body).unwrap();
        }
    }
}

#[test]
fn huge_numbers_are_invalid_fields_or_invalid_json_never_a_panic() {
    for number in ["1e999999", "-1e999999", "123456789012345678901234567890", "0.0000000000000000000000001e-400"] {
        let body = format!(r#"{{"action":"sendMessage","destinationUserId":{number},"body":"hi"}}"#);
        let code = SendMessage::parse(Some(&body)).unwrap_err().code();
        assert!(matches!(code, ErrorCode::InvalidField | ErrorCode::InvalidJson), "{number}: {code:?}");
        check_through_the_handler(&body).unwrap();
    }
}

#[test]
fn invalid_utf16_escapes_are_invalid_json() {
    for escape in [r"\ud800", r"\udc00", r"\ud800\u0041", r"\uZZZZ", r"\u12"] {
        let body = format!(r#"{{"action":"sendMessage","destinationUserId":"bob","body":"{escape}"}}"#);
        assert_eq!(SendMessage::parse(Some(&body)).unwrap_err().code(), ErrorCode::InvalidJson, "{escape}");
        check_through_the_handler(&body).unwrap();
    }
}

#[test]
fn a_valid_surrogate_pair_is_delivered_as_the_character_it_encodes() {
    let body = r#"{"action":"sendMessage","destinationUserId":"bob","body":"\ud83c\udfd3"}"#;
    assert_eq!(SendMessage::parse(Some(body)).unwrap().body, "🏓");
}
