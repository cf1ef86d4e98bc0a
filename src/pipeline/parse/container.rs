//! Kubernetes container log lines: the CRI text format written by containerd and CRI-O,
//! and Docker's json-file format; plus [`PartialMerger`], which joins the partial lines
//! runtimes write for long messages back into one message per stream.
//!
//! A trailing `\n` on a CRI line (a line handed over with its terminator) is ignored.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Longest piece of an offending value quoted in an error.
const QUOTE_MAX: usize = 64;

/// The output stream a container line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// Reads `stdout` / `stderr`.
    fn parse(text: &str) -> Result<Self, ContainerError> {
        match text {
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            other => Err(ContainerError::BadStream(quote(other))),
        }
    }
}

/// One parsed container log line.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLine<'a> {
    /// When the runtime received the line.
    pub time: DateTime<Utc>,
    /// The stream the line was written to.
    pub stream: Stream,
    /// The line is a piece of a longer message; more pieces follow.
    pub partial: bool,
    /// The line's text, without the runtime's framing or trailing newline.
    pub message: Cow<'a, str>,
}

/// Why a line is not a container log line. Quoted values are cut to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("container log line has no {0}")]
    MissingField(&'static str),
    #[error("container log time `{0}` is not an RFC 3339 time")]
    BadTime(String),
    #[error("container log stream `{0}` is neither stdout nor stderr")]
    BadStream(String),
    #[error("CRI log tag `{0}` does not start with P or F")]
    BadTag(String),
    #[error("docker log line is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("docker log line is not a JSON object")]
    NotAnObject,
    #[error("docker log field `{0}` is not a string")]
    NotAString(&'static str),
}

/// Parses a CRI line: `2016-10-06T00:17:09.669794202Z stdout F message`.
///
/// The tag is `P` (partial) or `F` (full), optionally followed by more flags after `:`.
/// The message may be empty, with or without the space before it.
pub fn parse_cri(line: &str) -> Result<ContainerLine<'_>, ContainerError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut fields = line.splitn(4, ' ');
    let time = non_empty(fields.next(), "time")?;
    let stream = non_empty(fields.next(), "stream")?;
    let tag = non_empty(fields.next(), "tag")?;
    let message = fields.next().unwrap_or("");
    Ok(ContainerLine {
        time: parse_time(time)?,
        stream: Stream::parse(stream)?,
        partial: parse_tag(tag)?,
        message: Cow::Borrowed(message),
    })
}

/// Parses a docker json-file line: `{"log":"message\n","stream":"stderr","time":"…Z"}`.
///
/// The line is partial when `log` does not end in `\n`; that `\n` is removed.
/// Other keys (such as `attrs`) are ignored.
pub fn parse_docker(line: &str) -> Result<ContainerLine<'static>, ContainerError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| ContainerError::InvalidJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ContainerError::NotAnObject);
    };
    let mut log = take_string(&mut object, "log")?;
    let stream = Stream::parse(&take_string(&mut object, "stream")?)?;
    let time = parse_time(&take_string(&mut object, "time")?)?;
    let partial = !log.ends_with('\n');
    if !partial {
        log.pop();
    }
    Ok(ContainerLine {
        time,
        stream,
        partial,
        message: Cow::Owned(log),
    })
}

/// Parses a docker line when the line starts with `{` (after any whitespace), else a CRI line.
pub fn parse_auto(line: &str) -> Result<ContainerLine<'_>, ContainerError> {
    if line.trim_start().starts_with('{') {
        parse_docker(line)
    } else {
        parse_cri(line)
    }
}

/// A field that must be present and non-empty.
fn non_empty<'a>(field: Option<&'a str>, name: &'static str) -> Result<&'a str, ContainerError> {
    field
        .filter(|text| !text.is_empty())
        .ok_or(ContainerError::MissingField(name))
}

/// Removes a string field from a docker object.
fn take_string(
    object: &mut Map<String, Value>,
    name: &'static str,
) -> Result<String, ContainerError> {
    match object.remove(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ContainerError::NotAString(name)),
        None => Err(ContainerError::MissingField(name)),
    }
}

/// Reads an RFC 3339 time with any offset.
fn parse_time(text: &str) -> Result<DateTime<Utc>, ContainerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| ContainerError::BadTime(quote(text)))
}

/// Reads a CRI tag: `P` or `F`, then optional `:`-separated flags. True when partial.
fn parse_tag(tag: &str) -> Result<bool, ContainerError> {
    match tag.split(':').next() {
        Some("P") => Ok(true),
        Some("F") => Ok(false),
        _ => Err(ContainerError::BadTag(quote(tag))),
    }
}

