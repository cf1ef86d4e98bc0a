//! SIGHUP: the configuration file is loaded again with the same checks as `logship validate`
//! (`${VAR}` substitution included) and compared with the running one (`config::Changes`).
//!
//! - Invalid: logged with the key path and reason, counted as rejected; nothing changes.
//! - Global keys changed (`[kafka]`, `[spool]`, `[api]`, `data_dir`, `memory_limit_bytes`,
//!   `shutdown_timeout_secs`): they are shared by every source, so the whole agent is drained as
//!   for SIGTERM and started again with the new configuration, in the same process with the same
//!   metrics recorder. If it cannot start (a port in use, a spool it cannot open), the previous
//!   configuration is started again and the reload counts as rejected.
//! - Otherwise only the sources that changed move: removed and changed ones are drained (they
//!   stop reading and return once everything they sent is delivered, with their final
//!   checkpoint), then added and changed ones start, the changed ones from those checkpoints.
//!   Nothing sent is lost, nothing delivered is read twice. Unchanged sources go on untouched.
//!
//! A new HTTP listener on an address no running source holds is bound before anything stops, so
//! a port in use rejects the reload with nothing changed; one on an address a drained source held
//! is bound once that source let go.

use std::collections::BTreeMap;
use std::path::Path;

use metrics_exporter_prometheus::PrometheusHandle;

use super::{Agent, AgentError};
use crate::config::{Changes, Config, SourceSettings};
use crate::metrics::{ReloadMetrics, ReloadResult};

/// Loads `path` again and applies it to `agent`; returns the agent that runs afterwards (the same
/// one unless global keys changed). An error only when no agent could be started at all.
pub(super) async fn reload(
    mut agent: Agent,
    path: &Path,
    metrics: &PrometheusHandle,
    reloads: &ReloadMetrics,
) -> Result<Agent, AgentError> {
    tracing::info!(path = %path.display(), "SIGHUP: loading the configuration again");
    let loaded = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Config::load(&path)).await
    };
    let new = match loaded {
        Ok(Ok(config)) => config,
        Ok(Err(error)) => {
            let why = format!("invalid configuration in {}: {error}", path.display());
            reloads.reloaded(ReloadResult::Rejected, &why);
            return Ok(agent);
        }
        Err(error) => {
            reloads.reloaded(ReloadResult::Rejected, &format!("loading failed: {error}"));
            return Ok(agent);
        }
    };
    for risk in new.risks() {
        tracing::warn!("risky setting: {risk}");
    }
    let changes = Changes::between(&agent.config, &new);
    if changes.is_empty() {
        reloads.reloaded(ReloadResult::Applied, &"nothing changed");
        return Ok(agent);
    }
    if !changes.global.is_empty() {
        return restart(agent, new, &changes, metrics, reloads).await;
    }
    apply(&mut agent, new, &changes, reloads).await;
    Ok(agent)
}

/// Drains the whole agent as for SIGTERM and starts it again with `new`; with the previous
/// configuration when `new` cannot start.
async fn restart(
    agent: Agent,
    new: Config,
    changes: &Changes,
    metrics: &PrometheusHandle,
    reloads: &ReloadMetrics,
) -> Result<Agent, AgentError> {
    let keys = changes.global.join(", ");
    tracing::info!(keys = %keys, "global settings changed: draining the agent to start it again");
    let previous = agent.config.clone();
    agent.drain().await?;
    match Agent::start(new, metrics).await {
        Ok(agent) => {
            let what = format!(
                "agent restarted for {keys}, every source from its checkpoint; sources added: {}; removed: {}",
                list(&changes.added),
                list(&changes.removed)
            );
            reloads.reloaded(ReloadResult::Applied, &what);
            Ok(agent)
        }
        Err(error) => {
            let why = format!(
                "the agent cannot start with it ({error}); started again with the previous configuration"
            );
            reloads.reloaded(ReloadResult::Rejected, &why);
            Agent::start(previous, metrics).await
        }
    }
}

/// Stops the removed and changed sources, starts the added and changed ones; the rest runs on.
async fn apply(agent: &mut Agent, mut new: Config, changes: &Changes, reloads: &ReloadMetrics) {
    // A pipeline whose steps did not change keeps its compiled value: throttle budgets are per
    // pipeline, shared with the sources that run on.
    for (name, pipeline) in &agent.config.pipelines {
        if agent.config.written.pipelines.get(name) == new.written.pipelines.get(name) {
            new.pipelines.insert(name.clone(), pipeline.clone());
        }
    }
    let starting: Vec<&String> = changes.added.iter().chain(&changes.changed).collect();

    let mut bound = BTreeMap::new();
    for id in &starting {
        let settings = &new.sources[*id];
        if let SourceSettings::Http(http) = settings
            && !agent.sources.holds(http.address)
        {
            match agent.sources.prepare(id, settings, &new.pipelines).await {
                Ok(prepared) => {
                    bound.insert((*id).clone(), prepared);
                }
                Err(error) => {
                    reloads.reloaded(ReloadResult::Rejected, &error);
                    return;
                }
            }
        }
    }

    let draining: Vec<String> = changes
        .removed
        .iter()
        .chain(&changes.changed)
        .cloned()
        .collect();
    for id in &draining {
        tracing::info!(source = %id, removed = changes.removed.contains(id), "draining source");
    }
    let late = agent
        .sources
        .drain(&draining, agent.config.shutdown_timeout)
        .await;
    // The events' share of the memory limit is what the new set of read buffers leaves.
    agent
        .sources
        .memory()
        .set_limit(usize::try_from(new.memory.events).unwrap_or(usize::MAX));

    let mut failed = Vec::new();
    for id in starting {
        let prepared = match bound.remove(id) {
            Some(prepared) => Ok(prepared),
            None => {
                agent
                    .sources
                    .prepare(id, &new.sources[id], &new.pipelines)
                    .await
            }
        };
        match prepared {
            Ok(prepared) => {
                agent.sources.spawn(id, prepared);
                tracing::info!(source = %id, added = changes.added.contains(id), "source started");
            }
            Err(error) => {
                tracing::error!(source = %id, %error, "source cannot start; it is not running (a later reload tries again)");
                failed.push(id.clone());
            }
        }
    }
    // The running configuration is what runs: a source that could not start is left out, so the
    // next reload sees it as added.
    for id in &failed {
        new.sources.remove(id);
        new.written.sources.remove(id);
    }
    agent.config = new;
    let what = summary(changes, &late, &failed);
    let result = if failed.is_empty() {
        ReloadResult::Applied
    } else {
        ReloadResult::Failed
    };
    reloads.reloaded(result, &what);
}

/// Ids for a log line.
fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

/// What a reload of sources did, for its log line.
fn summary(changes: &Changes, late: &[String], failed: &[String]) -> String {
    let mut text = format!(
        "sources added: {}; removed: {}; restarted: {}",
        list(&changes.added),
        list(&changes.removed),
        list(&changes.changed)
    );
    if !late.is_empty() {
        text.push_str(&format!(
            "; not drained in time (some lines may be sent again): {}",
            list(late)
        ));
    }
    if !failed.is_empty() {
        text.push_str(&format!("; could not start: {}", list(failed)));
    }
    text
}
