//! Shared test helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hookline::async_trait;
use hookline::clock::SharedClock;
use hookline::http::{HttpClient, RetryPolicy};
use hookline::pipeline::Deps;
use hookline::store::{EmbeddedStore, Item, Key, SharedStore, StateStore, StoreError};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A fixture file's bytes (`tests/fixtures/<path>`).
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// A fixture parsed as JSON.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// POSTs `body` to `/?query` through `router` (no network); returns the status and body text.
pub async fn post(router: &Router, query: &str, body: Vec<u8>) -> (StatusCode, String) {
    post_from(router, None, query, body).await
}

/// Like [`post`], with the client address the runtime would have found (`ClientIp`).
pub async fn post_from(
    router: &Router,
    ip: Option<&str>,
    query: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    post_with(router, ip, query, &[], body).await
}

/// Like [`post_from`], with extra request headers.
pub async fn post_with(
    router: &Router,
    ip: Option<&str>,
    query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut builder =
        Request::post(format!("/?{query}")).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::from(body)).expect("request");
    if let Some(ip) = ip {
        request
            .extensions_mut()
            .insert(hookline::runtime::ClientIp(ip.parse().expect("ip")));
    }
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The DynamoDB-protocol server `tests/run-all` started (`HOOKLINE_TEST_DYNAMODB_ENDPOINT`).
///
/// Without it a DynamoDB test fails, unless `HOOKLINE_SKIP_DYNAMODB=1` asks to skip it outside
/// CI; under CI (`CI` set) a skip is refused: the DynamoDB suite must run there.
pub fn dynamodb_endpoint() -> Option<String> {
    if let Some(endpoint) = std::env::var("HOOKLINE_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    {
        return Some(endpoint);
    }
    let skip = std::env::var("HOOKLINE_SKIP_DYNAMODB").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        skip && !ci,
        "HOOKLINE_TEST_DYNAMODB_ENDPOINT is not set: run the suite with tests/run-all, which starts a \
         DynamoDB-protocol server (or set HOOKLINE_SKIP_DYNAMODB=1 to skip these cases locally; never in CI)"
    );
    eprintln!("SKIPPED: a DynamoDB case (HOOKLINE_SKIP_DYNAMODB=1)");
    None
}

/// An SQS client for the moto server at `endpoint`: fixed region, dummy credentials, nothing
/// read from the environment.
pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "hookline-tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A fresh random number, for unique table names.
pub fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A free loopback port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// An embedded store in a temporary folder (kept alive by the returned guard).
pub fn embedded(clock: SharedClock) -> (SharedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("state.redb"), clock).expect("open store");
    (Arc::new(store), dir)
}

/// Test dependencies: the default bot and a client with short backoffs.
pub fn deps(store: SharedStore, clock: SharedClock) -> Deps {
    let policy = RetryPolicy {
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    Deps {
        store,
        clock,
        bot: Arc::new(hookline_bots::echo::bot()),
        http: HttpClient::with_policy(policy, std::time::Duration::from_secs(5)).expect("client"),
        deferral: Default::default(),
    }
}

/// A binary of the workspace, built by `cargo build --workspace --bins` (the test command does).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/integration-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins; tests/run-all does)",
        bin.display()
    );
    bin
}

/// A store that counts writes, to prove that a rejected request stored nothing.
#[derive(Debug)]
pub struct CountingStore {
    inner: SharedStore,
    writes: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: SharedStore) -> Self {
        Self {
            inner,
            writes: AtomicUsize::new(0),
        }
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl StateStore for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        self.wrote();
        self.inner.put(key, value, expires_at).await
    }
    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.wrote();
        self.inner
            .compare_and_set(key, expected, value, expires_at)
            .await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.wrote();
        self.inner.delete(key).await
    }
    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        self.wrote();
        self.inner.delete_if(key, value).await
    }
    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        self.inner.query_prefix(pk, sk_prefix).await
    }
}

/// A store whose writes of a COMPLETED idempotency record fail (the store went down right
/// after the reply was sent); everything else passes through.
#[derive(Debug)]
pub struct NoCompleteStore(pub SharedStore);

