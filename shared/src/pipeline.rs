//! The one webhook pipeline every platform runs:
//! verify → decode → claim → bot → send → complete → ack.
//!
//! A platform contributes an [`Adapter`]; [`webhook`] turns it into an axum handler. "Accept"
//! (verify, decode, claim) is kept apart from "process" (bot, send, complete) so that a
//! queue between the two can be added without touching adapters.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::FutureExt as _;

use crate::bot::{BotError, Ctx, SharedBot};
use crate::clock::SharedClock;
use crate::error::{Disposition, HookError};
use crate::idempotency::{Claim, DEFAULT_IN_PROGRESS_TTL, DeadLetter, Idempotency, Start};
use crate::model::{Decoded, Inbound, Platform, Reply};
use crate::queue::{Attempt, Deferral, Job, Worked, Worker};
use crate::runtime::{ClientIp, Deadline, RequestId};
use crate::store::SharedStore;
use crate::telemetry::Outcome;

/// The largest webhook body accepted (Tailchat's own limit is 1 MB; no platform sends more).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A webhook request as received, before anything is parsed.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The headers.
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: Option<String>,
    /// The raw body.
    pub body: Bytes,
    /// The caller's address, from the Lambda context or the TCP peer.
    pub client_ip: Option<IpAddr>,
    /// The time the request was received (Unix ms).
    pub now_ms: i64,
}

impl RawRequest {
    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What a platform plugs into the pipeline.
pub trait Adapter: Send + Sync + 'static {
    /// What `send` needs beyond the neutral event. Serializable: a deferred event waits on a
    /// queue with it.
    type Context: Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static;

    /// The platform.
    fn platform(&self) -> Platform;

    /// The bot's identity within the platform, for namespacing store keys.
    fn bot_key(&self) -> &str;

    /// Authenticates the request. Pure: no state, no outbound call.
    fn verify(&self, request: &RawRequest) -> Result<(), HookError>;

    /// Parses the payload into an event or a reason to ignore it.
    fn decode(
        &self,
        request: &RawRequest,
    ) -> impl Future<Output = Result<Decoded<Inbound<Self::Context>>, HookError>> + Send;

    /// Delivers the bot's replies through the platform's API, adding one to `delivered` for
    /// every call that reached the chat, so that the pipeline never releases an event for a
    /// redelivery once part of its answer is out.
    fn send(
        &self,
        inbound: &Inbound<Self::Context>,
        replies: &[Reply],
        delivered: &mut usize,
    ) -> impl Future<Output = Result<(), HookError>> + Send;

    /// Shows that the bot is working on a deferred event ("typing…"), where the platform has
    /// such a signal. Best effort: a failure is logged, never retried.
    fn typing(
        &self,
        inbound: &Inbound<Self::Context>,
    ) -> impl Future<Output = Result<(), HookError>> + Send {
        let _ = inbound;
        async { Ok(()) }
    }

    /// Whether the platform redelivers an event answered with an error. Tailchat never does:
    /// a bot's "retry later" is then tried again in-process.
    fn redelivers(&self) -> bool {
        true
    }

    /// What to do with a failure after the claim. The default follows
    /// [`HookError::disposition`]; a platform that punishes error answers (TamTam retries every
    /// non-200 for 8 hours) can drop more.
    fn disposition(&self, error: &HookError) -> Disposition {
        error.disposition()
    }

    /// The platform's success answer.
    fn ack(&self) -> Response {
        axum::http::StatusCode::OK.into_response()
    }
}

/// Shared dependencies of every platform's pipeline.
#[derive(Clone)]
pub struct Deps {
    /// The state store.
    pub store: SharedStore,
    /// The clock.
    pub clock: SharedClock,
    /// The bot.
    pub bot: SharedBot,
    /// The outbound HTTP client.
    pub http: crate::http::HttpClient,
    /// Deferred mode: the queue (if any) and this process's workers.
    pub deferral: Deferral,
}

