//! The on-disk format of one disk-spool segment file: writing frames, reading them back, and
//! checking a segment at start.
//!
//! A segment is an append-only sequence of frames, with no file header: a zero-length file is a
//! valid, empty segment. Each frame holds one batch of [`SpoolRecord`]s:
//!
//! ```text
//! offset  size  field
//! 0       4     body length, u32 LE (1 ..= 64 MiB)
//! 4       4     CRC32C over (version byte ‖ body), u32 LE
//! 8       1     format version (= 1)
//! 9       n     body: zlib stream (flate2, fast level) of the encoded batch
//! ```
//!
//! The decompressed body (at most 256 MiB) is, all lengths little-endian:
//!
//! ```text
//! u32 record count, then per record:
//!   topic    u16 length + UTF-8 bytes
//!   key      u32 length (u32::MAX = no key) + bytes
//!   headers  u16 count, each: u16 name length + UTF-8 bytes, u32 value length + bytes
//!   payload  u32 length + bytes
//! ```
//!
//! Reading never trusts the file. A frame whose header is incomplete, whose length is 0 or over
//! the 64 MiB cap, or whose body runs past the end of the file is a torn tail: it and everything
//! after it cannot be located, so reading stops there and [`recover`] truncates it. A complete
//! frame with a CRC mismatch, an unknown version or a body that does not decode is
//! [`Frame::Corrupt`]; its length field is trusted and reading goes on with the next frame.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// Bytes in a frame header: body length, CRC, version.
const HEADER_LEN: u64 = 9;
/// The only frame format version this module writes and reads.
const FORMAT_VERSION: u8 = 1;
/// Largest compressed body a frame may hold; a larger length field is damage.
const MAX_BODY_LEN: u32 = 64 * 1024 * 1024;
/// Largest decompressed body; a body inflating past this is corrupt.
const MAX_DECODED_LEN: usize = 256 * 1024 * 1024;
/// Marks an absent key in the key length field.
const NO_KEY: u32 = u32::MAX;
/// Smallest encoded record: empty topic, no key, no headers, empty payload.
const MIN_RECORD_LEN: usize = 2 + 4 + 2 + 4;

/// One Kafka record as spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key, if any.
    pub key: Option<Vec<u8>>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record value.
    pub payload: Vec<u8>,
}

