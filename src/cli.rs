//! What the three binaries' command lines share: the log format flag, logging setup, the exit
//! code for an invalid configuration, and the async runtime.

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

/// Ends the process after a runtime failure: logged, on stderr, exit 1.
pub fn failed(program: &str, error: &anyhow::Error) -> ExitCode {
    tracing::error!("{error:#}");
    eprintln!("{program}: {error:#}");
    ExitCode::FAILURE
}
