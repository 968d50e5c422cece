//! Metrics: a handful of counters, one latency and one gauge, recorded where they happen and
//! written by whatever [`Sink`]s the process installed.
//!
//! Under Lambda the sink is CloudWatch's Embedded Metric Format ([`Emf`]): one JSON document per
//! recording on stdout, which CloudWatch Logs turns into metrics with no API call. Under `serve`
//! the `hookline` command can serve the same counters at `GET /metrics` (Prometheus text).
//!
//! `HOOKLINE_METRICS`: `emf` (the default under Lambda), `prometheus` (`serve` only), `off` (the
//! default elsewhere). `HOOKLINE_METRICS_NAMESPACE`: the CloudWatch namespace, default `hookline`.
//!
//! | metric | kind | unit | dimensions |
//! | --- | --- | --- | --- |
//! | `events` | counter | Count | `platform`, `outcome` |
//! | `replies` | counter | Count | `platform` |
//! | `send_failures` | counter | Count | `platform`, `kind` |
//! | `send_latency` | distribution | Milliseconds | `platform` |
//! | `dingtalk_queue_depth` | gauge | Count | `platform` (`dingtalk`) |
//! | `dingtalk_digests` | counter | Count | `platform` (`dingtalk`) |
//! | `cold_starts` | counter | Count | `platform` |

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{ConfigError, Env};
use crate::error::HookError;
use crate::telemetry::Outcome;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Webhooks, by platform and [`Outcome`].
    Events,
    /// Replies that reached the chat, by platform.
    Replies,
    /// Failed deliveries of replies, by platform and [`HookError::kind`].
    SendFailures,
    /// How long delivering one event's replies took, by platform.
    SendLatency,
    /// DingTalk custom-robot messages waiting for a digest, after a flush.
    DingTalkQueueDepth,
    /// DingTalk digests sent.
    DingTalkDigests,
    /// Processes that served their first webhook, by platform.
    ColdStarts,
}

/// How a metric adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// The latest value.
    Gauge,
    /// A distribution of values.
    Distribution,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Self; 7] = [
        Self::Events,
        Self::Replies,
        Self::SendFailures,
        Self::SendLatency,
        Self::DingTalkQueueDepth,
        Self::DingTalkDigests,
        Self::ColdStarts,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Replies => "replies",
            Self::SendFailures => "send_failures",
            Self::SendLatency => "send_latency",
            Self::DingTalkQueueDepth => "dingtalk_queue_depth",
            Self::DingTalkDigests => "dingtalk_digests",
            Self::ColdStarts => "cold_starts",
        }
    }

    /// Its CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Self::SendLatency => "Milliseconds",
            _ => "Count",
        }
    }

    /// How it adds up.
    pub fn kind(self) -> Kind {
        match self {
            Self::SendLatency => Kind::Distribution,
            Self::DingTalkQueueDepth => Kind::Gauge,
            _ => Kind::Counter,
        }
    }

    /// One line on what it counts.
    pub fn help(self) -> &'static str {
        match self {
            Self::Events => "Webhooks received, by platform and outcome.",
            Self::Replies => "Replies that reached the chat.",
            Self::SendFailures => "Failed deliveries of replies, by kind.",
            Self::SendLatency => "Time to deliver one event's replies.",
            Self::DingTalkQueueDepth => "DingTalk robot messages waiting for a digest.",
            Self::DingTalkDigests => "DingTalk digests sent.",
            Self::ColdStarts => "Processes that served their first webhook.",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The metric.
    pub metric: Metric,
    /// Its value (a counter's increment, a gauge's level, a latency in milliseconds).
    pub value: f64,
    /// Its dimensions.
    pub dims: &'a [(&'static str, &'a str)],
}

