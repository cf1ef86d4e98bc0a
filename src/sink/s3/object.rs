//! One object being built for one partition: NDJSON lines, gzip-compressed as they come, cut by
//! record count, bytes, or a record of another time partition. Its key is fixed by its first
//! record, and nothing but the records decides where it ends, so reading the same offsets again
//! builds the same key with the same bytes (gzip's header carries no time or name).

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use std::sync::Arc;

use crate::sink::record::{Claim, Record, write_json_line};

/// `prefix/topic/window/topic+partition+start.ndjson.gz`; the start offset is zero-padded so
/// keys sort in offset order.
pub fn object_key(prefix: &str, topic: &str, window: &str, partition: i32, start: i64) -> String {
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    format!("{prefix}{topic}/{window}/{topic}+{partition}+{start:020}.ndjson.gz")
}

/// An object under construction.
pub struct OpenObject {
    /// The claim its records belong to: a partition revoked and assigned again gets a new one.
    claim: Arc<Claim>,
    key: String,
    window: String,
    encoder: GzEncoder<Vec<u8>>,
    line: Vec<u8>,
    /// The records in it, values dropped: finished once the object is uploaded.
    records: Vec<Record>,
    ndjson_bytes: usize,
}

/// A cut object, ready to upload.
pub struct Finished {
    pub key: String,
    pub bytes: Vec<u8>,
    pub records: Vec<Record>,
}

impl OpenObject {
    /// An object that starts with `first` (not added yet), in time partition `window`.
    pub fn new(prefix: &str, window: String, first: &Record) -> Self {
        Self {
            claim: Arc::clone(&first.claim),
            key: object_key(
                prefix,
                first.topic(),
                &window,
                first.partition(),
                first.offset,
            ),
            window,
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            line: Vec::new(),
            records: Vec::new(),
            ndjson_bytes: 0,
        }
    }

    pub fn window(&self) -> &str {
        &self.window
    }

    /// Whether it can no longer be cut in time: its partition is being revoked, or was.
    pub fn abandoned(&self) -> bool {
        self.claim.is_draining() || self.claim.is_revoked()
    }

    /// Whether `record` comes from the same claim (not from the partition assigned anew).
    pub fn holds_claim_of(&self, record: &Record) -> bool {
        Arc::ptr_eq(&self.claim, &record.claim)
    }

    /// Adds `record` (`object`: its value is a JSON object) as the next line.
    pub fn push(&mut self, mut record: Record, object: bool) {
        self.line.clear();
        write_json_line(&mut self.line, &record.value, object);
        // Writing into a Vec cannot fail.
        let _ = self.encoder.write_all(&self.line);
        self.ndjson_bytes += self.line.len();
        record.value = Vec::new();
        self.records.push(record);
    }

    pub fn is_full(&self, max_records: usize, max_bytes: usize) -> bool {
        self.records.len() >= max_records || self.ndjson_bytes >= max_bytes
    }

    pub fn finish(self) -> Finished {
        Finished {
            key: self.key,
            bytes: self.encoder.finish().unwrap_or_default(),
            records: self.records,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::sink::record::Claim;

    fn build(claim: &std::sync::Arc<Claim>) -> Finished {
        let first = claim.track(7, None, None, b"{\"n\":7}".to_vec());
        let mut object = OpenObject::new("archive", "day=22".into(), &first);
        object.push(first, true);
        for offset in 8..10 {
            let value = format!("{{\"n\":{offset}}}").into_bytes();
            object.push(claim.track(offset, None, None, value), true);
        }
        object.push(claim.track(10, None, None, b"raw line".to_vec()), false);
        assert!(object.is_full(4, usize::MAX));
        assert!(!object.is_full(5, usize::MAX));
        object.finish()
    }

    #[test]
    fn the_same_records_make_the_same_key_and_bytes() {
        let claim = Claim::new("logs", 3, Default::default());
        let first = build(&claim);
        let second = build(&claim);
        assert_eq!(
            first.key,
            "archive/logs/day=22/logs+3+00000000000000000007.ndjson.gz"
        );
        assert_eq!(first.bytes, second.bytes, "deterministic bytes");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&first.bytes[..])
            .read_to_string(&mut text)
            .expect("gzip");
        assert_eq!(
            text,
            "{\"n\":7}\n{\"n\":8}\n{\"n\":9}\n{\"message\":\"raw line\"}\n"
        );
        assert!(first.records.iter().all(|r| r.value.is_empty()));
        assert_eq!(
            object_key("", "t", "w", 0, 1),
            "t/w/t+0+00000000000000000001.ndjson.gz"
        );
    }
}
