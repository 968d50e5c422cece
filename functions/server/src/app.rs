//! Assembles every platform into one router for `serve` and `simulate`, deciding per platform
//! whether it is live, on the built-in emulator, or off for want of configuration.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hookline::config::{ConfigError, Env, flag, optional};
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use hookline_dingtalk::emulator::{
    DingTalkEmulator, EMULATOR_APP_SECRET as DINGTALK_APP_SECRET, EMULATOR_ROBOT_CODE,
    EMULATOR_ROBOT_SECRET, EMULATOR_ROBOT_TOKEN,
};
use hookline_dingtalk::robot::RobotSender;
use hookline_dingtalk::{
    CustomRobot, DEFAULT_SESSION_HOSTS, DingTalkConfig, VARS as DINGTALK_VARS,
};
use hookline_tailchat::emulator::{EMULATOR_APP_ID, EMULATOR_APP_SECRET, TailchatEmulator};
use hookline_tailchat::{TailchatConfig, VARS as TAILCHAT_VARS};
use hookline_tamtam::emulator::{EMULATOR_TOKEN as TAMTAM_EMULATOR_TOKEN, TamTamEmulator};
use hookline_tamtam::{
    MAX_VARS, MaxConfig, TamTamConfig, VARS as TAMTAM_VARS, default_subnets, parse_subnets,
};
use hookline_tencent::emulator::{
    EMULATOR_BOT_ID, EMULATOR_SDKAPPID, EMULATOR_SECRET_KEY, TencentEmulator,
};
use hookline_tencent::{TencentConfig, VARS as TENCENT_VARS};

/// The callback token of an emulated Tailchat when `TAILCHAT_CALLBACK_TOKEN` is unset. The
/// emulator is a local toy: this is not a secret.
pub const EMULATOR_TOKEN: &str = "emulator";

/// How one platform runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Talking to the real platform.
    Live,
    /// Talking to the built-in emulator.
    Emulator,
    /// Not mounted: these variables are missing.
    Missing(Vec<&'static str>),
    /// Not mounted: a variable is invalid.
    Invalid(String),
}

/// One line of the start-up report.
#[derive(Debug, Clone)]
pub struct PlatformStatus {
    /// The platform.
    pub name: &'static str,
    /// How it runs.
    pub mode: Mode,
    /// The URL to paste into the platform's console (secrets shown as placeholders).
    pub webhook: String,
    /// The variables that take it live.
    pub live_vars: &'static [&'static str],
}

impl fmt::Display for PlatformStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Mode::Live => write!(f, "  {:<9} LIVE      webhook {}", self.name, self.webhook),
            Mode::Emulator => write!(
                f,
                "  {:<9} EMULATOR  webhook {}\n{:<22}replies go to the built-in emulator at /_emulator/{}; set {} to go live",
                self.name,
                self.webhook,
                "",
                self.name,
                self.live_vars.join(", ")
            ),
            Mode::Missing(vars) => write!(
                f,
                "  {:<9} OFF       missing {}",
                self.name,
                vars.join(", ")
            ),
            Mode::Invalid(why) => write!(f, "  {:<9} OFF       {why}", self.name),
        }
    }
}

/// The assembled server.
#[derive(Debug)]
pub struct App {
    /// Every route.
    pub router: Router,
    /// What runs how.
    pub statuses: Vec<PlatformStatus>,
    /// Custom robot senders whose queues `serve` flushes on a timer.
    pub flushers: Vec<Arc<RobotSender>>,
}

use hookline::queue::QueueConfig;
use hookline::queue::embedded::EmbeddedQueue;
pub use hookline::runtime::local_base;