/// Errors from writing or reading a segment. Damaged content is not an error: it is reported
/// as [`Frame::Corrupt`] or as a torn tail.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file system failed.
    #[error("spool segment I/O: {0}")]
    Io(#[from] io::Error),
    /// A record field is too long for its length prefix.
    #[error("spool record {field} is too long to encode ({len} bytes)")]
    FieldTooLong {
        /// Which field (topic, key, header count, header name, header value, payload).
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A batch exceeds the frame limits (256 MiB encoded, 64 MiB compressed).
    #[error("spool batch too large: {len} bytes {stage}, limit {limit}")]
    BatchTooLarge {
        /// Which limit: "encoded" or "compressed".
        stage: &'static str,
        /// The batch's size at that stage.
        len: usize,
        /// The limit it exceeds.
        limit: usize,
    },
}

/// Appends frames to one segment file.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SegmentWriter {
    /// Creates `path`, which must not exist, as an empty segment (and fsyncs its directory).
    pub fn create(path: &Path) -> Result<Self, SegmentError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        sync_parent_dir(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: 0,
        })
    }

    /// Opens an existing segment for appending at its end. A torn tail still present is
    /// truncated first (as [`recover`] would), so appended frames are always reachable.
    pub fn open_existing(path: &Path) -> Result<Self, SegmentError> {
        let end = SegmentReader::open(path)?.good_end()?;
        let file = OpenOptions::new().append(true).open(path)?;
        if file.metadata()?.len() != end {
            file.set_len(end)?;
            file.sync_all()?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: end,
        })
    }

    /// Writes one frame holding `records` (a batch), compressed, and returns the frame's start
    /// offset. Not yet durable: see [`SegmentWriter::sync`]. On a failed write the partial frame
    /// is cut off again where possible, so the segment stays appendable.
    pub fn append(&mut self, records: &[SpoolRecord]) -> Result<u64, SegmentError> {
        let frame = encode_frame(records)?;
        let start = self.len;
        if let Err(err) = self.file.write_all(&frame) {
            // Best effort: a leftover partial frame would hide every later frame.
            let _ = self.file.set_len(start);
            return Err(err.into());
        }
        self.len = start.saturating_add(frame.len() as u64);
        Ok(start)
    }

    /// Makes everything appended so far durable (fdatasync). The caller decides how often.
    pub fn sync(&mut self) -> Result<(), SegmentError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Bytes in the segment so far (the offset the next frame will start at).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the segment holds no frames yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What reading a segment found, frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A good frame and the batch it holds.
    Records {
        /// Where the frame starts in the file.
        offset: u64,
        /// The batch, in append order.
        records: Vec<SpoolRecord>,
    },
    /// A complete frame whose content is damaged; reading continues after it.
    Corrupt {
        /// Where the frame starts in the file.
        offset: u64,
        /// The frame's total length, header included.
        length: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads a segment's frames in order. A torn tail (an incomplete final frame, or a frame whose
/// length is impossible or runs past the end) ends the iteration; [`SegmentReader::torn_at`]
/// then says where the good data ends. The file's length is taken when it is opened.
#[derive(Debug)]
pub struct SegmentReader {
    reader: BufReader<File>,
    pos: u64,
    file_len: u64,
    torn_at: Option<u64>,
    done: bool,
}

/// A frame header as read from the file.
#[derive(Debug, Clone, Copy)]
struct Header {
    body_len: u32,
    crc: u32,
    version: u8,
}

impl SegmentReader {
    /// Opens a segment for reading from its start.
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        Self::open_at(path, 0)
    }

    /// Opens a segment for reading from `offset`, which must be a frame boundary: a frame's
    /// start (as returned by [`SegmentWriter::append`] or [`SegmentReader::offset`]) or the end
    /// of the good data. An offset at or past the end reads nothing.
    pub fn open_at(path: &Path, offset: u64) -> Result<Self, SegmentError> {
        let mut file = File::open(path)?;
        let file_len = file.metadata()?.len();
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            reader: BufReader::new(file),
            pos: offset,
            file_len,
            torn_at: None,
            done: false,
        })
    }

    /// Where the next frame starts: the end of the last frame read (corrupt ones included).
    /// Meaningful only while [`SegmentReader::next_frame`] has not failed.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Reads the next frame; `None` at the end of the segment or at a torn tail.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SegmentError> {
        let result = self.read_frame();
        if result.is_err() {
            self.done = true;
        }
        result
    }

    /// Where a torn tail starts, once iteration reached it; `None` if the segment ends cleanly
    /// (or iteration has not got there yet).
    pub fn torn_at(&self) -> Option<u64> {
        self.torn_at
    }

    fn read_frame(&mut self) -> Result<Option<Frame>, SegmentError> {
        let offset = self.pos;
        let Some(header) = self.next_header()? else {
            return Ok(None);
        };
        let mut body = vec![0; header.body_len as usize];
        self.reader.read_exact(&mut body)?;
        self.pos = frame_end(offset, header.body_len);
        Ok(Some(check_frame(offset, header, &body)))
    }

    /// Walks the frame headers only (no CRC or decoding) and returns where the good data ends.
    fn good_end(mut self) -> Result<u64, SegmentError> {
        while let Some(header) = self.next_header()? {
            self.reader.seek_relative(i64::from(header.body_len))?;
            self.pos = frame_end(self.pos, header.body_len);
        }
        Ok(self.torn_at.unwrap_or(self.file_len))
    }

    /// Reads the header at `pos` if a whole frame starts there; otherwise marks the end or the
    /// torn tail. Leaves the reader just past the header.
    fn next_header(&mut self) -> Result<Option<Header>, SegmentError> {
        if self.done {
            return Ok(None);
        }
        let remaining = self.file_len.saturating_sub(self.pos);
        if remaining == 0 {
            self.done = true;
            return Ok(None);
        }
        if remaining < HEADER_LEN {
            return Ok(self.mark_torn());
        }
        let mut bytes = [0; HEADER_LEN as usize];
        self.reader.read_exact(&mut bytes)?;
        let header = parse_header(bytes);
        if !body_fits(header.body_len, remaining - HEADER_LEN) {
            return Ok(self.mark_torn());
        }
        Ok(Some(header))
    }

    fn mark_torn(&mut self) -> Option<Header> {
        self.torn_at = Some(self.pos);
        self.done = true;
        None
    }
}