/// Cuts untrusted text for an error message.
fn quote(text: &str) -> String {
    text.get(..floor_char_boundary(text, QUOTE_MAX))
        .unwrap_or("")
        .to_owned()
}

/// The largest char boundary of `text` not past `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// A message joined from one or more container lines of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The time of the first part.
    pub time: DateTime<Utc>,
    /// The stream all parts came from.
    pub stream: Stream,
    /// The parts joined, at most the merger's `max_bytes` long.
    pub message: String,
    /// How many lines were joined (dropped parts past the cap count too).
    pub parts: usize,
    /// The message was cut at the size cap.
    pub truncated: bool,
}

/// Joins partial lines of one stream until the full one arrives; caps the joined size.
///
/// Stdout and stderr are buffered separately, so their partials may interleave. Every
/// message handed out, joined or not, is at most `max_bytes` long (cut on a char
/// boundary, with [`Merged::truncated`] set); parts arriving after the cap is reached
/// are dropped, so a stream buffers at most `max_bytes`.
#[derive(Debug, Clone)]
pub struct PartialMerger {
    max_bytes: usize,
    stdout: Option<Merged>,
    stderr: Option<Merged>,
}

impl PartialMerger {
    /// A merger whose messages are cut at `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            stdout: None,
            stderr: None,
        }
    }

    /// Feeds one parsed line. Returns the complete message when `line.partial` is false
    /// (joining any buffered partials of the same stream first); returns None while
    /// partials accumulate.
    pub fn push(&mut self, line: ContainerLine<'_>) -> Option<Merged> {
        let max_bytes = self.max_bytes;
        let slot = match line.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let merged = slot.get_or_insert_with(|| Merged {
            time: line.time,
            stream: line.stream,
            message: String::new(),
            parts: 0,
            truncated: false,
        });
        append_capped(merged, &line.message, max_bytes);
        if line.partial { None } else { slot.take() }
    }

    /// Whether a partial is buffered for either stream.
    pub fn holds(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }

    /// Hands out what is buffered (stdout first) without waiting for the full lines, for
    /// the end of a file or a timeout.
    pub fn flush(&mut self) -> Vec<Merged> {
        self.stdout
            .take()
            .into_iter()
            .chain(self.stderr.take())
            .collect()
    }
}

