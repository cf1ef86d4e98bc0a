//! Segment files: appending frames, reading them back (whole, or checking headers and
//! checksums only), and finding the next frame after damage.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::codec::{self, HEADER_LEN, Header, VERSION};
use super::{Frame, SegmentError, SpoolRecord};

/// How much of a damaged stretch is read at a time while looking for the next frame.
const SCAN_CHUNK: usize = 64 * 1024;
/// Bytes a header candidate needs past its start to be recognised (a format-1 version byte and
/// zlib header end 11 bytes in): windows overlap by this much less one.
const CANDIDATE_SPAN: usize = 11;

/// Appends frames to one segment file.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    len: u64,
    /// Bytes made durable by the last successful fsync.
    synced: u64,
    /// An fsync failed: the file is never fsynced again (Linux reports a writeback error once;
    /// a second fsync may succeed although the data is lost).
    sync_failed: bool,
}

impl SegmentWriter {
    /// Creates `path`, which must not exist, as an empty segment readable by its owner only
    /// (and fsyncs its directory).
    pub fn create(path: &Path) -> Result<Self, SegmentError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        sync_parent_dir(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: 0,
            synced: 0,
            sync_failed: false,
        })
    }

    /// Writes one frame holding `records` (a batch) and returns the frame's start offset. Not
    /// yet durable: see [`SegmentWriter::sync`].
    pub fn append(&mut self, records: &[SpoolRecord]) -> Result<u64, SegmentError> {
        let frame = codec::encode(records)?;
        self.append_encoded(&frame)
    }

    /// Writes one frame made by [`super::encode`] and returns its start offset. On a failed
    /// write the partial frame is cut off again where possible, so the segment stays
    /// appendable.
    pub fn append_encoded(&mut self, frame: &[u8]) -> Result<u64, SegmentError> {
        let start = self.len;
        if let Err(err) = self.file.write_all(frame) {
            // Best effort: the store checks the length afterwards.
            let _ = self.file.set_len(start);
            return Err(err.into());
        }
        self.len = start.saturating_add(frame.len() as u64);
        Ok(start)
    }

    /// Makes everything appended so far durable (fdatasync). After a failure the segment must
    /// be given up: this fails again without trying.
    pub fn sync(&mut self) -> Result<(), SegmentError> {
        if self.sync_failed {
            return Err(io::Error::other("an earlier fsync of this segment failed").into());
        }
        let result = self.fsync();
        match result {
            Ok(()) => self.synced = self.len,
            Err(_) => self.sync_failed = true,
        }
        result
    }

    fn fsync(&mut self) -> Result<(), SegmentError> {
        #[cfg(test)]
        faults::sync_called(&self.path)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Cuts the file back to `len` (what was durable, after a failed fsync).
    pub fn cut_to(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        self.synced = self.synced.min(len);
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

    /// Bytes made durable by the last successful [`SegmentWriter::sync`].
    pub fn synced_len(&self) -> u64 {
        self.synced
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The one fault the tests inject: no real file system here fails fsync on demand, and a failed
/// fsync (EIO, or ENOSPC from delayed allocation) is what invariant 5 must survive. Everything
/// else the spool's tests do happens on real files.
#[cfg(test)]
pub(crate) mod faults {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::path::{Path, PathBuf};

    thread_local! {
        static FAILING: Cell<u32> = const { Cell::new(0) };
        static SYNCED: RefCell<Vec<(PathBuf, bool)>> = const { RefCell::new(Vec::new()) };
    }

    /// The next `n` segment fsyncs on this thread fail with EIO.
    pub(crate) fn fail_next_syncs(n: u32) {
        FAILING.with(|f| f.set(n));
    }

    /// Every segment fsync on this thread since the last call: the file and whether it failed.
    pub(crate) fn take_syncs() -> Vec<(PathBuf, bool)> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    pub(super) fn sync_called(path: &Path) -> io::Result<()> {
        let fail = FAILING.with(|f| {
            let left = f.get();
            f.set(left.saturating_sub(1));
            left > 0
        });
        SYNCED.with(|s| s.borrow_mut().push((path.to_path_buf(), fail)));
        if fail {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

/// What checking a segment found, item by item, without decoding records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A frame whose header (and body, if bodies are checked) is good.
    Good {
        /// Where it starts.
        offset: u64,
        /// Header and body.
        length: u64,
        /// Records it holds.
        records: u64,
    },
    /// Damaged bytes, as in [`Frame::Corrupt`].
    Damaged {
        /// Where the damage starts.
        offset: u64,
        /// Bytes skipped.
        length: u64,
        /// Records lost, when a trusted header says (else 0).
        records: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a segment's frames in order, from a frame boundary up to an end the caller gives (the
/// durable length; a file shorter than that is an `UnexpectedEof` error, not a torn tail).
#[derive(Debug)]
pub struct SegmentReader {
    file: File,
    pos: u64,
    end: u64,
}

/// What starts at an offset.
enum Located {
    /// A trusted frame within the end; its body when it was read.
    Good {
        header: Header,
        body: Option<Vec<u8>>,
    },
    /// A trusted header whose body is damaged (or of an unknown format).
    BadBody { header: Header, reason: String },
}

/// One item, before records are decoded or counted.
enum Item {
    Frame {
        offset: u64,
        header: Header,
        body: Option<Vec<u8>>,
    },
    Damaged {
        offset: u64,
        length: u64,
        records: u64,
        reason: String,
    },
}

impl SegmentReader {
    /// Opens a segment for reading from its start to its current end.
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        let file = File::open(path)?;
        let end = file.metadata()?.len();
        Ok(Self { file, pos: 0, end })
    }

    /// Opens a segment for reading from `offset`, which must be a frame boundary (a frame's
    /// start, as returned by [`SegmentWriter::append`] or [`SegmentReader::offset`]), up to
    /// `end`. An offset at or past the end reads nothing.
    pub fn open_at(path: &Path, offset: u64, end: u64) -> Result<Self, SegmentError> {
        let file = File::open(path)?;
        Ok(Self {
            file,
            pos: offset,
            end,
        })
    }

    /// Where the next item starts: the end of the last one read.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Moves the end reading stops at (more of the segment became durable).
    pub fn set_end(&mut self, end: u64) {
        self.end = end;
    }

    /// Reads and decodes the next frame; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SegmentError> {
        Ok(self.next_item(true)?.map(|item| match item {
            Item::Frame {
                offset,
                header,
                body,
            } => {
                let decoded = body
                    .ok_or_else(|| "body not read".to_string())
                    .and_then(|body| codec::decode_body(&header, &body));
                match decoded {
                    Ok(records) => Frame::Records { offset, records },
                    Err(reason) => Frame::Corrupt {
                        offset,
                        length: header.frame_len(),
                        records: header.records.map_or(0, u64::from),
                        reason,
                    },
                }
            }
            Item::Damaged {
                offset,
                length,
                records,
                reason,
            } => Frame::Corrupt {
                offset,
                length,
                records,
                reason,
            },
        }))
    }

    /// Checks the next frame without decoding it: its header, and its body's CRC when
    /// `bodies` (format-1 bodies are always checked: only their CRC makes their header
    /// trustworthy). `None` at the end.
    pub fn next_checked(&mut self, bodies: bool) -> Result<Option<Checked>, SegmentError> {
        Ok(self.next_item(bodies)?.map(|item| match item {
            Item::Frame {
                offset,
                header,
                body,
            } => Checked::Good {
                offset,
                length: header.frame_len(),
                // A format-1 body that passed its CRC but does not decompress is found, and
                // counted, when replay decodes it.
                records: codec::record_count(&header, body.as_deref()).unwrap_or(0),
            },
            Item::Damaged {
                offset,
                length,
                records,
                reason,
            } => Checked::Damaged {
                offset,
                length,
                records,
                reason,
            },
        }))
    }

    fn next_item(&mut self, bodies: bool) -> Result<Option<Item>, SegmentError> {
        let offset = self.pos;
        if offset >= self.end {
            return Ok(None);
        }
        let item = match self.frame_at(offset, bodies)? {
            Some(Located::Good { header, body }) => Item::Frame {
                offset,
                header,
                body,
            },
            Some(Located::BadBody { header, reason }) => Item::Damaged {
                offset,
                length: header.frame_len(),
                records: header.records.map_or(0, u64::from),
                reason,
            },
            None => {
                let next = self.scan(offset + 1)?;
                let length = next - offset;
                let reason = if next < self.end {
                    format!("no frame header: {length} bytes skipped to the next frame")
                } else {
                    format!("no frame from here to the end ({length} bytes)")
                };
                Item::Damaged {
                    offset,
                    length,
                    records: 0,
                    reason,
                }
            }
        };
        self.pos = match &item {
            Item::Frame { header, .. } => offset + header.frame_len(),
            Item::Damaged { length, .. } => offset + length,
        };
        Ok(Some(item))
    }

    /// What starts at `offset`: a frame (with its body if `body` or if its format needs the
    /// body to be trusted), a trusted header with a bad body, or nothing usable.
    fn frame_at(&self, offset: u64, body: bool) -> io::Result<Option<Located>> {
        let available = self.end - offset;
        let mut bytes = [0; HEADER_LEN as usize];
        let n = usize::try_from(available.min(HEADER_LEN)).unwrap_or(0);
        self.file.read_exact_at(&mut bytes[..n], offset)?;
        let Some(header) = codec::probe(&bytes[..n]) else {
            return Ok(None);
        };
        if header.frame_len() > available {
            return Ok(None); // runs past the data: not a frame (or a torn one)
        }
        if !header.self_checked() {
            // Format 1: only the body's CRC says the length was not the damage.
            let data = self.body(offset, &header)?;
            if !codec::body_matches(&header, &data) {
                return Ok(None);
            }
            return Ok(Some(Located::Good {
                header,
                body: Some(data),
            }));
        }
        if header.version != VERSION {
            let reason = format!("unknown format version {}", header.version);
            return Ok(Some(Located::BadBody { header, reason }));
        }
        if !body {
            return Ok(Some(Located::Good { header, body: None }));
        }
        let data = self.body(offset, &header)?;
        if !codec::body_matches(&header, &data) {
            let reason = "body CRC mismatch".to_string();
            return Ok(Some(Located::BadBody { header, reason }));
        }
        Ok(Some(Located::Good {
            header,
            body: Some(data),
        }))
    }

    fn body(&self, offset: u64, header: &Header) -> io::Result<Vec<u8>> {
        let mut body = vec![0; header.body_len as usize];
        self.file
            .read_exact_at(&mut body, offset + header.header_len)?;
        Ok(body)
    }

    /// The first offset at or after `from` where a trusted frame starts, or the end.
    fn scan(&self, from: u64) -> io::Result<u64> {
        let mut start = from;
        let mut window = vec![0; SCAN_CHUNK];
        while start < self.end {
            let len = usize::try_from(self.end - start).map_or(SCAN_CHUNK, |n| n.min(SCAN_CHUNK));
            self.file.read_exact_at(&mut window[..len], start)?;
            let mut at = 0;
            while let Some(candidate) = codec::next_candidate(&window[..len], at) {
                let offset = start + candidate as u64;
                if self.frame_at(offset, false)?.is_some() {
                    return Ok(offset);
                }
                at = candidate + 1;
            }
            if start + (len as u64) >= self.end {
                break;
            }
            // Overlap: a candidate too close to the window's end to be recognised is looked at
            // again at the start of the next one.
            start += (len - (CANDIDATE_SPAN - 1)) as u64;
        }
        Ok(self.end)
    }
}

/// Makes a newly created file's directory entry durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, MAX_BODY_LEN, V1};
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

    /// A frame as agents before format 2 wrote it.
    fn v1_frame(records: &[SpoolRecord]) -> Vec<u8> {
        let body = codec::deflate(&codec::encode_records(records).unwrap()).unwrap();
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[V1]), &body);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.push(V1);
        frame.extend_from_slice(&body);
        frame
    }

    /// A format-2 frame with a chosen version, record count and body, and matching CRCs.
    fn raw_frame(version: u8, count: u32, body: &[u8]) -> Vec<u8> {
        let mut frame = codec::MARKER.to_vec();
        frame.push(version);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&count.to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        let header_crc = crc32c::crc32c(&frame);
        frame.extend_from_slice(&header_crc.to_le_bytes());
        frame.extend_from_slice(body);
        frame
    }

    fn read_all(path: &Path) -> Vec<Frame> {
        let mut reader = SegmentReader::open(path).unwrap();
        std::iter::from_fn(|| reader.next_frame().unwrap()).collect()
    }

    fn check_all(path: &Path, bodies: bool) -> Vec<Checked> {
        let mut reader = SegmentReader::open(path).unwrap();
        std::iter::from_fn(|| reader.next_checked(bodies).unwrap()).collect()
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

    /// (offset, length) of every corrupt stretch.
    fn corrupt(frames: &[Frame]) -> Vec<(u64, u64)> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Corrupt { offset, length, .. } => Some((*offset, *length)),
                Frame::Records { .. } => None,
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
        let frames = read_all(&path);
        assert_eq!(good_batches(&frames), batches());
        let read_offsets: Vec<u64> = frames
            .iter()
            .map(|f| match f {
                Frame::Records { offset, .. } | Frame::Corrupt { offset, .. } => *offset,
            })
            .collect();
        assert_eq!(read_offsets, offsets);
        let len = std::fs::metadata(&path).unwrap().len();
        for bodies in [false, true] {
            let checked = check_all(&path, bodies);
            let records: Vec<u64> = checked
                .iter()
                .map(|c| match c {
                    Checked::Good { records, .. } => *records,
                    Checked::Damaged { .. } => panic!("{c:?}"),
                })
                .collect();
            assert_eq!(records, vec![1, 3, 1]);
            let end = checked.last().map(|c| match c {
                Checked::Good { offset, length, .. } => offset + length,
                Checked::Damaged { .. } => 0,
            });
            assert_eq!(end, Some(len));
        }
    }

    #[test]
    fn writer_len_matches_file_and_path() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let mut writer = SegmentWriter::create(&path).unwrap();
        assert!(writer.is_empty());
        writer.append(&batches()[0]).unwrap();
        let second = writer.append(&batches()[1]).unwrap();
        assert_eq!(writer.len(), std::fs::metadata(&path).unwrap().len());
        assert!(second > 0 && second < writer.len());
        assert_eq!(writer.path(), path.as_path());
        assert_eq!(writer.synced_len(), 0);
        writer.sync().unwrap();
        assert_eq!(writer.synced_len(), writer.len());
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
    fn a_segment_that_failed_to_fsync_is_never_fsynced_again() {
        let dir = TempDir::new().unwrap();
        let mut writer = SegmentWriter::create(&seg(&dir)).unwrap();
        writer.append(&batches()[0]).unwrap();
        faults::fail_next_syncs(1);
        assert!(writer.sync().is_err());
        faults::take_syncs();
        assert!(writer.sync().is_err(), "no second chance");
        assert!(faults::take_syncs().is_empty(), "not even tried");
        assert_eq!(writer.synced_len(), 0);
    }

    #[test]
    fn flipped_body_byte_makes_only_that_frame_corrupt() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[1] as usize + HEADER_LEN as usize + 5] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();

        let frames = read_all(&path);
        assert_eq!(frames.len(), 3);
        match &frames[1] {
            Frame::Corrupt {
                offset,
                length,
                records,
                reason,
            } => {
                assert_eq!(*offset, offsets[1]);
                assert_eq!(*length, offsets[2] - offsets[1]);
                assert_eq!(*records, 3, "the header's count");
                assert!(reason.contains("CRC"), "{reason}");
            }
            other => panic!("expected corrupt frame, got {other:?}"),
        }
        let all = batches();
        assert_eq!(good_batches(&frames), vec![all[0].clone(), all[2].clone()]);
        // Checking headers alone does not see it; checking bodies does.
        assert!(
            check_all(&path, false)
                .iter()
                .all(|c| matches!(c, Checked::Good { .. }))
        );
        assert!(matches!(
            check_all(&path, true)[1],
            Checked::Damaged { records: 3, .. }
        ));
    }

    /// Review finding 1: a bad length field (or any other header byte) costs that frame only;
    /// the reader finds the next frame by its marker and header CRC.
    #[test]
    fn a_damaged_header_byte_costs_only_its_frame() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let clean = std::fs::read(&path).unwrap();
        let all = batches();
        for at in 0..HEADER_LEN as usize {
            for flip in [0x01, 0x80, 0xff] {
                let mut bytes = clean.clone();
                bytes[offsets[1] as usize + at] ^= flip;
                std::fs::write(&path, &bytes).unwrap();
                let frames = read_all(&path);
                assert_eq!(
                    good_batches(&frames),
                    vec![all[0].clone(), all[2].clone()],
                    "byte {at} ^ {flip:#x}"
                );
                assert_eq!(
                    corrupt(&frames),
                    vec![(offsets[1], offsets[2] - offsets[1])],
                    "byte {at} ^ {flip:#x}"
                );
            }
        }
    }

    /// Segments written by older agents (format 1) are read, and a bad length field there
    /// costs its frame only too: the scan checks each candidate's body CRC.
    #[test]
    fn format_1_segments_are_still_read() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let all = batches();
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for batch in &all {
            offsets.push(bytes.len() as u64);
            bytes.extend(v1_frame(batch));
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(good_batches(&read_all(&path)), all);
        let counts: Vec<Checked> = check_all(&path, false);
        assert!(
            matches!(counts[1], Checked::Good { records: 3, .. }),
            "{counts:?}"
        );

        for at in 0..9 {
            let mut damaged = bytes.clone();
            damaged[offsets[1] as usize + at] ^= 0x10;
            std::fs::write(&path, &damaged).unwrap();
            let frames = read_all(&path);
            assert_eq!(
                good_batches(&frames),
                vec![all[0].clone(), all[2].clone()],
                "byte {at}"
            );
            assert_eq!(
                corrupt(&frames),
                vec![(offsets[1], offsets[2] - offsets[1])]
            );
        }
    }

    #[test]
    fn unknown_versions_and_undecodable_bodies_are_corrupt_and_skipped() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let good = codec::encode(&batches()[0]).unwrap();
        let body = &good[HEADER_LEN as usize..];
        let mut bytes = good.clone();
        bytes.extend(raw_frame(3, 1, body));
        bytes.extend(raw_frame(2, 1, b"not zlib at all"));
        // Valid zlib, but the records inside are truncated / have trailing bytes.
        bytes.extend(raw_frame(
            2,
            1,
            &codec::deflate(&[1, 0, 0, 0, 5, 0]).unwrap(),
        ));
        bytes.extend(raw_frame(2, 0, &codec::deflate(&[0, 0, 0, 0, 9]).unwrap()));
        // Invalid UTF-8 topic.
        bytes.extend(raw_frame(
            2,
            1,
            &codec::deflate(&[1, 0, 0, 0, 1, 0, 0xff]).unwrap(),
        ));
        // A record count that does not match the header.
        bytes.extend(raw_frame(2, 7, body));
        bytes.extend(&good);
        std::fs::write(&path, &bytes).unwrap();

        let frames = read_all(&path);
        let reasons: Vec<&str> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Corrupt { reason, .. } => Some(reason.as_str()),
                Frame::Records { .. } => None,
            })
            .collect();
        assert_eq!(reasons.len(), 6, "{reasons:?}");
        assert!(reasons[0].contains("version 3"));
        assert!(reasons[1].contains("decompress"));
        assert!(reasons[2].contains("past the end"));
        assert!(reasons[3].contains("trailing"));
        assert!(reasons[4].contains("UTF-8"));
        assert!(reasons[5].contains("header says"));
        assert_eq!(
            good_batches(&frames),
            vec![batches()[0].clone(), batches()[0].clone()]
        );
    }

    #[test]
    fn a_file_cut_anywhere_in_its_last_frame_reads_the_rest_as_one_damaged_tail() {
        let dir = TempDir::new().unwrap();
        let full_path = dir.path().join("full.seg");
        let offsets = write_segment(&full_path, &batches());
        let full = std::fs::read(&full_path).unwrap();
        let last = offsets[2] as usize;
        for cut in last + 1..full.len() {
            let path = dir.path().join(format!("cut-{cut}.seg"));
            std::fs::write(&path, &full[..cut]).unwrap();
            let frames = read_all(&path);
            assert_eq!(
                good_batches(&frames),
                batches()[..2].to_vec(),
                "cut at {cut}"
            );
            assert_eq!(corrupt(&frames), vec![(last as u64, (cut - last) as u64)]);
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn open_at_reads_from_a_frame_boundary_up_to_the_end_given() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let len = std::fs::metadata(&path).unwrap().len();

        let mut reader = SegmentReader::open_at(&path, offsets[1], len).unwrap();
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

        // Only what the end allows; more once it moves.
        let mut reader = SegmentReader::open_at(&path, 0, offsets[2]).unwrap();
        assert_eq!(
            good_batches(&std::iter::from_fn(|| reader.next_frame().unwrap()).collect::<Vec<_>>()),
            batches()[..2].to_vec()
        );
        reader.set_end(len);
        assert!(matches!(
            reader.next_frame().unwrap(),
            Some(Frame::Records { .. })
        ));

        for at_or_past_end in [len, len + 100] {
            let mut reader = SegmentReader::open_at(&path, at_or_past_end, len).unwrap();
            assert_eq!(reader.next_frame().unwrap(), None);
        }
    }

    #[test]
    fn a_file_shorter_than_the_end_given_is_an_error_not_damage() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        let offsets = write_segment(&path, &batches());
        let len = std::fs::metadata(&path).unwrap().len();
        let mut reader = SegmentReader::open_at(&path, offsets[2], len + 50).unwrap();
        assert!(matches!(
            reader.next_frame(),
            Ok(Some(Frame::Records { .. }))
        ));
        match reader.next_frame() {
            Err(SegmentError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof),
            Err(err) => panic!("{err}"),
            Ok(frame) => panic!("read {:?}", frame.map(|_| "a frame")),
        }
    }

    #[test]
    fn zero_filled_tail_is_one_damaged_stretch() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        write_segment(&path, &batches()[..1]);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend([0u8; 4096]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(corrupt(&read_all(&path)), vec![(good_len, 4096)]);
    }

    #[test]
    fn zero_length_segment_is_empty() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_all(&path), vec![]);
        assert_eq!(check_all(&path, true), vec![]);
    }

    #[test]
    fn huge_length_fields_are_damage_without_allocating() {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        write_segment(&path, &batches()[..1]);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let bytes = std::fs::read(&path).unwrap();
        let mut huge_v2 = raw_frame(2, 1, b"x");
        huge_v2.truncate(HEADER_LEN as usize);
        huge_v2[5..9].copy_from_slice(&(MAX_BODY_LEN + 1).to_le_bytes());
        let crc = crc32c::crc32c(&huge_v2[..17]);
        huge_v2[17..21].copy_from_slice(&crc.to_le_bytes());
        let mut huge_v1 = u32::MAX.to_le_bytes().to_vec();
        huge_v1.extend_from_slice(&[0xab; 4]);
        huge_v1.push(V1);
        for claimed in [huge_v2, huge_v1] {
            let mut damaged = bytes.clone();
            damaged.extend_from_slice(&claimed);
            damaged.extend_from_slice(&[0x11; 100]);
            std::fs::write(&path, &damaged).unwrap();
            let frames = read_all(&path);
            assert_eq!(good_batches(&frames).len(), 1);
            assert_eq!(
                corrupt(&frames),
                vec![(good_len, damaged.len() as u64 - good_len)]
            );
        }
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
    fn segment_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        SegmentWriter::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Reads a whole file; checks what must hold for any bytes at all: items follow each other
    /// without gaps from 0 to the end, and checking agrees with reading on where items are.
    fn check_any_file(bytes: &[u8]) -> Result<Vec<Frame>, TestCaseError> {
        let dir = TempDir::new().unwrap();
        let path = seg(&dir);
        std::fs::write(&path, bytes).unwrap();
        let frames = read_all(&path);
        let spans: Vec<(u64, u64)> = frames
            .iter()
            .map(|f| match f {
                Frame::Records { offset, .. } => (*offset, 0),
                Frame::Corrupt { offset, length, .. } => (*offset, *length),
            })
            .collect();
        let checked = check_all(&path, true);
        prop_assert_eq!(checked.len(), frames.len());
        let mut at = 0;
        for (i, c) in checked.iter().enumerate() {
            let (offset, length) = match c {
                Checked::Good { offset, length, .. } | Checked::Damaged { offset, length, .. } => {
                    (*offset, *length)
                }
            };
            prop_assert_eq!(offset, at);
            prop_assert_eq!(spans[i].0, offset);
            prop_assert!(length > 0);
            at = offset + length;
        }
        prop_assert_eq!(at, bytes.len() as u64);
        Ok(frames)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            check_any_file(&bytes)?;
        }

        /// Damage costs only the frames it touches (finding 1): every frame without a flipped
        /// byte, and before the cut, is read back whole.
        #[test]
        fn damage_costs_only_the_frames_it_touches(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate_it in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            let mut spans = Vec::new();
            for batch in batches().into_iter().chain(batches()) {
                let frame = codec::encode(&batch).unwrap();
                spans.push((bytes.len(), bytes.len() + frame.len(), batch));
                bytes.extend(frame);
            }
            let mut touched = vec![false; spans.len()];
            for (at, xor) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
                for (t, (start, end, _)) in touched.iter_mut().zip(&spans) {
                    *t |= (*start..*end).contains(&i);
                }
            }
            if truncate_it {
                let keep = cut.index(bytes.len() + 1);
                bytes.truncate(keep);
                for (t, (_, end, _)) in touched.iter_mut().zip(&spans) {
                    *t |= *end > keep;
                }
            }
            let frames = check_any_file(&bytes)?;
            let read = good_batches(&frames);
            let intact: Vec<Vec<SpoolRecord>> = spans
                .into_iter()
                .zip(&touched)
                .filter(|(_, t)| !**t)
                .map(|((_, _, batch), _)| batch)
                .collect();
            prop_assert_eq!(read, intact);
        }
    }
}
