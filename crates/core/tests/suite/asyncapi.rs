//! The protocol's contract, `docs/asyncapi.yaml`: generated from the types, and in agreement
//! with the parsers and the frames the handlers build.

use chat_core::asyncapi;
use chat_core::protocol::{Answer, ErrorCode, ErrorFrame, RoomId};
use chat_core::routes::default::{self, DefaultRequest, Echo};
use chat_core::routes::get_history::GetHistory;
use chat_core::routes::join_room::{Joined, RoomRequest};
use chat_core::routes::send_message::SendMessage;
use chat_testing::contract;
use proptest::prelude::*;
use serde_json::{Value, json};

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft7::new(schema).expect("a valid draft 07 schema")
}

fn received(action: &str) -> jsonschema::Validator {
    validator(&asyncapi::received_frame_schema(&contract::committed(), action).expect("a received frame"))
}

#[test]
fn the_committed_document_is_the_one_the_code_generates() {
    let committed = std::fs::read_to_string(contract::path()).expect("docs/asyncapi.yaml exists");

    assert!(committed == contract::generated_yaml(), "docs/asyncapi.yaml is stale: run make asyncapi and commit it");
}

#[test]
fn every_answer_the_handlers_build_matches_a_frame_the_document_says_the_chat_sends() {
    let sent = validator(&asyncapi::sent_frames_schema(&contract::committed()));
    let lobby = RoomId::parse("lobby").unwrap();
    let answers = [
        Answer::new(&Echo { message: default::PONG.into() }).unwrap(),
        Answer::new(&Joined { room_id: lobby.clone(), joined: true, seq: 3 }).unwrap(),
        Answer::new(&default::unknown_action()).unwrap(),
        Answer::new(&ErrorFrame::new(ErrorCode::NotInRoom, "join room lobby before sending to it")).unwrap(),
    ];

    for answer in answers {
        let frame: Value = serde_json::from_slice(answer.json()).unwrap();
        assert!(sent.is_valid(&frame), "{frame} is not in the document");
    }
    assert!(!sent.is_valid(&json!({"senderId": "a", "body": "b", "undocumented": 1})), "sent frames are closed");
}

#[test]
fn client_frames_are_published_with_the_schemas_of_the_types_that_parse_them() {
    let document = contract::committed();
    let published = [
        ("sendMessage", asyncapi::schema_of::<SendMessage>()),
        ("joinRoom", asyncapi::schema_of::<RoomRequest>()),
        ("leaveRoom", asyncapi::schema_of::<RoomRequest>()),
        ("getHistory", asyncapi::schema_of::<GetHistory>()),
        ("send", asyncapi::schema_of::<DefaultRequest>()),
    ];

    for (name, parser) in published {
        let mut payload = document["components"]["messages"][name]["payload"].clone();
        assert_eq!(payload["properties"]["action"]["const"], name, "{name} selects its route");
        payload["properties"].as_object_mut().unwrap().remove("action");
        // Any request may carry one: the adapter reads it, whatever the route.
        let id = payload["properties"].as_object_mut().unwrap().remove("clientRequestId");
        assert_eq!(id.unwrap()["pattern"], "^[A-Za-z0-9_-]{1,64}$", "{name}");
        let required = payload["required"].as_array_mut().unwrap();
        required.retain(|field| field != "action");
        if required.is_empty() {
            payload.as_object_mut().unwrap().remove("required");
        }
        assert_eq!(payload, serde_json::to_value(parser).unwrap(), "{name}: the parser's schema, plus its action");
    }
}

#[test]
fn frames_the_document_refuses_are_refused_by_the_parsers_too() {
    let send_message = received("sendMessage");
    let frames = [
        json!({"action": "sendMessage", "body": "hi"}),
        json!({"action": "sendMessage", "destinationUserId": "bob smith", "body": "hi"}),
        json!({"action": "sendMessage", "destinationUserId": "bob", "body": ""}),
        json!({"action": "sendMessage", "destinationUserId": "bob", "roomId": "lobby", "body": "hi"}),
        json!({"action": "sendMessage", "destinationUserId": 7, "body": "hi"}),
    ];

    for frame in frames {
        assert!(!send_message.is_valid(&frame), "the document accepts {frame}");
        assert!(SendMessage::parse(Some(&frame.to_string())).is_err(), "the parser accepts {frame}");
    }
    for frame in [json!({"action": "joinRoom"}), json!({"action": "joinRoom", "roomId": "a b"})] {
        assert!(!received("joinRoom").is_valid(&frame), "the document accepts {frame}");
        assert!(RoomRequest::parse(Some(&frame.to_string())).is_err(), "the parser accepts {frame}");
    }
    let echo_of_a_number = json!({"action": "send", "message": 7});
    assert!(!received("send").is_valid(&echo_of_a_number));
    assert!(DefaultRequest::parse(Some(&echo_of_a_number.to_string())).is_err());
}

