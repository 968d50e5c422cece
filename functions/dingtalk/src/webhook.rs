//! Where a `sessionWebhook` may point (DESIGN.md, Conventions): https on a host listed in
//! `DINGTALK_SESSION_HOSTS` (exact host, optionally exact port); plain http only for a listed
//! loopback host. The callback is signed, but the signature does not cover the body, so the URL
//! is checked before anything is stored or sent (SSRF).

use url::{Host, Url};

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An allow-list entry: `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn parse_entry(entry: &str) -> (String, Option<u16>) {
    let entry = entry.trim().to_ascii_lowercase();
    if let Some((host, tail)) = entry
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
    {
        return (
            format!("[{host}]"),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), Some(port)),
            Err(_) => (entry.clone(), None),
        },
        Some(_) => (format!("[{entry}]"), None),
        None => (entry, None),
    }
}

/// The parsed URL when it is an allowed session webhook.
pub fn allowed_session_webhook(raw: &str, allowed: &[String]) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| "sessionWebhook is not a URL".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("sessionWebhook carries credentials".into());
    }
    let host = url.host().ok_or("sessionWebhook has no host")?;
    let name = match &host {
        Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string().to_ascii_lowercase(),
    };
    let port = url.port_or_known_default();
    let listed = allowed
        .iter()
        .map(|e| parse_entry(e))
        .any(|(h, p)| h == name && p.is_none_or(|p| Some(p) == port));
    if !listed {
        return Err(format!(
            "sessionWebhook host {name} is not in DINGTALK_SESSION_HOSTS"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        _ => Err("sessionWebhook must be https".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &str) -> Vec<String> {
        list.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn only_https_on_listed_hosts_passes() {
        let allowed = hosts("oapi.dingtalk.com,oapi.dingtalk.io");
        assert!(
            allowed_session_webhook(
                "https://oapi.dingtalk.com/robot/sendBySession?session=x",
                &allowed
            )
            .is_ok()
        );
        assert!(
            allowed_session_webhook(
                "https://OAPI.DingTalk.io/robot/sendBySession?session=x",
                &allowed
            )
            .is_ok()
        );
        for bad in [
            "http://oapi.dingtalk.com/robot/sendBySession?session=x",
            "https://oapi.dingtalk.com.evil.net/robot/sendBySession",
            "https://evil.net/oapi.dingtalk.com",
            "https://oapi.dingtalk.com@evil.net/",
            "https://user:pw@oapi.dingtalk.com/",
            "https://xoapi.dingtalk.com/",
            "ftp://oapi.dingtalk.com/",
            "not a url",
            "https://127.0.0.1/",
        ] {
            assert!(allowed_session_webhook(bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_a_listed_loopback_host_and_port() {
        let allowed = hosts("oapi.dingtalk.com,127.0.0.1:8080,localhost");
        assert!(
            allowed_session_webhook(
                "http://127.0.0.1:8080/robot/sendBySession?session=x",
                &allowed
            )
            .is_ok()
        );
        assert!(
            allowed_session_webhook("http://127.0.0.1:8081/robot/sendBySession", &allowed).is_err(),
            "other port"
        );
        assert!(
            allowed_session_webhook("http://localhost:9999/x", &allowed).is_ok(),
            "listed without a port"
        );
        assert!(
            allowed_session_webhook("http://oapi.dingtalk.com/x", &allowed).is_err(),
            "http to a public host"
        );
        let v6 = hosts("::1,[::1]:9000");
        assert!(allowed_session_webhook("http://[::1]:1234/x", &v6).is_ok());
        assert!(allowed_session_webhook("http://[::2]:9000/x", &v6).is_err());
    }
}
