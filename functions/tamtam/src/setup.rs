//! `hookline setup tamtam --url <webhook url>`: subscribe the bot's webhook, list and optionally
//! remove other subscriptions, and publish the bot's commands with `PATCH /me`.
//!
//! `hookline setup max --url https://…`: the same on MAX, which delivers over HTTPS on port 443
//! only (§4b.2), subscribed with `MAX_WEBHOOK_SECRET` and commands through `PATCH /me/commands`.
//! MAX drops a subscription silently after 8 hours of failed deliveries: [`ensure_subscribed`]
//! (the scheduled `max-resubscribe` function, `hookline doctor`) finds and mends that.

use hookline::error::HookError;
use hookline::secret::Secret;

use crate::client::TamTamClient;

/// The update types the bot handles, and subscribes to.
pub const UPDATE_TYPES: [&str; 4] = [
    "message_created",
    "message_callback",
    "bot_started",
    "bot_added",
];

/// Whether TamTam accepts webhooks on `port`: 80, 8080, 443, 8443 or 16384–32383.
pub fn port_accepted(port: u16) -> bool {
    matches!(port, 80 | 8080 | 443 | 8443 | 16384..=32383)
}

/// Checks the URL and adds `token=<TAMTAM_CALLBACK_TOKEN>` when it has none.
pub fn webhook_url(url: &str, callback_token: &Secret) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("the webhook URL must be http(s)".into());
    }
    let port = parsed.port_or_known_default().unwrap_or(0);
    if !port_accepted(port) {
        return Err(format!(
            "TamTam does not deliver to port {port}: use 80, 8080, 443, 8443 or 16384-32383"
        ));
    }
    match parsed.query_pairs().find(|(k, _)| k == "token") {
        Some((_, token)) if callback_token.matches(&token) => {}
        Some(_) => return Err("the URL's token= differs from TAMTAM_CALLBACK_TOKEN".into()),
        None => {
            parsed
                .query_pairs_mut()
                .append_pair("token", callback_token.expose());
        }
    }
    Ok(parsed.into())
}

/// Checks a MAX webhook URL: `https://`, port 443 (MAX delivers nowhere else, and the port must
/// not be written), no `?token=` needed (the secret header authenticates). Returns it normalised.
pub fn max_webhook_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(
            "MAX delivers webhooks over HTTPS only: the URL must start with https://".into(),
        );
    }
    // `Url` drops a written default port, so any port left is not 443.
    if let Some(port) = parsed.port() {
        return Err(format!(
            "MAX delivers webhooks to port 443 only, not {port}: put the endpoint behind 443 and \
             leave the port out of the URL"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the webhook URL has no host".into());
    }
    Ok(parsed.into())
}

/// Whether `url` is still subscribed; subscribes it again (with `secret`) when MAX has dropped
/// it. `Ok(true)`: it had to be re-subscribed.
pub async fn ensure_subscribed(
    client: &TamTamClient,
    url: &str,
    secret: Option<&Secret>,
) -> Result<bool, HookError> {
    if client.subscriptions().await?.iter().any(|u| u == url) {
        return Ok(false);
    }
    client.subscribe(url, &UPDATE_TYPES, secret).await?;
    tracing::warn!(
        url = %hookline::redact::redact_url(url),
        "the webhook subscription had disappeared (MAX drops it after 8 hours of failed \
         deliveries): subscribed again"
    );
    Ok(true)
}

/// What `setup` did, one line each (URLs redacted). `secret`: MAX's webhook secret.
pub async fn setup_webhook(
    client: &TamTamClient,
    url: &str,
    secret: Option<&Secret>,
    remove_stale: bool,
    commands: &[(&str, &str)],
) -> Result<Vec<String>, HookError> {
    setup_webhook_with_progress(client, url, secret, remove_stale, commands, &|_| {}).await
}

/// [`setup_webhook`], calling `progress` before each API call (what it is about to do).
pub async fn setup_webhook_with_progress(
    client: &TamTamClient,
    url: &str,
    secret: Option<&Secret>,
    remove_stale: bool,
    commands: &[(&str, &str)],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<String>, HookError> {
    let mut report = Vec::new();
    progress("listing the bot's subscriptions");
    let existing = client.subscriptions().await?;
    for other in existing.iter().filter(|u| u.as_str() != url) {
        if remove_stale {
            progress(&format!("removing {}", hookline::redact::redact_url(other)));
            client.unsubscribe(other).await?;
            report.push(format!(
                "removed subscription {}",
                hookline::redact::redact_url(other)
            ));
        } else {
            report.push(format!(
                "other subscription kept: {} (--remove-stale removes it)",
                hookline::redact::redact_url(other)
            ));
        }
    }
    progress(&format!(
        "subscribing {}",
        hookline::redact::redact_url(url)
    ));
    client.subscribe(url, &UPDATE_TYPES, secret).await?;
    report.push(format!(
        "subscribed {} to {}{}",
        hookline::redact::redact_url(url),
        UPDATE_TYPES.join(", "),
        if secret.is_some() {
            " (with the webhook secret)"
        } else {
            ""
        }
    ));
    progress("publishing the bot's commands");
    client.set_commands(commands).await?;
    let names: Vec<String> = commands.iter().map(|(n, _)| format!("/{n}")).collect();
    report.push(format!("commands set: {}", names.join(" ")));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tamtams_ports_are_accepted() {
        for port in [80, 8080, 443, 8443, 16384, 32383, 20000] {
            assert!(port_accepted(port), "{port}");
        }
        for port in [0, 22, 3000, 8000, 8081, 16383, 32384, 65535] {
            assert!(!port_accepted(port), "{port}");
        }
    }

    #[test]
    fn webhook_urls_get_the_token_and_a_port_check() {
        let token = Secret::new("0123456789abcdef");
        assert_eq!(
            webhook_url("https://bot.example.com/tamtam", &token).unwrap(),
            "https://bot.example.com/tamtam?token=0123456789abcdef"
        );
        assert!(
            webhook_url(
                "https://bot.example.com/tamtam?token=0123456789abcdef",
                &token
            )
            .is_ok()
        );
        assert!(webhook_url("https://bot.example.com/tamtam?token=other", &token).is_err());
        assert!(
            webhook_url("https://bot.example.com:3000/tamtam", &token)
                .unwrap_err()
                .contains("port 3000")
        );
        assert!(webhook_url("http://bot.example.com:8080/tamtam", &token).is_ok());
        assert!(webhook_url("ftp://bot.example.com/", &token).is_err());
    }

    #[test]
    fn max_takes_https_on_443_only() {
        assert_eq!(
            max_webhook_url("https://abc.lambda-url.eu-west-1.on.aws/").unwrap(),
            "https://abc.lambda-url.eu-west-1.on.aws/"
        );
        assert_eq!(
            max_webhook_url("https://bot.example.com:443/max").unwrap(),
            "https://bot.example.com/max"
        );
        for (bad, says) in [
            ("http://bot.example.com/max", "HTTPS only"),
            (
                "https://bot.example.com:8443/max",
                "port 443 only, not 8443",
            ),
            ("https://bot.example.com:80/max", "not 80"),
            ("bot.example.com/max", "not a URL"),
        ] {
            let err = max_webhook_url(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
