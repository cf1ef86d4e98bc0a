//! Model-based test of the file source (Vector's file_watcher tests are the model): proptest
//! generates random sequences of writes, rename rotation, copytruncate, truncation, deletion,
//! inode reuse, graceful restarts and kill -9, applies them to real files, and drives the real
//! `FileSet` step by step. Kafka is not involved: the test settles ack tokens itself, which is all
//! the source sees of delivery. After every run it checks that every written line arrived at
//! least once, that duplicates appear only after a kill, and that each stream's lines are in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use logship::config::{Config, SourceSettings};
use logship::event::Event;
use logship::metrics::FileSourceMetrics;
use logship::source::file::checkpoint::{Checkpoint, CheckpointStore};
use logship::source::file::files::FileSet;
use proptest::prelude::*;
use tokio::time::Instant;

const FILES: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Write { file: usize, lines: usize },
    RenameRotate { file: usize },
    CopyTruncate { file: usize },
    Truncate { file: usize },
    Delete { file: usize },
    Step,
    Deliver,
    Checkpoint,
    Restart,
    Kill,
    RecreateWithReusedInode { file: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    prop_oneof![
        6 => (file.clone(), 1..40usize).prop_map(|(file, lines)| Op::Write { file, lines }),
        2 => file.clone().prop_map(|file| Op::RenameRotate { file }),
        2 => file.clone().prop_map(|file| Op::CopyTruncate { file }),
        1 => file.clone().prop_map(|file| Op::Truncate { file }),
        1 => file.clone().prop_map(|file| Op::Delete { file }),
        6 => Just(Op::Step),
        4 => Just(Op::Deliver),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Restart),
        1 => Just(Op::Kill),
        1 => file.prop_map(|file| Op::RecreateWithReusedInode { file }),
    ]
}

