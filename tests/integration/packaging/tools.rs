//! The checkers `scripts/packaging-tools.sh install` puts in its virtualenv (kubernetes-validate,
//! hadolint, and the Python that runs `scripts/chart.py` with Helm's SDK), and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A checker by name, from `LOGSHIP_PACKAGING_TOOLS` (which `scripts/test.sh` exports), else the
/// virtualenv's default place. Missing: the test fails and says how to install it.
pub fn tool(name: &str) -> PathBuf {
    let bin = std::env::var_os("LOGSHIP_PACKAGING_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("LOGSHIP_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/logship")
                })
                .join("packaging-venv/bin")
        });
    let path = bin.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/packaging-tools.sh install",
        path.display()
    );
    path
}

/// Runs `command` and returns its output; fails the test, with its stderr, unless it exits 0.
pub fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} exited {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `scripts/chart.py` in the virtualenv's Python, which has helm-python-sdk and PyYAML.
pub fn chart_py() -> Command {
    let mut command = Command::new(tool("python"));
    command.arg(repo().join("scripts/chart.py"));
    command
}

/// The chart linted and rendered with these values files (relative to the chart), into `out`.
pub fn render_chart(values: &[&str], out: &Path) {
    let chart = repo().join("packaging/helm/logship");
    let mut command = chart_py();
    command.arg("render").arg(&chart).arg("-o").arg(out);
    for file in values {
        command.arg("-f").arg(chart.join(file));
    }
    run(&mut command);
}

/// Every YAML document in `file`, as JSON.
pub fn yaml_documents(file: &Path) -> Vec<serde_json::Value> {
    let out = run(chart_py().arg("json").arg(file));
    serde_json::from_slice(&out.stdout).expect("chart.py json writes a JSON array")
}
