//! Multiline aggregation for one file: framed lines in, lines out, where the lines of one message
//! (a stack trace, a statement continued with `\`) come out as one `Line` whose bytes are theirs
//! joined with `\n` and whose range runs from the first line's start to the last line's end.
//!
//! The rules follow Vector's `multiline` options for file sources. A group begins only at a line
//! matching `start`; a line that neither starts nor joins a group passes through alone and at
//! once. Each line after the start line is judged by `condition` as `mode` says. The start line
//! itself is never judged by `condition` (as in Vector): under `halt_with` a start line that
//! matches the condition does not end its own group, and under `continue_past` a start line always
//! takes the line after it.
//!
//! Memory per file stays bounded whatever the input: a group keeps at most `max_bytes` bytes of
//! its joined content (the rest of its lines are consumed and dropped and the group is marked
//! truncated, as `reader` does for an over-long line), and a line that would make a group longer
//! than `max_lines` ends it and begins the next one, so the rest of a long trace stays together.
//!
//! It owns no clock and no timer: the caller passes `now`, and `push` never ends a group because
//! time passed. Only `flush_expired` does, so the caller can call it once it has read all a file
//! holds, and a source held back by a full channel does not split a trace it reads afterwards.
//! Compiling the rules from configuration is the config's job; keeping the checkpoint behind a
//! pending group is the source's, through [`Aggregator::pending_start`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use super::reader::Line;

/// How the lines after a group's start line are judged by `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Consecutive lines matching `condition` join the group; the first line that does not ends
    /// it and is judged afresh (it may start the next group). For indented continuation lines.
    ContinueThrough,
    /// Consecutive lines matching `condition` join the group, and so does the one line after
    /// them, which ends it. For lines ending in a continuation marker such as `\`.
    ContinuePast,
    /// Consecutive lines not matching `condition` join the group; a matching line ends it and is
    /// judged afresh. For a marker that begins every message.
    HaltBefore,
    /// Lines join the group up to and including the first line matching `condition`. For a
    /// marker that ends every message, such as `;`.
    HaltWith,
}

/// The multiline rules of one file source, built once from its configuration.
#[derive(Debug, Clone)]
pub struct MultilineRules {
    /// A group begins only at a line matching this.
    pub start: Regex,
    /// Judges every line after a group's start line, as `mode` says.
    pub condition: Regex,
    /// What a match of `condition` means.
    pub mode: Mode,
    /// A pending group is emitted once no line has joined it for this long.
    pub timeout: Duration,
    /// Most lines in one group; the line past it begins the next group.
    pub max_lines: usize,
    /// Most bytes kept of one group's joined content; the rest is dropped, the group marked
    /// truncated.
    pub max_bytes: usize,
}

/// `java`: an exception header (`…Exception: msg`, `Exception in thread "main" …Error`) starts
/// a group. The shape comes from Fluent Bit's built-in `java` parser (itself from Google's
/// `fluent-plugin-detect-exceptions`), loosened so that the class name may begin the line
/// (`Error: boom` from Node.js, whose `    at` frames match the condition too) or end it.
const JAVA_START: &str = r"(?:Exception|Error|Throwable)(?::|$)";

/// `java` continues through frames (`\tat …`), `Caused by:` and `Suppressed:` headers,
/// `... 5 more` and the .NET inner-exception markers.
const JAVA_CONDITION: &str = concat!(
    r"^[\t ]+(?:eval )?at ",
    r"|^[\t ]*(?:Caused by|Suppressed|nested exception is):",
    r"|^[\t ]*\.\.\. \d+ (?:more|common frames omitted)",
    r"|^[\t ]*--- End of inner exception stack trace ---$",
    r"|^--- End of stack trace from previous location(?: where exception was thrown)? ---$",
);

/// `python`: a traceback starts at its header (Fluent Bit's `python` parser).
const PYTHON_START: &str = r"^Traceback \(most recent call last\):$";

