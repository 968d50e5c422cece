//! `hookline doctor`: reads the environment exactly as the functions do and reports, per
//! platform, what is configured, what is missing, and whether the credentials work against the
//! platform's API, without sending any chat message:
//! - Tailchat: a login (`POST /api/openapi/bot/login`);
//! - Tencent: `im_open_login_svc/account_check` of the admin and the chatbot, which Tencent
//!   answers only to a valid UserSig;
//! - DingTalk: a signed custom-robot request with a body DingTalk cannot post;
//! - TamTam: `GET /me`.
//!
//! The checks run on a scratch store, so a cached credential can neither hide a broken one nor
//! be replaced; the configured store is only read once, to see that it answers.

use std::sync::Arc;

use std::fmt;

use hookline::config::{ConfigError, Env, SharedConfig};
use hookline::error::HookError;
use hookline::pipeline::Deps;
use hookline::store::{Key, SharedStore, StoreError};
use hookline_dingtalk::DingTalkConfig;
use hookline_tailchat::{TailchatClient, TailchatConfig};
use hookline_tamtam::{TamTamClient, TamTamConfig};
use hookline_tencent::{TencentClient, TencentConfig};

/// How one finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Not configured at all: not a problem.
    Off,
    /// Works, but worth a look.
    Warn,
    /// Broken: the function would fail.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// `store`, or the platform.
    pub scope: &'static str,
    /// How it counts.
    pub status: Status,
    /// What was found (never a secret).
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Off => "off",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{:<9} {status:<5} {}", self.scope, self.text)
    }
}

/// The whole report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Every finding, in order.
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, scope: &'static str, status: Status, text: impl Into<String>) {
        self.findings.push(Finding {
            scope,
            status,
            text: text.into(),
        });
    }

    /// Whether the configuration would work: nothing failed and some platform is configured.
    pub fn healthy(&self) -> bool {
        let configured = self
            .findings
            .iter()
            .any(|f| f.scope != "store" && f.status != Status::Off);
        configured && self.findings.iter().all(|f| f.status != Status::Fail)
    }

    /// The machine-readable report (`doctor --json`): `healthy`, then every finding's `scope`,
    /// `status` (`ok`, `off`, `warn`, `fail`) and `text`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "healthy": self.healthy(), "findings": self.findings })
    }
}

/// The platform's configuration when it is complete and valid; otherwise reports it as not
/// configured (no variable set) or broken (some missing, or one invalid).
fn ready<C>(
    report: &mut Report,
    name: &'static str,
    vars: &[&'static str],
    missing: Vec<&'static str>,
    load: Result<C, ConfigError>,
) -> Option<C> {
    if missing.len() == vars.len() {
        report.add(
            name,
            Status::Off,
            format!("not configured (set {})", missing.join(", ")),
        );
        return None;
    }
    if !missing.is_empty() {
        report.add(
            name,
            Status::Fail,
            format!("missing {}", missing.join(", ")),
        );
        return None;
    }
    load.map_err(|e| report.add(name, Status::Fail, e.to_string()))
        .ok()
}

/// Runs every check against `env`.
pub async fn run(env: &dyn Env) -> Report {
    run_with_progress(env, &|_| {}).await
}

/// [`run`], calling `progress` with each check's scope before it starts (the checks call the
/// platforms' APIs, which can take seconds).
pub async fn run_with_progress(env: &dyn Env, progress: &(dyn Fn(&str) + Sync)) -> Report {
    let mut report = Report::default();
    progress("store");
    let configured = match SharedConfig::from_source(env) {
        Ok(shared) => store(&shared, &mut report).await,
        Err(e) => {
            report.add("store", Status::Fail, e.to_string());
            None
        }
    };
    let scratch = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            report.add("doctor", Status::Fail, format!("no scratch folder: {e}"));
            return report;
        }
    };
    let deps =
        match crate::app::scratch_deps(scratch.path(), Arc::new(hookline::bot::Handlers::new())) {
            Ok(deps) => deps,
            Err(e) => {
                report.add("doctor", Status::Fail, e);
                return report;
            }
        };
    progress("queue");
    queue(env, configured.as_ref(), &mut report).await;
    progress("tailchat");
    tailchat(env, &deps, &mut report).await;
    progress("tencent");
    tencent(env, &deps, &mut report).await;
    progress("dingtalk");
    dingtalk(env, &deps, configured, &mut report).await;
    progress("tamtam");
    tamtam(env, &deps, &mut report).await;
    progress("max");
    max(env, &deps, &mut report).await;
    report
}