impl Deps {
    /// The production set: system clock, the configured store, `bot`, a fresh client.
    pub async fn open(
        config: &crate::config::SharedConfig,
        bot: SharedBot,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let mut deferral = Deferral::default();
        if let Some(url) = &config.queue_url {
            deferral.queue = Some(Arc::new(crate::queue::sqs::SqsQueue::from_env(url).await));
            deferral.every_event = true;
        }
        Ok(Self {
            store: crate::store::open(config, clock.clone()).await?,
            clock,
            bot,
            http: crate::http::HttpClient::new()?,
            deferral,
        })
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The pipeline of one platform.
pub struct Pipeline<A: Adapter> {
    adapter: A,
    deps: Deps,
    idempotency: Idempotency,
}

/// What the pipeline learnt of a webhook besides its outcome, for its log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The platform's event id, once decoded.
    pub event_id: Option<String>,
    /// Why it was ignored.
    pub reason: Option<String>,
}

/// The outcome of the accept half.
#[derive(Debug)]
pub enum Accepted<C> {
    /// Nothing for the bot.
    Ignored,
    /// A duplicate of an event already handled or queued.
    Duplicate,
    /// Claimed: process it.
    Claimed(Box<Inbound<C>>, crate::store::Key),
    /// Claimed for the queue: put it there.
    Queued(Box<Inbound<C>>, crate::store::Key),
}

impl<A: Adapter> Pipeline<A> {
    /// A pipeline.
    pub fn new(adapter: A, deps: Deps) -> Self {
        let idempotency = Idempotency::new(
            deps.store.clone(),
            deps.clock.clone(),
            adapter.platform(),
            adapter.bot_key(),
        );
        Self {
            adapter,
            deps,
            idempotency,
        }
    }

    /// The adapter.
    pub fn adapter(&self) -> &A {
        &self.adapter
    }

    /// Verify, decode, claim. What the webhook's log line says beyond its outcome goes to
    /// `seen`.
    pub async fn accept(
        &self,
        request: &RawRequest,
        in_progress_ttl: Duration,
        seen: &mut Seen,
    ) -> Result<Accepted<A::Context>, HookError> {
        self.adapter.verify(request)?;
        let mut inbound = match self.adapter.decode(request).await? {
            Decoded::Event(inbound) => inbound,
            Decoded::Ignored(reason) => {
                seen.reason = Some(reason.into_owned());
                return Ok(Accepted::Ignored);
            }
        };
        // The bot's escape hatch to the platform's payload (a reference count, not a copy).
        inbound.incoming.raw = request.body.clone();
        let event = &inbound.incoming.event_id;
        seen.event_id = Some(event.0.clone());
        let deferred = self.defers(&inbound.incoming);
        let claim = if deferred {
            self.idempotency
                .claim_queued(event, crate::queue::QUEUED_CLAIM_TTL)
                .await?
        } else {
            self.idempotency.claim(event, in_progress_ttl).await?
        };
        match claim {
            Claim::Acquired(key) if deferred => Ok(Accepted::Queued(Box::new(inbound), key)),
            Claim::Acquired(key) => Ok(Accepted::Claimed(Box::new(inbound), key)),
            Claim::Completed | Claim::Queued => Ok(Accepted::Duplicate),
            Claim::InProgress => Err(HookError::InProgress),
        }
    }