/// `python` halts with the unindented exception line (`ValueError: bad`,
/// `json.decoder.JSONDecodeError: …`, a bare `KeyboardInterrupt`). Frames and code lines are
/// indented, so they never match. Ending on it, rather than on the line after, emits the
/// traceback as soon as it is complete.
const PYTHON_CONDITION: &str = r"^(?:[^\s.():]+\.)*[^\s.():]+(?::|$)";

/// `go`: a panic, an `http: panic serving` report or a runtime `fatal error:` starts a group
/// (Fluent Bit's `go` parser, plus `fatal error:` whose goroutine dump has the same shape).
const GO_START: &str = r"\bpanic: |http: panic serving|^fatal error: ";

/// `go` continues through the blank lines between sections, `[signal …]`, goroutine headers,
/// function lines (`main.(*T).f(…)`, `created by …`) and their indented file lines.
const GO_CONDITION: &str = concat!(
    r"^$",
    r"|^\s",
    r"|^\[signal ",
    r"|^goroutine \d+ .*\]:$",
    r"|^created by ",
    r"|^(?:[^\s.:]+\.)*[^\s.():]+\(",
);

impl MultilineRules {
    /// `(start, condition, mode)` of a built-in preset: `java`, `python` or `go`.
    pub fn preset(name: &str) -> Option<(String, String, Mode)> {
        let (start, condition, mode) = match name {
            "java" => (JAVA_START, JAVA_CONDITION, Mode::ContinueThrough),
            "python" => (PYTHON_START, PYTHON_CONDITION, Mode::HaltWith),
            "go" => (GO_START, GO_CONDITION, Mode::ContinueThrough),
            _ => return None,
        };
        Some((start.to_owned(), condition.to_owned(), mode))
    }
}

/// Groups the lines of one file.
#[derive(Debug)]
pub struct Aggregator {
    rules: Arc<MultilineRules>,
    /// The group being assembled.
    pending: Option<Group>,
}

/// What a line does to the pending group.
enum Step {
    Join,
    JoinAndEnd,
    EndBefore,
}

impl Aggregator {
    /// An aggregator with nothing pending.
    pub fn new(rules: Arc<MultilineRules>) -> Self {
        Self {
            rules,
            pending: None,
        }
    }

    /// Feeds the next line of the file; appends every finished group (or ungrouped line) to
    /// `out`. Never ends a group because time passed: that is `flush_expired`'s job.
    pub fn push(&mut self, line: Line, now: Instant, out: &mut Vec<Line>) {
        let rules = &*self.rules;
        let Some(group) = self.pending.as_mut() else {
            self.begin_or_pass(line, now, out);
            return;
        };
        let step = match (rules.mode, rules.condition.is_match(&line.bytes)) {
            (Mode::ContinueThrough, true) => Step::Join,
            (Mode::ContinueThrough, false) => Step::EndBefore,
            (Mode::ContinuePast, true) => Step::Join,
            (Mode::ContinuePast, false) => Step::JoinAndEnd,
            (Mode::HaltBefore, true) => Step::EndBefore,
            (Mode::HaltBefore, false) => Step::Join,
            (Mode::HaltWith, true) => Step::JoinAndEnd,
            (Mode::HaltWith, false) => Step::Join,
        };
        if let Step::EndBefore = step {
            self.flush(out);
            self.begin_or_pass(line, now, out);
            return;
        }
        if group.lines >= rules.max_lines.max(1) {
            // The line carries on as the first of the next group (not judged by `start`), so a
            // trace longer than `max_lines` comes out in pieces rather than line by line.
            let next = Group::new(line, now, rules.max_bytes);
            out.push(std::mem::replace(group, next).into_line());
        } else {
            group.join(line, now, rules.max_bytes);
        }
        if let Step::JoinAndEnd = step {
            self.flush(out);
        }
    }

