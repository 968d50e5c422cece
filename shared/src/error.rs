//! The one error type of the webhook path, and the only `IntoResponse` for errors.
//!
//! Every status code a platform sees is decided here, with the reason for each retry choice
//! beside it. The rule: a status that invites a retry is used only when a retry can succeed.
//! TamTam retries every non-200 for 8 hours, so a permanent failure is acknowledged (and logged)
//! instead of answered with an error.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::ConfigError;
use crate::store::StoreError;

/// Which platform call failed, and how.
#[derive(Debug, thiserror::Error)]
#[error("{platform} {call}: {detail}")]
pub struct PlatformError {
    /// The platform's name.
    pub platform: &'static str,
    /// The API call (`login`, `sendMessage`, …).
    pub call: &'static str,
    /// What kind of failure it was; decides whether a retry can help.
    pub kind: PlatformErrorKind,
    /// A human-readable explanation, naming the setting to fix where there is one. Never holds
    /// a secret.
    pub detail: String,
}

/// Kinds of platform failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformErrorKind {
    /// Our credentials were refused: a configuration problem.
    Auth,
    /// The bot may not do this (not a member of the group, muted, …).
    Permission,
    /// The platform rejected the request as invalid.
    Rejected,
    /// Throttled, and the retry budget ran out.
    RateLimited,
    /// The platform failed or could not be reached; a later retry may succeed.
    Unavailable,
    /// The platform answered something we cannot read.
    BadResponse,
    /// A non-idempotent request timed out or failed mid-way: it may have been carried out.
    /// Never retried, because a retry could post the same message twice.
    OutcomeUnknown,
}

impl PlatformError {
    /// A platform error.
    pub fn new(
        platform: &'static str,
        call: &'static str,
        kind: PlatformErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            platform,
            call,
            kind,
            detail: detail.into(),
        }
    }

    /// The error of a request that got no answer. Once an unsafe request may have reached the
    /// server (a timeout, a reset, a body that broke off), its outcome is unknown: it may have
    /// been carried out, and must not be retried or released. Only a request that never left
    /// (the connection was refused) is plainly unavailable.
    pub fn no_answer(
        platform: &'static str,
        call: &'static str,
        error: &crate::http::HttpError,
        idempotence: crate::http::Idempotence,
    ) -> Self {
        let kind = if error.sent && idempotence == crate::http::Idempotence::Unsafe {
            PlatformErrorKind::OutcomeUnknown
        } else {
            PlatformErrorKind::Unavailable
        };
        Self::new(platform, call, kind, error.to_string())
    }

    /// The kind of an HTTP 429 or 5xx answer, by the one retry rule (DESIGN.md): 429 and 503
    /// were not processed; any other 5xx may hide a processed request, so for a call the
    /// platform does not deduplicate its outcome is unknown.
    pub fn kind_of_status(status: u16, idempotence: crate::http::Idempotence) -> PlatformErrorKind {
        match status {
            429 => PlatformErrorKind::RateLimited,
            503 => PlatformErrorKind::Unavailable,
            500..=599 if idempotence == crate::http::Idempotence::Unsafe => {
                PlatformErrorKind::OutcomeUnknown
            }
            _ => PlatformErrorKind::Unavailable,
        }
    }

    /// Whether redelivering the webhook later could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            PlatformErrorKind::RateLimited | PlatformErrorKind::Unavailable
        )
    }
}

/// Everything that can go wrong while handling one webhook request.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The `?token=` secret in the webhook URL is missing or wrong.
    #[error("webhook token missing or wrong")]
    UnknownToken,
    /// A signature, timestamp or app id check failed.
    #[error("authentication failed: {0}")]
    Unauthenticated(&'static str),
    /// The caller's source address is not allowed.
    #[error("source address not allowed: {0}")]
    ForbiddenSource(String),
    /// The payload cannot be understood.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Another invocation is processing this same event right now.
    #[error("the same event is being processed by another invocation")]
    InProgress,
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A platform API call failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The function is misconfigured.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bot asked for a retry later ([`crate::bot::BotError::Retry`]).
    #[error("the bot asked to retry later: {0}")]
    BotRetry(String),
}

/// What the pipeline does with a failure after the event was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Release the claim and answer with an error status, so the platform's redelivery (or a
    /// user's retry) can succeed.
    Retry,
    /// Keep the event marked as handled and acknowledge it: retrying cannot help, and for TamTam
    /// every non-200 buys 8 hours of redeliveries. The error is logged.
    Drop,
}

/// Seconds a client should wait before redelivering after a transient failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

