//! `throttle`: at most `events_per_second` per key (one budget when no `key`), with bursts up to
//! `burst`; events over budget are dropped and counted. governor's keyed rate limiter keeps the
//! budgets (one set per pipeline, shared by the sources that use it); keys beyond `max_keys` share
//! one overflow budget so memory stays bounded, and keys quiet for a minute give theirs up.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use super::{BuildError, Flow, Read, Step, StepConfig, template, template_reads};
use crate::event::Event;
use crate::pipeline::template::Template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    events_per_second: u32,
    /// Events allowed at once above the steady rate; `events_per_second` when unset.
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    key: Option<String>,
    /// Most distinct keys with budgets of their own.
    #[serde(default = "default_max_keys")]
    max_keys: usize,
}

const fn default_max_keys() -> usize {
    10_000
}

/// The key of events past `max_keys`.
const OVERFLOW_KEY: &str = "\u{0}overflow";

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let rate = NonZeroU32::new(self.events_per_second)
            .ok_or_else(|| BuildError::new("events_per_second", "must be at least 1"))?;
        let burst = match self.burst {
            Some(b) => {
                NonZeroU32::new(b).ok_or_else(|| BuildError::new("burst", "must be at least 1"))?
            }
            None => rate,
        };
        Ok(Step::Throttle(Throttle {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            key: self
                .key
                .as_deref()
                .map(|k| template("key", k))
                .transpose()?,
            max_keys: self.max_keys.max(1),
            admitted: HashSet::new(),
            pruned: Instant::now(),
            buffer: String::new(),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Throttle {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    key: Option<Template>,
    max_keys: usize,
    /// Keys with budgets of their own; past `max_keys`, new keys share the overflow budget.
    admitted: HashSet<String>,
    /// When `admitted` and the limiter were last cleared of keys not seen lately.
    pruned: Instant,
    buffer: String,
}

/// How often keys that went quiet give up their budgets.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

impl Throttle {
    pub fn apply(&mut self, event: &Event) -> Flow {
        self.buffer.clear();
        if let Some(key) = &self.key
            && key.render_into(event, &mut self.buffer).is_err()
        {
            self.buffer.clear();
        }
        if self.pruned.elapsed() >= PRUNE_INTERVAL {
            self.limiter.retain_recent();
            self.admitted.clear();
            self.pruned = Instant::now();
        }
        if !self.admitted.contains(&self.buffer) {
            if self.admitted.len() < self.max_keys {
                self.admitted.insert(self.buffer.clone());
            } else {
                self.buffer.clear();
                self.buffer.push_str(OVERFLOW_KEY);
            }
        }
        match self.limiter.check_key(&self.buffer) {
            Ok(()) => Flow::Next,
            Err(_) => Flow::Drop("throttled"),
        }
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        self.key
            .as_ref()
            .map(|k| template_reads("key", k))
            .unwrap_or_default()
    }
}
