//! Rotation and truncation while the agent runs.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{
    Agent, Setup, TopicReader, brokers, check_delivery, create_topic, write_lines,
};

#[test]
fn truncated_file_is_read_again_from_the_start() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "truncate", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let mut lines = write_lines(&path, "before", 0..1000);
    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers, &topic);
    reader.read_until(1000, Duration::from_millis(300), Duration::from_secs(30));

    // copytruncate's second half, or `> app.log`: the file restarts at 0, shorter than before.
    std::fs::File::create(&path).expect("truncate");
    lines.extend(write_lines(&path, "after", 0..100));
    let records = reader.read_until(1100, Duration::from_secs(1), Duration::from_secs(30));
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    // The new content starts again at offset 0: one jump back, and no line twice.
    assert_eq!(check_delivery(records, &expected, 1), 0);
    let resets = agent.metric("logship_source_files_truncated_total{source=\"app\"}");
    assert_eq!(resets, Some(1.0));
}
