//! Tracing set-up, the webhook log line and its outcome.
//!
//! Under Lambda the lines are JSON (CloudWatch parses them), one object per line with every field
//! at the top level; elsewhere compact text. Lambda's own controls are honoured:
//! `AWS_LAMBDA_LOG_FORMAT` (`JSON`/`Text`, set by the function's `LoggingConfig`) picks the
//! format, and `AWS_LAMBDA_LOG_LEVEL` is the level when `RUST_LOG` is unset. `RUST_LOG`, when
//! set, filters (default `info`).
//!
//! Whatever the level asks, the crates below hookline are held at `info`: at `debug`/`trace`
//! the Lambda runtime logs every raw event (webhook tokens in query strings, whole bodies), the
//! HTTP stacks log request lines with `access_token`s, and the AWS SDK logs the items it reads
//! (cached credentials). Secrets never reach the logs, so their chatter does not either.
//!
//! Every webhook gets exactly one line, [`webhook_line`]: `request_id`, `platform`, `event_id`,
//! `outcome` (an [`Outcome`]), `status`, `duration_ms`, `cold_start`, `reason` when ignored, and
//! `error` when it was rejected or failed.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::error::HookError;

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

/// The target of the one line per webhook.
pub const WEBHOOK_TARGET: &str = "hookline::webhook";

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

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, fields at the top level.
    Json,
    /// Compact text.
    Text,
}

/// The log settings of this process: the filter directive (`RUST_LOG`, else
/// `AWS_LAMBDA_LOG_LEVEL` under Lambda, else `default`) and the format (`AWS_LAMBDA_LOG_FORMAT`,
/// else JSON under Lambda and text elsewhere).
pub fn settings(env: &dyn crate::config::Env, default: &str) -> (String, Format) {
    let lambda = env.var("AWS_LAMBDA_RUNTIME_API").is_some();
    let level = env
        .var("RUST_LOG")
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            env.var("AWS_LAMBDA_LOG_LEVEL")
                .and_then(|level| lambda_level(&level))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| default.to_owned());
    let format = match env.var("AWS_LAMBDA_LOG_FORMAT").as_deref() {
        Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
        Some(f) if f.eq_ignore_ascii_case("text") => Format::Text,
        _ if lambda => Format::Json,
        _ => Format::Text,
    };
    (level, format)
}

/// A Lambda log level (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`) as a filter directive.
fn lambda_level(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => return None,
    })
}

/// Installs the global subscriber with the [`settings`] of this process; a second call does
/// nothing.
pub fn init_with_default(default: &str) {
    let (level, format) = settings(&crate::config::ProcessEnv, default);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(Some(&level), default))
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
        // Colours only on a terminal: not in CloudWatch, a file or the journal.
        Format::Text => builder
            .compact()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    static METRICS: std::sync::Once = std::sync::Once::new();
    METRICS.call_once(|| {
        if let Err(e) = crate::metrics::init(&crate::config::ProcessEnv) {
            tracing::error!(error = %e, "no metrics");
        }
    });
}