/// Result of checking one segment at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Good frames.
    pub frames: u64,
    /// Records in the good frames.
    pub records: u64,
    /// Complete frames that were damaged and skipped.
    pub corrupt_frames: u64,
    /// Bytes of torn tail cut off.
    pub torn_bytes: u64,
}

/// Checks a segment: counts good and corrupt frames and truncates a torn tail in place
/// (`set_len` + fsync). Good and corrupt frames are never removed. A zero-length file is fine.
pub fn recover(path: &Path) -> Result<Recovered, SegmentError> {
    let mut reader = SegmentReader::open(path)?;
    let mut found = Recovered::default();
    while let Some(frame) = reader.next_frame()? {
        match frame {
            Frame::Records { records, .. } => {
                found.frames += 1;
                found.records += records.len() as u64;
            }
            Frame::Corrupt { .. } => found.corrupt_frames += 1,
        }
    }
    if let Some(torn_at) = reader.torn_at() {
        found.torn_bytes = reader.file_len.saturating_sub(torn_at);
        truncate(path, torn_at)?;
    }
    Ok(found)
}

fn truncate(path: &Path, len: u64) -> Result<(), SegmentError> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()?;
    Ok(())
}

/// Makes a newly created file's directory entry durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn frame_end(offset: u64, body_len: u32) -> u64 {
    offset
        .saturating_add(HEADER_LEN)
        .saturating_add(u64::from(body_len))
}

fn parse_header(bytes: [u8; HEADER_LEN as usize]) -> Header {
    let [l0, l1, l2, l3, c0, c1, c2, c3, version] = bytes;
    Header {
        body_len: u32::from_le_bytes([l0, l1, l2, l3]),
        crc: u32::from_le_bytes([c0, c1, c2, c3]),
        version,
    }
}

/// Whether a length field can be followed: non-zero (zero-filled tails end here), within the
/// cap, and inside the file.
fn body_fits(body_len: u32, available: u64) -> bool {
    body_len != 0 && body_len <= MAX_BODY_LEN && u64::from(body_len) <= available
}

fn frame_crc(version: u8, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[version]), body)
}

/// Turns a complete frame into records or a corruption report.
fn check_frame(offset: u64, header: Header, body: &[u8]) -> Frame {
    let length = frame_end(0, header.body_len);
    let corrupt = |reason: String| Frame::Corrupt {
        offset,
        length,
        reason,
    };
    if header.version != FORMAT_VERSION {
        return corrupt(format!("unknown format version {}", header.version));
    }
    let actual = frame_crc(header.version, body);
    if actual != header.crc {
        return corrupt(format!(
            "CRC mismatch: stored {:#010x}, computed {actual:#010x}",
            header.crc
        ));
    }
    match inflate(body, MAX_DECODED_LEN).and_then(|raw| decode_records(&raw)) {
        Ok(records) => Frame::Records { offset, records },
        Err(reason) => corrupt(reason),
    }
}

// ---- encoding -------------------------------------------------------------------------------

fn encode_frame(records: &[SpoolRecord]) -> Result<Vec<u8>, SegmentError> {
    let raw = encode_records(records)?;
    if raw.len() > MAX_DECODED_LEN {
        return Err(too_large("encoded", raw.len(), MAX_DECODED_LEN));
    }
    let body = deflate(&raw)?;
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_BODY_LEN)
        .ok_or_else(|| too_large("compressed", body.len(), MAX_BODY_LEN as usize))?;
    let mut frame = Vec::with_capacity(body.len().saturating_add(HEADER_LEN as usize));
    frame.extend_from_slice(&body_len.to_le_bytes());
    frame.extend_from_slice(&frame_crc(FORMAT_VERSION, &body).to_le_bytes());
    frame.push(FORMAT_VERSION);
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn too_large(stage: &'static str, len: usize, limit: usize) -> SegmentError {
    SegmentError::BatchTooLarge { stage, len, limit }
}

fn deflate(raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::fast());
    encoder.write_all(raw)?;
    encoder.finish()
}

fn encode_records(records: &[SpoolRecord]) -> Result<Vec<u8>, SegmentError> {
    let mut buf = Vec::new();
    put_u32_len(&mut buf, "record count", records.len())?;
    for record in records {
        encode_record(&mut buf, record)?;
    }
    Ok(buf)
}

