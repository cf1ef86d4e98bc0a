//! The memory budget (`memory_limit_bytes`): how many bytes of events may wait between the
//! sources and librdkafka, and the charge each batch carries on its way.
//!
//! A source charges a batch before it sends it and waits while the budget is spent, so it stops
//! reading: the same backpressure as a full channel, counted in bytes across every source. The
//! charge travels with the batch; a pipeline re-measures it after its steps (parsed fields make
//! an event larger than its line) without waiting, and the producer gives it back once it has
//! handed the batch's records on: to librdkafka, or into its spooling queue (`held`, the
//! spooler's pending records: at most one batch waits there uncharged). Only sources wait, and they hold no
//! charge while they do, so the budget cannot deadlock; a pipeline's growth may overdraw it
//! until the batches it grew are handed on. librdkafka's own queue is bounded by
//! `queue_max_bytes` and `queue_max_events`, which the configuration carves out of the same
//! `memory_limit_bytes` (`config::MemoryPlan`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::{Counter, Gauge, counter, gauge};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::event::Event;
use crate::metrics::{MEMORY_CHARGED, MEMORY_EVENTS_BUDGET, MEMORY_WAITS};

/// What one event costs beyond its line and fields: the `Event` itself, its place in the batch
/// vector and the allocator's rounding.
pub const EVENT_OVERHEAD: usize = 256;
/// One JSON object of up to 11 fields (a B-tree node of `String` keys and `Value`s).
const OBJECT_NODE: usize = 640;
const OBJECT_NODE_FIELDS: usize = 11;

/// The bytes a batch of events is charged for: each line, each field, and a fixed cost per event
/// and per object. An estimate of what the allocator holds, not an exact count.
pub fn charge_for(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| {
            let fields = if e.fields.is_empty() {
                0
            } else {
                object_bytes(&e.fields)
            };
            e.message.as_ref().map_or(0, String::capacity) + EVENT_OVERHEAD + fields
        })
        .sum()
}

fn object_bytes(map: &Map<String, Value>) -> usize {
    let nodes = map.len().div_ceil(OBJECT_NODE_FIELDS).max(1);
    nodes * OBJECT_NODE
        + map
            .iter()
            .map(|(k, v)| k.capacity() + value_bytes(v))
            .sum::<usize>()
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.capacity(),
        Value::Array(items) => {
            items.capacity() * std::mem::size_of::<Value>()
                + items.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => object_bytes(map),
    }
}

/// The bytes of events that may wait between the sources and librdkafka, shared by all sources.
#[derive(Clone)]
pub struct MemoryBudget(Arc<Inner>);

struct Inner {
    /// Set once at start, and again when a reload adds or removes sources (their read buffers
    /// come out of the same `memory_limit_bytes`).
    limit: AtomicUsize,
    used: AtomicUsize,
    /// Woken when bytes are given back.
    freed: Notify,
    charged: Gauge,
    waits: Counter,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        gauge!(MEMORY_EVENTS_BUDGET).set(limit as f64);
        Self(Arc::new(Inner {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            freed: Notify::new(),
            charged: gauge!(MEMORY_CHARGED),
            waits: counter!(MEMORY_WAITS),
        }))
    }

    /// Takes `bytes` from the budget, waiting while they do not fit. When nothing is charged, a
    /// batch larger than the whole budget still goes, alone.
    pub async fn charge(&self, bytes: usize) -> Charge {
        let inner = &self.0;
        let mut counted = false;
        loop {
            let freed = inner.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the two is not missed.
            freed.as_mut().enable();
            let mut used = inner.used.load(Ordering::Acquire);
            let limit = inner.limit.load(Ordering::Acquire);
            while used == 0 || used + bytes <= limit {
                match inner.used.compare_exchange_weak(
                    used,
                    used + bytes,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.show();
                        return Charge {
                            budget: Some(self.clone()),
                            bytes,
                        };
                    }
                    Err(now) => used = now,
                }
            }
            if !std::mem::replace(&mut counted, true) {
                inner.waits.increment(1);
            }
            freed.await;
        }
    }

    /// A new limit, from a reloaded configuration. Charges held stay; a smaller limit makes the
    /// next charges wait until they are given back, a larger one lets waiting sources go on.
    pub fn set_limit(&self, limit: usize) {
        gauge!(MEMORY_EVENTS_BUDGET).set(limit as f64);
        self.0.limit.store(limit, Ordering::Release);
        self.0.freed.notify_waiters();
    }

    /// Bytes charged now.
    pub fn charged(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    fn show(&self) {
        self.0.charged.set(self.charged() as f64);
    }
}

