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

/// `functions/server/hookline.order`, the function order `hookline` is linked with (build.rs;
/// made by `tests/order-functions`): lld skips what it cannot find without a word, so a file
/// damaged by hand or by a merge would only make `serve` bigger. Its header's counts, one symbol
/// per line, each once, and start-up's group holding what start-up surely runs.
#[test]
fn the_function_order_is_one_symbol_per_line_start_up_first() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("functions/server/hookline.order"))
        .expect("functions/server/hookline.order");
    let count = |label: &str| -> usize {
        let line = text
            .lines()
            .find(|l| l.starts_with('#') && l.contains(label))
            .unwrap_or_else(|| panic!("a header line with {label:?}"));
        let after = &line[line.find(label).expect("label") + label.len()..];
        let digits: String = after
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a count")
    };
    let (start_up, webhooks) = (count("start-up:"), count("webhooks:"));
    let names: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(names.len(), start_up + webhooks, "the header's counts");
    assert!(
        start_up > 500,
        "start-up runs more than {start_up} functions"
    );
    let symbol = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_$.".contains(c))
    };
    if let Some(bad) = names.iter().find(|n| !symbol(n)) {
        panic!("not a symbol name: {bad:?}");
    }
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "each name once");
    let first = &names[..start_up];
    for (what, part) in [
        ("the command's entry", "hookline_server"),
        ("the embedded store's open", "EmbeddedStore"),
        ("the Tailchat router", "hookline_tailchat"),
    ] {
        assert!(
            first.iter().any(|n| n.contains(part)),
            "start-up's group has {what} ({part})"
        );
    }
}
