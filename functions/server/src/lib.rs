//! # hookline-server
//!
//! The `hookline` command as a library, for any bot: every platform in one process (`serve`), a
//! realistic webhook on demand (`simulate`), a configuration check (`doctor`), sample Lambda
//! events (`event`) and one-time platform set-up (`setup`). Under Lambda, the same binary runs
//! the function `HOOKLINE_FUNCTION` names, so a crate of one's own deploys one binary for every
//! function of the SAM template.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     hookline_server::main(std::sync::Arc::new(hookline::bot::Handlers::new())).await
//! }
//! ```

pub mod app;
pub mod doctor;
pub mod event;
pub mod metrics;
pub mod simulate;
pub mod testing;
pub mod worker;

use hookline::bot::SharedBot;

use std::collections::HashMap;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use hookline::clock::Clock;
use hookline::config::{ConfigError, Env, ProcessEnv, SharedConfig};
use hookline::pipeline::Deps;
use hookline::runtime::BoxError;

/// How `hookline` exits: 0 done, 1 a check failed (`doctor`, `simulate`) or the work failed, 2 a
/// usage or configuration error (clap's own usage errors exit 2 as well).
const EXIT_CODES: &str = "Exit status: 0 done; 1 a check failed (doctor, simulate) or the work \
failed (a platform API refused, a server was unreachable); 2 a usage or configuration error.";

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Serverless chat-bot webhooks, run locally",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A platform, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    /// Tailchat open-platform bots.
    Tailchat,
    /// Tencent Cloud Chat chatbots.
    Tencent,
    /// DingTalk robots.
    Dingtalk,
    /// MAX bots.
    Max,
    /// TamTam bots (closed by VK on 27 Feb 2026).
    Tamtam,
}

impl PlatformArg {
    /// The platform.
    pub fn platform(self) -> hookline::model::Platform {
        use hookline::model::Platform;
        match self {
            Self::Tailchat => Platform::Tailchat,
            Self::Tencent => Platform::Tencent,
            Self::Dingtalk => Platform::DingTalk,
            Self::Max => Platform::Max,
            Self::Tamtam => Platform::TamTam,
        }
    }

    /// Its lowercase name.
    pub fn as_str(self) -> &'static str {
        self.platform().as_str()
    }
}

/// The platforms' own variables: read from the environment only, never from flags, so that
/// secrets stay out of shell history and process lists.
fn platform_variables() -> String {
    let mut vars: Vec<&str> = Vec::new();
    vars.extend(hookline_tailchat::VARS);
    vars.extend(hookline_tencent::VARS);
    vars.extend(hookline_dingtalk::VARS);
    vars.extend(hookline_max::VARS);
    vars.extend(hookline_tamtam::VARS);
    format!(
        "Platform credentials come from the environment only (never flags, so that secrets stay \
         out of shell history): {} and the optional ones in the README's Configuration. \
         RUST_LOG filters the log.\n\n{EXIT_CODES}",
        vars.join(", ")
    )
}