/// Appends one part, cutting at `max_bytes` on a char boundary.
fn append_capped(merged: &mut Merged, part: &str, max_bytes: usize) {
    merged.parts = merged.parts.saturating_add(1);
    if merged.truncated {
        // Once cut, the message stays cut: later parts would not follow on.
        return;
    }
    let room = max_bytes.saturating_sub(merged.message.len());
    if part.len() <= room {
        merged.message.push_str(part);
        return;
    }
    merged.truncated = true;
    let cut = floor_char_boundary(part, room);
    merged.message.push_str(part.get(..cut).unwrap_or(""));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn time(nanos: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2016, 10, 6, 0, 17, 9).unwrap()
            + chrono::TimeDelta::nanoseconds(nanos.into())
    }

    fn line(stream: Stream, partial: bool, message: &str, nanos: u32) -> ContainerLine<'_> {
        ContainerLine {
            time: time(nanos),
            stream,
            partial,
            message: Cow::Borrowed(message),
        }
    }

    #[test]
    fn cri_full_line() {
        let parsed = parse_cri("2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
        assert_eq!(
            parsed,
            line(Stream::Stdout, false, "hello world", 669_794_202)
        );
        assert!(matches!(parsed.message, Cow::Borrowed(_)));
    }

    #[test]
    fn cri_partial_line_with_flags_and_offset() {
        let parsed =
            parse_cri("2016-10-06T02:17:09.669794202+02:00 stderr P:x:y  two spaces").unwrap();
        assert_eq!(
            parsed,
            line(Stream::Stderr, true, " two spaces", 669_794_202)
        );
    }

    #[test]
    fn cri_empty_message() {
        let with_space = parse_cri("2016-10-06T00:17:09Z stdout F ").unwrap();
        let without = parse_cri("2016-10-06T00:17:09Z stdout F\n").unwrap();
        assert_eq!(with_space.message, "");
        assert_eq!(without.message, "");
        assert_eq!(with_space, without);
    }

    #[test]
    fn cri_malformed_lines() {
        assert_eq!(parse_cri(""), Err(ContainerError::MissingField("time")));
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z"),
            Err(ContainerError::MissingField("stream"))
        );
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z stdout"),
            Err(ContainerError::MissingField("tag"))
        );
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z  F msg"),
            Err(ContainerError::MissingField("stream"))
        );
        assert_eq!(
            parse_cri("yesterday stdout F msg"),
            Err(ContainerError::BadTime("yesterday".to_owned()))
        );
        assert_eq!(
            parse_cri("2016-13-06T00:17:09Z stdout F msg"),
            Err(ContainerError::BadTime("2016-13-06T00:17:09Z".to_owned()))
        );
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z stdin F msg"),
            Err(ContainerError::BadStream("stdin".to_owned()))
        );
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z stdout X msg"),
            Err(ContainerError::BadTag("X".to_owned()))
        );
        assert_eq!(
            parse_cri("2016-10-06T00:17:09Z stdout FP msg"),
            Err(ContainerError::BadTag("FP".to_owned()))
        );
    }

    #[test]
    fn long_bad_values_are_cut_on_char_boundaries() {
        let bad = "é".repeat(100);
        let Err(ContainerError::BadTime(quoted)) = parse_cri(&format!("{bad} stdout F m")) else {
            panic!("expected a bad time");
        };
        assert_eq!(quoted, "é".repeat(32));
    }

    #[test]
    fn docker_full_and_partial() {
        let full = parse_docker(
            r#"{"log":"hello\n","stream":"stderr","time":"2016-10-06T00:17:09.669794202Z"}"#,
        )
        .unwrap();
        assert_eq!(full, line(Stream::Stderr, false, "hello", 669_794_202));

        let partial = parse_docker(
            r#"{"log":"a long \u00e9","stream":"stdout","time":"2016-10-06T00:17:09Z","attrs":{}}"#,
        )
        .unwrap();
        assert_eq!(partial, line(Stream::Stdout, true, "a long é", 0));
    }

    #[test]
    fn docker_keeps_inner_newlines_and_only_strips_one() {
        let parsed =
            parse_docker(r#"{"log":"a\nb\n\n","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#)
                .unwrap();
        assert_eq!(parsed.message, "a\nb\n");
        assert!(!parsed.partial);
    }

    #[test]
    fn docker_malformed_lines() {
        assert!(matches!(
            parse_docker(r#"{"log":"x""#),
            Err(ContainerError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_docker(""),
            Err(ContainerError::InvalidJson(_))
        ));
        assert_eq!(parse_docker("[1]"), Err(ContainerError::NotAnObject));
        assert_eq!(
            parse_docker(r#"{"stream":"stdout","time":"2016-10-06T00:17:09Z"}"#),
            Err(ContainerError::MissingField("log"))
        );
        assert_eq!(
            parse_docker(r#"{"log":"x\n","time":"2016-10-06T00:17:09Z"}"#),
            Err(ContainerError::MissingField("stream"))
        );
        assert_eq!(
            parse_docker(r#"{"log":"x\n","stream":"stdout"}"#),
            Err(ContainerError::MissingField("time"))
        );
        assert_eq!(
            parse_docker(r#"{"log":1,"stream":"stdout","time":"2016-10-06T00:17:09Z"}"#),
            Err(ContainerError::NotAString("log"))
        );
        assert_eq!(
            parse_docker(r#"{"log":"x","stream":"both","time":"2016-10-06T00:17:09Z"}"#),
            Err(ContainerError::BadStream("both".to_owned()))
        );
        assert_eq!(
            parse_docker(r#"{"log":"x","stream":"stdout","time":"noon"}"#),
            Err(ContainerError::BadTime("noon".to_owned()))
        );
    }

    #[test]
    fn auto_picks_the_format() {
        let docker =
            parse_auto(r#" {"log":"d\n","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#)
                .unwrap();
        assert_eq!(docker.message, "d");
        let cri = parse_auto("2016-10-06T00:17:09Z stdout F c").unwrap();
        assert_eq!(cri.message, "c");
        assert!(matches!(
            parse_auto("{nope"),
            Err(ContainerError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_auto("nope"),
            Err(ContainerError::MissingField(_))
        ));
    }

    #[test]
    fn stream_names() {
        assert_eq!(Stream::Stdout.as_str(), "stdout");
        assert_eq!(Stream::Stderr.as_str(), "stderr");
    }

    #[test]
    fn full_line_passes_straight_through() {
        let mut merger = PartialMerger::new(100);
        let merged = merger.push(line(Stream::Stdout, false, "one", 5)).unwrap();
        assert_eq!(
            merged,
            Merged {
                time: time(5),
                stream: Stream::Stdout,
                message: "one".to_owned(),
                parts: 1,
                truncated: false,
            }
        );
        assert!(!merger.holds());
    }

    #[test]
    fn partials_join_until_the_full_line() {
        let mut merger = PartialMerger::new(100);
        assert_eq!(merger.push(line(Stream::Stdout, true, "ab", 1)), None);
        assert!(merger.holds());
        assert_eq!(merger.push(line(Stream::Stdout, true, "cd", 2)), None);
        let merged = merger.push(line(Stream::Stdout, false, "ef", 3)).unwrap();
        assert_eq!(merged.message, "abcdef");
        assert_eq!(merged.parts, 3);
        assert_eq!(merged.time, time(1));
        assert!(!merged.truncated);
        assert!(!merger.holds());
    }

    #[test]
    fn streams_are_buffered_separately() {
        let mut merger = PartialMerger::new(100);
        assert_eq!(merger.push(line(Stream::Stdout, true, "out1 ", 1)), None);
        assert_eq!(merger.push(line(Stream::Stderr, true, "err1 ", 2)), None);
        let err = merger.push(line(Stream::Stderr, false, "err2", 3)).unwrap();
        assert_eq!(
            (err.stream, err.message.as_str(), err.parts),
            (Stream::Stderr, "err1 err2", 2)
        );
        assert!(merger.holds());
        let out = merger.push(line(Stream::Stdout, false, "out2", 4)).unwrap();
        assert_eq!(
            (out.stream, out.message.as_str(), out.time),
            (Stream::Stdout, "out1 out2", time(1))
        );
        assert!(!merger.holds());
    }

    #[test]
    fn docker_partials_merge() {
        let mut merger = PartialMerger::new(100);
        let first =
            parse_docker(r#"{"log":"part one, ","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#)
                .unwrap();
        let second =
            parse_docker(r#"{"log":"part two\n","stream":"stdout","time":"2016-10-06T00:17:10Z"}"#)
                .unwrap();
        assert_eq!(merger.push(first), None);
        let merged = merger.push(second).unwrap();
        assert_eq!(merged.message, "part one, part two");
        assert_eq!(merged.time, time(0));
    }

    #[test]
    fn joined_size_is_capped_on_a_char_boundary() {
        let mut merger = PartialMerger::new(6);
        assert_eq!(merger.push(line(Stream::Stdout, true, "abcd", 1)), None);
        // "é" is two bytes: only one fits after "abcd" + "x".
        assert_eq!(merger.push(line(Stream::Stdout, true, "xéé", 2)), None);
        assert_eq!(merger.push(line(Stream::Stdout, true, "dropped", 3)), None);
        let merged = merger.push(line(Stream::Stdout, false, "end", 4)).unwrap();
        assert_eq!(merged.message, "abcdx");
        assert_eq!(merged.parts, 4);
        assert!(merged.truncated);
    }

    #[test]
    fn a_single_long_line_is_capped_too() {
        let mut merger = PartialMerger::new(3);
        let merged = merger.push(line(Stream::Stderr, false, "🦀🦀", 1)).unwrap();
        assert_eq!(merged.message, "");
        assert!(merged.truncated);
        let exact = merger.push(line(Stream::Stderr, false, "abc", 1)).unwrap();
        assert_eq!(exact.message, "abc");
        assert!(!exact.truncated);
    }

    #[test]
    fn flush_hands_out_buffered_partials() {
        let mut merger = PartialMerger::new(100);
        assert_eq!(merger.push(line(Stream::Stderr, true, "e", 1)), None);
        assert_eq!(merger.push(line(Stream::Stdout, true, "o", 2)), None);
        let flushed = merger.flush();
        assert_eq!(flushed.len(), 2);
        assert_eq!(
            (flushed[0].stream, flushed[0].message.as_str()),
            (Stream::Stdout, "o")
        );
        assert_eq!(
            (flushed[1].stream, flushed[1].message.as_str()),
            (Stream::Stderr, "e")
        );
        assert!(!merger.holds());
        assert!(merger.flush().is_empty());
    }

    /// A tiny xorshift generator, so the test needs no extra crate.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn never_panics_on_scrambled_input() {
        let seeds = [
            "2016-10-06T00:17:09.669794202Z stdout P:x message é",
            r#"{"log":"m\n","stream":"stderr","time":"2019-01-01T00:00:00Z"}"#,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut merger = PartialMerger::new(7);
        for _ in 0..20_000 {
            for seed in seeds {
                let mut bytes = seed.as_bytes().to_vec();
                for _ in 0..next(&mut state) % 4 {
                    let at = next(&mut state) as usize % bytes.len();
                    match next(&mut state) % 3 {
                        0 => bytes[at] = (next(&mut state) % 256) as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, b" :{\"\\\n9"[next(&mut state) as usize % 7]),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&bytes);
                if let Ok(parsed) = parse_auto(&text) {
                    let _ = merger.push(parsed);
                }
            }
        }
    }
}