/// Checks the configured store; returns it when it could be opened (not held by `serve`).
async fn store(shared: &SharedConfig, report: &mut Report) -> Option<SharedStore> {
    let what = match &shared.table {
        Some(table) => format!("DynamoDB table {table}"),
        None => format!(
            "embedded store {}",
            shared.data_dir.join("state.redb").display()
        ),
    };
    let probe = Key::new("hookline#doctor", "probe");
    let clock: hookline::clock::SharedClock = std::sync::Arc::new(hookline::clock::SystemClock);
    let (answer, opened) = match hookline::store::open(shared, clock).await {
        Ok(store) => (store.get(&probe).await, Some(store)),
        Err(e) => (Err(e), None),
    };
    match answer {
        // `serve` holds the file while it runs: the store is in use, which is fine.
        Err(StoreError::InUse(_)) => report.add(
            "store",
            Status::Ok,
            format!("{what} is held by a running process (hookline serve)"),
        ),
        Err(e) => report.add("store", Status::Fail, format!("{what}: {e}")),
        Ok(_) => report.add("store", Status::Ok, format!("{what} answers")),
    }
    opened
}

/// Deferred mode: events that failed every attempt (the store's dead-letter reports, the SQS
/// dead-letter queue of `HOOKLINE_DLQ_URL`) and `serve`'s queue.
async fn queue(env: &dyn Env, store: Option<&SharedStore>, report: &mut Report) {
    const NAME: &str = "queue";
    if let Some(store) = store {
        match hookline::idempotency::Idempotency::dead_letters(store).await {
            Ok(dead) if dead.is_empty() => {}
            Ok(dead) => {
                let last = dead.iter().max_by_key(|d| d.at_ms).unwrap_or(&dead[0]);
                report.add(
                    NAME,
                    Status::Warn,
                    format!(
                        "{} deferred event(s) failed every attempt and were dead-lettered (kept 14 \
                         days); the latest: {} event {}: {}",
                        dead.len(),
                        last.platform,
                        last.event_id,
                        hookline::model::truncate_bytes(&last.reason, 160)
                    ),
                );
            }
            Err(e) => report.add(NAME, Status::Fail, format!("cannot read dead letters: {e}")),
        }
        match store
            .query_prefix(hookline::queue::embedded::QUEUE_PARTITION, "")
            .await
        {
            Ok(jobs) if jobs.is_empty() => {}
            Ok(jobs) => report.add(
                NAME,
                Status::Ok,
                format!(
                    "{} deferred event(s) wait in serve's queue (answered when serve runs)",
                    jobs.len()
                ),
            ),
            Err(e) => report.add(NAME, Status::Fail, format!("cannot read the queue: {e}")),
        }
    }
    let Some(dlq) = hookline::config::optional(env, "HOOKLINE_DLQ_URL") else {
        return;
    };
    let client = hookline::queue::sqs::client_from_env().await;
    match hookline::queue::sqs::depth(&client, &dlq).await {
        Ok(0) => report.add(NAME, Status::Ok, "the dead-letter queue is empty"),
        Ok(n) => report.add(
            NAME,
            Status::Warn,
            format!(
                "{n} message(s) in the dead-letter queue: events that failed every attempt; \
                 fix the cause, then redrive them to the queue (SQS console, or \
                 aws sqs start-message-move-task)"
            ),
        ),
        Err(e) => report.add(
            NAME,
            Status::Fail,
            format!("cannot read the dead-letter queue (HOOKLINE_DLQ_URL): {e}"),
        ),
    }
}

fn api_failure(e: &HookError) -> String {
    match e {
        HookError::Platform(p) => format!("{}: {}", p.call, p.detail),
        other => other.to_string(),
    }
}

async fn tailchat(env: &dyn Env, deps: &Deps, report: &mut Report) {
    const NAME: &str = "tailchat";
    let Some(config) = ready(
        report,
        NAME,
        &hookline_tailchat::VARS,
        TailchatConfig::missing(env),
        TailchatConfig::from_source(env),
    ) else {
        return;
    };
    let what = format!("{} app {}", config.api_url, config.app_id);
    match TailchatClient::new(&config, deps).fresh_login().await {
        Ok(session) => report.add(
            NAME,
            Status::Ok,
            format!("{what}: login ok, bot user {}", session.user_id),
        ),
        Err(e) => report.add(NAME, Status::Fail, format!("{what}: {}", api_failure(&e))),
    }
}