/// Where the state lives (`serve`, `doctor`).
#[derive(clap::Args, Debug, Default)]
struct StoreArgs {
    /// The embedded store's folder [default: ./.hookline]
    #[arg(long, env = "HOOKLINE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<String>,
    /// Keep the state in this DynamoDB table instead of the embedded store
    #[arg(long, env = "HOOKLINE_TABLE", value_name = "TABLE")]
    table: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[arg(
        long,
        env = "HOOKLINE_BIND",
        value_name = "ADDR",
        help = format!("The address to listen on [default: {}]", hookline::config::DEFAULT_BIND)
    )]
    bind: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// 1 mounts the platform emulators for unconfigured platforms even off loopback; 0 never
    #[arg(long, env = "HOOKLINE_EMULATORS", value_name = "0|1")]
    emulators: Option<String>,
    #[arg(
        long,
        env = "HOOKLINE_WORKERS",
        value_name = "N",
        help = format!("Deferred events worked at once [default: {}]", hookline::queue::DEFAULT_WORKERS)
    )]
    workers: Option<String>,
    /// prometheus serves GET /metrics on --metrics-bind; emf writes EMF lines on stdout [default: off]
    #[arg(long, env = "HOOKLINE_METRICS", value_name = "prometheus|emf|off")]
    metrics: Option<String>,
    #[arg(
        long,
        env = "HOOKLINE_METRICS_BIND",
        value_name = "ADDR",
        help = format!("Where /metrics listens [default: {}, loopback]", metrics::DEFAULT_BIND)
    )]
    metrics_bind: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every configured platform under /<platform>.
    #[command(after_help = platform_variables())]
    Serve(ServeArgs),
    /// Send a realistic webhook and print the bot's reply. Exits 1 when the webhook is not
    /// answered 2xx or no reply arrives.
    #[command(after_help = platform_variables())]
    Simulate {
        /// The platform.
        platform: PlatformArg,
        /// What the user says to the bot.
        text: String,
        /// The base URL of a running `hookline serve` (default: an in-process one)
        #[arg(long, env = "HOOKLINE_URL")]
        url: Option<String>,
    },
    /// Check the configuration the functions would read, and each platform's credentials
    /// against its API (sends no chat message). Exits 1 if anything would fail.
    #[command(after_help = platform_variables())]
    Doctor {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the report as JSON (healthy, and each finding's scope, status and text)
        #[arg(long)]
        json: bool,
    },
    /// Print a sample Lambda event (the binary carries one per platform), re-stamped now and
    /// signed with the environment's secrets (for `cargo lambda invoke` and `sam local invoke`).
    Event {
        /// The platform.
        platform: PlatformArg,
        /// Re-stamp this event instead of the built-in sample
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// The time to stamp, in Unix seconds (default: now)
        #[arg(long)]
        at: Option<i64>,
    },
    /// One-time platform set-up through the platform's API.
    #[command(subcommand)]
    Setup(Setup),
    /// Print a completion script for a shell (e.g. `hookline completions bash > /etc/bash_completion.d/hookline`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum Setup {
    /// Subscribe the TamTam webhook and publish the bot's commands.
    #[command(after_help = platform_variables())]
    Tamtam {
        /// The public webhook URL (its `token=` is added when missing)
        #[arg(long, env = "TAMTAM_WEBHOOK_URL")]
        url: String,
        /// Remove every other subscription of the bot.
        #[arg(long)]
        remove_stale: bool,
    },
    /// Subscribe the MAX webhook (HTTPS on port 443 only) with MAX_WEBHOOK_SECRET, list the
    /// bot's other subscriptions, and publish its commands.
    #[command(after_help = platform_variables())]
    Max {
        /// The public webhook URL: https://, port 443 (MAX delivers nowhere else)
        #[arg(long, env = "MAX_WEBHOOK_URL")]
        url: String,
        /// Remove every other subscription of the bot.
        #[arg(long)]
        remove_stale: bool,
    },
    /// Create the chatbot account TENCENT_BOT_ID (idempotent) and add it to groups.
    #[command(after_help = platform_variables())]
    Tencent {
        /// The chatbot's display name.
        #[arg(long)]
        nick: String,
        /// A group to add the chatbot to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

/// The process environment with the command line's values on top: a flag wins over its
/// variable (clap has already read the variable when the flag is absent).
#[derive(Debug, Default)]
pub struct CliEnv(HashMap<&'static str, String>);

impl CliEnv {
    fn with(mut self, name: &'static str, value: Option<String>) -> Self {
        if let Some(value) = value {
            self.0.insert(name, value);
        }
        self
    }

    fn with_store(self, store: StoreArgs) -> Self {
        self.with("HOOKLINE_DATA_DIR", store.data_dir)
            .with("HOOKLINE_TABLE", store.table)
    }
}

impl Env for CliEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| ProcessEnv.var(name))
    }
}

/// A command's result that is not an error: done, or a check that failed (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Ok,
    CheckFailed,
}

/// The exit status of an error: 2 for a configuration error anywhere in its chain, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error
        .chain()
        .any(|e| e.downcast_ref::<ConfigError>().is_some())
    {
        2
    } else {
        1
    }
}