/// Bytes a batch holds of the budget; given back when dropped.
pub struct Charge {
    budget: Option<MemoryBudget>,
    bytes: usize,
}

impl Charge {
    /// No charge: for events made outside a source's read (held events a pipeline flushes on
    /// its timer, tests).
    pub fn none() -> Self {
        Self {
            budget: None,
            bytes: 0,
        }
    }

    /// Makes the charge `bytes`, at once: a pipeline's estimate after its steps.
    pub fn resize(&mut self, bytes: usize) {
        let Some(budget) = &self.budget else {
            return;
        };
        let inner = &budget.0;
        if bytes > self.bytes {
            inner.used.fetch_add(bytes - self.bytes, Ordering::AcqRel);
        } else {
            inner.used.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            inner.freed.notify_waiters();
        }
        self.bytes = bytes;
        budget.show();
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.resize(0);
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

/// Events on their way from a source to the producer, with the budget they hold.
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<Event>,
    pub charge: Charge,
}

impl Batch {
    /// A batch that holds nothing of the budget.
    pub fn uncharged(events: Vec<Event>) -> Self {
        Self {
            events,
            charge: Charge::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Starts a charge of `bytes` and checks that it waits.
    async fn waiting_charge(
        budget: &MemoryBudget,
        bytes: usize,
    ) -> tokio::task::JoinHandle<Charge> {
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.charge(bytes).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "waits while the budget is spent");
        waiting
    }

    /// The charge `waiting` went through (within a second).
    async fn went_on(waiting: tokio::task::JoinHandle<Charge>) -> Charge {
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("goes on once bytes are given back")
            .expect("task")
    }

    #[tokio::test]
    async fn a_spent_budget_makes_the_next_charge_wait_until_one_is_dropped() {
        let budget = MemoryBudget::new(1000);
        let first = budget.charge(600).await;
        let second = budget.charge(400).await;
        assert_eq!(budget.charged(), 1000);
        let waiting = waiting_charge(&budget, 300).await;
        drop(first);
        let third = went_on(waiting).await;
        assert_eq!(budget.charged(), 700);
        drop((second, third));
        assert_eq!(budget.charged(), 0);
    }

    #[tokio::test]
    async fn a_resized_charge_may_overdraw_and_holds_sources_back_until_given_back() {
        let budget = MemoryBudget::new(1000);
        let mut grown = budget.charge(500).await;
        grown.resize(1500);
        assert_eq!(budget.charged(), 1500);
        let waiting = waiting_charge(&budget, 100).await;
        grown.resize(800);
        let small = went_on(waiting).await;
        assert_eq!(budget.charged(), 900);
        drop((grown, small));
        assert_eq!(budget.charged(), 0);
    }

    #[tokio::test]
    async fn a_larger_limit_lets_a_waiting_charge_go_on() {
        let budget = MemoryBudget::new(1000);
        let held = budget.charge(800).await;
        let waiting = waiting_charge(&budget, 400).await;
        budget.set_limit(1200);
        let next = went_on(waiting).await;
        assert_eq!(budget.charged(), 1200);
        budget.set_limit(500);
        drop(next);
        let waiting = waiting_charge(&budget, 100).await;
        drop(held);
        drop(went_on(waiting).await);
        assert_eq!(budget.charged(), 0);
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_budget_goes_alone() {
        let budget = MemoryBudget::new(1000);
        let big = budget.charge(5000).await;
        assert_eq!(budget.charged(), 5000);
        let small = waiting_charge(&budget, 1).await;
        drop(big);
        let small = went_on(small).await;
        assert_eq!(budget.charged(), 1);
        drop(small);
    }

    #[test]
    fn an_event_is_charged_its_line_fields_and_the_fixed_costs() {
        let origin = crate::event::FileOrigin {
            host: "h".into(),
            path: "/p".into(),
            offset: 0,
        };
        let line = String::with_capacity(100);
        let mut event = Event::from_file_line(line, chrono::Utc::now(), origin);
        assert_eq!(
            charge_for(std::slice::from_ref(&event)),
            100 + EVENT_OVERHEAD
        );
        // {"service": {"name": "api"}}: two objects, two keys, one string.
        let service = serde_json::json!({ "name": "api" });
        event.fields.insert("service".to_owned(), service);
        let fields = 2 * OBJECT_NODE + "service".len() + "name".len() + "api".len();
        assert_eq!(charge_for(&[event]), 100 + EVENT_OVERHEAD + fields);
    }
}
