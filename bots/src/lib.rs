//! # hookline-bots
//!
//! The bots hookline's prebuilt binaries choose from, by `HOOKLINE_BOT`:
//! - `echo` (the default): [`echo::bot`], today's quickstart bot (echo, `/help`, `/remember`,
//!   `/notes`, `/forget`, `/buttons`), built on the bot author's API like any user's bot;
//! - `forward`: [`forward::ForwardBot`], the bridge for bots written in any language: every
//!   verified, deduplicated event is POSTed as signed JSON to `HOOKLINE_FORWARD_URL`, and the
//!   replies in its answer are sent.
//!
//! The library crates (`hookline` and the platform adapters) name no bot; a crate of one's own
//! passes its bot to `hookline_server::main` or a platform crate's `run` instead.
#![warn(missing_docs)]

use std::sync::Arc;

use hookline::bot::SharedBot;
use hookline::config::{ConfigError, Env, optional};

pub mod echo;
pub mod forward;

/// The bot `HOOKLINE_BOT` names (`echo` when unset), with its configuration read now so that a
/// missing variable is named at start-up.
pub fn from_env(env: &dyn Env) -> Result<SharedBot, ConfigError> {
    match optional(env, "HOOKLINE_BOT").as_deref() {
        None | Some("echo") => Ok(Arc::new(echo::bot())),
        Some("forward") => Ok(Arc::new(forward::ForwardBot::from_env(env)?)),
        Some(other) => Err(ConfigError::Invalid {
            name: "HOOKLINE_BOT",
            reason: format!("unknown bot {other:?}: use echo or forward"),
        }),
    }
}
