//! The local gateway end to end, as one test binary (one link instead of nine): real WebSocket
//! clients, wscat, headless Chromium, the real SDK's @connections client and, behind
//! `--lambda-endpoint`, the real function binaries. The gateways started through
//! `support::settings()` check what the in-process handlers post, and every routed frame,
//! against `docs/asyncapi.yaml`.

mod support;

mod auth;
mod big_rooms;
mod browser;
mod browser_durable;
mod chat;
mod connections_api;
mod fidelity;
mod hardening;
mod lambda_endpoint;
mod parity;
mod resumption;
mod sam_websocket_api;
mod wscat;