    /// Emits the pending group if no line has joined it for `timeout`.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Line>) {
        let timeout = self.rules.timeout;
        let expired = self
            .pending
            .as_ref()
            .is_some_and(|group| now.saturating_duration_since(group.last_at) >= timeout);
        if expired {
            self.flush(out);
        }
    }

    /// Emits the pending group unconditionally (file released, shutdown of a rotated file).
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        if let Some(group) = self.pending.take() {
            out.push(group.into_line());
        }
    }

    /// Offset where the pending group starts, if one is pending (a checkpoint must never pass
    /// it: its lines are read but not yet emitted).
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|group| group.start)
    }

    /// Judges a line with nothing pending: it starts a group or passes through unchanged.
    fn begin_or_pass(&mut self, line: Line, now: Instant, out: &mut Vec<Line>) {
        if self.rules.start.is_match(&line.bytes) {
            self.pending = Some(Group::new(line, now, self.rules.max_bytes));
        } else {
            out.push(line);
        }
    }
}

/// A group being assembled.
#[derive(Debug)]
struct Group {
    /// Kept joined content: the kept bytes of each line joined with `\n`, at most `max_bytes`.
    bytes: Vec<u8>,
    /// Offset of the first line's first byte.
    start: u64,
    /// Offset just past the last line's newline.
    end: u64,
    /// Lines consumed, kept or not.
    lines: usize,
    /// Length of the whole joined content in the file, kept or not.
    length: u64,
    /// When the last line joined.
    last_at: Instant,
}

impl Group {
    fn new(mut line: Line, now: Instant, max_bytes: usize) -> Self {
        let length = whole_length(&line);
        line.bytes.truncate(max_bytes);
        Self {
            bytes: line.bytes,
            start: line.start,
            end: line.end,
            lines: 1,
            length,
            last_at: now,
        }
    }

    fn join(&mut self, line: Line, now: Instant, max_bytes: usize) {
        let room = max_bytes.saturating_sub(self.bytes.len());
        if room > 0 {
            self.bytes.push(b'\n');
            self.bytes
                .extend_from_slice(&line.bytes[..line.bytes.len().min(room - 1)]);
        }
        self.length += 1 + whole_length(&line);
        self.end = line.end;
        self.lines += 1;
        self.last_at = now;
    }

    fn into_line(self) -> Line {
        let kept = self.bytes.len() as u64;
        Line {
            bytes: self.bytes,
            start: self.start,
            end: self.end,
            truncated_from: (self.length > kept).then_some(self.length),
        }
    }
}

