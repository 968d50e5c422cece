//! Tracing set-up: JSON lines under Lambda (CloudWatch parses them), compact text elsewhere.
//! `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber at level `info`; a second call does nothing.
pub fn init() {
    init_with_default("info");
}

/// Installs the global subscriber with `default` as the filter when `RUST_LOG` is unset.
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if crate::runtime::is_lambda() {
        builder
            .json()
            .with_current_span(false)
            .with_ansi(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