/// The Lambda functions one binary can be (`HOOKLINE_FUNCTION`), as the SAM template names them.
pub const FUNCTIONS: [&str; 8] = [
    "tailchat",
    "tencent",
    "tamtam",
    "max",
    "max-resubscribe",
    "dingtalk",
    "dingtalk-flush",
    "worker",
];

/// Runs the Lambda function `name` (one of [`FUNCTIONS`]) for `bot`.
pub async fn run_function(name: &str, bot: SharedBot) -> Result<(), BoxError> {
    match name {
        "tailchat" => hookline_tailchat::run(bot).await,
        "tencent" => hookline_tencent::run(bot).await,
        "tamtam" => hookline_tamtam::run(bot).await,
        "max" => hookline_max::run(bot).await,
        "max-resubscribe" => Ok(hookline_max::run_max_resubscribe().await?),
        "dingtalk" => hookline_dingtalk::run(bot).await,
        "dingtalk-flush" => Ok(hookline_dingtalk::run_flush().await?),
        "worker" => worker::run(bot).await,
        other => Err(format!(
            "HOOKLINE_FUNCTION={other:?} is not a function: use one of {}",
            FUNCTIONS.join(", ")
        )
        .into()),
    }
}

/// The whole `hookline` command for `bot`: parses the command line and runs it, printing an
/// error as `error: <what>: <cause>…` and exiting with 0, 1 or 2 (see `hookline --help`). Under
/// Lambda (`AWS_LAMBDA_RUNTIME_API` set) it runs the function `HOOKLINE_FUNCTION` names instead.
pub async fn main(bot: SharedBot) -> anyhow::Result<()> {
    if hookline::runtime::is_lambda() {
        let name = hookline::config::required(&ProcessEnv, "HOOKLINE_FUNCTION")?;
        return run_function(&name, bot)
            .await
            .map_err(anyhow::Error::from_boxed);
    }
    let cli = Cli::parse();
    // simulate prints its own result; its server's request log would only clutter it.
    hookline::telemetry::init_with_default(match cli.command {
        Command::Serve(_) | Command::Doctor { .. } => "info",
        _ => "warn",
    });
    match run(cli.command, bot).await {
        Ok(Done::Ok) => Ok(()),
        Ok(Done::CheckFailed) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(exit_code(&error))
        }
    }
}

async fn run(command: Command, bot: SharedBot) -> anyhow::Result<Done> {
    match command {
        Command::Serve(args) => {
            let env = CliEnv::default()
                .with("HOOKLINE_BIND", args.bind)
                .with("HOOKLINE_EMULATORS", args.emulators)
                .with("HOOKLINE_WORKERS", args.workers)
                .with("HOOKLINE_METRICS", args.metrics)
                .with("HOOKLINE_METRICS_BIND", args.metrics_bind)
                .with_store(args.store);
            serve(&env, bot).await.map(|()| Done::Ok)
        }
        Command::Doctor { store, json } => {
            let env = CliEnv::default().with_store(store);
            if !json {
                println!("hookline {} doctor", env!("CARGO_PKG_VERSION"));
            }
            let report = doctor::run_with_progress(&env, &|scope| {
                eprintln!("checking {scope}…");
            })
            .await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                for finding in &report.findings {
                    println!("{finding}");
                }
                if !report.healthy() {
                    println!("not ready: see FAIL above, or configure a platform");
                }
            }
            Ok(if report.healthy() {
                Done::Ok
            } else {
                Done::CheckFailed
            })
        }
        Command::Setup(Setup::Tencent { nick, groups }) => {
            setup_tencent(&nick, &groups).await.map(|()| Done::Ok)
        }
        Command::Setup(Setup::Tamtam { url, remove_stale }) => {
            setup_tamtam(&url, remove_stale, &bot)
                .await
                .map(|()| Done::Ok)
        }
        Command::Setup(Setup::Max { url, remove_stale }) => {
            setup_max(&url, remove_stale, &bot).await.map(|()| Done::Ok)
        }
        Command::Event { platform, file, at } => {
            let event = match file {
                Some(file) => {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", file.display()))?
                }
                None => event::sample(platform.as_str())?,
            };
            let at = at.unwrap_or_else(|| hookline::clock::SystemClock.now_s());
            let event = event::restamp(platform.as_str(), event, &ProcessEnv, at)?;
            println!("{}", serde_json::to_string_pretty(&event)?);
            Ok(Done::Ok)
        }
        Command::Simulate {
            platform,
            text,
            url,
        } => {
            let (out, answered) =
                simulate::run(&ProcessEnv, bot, platform.as_str(), &text, url).await?;
            println!("{out}");
            Ok(if answered {
                Done::Ok
            } else {
                Done::CheckFailed
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hookline",
                &mut std::io::stdout(),
            );
            Ok(Done::Ok)
        }
    }
}

