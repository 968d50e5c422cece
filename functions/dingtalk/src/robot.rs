//! The custom robot sender: signed sends, a store-wide sliding-window budget, a pending queue,
//! and one markdown digest per flush. Nothing is dropped and nothing is sent over the limit.
//!
//! **Budget.** DingTalk allows 20 messages per minute per robot and throttles a robot that sends
//! more for 10 minutes; it does not say how it counts, and a fixed per-minute counter can send 40
//! messages in two seconds across a minute boundary. So the budget is a sliding window: 20 slot
//! items in the store, each taken with a conditional write (`put_if_absent`, so two Lambdas can
//! never take the same slot) and living at least 60 s. At most 20 slots are live at any
//! instant, hence at most 20 sends in any 60 s.
//!
//! **Over budget** a message goes to the pending queue (store items without expiry) and is
//! delivered later as part of one markdown digest by [`RobotSender::flush`], which the scheduled
//! `hookline-dingtalk-flush` Lambda and a timer in `hookline serve` run. A 130101 answer marks
//! the robot throttled for 10 minutes store-wide; messages keep queueing meanwhile.
//!
//! **Nothing wedges the queue.** A notification is at most [`MAX_ENTRY_BYTES`] (`/notify`
//! refuses longer ones; replies and older entries are cut with a marker), so every entry fits
//! one message. A digest DingTalk refuses for good (not a throttle, an outage or our
//! credentials) moves to a dead-letter partition, logged and listed by `hookline doctor`, and
//! the queue goes on. One flush at a time: the flush takes a lock with an owner token before it
//! reads the queue, checks it still owns it before every digest, never outlives it (its calls end
//! before the lock does) and releases only its own.

use std::collections::HashSet;
use std::time::Duration;

use hookline::clock::SharedClock;
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::http::{HttpClient, Idempotence};
use hookline::store::{Key, SharedStore, StoreError};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::CustomRobot;
use crate::event::{At, RobotMessage, RobotResult};
use crate::sign::robot_sign_param;

/// Sends per window.
pub const LIMIT: usize = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a robot stays throttled after a 130101.
pub const THROTTLE: Duration = Duration::from_secs(600);
/// A digest stays under this many bytes (DingTalk refuses messages over 20000).
pub const DIGEST_MAX_BYTES: usize = 18_000;
/// How long a flush holds its lock at most.
pub const FLUSH_LOCK: Duration = Duration::from_secs(30);
/// The longest notification (text and title, in bytes) one entry may be: one message with the
/// digest's heading stays well under DingTalk's 20000-byte limit (PLATFORMS.md §3.1).
pub const MAX_ENTRY_BYTES: usize = 16_000;
/// How long dead letters are kept.
pub const DEAD_LETTER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a notify `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// What `POST /notify` takes, and what the pending queue keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The message.
    pub text: String,
    /// A title (the notification preview of a markdown message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Send as markdown.
    #[serde(default)]
    pub markdown: bool,
    /// Whom to @.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<NotifyAt>,
}

/// `at` of a [`Notification`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyAt {
    /// DingTalk user ids.
    #[serde(default, rename = "userIds")]
    pub user_ids: Vec<String>,
    /// Mobile numbers.
    #[serde(default)]
    pub mobiles: Vec<String>,
    /// Everyone.
    #[serde(default)]
    pub all: bool,
}

impl Notification {
    fn at(&self) -> At {
        let at = self.at.clone().unwrap_or_default();
        At {
            at_mobiles: at.mobiles,
            at_user_ids: at.user_ids,
            is_at_all: at.all,
        }
    }

    /// The robot message for a direct send.
    pub fn to_message(&self) -> RobotMessage {
        if self.markdown {
            let title = self.title.clone().unwrap_or_else(|| {
                self.text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('#')
                    .trim()
                    .chars()
                    .take(64)
                    .collect()
            });
            RobotMessage::Markdown {
                title,
                text: self.text.clone(),
                at: self.at(),
            }
        } else {
            let content = match &self.title {
                Some(title) => format!("{title}\n{}", self.text),
                None => self.text.clone(),
            };
            RobotMessage::Text {
                content,
                at: self.at(),
            }
        }
    }

    fn digest_entry(&self) -> String {
        let entry = match &self.title {
            Some(title) => format!("**{title}**\n\n{}", self.text),
            None => self.text.clone(),
        };
        hookline::model::truncate_bytes(&entry, MAX_ENTRY_BYTES).into_owned()
    }

    /// Its size against [`MAX_ENTRY_BYTES`].
    pub fn size(&self) -> usize {
        self.text.len() + self.title.as_ref().map_or(0, String::len)
    }
}

/// A queued notification DingTalk refused for good, set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The notification.
    pub notification: Notification,
    /// DingTalk's answer.
    pub reason: String,
    /// When it was set aside (Unix ms).
    pub at_ms: i64,
}

/// The `timestamp` and `sign` headers of a request to `POST /flush`, signed with the custom
/// robot's secret the way DingTalk signs its callbacks. Whoever has the secret can already send
/// as the robot; a replay within the hour only flushes the queue again.
pub fn flush_request_headers(robot: &CustomRobot, now_ms: i64) -> [(&'static str, String); 2] {
    let ts = now_ms.to_string();
    let sign = crate::sign::sign(robot.secret.expose(), &ts);
    [("timestamp", ts), ("sign", sign)]
}

/// The result of [`RobotSender::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent now.
    Sent,
    /// Queued for the next digest.
    Queued,
}

