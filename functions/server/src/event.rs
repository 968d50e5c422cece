//! `hookline event <platform>`: a sample Lambda event of `infra/events/`, made current.
//!
//! Tencent's `Sign` holds a time that must be within 60 s of the function's clock and DingTalk's
//! `sign` one within an hour, so a stored signed event goes stale. This re-stamps an event with
//! a time (now, by default) and signs it again with the secrets of the environment, so that
//! `cargo lambda invoke --data-ascii "$(hookline event tencent)"` and `sam local invoke -e` are
//! authenticated exactly as a platform's call would be. With the configuration the events were
//! written for (`infra/example.env`) and their own time, it reproduces them byte for byte.

use anyhow::{Context, bail};
use hookline::config::{Env, optional};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// How long DingTalk keeps a `sessionWebhook` usable (observed: 90 minutes).
const DINGTALK_SESSION_MS: i64 = 90 * 60 * 1000;

/// The platforms with a Function URL event.
pub const PLATFORMS: [&str; 5] = ["tailchat", "tencent", "dingtalk", "tamtam", "max"];

/// The sample Function URL events of `infra/events/`, carried by the binary so that `hookline
/// event` works from any folder.
pub const SAMPLES: [(&str, &str); 5] = [
    (
        "tailchat",
        include_str!("../../../infra/events/tailchat.json"),
    ),
    (
        "tencent",
        include_str!("../../../infra/events/tencent.json"),
    ),
    (
        "dingtalk",
        include_str!("../../../infra/events/dingtalk.json"),
    ),
    ("tamtam", include_str!("../../../infra/events/tamtam.json")),
    ("max", include_str!("../../../infra/events/max.json")),
];

/// The built-in sample event of `platform`.
pub fn sample(platform: &str) -> anyhow::Result<Value> {
    let (_, text) = SAMPLES
        .iter()
        .find(|(name, _)| *name == platform)
        .with_context(|| format!("no sample event for {platform:?}"))?;
    serde_json::from_str(text).context("the built-in sample event is not JSON")
}

/// `event`, re-stamped at `at_s` (Unix seconds) with the secrets of `env`.
pub fn restamp(
    platform: &str,
    mut event: Value,
    env: &dyn Env,
    at_s: i64,
) -> anyhow::Result<Value> {
    if event["version"] != "2.0" || !event["requestContext"].is_object() {
        bail!("not a Function URL event (payload format 2.0)");
    }
    let at_ms = at_s * 1000;
    let mut query = Query::of(&event);
    match platform {
        "tailchat" => query.set_from(env, "token", "TAILCHAT_CALLBACK_TOKEN"),
        "tamtam" => query.set_from(env, "token", "TAMTAM_CALLBACK_TOKEN"),
        "max" => {
            // MAX authenticates with the subscription's secret, in a header.
            let secret = crate::app::max_secret(env);
            object(&mut event, "headers")?
                .insert(hookline_tamtam::SECRET_HEADER.into(), secret.into());
        }
        "tencent" => {
            query.set_from(env, "SdkAppid", "TENCENT_SDKAPPID");
            match optional(env, "TENCENT_CALLBACK_TOKEN") {
                Some(token) => {
                    let time = at_s.to_string();
                    query.set("Sign", hookline_tencent::callback_sign(&token, &time));
                    query.set("RequestTime", time);
                }
                None => {
                    query.remove("Sign");
                    query.remove("RequestTime");
                }
            }
        }
        "dingtalk" => {
            let secret = optional(env, "DINGTALK_APP_SECRET")
                .context("DINGTALK_APP_SECRET is not set: nothing to sign the callback with")?;
            let timestamp = at_ms.to_string();
            let headers = object(&mut event, "headers")?;
            headers.insert(
                "sign".into(),
                hookline_dingtalk::sign::sign(&secret, &timestamp).into(),
            );
            headers.insert("timestamp".into(), timestamp.into());
            // The reply address must still be open at that time.
            let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap_or_default())
                .context("the event's body is not DingTalk callback JSON")?;
            body["createAt"] = at_ms.into();
            body["sessionWebhookExpiredTime"] = (at_ms + DINGTALK_SESSION_MS).into();
            event["body"] = body.to_string().into();
        }
        other => bail!(
            "unknown platform {other:?} (one of {})",
            PLATFORMS.join(", ")
        ),
    }
    query.write(&mut event)?;
    let when = OffsetDateTime::from_unix_timestamp(at_s).context("time out of range")?;
    let context = object(&mut event, "requestContext")?;
    context.insert("timeEpoch".into(), (at_ms + 123).into());
    context.insert("time".into(), clf_time(when).into());
    Ok(event)
}