/// Dependencies on a throw-away embedded store in `dir` (simulations, doctor's checks).
pub fn scratch_deps(dir: &std::path::Path, bot: hookline::bot::SharedBot) -> Result<Deps, String> {
    let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
    let store = hookline::store::EmbeddedStore::open(&dir.join("state.redb"), clock.clone())
        .map_err(|e| e.to_string())?;
    Ok(Deps {
        store: Arc::new(store),
        clock,
        bot,
        http: hookline::http::HttpClient::new().map_err(|e| e.to_string())?,
        deferral: Default::default(),
    })
}

/// Gives `deps` `serve`'s durable queue (in its store, [`EmbeddedQueue`]) for the events the
/// bot defers. Start the queue once the platforms are built (they register its workers).
pub fn with_queue(mut deps: Deps, config: &QueueConfig) -> (Deps, EmbeddedQueue) {
    let queue = EmbeddedQueue::new(
        deps.store.clone(),
        deps.clock.clone(),
        deps.deferral.workers.clone(),
        config.clone(),
    );
    deps.deferral.queue = Some(Arc::new(queue.clone()));
    (deps, queue)
}

/// The variable whose presence takes each platform live (the rest of its configuration is then
/// required).
pub const LIVE_MARKERS: [&str; 4] = [
    "TAILCHAT_URL",
    "TENCENT_SDKAPPID",
    "TAMTAM_TOKEN",
    "DINGTALK_APP_SECRET",
];

/// Whether `serve` mounts the built-in emulators for unconfigured platforms. Their credentials
/// are public, so they are a local toy: only while no platform is live and `serve` listens on
/// loopback alone, unless `HOOKLINE_EMULATORS=1` asks for them anyway (`0` refuses them).
pub fn emulators_wanted(env: &dyn Env, bind: SocketAddr) -> Result<bool, ConfigError> {
    if optional(env, "HOOKLINE_EMULATORS").is_some() {
        return flag(env, "HOOKLINE_EMULATORS");
    }
    let any_live = LIVE_MARKERS.iter().any(|v| optional(env, v).is_some());
    Ok(!any_live && bind.ip().is_loopback())
}

/// How `build` treats platforms without live configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulators {
    /// Off: not mounted.
    Off,
    /// The emulator for each unconfigured platform.
    ForUnconfigured,
    /// The emulator for every platform, live credentials ignored (`simulate`).
    ForAll,
}

/// One platform's part of the server, before mounting.
struct Part {
    name: &'static str,
    live_vars: &'static [&'static str],
    webhook: String,
    /// The webhook router and its mode, or why it cannot run.
    outcome: Result<(Router, Mode), ConfigError>,
    missing: Vec<&'static str>,
    emulator: Option<Router>,
    flusher: Option<Arc<RobotSender>>,
}

impl App {
    fn mount(&mut self, part: Part) {
        if let Some(emulator) = part.emulator {
            self.router = std::mem::take(&mut self.router)
                .nest(&format!("/_emulator/{}", part.name), emulator);
        }
        if part.outcome.is_ok() {
            self.flushers.extend(part.flusher);
        }
        let mode = match part.outcome {
            Ok((webhook, mode)) => {
                self.router =
                    std::mem::take(&mut self.router).nest(&format!("/{}", part.name), webhook);
                mode
            }
            Err(ConfigError::Missing(_)) => Mode::Missing(part.missing),
            Err(e) => Mode::Invalid(e.to_string()),
        };
        self.statuses.push(PlatformStatus {
            name: part.name,
            mode,
            webhook: part.webhook,
            live_vars: part.live_vars,
        });
    }
}

/// The callback token a simulated Tailchat callback carries (what `build` configures).
pub fn tailchat_token(env: &dyn Env) -> String {
    optional(env, "TAILCHAT_CALLBACK_TOKEN").unwrap_or_else(|| EMULATOR_TOKEN.to_owned())
}

