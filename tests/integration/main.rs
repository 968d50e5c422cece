//! hookline's integration tests: one binary; fake platforms are real HTTP servers on loopback.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod bot_api; // a bot's errors and panics through the real pipeline (hookline_server::testing), also under Lambda
mod cli; // the hookline command line through the built binary: exit codes, completions, --help, doctor --json, event, simulate
#[path = "../benches/common.rs"]
mod common; // shared with the benches: release binaries, a Tailchat mention
mod crash; // kill -9 of serve under load: restart, redeliver, nothing twice, nothing acknowledged lost
mod deferred; // deferred mode: webhook → SQS (moto) → worker, retries, the dead-letter queue, partial batches
mod deploy; // infra/: the SAM template against the binaries and their variables; the sample events
mod dingtalk; // DingTalk fixtures, the notify endpoint, the sliding-window budget and digests
mod doctor; // hookline doctor against the emulators: credentials checked, nothing sent, no secret printed
mod fake_lambda;
mod footprint; // one TLS and HTTP stack in Cargo.lock; the function order hookline is linked with
mod forward; // the forward bridge: the Python example behind serve, the retry rule, the JSON Schema // a fake Lambda Runtime API and a function process started against it
mod lambda; // the hookline-tailchat binary driven through a fake Lambda Runtime API
mod max; // MAX: the secret header, subnets, Authorization only, limits, setup and the scheduled check, MAX_CA_PEM over loopback TLS
mod readme; // the README's "Write your own bot" crate: built from the README, simulated, run under Lambda
mod realworld; // the third-party corpus in ../shared/realworld through every router, signed afresh
mod serve; // the hookline binary: serve, healthz, simulate --url
mod store_contract; // the StateStore contract, on the embedded store and on DynamoDB (moto)
mod support; // fixtures, loopback servers, store wrappers, dependency builders
mod tailchat; // Tailchat fixtures through the router against the Tailchat emulator
mod tamtam; // TamTam fixtures through the router against the TamTam emulator; X-Forwarded-For over TCP
mod telemetry;
mod tencent; // Tencent fixtures through the router against the Tencent REST emulator // the webhook log line, Lambda's log controls, EMF on stdout validated against its schema
