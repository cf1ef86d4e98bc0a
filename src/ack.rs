//! Ordered acknowledgements: a source position advances only past events that are settled.
//!
//! A source registers each event's end position as it reads it and hands the returned token along
//! with the event. The producer settles a token when Kafka acknowledged the record (or when the
//! event was given up for a counted reason). The tracker's position is the end of the longest
//! settled prefix, so for a file it is always the start of the oldest line not yet delivered,
//! never the read position. A token dropped unsettled (for example on shutdown) holds the position
//! back for good, which is what makes a restart resend that event rather than lose it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Tracks one stream's events in read order (one file, one journal, one HTTP request).
#[derive(Debug)]
pub struct AckTracker<P> {
    state: Mutex<State<P>>,
}

#[derive(Debug)]
struct State<P> {
    /// Sequence number of `pending[0]`.
    front_seq: u64,
    /// End positions of tracked events, oldest first, with whether each is settled.
    pending: VecDeque<(P, bool)>,
    /// End of the settled prefix: everything up to here is delivered.
    position: P,
}

/// Settles one event. Not `Clone`: one event, one settlement.
#[derive(Debug)]
pub struct AckToken {
    settle: Arc<dyn Settle>,
    seq: u64,
    /// Tokens of events merged into this one (partial container lines): settled with it.
    absorbed: Vec<AckToken>,
}

trait Settle: Send + Sync + std::fmt::Debug {
    fn settle(&self, seq: u64);

    /// Settles several events of this stream at once.
    fn settle_many(&self, seqs: &[u64]) {
        for &seq in seqs {
            self.settle(seq);
        }
    }
}

