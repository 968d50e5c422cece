//! # hookline-max
//!
//! The MAX bot webhook (VK's successor of TamTam, PLATFORMS.md §4b). MAX speaks a fork of
//! TamTam's Bot API, so the adapter is `hookline-tamtam`'s in its MAX dialect
//! ([`hookline_tamtam::Dialect::Max`]); this crate is its name and its Lambda binary,
//! `hookline-max` (`/max` under `hookline serve`).
//!
//! Environment: `MAX_TOKEN`, `MAX_WEBHOOK_SECRET` (5–256 of `[A-Za-z0-9_-]`), optional
//! `MAX_API_URL` (default `https://platform-api2.max.ru`), `MAX_ALLOWED_SUBNETS`, `MAX_CA_PEM`;
//! the scheduled check (`hookline-max-resubscribe`) also `MAX_WEBHOOK_URL`.

pub use hookline_tamtam::emulator::TamTamEmulator as MaxEmulator;
pub use hookline_tamtam::setup::{ensure_subscribed, max_webhook_url};
pub use hookline_tamtam::{
    DEFAULT_MAX_API_URL, MAX_PUBLISHED_SUBNETS, MAX_VARS as VARS, MaxConfig,
    TamTamClient as MaxClient, max_pipeline as pipeline, max_router as router, run_max_resubscribe,
};

/// The `hookline-max` function for `bot`. A crate of its own bot calls this from its `main`
/// (and [`run_max_resubscribe`] for the scheduled `max-resubscribe` function).
pub async fn run(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline_tamtam::run_max(bot).await
}
