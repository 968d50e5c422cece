//! The deployment files of `infra/` against the code:
//! - every Lambda binary of the workspace has exactly one function in the SAM template, built
//!   from the package that defines it;
//! - the variables each function reads are exactly those the template sets for it;
//! - secrets are `NoEcho` parameters, and each function may do on the table only what it does;
//! - the example configuration agrees with the emulators and with `samconfig.toml`;
//! - every sample event of `infra/events/` runs through its function's real Lambda binary, with
//!   the template's environment, on DynamoDB, and gets the expected answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hookline::config::{Env, SharedConfig};
use hookline::store::DynamoStore;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use crate::fake_lambda::Lambda;
use crate::serve::start_serve;
use crate::store_contract::dynamo_config;
use crate::support::{self, emulator_sent, example_env, workspace_bin};

/// The tests' user-crate stand-in, not a Lambda function of this template. (`hookline`, the
/// command line, is also deferred mode's worker function.)
const NOT_FUNCTIONS: [&str; 2] = ["hookline-test-bot", "hookline"];

/// Read by the code, deliberately not set by the template.
fn exempt(var: &str) -> bool {
    // AWS_*: set by the Lambda service itself (region, credentials, runtime API, function name).
    var.starts_with("AWS_")
        // The embedded store's folder and `serve`'s address: a deployed stack uses the table
        // and is served by Lambda.
        || matches!(var, "HOOKLINE_DATA_DIR" | "HOOKLINE_BIND")
        // `serve`'s reverse-proxy settings: under Lambda the Function URL's sourceIp decides,
        // and no header may override it.
        || matches!(var, "HOOKLINE_TRUST_PROXY" | "HOOKLINE_TRUSTED_PROXIES")
        // A deployed stack always authenticates Tencent callbacks: the template requires the
        // token, so it never offers the opt-out.
        || var == "TENCENT_ALLOW_UNSIGNED"
        // `serve`'s worker pool: on Lambda, the event source mapping decides.
        || var == "HOOKLINE_WORKERS"
}

/// Read outside the configuration structs: `hookline::telemetry::init` (tracing's EnvFilter, and
/// the metrics' sink).
const READ_BY_TELEMETRY: [&str; 3] = ["RUST_LOG", "HOOKLINE_METRICS", "HOOKLINE_METRICS_NAMESPACE"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).expect("template");
    serde_yaml_ng::from_str(&text).expect("infra/template.yaml is YAML")
}

/// A template value: `!Ref Name`, or a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Setting {
    Ref(String),
    Literal(String),
}

fn setting(v: &Yaml) -> Setting {
    match v {
        Yaml::Tagged(t) if t.tag == "Ref" => {
            Setting::Ref(t.value.as_str().expect("!Ref name").to_owned())
        }
        Yaml::String(s) => Setting::Literal(s.clone()),
        // `!If [Condition, when true, otherwise]`: what the variable is when it matters.
        Yaml::Tagged(t) if t.tag == "If" => setting(&t.value[1]),
        // An attribute of another resource (the MAX check's MAX_WEBHOOK_URL: the Function URL).
        Yaml::Tagged(t) if t.tag == "GetAtt" => Setting::Literal(format!(
            "!GetAtt {}",
            t.value.as_str().expect("!GetAtt name")
        )),
        other => panic!("unexpected environment value {other:?}"),
    }
}

/// One `AWS::Serverless::Function`.
#[derive(Debug)]
struct Function {
    id: String,
    binary: String,
    code_uri: String,
    env: BTreeMap<String, Setting>,
    policies: Yaml,
}

fn variables(v: &Yaml) -> BTreeMap<String, Setting> {
    v["Environment"]["Variables"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().expect("name").to_owned(), setting(v)))
        .collect()
}

fn functions(t: &Yaml) -> Vec<Function> {
    let globals = variables(&t["Globals"]["Function"]);
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| {
            let mut env = globals.clone();
            env.extend(variables(&r["Properties"]));
            Function {
                id: id.as_str().expect("id").to_owned(),
                binary: r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{id:?} has no Metadata.BuildProperties.Binary"))
                    .to_owned(),
                code_uri: r["Properties"]["CodeUri"]
                    .as_str()
                    .expect("CodeUri")
                    .to_owned(),
                env,
                policies: r["Properties"]["Policies"].clone(),
            }
        })
        .collect()
}

/// The workspace's binaries and the folder of the package of each (from `cargo metadata`).
fn workspace_binaries() -> BTreeMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut bins = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let dir = Path::new(package["manifest_path"].as_str().expect("manifest"))
            .parent()
            .expect("package dir")
            .to_path_buf();
        for target in package["targets"].as_array().expect("targets") {
            if target["kind"]
                .as_array()
                .is_some_and(|k| k.contains(&"bin".into()))
            {
                bins.insert(
                    target["name"].as_str().expect("name").to_owned(),
                    dir.clone(),
                );
            }
        }
    }
    bins
}

/// An [`Env`] that remembers every name asked for.
struct Recorder<'a> {
    values: &'a HashMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Env for Recorder<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.read.lock().unwrap().insert(name.to_owned());
        self.values.get(name).cloned()
    }
}

