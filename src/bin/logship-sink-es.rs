//! `logship-sink-es`: ships Kafka topics to Elasticsearch as a consumer group (see
//! `logship::sink::es`). Exit codes: 0 ok, 1 runtime failure, 78 invalid configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logship::cli::{LogFormat, config_error, init_tracing};
use logship::config::EsSinkConfig;

const PROGRAM: &str = "logship-sink-es";

#[derive(Parser)]
#[command(
    name = "logship-sink-es",
    version,
    about = "Ship Kafka topics to Elasticsearch, exactly once in effect"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run until SIGTERM or SIGINT, then finish the writes under way, commit and leave the group.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check a configuration file and exit: 0 when valid, 78 when not.
    Validate {
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let (Command::Run { config: path } | Command::Validate { config: path }) = &cli.command;
    let config = match EsSinkConfig::load(path) {
        Ok(config) => config,
        Err(error) => return config_error(PROGRAM, path, &error),
    };
    match cli.command {
        Command::Validate { .. } => {
            println!(
                "{}: valid (group {}, {:?} → {})",
                path.display(),
                config
                    .common
                    .kafka
                    .consumer
                    .get("group.id")
                    .unwrap_or_default(),
                config.common.kafka.subscription,
                config
                    .elasticsearch
                    .urls
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Command::Run { .. } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => logship::cli::failed(PROGRAM, &error),
        },
    }
}

fn run(config: EsSinkConfig) -> anyhow::Result<()> {
    let runtime = logship::cli::runtime(PROGRAM)?;
    runtime.block_on(async {
        let metrics =
            logship::sink::metrics::install().context("cannot install the metrics recorder")?;
        logship::sink::es::run(config, metrics, logship::cli::signalled())
            .await
            .context("sink failed")
    })
}
