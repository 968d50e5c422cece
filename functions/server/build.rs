//! Link options for the `hookline` command (never a Lambda function: they are other binaries,
//! Amazon Linux 2023 has glibc 2.34, and cargo-lambda links them through zig). Both apply only to
//! a native build through rustc's own linker; a cross build, or one through another linker
//! (`RUSTC_LINKER`, a `-C linker` in the flags), gets neither. See the README's Benchmarks.
//!
//! - Packed relative relocations (DT_RELR), where the glibc it is built against and runs on has
//!   them (2.36 and later). A PIE Rust binary carries some 35,000 relative relocations; as
//!   `.rela.dyn` the loader reads ~800 KB of them at every start, as `.relr.dyn` ~10 KB. The
//!   binary stays position-independent (ASLR unchanged).
//! - Function order (`hookline.order`, made by `tests/order-functions`): the functions that
//!   start-up runs first, then those a webhook runs, the rest after. Code is mapped 64 KB at a
//!   time around each page start-up touches, and start-up touches some 1,700 functions spread
//!   over the whole 9 MB of code; laid out together they take 1.2 MB. Only lld reads the file
//!   (rustc links with it by default on x86_64 Linux since 1.90). Its names carry the hashes of
//!   one `Cargo.lock`, rustc and the release profile; a name the build no longer has is skipped,
//!   so a stale file only orders less.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=hookline.order");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let target = var("TARGET");
    let native = target == var("HOST") && target.ends_with("-linux-gnu");
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = std::env::var_os("RUSTC_LINKER").is_none()
        && !flags.contains("linker")
        && !flags.contains("link-self-contained")
        && !flags.contains("fuse-ld");
    if !native || !own_linker {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bin=hookline=-Wl,-z,pack-relative-relocs");
    }
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("hookline.order");
    if target == "x86_64-unknown-linux-gnu"
        && rustc_minor().is_some_and(|m| m >= 90)
        && order.exists()
    {
        println!(
            "cargo:rustc-link-arg-bin=hookline=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=hookline=-Wl,--no-warn-symbol-ordering");
    }
}

/// The host's glibc (`getconf GNU_LIBC_VERSION` says `glibc 2.36`).
fn glibc_version() -> Option<(u32, u32)> {
    let text = output("getconf", "GNU_LIBC_VERSION")?;
    let mut parts = text.trim().strip_prefix("glibc ")?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The minor version of the rustc building this (`rustc 1.95.0 (…)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let text = output(&rustc, "--version")?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

fn output(program: &str, arg: &str) -> Option<String> {
    let out = std::process::Command::new(program).arg(arg).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}
