//! siaga: the backend of a city's 112 emergency call centre (PSAP).
//!
//! The crate is split as `../shared/DESIGN.md` describes:
//! - [`engine`]: all signalling state, sans-IO and deterministic (no tokio, sockets, clock
//!   reads or global RNG). Driven by `handle_*` calls and drained by `poll_*`.
//! - [`transport`]: the tokio UDP/TCP shell that feeds the engine bytes and sends what it
//!   outputs.
//! - [`media`]: the tokio RTP relay that executes the engine's media commands.
//! - [`runtime`]: owns the one engine task and wires transports, timers and shutdown.
//! - [`store`]: the call records (SQLite via sqlx) and the writer task that feeds them.
//! - [`config`]: the TOML configuration and its environment overrides.
//! - [`api`]: the HTTP API (axum) that talks to the engine task by requests with replies.

pub mod api;
pub mod config;
pub mod engine;
pub mod media;
pub mod runtime;
pub mod store;
pub mod transport;