fn tailchat(env: &dyn Env, deps: &Deps, base: &str, emulators: Emulators) -> Part {
    let live = emulators != Emulators::ForAll && optional(env, "TAILCHAT_URL").is_some();
    let shown = if live || optional(env, "TAILCHAT_CALLBACK_TOKEN").is_some() {
        "<TAILCHAT_CALLBACK_TOKEN>".to_owned()
    } else {
        EMULATOR_TOKEN.to_owned()
    };
    let mut part = Part {
        name: "tailchat",
        live_vars: &TAILCHAT_VARS,
        webhook: format!("{base}/tailchat?token={shown}"),
        outcome: Err(ConfigError::Missing("TAILCHAT_URL")),
        missing: TailchatConfig::missing(env),
        emulator: None,
        flusher: None,
    };
    if !live && emulators == Emulators::Off {
        return part;
    }
    let config = if live {
        TailchatConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        part.emulator = Some(TailchatEmulator::default().router());
        Ok((
            TailchatConfig {
                api_url: format!("{base}/_emulator/tailchat"),
                app_id: EMULATOR_APP_ID.to_owned(),
                app_secret: Secret::new(EMULATOR_APP_SECRET),
                callback_token: Secret::new(tailchat_token(env)),
            },
            Mode::Emulator,
        ))
    };
    part.outcome = config.map(|(c, mode)| (hookline_tailchat::router(c, deps.clone()), mode));
    part
}

fn tencent(env: &dyn Env, deps: &Deps, base: &str, emulators: Emulators) -> Part {
    let live = emulators != Emulators::ForAll && optional(env, "TENCENT_SDKAPPID").is_some();
    let mut part = Part {
        name: "tencent",
        live_vars: &TENCENT_VARS,
        webhook: format!("{base}/tencent"),
        outcome: Err(ConfigError::Missing("TENCENT_SDKAPPID")),
        missing: TencentConfig::missing(env),
        emulator: None,
        flusher: None,
    };
    if !live && emulators == Emulators::Off {
        return part;
    }
    let config = if live {
        TencentConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        let emulator = TencentEmulator::new(
            EMULATOR_SDKAPPID,
            EMULATOR_SECRET_KEY,
            "administrator",
            deps.clock.clone(),
        );
        part.emulator = Some(emulator.router());
        Ok((
            TencentConfig {
                sdkappid: EMULATOR_SDKAPPID,
                secret_key: Secret::new(EMULATOR_SECRET_KEY),
                bot_id: EMULATOR_BOT_ID.to_owned(),
                admin: "administrator".to_owned(),
                api_url: format!("{base}/_emulator/tencent"),
                callback_token: optional(env, "TENCENT_CALLBACK_TOKEN").map(Secret::new),
            },
            Mode::Emulator,
        ))
    };
    part.outcome = config.map(|(c, mode)| (hookline_tencent::router(c, deps.clone()), mode));
    part
}

/// The callback token a simulated TamTam update carries (what `build` configures).
pub fn tamtam_token(env: &dyn Env) -> String {
    optional(env, "TAMTAM_CALLBACK_TOKEN").unwrap_or_else(|| EMULATOR_TOKEN.to_owned())
}

fn tamtam(env: &dyn Env, deps: &Deps, base: &str, emulators: Emulators) -> Part {
    let live = emulators != Emulators::ForAll && optional(env, "TAMTAM_TOKEN").is_some();
    let shown = if live || optional(env, "TAMTAM_CALLBACK_TOKEN").is_some() {
        "<TAMTAM_CALLBACK_TOKEN>".to_owned()
    } else {
        EMULATOR_TOKEN.to_owned()
    };
    let mut part = Part {
        name: "tamtam",
        live_vars: &TAMTAM_VARS,
        webhook: format!("{base}/tamtam?token={shown}"),
        outcome: Err(ConfigError::Missing("TAMTAM_TOKEN")),
        missing: TamTamConfig::missing(env),
        emulator: None,
        flusher: None,
    };
    if !live && emulators == Emulators::Off {
        return part;
    }
    let config = if live {
        TamTamConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        part.emulator = Some(TamTamEmulator::default().router());
        // On the emulator, updates come from this machine (`simulate`), not TamTam's subnets.
        let mut allowed_subnets = default_subnets();
        allowed_subnets
            .extend(parse_subnets("loopback", "127.0.0.0/8,::1/128").unwrap_or_default());
        Ok((
            TamTamConfig {
                token: Secret::new(TAMTAM_EMULATOR_TOKEN),
                callback_token: Secret::new(tamtam_token(env)),
                api_url: format!("{base}/_emulator/tamtam"),
                allowed_subnets,
            },
            Mode::Emulator,
        ))
    };
    part.outcome = config.map(|(c, mode)| (hookline_tamtam::router(c, deps.clone()), mode));
    part
}