/// What one [`RobotSender::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Digests sent.
    pub digests: usize,
    /// Messages they carried.
    pub delivered: usize,
    /// Messages refused for good and moved to the dead letters.
    pub dead: usize,
    /// Messages still queued.
    pub pending: usize,
}

fn error(call: &'static str, kind: PlatformErrorKind, detail: impl Into<String>) -> PlatformError {
    PlatformError::new("dingtalk", call, kind, detail)
}

/// Interprets a robot endpoint's `{errcode, errmsg}` (HTTP 200 even on failure; §3.1).
pub(crate) fn robot_result(
    call: &'static str,
    status: u16,
    body: &[u8],
    idempotence: Idempotence,
) -> Result<(), PlatformError> {
    if status == 429 || status >= 500 {
        // 429/503: not processed. Other 5xx: a robot send (no dedup) may be posted.
        return Err(error(
            call,
            PlatformError::kind_of_status(status, idempotence),
            format!("HTTP {status}"),
        ));
    }
    let result: RobotResult = serde_json::from_slice(body).map_err(|e| {
        error(
            call,
            PlatformErrorKind::BadResponse,
            format!("HTTP {status}, unreadable answer: {e}"),
        )
    })?;
    let (kind, hint) = match result.errcode {
        0 => return Ok(()),
        130_101 | 410_100 => (
            PlatformErrorKind::RateLimited,
            "the robot sent too fast and is throttled",
        ),
        310_000 => (
            PlatformErrorKind::Auth,
            "security check failed: check DINGTALK_WEBHOOK_SECRET, the robot's keywords or IP allow-list, and the server clock",
        ),
        300_001 if result.errmsg.contains("session") => {
            (PlatformErrorKind::Rejected, "the session webhook expired")
        }
        300_001 | 300_005 | 400_101 | 400_106 | 400_102 | 40_035 => (
            PlatformErrorKind::Auth,
            "the robot does not exist or is stopped: check DINGTALK_WEBHOOK_TOKEN",
        ),
        400_013 => (PlatformErrorKind::Rejected, "the group was dissolved"),
        -1 => (PlatformErrorKind::Unavailable, "DingTalk is busy"),
        _ => (
            PlatformErrorKind::Rejected,
            "see DingTalk's error code table",
        ),
    };
    Err(error(
        call,
        kind,
        format!("errcode {} ({}): {hint}", result.errcode, result.errmsg),
    ))
}

/// The sender of one custom robot.
#[derive(Debug)]
pub struct RobotSender {
    http: HttpClient,
    api_url: String,
    robot: CustomRobot,
    store: SharedStore,
    clock: SharedClock,
    ns: String,
}