    /// Whether `incoming` goes to the queue: there is one, and every event is deferred or the
    /// bot defers this one (a panic in the bot's answer counts as "no").
    fn defers(&self, incoming: &crate::model::Incoming) -> bool {
        let deferral = &self.deps.deferral;
        deferral.queue.is_some()
            && (deferral.every_event
                || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.deps.bot.defers(incoming)
                }))
                .unwrap_or(false))
    }

    /// Puts a claimed event on the queue ([`Outcome::Deferred`]). Should the queue fail, the
    /// event is answered inline: late rather than lost.
    async fn enqueue(
        &self,
        inbound: Inbound<A::Context>,
        key: crate::store::Key,
    ) -> Result<Outcome, HookError> {
        let platform = self.adapter.platform();
        let event = inbound.incoming.event_id.clone();
        let queued = match (&self.deps.deferral.queue, serde_json::to_value(&inbound)) {
            (Some(queue), Ok(value)) => {
                let job = Job {
                    platform,
                    event_id: event.clone(),
                    claim: key.clone(),
                    inbound: value,
                };
                queue.enqueue(&job).await.map_err(|e| e.to_string())
            }
            (None, _) => Err("no queue".to_owned()),
            (_, Err(e)) => Err(e.to_string()),
        };
        match queued {
            Ok(()) => Ok(Outcome::Deferred),
            Err(why) => {
                tracing::warn!(%platform, %event, error = %why, "could not queue the event; answering it now");
                self.process(inbound, key).await
            }
        }
    }

    /// Bot, send, complete (or release).
    ///
    /// The claim is released (and the error returned, so the platform redelivers) only while
    /// nothing can have reached the chat. Once a reply went out, or may have, the event is never
    /// released: a redelivery would post it again. From then on a failure is logged with the
    /// event id and the platform gets its success answer, even when marking the event complete
    /// fails (its claim then expires on its own). A dropped failure is [`Outcome::Failed`].
    pub async fn process(
        &self,
        inbound: Inbound<A::Context>,
        key: crate::store::Key,
    ) -> Result<Outcome, HookError> {
        let result = self
            .execute(&inbound, &key, self.adapter.redelivers())
            .await;
        if result.is_err()
            && let Err(release) = self.idempotency.release(&key).await
        {
            // The claim expires on its own after the in-progress TTL.
            let platform = self.adapter.platform();
            let event = &inbound.incoming.event_id;
            tracing::error!(%platform, %event, error = %release, "could not release the claim");
        }
        result
    }

    /// Bot, send, complete. An error means "retry": nothing can have reached the chat, and the
    /// claim is left as it is for the caller to release (inline) or requeue (a worker).
    async fn execute(
        &self,
        inbound: &Inbound<A::Context>,
        key: &crate::store::Key,
        redelivered: bool,
    ) -> Result<Outcome, HookError> {
        let mut delivered = 0;
        let platform = self.adapter.platform();
        let mut outcome = Outcome::Answered;
        let result = async {
            let (replies, bot_failure) = self.run_bot(inbound, redelivered).await?;
            if let Some(kind) = bot_failure {
                outcome = Outcome::Failed(kind);
            }
            if replies.is_empty() {
                return Ok(());
            }
            let started = std::time::Instant::now();
            let sent = self.adapter.send(inbound, &replies, &mut delivered).await;
            crate::metrics::sent(
                platform.as_str(),
                delivered,
                started.elapsed(),
                sent.as_ref().err(),
            );
            sent
        }
        .await;
        let event = &inbound.incoming.event_id;
        if let Err(err) = &result {
            let disposition = match self.adapter.disposition(err) {
                Disposition::Retry if delivered == 0 => Disposition::Retry,
                // An earlier reply is out: a redelivery would repeat it.
                _ => Disposition::Drop,
            };
            if disposition == Disposition::Retry {
                return result.map(|()| outcome);
            }
            tracing::error!(
                %platform,
                %event,
                error = %err,
                delivered,
                "giving up on this event (a retry cannot help, or could post a reply twice)"
            );
            outcome = Outcome::Failed(err.kind());
        }
        if let Err(complete) = self.idempotency.complete(key).await {
            // Whatever was sent is out; an error answer would invite a redelivery and a second
            // reply. The claim keeps the event from being processed again until it expires.
            tracing::error!(%platform, %event, error = %complete, "could not mark the event complete");
        }
        Ok(outcome)
    }

    /// Runs the bot on one event, mapping its outcome to the retry rule: replies to send (its
    /// own, or those of [`BotError::Answer`]), nothing (a given-up event or a panic, logged, with
    /// its [`Outcome::Failed`] kind), or
    /// [`HookError::BotRetry`] for a redelivery. Where nothing redelivers (`redelivered` false:
    /// [`Adapter::redelivers`] inline, while a queue always does), a retry is tried again here
    /// until the deadline.
    async fn run_bot(
        &self,
        inbound: &Inbound<A::Context>,
        redelivered: bool,
    ) -> Result<(Vec<Reply>, Option<&'static str>), HookError> {
        let platform = self.adapter.platform();
        let event = &inbound.incoming.event_id;
        let started = std::time::Instant::now();
        let mut wait = BOT_RETRY_FIRST_WAIT;
        loop {
            let cx = Ctx::new(
                inbound.incoming.clone(),
                self.adapter.bot_key(),
                self.deps.store.clone(),
                self.deps.http.clone(),
                self.deps.clock.clone(),
            );
            let outcome = std::panic::AssertUnwindSafe(self.deps.bot.handle(cx))
                .catch_unwind()
                .await;
            let why = match outcome {
                Ok(Ok(replies)) | Ok(Err(BotError::Answer(replies))) => return Ok((replies, None)),
                Ok(Err(BotError::GiveUp(why))) => {
                    tracing::error!(%platform, %event, reason = %why, "the bot gave up on this event");
                    return Ok((Vec::new(), Some("bot_gave_up")));
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-text panic".to_owned());
                    tracing::error!(%platform, %event, panic = %message, "the bot panicked; the event is marked handled");
                    return Ok((Vec::new(), Some("bot_panic")));
                }
                Ok(Err(BotError::Retry(why))) => why,
            };
            if redelivered {
                return Err(HookError::BotRetry(why));
            }
            // Nothing would redeliver: try again while the invocation has time.
            let end = crate::http::current_deadline()
                .unwrap_or(started + BOT_RETRY_BUDGET)
                .min(started + BOT_RETRY_BUDGET);
            if std::time::Instant::now() + wait >= end {
                tracing::error!(%platform, %event, reason = %why, "the bot kept asking to retry and the platform never redelivers; giving up");
                return Ok((Vec::new(), Some("bot_retry_exhausted")));
            }
            tracing::warn!(%platform, %event, reason = %why, ?wait, "the bot asked to retry; trying again in-process");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BOT_RETRY_MAX_WAIT);
        }
    }

    /// The whole pipeline for one request. `deadline` (Unix ms) is the Lambda invocation's; the
    /// outbound calls' retry budget ends [`DEADLINE_RESERVE`] before it. The event's id (once
    /// decoded) and why it was ignored go to `seen`.
    pub async fn handle(
        &self,
        request: RawRequest,
        deadline: Option<i64>,
        seen: &mut Seen,
    ) -> Result<(Response, Outcome), HookError> {
        let Some(deadline) = deadline else {
            return self.run(request, DEFAULT_IN_PROGRESS_TTL, seen).await;
        };
        let left = Duration::from_millis(u64::try_from(deadline - request.now_ms).unwrap_or(0));
        let calls_end = std::time::Instant::now() + left.saturating_sub(DEADLINE_RESERVE);
        crate::http::with_deadline(calls_end, self.run(request, left, seen)).await
    }

    async fn run(
        &self,
        request: RawRequest,
        ttl: Duration,
        seen: &mut Seen,
    ) -> Result<(Response, Outcome), HookError> {
        let outcome = match self.accept(&request, ttl, seen).await? {
            Accepted::Ignored => Outcome::Ignored,
            Accepted::Duplicate => Outcome::Duplicate,
            Accepted::Claimed(inbound, key) => self.process(*inbound, key).await?,
            Accepted::Queued(inbound, key) => self.enqueue(*inbound, key).await?,
        };
        let mut ack = self.adapter.ack();
        if outcome == Outcome::Deferred {
            // For `hookline simulate`: the reply comes later (platforms ignore the header).
            ack.headers_mut()
                .insert(DEFERRED_HEADER, axum::http::HeaderValue::from_static("1"));
        }
        Ok((ack, outcome))
    }
}