/// Every variable `binary` reads, by running its configuration code on `values`. The arms
/// mirror the binaries' `main`s: a new binary fails here until it is added.
fn reads(f: &Function, values: &HashMap<String, String>) -> BTreeSet<String> {
    let rec = Recorder {
        values,
        read: Mutex::new(BTreeSet::new()),
    };
    SharedConfig::from_source(&rec).expect("shared configuration");
    let Some(Setting::Literal(function)) = f.env.get("HOOKLINE_FUNCTION") else {
        panic!("{}: no HOOKLINE_FUNCTION", f.id)
    };
    assert!(
        f.binary == format!("hookline-{function}"),
        "{}: binary {} for function {function}",
        f.id,
        f.binary
    );
    let function = hookline_server::FUNCTIONS
        .into_iter()
        .find(|f| *f == function)
        .expect("a function hookline_server::main can run");
    hookline::runtime::check_function(&rec, function).expect("HOOKLINE_FUNCTION names it");
    if function != "dingtalk-flush" && function != "max-resubscribe" {
        // The webhook functions run a bot; with HOOKLINE_BOT=forward it reads its two variables.
        let mut forward = values.clone();
        forward.insert("HOOKLINE_BOT".into(), "forward".into());
        forward.insert(
            "HOOKLINE_FORWARD_URL".into(),
            "https://bot.example/hook".into(),
        );
        forward.insert("HOOKLINE_FORWARD_SECRET".into(), "0123456789abcdef".into());
        let bot_rec = Recorder {
            values: &forward,
            read: Mutex::new(BTreeSet::new()),
        };
        hookline_bots::from_env(&bot_rec).expect("the forward bot");
        rec.read
            .lock()
            .unwrap()
            .extend(bot_rec.read.into_inner().unwrap());
    }
    match f.binary.as_str() {
        "hookline-worker" => {
            // The worker: its queue settings, and every platform, built as `serve` builds them.
            hookline::queue::QueueConfig::from_source(&rec).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let bot = std::sync::Arc::new(hookline::bot::Handlers::new());
            let deps = hookline_server::app::scratch_deps(dir.path(), bot).unwrap();
            let app = hookline_server::app::build(
                &rec,
                deps,
                "http://127.0.0.1",
                hookline_server::app::Emulators::Off,
            );
            assert!(!app.statuses.is_empty());
        }
        "hookline-tailchat" => {
            hookline_tailchat::TailchatConfig::from_source(&rec).unwrap();
        }
        "hookline-tencent" => {
            hookline_tencent::TencentConfig::from_source(&rec).unwrap();
        }
        "hookline-dingtalk" | "hookline-dingtalk-flush" => {
            hookline_dingtalk::DingTalkConfig::from_source(&rec).unwrap();
        }
        "hookline-tamtam" => {
            hookline_tamtam::TamTamConfig::from_source(&rec).unwrap();
        }
        "hookline-max" => {
            hookline_max::MaxConfig::from_source(&rec).unwrap();
        }
        "hookline-max-resubscribe" => {
            hookline_max::MaxConfig::from_source(&rec).unwrap();
            // Required at run time; the template sets it to the Function URL (no example value).
            hookline::config::optional(&rec, "MAX_WEBHOOK_URL");
        }
        other => panic!("{other}: teach this test how the binary reads its configuration"),
    }
    let mut read = rec.read.into_inner().unwrap();
    if function == "dingtalk-flush" || function == "max-resubscribe" {
        // Read with the shared settings; these run no bot, so they never defer an event.
        read.remove("HOOKLINE_QUEUE_URL");
    }
    read.extend(READ_BY_TELEMETRY.map(String::from));
    read.retain(|v| !exempt(v));
    read
}

#[test]
fn every_lambda_binary_has_one_function_built_from_its_package() {
    let t = template();
    let fns = functions(&t);
    let bins = workspace_binaries();
    let lambdas: BTreeSet<&str> = bins
        .keys()
        .map(String::as_str)
        .filter(|b| !NOT_FUNCTIONS.contains(b))
        .collect();
    let in_template: Vec<&str> = fns.iter().map(|f| f.binary.as_str()).collect();
    let unique: BTreeSet<&str> = in_template.iter().copied().collect();
    assert_eq!(
        unique.len(),
        in_template.len(),
        "a binary is deployed twice: {in_template:?}"
    );
    assert_eq!(
        lambdas, unique,
        "workspace binaries (left) and template functions (right) differ"
    );
    let infra = root().join("infra");
    for f in &fns {
        let code = infra
            .join(&f.code_uri)
            .canonicalize()
            .expect("CodeUri exists");
        assert_eq!(
            code,
            bins[&f.binary].canonicalize().unwrap(),
            "{}: CodeUri",
            f.id
        );
        let r = &t["Resources"][f.id.as_str()];
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{}", f.id);
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["MemorySize"], 128);
    assert_eq!(globals["Architectures"][0], "arm64");
}

