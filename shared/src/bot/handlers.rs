//! [`Handlers`]: a bot built from handlers, with commands declared once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Bot, BotResult, Command, CommandCall, Ctx, help_text};
use crate::model::{Incoming, IncomingKind, Reply};

type BoxFuture = Pin<Box<dyn Future<Output = BotResult> + Send>>;
type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;

fn boxed<F, Fut>(f: F) -> Handler
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BotResult> + Send + 'static,
{
    Arc::new(move |cx| Box::pin(f(cx)))
}

/// A bot built from handlers: commands declared once (name, description, handler) drive
/// routing, `/help` and TamTam's command menu.
///
/// Routing: a command goes to its handler (`/help` and `/start` to the generated help unless
/// declared; an unknown command gets a pointer to `/help`); other text to [`Handlers::on_text`];
/// a button press to [`Handlers::on_button`]; "started" and "added to chat" to
/// [`Handlers::on_start`] (default: a greeting naming `/help`); a picture or file to
/// [`Handlers::on_unsupported`]. An event without a handler gets no answer.
#[derive(Clone, Default)]
pub struct Handlers {
    commands: Vec<(Command, Handler)>,
    text: Option<Handler>,
    button: Option<Handler>,
    start: Option<Handler>,
    unsupported: Option<Handler>,
    /// Every event is slow ([`Handlers::slow`]).
    all_slow: bool,
    /// The commands declared with [`Handlers::slow_command`].
    slow_commands: Vec<String>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.commands.iter().map(|(c, _)| c.name.as_str()).collect();
        f.debug_struct("Handlers")
            .field("commands", &names)
            .finish_non_exhaustive()
    }
}

impl Handlers {
    /// No handlers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `/name`: its line in `/help` and the handler it routes to.
    #[must_use]
    pub fn command<F, Fut>(mut self, name: &str, description: &str, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.commands
            .push((Command::new(name, description), boxed(handler)));
        self
    }

    /// Declares a slow `/name` (a language model, a slow API): like [`Handlers::command`], and
    /// its events are answered from the queue (deferred mode) so the webhook is acknowledged at
    /// once.
    #[must_use]
    pub fn slow_command<F, Fut>(mut self, name: &str, description: &str, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.slow_commands.push(name.to_ascii_lowercase());
        self.command(name, description, handler)
    }

    /// Every event of this bot is answered from the queue (deferred mode).
    #[must_use]
    pub fn slow(mut self) -> Self {
        self.all_slow = true;
        self
    }

    /// Handles text that is not a command.
    #[must_use]
    pub fn on_text<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.text = Some(boxed(handler));
        self
    }

    /// Handles button presses ([`Ctx::button`] is the payload).
    #[must_use]
    pub fn on_button<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.button = Some(boxed(handler));
        self
    }

    /// Handles "a user started the bot" and "the bot was added to a chat".
    #[must_use]
    pub fn on_start<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.start = Some(boxed(handler));
        self
    }

    /// Handles messages the bot cannot read (pictures, files, voice).
    #[must_use]
    pub fn on_unsupported<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.unsupported = Some(boxed(handler));
        self
    }

    fn declared(&self, name: &str) -> Option<&Handler> {
        self.commands
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(_, h)| h)
    }

    /// `/help`'s text: every declared command, `/help` first unless declared.
    pub fn help(&self) -> String {
        help_text(&self.commands())
    }
}

#[async_trait]
impl Bot for Handlers {
    async fn handle(&self, cx: Ctx) -> BotResult {
        let handler = match cx.kind() {
            IncomingKind::Text(_) => match cx.command() {
                Some(call) => match self.declared(&call.name) {
                    Some(h) => Some(h),
                    None if matches!(call.name.as_str(), "help" | "start") => {
                        return Ok(vec![Reply::text(self.help())]);
                    }
                    None => {
                        return Ok(vec![Reply::text(format!(
                            "Unknown command /{}. Send /help for the list.",
                            call.name
                        ))]);
                    }
                },
                None => self.text.as_ref(),
            },
            IncomingKind::Callback(_) => self.button.as_ref(),
            IncomingKind::Started(_) | IncomingKind::AddedToChat => match &self.start {
                Some(h) => Some(h),
                None => {
                    return Ok(vec![Reply::text("Hello! Send /help to see what I can do.")]);
                }
            },
            IncomingKind::Unsupported(_) => self.unsupported.as_ref(),
        };
        match handler {
            Some(h) => h(cx).await,
            None => Ok(Vec::new()),
        }
    }

    fn defers(&self, incoming: &Incoming) -> bool {
        self.all_slow
            || match &incoming.kind {
                IncomingKind::Text(text) => CommandCall::parse(text)
                    .is_some_and(|call| self.slow_commands.contains(&call.name)),
                _ => false,
            }
    }

    fn commands(&self) -> Vec<Command> {
        let mut out = Vec::with_capacity(self.commands.len() + 1);
        if self.declared("help").is_none() {
            out.push(Command::new("help", "List the commands"));
        }
        out.extend(self.commands.iter().map(|(c, _)| c.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_declared_commands_once() {
        let bot = Handlers::new()
            .command("roll", "Roll dice", |_| async { Ok(vec![]) })
            .command("flip", "Flip a coin", |_| async { Ok(vec![]) });
        assert_eq!(
            bot.help(),
            "Commands:\n/help - List the commands\n/roll - Roll dice\n/flip - Flip a coin"
        );
        assert_eq!(bot.commands().len(), 3);
    }
}
