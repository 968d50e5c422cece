//! A poll: `/poll Lunch? | pizza | sushi` posts the question with a button per option; a press
//! (or `/vote 2` where the platform has no buttons) records that user's vote, a second press
//! changes it, and `/results` counts. Each vote is one state item per user and poll, so
//! concurrent presses and redelivered events can never count a user twice.
//!
//! `cargo run --example poll -- serve`, or `-- simulate max "/poll Lunch? | pizza | sushi"`.

use hookline::bot::{BotResult, Ctx, Handlers};
use hookline::model::{Choice, Reply};
use serde::{Deserialize, Serialize};

/// The most options a poll takes.
const MAX_OPTIONS: usize = 10;

/// The chat's current poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Poll {
    id: String,
    question: String,
    options: Vec<String>,
}

fn bot() -> Handlers {
    Handlers::new()
        .command(
            "poll",
            "Start a poll: /poll Question? | option | option",
            start,
        )
        .command(
            "vote",
            "Vote where there are no buttons: /vote 2",
            vote_command,
        )
        .command("results", "Show the current poll's votes", results)
        .on_button(pressed)
        .on_text(label)
}

/// DingTalk's card buttons post their label as a message: a text that is an option of the
/// current poll is a vote for it.
async fn label(cx: Ctx) -> BotResult {
    let Some(poll) = cx.chat_state().get::<Poll>("poll").await? else {
        return Ok(Vec::new());
    };
    let Some(index) = poll
        .options
        .iter()
        .position(|o| o.eq_ignore_ascii_case(cx.text()))
    else {
        return Ok(Vec::new());
    };
    let text = record(&cx, None, &(index + 1).to_string()).await?;
    Ok(vec![Reply::text(text).mention_sender()])
}

fn one(text: impl Into<String>) -> BotResult {
    Ok(vec![Reply::text(text)])
}

async fn start(cx: Ctx) -> BotResult {
    let mut parts = cx
        .args()
        .split('|')
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let question = parts.next().unwrap_or_default().to_owned();
    let options: Vec<String> = parts.map(str::to_owned).collect();
    if question.is_empty() || options.len() < 2 || options.len() > MAX_OPTIONS {
        return one(format!(
            "Usage: /poll Question? | option | option (2 to {MAX_OPTIONS} options)"
        ));
    }
    // The event id names the poll: a redelivered /poll writes the same poll again.
    let poll = Poll {
        id: cx.event_id().to_string(),
        question,
        options,
    };
    cx.chat_state().put("poll", &poll, None).await?;
    let choices = poll
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| Choice::new(o.clone(), format!("vote:{}:{}", poll.id, i + 1)));
    let mut text = poll.question.clone();
    if !cx.platform().has_callback_buttons() {
        text.push_str("\n(vote with /vote N)");
    }
    Ok(vec![Reply::choices(text, choices)])
}

async fn pressed(cx: Ctx) -> BotResult {
    let payload = cx.button().unwrap_or_default();
    let Some((poll_id, n)) = payload
        .strip_prefix("vote:")
        .and_then(|rest| rest.rsplit_once(':'))
    else {
        return Ok(vec![Reply::notification("Unknown button.")]);
    };
    let text = record(&cx, Some(poll_id), n).await?;
    Ok(vec![Reply::notification(text)])
}

async fn vote_command(cx: Ctx) -> BotResult {
    let text = record(&cx, None, cx.args()).await?;
    Ok(vec![Reply::text(text).mention_sender()])
}

/// Records the sender's vote `n` (1-based) in the current poll, unless `poll_id` names an older
/// one. One item per user and poll: a second vote overwrites the first.
async fn record(
    cx: &Ctx,
    poll_id: Option<&str>,
    n: &str,
) -> Result<String, hookline::bot::BotError> {
    let state = cx.chat_state();
    let Some(poll) = state.get::<Poll>("poll").await? else {
        return Ok("There is no poll here. Start one with /poll.".into());
    };
    if poll_id.is_some_and(|id| id != poll.id) {
        return Ok("That poll is closed.".into());
    }
    let Some(index) = n
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|i| (1..=poll.options.len()).contains(i))
    else {
        return Ok(format!(
            "Vote with /vote 1 to /vote {}.",
            poll.options.len()
        ));
    };
    state
        .put(&format!("vote#{}#{}", poll.id, cx.sender()), &index, None)
        .await?;
    Ok(format!("Your vote: {}", poll.options[index - 1]))
}

