//! What the three binaries' command lines share: the log format flag, logging setup, the exit
//! code for an invalid configuration, the async runtime, and signals.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use crate::config::ConfigError;

/// Exit code for an invalid configuration (sysexits.h EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

/// Log format on stderr.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr at the level `LOGSHIP_LOG` sets (`info` by default).
pub fn init_tracing(format: LogFormat) {
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

/// Reports an invalid configuration on stderr; the process exits 78.
pub fn config_error(program: &str, path: &std::path::Path, error: &ConfigError) -> ExitCode {
    eprintln!(
        "{program}: invalid configuration in {}: {error}",
        path.display()
    );
    ExitCode::from(EX_CONFIG)
}

/// A two-thread runtime: the agent and the sinks are I/O-bound and share the node.
pub fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name(name)
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGTERM or SIGINT, logging which; never resolves if signals cannot be watched.
pub async fn signalled() {
    match crate::shutdown::signalled().await {
        Ok(signal) => tracing::info!(signal, "shutting down"),
        Err(error) => {
            tracing::error!(%error, "cannot listen for signals; running until killed");
            std::future::pending::<()>().await;
        }
    }
}

/// The agent's signals (SIGTERM, SIGINT: stop; SIGHUP: reload) as they arrive. When they cannot
/// be watched, that is logged and none ever comes: the agent runs until killed. Call it first
/// thing in the runtime: until then SIGHUP's default action ends the process.
pub fn agent_signals() -> tokio::sync::mpsc::Receiver<crate::shutdown::Signal> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    match crate::shutdown::Signals::new() {
        Ok(mut signals) => {
            tokio::spawn(async move {
                loop {
                    let signal = signals.next().await;
                    if tx.send(signal).await.is_err() {
                        return;
                    }
                }
            });
        }
        Err(error) => {
            tracing::error!(%error, "cannot listen for signals; running until killed");
            tokio::spawn(async move { tx.closed().await });
        }
    }
    rx
}

/// Ends the process after a runtime failure: logged, on stderr, exit 1.
pub fn failed(program: &str, error: &anyhow::Error) -> ExitCode {
    tracing::error!("{error:#}");
    eprintln!("{program}: {error:#}");
    ExitCode::FAILURE
}

/// The sink binaries' command line: `run -c FILE` and `validate -c FILE`.
#[derive(clap::Parser)]
struct SinkCli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: SinkCommand,
}

#[derive(clap::Subcommand)]
enum SinkCommand {
    /// Run until SIGTERM or SIGINT, then finish the writes under way, commit and leave the group.
    Run {
        #[arg(short, long)]
        config: std::path::PathBuf,
    },
    /// Check a configuration file and exit: 0 when valid, 78 when not.
    Validate {
        #[arg(short, long)]
        config: std::path::PathBuf,
    },
}

/// A sink binary's `main`: parses the command line as `program`, loads the config with `load`,
/// and either prints `describe` of it (`validate`) or runs `run` until SIGTERM or SIGINT.
/// Exit codes: 0 ok, 1 runtime failure, 78 invalid configuration.
pub fn sink_main<C, F>(
    program: &'static str,
    about: &'static str,
    load: fn(&std::path::Path) -> Result<C, ConfigError>,
    describe: fn(&C) -> String,
    run: impl FnOnce(C, metrics_exporter_prometheus::PrometheusHandle) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), crate::sink::SinkError>>,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = SinkCli::command()
        .name(program)
        .bin_name(program)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let cli = match SinkCli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_tracing(cli.log_format);
    let (SinkCommand::Run { config: path } | SinkCommand::Validate { config: path }) = &cli.command;
    let config = match load(path) {
        Ok(config) => config,
        Err(error) => return config_error(program, path, &error),
    };
    if let SinkCommand::Validate { .. } = cli.command {
        println!("{}: valid ({})", path.display(), describe(&config));
        return ExitCode::SUCCESS;
    }
    let result = runtime(program).and_then(|runtime| {
        runtime.block_on(async {
            let metrics =
                crate::sink::metrics::install().context("cannot install the metrics recorder")?;
            run(config, metrics).await.context("sink failed")
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failed(program, &error),
    }
}
