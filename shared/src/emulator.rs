//! What every platform emulator of `hookline serve` and the tests keeps: the calls it carried
//! out (a bounded [`Ring`]), how many it was asked for, and the failures a test asks it to
//! inject: a refusal for the next call, or "carry it out, then answer an error" (the ambiguous
//! failure a lost answer is). Each emulator adds its platform's own state as `S`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use axum::http::StatusCode;
use serde_json::Value;

use crate::ring::Ring;

/// An emulator's ledger: `F` is how its platform refuses a call, `S` its own state.
#[derive(Debug)]
pub struct Ledger<F, S = ()> {
    book: Mutex<Book<F, S>>,
}

/// The ledger's contents, under its lock.
#[derive(Debug)]
pub struct Book<F, S = ()> {
    /// Every call carried out, oldest first (the last [`crate::ring::DEFAULT_CAPACITY`]).
    pub calls: Ring<Value>,
    /// Calls asked for, refused ones included.
    pub attempts: usize,
    /// What the next calls meet: `Some` a refusal, `None` lets one through.
    pub failures: VecDeque<Option<F>>,
    /// Calls to carry out and then answer with this status.
    pub post_then_fail: VecDeque<StatusCode>,
    /// The platform's own state.
    pub state: S,
}

impl<F, S> Book<F, S> {
    /// The refusal the call that got this far meets, if one was injected (callers count the
    /// call in `attempts` when it arrives, and ask this once it is authenticated).
    pub fn next_failure(&mut self) -> Option<F> {
        self.failures.pop_front().flatten()
    }

    /// Records a call carried out; the status to answer instead of success, if one was
    /// injected with [`Ledger::post_then_fail_next`].
    pub fn record(&mut self, call: Value) -> Option<StatusCode> {
        self.calls.push(call);
        self.post_then_fail.pop_front()
    }
}

impl<F, S> Ledger<F, S> {
    /// A ledger starting from `state`.
    pub fn new(state: S) -> Self {
        Self {
            book: Mutex::new(Book {
                calls: Ring::default(),
                attempts: 0,
                failures: VecDeque::new(),
                post_then_fail: VecDeque::new(),
                state,
            }),
        }
    }

    /// The contents, locked. A panic while the lock was held cannot leave a fake's ledger
    /// half-updated in a way that matters: keep serving.
    pub fn book(&self) -> MutexGuard<'_, Book<F, S>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call carried out, in order.
    pub fn calls(&self) -> Vec<Value> {
        self.book().calls.to_vec()
    }

    /// Calls carried out so far, including those the ring no longer holds.
    pub fn total(&self) -> usize {
        self.book().calls.total()
    }

    /// Calls asked for so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.book().attempts
    }

    /// Makes the next call meet `refusal`.
    pub fn fail_next(&self, refusal: F) {
        self.book().failures.push_back(Some(refusal));
    }

    /// Lets the next call through (to make a later one fail).
    pub fn pass_next(&self) {
        self.book().failures.push_back(None);
    }

    /// Makes the next call go through and then answer `status`, as a gateway that lost the
    /// answer would.
    pub fn post_then_fail_next(&self, status: StatusCode) {
        self.book().post_then_fail.push_back(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_failures_are_met_in_order_and_recorded_calls_kept() {
        let ledger: Ledger<&str, u8> = Ledger::new(7);
        ledger.pass_next();
        ledger.fail_next("busy");
        ledger.post_then_fail_next(StatusCode::BAD_GATEWAY);
        let mut book = ledger.book();
        assert_eq!(book.next_failure(), None);
        assert_eq!(book.next_failure(), Some("busy"));
        assert_eq!(book.next_failure(), None);
        book.attempts += 3;
        assert_eq!(
            book.record(serde_json::json!(1)),
            Some(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(book.record(serde_json::json!(2)), None);
        assert_eq!(book.state, 7);
        drop(book);
        assert_eq!(ledger.attempts(), 3);
        assert_eq!(
            ledger.calls(),
            vec![serde_json::json!(1), serde_json::json!(2)]
        );
    }
}
