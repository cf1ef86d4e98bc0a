//! docs/metrics.md documents every metric the agent and the sinks define, and only those, each
//! with the type and the labels the code gives it; README.md names only defined metrics and
//! points to the reference. The code is the source of truth, read from the source files:
//!
//! - names: the string constants of the two metrics modules (`src/metrics.rs`,
//!   `src/sink/metrics.rs`), where the crate keeps every name;
//! - types: each constant's `describe_counter!`, `describe_gauge!` or `describe_histogram!`;
//! - labels: the `"label" =>` pairs of every `counter!`, `gauge!` and `histogram!` call under
//!   `src/` that names the constant (a handle of another type than its description fails).
//!
//! A row is a Markdown table row whose first cell is the metric's name in backticks; its second
//! cell is the type and its third the labels, each in backticks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// What the code says about one metric.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Defined {
    /// `counter`, `gauge` or `histogram`, from its description.
    pub kind: String,
    /// The labels of all its handles.
    pub labels: BTreeSet<String>,
}

const MODULES: [&str; 2] = ["src/metrics.rs", "src/sink/metrics.rs"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a macro call's arguments, from just after its `(` to the matching `)`.
fn arguments(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// Every metric the code defines, by name.
pub fn defined_metrics() -> BTreeMap<String, Defined> {
    let quoted = Regex::new(r#""(logship_[a-z0-9_]+)""#).expect("regex");
    let constant =
        Regex::new(r#"pub const ([A-Z0-9_]+): &str =\s*"(logship_[a-z0-9_]+)";"#).expect("regex");
    let described =
        Regex::new(r"describe_(counter|gauge|histogram)!\(\s*([A-Z0-9_]+)\s*,").expect("regex");
    let handle = Regex::new(r"\b(counter|gauge|histogram)!\(\s*([A-Z0-9_]+)\b").expect("regex");
    let label = Regex::new(r#""([a-z_]+)"\s*=>"#).expect("regex");

    let mut by_constant: BTreeMap<String, String> = BTreeMap::new();
    let mut metrics: BTreeMap<String, Defined> = BTreeMap::new();
    for module in MODULES {
        let text = read(&root().join(module));
        let quoted: BTreeSet<&str> = quoted
            .captures_iter(&text)
            .map(|c| c.get(1).expect("name").as_str())
            .collect();
        let constants: BTreeSet<&str> = constant
            .captures_iter(&text)
            .map(|c| c.get(2).expect("name").as_str())
            .collect();
        assert_eq!(
            quoted, constants,
            "{module}: every metric name is a `pub const NAME: &str = \"logship_…\";`"
        );
        for c in constant.captures_iter(&text) {
            let previous = by_constant.insert(c[1].to_owned(), c[2].to_owned());
            assert!(previous.is_none(), "{} is defined twice", &c[1]);
            metrics.insert(c[2].to_owned(), Defined::default());
        }
        for c in described.captures_iter(&text) {
            let name = by_constant
                .get(&c[2])
                .unwrap_or_else(|| panic!("{module} describes {}, which is no metric name", &c[2]));
            let metric = metrics.get_mut(name).expect("defined");
            assert!(metric.kind.is_empty(), "{name} is described twice");
            metric.kind = c[1].to_owned();
        }
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut handled = BTreeSet::new();
    for file in files {
        let text = read(&file);
        for c in handle.captures_iter(&text) {
            let Some(name) = by_constant.get(&c[2]) else {
                continue;
            };
            let metric = metrics.get_mut(name).expect("defined");
            assert_eq!(
                metric.kind,
                &c[1],
                "{}: a {} handle of {name}, described as a {}",
                file.display(),
                &c[1],
                metric.kind
            );
            let end = c.get(0).expect("match").end();
            for l in label.captures_iter(arguments(&text[end..])) {
                metric.labels.insert(l[1].to_owned());
            }
            handled.insert(name.clone());
        }
    }
    for (name, metric) in &metrics {
        assert!(!metric.kind.is_empty(), "{name} has no describe_* call");
        assert!(handled.contains(name), "{name} is never registered");
    }
    metrics
}

/// A documented metric: its line, type and labels.
struct Row {
    line: usize,
    kind: String,
    labels: BTreeSet<String>,
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn documented(text: &str) -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.trim().split('|').collect();
        let Some(name) = cells
            .get(1)
            .map(|c| c.trim())
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.split_once('`'))
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("logship_"))
        else {
            continue;
        };
        let row = Row {
            line: index + 1,
            kind: cells.get(2).map_or("", |c| c.trim()).to_owned(),
            labels: cells
                .get(3)
                .map(|c| backticked(c))
                .unwrap_or_default()
                .into_iter()
                .collect(),
        };
        if let Some(earlier) = rows.insert(name.to_owned(), row) {
            panic!(
                "docs/metrics.md documents {name} twice (line {} and line {})",
                earlier.line,
                index + 1
            );
        }
    }
    rows
}

#[test]
fn the_metrics_reference_documents_every_metric_with_its_type_and_labels() {
    let defined = defined_metrics();
    assert!(defined.len() >= 60, "{} metrics", defined.len());
    let rows = documented(&read(&root().join("docs/metrics.md")));
    let mut problems = Vec::new();
    for (name, metric) in &defined {
        let Some(row) = rows.get(name) else {
            problems.push(format!("{name} is not documented"));
            continue;
        };
        if row.kind != metric.kind {
            problems.push(format!(
                "{name} (line {}) is documented as a {:?}; the code describes a {}",
                row.line, row.kind, metric.kind
            ));
        }
        if row.labels != metric.labels {
            problems.push(format!(
                "{name} (line {}) is documented with labels {:?}; the code gives it {:?}",
                row.line, row.labels, metric.labels
            ));
        }
    }
    for (name, row) in &rows {
        if !defined.contains_key(name) {
            problems.push(format!(
                "{name} (line {}) is documented, but no code defines it",
                row.line
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/metrics.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_names_only_defined_metrics_and_points_to_the_reference() {
    let defined = defined_metrics();
    let readme = read(&root().join("README.md"));
    assert!(
        readme.contains("docs/metrics.md"),
        "README.md does not link docs/metrics.md"
    );
    let used = Regex::new(r"logship_[a-z0-9_]+").expect("regex");
    for name in used.find_iter(&readme).map(|m| m.as_str()) {
        assert!(
            defined.contains_key(name),
            "README.md names {name}, which no code defines"
        );
    }
}
