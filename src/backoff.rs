//! Exponential backoff with jitter, for anything retried until it works: spool replays in the
//! agent, bulk requests in the sinks.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Exponential backoff with full jitter: each wait is random in [base/2, current], and current
/// doubles up to `max`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
    random: RandomState,
    attempt: u64,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            current: base,
            random: RandomState::new(),
            attempt: 0,
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        self.attempt += 1;
        let low = self.base / 2;
        let span = self.current.saturating_sub(low).as_millis() as u64;
        let jitter = self.random.hash_one(self.attempt) % span.max(1);
        self.current = (self.current * 2).min(self.max);
        low + Duration::from_millis(jitter)
    }

    pub fn reset(&mut self) {
        self.current = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_its_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_millis(50)));
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(1000)));
        assert!(waits[6..].iter().any(|w| *w > Duration::from_millis(200)));
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(100));
    }
}
