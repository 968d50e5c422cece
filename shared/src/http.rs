//! The one outbound HTTP client: reqwest with rustls, timeouts, a user agent, and bounded
//! retries with jittered exponential backoff.
//!
//! One rule for "did it go out?" (DESIGN.md, the pipeline's send step):
//! - **not processed**: 429, 503, or a connection that failed before the request was written.
//!   Retried for every call, with backoff, honouring `Retry-After` (delta-seconds or HTTP-date);
//! - **maybe processed**: 500, 502, 504 and other 5xx, a timeout, a reset or a body-read error
//!   after the request was written. Retried only for [`Idempotence::Safe`] calls (logins, and
//!   sends the platform deduplicates itself); an [`Idempotence::Unsafe`] call (a chat message on
//!   a platform without dedup) is never repeated: a second copy is the double reply users must
//!   never see.
//!
//! The retry budget of one call ends at the policy's `max_elapsed` or at the invocation's
//! deadline ([`with_deadline`]), whichever comes first: no attempt and no wait outlives it, and
//! each attempt's timeout is cut to the time left.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

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
    /// Whether the request may have reached the server: false only when the connection never
    /// opened (or the request was never started), so nothing can have been processed.
    pub sent: bool,
}

impl HttpError {
    fn unsent(method: &str, url: &str, reason: impl Into<String>, timed_out: bool) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            reason: reason.into(),
            timed_out,
            sent: false,
        }
    }
}

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` with every outbound call's retry budget ending at `deadline` (the Lambda
/// invocation's deadline, less what the pipeline needs to record the outcome and answer), or
/// at the deadline already in force if that is earlier.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> F::Output {
    let deadline = current_deadline().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, future).await
}

/// The deadline set by [`with_deadline`] for the current task, if any.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The shared outbound client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: RetryPolicy,
    timeout: Duration,
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
        Self::build(policy, timeout, Vec::new())
    }

    /// This client's limits with `pem`'s certificates (one or more PEM blocks) trusted as roots
    /// in addition to the default ones: for a platform whose certificate chains to a root the
    /// public trust stores lack (MAX, `MAX_CA_PEM`). Verification stays on. A separate
    /// connection pool.
    pub fn with_extra_roots(&self, pem: &str) -> Result<Self, HttpError> {
        let certs = pem_certificates(pem).map_err(|e| HttpError::unsent("-", "-", e, false))?;
        Self::build(self.policy, self.timeout, certs)
    }

    fn build(
        policy: RetryPolicy,
        timeout: Duration,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect is answered as the 3xx it is, never followed. Following one would send
            // the request's own credential headers (Tailchat's `x-token`: reqwest strips only
            // the standard ones across hosts) wherever `Location` points, and would turn a
            // POST into a GET. No platform API redirects; one that does is misconfigured
            // (`http://` behind an HTTPS redirect), and its status says so.
            .redirect(reqwest::redirect::Policy::none());
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        let inner = builder.build().map_err(|e| {
            HttpError::unsent(
                "-",
                "-",
                format!("cannot build the HTTP client: {}", e.without_url()),
                false,
            )
        })?;
        Ok(Self {
            inner,
            policy,
            timeout,
        })
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
        let bytes = serde_json::to_vec(body).map_err(|e| {
            HttpError::unsent(
                "POST",
                &redact_url(url),
                format!("cannot encode the body: {e}"),
                false,
            )
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

    /// Sends a prepared request with the retry policy, within the current deadline.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        idempotence: Idempotence,
    ) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let mut end = started + self.policy.max_elapsed;
        if let Some(deadline) = current_deadline() {
            end = end.min(deadline);
        }
        let mut attempt = 1;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HttpError::unsent(
                    "-",
                    "-",
                    "no time left before the invocation's deadline",
                    true,
                ));
            }
            let Some(this) = request.try_clone() else {
                // Streaming bodies cannot be repeated; send once.
                let request = request.timeout(left.min(self.timeout));
                return send_once(request).await.map(|(r, _)| r);
            };
            let outcome = send_once(this.timeout(left.min(self.timeout))).await;
            let retry_in = match &outcome {
                Ok((resp, headers)) => retry_delay_for_status(resp.status, headers, idempotence),
                // A request that never reached the server can always be repeated.
                Err(e) => (idempotence == Idempotence::Safe || !e.sent).then_some(None),
            };
            let Some(hint) = retry_in else {
                return outcome.map(|(r, _)| r);
            };
            let delay = self.backoff(attempt, hint);
            let out_of_budget = attempt >= self.policy.max_attempts
                || Instant::now() + delay >= end
                || hint.is_some_and(|h| h > self.policy.max_delay);
            if out_of_budget {
                return outcome.map(|(r, _)| r);
            }
            match &outcome {
                Ok((resp, _)) => {
                    tracing::warn!(status = %resp.status, attempt, ?delay, "retrying HTTP request")
                }
                Err(err) => {
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

/// The certificates of a PEM bundle (at least one), for a configuration check.
pub fn pem_certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("unreadable PEM certificates: {}", e.without_url()))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    // The PEM parser does not read the certificates; building a trust store with them does.
    reqwest::Client::builder()
        .tls_certs_merge(certs.clone())
        .build()
        .map_err(|e| format!("unusable certificate: {}", e.without_url()))?;
    Ok(certs)
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
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    match status {
        // Throttled or unavailable: the request was not processed, whatever the method.
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Some(retry_after),
        // Anything else may have been carried out: only a deduplicated call is repeated.
        s if s.is_server_error() && idempotence == Idempotence::Safe => Some(retry_after),
        _ => None,
    }
}

