//! `logship-sink-es`: ships Kafka topics to Elasticsearch as a consumer group (see
//! `logship::sink::es`). Exit codes: 0 ok, 1 runtime failure, 78 invalid configuration.

use std::process::ExitCode;

use logship::config::EsSinkConfig;

fn main() -> ExitCode {
    logship::cli::sink_main(
        "logship-sink-es",
        "Ship Kafka topics to Elasticsearch, exactly once in effect",
        EsSinkConfig::load,
        |config| {
            let urls: Vec<&str> = config.sink.urls.iter().map(|u| u.as_str()).collect();
            format!(
                "group {}, {:?} → {}",
                config.common.kafka.group_id,
                config.common.kafka.subscription,
                urls.join(", ")
            )
        },
        |config, metrics| logship::sink::es::run(config, metrics, logship::cli::signalled()),
    )
}
