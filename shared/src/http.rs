//! The one outbound HTTP client: reqwest with rustls, timeouts, a user agent, and bounded
//! retries with jittered exponential backoff.
//!
//! What is retried depends on whether a repeat could duplicate a side effect:
//! - [`Idempotence::Safe`] calls (logins, sends the platform deduplicates itself) are retried on
//!   429, 5xx, timeouts and connection failures;
//! - [`Idempotence::Unsafe`] calls (a chat message on a platform without dedup) are retried only
//!   when the request provably was not processed: 429, or a failure to connect. A timeout or a
//!   500 may hide a message that was posted, and a second copy is the double reply users must
//!   never see.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::redact::redact_url;

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// Repeating it cannot duplicate a side effect.
    Safe,
    /// Repeating it could (e.g. post a chat message twice).
    Unsafe,
}

/// Retry limits.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// The first backoff; doubled on every retry.
    pub base_delay: Duration,
    /// The longest single wait, `Retry-After` included.
    pub max_delay: Duration,
    /// No attempt starts after this much time since the first one (the function's budget).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(15),
        }
    }
}

/// A response, read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

/// A request that got no response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct HttpError {
    /// The method.
    pub method: String,
    /// The URL with its secrets redacted.
    pub url: String,
    /// What went wrong (never includes the URL: reqwest's own message would leak it).
    pub reason: String,
    /// Whether the failure was a timeout.
    pub timed_out: bool,
}

/// The shared outbound client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: RetryPolicy,
}

/// The user agent of every outbound request.
pub const USER_AGENT: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));

impl HttpClient {
    /// A client with the default timeouts (connect 5 s, whole request 10 s) and retry policy.
    pub fn new() -> Result<Self, HttpError> {
        Self::with_policy(RetryPolicy::default(), Duration::from_secs(10))
    }

    /// A client with explicit limits.
    pub fn with_policy(policy: RetryPolicy, timeout: Duration) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HttpError {
                method: "-".into(),
                url: "-".into(),
                reason: format!("cannot build the HTTP client: {}", e.without_url()),
                timed_out: false,
            })?;
        Ok(Self { inner, policy })
    }

    /// POSTs a JSON body, retrying as `idempotence` allows. Any HTTP status is returned as a
    /// response for the caller to interpret; only a request that got no answer is an error.
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        url: &str,
        headers: HeaderMap,
        body: &T,
        idempotence: Idempotence,
    ) -> Result<HttpResponse, HttpError> {
        let bytes = serde_json::to_vec(body).map_err(|e| HttpError {
            method: "POST".into(),
            url: redact_url(url),
            reason: format!("cannot encode the body: {e}"),
            timed_out: false,
        })?;
        let request = self
            .inner
            .post(url)
            .headers(headers)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(bytes);
        self.execute(request, idempotence).await
    }

    /// A request builder on the shared client, for methods without a helper (PATCH, DELETE);
    /// send it with [`HttpClient::execute`].
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.inner.request(method, url)
    }

    /// Sends a prepared request with the retry policy.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        idempotence: Idempotence,
    ) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let Some(this) = request.try_clone() else {
                // Streaming bodies cannot be repeated; send once.
                return send_once(request).await.map(|(r, _)| r).map_err(|(e, _)| e);
            };
            let outcome = send_once(this).await;
            let retry_in = match &outcome {
                Ok((resp, headers)) => retry_delay_for_status(resp.status, headers, idempotence),
                // A connection that never opened carried no request; anything later might have.
                Err((_, connect)) => (idempotence == Idempotence::Safe || *connect).then_some(None),
            };
            let Some(hint) = retry_in else {
                return outcome.map(|(r, _)| r).map_err(|(e, _)| e);
            };
            let delay = self.backoff(attempt, hint);
            let out_of_budget = attempt >= self.policy.max_attempts
                || started.elapsed() + delay > self.policy.max_elapsed
                || hint.is_some_and(|h| h > self.policy.max_delay);
            if out_of_budget {
                return outcome.map(|(r, _)| r).map_err(|(e, _)| e);
            }
            match &outcome {
                Ok((resp, _)) => {
                    tracing::warn!(status = %resp.status, attempt, ?delay, "retrying HTTP request")
                }
                Err((err, _)) => {
                    tracing::warn!(error = %err, attempt, ?delay, "retrying HTTP request")
                }
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            return h.min(self.policy.max_delay);
        }
        let exp = self
            .policy
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16));
        let cap = exp.min(self.policy.max_delay);
        // "Equal jitter": half fixed, half random, so retries spread but never collapse to 0.
        let half = cap / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// `Some(hint)` when the status is worth retrying (`hint` = the server's `Retry-After`).
fn retry_delay_for_status(
    status: StatusCode,
    headers: &HeaderMap,
    idempotence: Idempotence,
) -> Option<Option<Duration>> {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        // Throttled: the request was not processed, whatever the method.
        StatusCode::TOO_MANY_REQUESTS => Some(retry_after),
        s if s.is_server_error() && idempotence == Idempotence::Safe => Some(retry_after),
        _ => None,
    }
}

async fn send_once(
    request: reqwest::RequestBuilder,
) -> Result<(HttpResponse, HeaderMap), (HttpError, bool)> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| (describe(&e, "-", "-"), false))?;
    let (method, url) = (
        request.method().to_string(),
        redact_url(request.url().as_str()),
    );
    let response = client
        .execute(request)
        .await
        .map_err(|e| (describe(&e, &method, &url), e.is_connect()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| (describe(&e, &method, &url), false))?;
    Ok((HttpResponse { status, body }, headers))
}

fn describe(err: &reqwest::Error, method: &str, url: &str) -> HttpError {
    use std::error::Error as _;
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    // reqwest puts the full URL, query included, into its messages.
    let raw_url = err.url().map(|u| u.as_str().to_owned());
    if let Some(raw) = raw_url {
        reason = reason.replace(&raw, url);
    }
    HttpError {
        method: method.to_owned(),
        url: url.to_owned(),
        reason,
        timed_out: err.is_timeout(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode as S;
    use axum::routing::post;

    use super::*;

    /// A loopback server answering `statuses` in turn (then 200), counting hits.
    async fn server(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = Router::new().route(
            "/",
            post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let code = statuses.get(n).copied().unwrap_or(200);
                async move { S::from_u16(code).unwrap_or(S::OK) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/?token=abc"), hits)
    }

    fn fast() -> HttpClient {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_elapsed: Duration::from_secs(5),
        };
        HttpClient::with_policy(policy, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn safe_calls_retry_server_errors_up_to_the_attempt_limit() {
        let (url, hits) = server(vec![503, 502]).await;
        let resp = fast()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Safe)
            .await
            .unwrap();
        assert_eq!(resp.status, S::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        let (url, hits) = server(vec![500, 500, 500, 500]).await;
        let resp = fast()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Safe)
            .await
            .unwrap();
        assert_eq!(resp.status, S::INTERNAL_SERVER_ERROR);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unsafe_calls_never_repeat_after_a_server_error() {
        let (url, hits) = server(vec![500]).await;
        let resp = fast()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
            .await
            .unwrap();
        assert_eq!(resp.status, S::INTERNAL_SERVER_ERROR);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn throttling_is_retried_even_for_unsafe_calls() {
        let (url, hits) = server(vec![429]).await;
        let resp = fast()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
            .await
            .unwrap();
        assert_eq!(resp.status, S::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connection_failures_are_errors_without_secrets() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/send?access_token=SECRET123");
        let err = fast()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("SECRET123"), "{text}");
        assert!(text.contains("access_token=***"), "{text}");
    }
}
