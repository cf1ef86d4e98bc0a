//! `metric`: a counter on /metrics per event that reaches the step (filter with `when`), with
//! labels from templates, so users can alert on error rates by service without a stream
//! processor: `{ type = "metric", name = "app_log_events_total", labels = { level = "{{ level }}" } }`.
//! Distinct label sets are capped by `max_series`; events past the cap are counted under
//! `logship_pipeline_metric_series_overflow_total` instead.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{BuildError, Flow, Read, Step, StepConfig, StepFailure, template, template_reads};
use crate::event::Event;
use crate::pipeline::template::Template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prometheus name; `_total` is the convention for counters.
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "default_max_series")]
    max_series: usize,
}

const fn default_max_series() -> usize {
    1000
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        if !prometheus_name(&self.name, true) {
            return Err(BuildError::new(
                "name",
                format!(
                    "`{}` is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                    self.name
                ),
            ));
        }
        if self.name.starts_with("logship_") {
            return Err(BuildError::new(
                "name",
                "names starting with `logship_` are logship's own",
            ));
        }
        let mut labels = Vec::new();
        for (label, value) in &self.labels {
            if !prometheus_name(label, false) || label.starts_with("__") {
                return Err(BuildError::new(
                    format!("labels.{label}"),
                    "is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with `__`)",
                ));
            }
            labels.push((label.clone(), template(&format!("labels.{label}"), value)?));
        }
        Ok(Step::Metric(Metric {
            name: self.name,
            labels,
            max_series: self.max_series.max(1),
            series: HashMap::new(),
            overflow: None,
            buffer: String::new(),
        }))
    }
}

fn prometheus_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

#[derive(Debug)]
pub struct Metric {
    name: String,
    labels: Vec<(String, Template)>,
    max_series: usize,
    /// Counters by their label values joined with U+001F.
    series: HashMap<String, metrics::Counter>,
    overflow: Option<metrics::Counter>,
    buffer: String,
}

impl Clone for Metric {
    /// Clones share the counters through the recorder: the same name and labels are one series.
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            labels: self.labels.clone(),
            max_series: self.max_series,
            series: HashMap::new(),
            overflow: None,
            buffer: String::new(),
        }
    }
}

impl Metric {
    pub fn apply(&mut self, event: &Event) -> Result<Flow, StepFailure> {
        self.buffer.clear();
        for (_, value) in &self.labels {
            // A missing field is an empty label value, as Prometheus treats absent labels.
            let _ = value.render_into(event, &mut self.buffer);
            self.buffer.push('\u{1f}');
        }
        if let Some(counter) = self.series.get(&self.buffer) {
            counter.increment(1);
            return Ok(Flow::Next);
        }
        if self.series.len() >= self.max_series {
            self.overflow
                .get_or_insert_with(|| crate::metrics::metric_series_overflow(&self.name))
                .increment(1);
            return Ok(Flow::Next);
        }
        let labels: Vec<metrics::Label> = self
            .labels
            .iter()
            .zip(self.buffer.split('\u{1f}'))
            .map(|((name, _), value)| metrics::Label::new(name.clone(), value.to_owned()))
            .collect();
        let counter = metrics::counter!(self.name.clone(), labels);
        counter.increment(1);
        self.series.insert(self.buffer.clone(), counter);
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        self.labels
            .iter()
            .flat_map(|(name, t)| template_reads(&format!("labels.{name}"), t))
            .collect()
    }
}