/// A `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait from
/// `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

async fn send_once(
    request: reqwest::RequestBuilder,
) -> Result<(HttpResponse, HeaderMap), HttpError> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| HttpError {
        sent: false,
        ..describe(&e, "-", "-")
    })?;
    let (method, url) = (
        request.method().to_string(),
        redact_url(request.url().as_str()),
    );
    let response = client.execute(request).await.map_err(|e| HttpError {
        // A connection that never opened carried no request; anything later might have.
        sent: !e.is_connect(),
        ..describe(&e, &method, &url)
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    // The status line arrived, so the server processed the request: a body that breaks off now
    // is an unknown outcome (sent), never a reason to repeat an unsafe call.
    let body = response
        .bytes()
        .await
        .map_err(|e| describe(&e, &method, &url))?;
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
        sent: true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode as S;
    use axum::response::IntoResponse;
    use axum::routing::post;

    use super::*;

    /// A loopback server answering its n-th request (from 0) with `answer(n)`, counting hits.
    async fn server_with<F>(answer: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize) -> axum::response::Response + Clone + Send + Sync + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = Router::new().route(
            "/",
            post(move || {
                let response = answer(counter.fetch_add(1, Ordering::SeqCst));
                async move { response }
            }),
        );
        let base = crate::runtime::serve_on_loopback(app).await.unwrap();
        (format!("{base}/?token=abc"), hits)
    }

    /// A loopback server answering `statuses` in turn (then 200), counting hits.
    async fn server(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        server_with(move |n| {
            let code = statuses.get(n).copied().unwrap_or(200);
            S::from_u16(code).unwrap_or(S::OK).into_response()
        })
        .await
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
    async fn unsafe_calls_never_repeat_an_answer_that_may_hide_a_processed_request() {
        for status in [500, 502, 504] {
            let (url, hits) = server(vec![status]).await;
            let resp = fast()
                .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
                .await
                .unwrap();
            assert_eq!(resp.status.as_u16(), status);
            assert_eq!(hits.load(Ordering::SeqCst), 1, "HTTP {status}");
        }
    }

    #[tokio::test]
    async fn throttling_and_unavailability_are_retried_even_for_unsafe_calls() {
        for status in [429, 503] {
            let (url, hits) = server(vec![status]).await;
            let resp = fast()
                .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
                .await
                .unwrap();
            assert_eq!(resp.status, S::OK, "HTTP {status}");
            assert_eq!(hits.load(Ordering::SeqCst), 2, "HTTP {status}");
        }
    }

    #[tokio::test]
    async fn a_redirect_is_answered_not_followed_so_credentials_stay_home() {
        let (elsewhere, hits_elsewhere) = server(vec![200]).await;
        for status in [301, 302, 303, 307, 308] {
            let location = elsewhere.clone();
            let (url, hits) = server_with(move |_| {
                let status = S::from_u16(status).unwrap_or(S::OK);
                (status, [(axum::http::header::LOCATION, location.clone())]).into_response()
            })
            .await;
            let mut headers = HeaderMap::new();
            headers.insert("x-token", "the-bots-jwt".parse().unwrap());
            let resp = fast()
                .post_json(&url, headers, &(), Idempotence::Safe)
                .await
                .unwrap();
            assert_eq!(resp.status.as_u16(), status);
            assert_eq!(hits.load(Ordering::SeqCst), 1, "HTTP {status}");
        }
        assert_eq!(
            hits_elsewhere.load(Ordering::SeqCst),
            0,
            "nothing reached the redirect's target"
        );
    }

    #[test]
    fn retry_after_takes_delta_seconds_and_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:39 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// A loopback server answering 503 with `Retry-After: <HTTP-date 2 s ahead>`, then 200.
    async fn dated_server() -> (String, Arc<AtomicUsize>) {
        server_with(|n| {
            if n == 0 {
                let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
                (S::SERVICE_UNAVAILABLE, [(RETRY_AFTER, at)]).into_response()
            } else {
                S::OK.into_response()
            }
        })
        .await
    }

    fn patient() -> HttpClient {
        let policy = RetryPolicy {
            max_delay: Duration::from_secs(3),
            ..RetryPolicy::default()
        };
        HttpClient::with_policy(policy, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn an_http_date_retry_after_is_waited_for_then_the_call_is_delivered_once() {
        let (url, hits) = dated_server().await;
        let started = Instant::now();
        let resp = patient()
            .post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe)
            .await
            .unwrap();
        assert_eq!(resp.status, S::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // The date is at least one whole second ahead: far longer than the 100–200 ms backoff
        // that ignoring it would give.
        assert!(started.elapsed() >= Duration::from_millis(900));
    }

    #[tokio::test]
    async fn no_retry_wait_outlives_the_deadline() {
        let (url, hits) = dated_server().await;
        let deadline = Instant::now() + Duration::from_millis(300);
        let resp = with_deadline(
            deadline,
            patient().post_json(&url, HeaderMap::new(), &(), Idempotence::Unsafe),
        )
        .await
        .unwrap();
        assert_eq!(resp.status, S::SERVICE_UNAVAILABLE);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the wait would pass the deadline"
        );
    }

    #[tokio::test]
    async fn an_attempt_is_cut_off_at_the_deadline() {
        let app = Router::new().route(
            "/",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                S::OK
            }),
        );
        let url = format!("{}/", crate::runtime::serve_on_loopback(app).await.unwrap());
        // The client's own timeout is 20 s; the deadline is 300 ms away.
        let client =
            HttpClient::with_policy(RetryPolicy::default(), Duration::from_secs(20)).unwrap();
        let started = Instant::now();
        let call = client.post_json(&url, HeaderMap::new(), &(), Idempotence::Safe);
        let err = with_deadline(Instant::now() + Duration::from_millis(300), call)
            .await
            .unwrap_err();
        assert!(err.timed_out, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // Past the deadline nothing is even attempted.
        let call = client.post_json(&url, HeaderMap::new(), &(), Idempotence::Safe);
        let err = with_deadline(Instant::now(), call).await.unwrap_err();
        assert!(!err.sent);
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
        assert!(!err.sent, "a refused connection carried no request");
    }
}