fn encode_record(buf: &mut Vec<u8>, record: &SpoolRecord) -> Result<(), SegmentError> {
    put_u16_len(buf, "topic", record.topic.len())?;
    buf.extend_from_slice(record.topic.as_bytes());
    match &record.key {
        Some(key) => {
            put_u32_len(buf, "key", key.len())?;
            buf.extend_from_slice(key);
        }
        None => buf.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    put_u16_len(buf, "header count", record.headers.len())?;
    for (name, value) in &record.headers {
        put_u16_len(buf, "header name", name.len())?;
        buf.extend_from_slice(name.as_bytes());
        put_u32_len(buf, "header value", value.len())?;
        buf.extend_from_slice(value);
    }
    put_u32_len(buf, "payload", record.payload.len())?;
    buf.extend_from_slice(&record.payload);
    Ok(())
}

fn put_u16_len(buf: &mut Vec<u8>, field: &'static str, len: usize) -> Result<(), SegmentError> {
    let n = u16::try_from(len).map_err(|_| SegmentError::FieldTooLong { field, len })?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Writes a u32 length; `u32::MAX` is reserved (it marks "no key").
fn put_u32_len(buf: &mut Vec<u8>, field: &'static str, len: usize) -> Result<(), SegmentError> {
    let n = u32::try_from(len)
        .ok()
        .filter(|&n| n != NO_KEY)
        .ok_or(SegmentError::FieldTooLong { field, len })?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

// ---- decoding -------------------------------------------------------------------------------

/// Decompresses a body, refusing to inflate past `limit` bytes.
fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    ZlibDecoder::new(body)
        .take(cap)
        .read_to_end(&mut raw)
        .map_err(|err| format!("body does not decompress: {err}"))?;
    if raw.len() > limit {
        return Err(format!("body decompresses past {limit} bytes"));
    }
    Ok(raw)
}

fn decode_records(raw: &[u8]) -> Result<Vec<SpoolRecord>, String> {
    let mut input = Decoder { rest: raw };
    let count = input.u32("record count")? as usize;
    // The count is untrusted: never reserve more than the input could possibly hold.
    let mut records = Vec::with_capacity(count.min(input.rest.len() / MIN_RECORD_LEN));
    for _ in 0..count {
        records.push(input.record()?);
    }
    if !input.rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the records",
            input.rest.len()
        ));
    }
    Ok(records)
}

