//! Agent health as /health reports it: whether Kafka is reachable, whether the spool can be
//! written, whether deliveries make progress, and which sources are down (a journald source
//! whose journalctl is not running). Written by the producer, read by the API server.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Shared health state.
#[derive(Debug)]
pub struct Health {
    kafka_reachable: AtomicBool,
    /// Times below are milliseconds since `epoch` (a monotonic clock: a wall-clock step cannot
    /// fake a stall).
    epoch: Instant,
    /// The last broker probe that was answered, and the last record Kafka did not take (a
    /// timeout, a failed replay).
    probe_answered_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    /// Cleared while writes to the spool fail (a full disk, for example).
    spool_writable: AtomicBool,
    in_flight: AtomicI64,
    /// Records wait in the spool (or to be written to it): the producer is spooling.
    spooling: AtomicBool,
    /// librdkafka's stall clock: the last delivery, or when records started waiting in
    /// librdkafka after an idle time (replayed records count from when they were sent).
    last_progress_ms: AtomicU64,
    /// The report's stall clock: when events started waiting anywhere (librdkafka or the
    /// spool) after an idle time; a replay attempt does not restart it.
    waiting_since_ms: AtomicU64,
    /// The last delivery, or the start when nothing was delivered yet (for the report).
    last_delivery_ms: AtomicU64,
    stall_after: Duration,
    /// Sources that cannot read (their ids).
    sources_down: Mutex<BTreeSet<String>>,
}

/// What /health answers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    pub healthy: bool,
    pub kafka_reachable: bool,
    pub spool_writable: bool,
    pub events_in_flight: i64,
    /// Events wait in the disk spool (or to be written to it) for Kafka.
    pub spooling: bool,
    pub seconds_since_last_delivery: u64,
    pub stalled: bool,
    /// Sources that cannot read now, by id.
    pub sources_down: Vec<String>,
}

