//! The main crate's `pipeline::{condition, path}` and its parsers, by path.

#[path = "../../src/pipeline/condition.rs"]
pub mod condition;
#[path = "../../src/pipeline/parse/container.rs"]
pub mod container;
#[path = "../../src/pipeline/parse/logfmt.rs"]
pub mod logfmt;
#[path = "../../src/pipeline/path.rs"]
pub mod path;
#[path = "../../src/pipeline/parse/syslog.rs"]
pub mod syslog;
#[path = "../../src/pipeline/parse/timestamp.rs"]
pub mod timestamp;

/// The parsers, where the main crate has them.
pub mod parse {
    pub use super::{container, logfmt, syslog, timestamp};
}