/// The world: files on disk, what was written, the source, and what was delivered.
struct World {
    dir: tempfile::TempDir,
    config: logship::config::FileSourceSettings,
    store: CheckpointStore,
    saved: Checkpoint,
    set: FileSet,
    now: Instant,
    next_line: [usize; FILES],
    rotations: usize,
    /// Lines written, per stream, that must arrive.
    written: Vec<Vec<String>>,
    in_flight: Vec<Event>,
    delivered: Vec<String>,
    killed: bool,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs");
        let text = format!(
            r#"data_dir = "{data}"
[sources.model]
type = "file"
include = ["{logs}/*.log"]
fingerprint_bytes = 64
rotate_wait_ms = 2000
close_idle_secs = 5
partial_line_timeout_ms = 5000
[kafka]
brokers = ["127.0.0.1:9"]
topic = "unused"
"#,
            data = dir.path().join("data").display(),
            logs = logs.display()
        );
        let config = Config::from_toml(&text, &|_| None).expect("model config");
        let SourceSettings::File(settings) = config.sources["model"].clone() else {
            panic!("a file source");
        };
        let store = CheckpointStore::new(&config.data_dir, "model");
        let set = FileSet::new(
            settings.clone(),
            "host",
            FileSourceMetrics::new("model"),
            Checkpoint::default(),
        );
        Self {
            dir,
            config: settings,
            store,
            saved: Checkpoint::default(),
            set,
            now: Instant::now(),
            next_line: [0; FILES],
            rotations: 0,
            written: vec![Vec::new(); FILES],
            in_flight: Vec::new(),
            delivered: Vec::new(),
            killed: false,
        }
    }

    fn path(&self, file: usize) -> PathBuf {
        self.dir.path().join("logs").join(format!("f{file}.log"))
    }

    fn rotated(&mut self, file: usize) -> PathBuf {
        self.rotations += 1;
        self.dir
            .path()
            .join("logs")
            .join(format!("f{file}.log.{}", self.rotations))
    }

    fn write(&mut self, file: usize, lines: usize) {
        use std::io::Write;
        let mut text = String::new();
        for _ in 0..lines {
            let line = format!("f{file}-{:06}", self.next_line[file]);
            self.next_line[file] += 1;
            text.push_str(&line);
            text.push('\n');
            self.written[file].push(line);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(file))
            .expect("open for append");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// One pass of the source loop; time moves on by a second.
    fn step(&mut self) {
        self.now += Duration::from_secs(1);
        let now = self.now;
        let mut events = self.set.scan(now);
        for index in self.set.open_files() {
            events.extend(self.set.read_turn(index, now));
        }
        events.extend(self.set.maintain(now));
        self.in_flight.extend(events);
        self.save_if_needed();
    }

    /// The source notices new files (and rotations) without reading anything.
    fn discover(&mut self) {
        let events = self.set.scan(self.now);
        self.in_flight.extend(events);
        self.save_if_needed();
    }

    /// As the agent does: a checkpoint right after the set of files changed.
    fn save_if_needed(&mut self) {
        if self.set.needs_checkpoint() {
            self.save();
        }
    }

    fn deliver(&mut self) {
        for mut event in self.in_flight.drain(..) {
            if let Some(token) = event.ack.take() {
                token.settle();
            }
            self.delivered.push(event.message.unwrap_or_default());
        }
    }

    /// Reads, delivers and waits until the source has everything written (and rotated files
    /// are released).
    fn sync(&mut self) {
        for _ in 0..8 {
            self.step();
            self.deliver();
        }
    }

    fn save(&mut self) {
        self.saved = self.set.checkpoint();
        self.store.save(&self.saved).expect("save checkpoint");
    }

    fn start_again(&mut self) {
        let loaded = self.store.load().expect("load checkpoint");
        assert_eq!(
            loaded, self.saved,
            "the checkpoint file holds what was saved"
        );
        self.set = FileSet::new(
            self.config.clone(),
            "host",
            FileSourceMetrics::new("model"),
            loaded,
        );
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write { file, lines } => self.write(file, lines),
            Op::RenameRotate { file } => {
                // inotify reports a created file at once: the source knows it before it rotates.
                self.discover();
                if self.path(file).exists() {
                    let to = self.rotated(file);
                    std::fs::rename(self.path(file), to).expect("rename");
                    std::fs::File::create(self.path(file)).expect("create");
                }
            }
            Op::CopyTruncate { file } => {
                self.discover();
                let path = self.path(file);
                let Ok(meta) = std::fs::metadata(&path) else {
                    return;
                };
                if meta.len() < 64 {
                    // Below fingerprint_bytes the copy cannot be recognised: the known limit.
                    self.sync();
                }
                let to = self.rotated(file);
                std::fs::copy(&path, to).expect("copy");
                std::fs::File::create(&path).expect("truncate");
            }
            Op::Truncate { file } => {
                // Truncating destroys unread lines by definition: let the source read them first.
                self.sync();
                if self.path(file).exists() {
                    std::fs::File::create(self.path(file)).expect("truncate");
                }
            }
            Op::Delete { file } => {
                self.sync();
                let _ = std::fs::remove_file(self.path(file));
            }
            Op::Step => self.step(),
            Op::Deliver => self.deliver(),
            Op::Checkpoint => self.save(),
            Op::Restart => {
                self.sync();
                self.save();
                self.start_again();
            }
            Op::Kill => {
                // In-flight events die with the process; the last saved checkpoint survives.
                self.in_flight.clear();
                self.killed = true;
                self.start_again();
            }
            Op::RecreateWithReusedInode { file } => {
                // Stop cleanly, replace the file while stopped (ext4 and tmpfs hand the freed
                // inode to the next file), start again: the stale offset must not be used.
                self.sync();
                self.save();
                let path = self.path(file);
                let _ = std::fs::remove_file(&path);
                std::fs::File::create(&path).expect("create");
                self.write(file, 3);
                self.start_again();
            }
        }
    }

    fn check(mut self) {
        self.sync();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in &self.delivered {
            *counts.entry(line.as_str()).or_default() += 1;
        }
        for (file, lines) in self.written.iter().enumerate() {
            let missing: Vec<&String> = lines
                .iter()
                .filter(|l| !counts.contains_key(l.as_str()))
                .collect();
            assert!(
                missing.is_empty(),
                "stream f{file}: {} lines never arrived, first {:?}",
                missing.len(),
                missing.first()
            );
        }
        let duplicates: usize = counts.values().map(|n| n - 1).sum();
        if !self.killed {
            assert_eq!(duplicates, 0, "duplicates without a kill");
        }
        // Order: within a stream (a path, across its rotations and copies), first arrivals come
        // in written order. After a kill -9 this holds within each file but not always across a
        // stream's rotated files (see ARCHITECTURE.md), so it is checked for runs without one.
        if self.killed {
            return;
        }
        for file in 0..FILES {
            let prefix = format!("f{file}-");
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<&str> = self
                .delivered
                .iter()
                .filter(|l| l.starts_with(&prefix) && seen.insert(l.as_str()))
                .map(String::as_str)
                .collect();
            let mut sorted = firsts.clone();
            sorted.sort_unstable();
            assert_eq!(firsts, sorted, "stream f{file} out of order");
        }
    }
}

