//! A sink's health as /health reports it: whether the brokers answer, and whether writes are
//! blocked on something only an operator can fix (credentials, a request the destination refuses
//! as a whole). Written by the consumer and the writers, read by the API server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use metrics::{Gauge, gauge};
use serde::Serialize;

use super::metrics::BLOCKED;
use crate::metrics::LogLimiter;

/// Shared health state.
#[derive(Debug)]
pub struct SinkHealth {
    kafka_reachable: AtomicBool,
    partitions: AtomicUsize,
    /// Why writes are blocked, while they are.
    blocked: Mutex<Option<String>>,
    /// `logship_sink_blocked`, kept in step with `blocked`.
    blocked_gauge: Gauge,
    log: LogLimiter,
}

impl Default for SinkHealth {
    fn default() -> Self {
        Self {
            kafka_reachable: AtomicBool::new(false),
            partitions: AtomicUsize::new(0),
            blocked: Mutex::new(None),
            blocked_gauge: gauge!(BLOCKED),
            log: LogLimiter::per_minute(12),
        }
    }
}

/// What /health answers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SinkHealthReport {
    pub healthy: bool,
    pub kafka_reachable: bool,
    pub partitions_assigned: usize,
    /// Set while the destination refuses writes in a way retrying alone does not fix.
    pub blocked: Option<String>,
}

impl SinkHealth {
    pub fn set_kafka_reachable(&self, reachable: bool) {
        self.kafka_reachable.store(reachable, Ordering::Relaxed);
    }

    pub fn set_partitions(&self, assigned: usize) {
        self.partitions.store(assigned, Ordering::Relaxed);
    }

    /// Writes are refused in a way retrying alone may not fix: /health turns red with `reason`,
    /// `logship_sink_blocked` reads 1, and a rate-limited error says why.
    pub fn block(&self, reason: String) {
        if self.log.allow() {
            tracing::error!(%reason, "destination refuses writes; holding every record until it takes them");
        }
        self.blocked_gauge.set(1.0);
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    /// Writes go through (again).
    pub fn unblock(&self) {
        if self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            tracing::info!("destination takes writes again");
            self.blocked_gauge.set(0.0);
        }
    }

    pub fn report(&self) -> SinkHealthReport {
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let kafka_reachable = self.kafka_reachable.load(Ordering::Relaxed);
        SinkHealthReport {
            healthy: kafka_reachable && blocked.is_none(),
            kafka_reachable,
            partitions_assigned: self.partitions.load(Ordering::Relaxed),
            blocked,
        }
    }
}

impl crate::api::Report for SinkHealth {
    fn report(&self) -> (bool, serde_json::Value) {
        let report = SinkHealth::report(self);
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
    fn blocked_writes_are_unhealthy_until_they_go_through() {
        let health = SinkHealth::default();
        assert!(!health.report().healthy, "no broker answered yet");
        health.set_kafka_reachable(true);
        assert!(health.report().healthy);
        health.block("403 security_exception".into());
        let report = health.report();
        assert!(!report.healthy);
        assert_eq!(report.blocked.as_deref(), Some("403 security_exception"));
        health.unblock();
        assert!(health.report().healthy);
    }
}
