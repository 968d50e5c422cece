//! The echo bot: what a fresh deployment answers. Echo, `/help`, `/remember`, `/notes`,
//! `/forget`, `/buttons`. Its notes are per-chat [`hookline::bot::State`].

use hookline::bot::{BotError, BotResult, Ctx, Handlers};
use hookline::model::{Choice, IncomingKind, Reply};

/// The most notes `/notes` lists.
pub const NOTES_SHOWN: usize = 10;
/// The most notes one chat keeps.
pub const NOTES_KEPT: usize = 100;
/// The longest note, in characters.
pub const NOTE_MAX_CHARS: usize = 1_000;

/// The echo bot.
pub fn bot() -> Handlers {
    Handlers::new()
        .command(
            "remember",
            "Keep a note for this chat: /remember <note>",
            remember,
        )
        .command("notes", "Show this chat's notes, newest first", notes)
        .command("forget", "Delete this chat's notes", forget)
        .command("buttons", "Show a question with two choices", buttons)
        .on_text(echo)
        .on_button(pressed)
        .on_start(hello)
        .on_unsupported(|cx: Ctx| async move {
            let IncomingKind::Unsupported(what) = cx.kind() else {
                return Ok(Vec::new());
            };
            Ok(vec![Reply::text(format!(
                "Sorry, I only understand text messages (this was a {what})."
            ))])
        })
}

fn one(text: impl Into<String>) -> BotResult {
    Ok(vec![Reply::text(text)])
}

async fn echo(cx: Ctx) -> BotResult {
    match cx.text() {
        "" => one("Hi! Send /help to see what I can do."),
        text => one(format!("Your message: {text}")),
    }
}

async fn pressed(cx: Ctx) -> BotResult {
    let payload = cx.button().unwrap_or_default();
    let choice = payload.strip_prefix("choice:").unwrap_or(payload);
    Ok(vec![Reply::notification(format!("You chose: {choice}"))])
}

async fn hello(cx: Ctx) -> BotResult {
    match cx.kind() {
        IncomingKind::Started(payload) => {
            let mut hello =
                String::from("Hello! I am a hookline bot. Send /help to see what I can do.");
            if let Some(p) = payload.as_deref().filter(|p| !p.is_empty()) {
                hello.push_str(&format!("\nYou came with: {p}"));
            }
            one(hello)
        }
        _ => one("Hello, everyone! Mention me with /help to see what I can do."),
    }
}

/// A note's key orders notes by time; the event id makes a redelivered `/remember` overwrite
/// its own note instead of adding a second.
fn note_key(cx: &Ctx) -> String {
    format!(
        "note#{:016}#{}",
        cx.incoming().sent_at_ms.max(0),
        cx.event_id()
    )
}

async fn remember(cx: Ctx) -> BotResult {
    if cx.args().is_empty() {
        return one("Usage: /remember <note>");
    }
    let state = cx.chat_state();
    if state.list::<String>("note#").await?.len() >= NOTES_KEPT {
        return one(format!(
            "This chat already has {NOTES_KEPT} notes; /forget them first."
        ));
    }
    let note: String = cx.args().chars().take(NOTE_MAX_CHARS).collect();
    state.put(&note_key(&cx), &note, None).await?;
    one("Noted.")
}

async fn notes(cx: Ctx) -> BotResult {
    let mut notes = cx.chat_state().list::<String>("note#").await?;
    if notes.is_empty() {
        return one("No notes yet. Add one with /remember <note>.");
    }
    notes.reverse();
    let mut out = String::from("Notes (newest first):");
    for (i, (_, note)) in notes.iter().take(NOTES_SHOWN).enumerate() {
        out.push_str(&format!("\n{}. {note}", i + 1));
    }
    one(out)
}