/// Where samples go.
pub trait Sink: Send + Sync {
    /// Records samples taken together.
    fn record(&self, samples: &[Sample<'_>]);
}

static SINKS: RwLock<Vec<Arc<dyn Sink>>> = RwLock::new(Vec::new());
static ANY: AtomicBool = AtomicBool::new(false);

/// Adds a sink for the rest of the process.
pub fn install(sink: Arc<dyn Sink>) {
    SINKS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(sink);
    ANY.store(true, Ordering::Release);
}

/// Whether any sink is installed (nothing is computed for metrics otherwise).
pub fn enabled() -> bool {
    ANY.load(Ordering::Acquire)
}

/// Hands `samples` to every sink.
pub fn record(samples: &[Sample<'_>]) {
    if !enabled() {
        return;
    }
    let sinks = SINKS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for sink in sinks.iter() {
        sink.record(samples);
    }
}

/// What `HOOKLINE_METRICS` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No metrics.
    Off,
    /// Embedded Metric Format on stdout.
    Emf,
    /// `GET /metrics` on `serve`'s metrics address.
    Prometheus,
}

/// `HOOKLINE_METRICS` (default: `emf` under Lambda, `off` elsewhere).
pub fn mode(env: &dyn Env) -> Result<Mode, ConfigError> {
    let lambda = env.var("AWS_LAMBDA_RUNTIME_API").is_some();
    match crate::config::optional(env, "HOOKLINE_METRICS").as_deref() {
        None if lambda => Ok(Mode::Emf),
        None | Some("off") => Ok(Mode::Off),
        Some("emf") => Ok(Mode::Emf),
        Some("prometheus") => Ok(Mode::Prometheus),
        Some(other) => Err(ConfigError::Invalid {
            name: "HOOKLINE_METRICS",
            reason: format!("{other:?} is not one of emf, prometheus, off"),
        }),
    }
}

/// `HOOKLINE_METRICS_NAMESPACE`, default `hookline`.
pub fn namespace(env: &dyn Env) -> String {
    crate::config::optional(env, "HOOKLINE_METRICS_NAMESPACE").unwrap_or_else(|| "hookline".into())
}

/// Installs the EMF sink on stdout when `HOOKLINE_METRICS` asks for it; returns the mode.
pub fn init(env: &dyn Env) -> Result<Mode, ConfigError> {
    let mode = mode(env)?;
    if mode == Mode::Emf {
        install(Arc::new(Emf::new(
            namespace(env),
            Box::new(std::io::stdout()),
        )));
    }
    Ok(mode)
}

/// A webhook's outcome, and the process's cold start.
pub fn webhook(platform: &'static str, outcome: Outcome, cold_start: bool) {
    if !enabled() {
        return;
    }
    let outcome = outcome.to_string();
    record(&[Sample {
        metric: Metric::Events,
        value: 1.0,
        dims: &[("platform", platform), ("outcome", &outcome)],
    }]);
    if cold_start {
        record(&[Sample {
            metric: Metric::ColdStarts,
            value: 1.0,
            dims: &[("platform", platform)],
        }]);
    }
}

/// One event's replies sent: how many reached the chat, how long it took, and the failure.
pub fn sent(platform: &'static str, delivered: usize, took: Duration, failure: Option<&HookError>) {
    if !enabled() {
        return;
    }
    let dims = [("platform", platform)];
    record(&[
        Sample {
            metric: Metric::Replies,
            value: delivered as f64,
            dims: &dims,
        },
        Sample {
            metric: Metric::SendLatency,
            value: took.as_secs_f64() * 1e3,
            dims: &dims,
        },
    ]);
    if let Some(error) = failure {
        record(&[Sample {
            metric: Metric::SendFailures,
            value: 1.0,
            dims: &[("platform", platform), ("kind", error.kind())],
        }]);
    }
}

/// A DingTalk flush: digests sent, messages still waiting.
pub fn dingtalk_flush(digests: usize, pending: usize) {
    let dims = [("platform", "dingtalk")];
    record(&[
        Sample {
            metric: Metric::DingTalkDigests,
            value: digests as f64,
            dims: &dims,
        },
        Sample {
            metric: Metric::DingTalkQueueDepth,
            value: pending as f64,
            dims: &dims,
        },
    ]);
}

/// CloudWatch's Embedded Metric Format: each recording is one JSON document on one line, its
/// samples sharing the document's dimensions.
pub struct Emf {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Emf {
    /// A sink writing to `out` under `namespace`.
    pub fn new(namespace: String, out: Box<dyn Write + Send>) -> Self {
        Self {
            namespace,
            out: Mutex::new(out),
        }
    }

    /// The document for `samples` (which share their dimensions) at `timestamp_ms`.
    pub fn document(&self, samples: &[Sample<'_>], timestamp_ms: i64) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        let mut names = Vec::new();
        for sample in samples {
            for (name, value) in sample.dims {
                if !names.contains(name) {
                    names.push(*name);
                }
                root.insert((*name).to_owned(), (*value).into());
            }
        }
        let metrics: Vec<_> = samples
            .iter()
            .map(|s| serde_json::json!({ "Name": s.metric.name(), "Unit": s.metric.unit() }))
            .collect();
        for sample in samples {
            root.insert(sample.metric.name().to_owned(), sample.value.into());
        }
        root.insert(
            "_aws".to_owned(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [names],
                    "Metrics": metrics,
                }],
            }),
        );
        serde_json::Value::Object(root)
    }
}

impl Sink for Emf {
    fn record(&self, samples: &[Sample<'_>]) {
        if samples.is_empty() {
            return;
        }
        let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let line = self.document(samples, now_ms).to_string();
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per line, so that lines of concurrent recordings never interleave.
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    }
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::tests::Captured;

    #[test]
    fn an_emf_document_names_every_metric_and_dimension_it_carries() {
        let out = Captured::default();
        let emf = Emf::new("ns".into(), Box::new(out.clone()));
        emf.record(&[
            Sample {
                metric: Metric::Replies,
                value: 2.0,
                dims: &[("platform", "max")],
            },
            Sample {
                metric: Metric::SendLatency,
                value: 12.5,
                dims: &[("platform", "max")],
            },
        ]);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["platform"], "max");
        assert_eq!(doc["replies"], 2.0);
        assert_eq!(doc["send_latency"], 12.5);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ns");
        assert_eq!(directive["Dimensions"], serde_json::json!([["platform"]]));
        assert_eq!(directive["Metrics"][1]["Unit"], "Milliseconds");
        assert!(doc["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    }

    #[test]
    fn the_mode_defaults_to_emf_under_lambda_only_and_refuses_unknown_values() {
        use std::collections::HashMap;
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(mode(&env(&[])).unwrap(), Mode::Off);
        assert_eq!(
            mode(&env(&[("AWS_LAMBDA_RUNTIME_API", "x")])).unwrap(),
            Mode::Emf
        );
        assert_eq!(
            mode(&env(&[
                ("AWS_LAMBDA_RUNTIME_API", "x"),
                ("HOOKLINE_METRICS", "off")
            ]))
            .unwrap(),
            Mode::Off
        );
        assert_eq!(
            mode(&env(&[("HOOKLINE_METRICS", "prometheus")])).unwrap(),
            Mode::Prometheus
        );
        let err = mode(&env(&[("HOOKLINE_METRICS", "statsd")])).unwrap_err();
        assert!(err.to_string().contains("HOOKLINE_METRICS"), "{err}");
        assert_eq!(namespace(&env(&[])), "hookline");
    }
}
