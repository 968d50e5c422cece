//! Redaction of credentials in URLs before they reach a log line or an error message.
//!
//! Platform URLs carry secrets in the query: TamTam `access_token`, Tencent `usersig`, DingTalk
//! `sign`/`access_token`/`session`, and our own webhook `token`.

/// Query parameter names whose values are replaced by `***` (compared case-insensitively).
pub const SENSITIVE_PARAMS: &[&str] = &[
    "access_token",
    "usersig",
    "sign",
    "session",
    "token",
    "secret",
    "x-token",
];

/// Returns `url` with the values of sensitive query parameters replaced by `***`.
///
/// Works on absolute URLs and on bare `path?query` strings; the fragment is dropped.
pub fn redact_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            if SENSITIVE_PARAMS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
            {
                format!("{name}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", redacted.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_sensitive_parameter_and_keeps_the_rest() {
        let url = "https://botapi.tamtam.chat/messages?access_token=abc&v=0.3.0&chat_id=-7";
        assert_eq!(
            redact_url(url),
            "https://botapi.tamtam.chat/messages?access_token=***&v=0.3.0&chat_id=-7"
        );
        let url = "https://console.tim.qq.com/v4/x?sdkappid=1&UserSig=eJy&random=5";
        assert_eq!(
            redact_url(url),
            "https://console.tim.qq.com/v4/x?sdkappid=1&UserSig=***&random=5"
        );
        assert_eq!(redact_url("/tailchat?token=s3cret"), "/tailchat?token=***");
        assert_eq!(
            redact_url("https://oapi.dingtalk.com/robot/sendBySession?session=4e8b#frag"),
            "https://oapi.dingtalk.com/robot/sendBySession?session=***"
        );
    }

    #[test]
    fn leaves_urls_without_query_alone() {
        assert_eq!(
            redact_url("http://127.0.0.1:3000/healthz"),
            "http://127.0.0.1:3000/healthz"
        );
    }
}
