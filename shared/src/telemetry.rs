//! Tracing set-up: JSON lines under Lambda (CloudWatch parses them), compact text elsewhere.
//! `RUST_LOG` filters (default `info`).
//!
//! Whatever `RUST_LOG` asks, the crates below hookline are held at `info`: at `debug`/`trace`
//! the Lambda runtime logs every raw event (webhook tokens in query strings, whole bodies), the
//! HTTP stacks log request lines with `access_token`s, and the AWS SDK logs the items it reads
//! (cached credentials). Secrets never reach the logs, so their chatter does not either.

use tracing_subscriber::EnvFilter;

/// Targets held at `info` at most, because their verbose levels print raw requests.
pub const CAPPED_TARGETS: [&str; 13] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_sdk_dynamodb",
    "aws_config",
];

/// Installs the global subscriber at level `info`; a second call does nothing.
pub fn init() {
    init_with_default("info");
}

/// The filter for `rust_log` (the value of `RUST_LOG`, or `default` when unset or unreadable),
/// with [`CAPPED_TARGETS`] held at `info`.
pub fn filter(rust_log: Option<&str>, default: &str) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    for target in CAPPED_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber with `default` as the filter when `RUST_LOG` is unset.
pub fn init_with_default(default: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(rust_log.as_deref(), default))
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn trace_logging_never_prints_the_runtimes_raw_events() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(Some("trace"), "info"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::runtime", "raw event ?token=SECRET1");
            tracing::debug!(target: "reqwest::connect", "POST /send?access_token=SECRET2");
            tracing::trace!(target: "aws_smithy_runtime::client", "item jwt SECRET3");
            tracing::trace!(target: "hookline::pipeline", "ours at trace");
            tracing::info!(target: "lambda_runtime", "runtime at info");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(
            text.contains("ours at trace") && text.contains("runtime at info"),
            "{text}"
        );
    }
}
