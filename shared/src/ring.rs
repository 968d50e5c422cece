//! A bounded record: the last N entries of something that would otherwise grow without bound
//! (the built-in emulators' ledgers of what the bot sent, in a long-running `hookline serve`).

use std::collections::VecDeque;

/// How many entries a [`Ring`] keeps by default.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The last `capacity` entries pushed, oldest first, and how many were pushed in all.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    total: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<T> Ring<T> {
    /// An empty ring keeping at most `capacity` (at least one) entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            total: 0,
        }
    }

    /// Records `item`, forgetting the oldest entry when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
        self.total += 1;
    }

    /// How many entries were ever pushed.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }
}

impl<T: Clone> Ring<T> {
    /// The kept entries, oldest first.
    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_entries_and_counts_them_all() {
        let mut ring = Ring::with_capacity(3);
        for i in 0..10 {
            ring.push(i);
        }
        assert_eq!(ring.to_vec(), vec![7, 8, 9]);
        assert_eq!(ring.total(), 10);
    }
}