#[test]
fn each_function_is_given_exactly_the_variables_it_reads() {
    let t = template();
    let example = example_env();
    for f in functions(&t) {
        let read = reads(&f, &example);
        let set: BTreeSet<String> = f.env.keys().cloned().collect();
        let unset: Vec<_> = read.difference(&set).collect();
        let unread: Vec<_> = set.difference(&read).collect();
        assert!(
            unset.is_empty() && unread.is_empty(),
            "{} ({}): read but not set by the template: {unset:?}; set but never read: {unread:?}",
            f.id,
            f.binary
        );
        for (var, value) in &f.env {
            match value {
                Setting::Ref(name) if name == "StateTable" => assert_eq!(var, "HOOKLINE_TABLE"),
                Setting::Ref(name) if name == "Queue" => assert_eq!(var, "HOOKLINE_QUEUE_URL"),
                Setting::Ref(name) => {
                    let param = &t["Parameters"][name.as_str()];
                    assert!(param.is_mapping(), "{var}: no parameter {name}");
                    let secret = ["_SECRET", "_TOKEN", "_SECRET_KEY"]
                        .iter()
                        .any(|s| var.ends_with(s));
                    assert_eq!(
                        param["NoEcho"].as_bool().unwrap_or(false),
                        secret,
                        "{var}: a secret must be (only secrets are) a NoEcho parameter"
                    );
                }
                // Not configuration: which function this is, for a binary that can be any.
                Setting::Literal(_) if var == "HOOKLINE_FUNCTION" => {}
                // The MAX check's own webhook: the MAX function's URL, nothing to configure.
                Setting::Literal(v)
                    if var == "MAX_WEBHOOK_URL" && v == "!GetAtt MaxFunctionUrl.FunctionUrl" => {}
                Setting::Literal(v) => panic!("{var}: literal {v:?}; make it a parameter"),
            }
        }
    }
}

/// A policy statement's resource, `!GetAtt <Resource>.Arn`.
fn arn_of(statement: &Yaml) -> String {
    get_att_arn(&statement["Resource"])
}

/// `!GetAtt <Resource>.Arn`'s resource.
fn get_att_arn(value: &Yaml) -> String {
    match value {
        Yaml::Tagged(tag) if tag.tag == "GetAtt" => tag
            .value
            .as_str()
            .and_then(|v| v.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("Resource {:?} is not an ARN", tag.value))
            .to_owned(),
        other => panic!("Resource {other:?} is not !GetAtt <resource>.Arn"),
    }
}

/// A function's policy statements, each `!If [UseQueue, statement, AWS::NoValue]` resolved to
/// (its condition, the statement).
fn statements(f: &Function) -> Vec<(Option<String>, Yaml)> {
    if f.binary == "hookline-max-resubscribe" {
        // Calls MAX only (its client's caches live in memory): no AWS permission at all.
        assert!(f.policies.is_null(), "{}: needs no policy", f.id);
        return Vec::new();
    }
    assert_eq!(f.policies.as_sequence().map(Vec::len), Some(1), "{}", f.id);
    f.policies[0]["Statement"]
        .as_sequence()
        .expect("one policy statement list")
        .iter()
        .map(|s| match s {
            Yaml::Tagged(t) if t.tag == "If" => {
                let no_value = &t.value[2];
                assert!(
                    matches!(no_value, Yaml::Tagged(n) if n.tag == "Ref" && n.value == "AWS::NoValue"),
                    "{}: a conditional statement is absent otherwise",
                    f.id
                );
                (t.value[0].as_str().map(String::from), t.value[1].clone())
            }
            other => (None, other.clone()),
        })
        .collect()
}

#[test]
fn each_function_may_use_only_its_table_and_only_item_operations() {
    let t = template();
    for f in functions(&t) {
        let worker = f.env.get("HOOKLINE_FUNCTION") == Some(&Setting::Literal("worker".into()));
        for (condition, s) in statements(&f) {
            let resource = arn_of(&s);
            let actions: Vec<&str> = s["Action"]
                .as_sequence()
                .expect("actions")
                .iter()
                .map(|a| a.as_str().expect("action"))
                .collect();
            match resource.as_str() {
                "StateTable" => {
                    for action in &actions {
                        assert!(
                            granted_actions().contains(action),
                            "{}: {action} is more than the store ever does",
                            f.id
                        );
                    }
                }
                // Deferred mode: the webhooks send, only when there is a queue; the worker
                // receives, and never sends.
                "Queue" if worker => {
                    assert_eq!(
                        actions,
                        [
                            "sqs:ReceiveMessage",
                            "sqs:DeleteMessage",
                            "sqs:GetQueueAttributes",
                            "sqs:ChangeMessageVisibility"
                        ],
                        "{}",
                        f.id
                    );
                }
                "Queue" => {
                    assert_eq!(actions, ["sqs:SendMessage"], "{}", f.id);
                    assert_eq!(condition.as_deref(), Some("UseQueue"), "{}", f.id);
                }
                other => panic!("{}: may use {other}", f.id),
            }
        }
    }
}

