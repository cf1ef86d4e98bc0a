//! The command line: `--version`, and structured JSON logs with `--log-format json`.

use std::time::Duration;

use crate::harness::{Setup, free_port, logship};

#[test]
fn version_prints_name_and_version() {
    let out = logship().arg("--version").output().expect("run logship");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("logship {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let setup = Setup::new();
    // No broker is needed: the agent logs its start-up either way.
    let config = setup.config(&format!("127.0.0.1:{}", free_port()), "logs", "", "");
    let child = logship()
        .args(["--log-format", "json", "run", "-c"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn logship");
    std::thread::sleep(Duration::from_secs(2));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "SIGINT drains and exits 0: {:?}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "agent started"),
        "{stderr}"
    );
}