/// A bounds-checked little-endian cursor over a decompressed body.
struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn record(&mut self) -> Result<SpoolRecord, String> {
        let topic = self.string16("topic")?;
        let key = match self.u32("key length")? {
            NO_KEY => None,
            len => Some(self.bytes(len as usize, "key")?.to_vec()),
        };
        let header_count = self.u16("header count")?;
        let mut headers = Vec::with_capacity(usize::from(header_count).min(self.rest.len() / 6));
        for _ in 0..header_count {
            let name = self.string16("header name")?;
            let len = self.u32("header value length")? as usize;
            headers.push((name, self.bytes(len, "header value")?.to_vec()));
        }
        let len = self.u32("payload length")? as usize;
        let payload = self.bytes(len, "payload")?.to_vec();
        Ok(SpoolRecord {
            topic,
            key,
            headers,
            payload,
        })
    }

    fn string16(&mut self, what: &str) -> Result<String, String> {
        let len = self.u16(what)?;
        let bytes = self.bytes(usize::from(len), what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn bytes(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let (head, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| format!("{what} runs past the end of the body"))?;
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| format!("{what} runs past the end of the body"))?;
        self.rest = rest;
        Ok(*head)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tempfile::TempDir;

    fn record(
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        payload: &[u8],
    ) -> SpoolRecord {
        SpoolRecord {
            topic: topic.to_string(),
            key: key.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            payload: payload.to_vec(),
        }
    }

    fn batches() -> Vec<Vec<SpoolRecord>> {
        vec![
            vec![record("logs", None, &[], b"plain line")],
            vec![
                record(
                    "logs",
                    Some(b"host-1"),
                    &[("source", b"journald"), ("x", b"")],
                    b"a",
                ),
                record("logs", Some(b""), &[], b""),
                record(
                    "журнал-日志-🚀",
                    None,
                    &[("ключ", "значение".as_bytes())],
                    b"\x00\xff",
                ),
            ],
            vec![record("metrics", Some(b"k"), &[], &[7u8; 10_000])],
        ]
    }

    fn write_segment(path: &Path, batches: &[Vec<SpoolRecord>]) -> Vec<u64> {
        let mut writer = SegmentWriter::create(path).unwrap();
        let offsets = batches.iter().map(|b| writer.append(b).unwrap()).collect();
        writer.sync().unwrap();
        offsets
    }

    fn read_all(path: &Path) -> (Vec<Frame>, Option<u64>) {
        let mut reader = SegmentReader::open(path).unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            frames.push(frame);
        }
        (frames, reader.torn_at())
    }

    fn good_batches(frames: &[Frame]) -> Vec<Vec<SpoolRecord>> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Records { records, .. } => Some(records.clone()),
                Frame::Corrupt { .. } => None,
            })
            .collect()
    }

    fn seg(dir: &TempDir) -> PathBuf {
        dir.path().join("00000001.seg")
    }

    #[test]
    fn round_trip_of_several_batches() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        assert_eq!(offsets[0], 0);
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));

        let (frames, torn) = read_all(&path);
        assert_eq!(torn, None);
        assert_eq!(good_batches(&frames), batches());
        let read_offsets: Vec<u64> = frames
            .iter()
            .map(|f| match f {
                Frame::Records { offset, .. } | Frame::Corrupt { offset, .. } => *offset,
            })
            .collect();
        assert_eq!(read_offsets, offsets);
        assert_eq!(
            recover(&path).unwrap(),
            Recovered {
                frames: 3,
                records: 5,
                corrupt_frames: 0,
                torn_bytes: 0
            }
        );
    }

    #[test]
    fn writer_len_matches_file_and_path() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let mut writer = SegmentWriter::create(&path).unwrap();
        assert!(writer.is_empty());
        let second = {
            writer.append(&batches()[0]).unwrap();
            writer.append(&batches()[1]).unwrap()
        };
        assert_eq!(writer.len(), std::fs::metadata(&path).unwrap().len());
        assert!(second > 0 && second < writer.len());
        assert_eq!(writer.path(), path.as_path());
    }

    #[test]
    fn create_refuses_an_existing_file() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        write_segment(&path, &batches());
        assert!(matches!(
            SegmentWriter::create(&path),
            Err(SegmentError::Io(_))
        ));
    }

    #[test]
    fn flipped_body_byte_makes_only_that_frame_corrupt() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let mut bytes = std::fs::read(&path).unwrap();
        let inside = offsets[1] as usize + HEADER_LEN as usize + 5;
        bytes[inside] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();

        let (frames, torn) = read_all(&path);
        assert_eq!(torn, None);
        assert_eq!(frames.len(), 3);
        match &frames[1] {
            Frame::Corrupt {
                offset,
                length,
                reason,
            } => {
                assert_eq!(*offset, offsets[1]);
                assert_eq!(*length, offsets[2] - offsets[1]);
                assert!(reason.contains("CRC"), "{reason}");
            }
            other => panic!("expected corrupt frame, got {other:?}"),
        }
        let all = batches();
        assert_eq!(good_batches(&frames), vec![all[0].clone(), all[2].clone()]);

        let len_before = bytes.len() as u64;
        assert_eq!(
            recover(&path).unwrap(),
            Recovered {
                frames: 2,
                records: 2,
                corrupt_frames: 1,
                torn_bytes: 0
            }
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len_before);
    }

    /// Writes a frame with a chosen version and body, with a CRC that matches.
    fn raw_frame(version: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&frame_crc(version, body).to_le_bytes());
        frame.push(version);
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn unknown_version_and_undecodable_bodies_are_corrupt_and_skipped() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let good = encode_frame(&batches()[0]).unwrap();
        let mut bytes = good.clone();
        bytes.extend(raw_frame(2, &good[HEADER_LEN as usize..]));
        bytes.extend(raw_frame(1, b"not zlib at all"));
        // Valid zlib, but the records inside are truncated / have trailing bytes.
        bytes.extend(raw_frame(1, &deflate(&[1, 0, 0, 0, 5, 0]).unwrap()));
        bytes.extend(raw_frame(1, &deflate(&[0, 0, 0, 0, 9]).unwrap()));
        // Invalid UTF-8 topic.
        bytes.extend(raw_frame(1, &deflate(&[1, 0, 0, 0, 1, 0, 0xff]).unwrap()));
        bytes.extend(&good);
        std::fs::write(&path, &bytes).unwrap();

        let (frames, torn) = read_all(&path);
        assert_eq!(torn, None);
        let reasons: Vec<&str> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Corrupt { reason, .. } => Some(reason.as_str()),
                Frame::Records { .. } => None,
            })
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].contains("version 2"));
        assert!(reasons[1].contains("decompress"));
        assert!(reasons[2].contains("past the end"));
        assert!(reasons[3].contains("trailing"));
        assert!(reasons[4].contains("UTF-8"));
        assert_eq!(
            good_batches(&frames),
            vec![batches()[0].clone(), batches()[0].clone()]
        );
    }

    #[test]
    fn cut_at_every_byte_of_the_last_frame_recovers_earlier_frames() {
        let dir = TempDir::new().unwrap();
        let full_path = dir.path().join("full.seg");
        let offsets = write_segment(&full_path, &batches());
        let full = std::fs::read(&full_path).unwrap();
        let last = offsets[2] as usize;
        let extra = vec![record("after", Some(b"k"), &[("h", b"v")], b"appended")];

        for cut in last..full.len() {
            let path = dir.path().join(format!("cut-{cut}.seg"));
            std::fs::write(&path, &full[..cut]).unwrap();
            let found = recover(&path).unwrap();
            assert_eq!(
                found,
                Recovered {
                    frames: 2,
                    records: 4,
                    corrupt_frames: 0,
                    torn_bytes: (cut - last) as u64
                },
                "cut at {cut}"
            );
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                last as u64,
                "cut at {cut}"
            );

            let mut writer = SegmentWriter::open_existing(&path).unwrap();
            assert_eq!(writer.len(), last as u64);
            assert_eq!(writer.append(&extra).unwrap(), last as u64);
            writer.sync().unwrap();
            let (frames, torn) = read_all(&path);
            assert_eq!(torn, None, "cut at {cut}");
            let all = batches();
            assert_eq!(
                good_batches(&frames),
                vec![all[0].clone(), all[1].clone(), extra.clone()]
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn open_at_reads_from_a_frame_boundary() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let len = std::fs::metadata(&path).unwrap().len();

        let mut reader = SegmentReader::open_at(&path, offsets[1]).unwrap();
        assert_eq!(reader.offset(), offsets[1]);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            frames.push(frame);
            if frames.len() == 1 {
                assert_eq!(reader.offset(), offsets[2]);
            }
        }
        assert_eq!(good_batches(&frames), batches()[1..].to_vec());
        assert_eq!(reader.offset(), len);
        assert_eq!(reader.torn_at(), None);

        for at_or_past_end in [len, len + 100] {
            let mut reader = SegmentReader::open_at(&path, at_or_past_end).unwrap();
            assert_eq!(reader.next_frame().unwrap(), None);
            assert_eq!(reader.torn_at(), None);
        }
    }

    #[test]
    fn reader_reports_where_a_torn_tail_starts() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let (frames, torn) = read_all(&path);
        assert_eq!(frames.len(), 2);
        assert_eq!(torn, Some(offsets[2]));
    }

    #[test]
    fn open_existing_truncates_a_torn_tail_itself() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(offsets[2] as usize + 4);
        std::fs::write(&path, &bytes).unwrap();

        let mut writer = SegmentWriter::open_existing(&path).unwrap();
        assert_eq!(writer.len(), offsets[2]);
        writer.append(&batches()[2]).unwrap();
        let (frames, torn) = read_all(&path);
        assert_eq!(torn, None);
        assert_eq!(good_batches(&frames), batches());
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        write_segment(&path, &batches()[..1]);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend([0u8; 4096]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            recover(&path).unwrap(),
            Recovered {
                frames: 1,
                records: 1,
                corrupt_frames: 0,
                torn_bytes: 4096
            }
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    }

    #[test]
    fn zero_length_segment_is_empty_and_appendable() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_all(&path), (vec![], None));
        assert_eq!(recover(&path).unwrap(), Recovered::default());
        let mut writer = SegmentWriter::open_existing(&path).unwrap();
        assert!(writer.is_empty());
        assert_eq!(writer.append(&batches()[0]).unwrap(), 0);
        assert_eq!(good_batches(&read_all(&path).0), vec![batches()[0].clone()]);
    }

    #[test]
    fn huge_length_field_is_torn_without_allocating() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches()[..1]);
        assert_eq!(offsets, vec![0]);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let bytes = std::fs::read(&path).unwrap();
        for claimed in [u32::MAX, MAX_BODY_LEN + 1] {
            let mut damaged = bytes.clone();
            damaged.extend_from_slice(&claimed.to_le_bytes());
            damaged.extend_from_slice(&[0xab; 4]);
            damaged.push(FORMAT_VERSION);
            damaged.extend_from_slice(&[0x11; 100]);
            std::fs::write(&path, &damaged).unwrap();
            let (frames, torn) = read_all(&path);
            assert_eq!(frames.len(), 1);
            assert_eq!(torn, Some(good_len));
            let found = recover(&path).unwrap();
            assert_eq!(found.frames, 1);
            assert_eq!(found.torn_bytes, damaged.len() as u64 - good_len);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        }
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let bomb = deflate(&vec![0u8; 100_000]).unwrap();
        assert!(bomb.len() < 1_000);
        assert!(inflate(&bomb, 10_000).unwrap_err().contains("past"));
        assert_eq!(inflate(&bomb, 100_000).unwrap().len(), 100_000);
    }

    #[test]
    fn absurd_record_count_does_not_preallocate() {
        let raw = [0xff, 0xff, 0xff, 0xfe];
        assert!(decode_records(&raw).unwrap_err().contains("past the end"));
    }

    #[test]
    fn oversized_fields_are_refused_before_writing() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let mut writer = SegmentWriter::create(&path).unwrap();
        let long_topic = record(&"t".repeat(70_000), None, &[], b"");
        assert!(matches!(
            writer.append(&[long_topic]),
            Err(SegmentError::FieldTooLong {
                field: "topic",
                len: 70_000
            })
        ));
        assert_eq!(writer.len(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn appending_after_open_existing() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let all = batches();
        write_segment(&path, &all[..2]);
        let before = std::fs::metadata(&path).unwrap().len();
        let mut writer = SegmentWriter::open_existing(&path).unwrap();
        assert_eq!(writer.len(), before);
        assert_eq!(writer.append(&all[2]).unwrap(), before);
        writer.sync().unwrap();
        drop(writer);
        let (frames, torn) = read_all(&path);
        assert_eq!(torn, None);
        assert_eq!(good_batches(&frames), all);
    }

    /// Reads a whole segment and recovers it; checks the invariants that must hold for any file.
    fn check_any_file(bytes: &[u8]) -> Result<(), TestCaseError> {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        std::fs::write(&path, bytes).unwrap();
        let (frames, torn) = read_all(&path);
        let spans: Vec<(u64, Option<u64>)> = frames
            .iter()
            .map(|f| match f {
                Frame::Records { offset, .. } => (*offset, None),
                Frame::Corrupt { offset, length, .. } => (*offset, Some(*length)),
            })
            .collect();
        if let Some((first, _)) = spans.first() {
            prop_assert_eq!(*first, 0);
        }
        for pair in spans.windows(2) {
            prop_assert!(pair[0].0 < pair[1].0);
            if let Some(length) = pair[0].1 {
                prop_assert_eq!(pair[0].0 + length, pair[1].0);
            }
        }
        let found = recover(&path).unwrap();
        let kept = std::fs::metadata(&path).unwrap().len();
        prop_assert_eq!(kept + found.torn_bytes, bytes.len() as u64);
        prop_assert_eq!(torn.unwrap_or(bytes.len() as u64), kept);
        prop_assert_eq!(found.frames + found.corrupt_frames, frames.len() as u64);
        // Recovery is idempotent and leaves an appendable segment.
        let again = recover(&path).unwrap();
        prop_assert_eq!(again.torn_bytes, 0);
        prop_assert_eq!(again.frames, found.frames);
        let mut writer = SegmentWriter::open_existing(&path).unwrap();
        prop_assert_eq!(writer.len(), kept);
        writer.append(&batches()[0]).unwrap();
        let (after, torn_after) = read_all(&path);
        prop_assert_eq!(torn_after, None);
        prop_assert_eq!(after.len(), frames.len() + 1);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            check_any_file(&bytes)?;
        }

        #[test]
        fn damaged_valid_segments_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate_it in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            for batch in batches() {
                bytes.extend(encode_frame(&batch).unwrap());
            }
            for (at, xor) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
            }
            if truncate_it {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            check_any_file(&bytes)?;
        }
    }
}