#[async_trait::async_trait]
impl<A: Adapter> Worker for Pipeline<A> {
    /// One attempt at a queued event: take it (its claim RUNNING until the lease ends), signal
    /// "typing…", bot → send → complete. A retry puts it back in the queue's hands; the last
    /// attempt's failure dead-letters it.
    async fn work(&self, job: Job, attempt: Attempt) -> Worked {
        let platform = self.adapter.platform();
        let event = job.event_id.clone();
        let key = job.claim;
        let dead = |reason: String| {
            let (key, event) = (&key, &event);
            async move {
                let report = DeadLetter {
                    platform,
                    event_id: event.clone(),
                    at_ms: self.deps.clock.now_ms(),
                    reason: reason.clone(),
                };
                if let Err(e) = self.idempotency.dead(key, &report).await {
                    tracing::error!(%platform, %event, error = %e, "could not record the dead letter");
                }
                tracing::error!(%platform, %event, %reason, "dead-lettered after its last attempt");
                Worked::Dead(reason)
            }
        };
        let inbound: Inbound<A::Context> = match serde_json::from_value(job.inbound) {
            Ok(inbound) => inbound,
            Err(e) => return dead(format!("the queued event is unreadable: {e}")).await,
        };
        match self
            .idempotency
            .start(&key, attempt.lease_until_ms, attempt.take_over)
            .await
        {
            Ok(Start::Started) => {}
            Ok(Start::Completed) => {
                tracing::info!(%platform, event = %job.event_id, "duplicate delivery of an answered event");
                return Worked::Done;
            }
            Ok(Start::Busy) if attempt.last => {
                return dead("another worker held it at the last attempt".into()).await;
            }
            Ok(Start::Busy) => return Worked::Retry("another worker holds the event".into()),
            Err(e) if attempt.last => return dead(e.to_string()).await,
            Err(e) => return Worked::Retry(e.to_string()),
        }
        let typing = async {
            if let Err(e) = self.adapter.typing(&inbound).await {
                tracing::warn!(%platform, event = %job.event_id, error = %e, "could not signal typing");
            }
        };
        let (result, ()) = tokio::join!(self.execute(&inbound, &key, true), typing);
        let err = match result {
            Ok(outcome) => {
                tracing::info!(%platform, event = %job.event_id, %outcome, "worked a queued event");
                return Worked::Done;
            }
            Err(err) => err,
        };
        if attempt.last {
            return dead(err.to_string()).await;
        }
        if let Err(e) = self.idempotency.requeue(&key).await {
            // Its lease ends on its own; the next attempt takes it then.
            tracing::warn!(%platform, event = %job.event_id, error = %e, "could not put the claim back");
        }
        Worked::Retry(err.to_string())
    }
}