proptest! {
    #[test]
    fn every_send_message_the_document_accepts_the_parser_accepts(
        to in "[A-Za-z0-9_.@-]{1,128}",
        room in any::<bool>(),
        body in ".{1,40}",
    ) {
        let field = if room { "roomId" } else { "destinationUserId" };
        let frame = json!({"action": "sendMessage", field: to, "body": body});

        prop_assert!(received("sendMessage").is_valid(&frame));
        prop_assert!(SendMessage::parse(Some(&frame.to_string())).is_ok());
        let join = json!({"action": "joinRoom", "roomId": to});
        prop_assert!(received("joinRoom").is_valid(&join));
        prop_assert!(RoomRequest::parse(Some(&join.to_string())).is_ok());
        let echo = json!({"action": "send", "message": body});
        prop_assert!(received("send").is_valid(&echo));
        prop_assert_eq!(DefaultRequest::parse(Some(&echo.to_string())), Ok(DefaultRequest::Echo(body)));
    }
}

fn messages(document: &mut Value) -> &mut serde_json::Map<String, Value> {
    document["components"]["messages"].as_object_mut().unwrap()
}

fn fields<'a>(document: &'a mut Value, message: &str) -> &'a mut serde_json::Map<String, Value> {
    document["components"]["messages"][message]["payload"]["properties"].as_object_mut().unwrap()
}

#[test]
fn frames_evolve_by_addition_from_the_baseline_document() {
    let breaches = asyncapi::evolution_breaches(&contract::baseline(), &contract::committed());

    assert!(breaches.is_empty(), "docs/asyncapi.yaml breaks the rule frames evolve by:\n{}", breaches.join("\n"));
}

#[test]
fn each_way_of_breaking_a_frame_is_caught() {
    let base = contract::baseline();
    type Breach = fn(&mut Value);
    let breaches: [(&str, Breach); 7] = [
        ("a message is gone", |document| {
            messages(document).shift_remove("readReceipt");
        }),
        ("a field is removed", |document| {
            fields(document, "ack").shift_remove("seq");
        }),
        ("a field is retyped", |document| {
            fields(document, "history")["hasMore"]["type"] = json!("string");
        }),
        ("a nested field is removed", |document| {
            let messages = &mut fields(document, "history")["messages"]["items"]["properties"];
            messages.as_object_mut().unwrap().shift_remove("sentAt");
        }),
        ("a new field comes before an existing one", |document| {
            let old = std::mem::take(fields(document, "delivery"));
            let added = fields(document, "delivery");
            added.insert("editedAt".into(), json!({"type": "integer"}));
            added.extend(old);
        }),
        ("a request gains a required field", |document| {
            let payload = &mut document["components"]["messages"]["markRead"]["payload"];
            payload["required"].as_array_mut().unwrap().push(json!("reason"));
        }),
        ("a frame that is no delivery carries senderId and body", |document| {
            fields(document, "read").insert("senderId".into(), json!({"type": "string"}));
            fields(document, "read").insert("body".into(), json!({"type": "string"}));
        }),
    ];

    for (what, breach) in breaches {
        let mut broken = base.clone();
        breach(&mut broken);
        assert!(!asyncapi::evolution_breaches(&base, &broken).is_empty(), "{what} passed the check");
    }
    let mut grown = base.clone();
    let ack = fields(&mut grown, "ack");
    ack.insert("editedAt".into(), json!({"type": "integer"}));
    assert_eq!(asyncapi::evolution_breaches(&base, &grown), Vec::<String>::new(), "a field added last is fine");
}
