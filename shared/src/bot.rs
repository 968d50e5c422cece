//! The bot: plain Rust from an [`Incoming`] and per-chat state to a list of [`Reply`]s.
//!
//! This is the one place a bot author edits. It sees no HTTP and no AWS types; its state is the
//! chat's notes through [`ChatState`]. Replace [`DefaultBot`] with your own [`Bot`].

use async_trait::async_trait;

use crate::model::{Choice, Incoming, IncomingKind, Platform, Reply};
use crate::store::{Key, SharedStore, StoreError};

/// A bot command, for platforms that list them (TamTam `PATCH /me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name without the slash.
    pub name: &'static str,
    /// One line of help.
    pub description: &'static str,
}

/// A bot.
#[async_trait]
pub trait Bot: Send + Sync {
    /// Answers one event.
    async fn handle(&self, incoming: &Incoming, chat: &ChatState)
    -> Result<Vec<Reply>, StoreError>;

    /// The commands the bot understands.
    fn commands(&self) -> Vec<Command> {
        Vec::new()
    }
}

/// The most notes `/notes` lists.
pub const NOTES_SHOWN: usize = 10;
/// The most notes one chat keeps.
pub const NOTES_KEPT: usize = 100;
/// The longest note, in characters.
pub const NOTE_MAX_CHARS: usize = 1_000;

/// What a bot may keep for one chat.
#[derive(Debug, Clone)]
pub struct ChatState {
    store: SharedStore,
    notes_pk: String,
}

impl ChatState {
    /// The state of `incoming`'s chat, namespaced by platform and bot.
    pub fn new(store: SharedStore, platform: Platform, bot: &str, incoming: &Incoming) -> Self {
        Self {
            store,
            notes_pk: format!("{platform}#{bot}#notes#{}", incoming.chat),
        }
    }

    /// Stores a note. The key derives from the event, so a redelivered event overwrites its own
    /// note instead of adding a second copy.
    pub async fn add_note(&self, incoming: &Incoming, note: &str) -> Result<(), StoreError> {
        let sk = format!("{:016}#{}", incoming.sent_at_ms.max(0), incoming.event_id);
        self.store
            .put(&Key::new(&self.notes_pk, sk), note, None)
            .await
    }

    /// The chat's notes, newest first.
    pub async fn notes(&self) -> Result<Vec<String>, StoreError> {
        let mut items = self.store.query_prefix(&self.notes_pk, "").await?;
        items.reverse();
        Ok(items.into_iter().map(|(_, item)| item.value).collect())
    }

    /// Deletes every note; returns how many there were.
    pub async fn forget(&self) -> Result<usize, StoreError> {
        let items = self.store.query_prefix(&self.notes_pk, "").await?;
        for (sk, _) in &items {
            self.store
                .delete(&Key::new(&self.notes_pk, sk.clone()))
                .await?;
        }
        Ok(items.len())
    }
}

/// What a fresh deployment answers: echo, `/help`, `/remember`, `/notes`, `/forget`, `/buttons`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultBot;

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        description: "List the commands",
    },
    Command {
        name: "remember",
        description: "Keep a note for this chat: /remember <note>",
    },
    Command {
        name: "notes",
        description: "Show this chat's notes, newest first",
    },
    Command {
        name: "forget",
        description: "Delete this chat's notes",
    },
    Command {
        name: "buttons",
        description: "Show a question with two choices",
    },
];

fn help() -> String {
    let mut out = String::from("Commands:");
    for c in COMMANDS {
        out.push_str(&format!("\n/{} - {}", c.name, c.description));
    }
    out
}

/// Splits `/cmd@botname rest` into (`cmd`, `rest`).
fn parse_command(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('/')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let name = word.split('@').next().unwrap_or_default().to_lowercase();
    (!name.is_empty()).then(|| (name, args.trim()))
}

#[async_trait]
impl Bot for DefaultBot {
    async fn handle(
        &self,
        incoming: &Incoming,
        chat: &ChatState,
    ) -> Result<Vec<Reply>, StoreError> {
        let text = match &incoming.kind {
            IncomingKind::Text(t) => t.trim(),
            IncomingKind::Callback(payload) => {
                let choice = payload.strip_prefix("choice:").unwrap_or(payload);
                return Ok(vec![Reply::Notification(format!("You chose: {choice}"))]);
            }
            IncomingKind::Started(payload) => {
                let mut hello =
                    String::from("Hello! I am a hookline bot. Send /help to see what I can do.");
                if let Some(p) = payload.as_deref().filter(|p| !p.is_empty()) {
                    hello.push_str(&format!("\nYou came with: {p}"));
                }
                return Ok(vec![Reply::Text(hello)]);
            }
            IncomingKind::AddedToChat => {
                return Ok(vec![Reply::Text(
                    "Hello, everyone! Mention me with /help to see what I can do.".into(),
                )]);
            }
            IncomingKind::Unsupported(what) => {
                return Ok(vec![Reply::Text(format!(
                    "Sorry, I only understand text messages (this was a {what})."
                ))]);
            }
        };
        let Some((command, args)) = parse_command(text) else {
            if text.is_empty() {
                return Ok(vec![Reply::Text(
                    "Hi! Send /help to see what I can do.".into(),
                )]);
            }
            return Ok(vec![Reply::Text(format!("Your message: {text}"))]);
        };
        let reply = match command.as_str() {
            "help" | "start" => help(),
            "remember" if args.is_empty() => "Usage: /remember <note>".to_owned(),
            "remember" => {
                if chat.notes().await?.len() >= NOTES_KEPT {
                    format!("This chat already has {NOTES_KEPT} notes; /forget them first.")
                } else {
                    let note: String = args.chars().take(NOTE_MAX_CHARS).collect();
                    chat.add_note(incoming, &note).await?;
                    "Noted.".to_owned()
                }
            }
            "notes" => {
                let notes = chat.notes().await?;
                if notes.is_empty() {
                    "No notes yet. Add one with /remember <note>.".to_owned()
                } else {
                    let mut out = String::from("Notes (newest first):");
                    for (i, n) in notes.iter().take(NOTES_SHOWN).enumerate() {
                        out.push_str(&format!("\n{}. {n}", i + 1));
                    }
                    out
                }
            }
            "forget" => match chat.forget().await? {
                0 => "There were no notes.".to_owned(),
                1 => "Forgot 1 note.".to_owned(),
                n => format!("Forgot {n} notes."),
            },
            "buttons" => {
                return Ok(vec![Reply::Choices {
                    text: "Pick one:".into(),
                    choices: vec![
                        Choice {
                            label: "Yes".into(),
                            payload: "choice:yes".into(),
                        },
                        Choice {
                            label: "No".into(),
                            payload: "choice:no".into(),
                        },
                    ],
                }]);
            }
            other => format!("Unknown command /{other}. Send /help for the list."),
        };
        Ok(vec![Reply::Text(reply)])
    }

