//! packaging/docker/Dockerfile passes hadolint with no finding at any level, and builds the image
//! the manifests expect: Debian 12, the three binaries, journalctl, CA roots, and the non-root
//! user the sinks' pods run as.

use std::process::Command;

use super::tools::{repo, run, tool, yaml_documents};

#[test]
fn the_dockerfile_passes_hadolint_and_holds_what_the_manifests_run() {
    let dockerfile = repo().join("packaging/docker/Dockerfile");
    let out = run(Command::new(tool("hadolint"))
        .args(["--failure-threshold", "style", "--no-color"])
        .arg(&dockerfile));
    let findings = String::from_utf8_lossy(&out.stdout);
    assert!(findings.trim().is_empty(), "hadolint: {findings}");

    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        stages,
        [
            "FROM rust:${RUST_VERSION}-bookworm AS build",
            "FROM debian:bookworm-slim"
        ],
        "a Rust builder on Debian 12, then Debian 12 slim"
    );
    let runtime = text
        .split("FROM debian:bookworm-slim")
        .nth(1)
        .expect("runtime stage");
    for needed in [
        "ca-certificates",
        "libssl3",
        "systemd",
        "--no-install-recommends",
    ] {
        assert!(runtime.contains(needed), "the runtime stage lacks {needed}");
    }
    for binary in ["logship", "logship-sink-es", "logship-sink-s3"] {
        assert!(
            text.contains(&format!("target/release/{binary}")),
            "the image lacks {binary}"
        );
    }
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let (uid, _gid) = user.split_once(':').expect("USER uid:gid");
    let uid: u64 = uid.parse().expect("a numeric USER, for runAsNonRoot");
    assert!(uid > 0, "the image runs as root");

    // The sinks' pods run as the image's user; the agent's runs as root on purpose.
    let objects = yaml_documents(&repo().join("packaging/kubernetes/logship.yaml"));
    let sinks: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .collect();
    assert_eq!(sinks.len(), 2);
    for sink in sinks {
        assert_eq!(
            sink["spec"]["template"]["spec"]["securityContext"]["runAsUser"], uid,
            "{}: not the image's user",
            sink["metadata"]["name"]
        );
    }
}
