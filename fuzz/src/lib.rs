//! The pure parts of logship under fuzzing, compiled from the main crate's own source files: the
//! parsers of `pipeline::parse` and the condition language with the field paths it reads.

pub mod event;
pub mod pipeline;
