//! `sample`: keeps one event in `rate`. With a `key` template the choice follows a hash of the
//! key, so every event with one key (a trace id, say) is kept or dropped together, on every node.

use serde::Deserialize;

use super::{BuildError, Flow, Read, Step, StepConfig, template, template_reads};
use crate::event::Event;
use crate::pipeline::template::Template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keep one event in this many.
    rate: u64,
    #[serde(default)]
    key: Option<String>,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        if self.rate == 0 {
            return Err(BuildError::new("rate", "must be at least 1"));
        }
        Ok(Step::Sample(Sample {
            rate: self.rate,
            key: self
                .key
                .as_deref()
                .map(|k| template("key", k))
                .transpose()?,
            seen: 0,
            buffer: String::new(),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    rate: u64,
    key: Option<Template>,
    seen: u64,
    buffer: String,
}

/// A checksum that every build and node computes alike (CRC32C), so one key samples the same
/// way everywhere and after upgrades.
fn stable_hash(text: &str) -> u64 {
    u64::from(crc32c::crc32c(text.as_bytes()))
}

impl Sample {
    pub fn apply(&mut self, event: &Event) -> Flow {
        let keep = match &self.key {
            Some(key) => {
                self.buffer.clear();
                // An event without the key is sampled like the rest, by count.
                match key.render_into(event, &mut self.buffer) {
                    Ok(()) => stable_hash(&self.buffer) % self.rate == 0,
                    Err(_) => self.count(),
                }
            }
            None => self.count(),
        };
        if keep {
            Flow::Next
        } else {
            Flow::Drop("sampled")
        }
    }

    fn count(&mut self) -> bool {
        let keep = self.seen % self.rate == 0;
        self.seen = self.seen.wrapping_add(1);
        keep
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        self.key
            .as_ref()
            .map(|k| template_reads("key", k))
            .unwrap_or_default()
    }
}
