//! `logship`: the node agent's command line. Parses arguments, sets up logging, and hands over to
//! `logship::agent`. Exit codes: 0 ok, 1 runtime failure, 78 invalid configuration (EX_CONFIG).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logship::cli::{LogFormat, config_error, init_tracing};
use logship::config::{Config, SourceSettings};

/// jemalloc instead of glibc's malloc: records are allocated on a source's task and freed on the
/// producer's (and librdkafka's) threads, and glibc takes the owning arena's lock for every such
/// free. With jemalloc the agent ships about 10 % more lines per second on 10 % less CPU
/// (BENCHMARKS.md, `benches/vs_kcat.sh`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Two arenas (one per core of a small node, not jemalloc's four per CPU) and freed pages handed
/// back within half a second: without these, peak RSS rose from 48 to 62–67 MiB on the same run,
/// over issue 5's 64 MB; with them it is 47–55 MiB.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"narenas:2,dirty_decay_ms:500,muzzy_decay_ms:0\0";

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

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT; SIGHUP loads the configuration file again.
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
        Err(error) => return config_error("logship", path, &error),
    };
    let risks = config.risks();
    match cli.command {
        Command::Validate { .. } => {
            for risk in &risks {
                eprintln!("logship: warning: {risk}");
            }
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
        Command::Run { .. } => {
            for risk in &risks {
                tracing::warn!("risky setting: {risk}");
            }
            match run(config, path.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => logship::cli::failed("logship", &error),
            }
        }
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

fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let runtime = logship::cli::runtime("logship")?;
    let result = runtime.block_on(async {
        let signals = logship::cli::agent_signals();
        let metrics = logship::metrics::install().context("cannot install the metrics recorder")?;
        logship::agent::run(config, path, metrics, signals)
            .await
            .context("agent failed")
    });
    // A broker probe may still sit in a blocking metadata call; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