async fn forget(cx: Ctx) -> BotResult {
    let state = cx.chat_state();
    let notes = state.list::<String>("note#").await?;
    for (key, _) in &notes {
        state.delete(key).await?;
    }
    match notes.len() {
        0 => one("There were no notes."),
        1 => one("Forgot 1 note."),
        n => one(format!("Forgot {n} notes.")),
    }
}

async fn buttons(_: Ctx) -> Result<Vec<Reply>, BotError> {
    Ok(vec![Reply::choices(
        "Pick one:",
        [
            Choice::new("Yes", "choice:yes"),
            Choice::new("No", "choice:no"),
        ],
    )])
}

#[cfg(test)]
mod tests {
    use hookline::testing::{Message, TestBot};

    use super::*;

    #[tokio::test]
    async fn echoes_plain_text() {
        let t = TestBot::new(bot());
        assert_eq!(
            t.say("what time is it?").await,
            "Your message: what time is it?"
        );
        assert_eq!(t.say("  ").await, "Hi! Send /help to see what I can do.");
    }

    #[tokio::test]
    async fn help_lists_every_command() {
        let t = TestBot::new(bot());
        let help = t.say("/help").await;
        for c in ["/help", "/remember", "/notes", "/forget", "/buttons"] {
            assert!(help.contains(c), "{help}");
        }
        assert_eq!(t.say("/HELP@hookline_bot").await, help);
        assert_eq!(t.say("/start").await, help);
    }

    #[tokio::test]
    async fn notes_are_per_chat_newest_first_and_at_most_ten() {
        let t = TestBot::new(bot());
        assert_eq!(
            t.say("/notes").await,
            "No notes yet. Add one with /remember <note>."
        );
        assert_eq!(t.say("/remember").await, "Usage: /remember <note>");
        for i in 1..=12 {
            assert_eq!(t.say(&format!("/remember note {i}")).await, "Noted.");
        }
        let notes = t.say("/notes").await;
        let lines: Vec<&str> = notes.lines().collect();
        assert_eq!(lines[0], "Notes (newest first):");
        assert_eq!(lines[1], "1. note 12");
        assert_eq!(lines[10], "10. note 3");
        assert_eq!(lines.len(), 11);
        let other = t.send(Message::text("/notes").in_chat("c2")).await.unwrap();
        assert_eq!(
            other[0].to_plain_text(),
            "No notes yet. Add one with /remember <note>."
        );
        assert_eq!(t.say("/forget").await, "Forgot 12 notes.");
        assert_eq!(
            t.say("/notes").await,
            "No notes yet. Add one with /remember <note>."
        );
    }

    #[tokio::test]
    async fn a_redelivered_remember_keeps_one_note() {
        let t = TestBot::new(bot());
        let message = Message::text("/remember once")
            .with_event_id("same")
            .at_ms(hookline::testing::START_MS);
        t.send(message.clone()).await.unwrap();
        t.send(message).await.unwrap();
        assert_eq!(t.say("/notes").await, "Notes (newest first):\n1. once");
    }

    #[tokio::test]
    async fn buttons_offer_two_choices_and_presses_are_acknowledged() {
        let t = TestBot::new(bot());
        let replies = t.send(Message::text("/buttons")).await.unwrap();
        let hookline::model::Body::Choices { choices, .. } = &replies[0].body else {
            panic!("{replies:?}")
        };
        assert_eq!(choices.len(), 2);
        let answer = t.send(Message::button(&choices[0].payload)).await.unwrap();
        assert_eq!(answer, vec![Reply::notification("You chose: yes")]);
    }

    #[tokio::test]
    async fn unknown_commands_point_to_help_and_pictures_are_declined() {
        let t = TestBot::new(bot());
        assert_eq!(
            t.say("/frobnicate now").await,
            "Unknown command /frobnicate. Send /help for the list."
        );
        let picture = t.send(Message::unsupported("picture")).await.unwrap();
        assert_eq!(
            picture[0].to_plain_text(),
            "Sorry, I only understand text messages (this was a picture)."
        );
    }
}