#[test]
fn deferred_mode_deploys_a_queue_a_dead_letter_queue_and_one_worker_and_nothing_when_off() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("Resources");
    let queued: Vec<&str> = resources
        .iter()
        .filter(|(_, r)| r["Condition"] == "UseQueue")
        .map(|(id, _)| id.as_str().expect("id"))
        .collect();
    assert_eq!(
        queued,
        [
            "Queue",
            "DeadLetterQueue",
            "WorkerFunction",
            "WorkerQueueMapping",
            "WorkerLogs"
        ]
    );
    // Nothing else is an SQS queue or a mapping: a stack with Deferred=off has no queue.
    for (id, r) in resources {
        let kind = r["Type"].as_str().unwrap_or_default();
        if kind == "AWS::SQS::Queue" || kind == "AWS::Lambda::EventSourceMapping" {
            assert!(
                queued.contains(&id.as_str().unwrap()),
                "{id:?} is unconditional"
            );
        }
    }
    assert_eq!(t["Parameters"]["Deferred"]["Default"], "off");
    let queue = &t["Resources"]["Queue"]["Properties"];
    let worker = &t["Resources"]["WorkerFunction"]["Properties"];
    let timeout = worker["Timeout"].as_u64().expect("the worker's Timeout");
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility timeout {visibility} s < six times the worker's {timeout} s"
    );
    assert!(timeout <= 900, "Lambda's limit");
    assert_eq!(
        queue["MessageRetentionPeriod"].as_u64(),
        Some(hookline::queue::QUEUE_RETENTION.as_secs()),
        "the claims' expiry is computed from this retention"
    );
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        get_att_arn(&redrive["deadLetterTargetArn"]),
        "DeadLetterQueue"
    );
    assert_eq!(
        setting(&redrive["maxReceiveCount"]),
        setting(&worker["Environment"]["Variables"]["HOOKLINE_QUEUE_MAX_ATTEMPTS"]),
        "the dead-letter threshold is the worker's last attempt"
    );
    let mapping = &t["Resources"]["WorkerQueueMapping"]["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    assert_eq!(
        setting(&mapping["FunctionName"]),
        Setting::Ref("WorkerFunction".into())
    );
    let output = &t["Outputs"]["DeadLetterQueueUrl"];
    assert_eq!(output["Condition"], "UseQueue");
    assert_eq!(
        setting(&output["Value"]),
        Setting::Ref("DeadLetterQueue".into())
    );
    // Every webhook function sends there when the queue exists.
    for f in functions(&t) {
        if f.binary != "hookline-dingtalk-flush" && f.binary != "hookline-max-resubscribe" {
            assert_eq!(
                f.env.get("HOOKLINE_QUEUE_URL"),
                Some(&Setting::Ref("Queue".into())),
                "{}",
                f.id
            );
        }
    }
}

/// What `DynamoStore` issues: get, put / put_if_absent, delete, query_prefix.
fn granted_actions() -> BTreeSet<&'static str> {
    BTreeSet::from([
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    ])
}

#[test]
fn every_dynamodb_operation_the_store_can_issue_is_granted_by_the_template() {
    // Read from the store's source, so that an operation with no caller today (the counter
    // `add` had none, and needed an UpdateItem the template never granted) is caught too.
    let source =
        std::fs::read_to_string(root().join("shared/src/store/dynamo.rs")).expect("source");
    let code: String = source.split_whitespace().collect();
    let operations = [
        ("get_item", "GetItem"),
        ("put_item", "PutItem"),
        ("delete_item", "DeleteItem"),
        ("update_item", "UpdateItem"),
        ("query", "Query"),
        ("scan", "Scan"),
        ("batch_get_item", "BatchGetItem"),
        ("batch_write_item", "BatchWriteItem"),
        ("transact_get_items", "TransactGetItems"),
        ("transact_write_items", "TransactWriteItems"),
    ];
    let issued: BTreeSet<String> = operations
        .iter()
        .filter(|(method, _)| code.contains(&format!(".client.{method}()")))
        .map(|(_, action)| format!("dynamodb:{action}"))
        .collect();
    assert!(
        issued.contains("dynamodb:GetItem"),
        "the scan found nothing: {issued:?}"
    );
    let granted: BTreeSet<String> = granted_actions().into_iter().map(str::to_owned).collect();
    assert!(
        issued.is_subset(&granted),
        "the store can issue {issued:?}, the template grants {granted:?}"
    );
}