async fn serve(env: &CliEnv, bot: SharedBot) -> anyhow::Result<()> {
    let shared = SharedConfig::from_source(env)?;
    let queue_config = hookline::queue::QueueConfig::from_source(env)?;
    if shared.queue_url.is_some() {
        tracing::warn!(
            "HOOKLINE_QUEUE_URL is for the Lambda functions; serve answers deferred events from its own queue"
        );
    }
    let mut shared_without_sqs = shared.clone();
    shared_without_sqs.queue_url = None;
    let deps = Deps::open(&shared_without_sqs, bot)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let (deps, queue) = app::with_queue(deps, &queue_config);
    let base = app::local_base(shared.bind);
    let store = match &shared.table {
        Some(table) => format!("DynamoDB table {table}"),
        None => format!("embedded {}", shared.data_dir.join("state.redb").display()),
    };
    let emulators = if app::emulators_wanted(env, shared.bind)? {
        app::Emulators::ForUnconfigured
    } else {
        app::Emulators::Off
    };
    let resubscriber = max_resubscriber(env, &deps);
    let app = app::build(env, deps, &base, emulators);
    queue.start().await?;
    eprintln!(
        "hookline {} on {base} (store: {store})",
        env!("CARGO_PKG_VERSION")
    );
    for status in &app.statuses {
        eprintln!("{status}");
    }
    if emulators == app::Emulators::Off {
        eprintln!(
            "  (no emulators: a platform is live or {} is not loopback; HOOKLINE_EMULATORS=1 adds them)",
            shared.bind
        );
    }
    // No timers under Lambda (the scheduled flush binary does it); here a loop flushes the
    // custom robots' queues as their budget returns.
    for sender in app.flushers.clone() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tick.tick().await;
                match sender.flush().await {
                    Ok(report) if report.digests > 0 => {
                        tracing::info!(?report, "flushed queued DingTalk messages")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "DingTalk flush failed; will retry"),
                }
            }
        });
    }
    // MAX drops a webhook subscription silently after 8 hours of failed deliveries (a server
    // that was down): with MAX_WEBHOOK_URL set, check it at start and every hour.
    if let Some((client, url, secret)) = resubscriber {
        eprintln!(
            "  max: keeping {} subscribed (checked hourly)",
            hookline::redact::redact_url(&url)
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAX_RESUBSCRIBE_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = hookline_max::ensure_subscribed(&client, &url, Some(&secret)).await
                {
                    tracing::warn!(error = %e, "MAX subscription check failed; will retry");
                }
            }
        });
    }
    match hookline::metrics::mode(env)? {
        hookline::metrics::Mode::Prometheus => {
            let addr = metrics::serve(metrics::bind(env)?).await?;
            eprintln!("  metrics: GET http://{addr}/metrics");
        }
        // Asked for by flag (the variable's EMF sink is installed with the log).
        hookline::metrics::Mode::Emf
            if hookline::metrics::mode(&ProcessEnv)? != hookline::metrics::Mode::Emf =>
        {
            hookline::metrics::init(env)?;
        }
        _ => {}
    }
    eprintln!("ready: GET {base}/healthz");
    hookline::runtime::serve_local(app.router, shared.bind, shared.proxies.clone()).await?;
    // Stopped (SIGTERM, Ctrl-C): the webhooks are answered; let the queue's events in flight
    // finish, leaving the rest stored for the next start.
    eprintln!("stopping: finishing the queued events in flight");
    queue.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// How often `serve` checks that MAX still delivers to `MAX_WEBHOOK_URL`.