fn run(ops: &[Op]) {
    if std::env::var_os("LOGSHIP_MODEL_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mut world = World::new();
    for op in ops {
        world.apply(op);
    }
    world.check();
}

fn without_kills(ops: Vec<Op>) -> Vec<Op> {
    ops.into_iter()
        .filter(|op| !matches!(op, Op::Kill))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// With kill -9 in the mix: nothing lost, duplicates only after a kill.
    #[test]
    fn file_source_loses_nothing_through_crashes(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }

    /// Without kills: nothing lost, no duplicates, and every stream strictly in order.
    #[test]
    fn file_source_keeps_every_stream_in_order(ops in proptest::collection::vec(op(), 1..40)) {
        run(&without_kills(ops));
    }
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_first() {
    run(&[
        Op::Write { file: 0, lines: 5 },
        Op::Step,
        Op::Write { file: 0, lines: 5 },
        Op::RenameRotate { file: 0 },
        Op::Write { file: 0, lines: 5 },
        Op::Step,
        Op::Deliver,
    ]);
}

#[test]
fn copytruncate_rest_comes_from_the_copy() {
    run(&[
        Op::Write { file: 0, lines: 10 },
        Op::Step,
        Op::Write { file: 0, lines: 10 },
        Op::CopyTruncate { file: 0 },
        Op::Write { file: 0, lines: 3 },
        Op::Step,
    ]);
}

#[test]
fn inode_reuse_after_restart_reads_the_new_file_from_the_start() {
    run(&[
        Op::Write { file: 0, lines: 30 },
        Op::RecreateWithReusedInode { file: 0 },
        Op::Write { file: 0, lines: 2 },
    ]);
}

#[test]
fn kill_before_checkpoint_resends_but_loses_nothing() {
    run(&[
        Op::Write { file: 1, lines: 20 },
        Op::Step,
        Op::Deliver,
        Op::Kill,
        Op::Write { file: 1, lines: 2 },
    ]);
}

#[test]
fn truncate_and_rewrite_to_the_same_size_is_noticed() {
    run(&[
        Op::Write { file: 1, lines: 1 },
        Op::Truncate { file: 1 },
        Op::Write { file: 1, lines: 1 },
    ]);
}

#[test]
fn copytruncate_then_rename_rotation() {
    run(&[
        Op::Write { file: 1, lines: 7 },
        Op::Step,
        Op::CopyTruncate { file: 1 },
        Op::Write { file: 1, lines: 1 },
        Op::RenameRotate { file: 1 },
    ]);
}

#[test]
fn inode_reuse_and_rotation_sequences_the_model_found() {
    // Which inode a new file gets is up to the filesystem: try often enough to see reuse.
    let cases = [
        vec![
            Op::Write { file: 1, lines: 1 },
            Op::Delete { file: 1 },
            Op::Checkpoint,
            Op::Write { file: 0, lines: 7 },
            Op::CopyTruncate { file: 0 },
            Op::Write { file: 0, lines: 1 },
        ],
        vec![
            Op::Checkpoint,
            Op::Write { file: 1, lines: 1 },
            Op::Delete { file: 1 },
            Op::Write { file: 0, lines: 1 },
            Op::Checkpoint,
            Op::Write { file: 1, lines: 7 },
            Op::RenameRotate { file: 1 },
            Op::Write { file: 1, lines: 1 },
            Op::Write { file: 0, lines: 1 },
        ],
        vec![
            Op::Write { file: 0, lines: 1 },
            Op::RenameRotate { file: 0 },
            Op::Write { file: 0, lines: 7 },
            Op::CopyTruncate { file: 0 },
            Op::Write { file: 0, lines: 1 },
            Op::RenameRotate { file: 0 },
            Op::Write { file: 0, lines: 1 },
        ],
        vec![
            Op::Write { file: 0, lines: 1 },
            Op::Step,
            Op::Write { file: 0, lines: 6 },
            Op::CopyTruncate { file: 0 },
            Op::Kill,
            Op::Write { file: 0, lines: 1 },
            Op::RenameRotate { file: 0 },
            Op::Step,
            Op::Kill,
        ],
        vec![
            Op::Write { file: 0, lines: 15 },
            Op::Truncate { file: 0 },
            Op::Write { file: 1, lines: 37 },
            Op::Restart,
            Op::Delete { file: 0 },
            Op::CopyTruncate { file: 0 },
            Op::Write { file: 1, lines: 37 },
            Op::RenameRotate { file: 1 },
            Op::Write { file: 1, lines: 37 },
            Op::Delete { file: 1 },
            Op::Write { file: 1, lines: 32 },
            Op::CopyTruncate { file: 0 },
            Op::RecreateWithReusedInode { file: 0 },
            Op::Write { file: 1, lines: 23 },
            Op::Write { file: 0, lines: 23 },
            Op::Write { file: 0, lines: 14 },
            Op::Delete { file: 0 },
        ],
        vec![
            Op::RecreateWithReusedInode { file: 1 },
            Op::CopyTruncate { file: 1 },
            Op::Write { file: 0, lines: 1 },
            Op::Delete { file: 1 },
            Op::Checkpoint,
            Op::Write { file: 1, lines: 1 },
            Op::RenameRotate { file: 1 },
            Op::Write { file: 1, lines: 1 },
        ],
    ];
    for ops in &cases {
        for _ in 0..200 {
            run(ops);
        }
    }
}