impl HookError {
    /// Whether a failure after the claim should be retried or dropped.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Platform(e) if !e.is_retryable() => Disposition::Drop,
            Self::Config(_) => Disposition::Drop,
            _ => Disposition::Retry,
        }
    }

    /// The error's kind as the webhook log line and the metrics name it: `unknown_token`,
    /// `unauthenticated`, `forbidden_source`, `malformed`, `in_progress`, `store`, `config`,
    /// `bot_retry`, or `platform_<kind>` (`platform_rate_limited`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownToken => "unknown_token",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::ForbiddenSource(_) => "forbidden_source",
            Self::Malformed(_) => "malformed",
            Self::InProgress => "in_progress",
            Self::Store(_) => "store",
            Self::Config(_) => "config",
            Self::BotRetry(_) => "bot_retry",
            Self::Platform(e) => match e.kind {
                PlatformErrorKind::Auth => "platform_auth",
                PlatformErrorKind::Permission => "platform_permission",
                PlatformErrorKind::Rejected => "platform_rejected",
                PlatformErrorKind::RateLimited => "platform_rate_limited",
                PlatformErrorKind::Unavailable => "platform_unavailable",
                PlatformErrorKind::BadResponse => "platform_bad_response",
                PlatformErrorKind::OutcomeUnknown => "platform_outcome_unknown",
            },
        }
    }

    /// The status code for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            // Reveal nothing to someone guessing webhook URLs.
            Self::UnknownToken => StatusCode::NOT_FOUND,
            // Not retryable by the platform: a forged or stale request stays forged.
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::ForbiddenSource(_) => StatusCode::FORBIDDEN,
            // Permanent; the same bytes will never parse.
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            // The first delivery may still fail and release its claim: ask for a redelivery
            // later rather than pretending this one was handled.
            Self::InProgress => StatusCode::CONFLICT,
            // Transient: the event was not processed, a redelivery can succeed.
            Self::Store(_) | Self::BotRetry(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Platform(e) if e.is_retryable() => StatusCode::BAD_GATEWAY,
            // Reached only when a caller does not apply `disposition` (e.g. during decode).
            Self::Platform(_) | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The error text for the logging middleware; `IntoResponse` does not log.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A generic body for authentication failures; a useful one where the caller is already
        // authenticated and can act on it.
        let body = match &self {
            Self::UnknownToken => "not found".to_owned(),
            Self::Unauthenticated(_) => "unauthorized".to_owned(),
            Self::ForbiddenSource(_) => "forbidden".to_owned(),
            Self::Malformed(why) => format!("malformed payload: {why}"),
            Self::InProgress => "this event is already being processed; retry later".to_owned(),
            _ => "temporarily unable to process this event".to_owned(),
        };
        let mut response = (status, body).into_response();
        if matches!(
            status,
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY
        ) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        response
            .extensions_mut()
            .insert(ErrorDetail(self.to_string()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(kind: PlatformErrorKind) -> HookError {
        HookError::Platform(PlatformError::new("tailchat", "sendMessage", kind, "x"))
    }

    #[test]
    fn permanent_platform_failures_are_dropped_and_transient_ones_retried() {
        assert_eq!(
            platform(PlatformErrorKind::Permission).disposition(),
            Disposition::Drop
        );
        assert_eq!(
            platform(PlatformErrorKind::Auth).disposition(),
            Disposition::Drop
        );
        assert_eq!(
            platform(PlatformErrorKind::OutcomeUnknown).disposition(),
            Disposition::Drop
        );
        assert_eq!(
            platform(PlatformErrorKind::Unavailable).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            platform(PlatformErrorKind::RateLimited).disposition(),
            Disposition::Retry
        );
        let store = HookError::Store(StoreError::Unavailable("down".into()));
        assert_eq!(store.disposition(), Disposition::Retry);
    }

    #[test]
    fn an_unsafe_request_that_may_have_arrived_is_never_retried() {
        use crate::http::{HttpError, Idempotence};
        let timeout = HttpError {
            method: "POST".into(),
            url: "u".into(),
            reason: "timed out".into(),
            timed_out: true,
            sent: true,
        };
        let reset = HttpError {
            timed_out: false,
            ..timeout.clone()
        };
        let refused = HttpError {
            timed_out: false,
            sent: false,
            ..timeout.clone()
        };
        let kind = |e: &HttpError, i| PlatformError::no_answer("p", "c", e, i).kind;
        assert_eq!(
            kind(&timeout, Idempotence::Unsafe),
            PlatformErrorKind::OutcomeUnknown
        );
        assert_eq!(
            kind(&timeout, Idempotence::Safe),
            PlatformErrorKind::Unavailable
        );
        assert_eq!(
            kind(&reset, Idempotence::Unsafe),
            PlatformErrorKind::OutcomeUnknown
        );
        assert_eq!(
            kind(&refused, Idempotence::Unsafe),
            PlatformErrorKind::Unavailable
        );
        assert_eq!(
            HookError::from(PlatformError::no_answer(
                "p",
                "c",
                &timeout,
                Idempotence::Unsafe
            ))
            .disposition(),
            Disposition::Drop
        );
    }

    #[test]
    fn statuses_of_unsafe_calls_are_unknown_unless_provably_unprocessed() {
        use crate::http::Idempotence::{Safe, Unsafe};
        use PlatformErrorKind::{OutcomeUnknown, RateLimited, Unavailable};
        let kind = PlatformError::kind_of_status;
        assert_eq!(kind(429, Unsafe), RateLimited);
        assert_eq!(kind(503, Unsafe), Unavailable);
        for status in [500, 502, 504] {
            assert_eq!(kind(status, Unsafe), OutcomeUnknown, "{status}");
            assert_eq!(kind(status, Safe), Unavailable, "{status}");
        }
    }

    #[test]
    fn statuses_follow_the_conventions() {
        assert_eq!(HookError::UnknownToken.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            HookError::Unauthenticated("sign").status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            HookError::ForbiddenSource("1.2.3.4".into()).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            HookError::Malformed("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(HookError::InProgress.status(), StatusCode::CONFLICT);
        assert_eq!(
            platform(PlatformErrorKind::Unavailable).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn retryable_answers_carry_retry_after_and_rejections_reveal_nothing() {
        let r = HookError::InProgress.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let r = HookError::Unauthenticated("bad sign for app 42").into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        assert!(
            r.extensions()
                .get::<ErrorDetail>()
                .is_some_and(|d| d.0.contains("bad sign"))
        );
    }
}
