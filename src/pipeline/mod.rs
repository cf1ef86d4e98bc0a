//! Pipelines: the ordered steps that turn a raw line into the event users want in Kafka.
//!
//! - `path`, `access`: field paths, and reading and writing an event's fields by path.
//! - `condition`, `template`: the expression language of `when` and `{{ field }}` templates.
//! - `parse/`: the pure parsers (syslog, logfmt, container lines, timestamps).
//! - `steps/`: the steps, a closed set, compiled once when the configuration loads.
//! - `known`: the load-time check that every field a step reads can exist by then.
//! - `cases`: `[[tests]]` written in the configuration, run by `logship test`.
//!
//! A source's batches pass through its pipeline on a task of their own between the source and
//! the producer (`run`). Every event leaves a pipeline in one of four ways, each counted: kept,
//! dropped on purpose (its acknowledgement settles, so the checkpoint passes it), sent to the
//! dead-letter topic, or merged into a later event that carries its acknowledgement.

pub mod access;
pub mod cases;
pub mod condition;
pub mod known;
pub mod parse;
pub mod path;
pub mod steps;
pub mod template;

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::event::Event;
use crate::memory::Batch;
use crate::metrics::PipelineMetrics;
use condition::Condition;
use path::{FieldPath, Fields};
use steps::{Flow, Step, StepFailure};

/// What a parser does with input it cannot parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Keep the event as it is, with `error.message` and `error.type` saying what failed.
    #[default]
    Keep,
    /// Drop the event (counted).
    Drop,
    /// Send the event, as it was when the step failed, to `[kafka] dead_letter_topic`, with the
    /// reason in `error.message`; no later step runs.
    DeadLetter,
}

/// One step with the settings every step shares.
#[derive(Debug, Clone)]
pub struct Stage {
    pub step: Step,
    /// The step runs only for events this holds for.
    pub when: Option<Condition>,
    pub on_error: OnError,
    /// `<index>:<type>`, for metrics and logs.
    pub label: Arc<str>,
}

/// A compiled pipeline. Each source that uses it gets its own copy (`Clone`), with its own state
/// (held partial lines, sample counters).
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: Arc<str>,
    pub stages: Vec<Stage>,
    dead_letter_topic: Option<Arc<str>>,
    error_message: FieldPath,
    error_type: FieldPath,
    metrics: Option<PipelineMetrics>,
}

/// What became of one event.
#[derive(Debug)]
pub enum Outcome {
    Kept(Event),
    Dropped { reason: &'static str },
    DeadLettered(Event),
    Absorbed,
}

impl Outcome {
    /// The event that goes on to Kafka, kept or dead-lettered.
    pub fn into_event(self) -> Option<Event> {
        match self {
            Outcome::Kept(event) | Outcome::DeadLettered(event) => Some(event),
            Outcome::Dropped { .. } | Outcome::Absorbed => None,
        }
    }
}

/// A pipeline could not be built (the configuration loader turns this into a key path).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PipelineError(pub String);

impl Pipeline {
    pub fn new(
        name: &str,
        stages: Vec<Stage>,
        dead_letter_topic: Option<Arc<str>>,
    ) -> Result<Self, PipelineError> {
        let parse = |p: &str| FieldPath::parse(p).map_err(|e| PipelineError(e.to_string()));
        Ok(Self {
            name: Arc::from(name),
            stages,
            dead_letter_topic,
            error_message: parse("error.message")?,
            error_type: parse("error.type")?,
            metrics: None,
        })
    }

    /// Counts outcomes on /metrics from now on (the agent's copies; `logship test` leaves it).
    pub fn with_metrics(mut self) -> Self {
        self.metrics = Some(PipelineMetrics::new(&self.name));
        self
    }

    /// Runs one event through every stage.
    pub fn process(&mut self, event: Event) -> Outcome {
        self.process_from(event, 0)
    }

    /// Runs one event through the stages from `first` on.
    fn process_from(&mut self, mut event: Event, first: usize) -> Outcome {
        for index in first..self.stages.len() {
            let stage = &mut self.stages[index];
            if let Some(when) = &stage.when
                && !when.eval(&event)
            {
                continue;
            }
            match stage.step.apply(&mut event) {
                Ok(Flow::Next) => {}
                Ok(Flow::Drop(reason)) => return self.dropped(event, reason),
                Ok(Flow::Absorbed) => return Outcome::Absorbed,
                Err(failure) => {
                    let (on_error, label) = (stage.on_error, Arc::clone(&stage.label));
                    if let Some(m) = &mut self.metrics {
                        m.step_failed(&label, failure.kind, &failure.reason);
                    }
                    match on_error {
                        OnError::Keep => self.mark(&mut event, &label, &failure),
                        OnError::Drop => return self.dropped(event, "on_error"),
                        OnError::DeadLetter => {
                            self.mark(&mut event, &label, &failure);
                            event.topic = self.dead_letter_topic.clone();
                            if let Some(m) = &self.metrics {
                                m.dead_lettered.increment(1);
                            }
                            return Outcome::DeadLettered(event);
                        }
                    }
                }
            }
        }
        Outcome::Kept(event)
    }

