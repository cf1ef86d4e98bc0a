//! Pure parsers the parse steps use: no event, no configuration, just text in and values out.
//! Each one is fuzzed (`fuzz/`): no input may panic.
//!
//! - `syslog`: RFC 3164 and RFC 5424 (through syslog_loose), with year inference.
//! - `logfmt`: `key=value` pairs.
//! - `container`: CRI and docker json-file lines, and joining partial lines.
//! - `timestamp`: strftime, RFC 3339/2822 and epoch times, in a time zone.

pub mod container;
pub mod logfmt;
pub mod syslog;
pub mod timestamp;
