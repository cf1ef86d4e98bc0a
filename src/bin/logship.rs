//! `logship`: the node agent's command line. Parses arguments, sets up logging, and hands over to
//! `logship::agent`. Exit codes: 0 ok, 1 runtime failure, 78 invalid configuration (EX_CONFIG).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use logship::config::{Config, ConfigError, SourceSettings};

const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "logship",
    version,
    about = "Ship logs to Kafka without losing a line"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check a configuration file and exit: 0 when valid, 78 when not.
    Validate {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the `[[tests]]` of a configuration file through their pipelines: 0 when all pass, 1
    /// when one fails (with a diff), 78 when the configuration is invalid.
    Test {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let (Command::Run { config: path }
    | Command::Validate { config: path }
    | Command::Test { config: path }) = &cli.command;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return config_error(path, &error),
    };
    match cli.command {
        Command::Validate { .. } => {
            let files = config
                .sources
                .values()
                .filter(|s| matches!(s, SourceSettings::File(_)))
                .count();
            println!(
                "{}: valid ({} source(s), {} file source(s), topic {})",
                path.display(),
                config.sources.len(),
                files,
                config.kafka.topic
            );
            ExitCode::SUCCESS
        }
        Command::Test { .. } => run_tests(&config),
        Command::Run { .. } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                eprintln!("logship: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `logship test`: every case, a line each, and what differed for the ones that failed.
fn run_tests(config: &Config) -> ExitCode {
    let mut failed = 0;
    for case in &config.tests {
        let Some(pipeline) = config.pipelines.get(&case.pipeline) else {
            continue;
        };
        match logship::pipeline::cases::run(case, pipeline, &config.kafka.topic) {
            None => println!("ok    {} ({})", case.name, case.pipeline),
            Some(diff) => {
                failed += 1;
                println!("FAIL  {} ({})\n{diff}", case.name, case.pipeline);
            }
        }
    }
    println!(
        "{} test(s): {} passed, {failed} failed",
        config.tests.len(),
        config.tests.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config_error(path: &std::path::Path, error: &ConfigError) -> ExitCode {
    eprintln!(
        "logship: invalid configuration in {}: {error}",
        path.display()
    );
    ExitCode::from(EX_CONFIG)
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("logship")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let metrics = logship::metrics::install().context("cannot install the metrics recorder")?;
        let signals = async {
            match logship::shutdown::signalled().await {
                Ok(signal) => tracing::info!(signal, "shutting down"),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for signals; running until killed");
                    std::future::pending::<()>().await;
                }
            }
        };
        logship::agent::run(config, metrics, signals)
            .await
            .context("agent failed")
    });
    // A broker probe may still sit in a blocking metadata call; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGSHIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