    /// Runs a batch; what is kept or dead-lettered goes on, in order.
    pub fn process_batch(&mut self, batch: Vec<Event>) -> Vec<Event> {
        let mut out = Vec::with_capacity(batch.len());
        for event in batch {
            out.extend(self.process(event).into_event());
        }
        out
    }

    /// Events held past their time (partial container lines), through the rest of the pipeline.
    pub fn flush_expired(&mut self, now: std::time::Instant) -> Vec<Event> {
        self.flush(|step| step.flush_expired(now))
    }

    /// Every event held, through the rest of the pipeline: the source stopped.
    pub fn flush_all(&mut self) -> Vec<Event> {
        self.flush(Step::flush_all)
    }

    fn flush(&mut self, mut held: impl FnMut(&mut Step) -> Vec<Event>) -> Vec<Event> {
        let mut out = Vec::new();
        for index in 0..self.stages.len() {
            for event in held(&mut self.stages[index].step) {
                out.extend(self.process_from(event, index + 1).into_event());
            }
        }
        out
    }

    fn dropped(&mut self, mut event: Event, reason: &'static str) -> Outcome {
        if let Some(m) = &mut self.metrics {
            m.dropped(reason);
        }
        // Dropped on purpose and counted: the source may move past it.
        if let Some(token) = event.ack.take() {
            token.settle();
        }
        Outcome::Dropped { reason }
    }