/// `14/Nov/2023:22:13:20 +0000`, the format of `requestContext.time`.
fn clf_time(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn object<'a>(event: &'a mut Value, field: &str) -> anyhow::Result<&'a mut Map<String, Value>> {
    if event[field].is_null() {
        event[field] = Value::Object(Map::new());
    }
    event[field]
        .as_object_mut()
        .with_context(|| format!("the event's {field} is not an object"))
}

/// The query of an event, kept in the order of its `rawQueryString`.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(event: &Value) -> Self {
        let raw = event["rawQueryString"].as_str().unwrap_or_default();
        Self(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(pair) => pair.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    fn set_from(&mut self, env: &dyn Env, name: &str, var: &str) {
        if let Some(value) = optional(env, var) {
            self.set(name, value);
        }
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    /// Writes `rawQueryString` and `queryStringParameters` back.
    fn write(self, event: &mut Value) -> anyhow::Result<()> {
        let raw = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.0)
            .finish();
        event["rawQueryString"] = raw.into();
        let params = object(event, "queryStringParameters")?;
        params.clear();
        for (k, v) in self.0 {
            params.insert(k, v.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn event(query: &str, body: Value) -> Value {
        json!({
            "version": "2.0", "rawQueryString": query, "headers": {},
            "queryStringParameters": {}, "requestContext": {"http": {}},
            "body": body.to_string(), "isBase64Encoded": false
        })
    }

    #[test]
    fn tencent_is_signed_for_the_given_time_and_keeps_its_query_order() {
        let env = HashMap::from([
            ("TENCENT_CALLBACK_TOKEN", "example-token"),
            ("TENCENT_SDKAPPID", "1400000001"),
        ]);
        let e = event(
            "SdkAppid=1&CallbackCommand=Bot.OnGroupMessage&contenttype=json&RequestTime=1&Sign=x",
            json!({}),
        );
        let out = restamp("tencent", e, &env, 1_700_000_000).unwrap();
        let sign = hookline_tencent::callback_sign("example-token", "1700000000");
        assert_eq!(
            out["rawQueryString"],
            format!(
                "SdkAppid=1400000001&CallbackCommand=Bot.OnGroupMessage&contenttype=json&RequestTime=1700000000&Sign={sign}"
            )
        );
        assert_eq!(out["queryStringParameters"]["Sign"], sign.as_str());
        assert_eq!(out["requestContext"]["time"], "14/Nov/2023:22:13:20 +0000");
        // Without a callback token there is nothing to sign.
        let out = restamp("tencent", out, &HashMap::<&str, &str>::new(), 1).unwrap();
        assert_eq!(
            out["rawQueryString"],
            "SdkAppid=1400000001&CallbackCommand=Bot.OnGroupMessage&contenttype=json"
        );
    }

    #[test]
    fn dingtalk_gets_a_fresh_sign_and_an_open_session() {
        let env = HashMap::from([("DINGTALK_APP_SECRET", "secret")]);
        let e = event(
            "",
            json!({"msgtype": "text", "sessionWebhookExpiredTime": 1}),
        );
        let out = restamp("dingtalk", e, &env, 1_700_000_000).unwrap();
        assert_eq!(out["headers"]["timestamp"], "1700000000000");
        assert!(
            hookline_dingtalk::sign::verify_callback_sign(
                "secret",
                "1700000000000",
                out["headers"]["sign"].as_str().unwrap(),
                1_700_000_000_000
            )
            .is_ok()
        );
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["sessionWebhookExpiredTime"], 1_700_005_400_000_i64);
        assert!(restamp("dingtalk", out, &HashMap::<&str, &str>::new(), 1).is_err());
    }

    #[test]
    fn tokens_come_from_the_environment_and_other_input_is_refused() {
        let env = HashMap::from([("TAMTAM_CALLBACK_TOKEN", "a b&c")]);
        let out = restamp("tamtam", event("token=old", json!({})), &env, 0).unwrap();
        assert_eq!(out["rawQueryString"], "token=a+b%26c");
        assert_eq!(out["queryStringParameters"]["token"], "a b&c");
        assert!(restamp("irc", event("", json!({})), &env, 0).is_err());
        assert!(restamp("tamtam", json!({"version": "1.0"}), &env, 0).is_err());
    }
}
