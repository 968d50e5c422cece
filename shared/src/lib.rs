//! # hookline (shared)
//!
//! Everything platform-neutral: the neutral [`model`], the webhook [`pipeline`] (verify → decode
//! → claim → bot → send → complete → ack) behind one [`pipeline::Adapter`] trait, the single
//! [`error::HookError`] that decides every status code, the [`store::StateStore`] with its
//! DynamoDB and embedded backends, [`idempotency`], cached [`credential`]s, the bot author's API ([`bot`], [`testing`]),
//! the outbound [`http`] client, and the [`runtime`] switch between Lambda and a local server.
//!
//! Environment: `HOOKLINE_TABLE` (DynamoDB table; unset → embedded store), `HOOKLINE_DATA_DIR`
//! (embedded store folder, default `./.hookline`, `/tmp/.hookline/<function>` under Lambda),
//! `HOOKLINE_BIND` (default `127.0.0.1:3000`), `HOOKLINE_TRUST_PROXY`, `RUST_LOG`, and the
//! standard AWS variables.
#![warn(missing_docs)]

pub mod bot;
pub mod clock;
pub mod config;
pub mod credential;
pub mod emulator;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod redact;
pub mod ring;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod testing;

/// Re-exported so that bot authors and store implementers need no extra dependency.
pub use async_trait::async_trait;