fn granted(f: &Function) -> BTreeSet<String> {
    f.policies[0]["Statement"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Action"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

#[test]
fn the_example_configuration_matches_the_emulators_and_samconfig() {
    let example = example_env();
    let expect = [
        (
            "TAILCHAT_APP_ID",
            hookline_tailchat::emulator::EMULATOR_APP_ID.to_owned(),
        ),
        (
            "TAILCHAT_APP_SECRET",
            hookline_tailchat::emulator::EMULATOR_APP_SECRET.to_owned(),
        ),
        (
            "TENCENT_SDKAPPID",
            hookline_tencent::emulator::EMULATOR_SDKAPPID.to_string(),
        ),
        (
            "TENCENT_SECRET_KEY",
            hookline_tencent::emulator::EMULATOR_SECRET_KEY.to_owned(),
        ),
        (
            "TENCENT_BOT_ID",
            hookline_tencent::emulator::EMULATOR_BOT_ID.to_owned(),
        ),
        (
            "DINGTALK_APP_SECRET",
            hookline_dingtalk::emulator::EMULATOR_APP_SECRET.to_owned(),
        ),
        (
            "DINGTALK_ROBOT_CODE",
            hookline_dingtalk::emulator::EMULATOR_ROBOT_CODE.to_owned(),
        ),
        (
            "DINGTALK_WEBHOOK_TOKEN",
            hookline_dingtalk::emulator::EMULATOR_ROBOT_TOKEN.to_owned(),
        ),
        (
            "DINGTALK_WEBHOOK_SECRET",
            hookline_dingtalk::emulator::EMULATOR_ROBOT_SECRET.to_owned(),
        ),
        (
            "TAMTAM_TOKEN",
            hookline_tamtam::emulator::EMULATOR_TOKEN.to_owned(),
        ),
        (
            "MAX_TOKEN",
            hookline_server::app::MAX_EMULATOR_TOKEN.to_owned(),
        ),
    ];
    for (var, value) in expect {
        assert_eq!(example.get(var), Some(&value), "infra/example.env {var}");
    }

    let t = template();
    let samconfig: toml::Value = toml::from_str(
        &std::fs::read_to_string(root().join("infra/samconfig.toml")).expect("samconfig.toml"),
    )
    .expect("samconfig.toml is TOML");
    let overrides: HashMap<String, String> =
        samconfig["local"]["local_invoke"]["parameters"]["parameter_overrides"]
            .as_array()
            .expect("parameter_overrides")
            .iter()
            .map(|o| {
                let (k, v) = o
                    .as_str()
                    .expect("string")
                    .split_once('=')
                    .expect("Name=value");
                (k.to_owned(), v.to_owned())
            })
            .collect();
    let mut example_vars = BTreeSet::new();
    for f in functions(&t) {
        for (var, value) in &f.env {
            let Setting::Ref(param) = value else { continue };
            if param == "StateTable" || param == "Queue" {
                continue;
            }
            example_vars.insert(var.clone());
            assert_eq!(
                overrides.get(param),
                example.get(var),
                "samconfig.toml [local] {param} and infra/example.env {var} differ"
            );
        }
    }
    let listed: BTreeSet<String> = example.keys().cloned().collect();
    assert_eq!(
        listed, example_vars,
        "infra/example.env sets other variables than the template"
    );
}

/// Forwards DynamoDB calls to the real server and notes each operation (`X-Amz-Target`).
#[derive(Clone)]
struct Recording {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn forward(
    State(rec): State<Recording>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let op = target.rsplit('.').next().unwrap_or(target);
        rec.seen.lock().unwrap().push(format!("dynamodb:{op}"));
    }
    let mut upstream = rec.http.request(method, format!("{}{uri}", rec.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.body(body).send().await.expect("DynamoDB server");
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out.insert(name, value.clone());
        }
    }
    (status, out, answer.bytes().await.expect("body"))
}

impl Recording {
    async fn start(upstream: String) -> (Self, String) {
        let rec = Recording {
            upstream,
            http: reqwest::Client::new(),
            seen: Arc::default(),
        };
        let url = hookline::runtime::serve_on_loopback(
            Router::new().fallback(forward).with_state(rec.clone()),
        )
        .await
        .expect("recording proxy");
        (rec, url)
    }

    /// The operations since the last call, in order.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

/// What a sample event must get.
struct Case {
    event: &'static str,
    binary: &'static str,
    /// The platform whose emulator records the reply, and the reply's text.
    reply: Option<(&'static str, &'static str)>,
    /// Signed with a time: the stored event itself is stale and must be refused.
    time_bound: bool,
}

const CASES: [Case; 7] = [
    Case {
        event: "tailchat",
        binary: "hookline-tailchat",
        reply: Some(("tailchat", "Your message: hello from infra/events")),
        time_bound: false,
    },
    Case {
        event: "tencent",
        binary: "hookline-tencent",
        reply: Some(("tencent", "Your message: hello from infra/events")),
        time_bound: true,
    },
    Case {
        event: "dingtalk",
        binary: "hookline-dingtalk",
        reply: Some(("dingtalk", "Your message: hello from infra/events")),
        time_bound: true,
    },
    Case {
        event: "dingtalk-notify",
        binary: "hookline-dingtalk",
        reply: Some(("dingtalk", "Nightly build #1207")),
        time_bound: false,
    },
    Case {
        event: "dingtalk-flush",
        binary: "hookline-dingtalk-flush",
        reply: None,
        time_bound: false,
    },
    Case {
        event: "tamtam",
        binary: "hookline-tamtam",
        reply: Some(("tamtam", "Your message: hello from infra/events")),
        time_bound: false,
    },
    Case {
        event: "max",
        binary: "hookline-max",
        reply: Some(("max", "Your message: hello from infra/events")),
        time_bound: false,
    },
];

fn event_file(name: &str) -> PathBuf {
    root().join(format!("infra/events/{name}.json"))
}

/// `hookline event <platform>` with the example configuration.
fn hookline_event(platform: &str, at: Option<i64>) -> String {
    let mut cmd = std::process::Command::new(workspace_bin("hookline"));
    cmd.env_clear()
        .envs(example_env())
        .arg("event")
        .arg(platform);
    cmd.arg("--file").arg(event_file(platform));
    if let Some(at) = at {
        cmd.arg("--at").arg(at.to_string());
    }
    let out = cmd.output().expect("hookline event");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn every_sample_event_has_a_case_and_the_signed_ones_are_signed_with_the_example_secrets() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("infra/events"))
        .expect("infra/events")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| format!("{}.json", c.event)).collect();
    cases.sort();
    assert_eq!(files, cases, "infra/events and this test's cases differ");
    for platform in PLATFORM_EVENTS {
        let stored = std::fs::read_to_string(event_file(platform)).unwrap();
        let event: Value = serde_json::from_str(&stored).unwrap();
        let at = event["requestContext"]["timeEpoch"]
            .as_i64()
            .expect("timeEpoch")
            / 1000;
        assert_eq!(
            hookline_event(platform, Some(at)),
            stored,
            "infra/events/{platform}.json is not what `hookline event {platform} --at {at}` makes of it with infra/example.env"
        );
    }
}

/// The events `hookline event` re-stamps: one per platform webhook.
const PLATFORM_EVENTS: [&str; 5] = ["tailchat", "tencent", "dingtalk", "tamtam", "max"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_runs_through_its_lambda_binary_with_the_templates_environment() {
    let Some(endpoint) = support::dynamodb_endpoint() else {
        return;
    };
    let table = format!("hookline-events-{:016x}", support::rand_id());
    let client = aws_sdk_dynamodb::Client::from_conf(dynamo_config(&endpoint).build());
    let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
    DynamoStore::new(client, table.clone(), clock)
        .create_table_if_missing()
        .await
        .expect("create the table");
    let (recording, proxy) = Recording::start(endpoint).await;

    // The platform APIs: the emulators of a `hookline serve` with no configuration.
    let serve_dir = tempfile::tempdir().expect("tempdir");
    let serve_data = serve_dir.path().display().to_string();
    let (mut serve, base) = start_serve(&[("HOOKLINE_DATA_DIR", serve_data)]).await;
    let here = base.trim_start_matches("http://").to_owned();
    let example = example_env();
    let t = template();
    let fns = functions(&t);
    for case in &CASES {
        let f = fns
            .iter()
            .find(|f| f.binary == case.binary)
            .expect("function");
        // Exactly the template's variables, with the example values and the local emulators.
        let mut env: Vec<(&str, String)> = f
            .env
            .iter()
            .map(|(var, value)| {
                let v = match value {
                    Setting::Ref(p) if p == "StateTable" => table.clone(),
                    _ => example.get(var).cloned().unwrap_or_default(),
                };
                (var.as_str(), v.replace("127.0.0.1:3000", &here))
            })
            .collect();
        env.push(("AWS_ENDPOINT_URL_DYNAMODB", proxy.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lambda = Lambda::start(&workspace_bin(case.binary), &env, dir.path()).await;

        let stored = std::fs::read_to_string(event_file(case.event)).unwrap();
        let fresh = if PLATFORM_EVENTS.contains(&case.event) {
            hookline_event(case.event, None)
        } else {
            stored.clone()
        };
        if case.time_bound {
            let answer = lambda.invoke(serde_json::from_str(&stored).unwrap()).await;
            assert_eq!(
                answer["statusCode"], 401,
                "{}: a stale signature: {answer}",
                case.event
            );
        }
        let event: Value = serde_json::from_str(&fresh.replace("127.0.0.1:3000", &here)).unwrap();
        let answer = lambda.invoke(event).await;
        let log = std::fs::read_to_string(&lambda.log).unwrap_or_default();
        match case.reply {
            Some((platform, text)) => {
                assert_eq!(answer["statusCode"], 200, "{}: {answer}\n{log}", case.event);
                let sent = emulator_sent(&base, platform).await;
                assert!(
                    sent.to_string().contains(text),
                    "{}: no reply {text:?} in {sent}\n{log}",
                    case.event
                );
            }
            // The flush answers with its report: nothing was queued.
            None => assert_eq!(
                answer,
                serde_json::json!({"digests": 0, "delivered": 0, "dead": 0, "pending": 0}),
                "{}\n{log}",
                case.event
            ),
        }
        // The template's HOOKLINE_METRICS=emf: the webhook's outcome, or the flush's digests
        // and queue depth, as EMF documents on stdout.
        let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default();
        let metric = match (case.event, case.reply) {
            // Not a webhook: the notify endpoint of your scripts.
            ("dingtalk-notify", _) => None,
            (_, Some(_)) => Some("\"events\""),
            (_, None) => Some("\"dingtalk_queue_depth\""),
        };
        if let Some(metric) = metric {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.contains("\"_aws\"") && l.contains(metric)),
                "{}: no EMF document with {metric} on stdout:\n{stdout}",
                case.event
            );
        }
        let calls = recording.take();
        eprintln!("{}: DynamoDB calls {calls:?}", case.event);
        let used: BTreeSet<String> = calls.into_iter().collect();
        let allowed = granted(f);
        assert!(
            used.is_subset(&allowed),
            "{} called {used:?} on DynamoDB; the template grants {allowed:?}",
            f.id
        );
        assert!(
            !used.is_empty(),
            "{}: the function never touched the table",
            f.id
        );
    }
    serve.start_kill().expect("stop serve");
}

#[test]
fn the_template_builds_a_crate_of_ones_own_after_use_in_crate() {
    // What the README tells a bot author to do: copy infra/ into the crate, run the script.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("infra")).unwrap();
    std::fs::copy(
        root().join("infra/template.yaml"),
        dir.path().join("infra/template.yaml"),
    )
    .unwrap();
    let out = std::process::Command::new(root().join("infra/use-in-crate.sh"))
        .arg("dicebot")
        .current_dir(dir.path())
        .output()
        .expect("sh runs infra/use-in-crate.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("infra/template.yaml")).unwrap();
    let theirs: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let ours = functions(&template());
    let converted = functions(&theirs);
    assert_eq!(converted.len(), ours.len());
    for (f, original) in converted.iter().zip(&ours) {
        assert_eq!(
            (f.binary.as_str(), f.code_uri.as_str()),
            ("dicebot", ".."),
            "{}",
            f.id
        );
        // The one binary learns which function it is from HOOKLINE_FUNCTION, which names the
        // function of the binary it replaces, and hookline_server::main runs it.
        let Some(Setting::Literal(function)) = f.env.get("HOOKLINE_FUNCTION") else {
            panic!("{}: no HOOKLINE_FUNCTION", f.id)
        };
        let binary = format!("hookline-{function}");
        assert_eq!(binary, original.binary, "{}", f.id);
        assert!(
            hookline_server::FUNCTIONS.contains(&function.as_str()),
            "{function}"
        );
        assert_eq!(f.env, original.env, "{}: nothing else changes", f.id);
    }
    // Nothing but those two lines changed.
    let before = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    let changed = before
        .lines()
        .zip(text.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 2 * ours.len());
    let bad = std::process::Command::new(root().join("infra/use-in-crate.sh"))
        .arg("no/such")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// Evaluates a condition of the template for the parameter values `params` (the intrinsic
/// functions the template's conditions use).
fn evaluate(v: &Yaml, t: &Yaml, params: &HashMap<&str, Yaml>) -> Yaml {
    let Yaml::Tagged(tagged) = v else {
        return v.clone();
    };
    let arg = |n: usize| evaluate(&tagged.value[n], t, params);
    match tagged.tag.to_string().trim_start_matches('!') {
        "Ref" => params[tagged.value.as_str().expect("!Ref name")].clone(),
        "Condition" => {
            let name = tagged.value.as_str().expect("condition name");
            evaluate(&t["Conditions"][name], t, params)
        }
        "Not" => Yaml::Bool(!arg(0).as_bool().expect("bool")),
        "And" => Yaml::Bool(
            (0..tagged.value.as_sequence().unwrap().len()).all(|n| arg(n).as_bool().unwrap()),
        ),
        "Equals" => Yaml::Bool(arg(0) == arg(1)),
        "Select" => {
            let list = arg(1);
            list[arg(0).as_u64().expect("index") as usize].clone()
        }
        "Split" => Yaml::Sequence(
            arg(1)
                .as_str()
                .expect("string")
                .split(arg(0).as_str().expect("separator"))
                .map(|p| Yaml::String(p.to_owned()))
                .collect(),
        ),
        "Join" => {
            let parts = match &tagged.value[1] {
                Yaml::Sequence(items) => items.iter().map(|i| evaluate(i, t, params)).collect(),
                other => evaluate(other, t, params).as_sequence().unwrap().clone(),
            };
            let parts: Vec<String> = parts
                .iter()
                .map(|p| p.as_str().expect("string").to_owned())
                .collect();
            Yaml::String(parts.join(arg(0).as_str().expect("separator")))
        }
        other => panic!("teach evaluate() !{other}"),
    }
}

#[test]
fn the_platforms_parameter_alone_decides_which_functions_are_deployed() {
    let t = template();
    let all = ["tailchat", "tencent", "dingtalk", "max", "tamtam"];
    let allowed: BTreeSet<&str> = t["Parameters"]["Platforms"]["AllowedValues"]
        .as_sequence()
        .expect("Platforms: AllowedValues")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, all.into_iter().collect());
    assert_eq!(t["Parameters"]["Platforms"]["Type"], "CommaDelimitedList");
    assert!(
        t["Parameters"]["Platforms"]["Default"].is_null(),
        "no default: sam deploy --guided asks, and a blank answer is refused"
    );
    let condition = |platform: &str| match platform {
        "tailchat" => "DeployTailchat",
        "tencent" => "DeployTencent",
        "dingtalk" => "DeployDingTalk",
        "max" => "DeployMax",
        "tamtam" => "DeployTamTam",
        other => panic!("{other}"),
    };
    let chosen: [&[&str]; 4] = [
        &["max"],
        &["tailchat", "dingtalk"],
        &all,
        &["tamtam", "max"],
    ];
    for list in chosen {
        // The secrets of every platform are set: only Platforms may decide.
        let mut params: HashMap<&str, Yaml> = t["Parameters"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, _)| {
                (
                    k.as_str().unwrap(),
                    Yaml::String("set-0123456789abcdef".into()),
                )
            })
            .collect();
        params.insert(
            "Platforms",
            Yaml::Sequence(list.iter().map(|p| Yaml::String((*p).into())).collect()),
        );
        for platform in all {
            let deployed = evaluate(&t["Conditions"][condition(platform)], &t, &params);
            assert_eq!(
                deployed.as_bool(),
                Some(list.contains(&platform)),
                "Platforms={list:?}: {platform}"
            );
        }
    }
    // A listed platform's credentials are required at deploy time by a rule of its own.
    for platform in all {
        let rule = t["Rules"]
            .as_mapping()
            .unwrap()
            .values()
            .find(|r| {
                let Yaml::Tagged(c) = &r["RuleCondition"] else {
                    return false;
                };
                c.tag == "Contains" && c.value[1] == platform
            })
            .unwrap_or_else(|| panic!("no rule for {platform}"));
        let asserted = format!("{:?}", rule["Assertions"]);
        for param in t["Parameters"].as_mapping().unwrap().keys() {
            let param = param.as_str().unwrap();
            let is_secret = t["Parameters"][param]["NoEcho"].as_bool().unwrap_or(false);
            let prefix = match platform {
                "tailchat" => "Tailchat",
                "tencent" => "Tencent",
                "dingtalk" => "DingTalk",
                "max" => "Max",
                _ => "TamTam",
            };
            let optional = [
                "DingTalkWebhookToken",
                "DingTalkWebhookSecret",
                "DingTalkNotifyToken",
            ];
            if is_secret && param.starts_with(prefix) && !optional.contains(&param) {
                assert!(
                    asserted.contains(&format!("\"{param}\"")),
                    "the {platform} rule does not require {param}"
                );
            }
        }
    }
}

#[test]
fn every_secret_parameter_is_checked_at_deploy_as_the_code_checks_it() {
    let t = template();
    let min_len: HashMap<&str, usize> = [
        ("TailchatCallbackToken", hookline_tailchat::MIN_TOKEN_LEN),
        ("TamTamCallbackToken", hookline_tamtam::MIN_TOKEN_LEN),
        ("TencentCallbackToken", hookline_tencent::MIN_TOKEN_LEN),
        ("DingTalkNotifyToken", hookline_dingtalk::MIN_TOKEN_LEN),
        ("ForwardSecret", hookline_bots::forward::MIN_SECRET_LEN),
        // MAX's own rule for a subscription secret: 5 to 256 of [A-Za-z0-9_-].
        ("MaxWebhookSecret", 5),
    ]
    .into();
    let mut secrets = 0;
    for (name, param) in t["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if !param["NoEcho"].as_bool().unwrap_or(false) {
            continue;
        }
        secrets += 1;
        let pattern = param["AllowedPattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a secret needs an AllowedPattern"));
        assert!(
            param["ConstraintDescription"].is_string(),
            "{name}: say what the pattern wants (ConstraintDescription)"
        );
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            re.is_match(""),
            "{name}: empty while its platform is not deployed"
        );
        assert!(!re.is_match("with a space"), "{name}: a pasted space");
        if let Some(&min) = min_len.get(name) {
            assert!(
                !re.is_match(&"a".repeat(min - 1)),
                "{name}: {} characters pass the template but not the code",
                min - 1
            );
            assert!(re.is_match(&"a".repeat(min)), "{name}: {min} characters");
        } else {
            assert!(re.is_match("tok-0123456789abcdef"), "{name}");
        }
    }
    assert!(secrets >= 13, "{secrets} secret parameters");
    // Tencent's console takes at most 128 characters; the code refuses more.
    let re = regex::Regex::new(
        t["Parameters"]["TencentCallbackToken"]["AllowedPattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(!re.is_match(&"a".repeat(129)));
}

#[test]
fn the_timeouts_fit_one_events_worst_case_retry_budget() {
    let t = template();
    let budget =
        hookline::http::RetryPolicy::default().max_elapsed + hookline::pipeline::DEADLINE_RESERVE;
    let webhook = t["Globals"]["Function"]["Timeout"]
        .as_u64()
        .expect("Globals Timeout");
    assert!(
        webhook > budget.as_secs(),
        "a webhook function's {webhook} s must exceed one call's retries and the reserve ({budget:?})"
    );
    let resources = &t["Resources"];
    let worker = resources["WorkerFunction"]["Properties"]["Timeout"]
        .as_u64()
        .expect("the worker's Timeout");
    assert!(worker > webhook, "the worker runs slow bots: {worker} s");
    let visibility = resources["Queue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    assert!(
        visibility >= 6 * worker,
        "Lambda's advice for an SQS source: visibility ≥ 6 × the function's timeout"
    );
    let logging = &t["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"], "JSON");
    assert_eq!(
        setting(&logging["ApplicationLogLevel"]),
        Setting::Ref("LogLevel".into())
    );
}
