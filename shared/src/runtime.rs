//! The one runtime switch: `lambda_http::run` under Lambda (`AWS_LAMBDA_RUNTIME_API` set),
//! `axum::serve` otherwise. Nothing else in the workspace imports `lambda_http`.
//!
//! Both paths hand the router the same request extensions: [`ClientIp`] and, under Lambda, the
//! invocation [`Deadline`]. The client address is `requestContext.http.sourceIp` under Lambda,
//! never overridden by a header (anyone can send `X-Forwarded-For` to a Function URL); under
//! `serve` it is the TCP peer, or the last `X-Forwarded-For` hop when that peer is one of the
//! [`TrustedProxies`] (`HOOKLINE_TRUST_PROXY=1` with `HOOKLINE_TRUSTED_PROXIES`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tower::ServiceBuilder;

use crate::error::ErrorDetail;

/// The caller's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// When the Lambda invocation times out (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub i64);

/// The id of one request: the Lambda request id, or one made up under `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new random id (128 bits, hex).
    pub fn generate() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
}

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server or the Lambda runtime stopped with an error.
    #[error("runtime stopped: {0}")]
    Stopped(String),
}

/// The reverse proxies whose `X-Forwarded-For` is believed (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// The client's address: the last `X-Forwarded-For` hop when `peer` is a trusted proxy that
    /// sent one it could read, the peer itself otherwise.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.iter().any(|net| net.contains(&peer))
            && let Some(forwarded) = forwarded_for(headers)
        {
            return forwarded;
        }
        peer
    }
}

/// The URL clients on this machine use to reach a server bound to `bind` (a wildcard bind is
/// reached on loopback).
pub fn local_base(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// Whether this process runs inside AWS Lambda.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// The last hop of `X-Forwarded-For`: the address the trusted proxy saw. Only the last hop is
/// the proxy's own; every earlier one is whatever the client sent, so an unreadable last hop
/// yields nothing rather than falling back to a client-supplied value.
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()?;
    last.trim().parse().ok()
}

/// Runs `router` as a Lambda function or a local server, whichever this process is.
pub async fn serve(
    router: Router,
    bind: SocketAddr,
    proxies: TrustedProxies,
) -> Result<(), RuntimeError> {
    if is_lambda() {
        if !proxies.0.is_empty() {
            tracing::warn!(
                "HOOKLINE_TRUST_PROXY is ignored under Lambda: the source address is the Function \
                 URL's sourceIp"
            );
        }
        serve_lambda(router).await
    } else {
        serve_local(router, bind, proxies).await
    }
}

/// Any error of start-up, for `main` to print.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one platform's function for `bot`: logging, the shared configuration, the platform's
/// configuration (`config`, read before anything is opened, so a missing variable is named at
/// once), the store, then the platform's `router` under Lambda or on `HOOKLINE_BIND`.
pub async fn run_function<C>(
    name: &'static str,
    bot: crate::bot::SharedBot,
    config: impl FnOnce() -> Result<C, crate::config::ConfigError>,
    router: impl FnOnce(C, crate::pipeline::Deps) -> Router,
) -> Result<(), BoxError> {
    crate::telemetry::init();
    check_function(&crate::config::ProcessEnv, name)?;
    let shared = crate::config::SharedConfig::from_env()?;
    let config = config()?;
    let deps = crate::pipeline::Deps::open(&shared, bot).await?;
    serve(router(config, deps), shared.bind, shared.proxies).await?;
    Ok(())
}

/// Checks that `HOOKLINE_FUNCTION`, when set, names function `name`: the template sets it on
/// every function, so a binary deployed as the wrong function says so at start-up.
pub fn check_function(
    env: &dyn crate::config::Env,
    name: &'static str,
) -> Result<(), crate::config::ConfigError> {
    match crate::config::optional(env, "HOOKLINE_FUNCTION") {
        Some(set) if set != name => Err(crate::config::ConfigError::Invalid {
            name: "HOOKLINE_FUNCTION",
            reason: format!("this is the {name} function, not {set:?}"),
        }),
        _ => Ok(()),
    }
}

/// The caller's address of a Function URL (payload 2.0) event: `requestContext.http.sourceIp`
/// and nothing else.
pub fn lambda_source_ip(request: &lambda_http::Request) -> Option<IpAddr> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok())
        }
        _ => None,
    }
}

/// Runs under the Lambda runtime API.
pub async fn serve_lambda(router: Router) -> Result<(), RuntimeError> {
    let service = ServiceBuilder::new()
        .map_request(move |mut request: lambda_http::Request| {
            if let Some(ip) = lambda_source_ip(&request) {
                request.extensions_mut().insert(ClientIp(ip));
            }
            let context = request
                .lambda_context_ref()
                .map(|c| (c.deadline, c.request_id.clone()));
            if let Some((deadline, id)) = context {
                if let Ok(d) = i64::try_from(deadline) {
                    request.extensions_mut().insert(Deadline(d));
                }
                request.extensions_mut().insert(RequestId(id));
            }
            request
        })
        .service(instrument(router));
    lambda_http::run(service)
        .await
        .map_err(|e| RuntimeError::Stopped(e.to_string()))
}