/// The bot token of the built-in MAX emulator.
pub const MAX_EMULATOR_TOKEN: &str = "hookline-emulator-max-token";

/// The webhook secret a simulated MAX update carries (what `build` configures): the first of
/// `MAX_WEBHOOK_SECRET`, or `emulator`.
pub fn max_secret(env: &dyn Env) -> String {
    optional(env, "MAX_WEBHOOK_SECRET")
        .and_then(|s| s.split(',').next().map(|s| s.trim().to_owned()))
        .unwrap_or_else(|| EMULATOR_TOKEN.to_owned())
}

fn max(env: &dyn Env, deps: &Deps, base: &str, emulators: Emulators) -> Part {
    let live = emulators != Emulators::ForAll && optional(env, "MAX_TOKEN").is_some();
    let mut part = Part {
        name: "max",
        live_vars: &MAX_VARS,
        webhook: format!("{base}/max (header X-Max-Bot-Api-Secret; MAX needs https on 443)"),
        outcome: Err(ConfigError::Missing("MAX_TOKEN")),
        missing: MaxConfig::missing(env),
        emulator: None,
        flusher: None,
    };
    if !live && emulators == Emulators::Off {
        return part;
    }
    let config = if live {
        MaxConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        part.emulator = Some(
            TamTamEmulator::max(
                MAX_EMULATOR_TOKEN,
                hookline_tamtam::emulator::EMULATOR_BOT_ID,
                hookline_tamtam::emulator::EMULATOR_BOT_USERNAME,
            )
            .router(),
        );
        Ok((
            MaxConfig {
                token: Secret::new(MAX_EMULATOR_TOKEN),
                webhook_secrets: vec![Secret::new(max_secret(env))],
                api_url: format!("{base}/_emulator/max"),
                allowed_subnets: None,
                ca_pem: None,
            },
            Mode::Emulator,
        ))
    };
    part.outcome = config.map(|(c, mode)| (hookline_tamtam::max_router(c, deps.clone()), mode));
    part
}

/// The notify token of an emulated DingTalk when `DINGTALK_NOTIFY_TOKEN` is unset.
pub const EMULATOR_NOTIFY_TOKEN: &str = "emulator-notify-token";

