//! The protocol as an AsyncAPI 3.0 document (`docs/asyncapi.yaml`), generated from the types of
//! [`crate::protocol`]: `make asyncapi` writes it, a test fails when the committed file differs,
//! and the local gateway checks frames against it in tests.
//!
//! The document describes the chat's API: the frames it *receives* from clients and the frames
//! it *sends* them. Payload schemas are JSON Schema draft 07, which AsyncAPI's default schema
//! format is a superset of, with every subschema inlined.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::limits::{MAX_CONNECTIONS_PER_USER, MAX_MESSAGE_BYTES};
use crate::protocol::fields::CLIENT_REQUEST_ID;
use crate::protocol::{ACTION_FIELD, ErrorCode, ErrorFrame, GatewayError, MAX_CLIENT_REQUEST_ID_CHARS};
use crate::routes::Route;

/// One message of the document: its name, who sends it, a summary and its payload's schema.
/// Each route's module lists its own ([`crate::routes`]); the error frames are listed here.
pub(crate) struct Message {
    name: &'static str,
    /// Whether the chat receives it (a client's frame) rather than sends it.
    received: bool,
    summary: &'static str,
    payload: Schema,
}

impl Message {
    /// A client's frame, parsed by `T`, selecting its route with `action`.
    pub(crate) fn request<T: JsonSchema>(action: &'static str, summary: &'static str) -> Self {
        Self { name: action, received: true, summary, payload: request::<T>(action) }
    }

    /// A request's answer, to its sender: carries the request's `clientRequestId` back.
    pub(crate) fn answer<T: JsonSchema>(name: &'static str, summary: &'static str) -> Self {
        Self { name, received: false, summary, payload: answer(schema_of::<T>()) }
    }

    /// Any other frame the chat sends.
    pub(crate) fn sent<T: JsonSchema>(name: &'static str, summary: &'static str) -> Self {
        Self { name, received: false, summary, payload: closed(schema_of::<T>()) }
    }
}

/// A type's schema as the document publishes it: draft 07, every subschema inlined.
pub fn schema_of<T: JsonSchema>() -> Schema {
    let settings = SchemaSettings::draft07().with(|settings| {
        settings.inline_subschemas = true;
        settings.meta_schema = None;
    });
    settings.into_generator().into_root_schema_for::<T>()
}

/// Frames the chat sends are closed: a field the document does not list is drift, and the
/// local gateway's check fails on it. (Clients should still ignore fields they do not know:
/// frames evolve by addition, and a new field is added here when it is added to the type.)
fn closed(mut schema: Schema) -> Schema {
    schema.insert("additionalProperties".into(), Value::Bool(false));
    schema
}

/// The schema of `clientRequestId`, which any request may carry and its answer carries back.
fn client_request_id() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_CLIENT_REQUEST_ID_CHARS}}}$"),
        "description": "The client's id for a request, carried back by its one answer (a reply, an acknowledgement or an error frame); for sendMessage, the idempotency key per sender and conversation for 24 hours.",
    })
}

/// An answer's schema: closed, and carrying the request's `clientRequestId` when it had one.
fn answer(schema: Schema) -> Schema {
    let mut schema = closed(schema);
    let properties = schema.ensure_object().entry("properties").or_insert_with(|| json!({}));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(CLIENT_REQUEST_ID.to_owned(), client_request_id());
    }
    schema
}

/// A client frame's schema: the schema of the type that parses it, with the `action` that
/// selects its route.
fn request<T: JsonSchema>(action: &str) -> Schema {
    let mut schema = schema_of::<T>();
    let properties = schema.ensure_object().entry("properties").or_insert_with(|| json!({}));
    if let Some(fields) = properties.as_object_mut() {
        // `action` first, the request's own fields in their order, `clientRequestId` last.
        let selects = json!({ "type": "string", "const": action, "description": "Selects the route." });
        let mut ordered = Map::from_iter([(ACTION_FIELD.to_owned(), selects)]);
        ordered.extend(std::mem::take(fields));
        ordered.insert(CLIENT_REQUEST_ID.to_owned(), client_request_id());
        *fields = ordered;
    }
    let required = schema.ensure_object().entry("required").or_insert_with(|| json!([]));
    if let Some(required) = required.as_array_mut() {
        required.insert(0, ACTION_FIELD.into());
    }
    schema
}

/// Every message: the routes' (those clients select by name first, then `$default`'s; each
/// route's requests before the frames it sends), then the error frames.
fn messages() -> Vec<Message> {
    let routes = || {
        Route::ALL.iter().filter(|route| route.is_action()).chain(Route::ALL.iter().filter(|route| !route.is_action()))
    };
    let all: Vec<Message> = routes().flat_map(|route| route.messages()).collect();
    let (mut received, sent): (Vec<Message>, Vec<Message>) = all.into_iter().partition(|message| message.received);
    received.extend(sent);
    received.extend([
        Message::answer::<ErrorFrame>("error", "Why a frame was refused, to its sender alone."),
        Message::sent::<GatewayError>(
            "gatewayError",
            "API Gateway's own frame when a function fails (Internal server error) or runs past 29 s (Endpoint request timed out), no route takes a frame (Forbidden) or the stage is throttling (Too Many Requests).",
        ),
    ]);
    received
}