async fn tencent(env: &dyn Env, deps: &Deps, report: &mut Report) {
    const NAME: &str = "tencent";
    let Some(config) = ready(
        report,
        NAME,
        &hookline_tencent::VARS,
        TencentConfig::missing(env),
        TencentConfig::from_source(env),
    ) else {
        return;
    };
    let what = format!("SDKAppID {} at {}", config.sdkappid, config.api_url);
    if config.callback_token.is_none() {
        report.add(
            NAME,
            Status::Warn,
            "TENCENT_ALLOW_UNSIGNED=1 and no TENCENT_CALLBACK_TOKEN: callbacks are checked by \
             SdkAppid only; enable callback authentication in the console and set the token",
        );
    }
    let client = TencentClient::new(&config, deps);
    match client
        .account_check(&[config.admin.as_str(), config.bot_id.as_str()])
        .await
    {
        Ok(accounts) => {
            let status_of = |id: &str| {
                accounts
                    .iter()
                    .find(|(a, _)| a == id)
                    .map_or("not reported", |(_, s)| s.as_str())
            };
            let bot = status_of(&config.bot_id);
            report.add(
                NAME,
                Status::Ok,
                format!(
                    "{what}: UserSig of {} accepted (account_check)",
                    config.admin
                ),
            );
            if bot != "Imported" {
                report.add(
                    NAME,
                    Status::Warn,
                    format!(
                        "chatbot {}: {bot}; create it with `hookline setup tencent --nick <name> --group <GroupId>`",
                        config.bot_id
                    ),
                );
            }
        }
        Err(e) => report.add(NAME, Status::Fail, format!("{what}: {}", api_failure(&e))),
    }
}

async fn dingtalk(
    env: &dyn Env,
    deps: &Deps,
    configured: Option<SharedStore>,
    report: &mut Report,
) {
    const NAME: &str = "dingtalk";
    let Some(config) = ready(
        report,
        NAME,
        &hookline_dingtalk::VARS,
        DingTalkConfig::missing(env),
        DingTalkConfig::from_source(env),
    ) else {
        return;
    };
    if config.allow_unsigned {
        report.add(
            NAME,
            Status::Warn,
            "DINGTALK_ALLOW_UNSIGNED=1: unsigned callbacks are accepted on robotCode alone",
        );
    }
    let what = format!(
        "robot {}, replies to {}",
        config.robot_code,
        config.session_hosts.join(", ")
    );
    let Some(sender) = hookline_dingtalk::sender(&config, deps) else {
        return report.add(
            NAME,
            Status::Ok,
            format!(
                "{what}; no custom robot (DINGTALK_WEBHOOK_TOKEN/SECRET), so nothing to ask \
                 DingTalk: the callback signature is checked when DingTalk calls"
            ),
        );
    };
    // Dead letters live in the configured store (not readable while `serve` holds it).
    let on_store = configured.map(|store| Deps {
        store,
        ..deps.clone()
    });
    if let Some(queue) = on_store.and_then(|d| hookline_dingtalk::sender(&config, &d)) {
        match queue.dead_letters().await {
            Ok(dead) if dead.is_empty() => {}
            Ok(dead) => report.add(
                NAME,
                Status::Warn,
                format!(
                    "{} queued notification(s) DingTalk refused for good are set aside as dead \
                     letters (kept 30 days); the oldest: {:?}, refused with: {}",
                    dead.len(),
                    hookline::model::truncate_bytes(&dead[0].notification.text, 80),
                    dead[0].reason
                ),
            ),
            Err(e) => report.add(NAME, Status::Fail, format!("cannot read dead letters: {e}")),
        }
    }
    let notify = if config.notify_token.is_some() {
        "notify endpoint on"
    } else {
        "notify endpoint off (DINGTALK_NOTIFY_TOKEN)"
    };
    match sender.probe().await {
        Ok(answer) => report.add(
            NAME,
            Status::Ok,
            format!(
                "{what}; custom robot at {}: {answer}; {notify}",
                config.api_url
            ),
        ),
        Err(e) => report.add(
            NAME,
            Status::Fail,
            format!(
                "{what}; custom robot at {}: {}",
                config.api_url,
                api_failure(&e)
            ),
        ),
    }
}

