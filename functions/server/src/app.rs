//! Assembles every platform into one router for `serve` and `simulate`, deciding per platform
//! whether it is live, on the built-in emulator, or off for want of configuration.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::routing::get;
use hookline::config::{ConfigError, Env, optional};
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use hookline_tailchat::emulator::{EMULATOR_APP_ID, EMULATOR_APP_SECRET, TailchatEmulator};
use hookline_tailchat::{TailchatConfig, VARS as TAILCHAT_VARS};

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
                TAILCHAT_VARS.join(", ")
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
}

/// The URL clients in this process use to reach `bind` (a wildcard bind is reached on loopback).
pub fn local_base(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// Builds the router. `force_emulators` ignores live credentials (used by `simulate`).
pub fn build(env: &dyn Env, deps: Deps, base: &str, force_emulators: bool) -> App {
    let mut router = Router::new().route("/healthz", get(|| async { "ok" }));
    let mut statuses = Vec::new();

    let live = !force_emulators && optional(env, "TAILCHAT_URL").is_some();
    let tailchat = if live {
        TailchatConfig::from_source(env).map(|c| (c, Mode::Live))
    } else {
        let emulator = TailchatEmulator::default();
        router = router.nest("/_emulator/tailchat", emulator.router());
        let token =
            optional(env, "TAILCHAT_CALLBACK_TOKEN").unwrap_or_else(|| EMULATOR_TOKEN.to_owned());
        Ok((
            TailchatConfig {
                api_url: format!("{base}/_emulator/tailchat"),
                app_id: EMULATOR_APP_ID.to_owned(),
                app_secret: Secret::new(EMULATOR_APP_SECRET),
                callback_token: Secret::new(token),
            },
            Mode::Emulator,
        ))
    };
    let token_shown = if live {
        "<TAILCHAT_CALLBACK_TOKEN>".to_owned()
    } else {
        optional(env, "TAILCHAT_CALLBACK_TOKEN").map_or(EMULATOR_TOKEN.to_owned(), |_| {
            "<TAILCHAT_CALLBACK_TOKEN>".to_owned()
        })
    };
    let webhook = format!("{base}/tailchat?token={token_shown}");
    match tailchat {
        Ok((config, mode)) => {
            router = router.nest("/tailchat", hookline_tailchat::router(config, deps));
            statuses.push(PlatformStatus {
                name: "tailchat",
                mode,
                webhook,
            });
        }
        Err(ConfigError::Missing(_)) => statuses.push(PlatformStatus {
            name: "tailchat",
            mode: Mode::Missing(TailchatConfig::missing(env)),
            webhook,
        }),
        Err(e) => statuses.push(PlatformStatus {
            name: "tailchat",
            mode: Mode::Invalid(e.to_string()),
            webhook,
        }),
    }
    App { router, statuses }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use hookline::bot::DefaultBot;
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
            bot: Arc::new(DefaultBot),
            http: HttpClient::new().unwrap(),
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
        let app = build(&none, deps.clone(), "http://127.0.0.1:3000", false);
        assert_eq!(app.statuses[0].mode, Mode::Emulator);
        assert_eq!(
            app.statuses[0].webhook,
            "http://127.0.0.1:3000/tailchat?token=emulator"
        );

        let partial: HashMap<&str, &str> =
            HashMap::from([("TAILCHAT_URL", "https://chat.example.com")]);
        let app = build(&partial, deps.clone(), "http://x", false);
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
        let app = build(&full, deps.clone(), "http://x", false);
        assert_eq!(app.statuses[0].mode, Mode::Live);
        assert!(
            !app.statuses[0]
                .to_string()
                .contains("a-long-enough-secret-token")
        );
        let forced = build(&full, deps, "http://x", true);
        assert_eq!(forced.statuses[0].mode, Mode::Emulator);
    }
}