/// The header of a webhook answer whose event was deferred to the queue (its reply comes later).
pub const DEFERRED_HEADER: &str = "hookline-deferred";

/// The first wait before a bot's retry on a platform that never redelivers; doubled each time.
pub const BOT_RETRY_FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between a bot's in-process retries.
pub const BOT_RETRY_MAX_WAIT: Duration = Duration::from_secs(4);
/// How long a bot's retries may go on in-process when no deadline is set (`serve`).
pub const BOT_RETRY_BUDGET: Duration = Duration::from_secs(20);

/// What an invocation keeps of its time for recording the outcome and answering: outbound
/// calls stop this long before the Lambda deadline.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(2);

/// Runs one webhook through the pipeline and writes its one log line and its metrics; the
/// response carries [`Logged`] so that the request log does not repeat it.
async fn handle<A: Adapter>(
    State(pipeline): State<Arc<Pipeline<A>>>,
    client_ip: Option<Extension<ClientIp>>,
    deadline: Option<Extension<Deadline>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let cold_start = crate::telemetry::cold_start();
    let mut seen = Seen::default();
    let result = match body {
        Ok(body) => {
            let request = RawRequest {
                headers,
                query,
                body,
                client_ip: client_ip.map(|Extension(ClientIp(ip))| ip),
                now_ms: pipeline.deps.clock.now_ms(),
            };
            let deadline = deadline.map(|Extension(Deadline(d))| d);
            pipeline
                .handle(request, deadline, &mut seen)
                .await
                .map_err(|error| {
                    let outcome = Outcome::of_error(&error);
                    let text = error.to_string();
                    (error.into_response(), outcome, text)
                })
        }
        // Over MAX_BODY_BYTES (413), or a body that broke off.
        Err(rejection) => {
            let why = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "unreadable_body"
            };
            let text = rejection.body_text();
            Err((rejection.into_response(), Outcome::Rejected(why), text))
        }
    };
    let (mut response, outcome, error) = match result {
        Ok((response, outcome)) => (response, outcome, None),
        Err((response, outcome, text)) => (response, outcome, Some(text)),
    };
    let platform = pipeline.adapter.platform().as_str();
    let request_id = match request_id {
        Some(Extension(RequestId(id))) => id,
        None => RequestId::generate().0,
    };
    crate::telemetry::webhook_line(&crate::telemetry::Webhook {
        request_id: &request_id,
        platform,
        event_id: seen.event_id.as_deref(),
        reason: seen.reason.as_deref(),
        outcome,
        status: response.status().as_u16(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        cold_start,
        error: error.as_deref(),
    });
    crate::metrics::webhook(platform, outcome, cold_start);
    response.extensions_mut().insert(Logged);
    response
}

/// Marks a response whose request already has its log line.
#[derive(Debug, Clone, Copy)]
pub struct Logged;

/// A router with the adapter's webhook at `/` (POST), bodies capped at [`MAX_BODY_BYTES`].
/// The pipeline becomes this process's worker for the platform's queued events.
pub fn webhook<A: Adapter>(pipeline: Arc<Pipeline<A>>) -> Router {
    let worker: Arc<dyn Worker> = pipeline.clone();
    pipeline
        .deps
        .deferral
        .workers
        .register(pipeline.adapter.platform(), worker);
    Router::new()
        .route("/", post(handle::<A>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(pipeline)
}