async fn tamtam(env: &dyn Env, deps: &Deps, report: &mut Report) {
    const NAME: &str = "tamtam";
    let Some(config) = ready(
        report,
        NAME,
        &hookline_tamtam::VARS,
        TamTamConfig::missing(env),
        TamTamConfig::from_source(env),
    ) else {
        return;
    };
    let what = format!(
        "{}, callers from {}",
        config.api_url,
        config
            .allowed_subnets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    match TamTamClient::new(&config, deps).me().await {
        Ok(me) => report.add(
            NAME,
            Status::Ok,
            format!(
                "{what}: GET /me ok, bot {} (@{}, id {})",
                me.name,
                me.username.as_deref().unwrap_or("-"),
                me.user_id
            ),
        ),
        Err(e) => report.add(NAME, Status::Fail, format!("{what}: {}", api_failure(&e))),
    }
}

/// MAX: the token (`GET /me`; a TLS failure names `MAX_CA_PEM`), then the subscription, which
/// MAX drops silently after 8 hours of failed deliveries: `MAX_WEBHOOK_URL`'s when set, any
/// otherwise.
async fn max(env: &dyn Env, deps: &Deps, report: &mut Report) {
    const NAME: &str = "max";
    let Some(config) = ready(
        report,
        NAME,
        &hookline_max::VARS,
        hookline_max::MaxConfig::missing(env),
        hookline_max::MaxConfig::from_source(env),
    ) else {
        return;
    };
    let callers = match &config.allowed_subnets {
        Some(nets) => nets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => "anywhere (MAX_ALLOWED_SUBNETS unset; sources are logged)".into(),
    };
    let roots = if config.ca_pem.is_some() {
        "default roots + MAX_CA_PEM"
    } else {
        "default roots"
    };
    let what = format!("{}, {roots}, callers from {callers}", config.api_url);
    let client = hookline_max::MaxClient::max(&config, deps);
    match client.me().await {
        Ok(me) => report.add(
            NAME,
            Status::Ok,
            format!(
                "{what}: GET /me ok, bot {} (@{}, id {})",
                me.first_name.as_deref().unwrap_or(&me.name),
                me.username.as_deref().unwrap_or("-"),
                me.user_id
            ),
        ),
        Err(e) => {
            report.add(NAME, Status::Fail, format!("{what}: {}", api_failure(&e)));
            return;
        }
    }
    let ours = hookline::config::optional(env, "MAX_WEBHOOK_URL");
    match (client.subscriptions().await, ours) {
        (Err(e), _) => report.add(NAME, Status::Fail, api_failure(&e)),
        (Ok(urls), Some(ours)) if urls.contains(&ours) => report.add(
            NAME,
            Status::Ok,
            format!("subscribed: {}", hookline::redact::redact_url(&ours)),
        ),
        (Ok(_), Some(ours)) => report.add(
            NAME,
            Status::Fail,
            format!(
                "{} is not subscribed (MAX drops a subscription after 8 hours of failed \
                 deliveries): run `hookline setup max --url <it>`; the scheduled max-resubscribe \
                 function does it hourly",
                hookline::redact::redact_url(&ours)
            ),
        ),
        // Which URL is ours is unknown without MAX_WEBHOOK_URL: worth a look, not a failure.
        (Ok(urls), None) if urls.is_empty() => report.add(
            NAME,
            Status::Warn,
            "no webhook subscription: MAX delivers nothing until `hookline setup max --url …` \
             (set MAX_WEBHOOK_URL to have it checked)",
        ),
        (Ok(urls), None) => report.add(
            NAME,
            Status::Ok,
            format!(
                "subscribed: {} (set MAX_WEBHOOK_URL to check that one is ours)",
                urls.iter()
                    .map(|u| hookline::redact::redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[tokio::test]
    async fn nothing_configured_is_not_healthy_and_partial_configuration_fails() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let env = HashMap::from([("HOOKLINE_DATA_DIR", data.as_str())]);
        let report = run(&env).await;
        assert!(!report.healthy());
        assert_eq!(
            report.findings[0].status,
            Status::Ok,
            "{:?}",
            report.findings
        );
        assert!(report.findings[1..].iter().all(|f| f.status == Status::Off));

        let env = HashMap::from([("HOOKLINE_DATA_DIR", data.as_str()), ("TAMTAM_TOKEN", "t")]);
        let report = run(&env).await;
        let tamtam = report
            .findings
            .iter()
            .find(|f| f.scope == "tamtam")
            .unwrap();
        assert_eq!(tamtam.status, Status::Fail);
        assert_eq!(tamtam.text, "missing TAMTAM_CALLBACK_TOKEN");
        assert!(!report.healthy());
    }
}
