//! Newline framing for one file: bytes in, complete lines out, each with its byte range.
//!
//! A line longer than `max_line_bytes` keeps its first `max_line_bytes` bytes; the rest is
//! dropped and the line is marked truncated, so memory per file stays bounded whatever the input.
//! An unterminated tail is held until its newline arrives.

/// One complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's bytes without `\n` (and without a `\r` before it), at most `max_line_bytes`.
    pub bytes: Vec<u8>,
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past its newline: where the next line starts.
    pub end: u64,
    /// Length of the whole line in the file, when it was longer than the limit.
    pub truncated_from: Option<u64>,
}

/// Frames a byte stream into lines.
#[derive(Debug)]
pub struct LineFramer {
    max_line_bytes: usize,
    /// Kept bytes of the line being assembled.
    buf: Vec<u8>,
    /// Offset where the line being assembled starts.
    start: u64,
    /// Bytes of the line being assembled seen so far, kept or not.
    seen: u64,
}

impl LineFramer {
    /// A framer whose first line starts at `offset`.
    pub fn new(offset: u64, max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            buf: Vec::new(),
            start: offset,
            seen: 0,
        }
    }

    /// Offset of the first byte not yet part of a complete line.
    pub fn pending_start(&self) -> u64 {
        self.start
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Whether bytes of an unterminated line are held.
    pub fn has_partial(&self) -> bool {
        self.seen > 0
    }

    /// Emits the held unterminated line as a line of its own (its newline never came).
    pub fn flush_partial(&mut self) -> Option<Line> {
        if self.seen == 0 {
            return None;
        }
        let length = self.seen;
        let end = self.start + length;
        let line = Line {
            bytes: std::mem::take(&mut self.buf),
            start: self.start,
            end,
            truncated_from: (length > self.max_line_bytes as u64).then_some(length),
        };
        self.start = end;
        self.seen = 0;
        Some(line)
    }

    /// Feeds the next bytes of the file and appends every line they complete to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let newline = memchr::memchr(b'\n', chunk);
            let piece = &chunk[..newline.unwrap_or(chunk.len())];
            let room = self.max_line_bytes.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&piece[..piece.len().min(room)]);
            self.seen += piece.len() as u64;
            let Some(at) = newline else {
                return;
            };
            let length = self.seen;
            let end = self.start + length + 1;
            let mut bytes = std::mem::take(&mut self.buf);
            if bytes.last() == Some(&b'\r') && length == bytes.len() as u64 {
                bytes.pop();
            }
            out.push(Line {
                bytes,
                start: self.start,
                end,
                truncated_from: (length > self.max_line_bytes as u64).then_some(length),
            });
            self.start = end;
            self.seen = 0;
            chunk = &chunk[at + 1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut framer = LineFramer::new(0, max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_keep_their_offsets() {
        let lines = frame(100, &[b"ab", b"c\nde", b"\n\nf"]);
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.bytes.as_slice(), l.start, l.end))
            .collect();
        assert_eq!(
            got,
            vec![(&b"abc"[..], 0, 4), (&b"de"[..], 4, 7), (&b""[..], 7, 8)]
        );
    }

    #[test]
    fn unterminated_tail_is_held() {
        let mut framer = LineFramer::new(10, 100);
        let mut out = Vec::new();
        framer.feed(b"x\npartial", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(framer.pending_start(), 12);
    }

    #[test]
    fn long_line_is_truncated_and_the_next_line_is_intact() {
        let long = vec![b'a'; 10_000];
        let lines = frame(16, &[&long[..5000], &long[5000..], b"\nok\n"]);
        assert_eq!(lines[0].bytes, vec![b'a'; 16]);
        assert_eq!(lines[0].truncated_from, Some(10_000));
        assert_eq!(lines[0].end, 10_001);
        assert_eq!(lines[1].bytes, b"ok");
        assert_eq!(lines[1].truncated_from, None);
    }

    #[test]
    fn partial_line_can_be_flushed_and_framing_continues_after_it() {
        let mut framer = LineFramer::new(0, 100);
        let mut out = Vec::new();
        framer.feed(b"a\nhalf", &mut out);
        assert!(framer.has_partial());
        let partial = framer.flush_partial().unwrap();
        assert_eq!(
            (partial.bytes.as_slice(), partial.start, partial.end),
            (&b"half"[..], 2, 6)
        );
        assert!(!framer.has_partial());
        framer.feed(b"next\n", &mut out);
        assert_eq!((out[1].bytes.as_slice(), out[1].start), (&b"next"[..], 6));
    }

    #[test]
    fn crlf_is_stripped() {
        let lines = frame(100, &[b"a\r\nb\n"]);
        assert_eq!(lines[0].bytes, b"a");
        assert_eq!(lines[1].bytes, b"b");
    }
}
