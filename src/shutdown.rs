//! Process signals: SIGTERM and SIGINT both ask for a graceful drain; SIGHUP (the agent only)
//! asks for the configuration to be loaded again.

use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signalled() -> std::io::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// What a signal asks the agent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT (named): drain and exit.
    Stop(&'static str),
    /// SIGHUP: load the configuration file again and apply what changed.
    Reload,
}

/// The agent's signals as they arrive. Several SIGHUPs that arrive during one reload count as
/// one more (the kernel and tokio merge them), which is all they can ask for.
pub struct Signals {
    term: Stream,
    int: Stream,
    hup: Stream,
}

impl Signals {
    /// Watches SIGTERM, SIGINT and SIGHUP from now on.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