impl<P: Clone + Send + std::fmt::Debug + 'static> AckTracker<P> {
    /// A tracker whose position starts at `position` (the stream's checkpoint).
    pub fn new(position: P) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                front_seq: 0,
                pending: VecDeque::new(),
                position,
            }),
        })
    }

    /// Registers the next event, which ends at `end`, and returns the token that settles it.
    pub fn track(self: &Arc<Self>, end: P) -> AckToken {
        let mut state = self.lock();
        let seq = state.front_seq + state.pending.len() as u64;
        state.pending.push_back((end, false));
        self.token(seq)
    }

    /// Registers the next events, which end at `ends` in order, under one lock (a read turn's
    /// lines), and returns their tokens.
    pub fn track_all(self: &Arc<Self>, ends: impl IntoIterator<Item = P>) -> Vec<AckToken> {
        let mut state = self.lock();
        let first = state.front_seq + state.pending.len() as u64;
        state
            .pending
            .extend(ends.into_iter().map(|end| (end, false)));
        let last = state.front_seq + state.pending.len() as u64;
        drop(state);
        (first..last).map(|seq| self.token(seq)).collect()
    }

    /// The token that settles event `seq` of this tracker.
    fn token(self: &Arc<Self>, seq: u64) -> AckToken {
        AckToken {
            settle: Arc::clone(self) as Arc<dyn Settle>,
            seq,
            absorbed: Vec::new(),
        }
    }

    /// The end of the settled prefix: where a restart must resume.
    pub fn position(&self) -> P {
        self.lock().position.clone()
    }

    /// How many tracked events are not settled yet, or wait behind one that is not.
    pub fn outstanding(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, State<P>> {
        // A panic while holding this lock cannot leave the state half-updated: every update is a
        // single push, flag set or pop. Keep going with the data as it is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<P: Clone + Send + std::fmt::Debug + 'static> Settle for AckTracker<P> {
    fn settle(&self, seq: u64) {
        self.settle_many(&[seq]);
    }

    /// One lock for all of them: the delivery reports of one produce request are mostly of one
    /// file.
    fn settle_many(&self, seqs: &[u64]) {
        let mut state = self.lock();
        for &seq in seqs {
            let Some(index) = seq.checked_sub(state.front_seq) else {
                continue;
            };
            if let Some(entry) = state.pending.get_mut(index as usize) {
                entry.1 = true;
            }
        }
        while state.pending.front().is_some_and(|(_, settled)| *settled) {
            if let Some((end, _)) = state.pending.pop_front() {
                state.position = end;
                state.front_seq += 1;
            }
        }
    }
}

/// Settles a group of events as one: done once every token is settled (the events of one HTTP
/// request, which is answered then).
#[derive(Debug)]
pub struct Countdown {
    remaining: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl Countdown {
    /// A countdown of `events` and their tokens.
    pub fn new(events: usize) -> (Arc<Self>, Vec<AckToken>) {
        let countdown = Arc::new(Self {
            remaining: std::sync::atomic::AtomicUsize::new(events),
            done: tokio::sync::Notify::new(),
        });
        let tokens = (0..events as u64)
            .map(|seq| AckToken {
                settle: Arc::clone(&countdown) as Arc<dyn Settle>,
                seq,
                absorbed: Vec::new(),
            })
            .collect();
        (countdown, tokens)
    }

    /// Returns once every token is settled. A token dropped unsettled keeps it waiting.
    pub async fn settled(&self) {
        loop {
            let done = self.done.notified();
            if self.remaining.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }
}

impl Settle for Countdown {
    fn settle(&self, _seq: u64) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.done.notify_waiters();
        }
    }
}

impl AckToken {
    /// The event is delivered (or deliberately given up and counted): its position may pass.
    pub fn settle(self) {
        self.settle.settle(self.seq);
        for token in self.absorbed {
            token.settle();
        }
    }

    /// Settles every token, taking each tracker's lock once per run of tokens that share it.
    pub fn settle_all(tokens: impl IntoIterator<Item = AckToken>) {
        let mut run: Vec<u64> = Vec::new();
        let mut current: Option<Arc<dyn Settle>> = None;
        for AckToken {
            settle,
            seq,
            absorbed,
        } in tokens
        {
            if current.as_ref().is_some_and(|c| !Arc::ptr_eq(c, &settle)) {
                if let Some(done) = current.take() {
                    done.settle_many(&run);
                }
                run.clear();
            }
            current.get_or_insert(settle);
            run.push(seq);
            for token in absorbed {
                token.settle();
            }
        }
        if let Some(done) = current {
            done.settle_many(&run);
        }
    }

    /// Takes over `other`, whose event was merged into this token's event: settling this token
    /// settles both, and dropping it holds both positions back.
    pub fn absorb(&mut self, other: AckToken) {
        self.absorbed.push(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_countdown_is_done_when_every_token_is_settled() {
        let (countdown, mut tokens) = Countdown::new(2);
        tokens.pop().expect("token").settle();
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), countdown.settled());
        assert!(waiting.await.is_err(), "one token is still out");
        let last = tokens.pop().expect("token");
        let wait = tokio::spawn({
            let countdown = Arc::clone(&countdown);
            async move { countdown.settled().await }
        });
        tokio::task::yield_now().await;
        last.settle();
        tokio::time::timeout(std::time::Duration::from_secs(1), wait)
            .await
            .expect("done")
            .expect("task");
        let (empty, _) = Countdown::new(0);
        empty.settled().await;
    }

    #[test]
    fn position_waits_for_the_oldest_unsettled_event() {
        let tracker = AckTracker::new(0u64);
        let a = tracker.track(10);
        let b = tracker.track(25);
        let c = tracker.track(40);
        assert_eq!(tracker.outstanding(), 3);

        b.settle();
        assert_eq!(tracker.position(), 0, "b is delivered but a is not");
        c.settle();
        assert_eq!(tracker.position(), 0);
        a.settle();
        assert_eq!(tracker.position(), 40);
        assert_eq!(tracker.outstanding(), 0);
    }

    #[test]
    fn tokens_tracked_together_follow_the_ones_tracked_alone() {
        let tracker = AckTracker::new(0u64);
        let first = tracker.track(5);
        let mut turn = tracker.track_all([10, 20, 30]);
        let last = tracker.track(40);
        assert_eq!(tracker.outstanding(), 5);
        let c = turn.pop().expect("token");
        let b = turn.pop().expect("token");
        let a = turn.pop().expect("token");
        AckToken::settle_all([b, last]);
        first.settle();
        assert_eq!(
            tracker.position(),
            5,
            "the turn's first line is not delivered"
        );
        a.settle();
        assert_eq!(tracker.position(), 20);
        c.settle();
        assert_eq!(tracker.position(), 40);
        assert!(tracker.track_all(std::iter::empty()).is_empty());
    }

    #[test]
    fn dropped_token_holds_the_position_back() {
        let tracker = AckTracker::new(5u64);
        let a = tracker.track(10);
        let b = tracker.track(20);
        a.settle();
        drop(b);
        assert_eq!(tracker.position(), 10);
        let c = tracker.track(30);
        c.settle();
        assert_eq!(tracker.position(), 10, "nothing passes an unsettled event");
    }

    #[test]
    fn settles_from_many_threads_in_any_order() {
        let tracker = AckTracker::new(0u64);
        let tokens: Vec<_> = (1..=1000u64).map(|i| tracker.track(i * 10)).collect();
        let mut handles = Vec::new();
        let mut chunks: Vec<Vec<AckToken>> = (0..4).map(|_| Vec::new()).collect();
        for (i, t) in tokens.into_iter().enumerate() {
            chunks[i % 4].push(t);
        }
        for mut chunk in chunks {
            chunk.reverse();
            handles.push(std::thread::spawn(move || {
                chunk.into_iter().for_each(AckToken::settle)
            }));
        }
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(tracker.position(), 10_000);
    }

    #[test]
    fn settling_all_at_once_settles_each_tracker() {
        let a = AckTracker::new(0u64);
        let b = AckTracker::new(0u64);
        let (countdown, mut counted) = Countdown::new(1);
        let held = a.track(5);
        let tokens = vec![
            a.track(10),
            b.track(7),
            b.track(9),
            counted.pop().expect("token"),
            a.track(20),
        ];
        AckToken::settle_all(tokens);
        assert_eq!(b.position(), 9);
        assert_eq!(a.position(), 0, "the first of a is not settled");
        assert_eq!(a.outstanding(), 3);
        assert_eq!(
            countdown
                .remaining
                .load(std::sync::atomic::Ordering::Acquire),
            0
        );
        held.settle();
        assert_eq!(a.position(), 20);
    }

    #[test]
    fn absorbed_tokens_settle_with_the_one_that_took_them() {
        let tracker = AckTracker::new(0u64);
        let first_part = tracker.track(10);
        let mut last_part = tracker.track(20);
        last_part.absorb(first_part);
        assert_eq!(tracker.outstanding(), 2);
        last_part.settle();
        assert_eq!(tracker.position(), 20);
        assert_eq!(tracker.outstanding(), 0);
    }
}
