//! The load-time check that every field a step reads (in `when`, a template, or as its input)
//! can exist by the time the step runs: the source's own fields, or fields an earlier step
//! writes. A misspelt field is a configuration error, not a silent empty value at 3 a.m.

use super::path::FieldPath;
use super::steps::Output;
use super::{OnError, Stage};

/// Fields sources write: every file line's, and a journal entry's. A pipeline is checked
/// against all of them, whichever sources use it.
const SOURCE_FIELDS: &[&str] = &[
    "@timestamp",
    "message",
    "host.name",
    "log.file.path",
    "log.offset",
    "log.syslog.severity.code",
    "log.syslog.severity.name",
    "systemd.unit",
];
/// Objects whose fields a source names at run time: `journald.*`, every other journal field.
const SOURCE_OBJECTS: &[&str] = &["journald"];

/// A step reads a field nothing provides: the step's index, the key naming it, and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub stage: usize,
    pub key: String,
    pub field: String,
}

/// Checks `stages` in order; the first field read that nothing before provides is returned.
pub fn check(stages: &[Stage]) -> Result<(), Unknown> {
    let mut known: Vec<Output> = SOURCE_FIELDS
        .iter()
        .filter_map(|f| FieldPath::parse(f).ok())
        .map(Output::Field)
        .chain(
            SOURCE_OBJECTS
                .iter()
                .filter_map(|f| FieldPath::parse(f).ok())
                .map(|root| Output::Below(Some(root))),
        )
        .collect();
    for (index, stage) in stages.iter().enumerate() {
        let when = stage
            .when
            .iter()
            .flat_map(|w| w.fields())
            .map(|path| ("when".to_owned(), path));
        let reads = stage.step.reads().into_iter().map(|r| (r.key, r.path));
        for (key, path) in when.chain(reads) {
            if !known.iter().any(|k| provides(k, path)) {
                return Err(Unknown {
                    stage: index,
                    key,
                    field: path.to_string(),
                });
            }
        }
        known.extend(stage.step.outputs());
        if stage.on_error == OnError::Keep {
            // Any step that fails and is kept (`set` with a missing field as much as a parser)
            // writes these.
            known.extend(
                ["error.message", "error.type"]
                    .iter()
                    .filter_map(|f| FieldPath::parse(f).ok())
                    .map(Output::Field),
            );
        }
    }
    Ok(())
}

/// Whether a read of `path` can find something `output` wrote: the field itself, below it (an
/// object), above it (the object holding it), or anything when the output is open-ended.
fn provides(output: &Output, path: &FieldPath) -> bool {
    match output {
        Output::Field(field) => path.starts_with(field) || field.starts_with(path),
        Output::Below(None) => true,
        Output::Below(Some(root)) => path.starts_with(root) || root.starts_with(path),
    }
}