#[async_trait]
impl StateStore for NoCompleteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        if value.contains("COMPLETED") {
            return Err(down());
        }
        self.0.put(key, value, expires_at).await
    }
    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.0
            .compare_and_set(key, expected, value, expires_at)
            .await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        self.0.delete_if(key, value).await
    }
    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        self.0.query_prefix(pk, sk_prefix).await
    }
}

/// A store that is down.
#[derive(Debug)]
pub struct DownStore;

fn down() -> StoreError {
    StoreError::Unavailable("test: the store is down".into())
}

#[async_trait]
impl StateStore for DownStore {
    async fn get(&self, _: &Key) -> Result<Option<Item>, StoreError> {
        Err(down())
    }
    async fn put(&self, _: &Key, _: &str, _: Option<i64>) -> Result<(), StoreError> {
        Err(down())
    }
    async fn compare_and_set(
        &self,
        _: &Key,
        _: Option<&str>,
        _: &str,
        _: Option<i64>,
    ) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn delete(&self, _: &Key) -> Result<(), StoreError> {
        Err(down())
    }
    async fn delete_if(&self, _: &Key, _: &str) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn query_prefix(&self, _: &str, _: &str) -> Result<Vec<(String, Item)>, StoreError> {
        Err(down())
    }
}

/// `infra/example.env` as `KEY=value` pairs.
pub fn example_env() -> std::collections::HashMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/example.env");
    std::fs::read_to_string(path)
        .expect("infra/example.env")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

/// What the emulator of `platform` in the `hookline serve` at `base` recorded as sent.
pub async fn emulator_sent(base: &str, platform: &str) -> Value {
    reqwest::get(format!("{base}/_emulator/{platform}/sent"))
        .await
        .expect("emulator")
        .json()
        .await
        .expect("JSON")
}

/// The callback token of [`start_tailchat`]'s function.
pub const TAILCHAT_TOKEN: &str = "lambda-test-callback-token-0001";

/// A Tailchat emulator and `bin` started against it as the `tailchat` function of a crate's one
/// binary (`HOOKLINE_FUNCTION=tailchat`), as the SAM template would run it.
pub async fn start_tailchat(
    bin: &Path,
    dir: &Path,
) -> (
    hookline_tailchat::emulator::TailchatEmulator,
    crate::fake_lambda::Lambda,
) {
    const SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
    let emu = hookline_tailchat::emulator::TailchatEmulator::new(
        "tc_app",
        SECRET,
        "6552f3a0c3b1e2a9d4f01234",
    );
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let env = [
        ("HOOKLINE_FUNCTION", "tailchat".to_owned()),
        ("TAILCHAT_URL", api_url),
        ("TAILCHAT_APP_ID", "tc_app".into()),
        ("TAILCHAT_APP_SECRET", SECRET.into()),
        ("TAILCHAT_CALLBACK_TOKEN", TAILCHAT_TOKEN.into()),
        ("RUST_LOG", "info".into()),
    ];
    let lambda = crate::fake_lambda::Lambda::start(bin, &env, dir).await;
    (emu, lambda)
}

/// A Function URL event of the Tailchat group fixture saying `text`, with message id `id`.
pub fn tailchat_message(id: &str, text: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tailchat/message_group.json");
    let mut body: Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON");
    body["payload"]["messageId"] = id.into();
    body["payload"]["messageSnippet"] = text.into();
    crate::fake_lambda::function_url_event(
        &format!("token={TAILCHAT_TOKEN}"),
        &serde_json::to_vec(&body).expect("JSON"),
        "203.0.113.9",
    )
}

/// A loopback HTTPS server whose certificate is signed by a fresh test CA (for `MAX_CA_PEM`).
pub mod tls {
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `body` as JSON to every request on `https://127.0.0.1:<port>`; returns the test
    /// CA's certificate (PEM) and the base URL. Stops with the test's runtime.
    pub async fn https_api(body: serde_json::Value) -> (String, String) {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookline test root CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let payload = body.to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, payload) = (acceptor.clone(), payload.clone());
                tokio::spawn(async move {
                    // An untrusting client hangs up during the handshake: nothing to answer.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                        payload.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (ca_cert.pem(), url)
    }
}