pub const MAX_RESUBSCRIBE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The client, URL and secret of `serve`'s MAX subscription check: a live MAX bot with
/// `MAX_WEBHOOK_URL` set (a bad value is reported, and the check left out).
fn max_resubscriber(
    env: &dyn Env,
    deps: &Deps,
) -> Option<(hookline_max::MaxClient, String, hookline::secret::Secret)> {
    let url = hookline::config::optional(env, "MAX_WEBHOOK_URL")?;
    hookline::config::optional(env, "MAX_TOKEN")?;
    let checked = hookline_max::max_webhook_url(&url)
        .map_err(|e| format!("MAX_WEBHOOK_URL: {e}"))
        .and_then(|url| {
            hookline_max::MaxConfig::from_source(env)
                .map(|config| (config, url))
                .map_err(|e| e.to_string())
        });
    match checked {
        Ok((config, url)) => Some((
            hookline_max::MaxClient::max(&config, deps),
            url,
            config.webhook_secret().clone(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "no MAX subscription check");
            None
        }
    }
}

/// How long a stopping `serve` waits for the queued events in flight (Docker's and systemd's
/// stop timeouts are 10 s and 90 s; what is left runs after the next start).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// Dependencies for a one-time `setup` call: a scratch store, so that `setup` works beside a
/// running `serve` (which holds the embedded store); it caches nothing worth keeping.
fn setup_deps() -> anyhow::Result<(Deps, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let no_bot = std::sync::Arc::new(hookline::bot::Handlers::new());
    let deps = app::scratch_deps(dir.path(), no_bot).map_err(anyhow::Error::msg)?;
    Ok((deps, dir))
}

async fn setup_tencent(nick: &str, groups: &[String]) -> anyhow::Result<()> {
    // Setting up calls the REST API only: the callback token is the function's business.
    let config = hookline_tencent::TencentConfig::for_api_calls(&ProcessEnv)?;
    let (deps, _scratch) = setup_deps()?;
    let client = hookline_tencent::TencentClient::new(&config, &deps);
    eprintln!("creating chatbot {} ({nick})…", config.bot_id);
    client.create_robot(&config.bot_id, nick).await?;
    println!("chatbot {} ({nick}) exists", config.bot_id);
    for group in groups {
        eprintln!("adding it to group {group}…");
        client.add_group_member(group, &config.bot_id).await?;
        println!("chatbot {} is a member of {group}", config.bot_id);
    }
    Ok(())
}

async fn setup_tamtam(url: &str, remove_stale: bool, bot: &SharedBot) -> anyhow::Result<()> {
    let config = hookline_tamtam::TamTamConfig::from_env()?;
    let url = hookline_tamtam::setup::webhook_url(url, &config.callback_token)
        .map_err(|e| anyhow::anyhow!(e))?;
    let (deps, _scratch) = setup_deps()?;
    let client = hookline_tamtam::TamTamClient::new(&config, &deps);
    subscribe(&client, &url, None, remove_stale, bot).await
}

async fn setup_max(url: &str, remove_stale: bool, bot: &SharedBot) -> anyhow::Result<()> {
    // The URL first: a wrong one is refused before any variable or call matters.
    let url = hookline_max::max_webhook_url(url).map_err(|e| anyhow::anyhow!(e))?;
    let config = hookline_max::MaxConfig::from_env()?;
    let (deps, _scratch) = setup_deps()?;
    let client = hookline_max::MaxClient::max(&config, &deps);
    let secret = config.webhook_secret().clone();
    subscribe(&client, &url, Some(&secret), remove_stale, bot).await
}

async fn subscribe(
    client: &hookline_tamtam::TamTamClient,
    url: &str,
    secret: Option<&hookline::secret::Secret>,
    remove_stale: bool,
    bot: &SharedBot,
) -> anyhow::Result<()> {
    let declared = bot.commands();
    let commands: Vec<(&str, &str)> = declared
        .iter()
        .map(|c| (c.name.as_str(), c.description.as_str()))
        .collect();
    let report = hookline_tamtam::setup::setup_webhook_with_progress(
        client,
        url,
        secret,
        remove_stale,
        &commands,
        &|step| eprintln!("{step}…"),
    )
    .await?;
    for line in report {
        println!("{line}");
    }
    Ok(())
}
