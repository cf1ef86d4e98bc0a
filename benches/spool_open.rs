//! How long `Spool::open` takes on a large spool: what an agent restarting after an outage
//! spends recovering its spool before it starts (review finding 8). Builds a spool of GIB
//! (default 1) in `LOGSHIP_BENCH_SPOOL_DIR` (default a directory under the system temp dir),
//! unless segments are there already, then opens it with the page cache dropped for its files
//! (posix_fadvise DONTNEED: no privileges needed) and again warm.
//!
//! ```sh
//! cargo bench --bench spool_open -- 1
//! ```
//!
//! Uses only what the spool has offered since its first version (`SegmentWriter`, `Spool::open`),
//! so the same file times older builds too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logship::spool::segment::{SegmentWriter, SpoolRecord};
use logship::spool::{Spool, StoreSettings};

const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// About what the producer puts in one frame.
const FRAME_RECORDS: usize = 3_000;

fn main() {
    let gib: f64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1.0);
    let dir = std::env::var_os("LOGSHIP_BENCH_SPOOL_DIR").map_or_else(
        || std::env::temp_dir().join("logship-bench-spool"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("spool directory");
    if segments(&dir).is_empty() {
        let started = Instant::now();
        fill(&dir, (gib * (1u64 << 30) as f64) as u64);
        println!("built the spool in {:.1?}", started.elapsed());
    }
    let files = segments(&dir);
    let bytes: u64 = files.iter().map(|f| f.metadata().expect("len").len()).sum();
    println!(
        "spool: {} segments, {:.0} MiB, in {}",
        files.len(),
        bytes as f64 / (1 << 20) as f64,
        dir.display()
    );
    for run in ["cold", "warm", "warm"] {
        if run == "cold" {
            drop_cache(&files);
        }
        let (took, records) = open(&dir);
        println!("open ({run}): {took:.1?}, {records} records to replay");
    }
}

fn open(dir: &Path) -> (Duration, u64) {
    let settings = StoreSettings {
        dir: dir.to_path_buf(),
        max_bytes: u64::MAX,
        segment_max_bytes: SEGMENT_BYTES,
    };
    let started = Instant::now();
    let (spool, report) = Spool::open(settings).expect("open");
    let took = started.elapsed();
    drop(spool);
    (took, report.records)
}

/// Frames of log-like JSON records (hex noise: they compress about as much as real logs).
fn fill(dir: &Path, bytes: u64) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0;
    let mut id = 0u64;
    let mut line = 0u64;
    while written < bytes {
        id += 1;
        let path = dir.join(format!("{id:020}.seg"));
        let mut writer = SegmentWriter::create(&path).expect("segment");
        while writer.len() < SEGMENT_BYTES && written + writer.len() < bytes {
            let records: Vec<SpoolRecord> = (0..FRAME_RECORDS)
                .map(|_| {
                    line += 1;
                    let noise: String = (0..6).map(|_| format!("{:016x}", next())).collect();
                    let payload = format!(
                        r#"{{"@timestamp":"2026-12-01T00:00:00Z","message":"GET /item/{line} 200 {noise}","log":{{"file":{{"path":"/var/log/app.log"}},"offset":{line}}}}}"#
                    );
                    SpoolRecord {
                        topic: "logs".to_owned(),
                        key: Some(b"host:/var/log/app.log".to_vec()),
                        headers: Vec::new(),
                        payload: payload.into_bytes(),
                    }
                })
                .collect();
            writer.append(&records).expect("append");
        }
        writer.sync().expect("sync");
        written += writer.len();
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Evicts the files' pages from the page cache (they are clean: the writer fsynced them).
fn drop_cache(files: &[PathBuf]) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    for path in files {
        let file = std::fs::File::open(path).expect("open");
        posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).expect("fadvise");
    }
}