fn dingtalk(env: &dyn Env, deps: &Deps, base: &str, emulators: Emulators) -> Part {
    let live = emulators != Emulators::ForAll && optional(env, "DINGTALK_APP_SECRET").is_some();
    let mut part = Part {
        name: "dingtalk",
        live_vars: &DINGTALK_VARS,
        webhook: format!("{base}/dingtalk (notify: POST {base}/dingtalk/notify)"),
        outcome: Err(ConfigError::Missing("DINGTALK_APP_SECRET")),
        missing: DingTalkConfig::missing(env),
        emulator: None,
        flusher: None,
    };
    if !live && emulators == Emulators::Off {
        return part;
    }
    let config = if live {
        DingTalkConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        part.emulator = Some(
            DingTalkEmulator::new(
                EMULATOR_ROBOT_TOKEN,
                EMULATOR_ROBOT_SECRET,
                deps.clock.clone(),
            )
            .router(),
        );
        // Replies of simulated callbacks go to this server's emulator, over loopback http.
        let mut session_hosts: Vec<String> = DEFAULT_SESSION_HOSTS
            .split(',')
            .map(str::to_owned)
            .collect();
        session_hosts.push(base.trim_start_matches("http://").to_owned());
        Ok((
            DingTalkConfig {
                app_secret: Secret::new(DINGTALK_APP_SECRET),
                robot_code: EMULATOR_ROBOT_CODE.to_owned(),
                custom_robot: Some(CustomRobot {
                    access_token: Secret::new(EMULATOR_ROBOT_TOKEN),
                    secret: Secret::new(EMULATOR_ROBOT_SECRET),
                }),
                notify_token: Some(Secret::new(dingtalk_notify_token(env))),
                api_url: format!("{base}/_emulator/dingtalk"),
                session_hosts,
                allow_unsigned: false,
                webhook_conversation: None,
            },
            Mode::Emulator,
        ))
    };
    part.flusher = config
        .as_ref()
        .ok()
        .and_then(|(c, _)| hookline_dingtalk::sender(c, deps));
    part.outcome = config.map(|(c, mode)| (hookline_dingtalk::router(c, deps.clone()), mode));
    part
}

/// The notify token `build` configures on the emulator.
pub fn dingtalk_notify_token(env: &dyn Env) -> String {
    optional(env, "DINGTALK_NOTIFY_TOKEN").unwrap_or_else(|| EMULATOR_NOTIFY_TOKEN.to_owned())
}

