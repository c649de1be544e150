//! End-to-end tests: the real `tandem` binary, driven by our own minimal y-websocket
//! client (harness.rs) and by the stock npm clients (`yjs` + `y-websocket`, tests/js).

// Test code: a panic is a failed test with a message, which is what we want here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod billing;
mod billing_support;
mod cluster;
mod cluster_inspector;
mod cluster_support;
mod control;
mod control_invitations;
mod control_isolation;
mod control_keys;
mod control_rooms;
mod control_sessions;
mod control_tokens;
mod durability;
mod harness;
mod history;
mod hostile_presence;
mod interop;
mod lifecycle;
mod limits;
mod metrics;
mod openapi_check;
mod sdk;
mod sdk_admin;
mod sdk_support;
mod sdk_tls;
mod store_copy;
mod usage;
mod webhooks;
