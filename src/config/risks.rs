//! Settings that are valid but can lose data by design: `logship validate` warns about each (and
//! `run` logs them at start), naming the key, so choosing one is never an accident.

use super::{Config, Oversize, ReadFrom, SourceSettings, WhenFull};

impl Config {
    /// One line per risky setting: `key: what it costs`.
    pub fn risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        for (id, source) in &self.sources {
            if let SourceSettings::File(file) = source
                && file.read_from == ReadFrom::End
            {
                risks.push(format!(
                    "sources.{id}.read_from = \"end\": lines already in a file when it is first found are never shipped"
                ));
            }
        }
        if self
            .spool
            .as_ref()
            .is_some_and(|spool| spool.when_full == WhenFull::DropNewest)
        {
            risks.push(
                "spool.when_full = \"drop_newest\": when the spool is full, new events are dropped (counted in logship_spool_records_dropped_total)"
                    .to_owned(),
            );
        }
        if self.kafka.give_up_after.is_some() && self.kafka.exhausted_to.is_none() {
            risks.push(
                "kafka.retry_max_elapsed_secs with on_retry_exhausted = \"drop\": records Kafka does not take in time are dropped (counted)"
                    .to_owned(),
            );
        }
        if self.kafka.records.oversize == Oversize::Drop {
            risks.push(
                "kafka.oversize = \"drop\": events larger than max_message_bytes are dropped (counted)"
                    .to_owned(),
            );
        }
        risks
    }
}
