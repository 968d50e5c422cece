//! Links the `hookline` command with packed relative relocations (DT_RELR) where the glibc it is
//! built against and runs on has them (2.36 and later). A PIE Rust binary carries some 35,000
//! relative relocations; as `.rela.dyn` the loader reads ~800 KB of them at every start, as
//! `.relr.dyn` ~10 KB, so `serve` starts with ~0.7 MiB less resident memory (README,
//! Benchmarks). The binary stays position-independent (ASLR unchanged).
//!
//! Only for `hookline`, never a Lambda function (they are other binaries, and Amazon Linux 2023
//! has glibc 2.34), and only for a native build with the default linker: a cross build, or one
//! through another linker (cargo-lambda's zig), gets the usual relocations.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("TARGET") == var("HOST") && var("TARGET").ends_with("-linux-gnu");
    if !native || std::env::var_os("RUSTC_LINKER").is_some() {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bin=hookline=-Wl,-z,pack-relative-relocs");
    }
}

/// The host's glibc (`getconf GNU_LIBC_VERSION` says `glibc 2.36`).
fn glibc_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.trim().strip_prefix("glibc ")?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