/// Length of a line in the file, without its newline, whether or not all of it was kept.
fn whole_length(line: &Line) -> u64 {
    line.truncated_from.unwrap_or(line.bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(start: &str, condition: &str, mode: Mode) -> MultilineRules {
        MultilineRules {
            start: Regex::new(start).unwrap(),
            condition: Regex::new(condition).unwrap(),
            mode,
            timeout: Duration::from_secs(1),
            max_lines: 1000,
            max_bytes: 1 << 20,
        }
    }

    fn preset(name: &str) -> MultilineRules {
        let (start, condition, mode) = MultilineRules::preset(name).unwrap();
        rules(&start, &condition, mode)
    }

    /// Frames `text` as the reader would: one `Line` per `\n`, the first starting at `base`.
    fn framed(base: u64, text: &str) -> Vec<Line> {
        let mut offset = base;
        text.split_terminator('\n')
            .map(|l| {
                let start = offset;
                offset += l.len() as u64 + 1;
                Line {
                    bytes: l.as_bytes().to_vec(),
                    start,
                    end: offset,
                    truncated_from: None,
                }
            })
            .collect()
    }

    /// Pushes every line of `text` at one instant, then flushes what is pending.
    fn aggregate(rules: MultilineRules, text: &str) -> Vec<Line> {
        let mut aggregator = Aggregator::new(Arc::new(rules));
        let mut out = Vec::new();
        let now = Instant::now();
        for line in framed(0, text) {
            aggregator.push(line, now, &mut out);
        }
        aggregator.flush(&mut out);
        assert_tiles(&out, 0, text.len() as u64);
        out
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    /// Every input byte is covered by exactly one output line, in order.
    fn assert_tiles(out: &[Line], from: u64, to: u64) {
        let mut at = from;
        for line in out {
            assert_eq!(line.start, at, "gap or overlap before {line:?}");
            assert!(line.end > line.start);
            at = line.end;
        }
        assert_eq!(at, to);
    }

    #[test]
    fn continue_through_joins_matching_lines_after_the_start() {
        let out = aggregate(
            rules(r"^\S", r"^\s", Mode::ContinueThrough),
            "a\n b\n c\nd\ne\n f\n",
        );
        assert_eq!(texts(&out), ["a\n b\n c", "d", "e\n f"]);
    }

    #[test]
    fn continue_past_takes_one_line_after_the_last_match() {
        let out = aggregate(
            rules(r"\\$", r"\\$", Mode::ContinuePast),
            "plain\nfirst \\\nsecond \\\nthird\nafter\n",
        );
        assert_eq!(
            texts(&out),
            ["plain", "first \\\nsecond \\\nthird", "after"]
        );
    }

    #[test]
    fn halt_before_ends_the_group_at_a_matching_line_which_starts_the_next() {
        let out = aggregate(
            rules(r"^\[", r"^\[", Mode::HaltBefore),
            "orphan\n[1] a\nmore\nmore\n[2] b\n[3] c\nx\n",
        );
        assert_eq!(
            texts(&out),
            ["orphan", "[1] a\nmore\nmore", "[2] b", "[3] c\nx"]
        );
    }

    #[test]
    fn halt_with_includes_the_first_matching_line_and_emits_at_once() {
        let mut aggregator = Aggregator::new(Arc::new(rules(r"\S", r";$", Mode::HaltWith)));
        let mut out = Vec::new();
        for line in framed(0, "SELECT a\nFROM t\nWHERE x;\n") {
            aggregator.push(line, Instant::now(), &mut out);
        }
        assert_eq!(texts(&out), ["SELECT a\nFROM t\nWHERE x;"]);
        assert_eq!(aggregator.pending_start(), None);
    }

    #[test]
    fn start_line_is_not_judged_by_condition() {
        // As in Vector: a start line ending in `;` does not close its own halt_with group...
        let out = aggregate(rules(r"\S", r";$", Mode::HaltWith), "a;\nb;\nc\n");
        assert_eq!(texts(&out), ["a;\nb;", "c"]);
        // ...and a continue_past start line takes the next line even without the marker.
        let out = aggregate(rules(r"^\S", r"\\$", Mode::ContinuePast), "x\ny\nz\n");
        assert_eq!(texts(&out), ["x\ny", "z"]);
    }

    #[test]
    fn java_stack_trace_with_caused_by_is_one_group() {
        let trace = "java.lang.IllegalStateException: outer\n\
                     \tat com.example.App.handle(App.java:42)\n\
                     \tat com.example.App.main(App.java:10)\n\
                     \tSuppressed: java.lang.RuntimeException: close failed\n\
                     \t\tat com.example.Io.close(Io.java:9)\n\
                     Caused by: java.io.IOException: inner\n\
                     \tat com.example.Io.read(Io.java:7)\n\
                     \t... 5 more";
        let npe = "Exception in thread \"main\" java.lang.NullPointerException\n\
                   \tat com.example.App.main(App.java:3)";
        let text = format!(
            "2024-05-01 12:00:00 ERROR [main] c.e.App - request failed\n{trace}\n\
             2024-05-01 12:00:01 INFO [main] c.e.App - next request\n{npe}\n"
        );
        let out = aggregate(preset("java"), &text);
        assert_eq!(
            texts(&out),
            [
                "2024-05-01 12:00:00 ERROR [main] c.e.App - request failed",
                trace,
                "2024-05-01 12:00:01 INFO [main] c.e.App - next request",
                npe,
            ]
        );
    }

    #[test]
    fn python_traceback_is_one_group_emitted_at_its_exception_line() {
        let first = "Traceback (most recent call last):\n  \
                     File \"/app/main.py\", line 10, in <module>\n    \
                     main()\n  \
                     File \"/app/main.py\", line 6, in main\n    \
                     raise ValueError(\"bad input\")\n\
                     ValueError: bad input";
        let second = "Traceback (most recent call last):\n  \
                      File \"/app/load.py\", line 2, in <module>\n    \
                      json.loads(\"\")\n\
                      json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)";
        let text = format!("INFO:app:starting\n{first}\nINFO:app:recovered\n{second}\n");
        let mut aggregator = Aggregator::new(Arc::new(preset("python")));
        let mut out = Vec::new();
        for line in framed(0, &text) {
            aggregator.push(line, Instant::now(), &mut out);
        }
        // Nothing waits for a following line or a flush.
        assert_eq!(aggregator.pending_start(), None);
        assert_eq!(
            texts(&out),
            ["INFO:app:starting", first, "INFO:app:recovered", second]
        );
        assert_tiles(&out, 0, text.len() as u64);
    }

    #[test]
    fn go_panic_with_goroutine_frames_is_one_group() {
        let panic = "panic: runtime error: invalid memory address or nil pointer dereference\n\
                     [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47d5a2]\n\
                     \n\
                     goroutine 1 [running]:\n\
                     main.(*Server).handle(0x0, {0x4b6f20, 0xc000012345})\n\
                     \t/app/server.go:42 +0x22\n\
                     main.main()\n\
                     \t/app/main.go:12 +0x1d\n\
                     \n\
                     goroutine 18 [chan receive, 2 minutes]:\n\
                     net/http.(*conn).serve(0xc0000a8000)\n\
                     \t/usr/local/go/src/net/http/server.go:2009 +0x5f4\n\
                     created by net/http.(*Server).Serve in goroutine 1\n\
                     \t/usr/local/go/src/net/http/server.go:3285 +0x4b4";
        let text = format!("2024/05/01 12:00:00 starting\n{panic}\nexit status 2\n");
        let out = aggregate(preset("go"), &text);
        assert_eq!(
            texts(&out),
            ["2024/05/01 12:00:00 starting", panic, "exit status 2"]
        );
    }

    #[test]
    fn presets_compile_and_unknown_names_have_none() {
        for name in ["java", "python", "go"] {
            let (start, condition, _) = MultilineRules::preset(name).unwrap();
            assert!(Regex::new(&start).is_ok(), "{name} start");
            assert!(Regex::new(&condition).is_ok(), "{name} condition");
        }
        assert_eq!(MultilineRules::preset("ruby"), None);
    }

    #[test]
    fn max_lines_ends_the_group_and_the_rest_forms_the_next() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_lines = 3;
        let out = aggregate(rules, "a\n 1\n 2\n 3\n 4\n 5\n 6\nb\n");
        assert_eq!(texts(&out), ["a\n 1\n 2", " 3\n 4\n 5", " 6", "b"]);
    }

    #[test]
    fn max_bytes_truncates_and_keeps_consuming_the_group() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_bytes = 8;
        let out = aggregate(rules, "a\n 1\n 2\n 3\nb\n");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].bytes, b"a\n 1\n 2\n");
        assert_eq!(out[0].truncated_from, Some(10));
        assert_eq!((out[0].start, out[0].end), (0, 11));
        assert_eq!(out[1].bytes, b"b");
        assert_eq!(out[1].truncated_from, None);
    }

    #[test]
    fn memory_stays_bounded_by_max_bytes_for_an_endless_group() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_bytes = 64;
        rules.max_lines = usize::MAX;
        let mut aggregator = Aggregator::new(Arc::new(rules));
        let mut out = Vec::new();
        let text = format!("start\n{}", "  continued frame line\n".repeat(10_000));
        for line in framed(0, &text) {
            aggregator.push(line, Instant::now(), &mut out);
            let kept = aggregator.pending.as_ref().map_or(0, |g| g.bytes.len());
            assert!(kept <= 64);
        }
        assert!(out.is_empty());
        aggregator.flush(&mut out);
        assert_eq!(out[0].bytes.len(), 64);
        // The whole joined content is the text without its final newline.
        assert_eq!(out[0].truncated_from, Some(text.len() as u64 - 1));
        assert_eq!(out[0].end, text.len() as u64);
    }

    #[test]
    fn truncated_input_line_marks_the_group_truncated() {
        let mut lines = framed(0, "start\n xxxx\n y\nnext\n");
        lines[1].truncated_from = Some(5000);
        let mut aggregator =
            Aggregator::new(Arc::new(rules(r"^start", r"^\s", Mode::ContinueThrough)));
        let mut out = Vec::new();
        for line in lines {
            aggregator.push(line, Instant::now(), &mut out);
        }
        assert_eq!(texts(&out), ["start\n xxxx\n y", "next"]);
        assert_eq!(out[0].truncated_from, Some(5 + 1 + 5000 + 1 + 2));
        assert_eq!(out[1].truncated_from, None);
    }

    #[test]
    fn timeout_flushes_the_pending_group_only_once_expired() {
        let rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        let timeout = rules.timeout;
        let mut aggregator = Aggregator::new(Arc::new(rules));
        let mut out = Vec::new();
        let mut lines = framed(0, "a\n b\n").into_iter();
        let t0 = Instant::now();
        let last = t0 + Duration::from_millis(300);
        aggregator.push(lines.next().unwrap(), t0, &mut out);
        aggregator.push(lines.next().unwrap(), last, &mut out);
        // Counted from the last line, not the first.
        aggregator.flush_expired(t0 + timeout, &mut out);
        aggregator.flush_expired(last + timeout - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        aggregator.flush_expired(last + timeout, &mut out);
        assert_eq!(texts(&out), ["a\n b"]);
        assert_eq!(aggregator.pending_start(), None);
    }

    #[test]
    fn push_never_ends_a_group_because_time_passed() {
        let mut aggregator =
            Aggregator::new(Arc::new(rules(r"^\S", r"^\s", Mode::ContinueThrough)));
        let mut out = Vec::new();
        let mut lines = framed(0, "a\n b\n").into_iter();
        let t0 = Instant::now();
        aggregator.push(lines.next().unwrap(), t0, &mut out);
        aggregator.push(
            lines.next().unwrap(),
            t0 + Duration::from_secs(60),
            &mut out,
        );
        aggregator.flush(&mut out);
        assert_eq!(texts(&out), ["a\n b"]);
    }

    #[test]
    fn lines_without_a_start_match_pass_through_unchanged_and_at_once() {
        let mut lines = framed(7, "plain one\n  indented\n\nlong\n");
        lines[3].truncated_from = Some(70_000);
        let mut aggregator = Aggregator::new(Arc::new(preset("java")));
        let mut out = Vec::new();
        for line in lines.clone() {
            aggregator.push(line, Instant::now(), &mut out);
            assert_eq!(aggregator.pending_start(), None);
        }
        assert_eq!(out, lines);
    }

    #[test]
    fn pending_start_is_the_offset_of_the_pending_group() {
        let mut aggregator =
            Aggregator::new(Arc::new(rules(r"^START", r"^\s", Mode::ContinueThrough)));
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for line in framed(100, "x\nSTART\n a\nSTART\ny\n") {
            aggregator.push(line, Instant::now(), &mut out);
            pending.push(aggregator.pending_start());
        }
        assert_eq!(pending, [None, Some(102), Some(102), Some(111), None]);
        assert_eq!(texts(&out), ["x", "START\n a", "START", "y"]);
    }

    #[test]
    fn group_spans_first_start_to_last_end() {
        let text = "head\nException: boom\n\tat a.b(C.java:1)\n\t... 5 more\ntail\n";
        let mut aggregator = Aggregator::new(Arc::new(preset("java")));
        let mut out = Vec::new();
        for line in framed(1000, text) {
            aggregator.push(line, Instant::now(), &mut out);
        }
        aggregator.flush(&mut out);
        assert_eq!(
            texts(&out)[1],
            "Exception: boom\n\tat a.b(C.java:1)\n\t... 5 more"
        );
        let group_start = 1000 + "head\n".len() as u64;
        let group_end = 1000 + text.len() as u64 - "tail\n".len() as u64;
        assert_eq!((out[1].start, out[1].end), (group_start, group_end));
        assert_tiles(&out, 1000, 1000 + text.len() as u64);
    }
}
