//! Bytes ⇄ frames: frame headers of both formats, checksums, compression, and the record
//! encoding inside a body. No I/O.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::{MAX_BATCH_BYTES, SegmentError, SpoolRecord};

/// Starts every format-2 frame; never zero, so zero-filled tails are not mistaken for frames.
pub(super) const MARKER: [u8; 4] = [0x89, b'L', b'S', b'F'];
/// The format this module writes.
pub(super) const VERSION: u8 = 2;
/// The format older agents wrote.
pub(super) const V1: u8 = 1;
/// Bytes in a format-2 header: marker, version, length, record count, body CRC, header CRC.
pub(super) const HEADER_LEN: u64 = 21;
/// Bytes in a format-1 header: length, CRC, version.
pub(super) const V1_HEADER_LEN: u64 = 9;
/// Bytes covered by the format-2 header CRC.
const HEADER_CRC_SPAN: usize = 17;
/// Largest format-2 body: [`MAX_BATCH_BYTES`] compressed, with deflate's worst-case growth
/// (5 bytes per 16 KiB stored block, plus the zlib wrapper) and a margin.
pub(super) const MAX_BODY_LEN: u32 = (MAX_BATCH_BYTES + MAX_BATCH_BYTES / 1024 + 1024) as u32;
/// Format 1's limits, kept to read what older agents wrote.
const V1_MAX_BODY_LEN: u32 = 64 * 1024 * 1024;
const V1_MAX_DECODED_LEN: usize = 256 * 1024 * 1024;
/// flate2's zlib header at the fast level, which every format-1 body starts with: a cheap
/// filter before checking a body CRC while scanning for a format-1 frame.
const V1_ZLIB_HEADER: [u8; 2] = [0x78, 0x01];
/// Marks an absent key in the key length field.
const NO_KEY: u32 = u32::MAX;
/// Smallest encoded record: empty topic, no key, no headers, empty payload.
const MIN_RECORD_LEN: usize = 2 + 4 + 2 + 4;

/// A frame header as found in the file. A format-2 header is trusted (its CRC matched); a
/// format-1 header only once [`body_matches`] says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) version: u8,
    pub(super) header_len: u64,
    pub(super) body_len: u32,
    /// The record count a format-2 header carries.
    pub(super) records: Option<u32>,
    body_crc: u32,
}

impl Header {
    /// Header and body.
    pub(super) fn frame_len(&self) -> u64 {
        self.header_len + u64::from(self.body_len)
    }

    /// Whether the header alone can be trusted (format 2 and later).
    pub(super) fn self_checked(&self) -> bool {
        self.version != V1
    }
}

/// The header at the start of `bytes`, if one plausibly starts there: a format-2 header whose
/// CRC matches, or a format-1 header with a possible length (still to be checked against its
/// body). `bytes` may be shorter than a header near the end of the data.
pub(super) fn probe(bytes: &[u8]) -> Option<Header> {
    if bytes.starts_with(&MARKER) {
        let header: &[u8; HEADER_LEN as usize] = bytes.first_chunk()?;
        let stored = u32_at(header, HEADER_CRC_SPAN);
        if crc32c::crc32c(&header[..HEADER_CRC_SPAN]) != stored {
            return None;
        }
        let body_len = u32_at(header, 5);
        return (1..=MAX_BODY_LEN).contains(&body_len).then(|| Header {
            version: header[4],
            header_len: HEADER_LEN,
            body_len,
            records: Some(u32_at(header, 9)),
            body_crc: u32_at(header, 13),
        });
    }
    let header: &[u8; V1_HEADER_LEN as usize] = bytes.first_chunk()?;
    let body_len = u32_at(header, 0);
    (header[8] == V1 && (1..=V1_MAX_BODY_LEN).contains(&body_len)).then(|| Header {
        version: V1,
        header_len: V1_HEADER_LEN,
        body_len,
        records: None,
        body_crc: u32_at(header, 4),
    })
}

/// Where in `window`, from `from` on, a frame header may start: the marker, or a format-1
/// version byte followed by the zlib header every format-1 body starts with. Cheap; the caller
/// checks each candidate. Only scanning damaged stretches calls this.
pub(super) fn next_candidate(window: &[u8], from: usize) -> Option<usize> {
    (from..window.len()).find(|&i| {
        let rest = &window[i..];
        rest.starts_with(&MARKER)
            || rest.get(8..11) == Some(&[V1, V1_ZLIB_HEADER[0], V1_ZLIB_HEADER[1]][..])
    })
}

