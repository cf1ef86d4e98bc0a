//! The systemd units in packaging/systemd pass `systemd-analyze verify` without a warning, with
//! their binaries pointed at this build, and keep the settings operators rely on; the dashboard
//! and alert rules name only metrics the code defines. The Kubernetes manifests, the Helm chart
//! and the Dockerfile are checked in `kubernetes` and `docker`, with the tools of `tools`.

mod docker;
mod kubernetes;
mod tools;

use std::path::Path;
use std::process::Command;

/// Each unit and the binary its `/usr/bin/…` paths stand for.
const UNITS: &[(&str, &str, &str)] = &[
    ("logship.service", "logship", env!("CARGO_BIN_EXE_logship")),
    (
        "logship-sink-es.service",
        "logship-sink-es",
        env!("CARGO_BIN_EXE_logship-sink-es"),
    ),
    (
        "logship-sink-s3.service",
        "logship-sink-s3",
        env!("CARGO_BIN_EXE_logship-sink-s3"),
    ),
];

#[test]
fn systemd_units_verify_cleanly_and_are_hardened() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (unit, binary, built) in UNITS {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/systemd")
            .join(unit);
        let text = std::fs::read_to_string(&source).expect("unit file");
        for required in [
            &format!("ExecStartPre=/usr/bin/{binary} validate -c /etc/logship/"),
            "Restart=on-failure",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/logship",
            "NoNewPrivileges=true",
            "CapabilityBoundingSet=\n",
            "User=logship",
        ] {
            assert!(text.contains(required), "{unit} lacks `{required}`");
        }
        if *binary == "logship" {
            // `systemctl reload` validates first, then asks the agent to reload (SIGHUP).
            let validate = text
                .find("ExecReload=/usr/bin/logship validate -c /etc/logship/logship.toml\n")
                .expect("ExecReload validates first");
            let hup = text
                .find("ExecReload=/bin/kill -HUP $MAINPID\n")
                .expect("ExecReload sends SIGHUP");
            assert!(validate < hup, "validate before SIGHUP");
        }
        let local = dir.path().join(unit);
        let pointed = text.replace(&format!("/usr/bin/{binary} "), &format!("{built} "));
        std::fs::write(&local, pointed).expect("write unit");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&local)
            .output()
            .expect("systemd-analyze (scripts/deps.sh installs systemd)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{unit}: {stderr}");
        assert!(stderr.trim().is_empty(), "{unit} has warnings: {stderr}");
    }
}

#[test]
fn the_dashboard_and_alert_rules_name_only_metrics_the_code_defines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let defined = super::metrics_reference::defined_metrics();
    let used = regex::Regex::new(r"logship_[a-z0-9_]+").expect("regex");
    let dashboard =
        std::fs::read_to_string(root.join("grafana/logship-dashboard.json")).expect("dashboard");
    let alerts =
        std::fs::read_to_string(root.join("prometheus/logship-alerts.yml")).expect("alert rules");
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        for name in used.find_iter(text).map(|m| m.as_str()) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| defined.contains_key(*base))
                .unwrap_or(name);
            assert!(
                defined.contains_key(base),
                "{file} uses {name}, which no code defines"
            );
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries = panels
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .count();
    assert!(queries >= 15, "{queries} queries");
    for alert in [
        "LogshipNoDelivery",
        "LogshipSpoolFilling",
        "LogshipDeadLettersRising",
        "LogshipSinkLagGrowing",
        "LogshipSinkBlocked",
        "LogshipConfigReloadFailed",
    ] {
        assert!(
            alerts.contains(&format!("alert: {alert}")),
            "no {alert} rule"
        );
    }
}

/// Every alert rule's and dashboard panel's query parses as PromQL (promql-parser, the parser
/// GreptimeDB uses; Prometheus's own promtool would need Debian's 96 MB prometheus package).
#[test]
fn the_alert_rules_and_dashboard_queries_are_valid_promql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let rules = tools::yaml_documents(&root.join("prometheus/logship-alerts.yml"));
    let mut queries: Vec<(String, String)> = Vec::new();
    for group in rules[0]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name").to_owned();
            queries.push((name, rule["expr"].as_str().expect("expr").to_owned()));
        }
    }
    let alerts = queries.len();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/logship-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("panel").to_owned();
            queries.push((title, target["expr"].as_str().expect("expr").to_owned()));
        }
    }
    assert!(alerts >= 6 && queries.len() >= alerts + 15, "{queries:?}");
    for (name, expr) in &queries {
        if let Err(error) = promql_parser::parser::parse(expr) {
            panic!("{name}: {error}\n{expr}");
        }
    }
}
