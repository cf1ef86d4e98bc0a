//! What a reload changes: the configuration as written, section by section, and how a new
//! configuration differs from the running one.
//!
//! Sections are compared as written (the TOML values after `${VAR}` substitution), not as built
//! settings: compiled regexes and globs have no equality, and comparing values is exact. A key
//! spelled out with its default value where it was left out before counts as a change; that costs
//! a restart, never a missed one.

use std::collections::BTreeMap;

use super::Config;

/// Top-level tables whose entries are compared one by one; everything else is global.
const SOURCES: &str = "sources";
const PIPELINES: &str = "pipelines";
/// `[[tests]]` are for `logship test`: they change nothing that runs.
const TESTS: &str = "tests";

/// The configuration as written, by section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// Every top-level key but `sources`, `pipelines` and `tests`: `data_dir`, `[kafka]`,
    /// `[spool]`, `[api]`, `memory_limit_bytes`, `shutdown_timeout_secs`.
    pub global: toml::Table,
    pub sources: BTreeMap<String, toml::Value>,
    pub pipelines: BTreeMap<String, toml::Value>,
}

impl Written {
    /// Splits checked, substituted configuration text into its sections. The text parsed once
    /// already, so a failure here cannot happen; it would only make every section look changed.
    pub(super) fn parse(text: &str) -> Self {
        let Ok(mut global) = text.parse::<toml::Table>() else {
            return Self::default();
        };
        let mut entries = |key: &str| match global.remove(key) {
            Some(toml::Value::Table(table)) => table.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let sources = entries(SOURCES);
        let pipelines = entries(PIPELINES);
        global.remove(TESTS);
        Self {
            global,
            sources,
            pipelines,
        }
    }
}

/// How a new configuration differs from the running one. Ids are in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Global keys whose value changed (or that appeared or went). They are shared by every
    /// source, so applying them restarts the whole agent.
    pub global: Vec<String>,
    /// Sources only the new configuration has.
    pub added: Vec<String>,
    /// Sources only the running configuration has.
    pub removed: Vec<String>,
    /// Sources in both whose own settings, or whose pipeline's steps, differ (or that name
    /// another pipeline).
    pub changed: Vec<String>,
}

impl Changes {
    pub fn between(running: &Config, new: &Config) -> Self {
        Self::of(&running.written, &new.written)
    }

    fn of(running: &Written, new: &Written) -> Self {
        let mut global: Vec<String> = running
            .global
            .iter()
            .filter(|(key, value)| new.global.get(*key) != Some(*value))
            .map(|(key, _)| key.clone())
            .chain(
                new.global
                    .keys()
                    .filter(|key| !running.global.contains_key(*key))
                    .cloned(),
            )
            .collect();
        global.sort();
        let mut changes = Self {
            global,
            ..Self::default()
        };
        for (id, settings) in &new.sources {
            match running.sources.get(id) {
                None => changes.added.push(id.clone()),
                Some(before) if before != settings => changes.changed.push(id.clone()),
                Some(_) => {
                    let pipeline = pipeline_of(settings);
                    if pipeline
                        .is_some_and(|name| running.pipelines.get(name) != new.pipelines.get(name))
                    {
                        changes.changed.push(id.clone());
                    }
                }
            }
        }
        changes.removed = running
            .sources
            .keys()
            .filter(|id| !new.sources.contains_key(*id))
            .cloned()
            .collect();
        changes
    }

    /// Nothing that runs would change.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// The pipeline a source's table names.
fn pipeline_of(source: &toml::Value) -> Option<&str> {
    source.get("pipeline").and_then(toml::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
data_dir = "/tmp/logship-changes-test"
[sources.a]
type = "file"
include = ["/x/a/*.log"]
pipeline = "p"
[sources.b]
type = "file"
include = ["/x/b/*.log"]
[sources.c]
type = "file"
include = ["/x/c/*.log"]
pipeline = "q"
[pipelines.p]
steps = [{ type = "set", field = "service", value = "a" }]
[pipelines.q]
steps = [{ type = "set", field = "service", value = "c" }]
[kafka]
brokers = ["127.0.0.1:9092"]
topic = "logs"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text, &|name| (name == "TOPIC").then(|| "from-env".into()))
            .unwrap_or_else(|e| panic!("valid config: {e}\n{text}"))
    }

    fn changes(new: &str) -> Changes {
        Changes::between(&config(BASE), &config(new))
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_same_text_changes_nothing_and_neither_do_layout_comments_or_tests() {
        assert!(changes(BASE).is_empty());
        let reformatted = BASE
            .replace("include = [\"/x/b/*.log\"]", "include = [ '/x/b/*.log' ]  # b")
            .replace(
                "[kafka]",
                "[[tests]]\nname = \"t\"\npipeline = \"p\"\ninputs = [{ message = \"x\" }]\ndropped = true\n\n[kafka]",
            );
        assert!(
            changes(&reformatted).is_empty(),
            "{:?}",
            changes(&reformatted)
        );
    }

    #[test]
    fn sources_added_removed_and_changed_are_told_apart() {
        let new = BASE
            .replace(
                "[sources.b]\ntype = \"file\"\ninclude = [\"/x/b/*.log\"]\n",
                "[sources.d]\ntype = \"file\"\ninclude = [\"/x/d/*.log\"]\n",
            )
            .replace("/x/c/*.log", "/x/c/*.txt");
        let changes = changes(&new);
        assert_eq!(changes.added, ids(&["d"]));
        assert_eq!(changes.removed, ids(&["b"]));
        assert_eq!(changes.changed, ids(&["c"]));
        assert!(changes.global.is_empty());
    }

    #[test]
    fn a_changed_pipeline_changes_only_the_sources_that_use_it() {
        let new = BASE.replace("value = \"a\"", "value = \"a2\"");
        let changes = changes(&new);
        assert_eq!(changes.changed, ids(&["a"]));
        assert!(changes.added.is_empty() && changes.removed.is_empty());
        assert!(changes.global.is_empty());
    }

    #[test]
    fn naming_another_pipeline_or_adding_an_unused_one_is_seen_for_what_it_is() {
        let new = BASE.replace("pipeline = \"q\"", "pipeline = \"p\"");
        assert_eq!(changes(&new).changed, ids(&["c"]));
        let unused = format!("{BASE}[pipelines.r]\nsteps = []\n");
        assert!(changes(&unused).is_empty(), "{:?}", changes(&unused));
    }

    #[test]
    fn global_keys_are_named_whether_changed_added_or_removed() {
        let new = BASE
            .replace("topic = \"logs\"", "topic = \"logs2\"")
            .replace("data_dir", "shutdown_timeout_secs = 5\ndata_dir");
        let changes = changes(&new);
        assert_eq!(changes.global, ids(&["kafka", "shutdown_timeout_secs"]));
        assert!(
            changes.changed.is_empty(),
            "sources are compared on their own"
        );
        let without = config(&new);
        let back = Changes::between(&without, &config(BASE));
        assert_eq!(back.global, ids(&["kafka", "shutdown_timeout_secs"]));
    }

    #[test]
    fn values_are_compared_after_env_substitution() {
        let with_env = BASE.replace("topic = \"logs\"", "topic = \"${TOPIC}\"");
        let literal = BASE.replace("topic = \"logs\"", "topic = \"from-env\"");
        assert!(Changes::between(&config(&with_env), &config(&literal)).is_empty());
        assert_eq!(changes(&with_env).global, ids(&["kafka"]));
    }
}
