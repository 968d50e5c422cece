//! `serve`'s metrics at `GET /metrics` in Prometheus text (OpenMetrics), opt-in:
//! `HOOKLINE_METRICS=prometheus`, on its own listener, `HOOKLINE_METRICS_BIND` (default
//! `127.0.0.1:9464`, loopback), so that a public webhook address never exposes them.
//!
//! The same metrics as the Lambda functions' EMF ([`hookline::metrics`]), prefixed `hookline_`:
//! counters end in `_total`, the send latency is a histogram in seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hookline::config::{ConfigError, Env};
use hookline::metrics::{Kind, Metric, Sample, Sink};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Where `/metrics` listens when `HOOKLINE_METRICS_BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:9464";

type Labels = Vec<(String, String)>;

enum Series {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram>),
}

/// The registry every [`Sample`] lands in.
pub struct Prometheus {
    registry: Registry,
    series: HashMap<Metric, Series>,
}

impl Default for Prometheus {
    fn default() -> Self {
        Self::new()
    }
}

impl Prometheus {
    /// A registry with every [`Metric`].
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookline");
        let mut series = HashMap::new();
        for metric in Metric::ALL {
            let entry = match metric.kind() {
                Kind::Counter => {
                    let family = Family::<Labels, Counter>::default();
                    registry.register(metric.name(), metric.help(), family.clone());
                    Series::Counter(family)
                }
                Kind::Gauge => {
                    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                    registry.register(metric.name(), metric.help(), family.clone());
                    Series::Gauge(family)
                }
                Kind::Distribution => {
                    // 5 ms to ~10 s.
                    let family = Family::<Labels, Histogram>::new_with_constructor(
                        (|| Histogram::new(exponential_buckets(0.005, 2.0, 12))) as fn() -> _,
                    );
                    registry.register_with_unit(
                        metric.name(),
                        metric.help(),
                        Unit::Seconds,
                        family.clone(),
                    );
                    Series::Histogram(family)
                }
            };
            series.insert(metric, entry);
        }
        Self { registry, series }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Sink for Prometheus {
    fn record(&self, samples: &[Sample<'_>]) {
        for sample in samples {
            let labels: Labels = sample
                .dims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            match self.series.get(&sample.metric) {
                Some(Series::Counter(f)) => {
                    f.get_or_create(&labels).inc_by(sample.value as u64);
                }
                Some(Series::Gauge(f)) => {
                    f.get_or_create(&labels).set(sample.value);
                }
                Some(Series::Histogram(f)) => {
                    // Recorded in milliseconds, exposed in seconds.
                    f.get_or_create(&labels).observe(sample.value / 1e3);
                }
                None => {}
            }
        }
    }
}

/// `HOOKLINE_METRICS_BIND`, default [`DEFAULT_BIND`].
pub fn bind(env: &dyn Env) -> Result<SocketAddr, ConfigError> {
    let value = hookline::config::optional(env, "HOOKLINE_METRICS_BIND")
        .unwrap_or_else(|| DEFAULT_BIND.to_owned());
    value.parse().map_err(|e| ConfigError::Invalid {
        name: "HOOKLINE_METRICS_BIND",
        reason: format!("{value:?} is not an address:port: {e}"),
    })
}

/// Installs the registry as a sink and serves it at `GET /metrics` on `bind`; returns the
/// address it listens on.
pub async fn serve(bind: SocketAddr) -> anyhow::Result<SocketAddr> {
    let registry = Arc::new(Prometheus::new());
    hookline::metrics::install(registry.clone());
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind} for /metrics: {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    registry.encode(),
                )
                    .into_response()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_show_up_as_prometheus_series() {
        let p = Prometheus::new();
        p.record(&[Sample {
            metric: Metric::Events,
            value: 1.0,
            dims: &[("platform", "max"), ("outcome", "rejected:malformed")],
        }]);
        p.record(&[Sample {
            metric: Metric::SendLatency,
            value: 20.0,
            dims: &[("platform", "max")],
        }]);
        p.record(&[Sample {
            metric: Metric::DingTalkQueueDepth,
            value: 3.0,
            dims: &[("platform", "dingtalk")],
        }]);
        let text = p.encode();
        assert!(
            text.contains(
                r#"hookline_events_total{platform="max",outcome="rejected:malformed"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"hookline_send_latency_seconds_count{platform="max"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookline_send_latency_seconds_bucket{le="0.02",platform="max"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookline_dingtalk_queue_depth{platform="dingtalk"} 3"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn metrics_listen_on_loopback_unless_told_otherwise() {
        let env: HashMap<&str, &str> = HashMap::new();
        assert!(bind(&env).unwrap().ip().is_loopback());
        let env: HashMap<&str, &str> = [("HOOKLINE_METRICS_BIND", "nowhere")].into();
        assert!(
            bind(&env)
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_METRICS_BIND")
        );
    }
}