impl RobotSender {
    /// A sender for `robot` at `api_url`, keeping its budget and queue in `store`.
    pub fn new(
        robot: CustomRobot,
        api_url: &str,
        http: HttpClient,
        store: SharedStore,
        clock: SharedClock,
    ) -> Self {
        let ns = format!("dingtalk#{}", robot.access_token.fingerprint());
        Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            robot,
            store,
            clock,
            ns,
        }
    }

    fn key(&self, part: &str, sk: impl Into<String>) -> Key {
        Key::new(format!("{}#{part}", self.ns), sk)
    }

    /// A freshly signed send URL: a new millisecond timestamp and sign for every request.
    pub fn signed_url(&self) -> String {
        let ts = self.clock.now_ms();
        let token: String =
            url::form_urlencoded::byte_serialize(self.robot.access_token.expose().as_bytes())
                .collect();
        format!(
            "{}/robot/send?access_token={token}&timestamp={ts}&sign={}",
            self.api_url,
            robot_sign_param(self.robot.secret.expose(), ts)
        )
    }

    /// Checks the headers of a `POST /flush` (see [`flush_request_headers`]).
    pub fn verify_flush_request(&self, timestamp: &str, sign: &str) -> Result<(), HookError> {
        crate::sign::verify_callback_sign(
            self.robot.secret.expose(),
            timestamp,
            sign,
            self.clock.now_ms(),
        )
    }

    /// Whether the robot is throttled store-wide.
    pub async fn throttled(&self) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&self.key("throttle", "until"))
            .await?
            .is_some())
    }

    async fn mark_throttled(&self) -> Result<(), StoreError> {
        let until = self.clock.now_s() + i64::try_from(THROTTLE.as_secs()).unwrap_or(600);
        tracing::warn!(
            until,
            "DingTalk throttled the robot (130101): holding every send for 10 minutes"
        );
        self.store
            .put(
                &self.key("throttle", "until"),
                &until.to_string(),
                Some(until),
            )
            .await
    }

    /// Takes one slot of the sliding window, unless all are taken or the robot is throttled.
    pub async fn take_slot(&self) -> Result<bool, StoreError> {
        if self.throttled().await? {
            return Ok(false);
        }
        let pk = format!("{}#budget", self.ns);
        let live: HashSet<String> = self
            .store
            .query_prefix(&pk, "slot#")
            .await?
            .into_iter()
            .map(|(sk, _)| sk)
            .collect();
        let mut free: Vec<String> = (0..LIMIT)
            .map(|i| format!("slot#{i:02}"))
            .filter(|s| !live.contains(s))
            .collect();
        free.shuffle(&mut rand::rng());
        // A slot lives until a whole second at least WINDOW after now: never less than 60 s.
        let expires = self.clock.now_ms().div_euclid(1000)
            + i64::try_from(WINDOW.as_secs()).unwrap_or(60)
            + 1;
        let taken_at = self.clock.now_ms().to_string();
        for slot in free {
            if self
                .store
                .put_if_absent(&Key::new(&pk, slot), &taken_at, Some(expires))
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks the custom robot's token and secret with a signed request DingTalk cannot turn
    /// into a message (an unknown `msgtype`), so nothing is posted. `Ok(answer)`: the token and
    /// signature passed (DingTalk refused the body, as intended, or is throttling the robot);
    /// `Err`: they did not, or DingTalk could not be asked. DingTalk does not document the order
    /// of its checks; the codes of a bad token or signature are those of [`robot_result`].
    pub async fn probe(&self) -> Result<String, HookError> {
        const CALL: &str = "robot_probe";
        let resp = self
            .http
            .post_json(
                &self.signed_url(),
                Default::default(),
                &serde_json::json!({"msgtype": "hookline_doctor_probe"}),
                Idempotence::Safe,
            )
            .await
            .map_err(|e| PlatformError::no_answer("dingtalk", CALL, &e, Idempotence::Safe))?;
        // 40035 ("缺少参数 json") is DingTalk's answer to a body it cannot use; the token is in
        // the URL, so here it cannot mean a missing access_token.
        let answer: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        if resp.status.is_success() && answer["errcode"] == 40_035 {
            return Ok(format!(
                "token and signature accepted (the empty probe was refused: {})",
                answer["errmsg"].as_str().unwrap_or_default()
            ));
        }
        match robot_result(CALL, resp.status.as_u16(), &resp.body, Idempotence::Safe) {
            Ok(()) => Ok("DingTalk accepted the probe".into()),
            Err(e) if e.kind == PlatformErrorKind::Auth => Err(e.into()),
            Err(e) if e.kind == PlatformErrorKind::RateLimited => {
                Ok(format!("token and signature accepted, but {}", e.detail))
            }
            Err(e) if e.kind == PlatformErrorKind::Rejected => Ok(format!(
                "token and signature accepted (the empty probe was refused: {})",
                e.detail
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One signed POST. A 130101 marks the robot throttled.
    async fn post(&self, message: &RobotMessage) -> Result<(), HookError> {
        // No dedup on DingTalk's side: never repeat after an ambiguous failure.
        let resp = self
            .http
            .post_json(
                &self.signed_url(),
                Default::default(),
                &message.to_json(),
                Idempotence::Unsafe,
            )
            .await
            .map_err(|e| {
                PlatformError::no_answer("dingtalk", "robot_send", &e, Idempotence::Unsafe)
            })?;
        match robot_result(
            "robot_send",
            resp.status.as_u16(),
            &resp.body,
            Idempotence::Unsafe,
        ) {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.kind == PlatformErrorKind::RateLimited {
                    self.mark_throttled().await?;
                }
                Err(e.into())
            }
        }
    }

    async fn enqueue(&self, notification: &Notification) -> Result<(), StoreError> {
        // Time, then this process's sequence (order within a millisecond), then a random part
        // (no collision between processes).
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let sk = format!(
            "{:016}#{:016x}#{:016x}",
            self.clock.now_ms().max(0),
            SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            rand::random::<u64>()
        );
        let value = serde_json::to_string(notification).map_err(|e| StoreError::Corrupt {
            key: sk.clone(),
            reason: e.to_string(),
        })?;
        self.store.put(&self.key("pending", sk), &value, None).await
    }

    async fn pending(&self) -> Result<Vec<(String, Notification)>, StoreError> {
        let pk = format!("{}#pending", self.ns);
        let mut out = Vec::new();
        for (sk, item) in self.store.query_prefix(&pk, "").await? {
            match serde_json::from_str(&item.value) {
                Ok(n) => out.push((sk, n)),
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        key: format!("{pk}/{sk}"),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Sends now if the budget allows and nothing is waiting; queues otherwise. Once the
    /// notification is queued the answer is [`Delivery::Queued`], whatever a flush then meets.
    pub async fn send(&self, notification: &Notification) -> Result<Delivery, HookError> {
        // Keep order: while older messages wait, a new one waits behind them.
        if !self.pending().await?.is_empty() {
            self.enqueue(notification).await?;
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "flush after queueing failed; the next one retries");
            }
            return Ok(Delivery::Queued);
        }
        if !self.take_slot().await? {
            self.enqueue(notification).await?;
            return Ok(Delivery::Queued);
        }
        match self.post(&notification.to_message()).await {
            Ok(()) => Ok(Delivery::Sent),
            Err(HookError::Platform(e))
                if matches!(
                    e.kind,
                    PlatformErrorKind::RateLimited | PlatformErrorKind::Unavailable
                ) =>
            {
                tracing::warn!(error = %e, "queued a message DingTalk did not take");
                self.enqueue(notification).await?;
                Ok(Delivery::Queued)
            }
            Err(e) => Err(e),
        }
    }

    /// [`Self::send`] at most once per `key` within [`IDEMPOTENCY_TTL`]: a repeat gets the
    /// first one's answer, and one still under way [`HookError::InProgress`].
    pub async fn send_once(
        &self,
        key: &str,
        notification: &Notification,
    ) -> Result<Delivery, HookError> {
        let record = self.key("notify", format!("idem#{key}"));
        let until = self.clock.now_s() + i64::try_from(IDEMPOTENCY_TTL.as_secs()).unwrap_or(86_400);
        if !self
            .store
            .put_if_absent(&record, "pending", Some(until))
            .await?
        {
            return match self.store.get(&record).await?.map(|i| i.value).as_deref() {
                Some("sent") => Ok(Delivery::Sent),
                Some("queued") => Ok(Delivery::Queued),
                _ => Err(HookError::InProgress),
            };
        }
        match self.send(notification).await {
            Ok(delivery) => {
                let done = match delivery {
                    Delivery::Sent => "sent",
                    Delivery::Queued => "queued",
                };
                if let Err(e) = self.store.put(&record, done, Some(until)).await {
                    tracing::error!(error = %e, "could not record the Idempotency-Key's outcome");
                }
                Ok(delivery)
            }
            // It may be in the group: a repeat must not post it again.
            Err(HookError::Platform(e)) if e.kind == PlatformErrorKind::OutcomeUnknown => {
                let _ = self.store.put(&record, "sent", Some(until)).await;
                Err(HookError::Platform(e))
            }
            Err(e) => {
                let _ = self.store.delete(&record).await;
                Err(e)
            }
        }
    }

    /// Delivers queued messages as markdown digests while the budget allows.
    pub async fn flush(&self) -> Result<FlushReport, HookError> {
        let report = self.flush_report().await?;
        hookline::metrics::dingtalk_flush(report.digests, report.pending);
        Ok(report)
    }

    async fn flush_report(&self) -> Result<FlushReport, HookError> {
        let mut report = FlushReport::default();
        let lock = self.key("flush", "lock");
        let owner = format!("{:032x}", rand::random::<u128>());
        let lock_until = self.clock.now_s() + i64::try_from(FLUSH_LOCK.as_secs()).unwrap_or(30);
        if !self
            .store
            .put_if_absent(&lock, &owner, Some(lock_until))
            .await?
        {
            report.pending = self.pending().await?.len();
            return Ok(report);
        }
        // No call of this flush outlives its lock: a flush that took longer could meet the next
        // lock holder's digests.
        let calls_end =
            std::time::Instant::now() + FLUSH_LOCK.saturating_sub(Duration::from_secs(5));
        let result =
            hookline::http::with_deadline(calls_end, self.flush_locked(&lock, &owner, &mut report))
                .await;
        if !self.store.delete_if(&lock, &owner).await? {
            tracing::warn!("the flush lock was lost before the flush ended; left to its owner");
        }
        result.map(|()| report)
    }

    async fn flush_locked(
        &self,
        lock: &Key,
        owner: &str,
        report: &mut FlushReport,
    ) -> Result<(), HookError> {
        let mut pending = self.pending().await?;
        while !pending.is_empty() {
            let held = self.store.get(lock).await?;
            if held.is_none_or(|i| i.value != owner) {
                tracing::warn!("the flush lock expired mid-flush; stopping");
                break;
            }
            if !self.take_slot().await? {
                break;
            }
            let (batch, message) = digest(&pending);
            match self.post(&message).await {
                Ok(()) => {
                    for (sk, _) in pending.drain(..batch) {
                        self.store.delete(&self.key("pending", sk)).await?;
                    }
                    report.digests += 1;
                    report.delivered += batch;
                }
                Err(HookError::Platform(e)) if e.is_retryable() => {
                    tracing::warn!(error = %e, "digest not delivered; will retry");
                    break;
                }
                // Our credentials: every digest would fail alike; keep the queue for the fix.
                Err(HookError::Platform(e)) if e.kind == PlatformErrorKind::Auth => {
                    report.pending = pending.len();
                    return Err(e.into());
                }
                // Refused for good (or maybe posted): set aside, so the queue goes on.
                Err(HookError::Platform(e)) => {
                    tracing::error!(error = %e, messages = batch, "digest refused; moved to the dead letters");
                    for (sk, notification) in pending.drain(..batch) {
                        self.bury(&sk, notification, &e.to_string()).await?;
                    }
                    report.dead += batch;
                }
                Err(e) => return Err(e),
            }
        }
        report.pending = pending.len();
        Ok(())
    }

    async fn bury(
        &self,
        sk: &str,
        notification: Notification,
        reason: &str,
    ) -> Result<(), StoreError> {
        let letter = DeadLetter {
            notification,
            reason: reason.to_owned(),
            at_ms: self.clock.now_ms(),
        };
        let value = serde_json::to_string(&letter).map_err(|e| StoreError::Corrupt {
            key: sk.to_owned(),
            reason: e.to_string(),
        })?;
        let until = self.clock.now_s() + i64::try_from(DEAD_LETTER_TTL.as_secs()).unwrap_or(0);
        self.store
            .put(&self.key("dead", sk), &value, Some(until))
            .await?;
        self.store.delete(&self.key("pending", sk)).await
    }

    /// The notifications DingTalk refused for good, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let pk = format!("{}#dead", self.ns);
        let mut out = Vec::new();
        for (sk, item) in self.store.query_prefix(&pk, "").await? {
            out.push(
                serde_json::from_str(&item.value).map_err(|e| StoreError::Corrupt {
                    key: format!("{pk}/{sk}"),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }
}

/// The digest of the oldest pending messages that fit: how many, and the markdown message.
fn digest(pending: &[(String, Notification)]) -> (usize, RobotMessage) {
    let mut at = At::default();
    let mut body = String::new();
    let mut count = 0;
    for (_, n) in pending {
        let entry = n.digest_entry();
        if count > 0 && body.len() + entry.len() + 8 > DIGEST_MAX_BYTES {
            break;
        }
        body.push_str("\n\n---\n\n");
        body.push_str(&entry);
        count += 1;
        let theirs = n.at();
        at.at_user_ids.extend(
            theirs
                .at_user_ids
                .into_iter()
                .filter(|u| !at.at_user_ids.contains(u))
                .collect::<Vec<_>>(),
        );
        at.at_mobiles.extend(
            theirs
                .at_mobiles
                .into_iter()
                .filter(|m| !at.at_mobiles.contains(m))
                .collect::<Vec<_>>(),
        );
        at.is_at_all |= theirs.is_at_all;
    }
    let title = format!(
        "{count} queued message{}",
        if count == 1 { "" } else { "s" }
    );
    let text = format!("#### {title} (held back by DingTalk's rate limit){body}");
    (count, RobotMessage::Markdown { title, text, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(text: &str) -> Notification {
        Notification {
            text: text.into(),
            title: None,
            markdown: false,
            at: None,
        }
    }

    fn digest_json(pending: &[Notification]) -> serde_json::Value {
        let keyed: Vec<(String, Notification)> = pending
            .iter()
            .cloned()
            .map(|n| (String::new(), n))
            .collect();
        digest(&keyed).1.to_json()
    }

    #[test]
    fn a_digest_holds_every_text_once_and_merges_mentions() {
        let mut a = note("disk full on db-1");
        a.at = Some(NotifyAt {
            user_ids: vec!["manager4021".into()],
            mobiles: vec![],
            all: false,
        });
        let mut b = note("backup done");
        b.title = Some("Backup".into());
        b.at = Some(NotifyAt {
            user_ids: vec!["manager4021".into()],
            mobiles: vec!["13800000000".into()],
            all: false,
        });
        let json = digest_json(&[a, b]);
        let text = json["markdown"]["text"].as_str().unwrap();
        assert_eq!(json["markdown"]["title"], "2 queued messages");
        assert_eq!(text.matches("disk full on db-1").count(), 1);
        assert!(text.contains("**Backup**\n\nbackup done"));
        assert_eq!(json["at"]["atUserIds"], serde_json::json!(["manager4021"]));
        assert_eq!(json["at"]["atMobiles"], serde_json::json!(["13800000000"]));
    }

    #[test]
    fn a_digest_stops_before_the_size_limit() {
        let big: Vec<(String, Notification)> = (0..10)
            .map(|i| (i.to_string(), note(&"x".repeat(5_000))))
            .collect();
        let (count, message) = digest(&big);
        assert_eq!(count, 3);
        assert!(message.to_json().to_string().len() < 20_000);
    }

    #[test]
    fn notifications_become_text_or_markdown() {
        let plain = Notification {
            text: "hi".into(),
            title: Some("T".into()),
            markdown: false,
            at: None,
        };
        assert_eq!(plain.to_message().to_json()["text"]["content"], "T\nhi");
        let md = Notification {
            text: "### Build #42\n- green".into(),
            title: None,
            markdown: true,
            at: None,
        };
        assert_eq!(md.to_message().to_json()["markdown"]["title"], "Build #42");
    }

    #[test]
    fn a_robot_send_that_may_have_been_posted_is_never_retried() {
        let kind = |status| {
            robot_result("x", status, b"", Idempotence::Unsafe)
                .unwrap_err()
                .kind
        };
        assert_eq!(kind(503), PlatformErrorKind::Unavailable);
        assert_eq!(kind(429), PlatformErrorKind::RateLimited);
        for status in [500, 502, 504] {
            assert_eq!(kind(status), PlatformErrorKind::OutcomeUnknown, "{status}");
        }
    }

    #[test]
    fn robot_errcodes_become_clear_errors() {
        assert!(
            robot_result(
                "x",
                200,
                br#"{"errcode":0,"errmsg":"ok"}"#,
                Idempotence::Unsafe
            )
            .is_ok()
        );
        let kind = |body: &[u8]| {
            robot_result("x", 200, body, Idempotence::Unsafe)
                .unwrap_err()
                .kind
        };
        assert_eq!(
            kind(br#"{"errcode":130101,"errmsg":"send too fast"}"#),
            PlatformErrorKind::RateLimited
        );
        assert_eq!(
            kind(br#"{"errcode":310000,"errmsg":"sign not match"}"#),
            PlatformErrorKind::Auth
        );
        assert_eq!(
            kind(r#"{"errcode":300001,"errmsg":"session 不存在"}"#.as_bytes()),
            PlatformErrorKind::Rejected
        );
        assert_eq!(
            kind(br#"{"errcode":-1,"errmsg":"busy"}"#),
            PlatformErrorKind::Unavailable
        );
        assert!(
            robot_result(
                "x",
                200,
                br#"{"errcode":310000,"errmsg":"sign not match"}"#,
                Idempotence::Unsafe
            )
            .unwrap_err()
            .detail
            .contains("DINGTALK_WEBHOOK_SECRET")
        );
    }
}