/// Builds the router, with emulators as `emulators` says.
pub fn build(env: &dyn Env, deps: Deps, base: &str, emulators: Emulators) -> App {
    let mut app = App {
        router: Router::new().route("/healthz", get(|| async { "ok" })),
        statuses: Vec::new(),
        flushers: Vec::new(),
    };
    app.mount(tailchat(env, &deps, base, emulators));
    app.mount(tencent(env, &deps, base, emulators));
    app.mount(tamtam(env, &deps, base, emulators));
    app.mount(max(env, &deps, base, emulators));
    app.mount(dingtalk(env, &deps, base, emulators));
    app
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use hookline::clock::SystemClock;
    use hookline::http::HttpClient;
    use hookline::store::EmbeddedStore;

    use super::*;

    fn deps(dir: &tempfile::TempDir) -> Deps {
        let clock = Arc::new(SystemClock);
        Deps {
            store: Arc::new(
                EmbeddedStore::open(&dir.path().join("s.redb"), clock.clone()).unwrap(),
            ),
            clock,
            bot: Arc::new(hookline_bots::echo::bot()),
            http: HttpClient::new().unwrap(),
            deferral: Default::default(),
        }
    }

    #[test]
    fn wildcard_binds_are_reached_on_loopback() {
        assert_eq!(
            local_base("0.0.0.0:3000".parse().unwrap()),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            local_base("127.0.0.2:80".parse().unwrap()),
            "http://127.0.0.2:80"
        );
    }

    #[test]
    fn reports_emulator_live_and_missing_variables() {
        let dir = tempfile::tempdir().unwrap();
        let deps = deps(&dir);
        let none: HashMap<&str, &str> = HashMap::new();
        let app = build(
            &none,
            deps.clone(),
            "http://127.0.0.1:3000",
            Emulators::ForUnconfigured,
        );
        assert_eq!(app.statuses[0].mode, Mode::Emulator);
        assert_eq!(
            app.statuses[0].webhook,
            "http://127.0.0.1:3000/tailchat?token=emulator"
        );

        let partial: HashMap<&str, &str> =
            HashMap::from([("TAILCHAT_URL", "https://chat.example.com")]);
        let app = build(
            &partial,
            deps.clone(),
            "http://x",
            Emulators::ForUnconfigured,
        );
        assert_eq!(
            app.statuses[0].mode,
            Mode::Missing(vec![
                "TAILCHAT_APP_ID",
                "TAILCHAT_APP_SECRET",
                "TAILCHAT_CALLBACK_TOKEN"
            ])
        );
        let line = app.statuses[0].to_string();
        assert!(
            line.contains("OFF") && line.contains("TAILCHAT_APP_ID"),
            "{line}"
        );

        let full: HashMap<&str, &str> = HashMap::from([
            ("TAILCHAT_URL", "https://chat.example.com"),
            ("TAILCHAT_APP_ID", "tc_1"),
            ("TAILCHAT_APP_SECRET", "s"),
            ("TAILCHAT_CALLBACK_TOKEN", "a-long-enough-secret-token"),
        ]);
        let app = build(&full, deps.clone(), "http://x", Emulators::ForUnconfigured);
        assert_eq!(app.statuses[0].mode, Mode::Live);
        assert!(
            !app.statuses[0]
                .to_string()
                .contains("a-long-enough-secret-token")
        );
        let forced = build(&full, deps.clone(), "http://x", Emulators::ForAll);
        assert_eq!(forced.statuses[0].mode, Mode::Emulator);

        assert_eq!(app.statuses[1].name, "tencent");
        assert_eq!(app.statuses[1].mode, Mode::Emulator);
        let tencent: HashMap<&str, &str> = HashMap::from([("TENCENT_SDKAPPID", "1400000000")]);
        let app = build(&tencent, deps, "http://x", Emulators::ForUnconfigured);
        assert_eq!(
            app.statuses[1].mode,
            Mode::Missing(vec!["TENCENT_SECRET_KEY", "TENCENT_BOT_ID"])
        );
    }

    #[test]
    fn emulators_only_beside_nothing_live_on_loopback_unless_asked() {
        let loopback: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(emulators_wanted(&none, loopback), Ok(true));
        assert_eq!(emulators_wanted(&none, public), Ok(false));
        let live = HashMap::from([("TAMTAM_TOKEN", "t")]);
        assert_eq!(emulators_wanted(&live, loopback), Ok(false));
        let asked = HashMap::from([("TAMTAM_TOKEN", "t"), ("HOOKLINE_EMULATORS", "1")]);
        assert_eq!(emulators_wanted(&asked, public), Ok(true));
        let refused = HashMap::from([("HOOKLINE_EMULATORS", "0")]);
        assert_eq!(emulators_wanted(&refused, loopback), Ok(false));

        // Beside a live platform, nothing of the emulators is mounted.
        let dir = tempfile::tempdir().unwrap();
        let env = HashMap::from([
            ("TAILCHAT_URL", "https://chat.example.com"),
            ("TAILCHAT_APP_ID", "tc_1"),
            ("TAILCHAT_APP_SECRET", "s"),
            ("TAILCHAT_CALLBACK_TOKEN", "a-long-enough-secret-token"),
        ]);
        let app = build(&env, deps(&dir), "http://x", Emulators::Off);
        assert_eq!(app.statuses[0].mode, Mode::Live);
        for status in &app.statuses[1..] {
            assert!(matches!(status.mode, Mode::Missing(_)), "{status}");
        }
    }

    #[test]
    fn a_live_tencent_without_callback_authentication_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("TENCENT_SDKAPPID", "1400000000"),
            ("TENCENT_SECRET_KEY", "k"),
            ("TENCENT_BOT_ID", "@RBT#001"),
        ]);
        let deps = deps(&dir);
        let app = build(&env, deps.clone(), "http://x", Emulators::ForUnconfigured);
        let Mode::Invalid(why) = &app.statuses[1].mode else {
            panic!("{:?}", app.statuses[1].mode)
        };
        assert!(why.contains("TENCENT_CALLBACK_TOKEN") && why.contains("callback authentication"));
        env.insert("TENCENT_ALLOW_UNSIGNED", "1");
        let app = build(&env, deps, "http://x", Emulators::ForUnconfigured);
        assert_eq!(app.statuses[1].mode, Mode::Live, "the explicit opt-out");
    }
}