/// What became of one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bot ran and its replies (if any) went out.
    Answered,
    /// Nothing for the bot (an event type it does not handle, its own message, …).
    Ignored,
    /// A redelivery of an event already answered or queued.
    Duplicate,
    /// On the queue; the reply comes from a worker.
    Deferred,
    /// Refused before anything ran (4xx): the [`HookError::kind`].
    Rejected(&'static str),
    /// Failed after it was accepted: the [`HookError::kind`], or `bot_panic`, `bot_gave_up`,
    /// `bot_retry_exhausted`. The status says whether the platform redelivers (5xx) or the event
    /// was dropped (200).
    Failed(&'static str),
}

impl Outcome {
    /// The outcome of a webhook answered with `error`.
    pub fn of_error(error: &HookError) -> Self {
        if error.status().is_client_error() {
            Self::Rejected(error.kind())
        } else {
            Self::Failed(error.kind())
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answered => f.write_str("answered"),
            Self::Ignored => f.write_str("ignored"),
            Self::Duplicate => f.write_str("duplicate"),
            Self::Deferred => f.write_str("deferred"),
            Self::Rejected(why) => write!(f, "rejected:{why}"),
            Self::Failed(kind) => write!(f, "failed:{kind}"),
        }
    }
}

/// Whether this is the first webhook of the process (true once).
pub fn cold_start() -> bool {
    static WARM: AtomicBool = AtomicBool::new(false);
    !WARM.swap(true, Ordering::Relaxed)
}

/// One webhook, as its log line shows it.
#[derive(Debug)]
pub struct Webhook<'a> {
    /// The Lambda request id, or one made up under `serve`.
    pub request_id: &'a str,
    /// The platform.
    pub platform: &'a str,
    /// The platform's event id, once decoded.
    pub event_id: Option<&'a str>,
    /// Why an ignored event was ignored.
    pub reason: Option<&'a str>,
    /// What became of it.
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
    /// From the request to the answer.
    pub duration_ms: f64,
    /// The first webhook of the process.
    pub cold_start: bool,
    /// The error behind a rejection or a failure (secrets are never in error texts).
    pub error: Option<&'a str>,
}

/// Writes the webhook's one line: `info` when answered, ignored, duplicate or deferred, `warn`
/// when rejected, `error` when it failed.
pub fn webhook_line(w: &Webhook<'_>) {
    let duration_ms = (w.duration_ms * 10.0).round() / 10.0;
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "hookline::webhook",
                request_id = %w.request_id,
                platform = %w.platform,
                event_id = w.event_id.map(tracing::field::display),
                outcome = %w.outcome,
                status = w.status,
                duration_ms,
                cold_start = w.cold_start,
                reason = w.reason.map(tracing::field::display),
                error = w.error.map(tracing::field::display),
                "webhook"
            )
        };
    }
    match w.outcome {
        Outcome::Failed(_) => line!(error),
        Outcome::Rejected(_) => line!(warn),
        _ => line!(info),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer keeping what is written, for tests of what reaches the output.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

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

    #[test]
    fn lambdas_log_controls_apply_when_rust_log_is_unset() {
        use std::collections::HashMap;
        let env = |pairs: &[(&'static str, &'static str)]| -> HashMap<&str, &str> {
            pairs.iter().copied().collect()
        };
        let lambda = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        assert_eq!(settings(&env(&[]), "info"), ("info".into(), Format::Text));
        assert_eq!(
            settings(&env(&[lambda]), "info"),
            ("info".into(), Format::Json)
        );
        assert_eq!(
            settings(
                &env(&[
                    lambda,
                    ("AWS_LAMBDA_LOG_LEVEL", "FATAL"),
                    ("AWS_LAMBDA_LOG_FORMAT", "Text")
                ]),
                "info"
            ),
            ("error".into(), Format::Text)
        );
        assert_eq!(
            settings(
                &env(&[
                    ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                    ("RUST_LOG", "hookline=trace")
                ]),
                "info"
            ),
            ("hookline=trace".into(), Format::Text),
            "RUST_LOG wins"
        );
        assert_eq!(
            settings(&env(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]), "warn").0,
            "warn",
            "an unknown level falls back to the default"
        );
        assert_eq!(
            settings(&env(&[("AWS_LAMBDA_LOG_FORMAT", "json")]), "info").1,
            Format::Json
        );
    }

    #[test]
    fn outcomes_read_as_the_log_line_writes_them() {
        assert_eq!(Outcome::Answered.to_string(), "answered");
        assert_eq!(
            Outcome::of_error(&HookError::UnknownToken).to_string(),
            "rejected:unknown_token"
        );
        assert_eq!(
            Outcome::of_error(&HookError::BotRetry("later".into())).to_string(),
            "failed:bot_retry"
        );
        assert_eq!(Outcome::Failed("bot_panic").to_string(), "failed:bot_panic");
    }
}
