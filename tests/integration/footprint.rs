//! What the binaries link: one TLS stack (the AWS SDK on the same hyper 1 / rustls 0.23 client as
//! reqwest), checked on `Cargo.lock`, so a dependency change that brings the legacy stack back
//! (hyper 0.14, rustls 0.21, h2 0.3, webpki 0.101 with its advisories) fails here.

use std::collections::BTreeMap;

#[test]
fn the_lock_file_holds_one_tls_and_http_stack() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock"))
            .expect("Cargo.lock is TOML");
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        versions
            .entry(name)
            .or_default()
            .push(package["version"].as_str().expect("version"));
    }
    for name in [
        "rustls",
        "rustls-webpki",
        "hyper",
        "hyper-rustls",
        "tokio-rustls",
        "h2",
    ] {
        // (`http` 0.2 stays: aws-sdk-dynamodb depends on it for type conversions; no I/O.)
        let found = versions.get(name).cloned().unwrap_or_default();
        assert_eq!(
            found.len(),
            1,
            "{name}: {found:?} in Cargo.lock (one stack only)"
        );
    }
}