/// Whether `body` is the one `header` describes (its CRC matches).
pub(super) fn body_matches(header: &Header, body: &[u8]) -> bool {
    let actual = if header.version == V1 {
        crc32c::crc32c_append(crc32c::crc32c(&[V1]), body)
    } else {
        crc32c::crc32c(body)
    };
    actual == header.body_crc
}

/// The records of a frame whose body matched its header.
pub(super) fn decode_body(header: &Header, body: &[u8]) -> Result<Vec<SpoolRecord>, String> {
    match header.version {
        VERSION => {
            let records = decode_records(&inflate(body, MAX_BATCH_BYTES)?)?;
            match header.records {
                Some(n) if n as usize == records.len() => Ok(records),
                n => Err(format!(
                    "{} records decoded, the header says {n:?}",
                    records.len()
                )),
            }
        }
        V1 => decode_records(&inflate(body, V1_MAX_DECODED_LEN)?),
        other => Err(format!("unknown format version {other}")),
    }
}

/// How many records a frame holds, without decoding it: the header's count (format 2), or the
/// first four bytes of the decompressed body (format 1).
pub(super) fn record_count(header: &Header, body: Option<&[u8]>) -> Result<u64, String> {
    if let Some(n) = header.records {
        return Ok(u64::from(n));
    }
    let body = body.ok_or("a format-1 frame needs its body to count its records")?;
    let mut count = [0; 4];
    ZlibDecoder::new(body)
        .read_exact(&mut count)
        .map_err(|err| format!("body does not decompress: {err}"))?;
    Ok(u64::from(u32::from_le_bytes(count)))
}

fn u32_at<const N: usize>(bytes: &[u8; N], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

// ---- encoding -------------------------------------------------------------------------------

/// One batch as a format-2 frame, ready to append. Fails, writing nothing, when the batch
/// cannot be framed (a field too long, or more than [`MAX_BATCH_BYTES`]).
pub fn encode(records: &[SpoolRecord]) -> Result<Vec<u8>, SegmentError> {
    let raw = encode_records(records)?;
    if raw.len() > MAX_BATCH_BYTES {
        return Err(SegmentError::BatchTooLarge {
            len: raw.len(),
            limit: MAX_BATCH_BYTES,
        });
    }
    let body = deflate(&raw)?;
    // Within MAX_BODY_LEN: deflate never grows its input by more than the margin there.
    let body_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(body.len().saturating_add(HEADER_LEN as usize));
    frame.extend_from_slice(&MARKER);
    frame.push(VERSION);
    frame.extend_from_slice(&body_len.to_le_bytes());
    frame.extend_from_slice(&count.to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let header_crc = crc32c::crc32c(&frame[..HEADER_CRC_SPAN]);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

pub(super) fn deflate(raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::fast());
    encoder.write_all(raw)?;
    encoder.finish()
}

pub(super) fn encode_records(records: &[SpoolRecord]) -> Result<Vec<u8>, SegmentError> {
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
pub(super) fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
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

pub(super) fn decode_records(raw: &[u8]) -> Result<Vec<SpoolRecord>, String> {
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
    fn batches_past_the_limit_are_refused() {
        let record = SpoolRecord {
            topic: "t".to_owned(),
            key: None,
            headers: Vec::new(),
            payload: vec![0; MAX_BATCH_BYTES],
        };
        assert!(matches!(
            encode(&[record]),
            Err(SegmentError::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn headers_carry_the_record_count_and_check_themselves() {
        let records = vec![
            SpoolRecord {
                topic: "t".to_owned(),
                key: None,
                headers: Vec::new(),
                payload: b"x".to_vec(),
            };
            5
        ];
        let frame = encode(&records).unwrap();
        let header = probe(&frame).unwrap();
        assert_eq!(header.records, Some(5));
        assert_eq!(header.frame_len(), frame.len() as u64);
        for i in 0..HEADER_LEN as usize {
            let mut damaged = frame.clone();
            damaged[i] ^= 0x04;
            // A damaged marker may still look like a format-1 header; never like this one.
            assert_ne!(probe(&damaged), Some(header), "byte {i}");
        }
    }
}