    /// Records a failure on the event; the first one stays (the root cause), later ones are
    /// only counted.
    fn mark(&self, event: &mut Event, label: &str, failure: &StepFailure) {
        if event.field(&self.error_type).is_some() {
            return;
        }
        let message = serde_json::Value::String(failure.reason.clone());
        let kind = serde_json::Value::String(format!("{label}:{}", failure.kind));
        // `error` set to a non-object by the event itself: the failure is still counted.
        let _ = access::set(event, &self.error_message, message);
        let _ = access::set(event, &self.error_type, kind);
    }
}

/// How often held events are checked against their timeouts.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A source's own task: runs each batch from `rx` through the source's pipeline (when it names
/// one), hands the result to `finish` (the producer's encoding into records, done here so it
/// runs beside the producer's sending rather than in turn with it), and sends what `finish`
/// makes into `tx`, until `rx` closes or `tx` is gone. A full `tx` waits, so backpressure reaches
/// the source. Held events whose time ran out are shipped too. When `rx` closes (the source
/// stopped) the events still held go on as they are: at a reload the producer still runs and
/// delivers them, so the source's drain ends and its checkpoint passes them (the rest of such a
/// line, read after the restart, is an event of its own); at shutdown the producer has stopped,
/// they stay unsettled and are read again after the restart. A batch keeps its memory charge
/// through the pipeline, and `finish` measures it again.
pub async fn run<T>(
    mut pipeline: Option<Pipeline>,
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<T>,
    mut finish: impl FnMut(Batch) -> Option<T>,
) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            batch = rx.recv() => match batch {
                Some(Batch { events, charge }) => {
                    let events = match &mut pipeline {
                        Some(pipeline) => pipeline.process_batch(events),
                        None => events,
                    };
                    Batch { events, charge }
                }
                None => {
                    let held = pipeline.as_mut().map(Pipeline::flush_all).unwrap_or_default();
                    if !held.is_empty()
                        && let Some(out) = finish(Batch::uncharged(held))
                    {
                        // Gone unsettled if the producer has stopped: read again after restart.
                        let _ = tx.send(out).await;
                    }
                    return;
                }
            },
            _ = tick.tick(), if pipeline.is_some() => {
                let expired = pipeline
                    .as_mut()
                    .map(|p| p.flush_expired(std::time::Instant::now()))
                    .unwrap_or_default();
                Batch::uncharged(expired)
            }
        };
        if out.events.is_empty() {
            continue;
        }
        if let Some(out) = finish(out)
            && tx.send(out).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::AckTracker;
    use crate::config::Config;
    use crate::event::FileOrigin;

    fn pipeline(steps: &str) -> Pipeline {
        let dir = std::env::temp_dir().join("logship-pipeline-unit");
        let text = format!(
            "data_dir = \"{}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"/x/*.log\"]\n\
             [kafka]\nbrokers = [\"127.0.0.1:9\"]\ntopic = \"logs\"\n[pipelines.p]\nsteps = [{steps}]\n",
            dir.display()
        );
        let config = Config::from_toml(&text, &|_| None).expect("valid pipeline");
        config.pipelines["p"].clone()
    }

    /// Events of one file, each tracked at its line's end like the file source does.
    fn lines(tracker: &Arc<AckTracker<u64>>, lines: &[&str]) -> Vec<Event> {
        let mut end = 0;
        lines
            .iter()
            .map(|line| {
                end += line.len() as u64 + 1;
                let origin = FileOrigin {
                    host: "h".into(),
                    path: "/x/a.log".into(),
                    offset: end - line.len() as u64 - 1,
                };
                let mut event = Event::from_file_line((*line).into(), chrono::Utc::now(), origin);
                event.ack = Some(tracker.track(end));
                event
            })
            .collect()
    }

    #[test]
    fn a_dropped_event_settles_so_the_position_passes_it() {
        let tracker = AckTracker::new(0u64);
        let mut p = pipeline(r#"{ type = "drop", when = 'message == "noise"' }"#);
        let out = p.process_batch(lines(&tracker, &["keep", "noise"]));
        assert_eq!(out.len(), 1);
        assert_eq!(tracker.position(), 0, "the kept event is not delivered yet");
        for mut event in out {
            event.ack.take().expect("token").settle();
        }
        assert_eq!(tracker.position(), 11, "past the dropped line too");
    }

    #[test]
    fn partial_lines_hold_the_position_until_the_joined_event_is_delivered() {
        let tracker = AckTracker::new(0u64);
        let mut p = pipeline(r#"{ type = "parse_container" }"#);
        let input = [
            "2026-11-22T10:00:00Z stdout P first ",
            "2026-11-22T10:00:01Z stdout F second",
        ];
        let mut events = lines(&tracker, &input);
        let last = events.split_off(1);
        let mut out = p.process_batch(events);
        assert!(out.is_empty(), "a part alone is held");
        out.extend(p.process_batch(last));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message.as_deref(), Some("first second"));
        assert_eq!(tracker.outstanding(), 2);
        assert_eq!(tracker.position(), 0);
        let token = out.remove(0).ack.take().expect("token");
        token.settle();
        let end = input.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
        assert_eq!(
            tracker.position(),
            end,
            "both parts settled with the joined event"
        );
    }

    #[test]
    fn a_part_whose_end_never_comes_is_shipped_after_its_timeout() {
        let tracker = AckTracker::new(0u64);
        let mut p = pipeline(
            r#"{ type = "parse_container", partial_timeout_ms = 100 }, { type = "set", field = "seen", value = true }"#,
        );
        let parts = [
            "2026-11-22T10:00:00Z stdout P cut ",
            "2026-11-22T10:00:01Z stdout P off",
        ];
        assert!(p.process_batch(lines(&tracker, &parts)).is_empty());
        let soon = std::time::Instant::now();
        assert!(p.flush_expired(soon).is_empty(), "not yet");
        let later = soon + std::time::Duration::from_secs(1);
        let mut out = p.flush_expired(later);
        assert_eq!(out.len(), 1);
        let event = &mut out[0];
        assert_eq!(event.message.as_deref(), Some("cut off"));
        assert_eq!(
            event.fields.get("stream"),
            Some(&serde_json::json!("stdout"))
        );
        assert_eq!(
            event.fields.get("seen"),
            Some(&serde_json::json!(true)),
            "later steps ran"
        );
        event.ack.take().expect("token").settle();
        assert_eq!(tracker.outstanding(), 0, "both parts settled");
        assert!(p.flush_expired(later).is_empty(), "shipped once");
    }

    #[tokio::test]
    async fn parts_held_when_the_source_stops_go_on_so_its_drain_can_end() {
        let tracker = AckTracker::new(0u64);
        let p = pipeline(r#"{ type = "parse_container" }"#);
        let (source_tx, rx) = mpsc::channel(4);
        let (tx, mut producer_rx) = mpsc::channel(4);
        let task = tokio::spawn(run(Some(p), rx, tx, Some));
        let parts = ["2026-11-22T10:00:00Z stdout P held "];
        source_tx
            .send(Batch::uncharged(lines(&tracker, &parts)))
            .await
            .expect("send");
        drop(source_tx);
        task.await.expect("pipeline task");
        let batch = producer_rx.recv().await.expect("the held part went on");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].message.as_deref(), Some("held "));
        for mut event in batch.events {
            event.ack.take().expect("token").settle();
        }
        assert_eq!(tracker.outstanding(), 0);
    }
}