async fn results(cx: Ctx) -> BotResult {
    let state = cx.chat_state();
    let Some(poll) = state.get::<Poll>("poll").await? else {
        return one("There is no poll here. Start one with /poll.");
    };
    let votes = state.list::<usize>(&format!("vote#{}#", poll.id)).await?;
    let mut counts = vec![0usize; poll.options.len()];
    for (_, index) in &votes {
        if let Some(c) = counts.get_mut(index.wrapping_sub(1)) {
            *c += 1;
        }
    }
    let mut out = format!("{} ({} votes)", poll.question, votes.len());
    for (option, count) in poll.options.iter().zip(&counts) {
        out.push_str(&format!("\n{option}: {count}"));
    }
    one(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline_server::main(std::sync::Arc::new(bot())).await
}

#[cfg(test)]
mod tests {
    use hookline::model::{Body, Platform};
    use hookline::testing::{Message, TestBot};

    use super::*;

    async fn say_on(t: &TestBot, on: Platform, text: &str) -> Vec<Reply> {
        t.send(Message::text(text).on(on)).await.unwrap()
    }

    async fn open_poll(t: &TestBot, on: Platform) -> Vec<Choice> {
        let replies = t
            .send(Message::text("/poll Lunch? | pizza | sushi").on(on))
            .await
            .unwrap();
        let Body::Choices { text, choices } = &replies[0].body else {
            panic!("{replies:?}")
        };
        assert!(text.starts_with("Lunch?"));
        assert_eq!(
            text.contains("/vote N"),
            !on.has_callback_buttons(),
            "{text}"
        );
        choices.clone()
    }

    #[tokio::test]
    async fn presses_count_once_per_user_and_a_second_press_changes_the_vote() {
        let t = TestBot::new(bot());
        let choices = open_poll(&t, Platform::TamTam).await;
        let press = |user: &str, i: usize| {
            Message::button(&choices[i].payload)
                .on(Platform::TamTam)
                .from_user(user, user)
        };
        let answer = t.send(press("ann", 0)).await.unwrap();
        assert_eq!(answer, vec![Reply::notification("Your vote: pizza")]);
        t.send(press("bob", 0)).await.unwrap();
        t.send(press("ann", 1)).await.unwrap();
        let results = say_on(&t, Platform::TamTam, "/results").await;
        assert_eq!(
            results[0].to_plain_text(),
            "Lunch? (2 votes)\npizza: 1\nsushi: 1"
        );
    }

    #[tokio::test]
    async fn concurrent_and_redelivered_presses_count_exactly_once() {
        let t = std::sync::Arc::new(TestBot::new(bot()));
        let choices = open_poll(&t, Platform::TamTam).await;
        let mut tasks = Vec::new();
        for user in 0..5 {
            for _ in 0..4 {
                let (t, payload) = (t.clone(), choices[user % 2].payload.clone());
                tasks.push(tokio::spawn(async move {
                    // The same event delivered four times at once.
                    let press = Message::button(&payload)
                        .on(Platform::TamTam)
                        .from_user(&format!("u{user}"), "U")
                        .with_event_id(&format!("press-{user}"));
                    t.send(press).await.unwrap()
                }));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        let results = say_on(&t, Platform::TamTam, "/results").await;
        assert_eq!(
            results[0].to_plain_text(),
            "Lunch? (5 votes)\npizza: 3\nsushi: 2"
        );
    }

    #[tokio::test]
    async fn without_buttons_users_vote_by_number() {
        let t = TestBot::new(bot());
        open_poll(&t, Platform::Tencent).await;
        let vote = |text: &str| Message::text(text).on(Platform::Tencent);
        let answer = t.send(vote("/vote 2")).await.unwrap();
        assert_eq!(answer[0].to_plain_text(), "Your vote: sushi");
        assert!(answer[0].mention_sender);
        let wrong = t.send(vote("/vote 7")).await.unwrap();
        assert_eq!(wrong[0].to_plain_text(), "Vote with /vote 1 to /vote 2.");
        let results = t.send(vote("/results")).await.unwrap();
        assert_eq!(
            results[0].to_plain_text(),
            "Lunch? (1 votes)\npizza: 0\nsushi: 1"
        );
    }

    #[tokio::test]
    async fn a_dingtalk_card_press_arrives_as_the_label_and_counts() {
        let t = TestBot::new(bot());
        open_poll(&t, Platform::DingTalk).await;
        let press = say_on(&t, Platform::DingTalk, "Sushi").await;
        assert_eq!(press[0].to_plain_text(), "Your vote: sushi");
        let chatter = say_on(&t, Platform::DingTalk, "lunch soon?").await;
        assert!(chatter.is_empty());
        let results = say_on(&t, Platform::DingTalk, "/results").await;
        assert_eq!(
            results[0].to_plain_text(),
            "Lunch? (1 votes)\npizza: 0\nsushi: 1"
        );
    }

    #[tokio::test]
    async fn a_new_poll_closes_the_old_ones_buttons() {
        let t = TestBot::new(bot());
        let old = open_poll(&t, Platform::TamTam).await;
        open_poll(&t, Platform::TamTam).await;
        let answer = t
            .send(Message::button(&old[0].payload).on(Platform::TamTam))
            .await
            .unwrap();
        assert_eq!(answer, vec![Reply::notification("That poll is closed.")]);
        assert_eq!(
            t.say("/poll only a question").await,
            "Usage: /poll Question? | option | option (2 to 10 options)"
        );
    }
}
