//! Reminders: `/remind 10m stretch` keeps a reminder for this chat with a TTL (it disappears a
//! day after it is due), and `/reminders` lists them, due ones first. Delivery at the due time
//! needs a timer on both runtimes (EventBridge Scheduler under Lambda, a task in `serve`); it is
//! out of scope here, so reminders are answered when asked.
//!
//! `cargo run --example remind -- serve`, or `-- simulate tailchat "/remind 10m stretch"`.

use std::time::Duration;

use hookline::bot::{BotResult, Ctx, Handlers};
use hookline::model::Reply;
use serde::{Deserialize, Serialize};

/// How long a due reminder is still listed.
const KEPT_AFTER_DUE: Duration = Duration::from_secs(24 * 3600);
/// The longest delay `/remind` takes: 30 days.
const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most reminders one chat keeps.
const MAX_PER_CHAT: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reminder {
    due_ms: i64,
    text: String,
    by: String,
}

fn bot() -> Handlers {
    Handlers::new()
        .command(
            "remind",
            "Keep a reminder: /remind 10m stretch (s, m, h, d)",
            remind,
        )
        .command("reminders", "List this chat's reminders", reminders)
}

/// `90s`, `10m`, `2h`, `1d`.
fn parse_delay(word: &str) -> Option<Duration> {
    let unit = word.chars().last()?;
    let n: u64 = word[..word.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs)).filter(|d| !d.is_zero() && *d <= MAX_DELAY)
}

fn human(ms: i64) -> String {
    let s = (ms.unsigned_abs() + 500) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

async fn remind(cx: Ctx) -> BotResult {
    let (when, text) = cx
        .args()
        .split_once(char::is_whitespace)
        .unwrap_or((cx.args(), ""));
    let (Some(delay), false) = (parse_delay(when), text.trim().is_empty()) else {
        return Ok(vec![Reply::text(
            "Usage: /remind 10m stretch (s, m, h or d; at most 30d)",
        )]);
    };
    let state = cx.chat_state();
    if state.list::<Reminder>("remind#").await?.len() >= MAX_PER_CHAT {
        return Ok(vec![Reply::text(format!(
            "This chat has {MAX_PER_CHAT} reminders already."
        ))]);
    }
    let due_ms =
        cx.incoming().sent_at_ms + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
    let reminder = Reminder {
        due_ms,
        text: text.trim().to_owned(),
        by: cx.sender_name().to_owned(),
    };
    // Keyed by due time and event: listed in due order, and a redelivery rewrites its own item.
    let key = format!("remind#{due_ms:016}#{}", cx.event_id());
    state
        .put(&key, &reminder, Some(delay + KEPT_AFTER_DUE))
        .await?;
    Ok(vec![Reply::text(format!(
        "I will remind you in {}: {}",
        human(due_ms - cx.now_ms()),
        reminder.text
    ))])
}

async fn reminders(cx: Ctx) -> BotResult {
    let all = cx.chat_state().list::<Reminder>("remind#").await?;
    if all.is_empty() {
        return Ok(vec![Reply::text(
            "No reminders. Add one with /remind 10m stretch.",
        )]);
    }
    let now = cx.now_ms();
    let mut out = String::from("Reminders:");
    for (_, r) in &all {
        let when = if r.due_ms <= now {
            format!("DUE {} ago", human(now - r.due_ms))
        } else {
            format!("in {}", human(r.due_ms - now))
        };
        out.push_str(&format!("\n- {when}: {} (from {})", r.text, r.by));
    }
    Ok(vec![Reply::text(out)])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline_server::main(std::sync::Arc::new(bot())).await
}

#[cfg(test)]
mod tests {
    use hookline::testing::TestBot;

    use super::*;

    #[test]
    fn delays_parse_in_four_units_and_are_bounded() {
        assert_eq!(parse_delay("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_delay("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_delay("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_delay("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_delay("31d"), None);
        assert_eq!(parse_delay("0m"), None);
        assert_eq!(parse_delay("ten"), None);
        assert_eq!(parse_delay("5"), None);
        assert_eq!(parse_delay("é"), None);
    }

    #[tokio::test]
    async fn reminders_are_listed_until_a_day_after_they_are_due() {
        let t = TestBot::new(bot());
        assert_eq!(
            t.say("/reminders").await,
            "No reminders. Add one with /remind 10m stretch."
        );
        assert_eq!(
            t.say("/remind 10m stretch").await,
            "I will remind you in 10m: stretch"
        );
        assert_eq!(
            t.say("/remind 2h drink water").await,
            "I will remind you in 2h0m: drink water"
        );
        assert_eq!(
            t.say("/reminders").await,
            "Reminders:\n- in 10m: stretch (from Test User)\n- in 2h0m: drink water (from Test User)"
        );
        t.clock().advance(Duration::from_secs(15 * 60));
        assert_eq!(
            t.say("/reminders").await,
            "Reminders:\n- DUE 5m ago: stretch (from Test User)\n- in 1h45m: drink water (from Test User)"
        );
        // The TTL: gone a day after due, for every store operation.
        t.clock().advance(Duration::from_secs(24 * 3600));
        assert_eq!(
            t.say("/reminders").await,
            "Reminders:\n- DUE 22h15m ago: drink water (from Test User)"
        );
        assert_eq!(
            t.say("/remind soon x").await,
            "Usage: /remind 10m stretch (s, m, h or d; at most 30d)"
        );
    }
}