/// The error codes, each with the HTTP status its function answers API Gateway with.
fn error_codes() -> String {
    ErrorCode::ALL
        .iter()
        .map(|code| {
            let name = serde_json::to_value(code).ok().and_then(|name| name.as_str().map(str::to_owned));
            format!("`{}` ({})", name.unwrap_or_default(), code.status())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole document, as JSON.
pub fn document() -> Value {
    let messages = messages();
    json!({
        "asyncapi": "3.0.0",
        "info": info(),
        "defaultContentType": "application/json",
        "servers": servers(),
        "channels": { "chat": channel(&messages) },
        "operations": operations(&messages),
        "components": { "messages": components(messages) },
    })
}

/// The title, version and a description that lists every error code.
fn info() -> Value {
    json!({
        "title": "Rust WebSocket chat",
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "A real-time chat on Amazon API Gateway WebSocket APIs. Clients send JSON frames whose `action` selects a \
             route; the chat answers the sender alone, and delivers messages to recipients' connections. Every refusal \
             is an `error` frame with a stable code; the codes, with the HTTP status each function answers API Gateway \
             with, are {}. A delivered frame is at most {MAX_MESSAGE_BYTES} bytes; a client frame at most 32 KB.",
            error_codes()
        ),
        "license": { "name": "MIT-0", "url": "https://github.com/aws/mit-0" },
    })
}

/// Where clients connect: the deployed API and the local gateway.
fn servers() -> Value {
    json!({
        "aws": {
            "host": "{apiId}.execute-api.{region}.amazonaws.com",
            "pathname": "/{stage}",
            "protocol": "wss",
            "description": "The deployed API (`sam deploy`); the stack's WebSocketUrl output.",
            "variables": {
                "apiId": { "description": "The WebSocket API's id." },
                "region": { "default": "us-east-1" },
                "stage": { "default": "dev" },
            },
        },
        "local": {
            "host": "127.0.0.1:3001",
            "pathname": "/dev",
            "protocol": "ws",
            "description": "The local gateway (`make dev`).",
        },
    })
}

/// The one channel: the WebSocket, its `$connect` refusals and its query and headers.
fn channel(messages: &[Message]) -> Value {
    let channel_messages: Map<String, Value> = messages
        .iter()
        .map(|message| (message.name.to_owned(), json!({ "$ref": format!("#/components/messages/{}", message.name) })))
        .collect();
    json!({
        "address": "/",
        "title": "The chat",
        "description": format!(
            "One WebSocket per connection. The upgrade (`$connect`) is refused with an HTTP status: 400 for a \
             missing or invalid `userId` (demo mode), 401 or 403 for a missing, invalid or expired token (token \
             mode), 403 when no identity was verified, 429 when the user already holds {MAX_CONNECTIONS_PER_USER} \
             connections or connections arrive too fast, 500 when the chat cannot record the connection."
        ),
        "messages": channel_messages,
        "bindings": {
            "ws": {
                "bindingVersion": "0.1.0",
                "method": "GET",
                "query": {
                    "type": "object",
                    "properties": {
                        "userId": {
                            "type": "string",
                            "pattern": crate::protocol::ID_PATTERN,
                            "description": "Demo mode: who the connection speaks for (anyone can claim any id).",
                        },
                        "token": {
                            "type": "string",
                            "description": "Token mode: a JWT from the issuer, when it is not in Sec-WebSocket-Protocol.",
                        },
                    },
                },
                "headers": {
                    "type": "object",
                    "properties": {
                        "Sec-WebSocket-Protocol": {
                            "type": "string",
                            "description": "Token mode from browsers: `chat, <token>`; the chat answers `chat`.",
                        },
                    },
                },
            },
        },
    })
}

/// One operation per message: the chat receives client frames and sends the rest.
fn operations(messages: &[Message]) -> Map<String, Value> {
    messages
        .iter()
        .map(|message| {
            let action = if message.received { "receive" } else { "send" };
            let name = format!("{action}{}{}", message.name[..1].to_uppercase(), &message.name[1..]);
            let operation = json!({
                "action": action,
                "channel": { "$ref": "#/channels/chat" },
                "summary": message.summary,
                "messages": [{ "$ref": format!("#/channels/chat/messages/{}", message.name) }],
            });
            (name, operation)
        })
        .collect()
}

/// Each message's definition, with its payload's schema.
fn components(messages: Vec<Message>) -> Map<String, Value> {
    messages
        .into_iter()
        .map(|message| {
            let definition = json!({
                "name": message.name,
                "summary": message.summary,
                "contentType": "application/json",
                "payload": message.payload,
            });
            (message.name.to_owned(), definition)
        })
        .collect()
}

/// The schema of every frame `document` says the chat sends (its `send` operations), as one
/// `anyOf`: what the local gateway checks every @connections post against in tests.
pub fn sent_frames_schema(document: &Value) -> Value {
    let operations = document["operations"].as_object().cloned().unwrap_or_default();
    let payloads: Vec<Value> = operations
        .values()
        .filter(|operation| operation["action"] == "send")
        .flat_map(|operation| operation["messages"].as_array().cloned().unwrap_or_default())
        .filter_map(|reference| {
            let name = reference["$ref"].as_str()?.rsplit('/').next()?.to_owned();
            Some(document["components"]["messages"][name]["payload"].clone())
        })
        .collect();
    json!({ "anyOf": payloads })
}

/// The schema of the frames `document` says the chat receives for `action`, if any.
pub fn received_frame_schema(document: &Value, action: &str) -> Option<Value> {
    let payload = &document["components"]["messages"][action]["payload"];
    (payload["properties"]["action"]["const"] == action).then(|| payload.clone())
}

/// The messages clients recognise as deliveries by their top-level `senderId` and `body`.
pub const DELIVERIES: [&str; 2] = ["delivery", "roomDelivery"];

/// How `current` breaks the rule frames evolve by, against `baseline` (an earlier document):
/// every message of the baseline is still there; no field is removed or retyped (its `type`,
/// `const` and `format`), in any object of a payload; the baseline's fields keep their order
/// and new ones come after them, before a trailing `clientRequestId`; a frame the chat sends
/// only gains required fields, and a frame it receives never does (older clients do not send
/// them); and no frame but a delivery carries both a top-level `senderId` and `body`. Each
/// breach is a sentence naming the message and the field; none, the rule holds.
pub fn evolution_breaches(baseline: &Value, current: &Value) -> Vec<String> {
    let mut breaches = Vec::new();
    let messages = |document: &Value| document["components"]["messages"].as_object().cloned().unwrap_or_default();
    let now = messages(current);
    for (name, before) in messages(baseline) {
        let Some(after) = now.get(&name) else {
            breaches.push(format!("{name}: the message is gone"));
            continue;
        };
        let received = before["payload"]["properties"][ACTION_FIELD]["const"].is_string();
        compare_objects(&name, &before["payload"], &after["payload"], received, &mut breaches);
    }
    for (name, message) in &now {
        let fields = &message["payload"]["properties"];
        let received = fields[ACTION_FIELD]["const"].is_string();
        if !received
            && !DELIVERIES.contains(&name.as_str())
            && fields.get("senderId").is_some()
            && fields.get("body").is_some()
        {
            breaches.push(format!("{name}: carries senderId and body, which mark a delivery"));
        }
    }
    breaches
}

/// [`evolution_breaches`] for one object schema and the objects inside it, at `path`.
fn compare_objects(path: &str, before: &Value, after: &Value, received: bool, breaches: &mut Vec<String>) {
    let names = |schema: &Value| -> Vec<String> {
        schema["properties"].as_object().map(|fields| fields.keys().cloned().collect()).unwrap_or_default()
    };
    let (old, new) = (names(before), names(after));
    for field in &old {
        let (was, is) = (&before["properties"][field], &after["properties"][field]);
        if is.is_null() {
            breaches.push(format!("{path}.{field}: removed"));
            continue;
        }
        for facet in ["type", "const", "format"] {
            if was[facet] != is[facet] {
                breaches.push(format!("{path}.{field}: its {facet} changed from {} to {}", was[facet], is[facet]));
            }
        }
        for inner in [(was, is), (&was["items"], &is["items"])] {
            if inner.0.get("properties").is_some() {
                compare_objects(&format!("{path}.{field}"), inner.0, inner.1, received, breaches);
            }
        }
    }
    let trailing = |fields: &[String]| -> usize {
        fields.len() - usize::from(fields.last().is_some_and(|last| last == CLIENT_REQUEST_ID))
    };
    let (kept, grown) = (&old[..trailing(&old)], &new[..trailing(&new)]);
    if !grown.starts_with(kept) {
        breaches.push(format!("{path}: the fields {kept:?} must lead, in that order, before any new one: {grown:?}"));
    }
    let required = |schema: &Value| -> Vec<String> {
        schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(|name| name.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (was, is) = (required(before), required(after));
    if received {
        for field in is.iter().filter(|field| !was.contains(field)) {
            breaches.push(format!("{path}.{field}: newly required in a frame clients send"));
        }
    } else {
        for field in was.iter().filter(|field| !is.contains(field)) {
            breaches.push(format!("{path}.{field}: no longer required in a frame the chat sends"));
        }
    }
}
