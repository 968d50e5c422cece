//! Example bots: `echo.rs`, `poll.rs`, `remind.rs` and `forward.rs` (with `forward_endpoint.py`,
//! a bot in Python behind the forward bridge). Run one with
//! `cargo run --example poll -- serve` or `-- simulate tailchat "/poll Lunch? | pizza | sushi"`.
