//! `logship-sink-s3`: ships Kafka topics to S3 (or a local directory) as gzip NDJSON objects, as
//! a consumer group (see `logship::sink::s3`). Exit codes: 0 ok, 1 runtime failure, 78 invalid
//! configuration.

use std::process::ExitCode;

use logship::config::{S3SinkConfig, Target};

fn main() -> ExitCode {
    logship::cli::sink_main(
        "logship-sink-s3",
        "Ship Kafka topics to S3 as gzip NDJSON objects, exactly once in effect",
        S3SinkConfig::load,
        |config| {
            let target = match &config.sink.target {
                Target::S3 { bucket, .. } => format!("s3://{bucket}/{}", config.sink.prefix),
                Target::Directory(path) => path.display().to_string(),
            };
            format!(
                "group {}, {:?} → {target}",
                config.common.kafka.group_id, config.common.kafka.subscription
            )
        },
        |config, metrics| logship::sink::s3::run(config, metrics, logship::cli::signalled()),
    )
}