/// Runs a local HTTP server until Ctrl-C or SIGTERM.
pub async fn serve_local(
    router: Router,
    bind: SocketAddr,
    proxies: TrustedProxies,
) -> Result<(), RuntimeError> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| RuntimeError::Bind { addr: bind, source })?;
    serve_listener(listener, router, proxies).await
}

/// Serves on an already bound listener (tests and `simulate` bind port 0).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    router: Router,
    proxies: TrustedProxies,
) -> Result<(), RuntimeError> {
    let proxies = std::sync::Arc::new(proxies);
    let app = instrument(router).layer(middleware::from_fn(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, mut request: Request, next: Next| {
            let ip = proxies.client_ip(peer.ip(), request.headers());
            request.extensions_mut().insert(ClientIp(ip));
            next.run(request)
        },
    ));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| RuntimeError::Stopped(e.to_string()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Runs a scheduled job: under Lambda once per invocation (the scheduler's event is ignored, the
/// job's JSON result is the invocation's result), elsewhere once, printing the result (for cron).
pub async fn run_scheduled<F, Fut, E>(job: F) -> Result<(), RuntimeError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<serde_json::Value, E>> + Send,
    E: std::fmt::Display,
{
    if !is_lambda() {
        let result = job()
            .await
            .map_err(|e| RuntimeError::Stopped(e.to_string()))?;
        println!("{result}");
        return Ok(());
    }
    let job = std::sync::Arc::new(job);
    let handler = lambda_http::service_fn(move |_: lambda_http::LambdaEvent<serde_json::Value>| {
        let job = std::sync::Arc::clone(&job);
        async move {
            // A failed run is an invocation error, so the scheduler's retry and alarms see it.
            job()
                .await
                .map_err(|e| lambda_http::Error::from(e.to_string()))
        }
    });
    lambda_http::lambda_runtime::run(handler)
        .await
        .map_err(|e| RuntimeError::Stopped(e.to_string()))
}

/// Runs deferred mode's worker function under the Lambda runtime API: each invocation is a
/// batch of SQS messages, answered with the partial batch failures.
pub async fn run_sqs_worker(worker: crate::queue::sqs::SqsWorker) -> Result<(), RuntimeError> {
    if !is_lambda() {
        return Err(RuntimeError::Stopped(
            "the worker function runs under Lambda (hookline serve has its own queue)".into(),
        ));
    }
    let worker = std::sync::Arc::new(worker);
    let handler = lambda_http::service_fn(
        move |event: lambda_http::LambdaEvent<crate::queue::sqs::SqsEvent>| {
            let worker = std::sync::Arc::clone(&worker);
            async move {
                let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let left = std::time::Duration::from_millis(
                    u64::try_from(deadline_ms - now_ms).unwrap_or(0),
                );
                let calls_end =
                    Instant::now() + left.saturating_sub(crate::pipeline::DEADLINE_RESERVE);
                Ok::<_, lambda_http::Error>(
                    worker
                        .handle(event.payload, deadline_ms, Some(calls_end))
                        .await,
                )
            }
        },
    );
    lambda_http::lambda_runtime::run(handler)
        .await
        .map_err(|e| RuntimeError::Stopped(e.to_string()))
}

/// Serves `router` on a free loopback port in the background; returns its base URL. For the
/// built-in emulators, tests and benchmarks.
pub async fn serve_on_loopback(router: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

/// One log line per request: method, path (never the query: it carries webhook tokens),
/// status, latency, and the error behind a failure. A webhook writes its own line instead
/// ([`crate::pipeline::Logged`]).
pub fn instrument(router: Router) -> Router {
    router.layer(middleware::from_fn(log_request))
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response
        .extensions()
        .get::<crate::pipeline::Logged>()
        .is_some()
    {
        return response;
    }
    let status = response.status();
    let ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3);
    match response.extensions().get::<ErrorDetail>() {
        Some(ErrorDetail(error)) if status.is_server_error() => {
            tracing::error!(%method, %path, status = status.as_u16(), %ms, %error, "request failed");
        }
        Some(ErrorDetail(error)) => {
            tracing::warn!(%method, %path, status = status.as_u16(), %ms, %error, "request rejected");
        }
        None => tracing::info!(%method, %path, status = status.as_u16(), %ms, "request"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies(vec!["127.0.0.0/8".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "192.0.2.7".parse().unwrap());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(local, &h),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            proxies.client_ip(stranger, &h),
            stranger,
            "not a proxy of ours"
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(mapped, &h),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(TrustedProxies::default().client_ip(local, &h), local);
        assert_eq!(proxies.client_ip(local, &HeaderMap::new()), local);
    }

    #[test]
    fn forwarded_for_takes_only_the_last_hop() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 10.0.0.1".parse().unwrap());
        h.append("x-forwarded-for", "garbage, 192.0.2.7".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
        let mut spoofed = HeaderMap::new();
        spoofed.append("x-forwarded-for", "192.0.2.7, not-an-ip".parse().unwrap());
        assert_eq!(
            forwarded_for(&spoofed),
            None,
            "never fall back to a client-supplied hop"
        );
    }
}