    fn commands(&self) -> Vec<Command> {
        COMMANDS.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{ManualClock, SharedClock};
    use crate::model::{ChatId, EventId, UserId};
    use crate::store::EmbeddedStore;

    struct Fixture {
        store: SharedStore,
        _dir: tempfile::TempDir,
        n: std::sync::atomic::AtomicI64,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let clock: SharedClock = Arc::new(ManualClock::new(0));
            let store = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap());
            Self {
                store,
                _dir: dir,
                n: 0.into(),
            }
        }

        async fn say_in(&self, chat: &str, text: &str) -> Vec<Reply> {
            let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let incoming = Incoming {
                platform: Platform::Tailchat,
                event_id: EventId(format!("e{n}")),
                chat: ChatId::from(chat),
                sender: UserId::from("u"),
                sent_at_ms: 1_700_000_000_000 + n,
                kind: IncomingKind::Text(text.into()),
            };
            let state = ChatState::new(self.store.clone(), Platform::Tailchat, "bot", &incoming);
            DefaultBot.handle(&incoming, &state).await.unwrap()
        }

        async fn say(&self, text: &str) -> String {
            let replies = self.say_in("c1", text).await;
            assert_eq!(replies.len(), 1, "{replies:?}");
            replies[0].to_plain_text()
        }
    }

    #[tokio::test]
    async fn echoes_plain_text() {
        let f = Fixture::new();
        assert_eq!(
            f.say("what time is it?").await,
            "Your message: what time is it?"
        );
        assert_eq!(f.say("  ").await, "Hi! Send /help to see what I can do.");
    }

    #[tokio::test]
    async fn help_lists_every_command() {
        let f = Fixture::new();
        let help = f.say("/help").await;
        for c in ["/help", "/remember", "/notes", "/forget", "/buttons"] {
            assert!(help.contains(c), "{help}");
        }
        assert_eq!(f.say("/HELP@hookline_bot").await, help);
    }

    #[tokio::test]
    async fn notes_are_per_chat_newest_first_and_at_most_ten() {
        let f = Fixture::new();
        assert_eq!(
            f.say("/notes").await,
            "No notes yet. Add one with /remember <note>."
        );
        assert_eq!(f.say("/remember").await, "Usage: /remember <note>");
        for i in 1..=12 {
            assert_eq!(f.say(&format!("/remember note {i}")).await, "Noted.");
        }
        let notes = f.say("/notes").await;
        let lines: Vec<&str> = notes.lines().collect();
        assert_eq!(lines[0], "Notes (newest first):");
        assert_eq!(lines[1], "1. note 12");
        assert_eq!(lines[10], "10. note 3");
        assert_eq!(lines.len(), 11);
        let other = f.say_in("c2", "/notes").await;
        assert_eq!(
            other[0].to_plain_text(),
            "No notes yet. Add one with /remember <note>."
        );
        assert_eq!(f.say("/forget").await, "Forgot 12 notes.");
        assert_eq!(
            f.say("/notes").await,
            "No notes yet. Add one with /remember <note>."
        );
    }

    #[tokio::test]
    async fn buttons_offer_two_choices_and_callbacks_are_acknowledged() {
        let f = Fixture::new();
        let replies = f.say_in("c1", "/buttons").await;
        let Reply::Choices { choices, .. } = &replies[0] else {
            panic!("{replies:?}")
        };
        assert_eq!(choices.len(), 2);
        let incoming = Incoming {
            platform: Platform::TamTam,
            event_id: EventId::from("cb"),
            chat: ChatId::from("c"),
            sender: UserId::from("u"),
            sent_at_ms: 0,
            kind: IncomingKind::Callback(choices[0].payload.clone()),
        };
        let state = ChatState::new(f.store.clone(), Platform::TamTam, "bot", &incoming);
        let answer = DefaultBot.handle(&incoming, &state).await.unwrap();
        assert_eq!(answer, vec![Reply::Notification("You chose: yes".into())]);
    }

    #[tokio::test]
    async fn unknown_commands_point_to_help() {
        let f = Fixture::new();
        assert_eq!(
            f.say("/frobnicate now").await,
            "Unknown command /frobnicate. Send /help for the list."
        );
    }
}