impl Health {
    /// Deliveries count as stalled when records wait and none was acknowledged for `stall_after`.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            kafka_reachable: AtomicBool::new(false),
            epoch: Instant::now(),
            spool_writable: AtomicBool::new(true),
            probe_answered_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            spooling: AtomicBool::new(false),
            last_progress_ms: AtomicU64::new(0),
            waiting_since_ms: AtomicU64::new(0),
            last_delivery_ms: AtomicU64::new(0),
            stall_after,
            sources_down: Mutex::new(BTreeSet::new()),
        }
    }

    /// A source stopped (or resumed) reading.
    pub fn set_source_down(&self, source: &str, down: bool) {
        let mut sources = self.sources_down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            sources.insert(source.to_owned());
        } else {
            sources.remove(source);
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    pub fn set_kafka_reachable(&self, reachable: bool) {
        self.kafka_reachable.store(reachable, Ordering::Relaxed);
    }

    /// A metadata probe of the brokers finished; `answered` says whether they replied.
    pub fn probed(&self, answered: bool) {
        if answered {
            self.probe_answered_ms
                .store(self.now_ms(), Ordering::Relaxed);
        }
        self.set_kafka_reachable(answered);
    }

    /// Kafka did not take a record just now (or, at start, records wait from an earlier run).
    pub fn delivery_failed(&self) {
        self.last_failure_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether a broker probe was answered after the last `delivery_failed` (in a later
    /// millisecond: an answer in the same one may have come before): the brokers answer again.
    pub fn answered_since_failure(&self) -> bool {
        self.probe_answered_ms.load(Ordering::Relaxed)
            > self.last_failure_ms.load(Ordering::Relaxed)
    }

    pub fn kafka_reachable(&self) -> bool {
        self.kafka_reachable.load(Ordering::Relaxed)
    }

    pub fn set_spool_writable(&self, writable: bool) {
        self.spool_writable.store(writable, Ordering::Relaxed);
    }

    /// A record was handed to librdkafka. The first record to wait starts the stall clocks
    /// (after an idle time, no delivery is overdue yet); while the spool holds records, events
    /// have been waiting all along, so the report's clock keeps running.
    pub fn sent(&self) {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) <= 0 {
            let now = self.now_ms();
            self.last_progress_ms.store(now, Ordering::Relaxed);
            if !self.spooling.load(Ordering::Relaxed) {
                self.waiting_since_ms.store(now, Ordering::Relaxed);
            }
        }
    }

    /// The producer started (or stopped) spooling: events wait in the spool until it drains.
    pub fn set_spooling(&self, spooling: bool) {
        self.spooling.store(spooling, Ordering::Relaxed);
    }

    /// A record's delivery report arrived `at`; `delivered` is false when it failed.
    pub fn reported(&self, delivered: bool, at: Instant) {
        if delivered {
            self.delivered(1, at);
        } else {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// `records` delivery reports of success arrived by `at`.
    pub fn delivered(&self, records: usize, at: Instant) {
        self.in_flight.fetch_sub(records as i64, Ordering::Relaxed);
        let ms = self.ms(at);
        self.last_progress_ms.store(ms, Ordering::Relaxed);
        self.last_delivery_ms.store(ms, Ordering::Relaxed);
        self.kafka_reachable.store(true, Ordering::Relaxed);
    }

    /// Events wait (in librdkafka or in the spool) and none was delivered for `limit`, nor
    /// since they started waiting: what /health calls stalled.
    fn waiting_stalled_for(&self, limit: Duration) -> bool {
        let waiting = self.in_flight() > 0 || self.spooling.load(Ordering::Relaxed);
        let progress = self
            .last_delivery_ms
            .load(Ordering::Relaxed)
            .max(self.waiting_since_ms.load(Ordering::Relaxed));
        waiting && self.now_ms().saturating_sub(progress) >= limit.as_millis() as u64
    }

    /// Records wait in librdkafka and none was delivered for `limit` (nor since they were
    /// sent after an idle time): the producer then takes them back for the spool.
    pub fn stalled_for(&self, limit: Duration) -> bool {
        let since = self
            .now_ms()
            .saturating_sub(self.last_progress_ms.load(Ordering::Relaxed));
        self.in_flight() > 0 && since >= limit.as_millis() as u64
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn report(&self) -> HealthReport {
        let in_flight = self.in_flight();
        let since = self
            .now_ms()
            .saturating_sub(self.last_delivery_ms.load(Ordering::Relaxed))
            / 1000;
        let stalled = self.waiting_stalled_for(self.stall_after);
        let kafka_reachable = self.kafka_reachable();
        let spool_writable = self.spool_writable.load(Ordering::Relaxed);
        let sources_down: Vec<String> = self
            .sources_down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        HealthReport {
            healthy: kafka_reachable && spool_writable && !stalled && sources_down.is_empty(),
            kafka_reachable,
            spool_writable,
            events_in_flight: in_flight,
            spooling: self.spooling.load(Ordering::Relaxed),
            seconds_since_last_delivery: since,
            stalled,
            sources_down,
        }
    }
}

impl crate::api::Report for Health {
    fn report(&self) -> (bool, serde_json::Value) {
        let report = Health::report(self);
        // A struct of plain fields always serializes.
        (
            report.healthy,
            serde_json::to_value(&report).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_kafka_is_reached() {
        let health = Health::new(Duration::from_secs(30));
        assert!(!health.report().healthy);
        health.set_kafka_reachable(true);
        assert!(health.report().healthy);
    }

    #[test]
    fn answers_count_only_after_the_last_failure() {
        let health = Health::new(Duration::from_secs(30));
        health.probed(true);
        health.delivery_failed();
        std::thread::sleep(Duration::from_millis(2));
        assert!(!health.answered_since_failure(), "the answer came before");
        health.probed(false);
        assert!(!health.answered_since_failure());
        std::thread::sleep(Duration::from_millis(2));
        health.probed(true);
        assert!(health.answered_since_failure());
    }

    #[test]
    fn waiting_records_without_deliveries_are_a_stall() {
        let health = Health::new(Duration::ZERO);
        health.set_kafka_reachable(true);
        health.sent();
        assert!(health.report().stalled);
        assert!(!health.report().healthy);
        health.reported(true, Instant::now());
        assert!(!health.report().stalled, "nothing waits any more");
    }

    #[test]
    fn events_waiting_in_the_spool_stall_even_while_replays_are_retried() {
        let health = Health::new(Duration::from_millis(30));
        health.set_kafka_reachable(true);
        health.sent();
        // The records are taken back into the spool: nothing in librdkafka, events still wait.
        health.set_spooling(true);
        health.reported(false, Instant::now());
        std::thread::sleep(Duration::from_millis(40));
        // A replay attempt restarts librdkafka's clock, not the report's.
        health.sent();
        assert!(
            !health.stalled_for(Duration::from_millis(30)),
            "replay gets its own time"
        );
        let report = health.report();
        assert!(report.stalled && !report.healthy, "{report:?}");
        health.reported(false, Instant::now());
        assert!(health.report().stalled, "only the spool holds them now");
        health.sent();
        health.reported(true, Instant::now());
        health.set_spooling(false);
        assert!(!health.report().stalled, "delivered and drained");
    }
}
