//! The Helm chart (packaging/helm/logship) and the plain manifests (packaging/kubernetes): the
//! manifests are the chart rendered with ci/plain-values.yaml; every rendering passes the
//! Kubernetes JSON schemas; the config in each ConfigMap passes its binary's `validate` (and the
//! agent's its `[[tests]]`) with no more than the pod's environment; and the probes, ports,
//! annotations, mounts, limits and security settings agree with what those configs say.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::tools::{render_chart, repo, run, tool, yaml_documents};

const PLAIN: &str = "packaging/kubernetes/logship.yaml";
/// The oldest Kubernetes Chart.yaml's kubeVersion allows, and the newest schemas
/// kubernetes-validate bundles.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];
/// What the agent needs on top of `memory_limit_bytes` (README: allow 24 MiB).
const AGENT_FIXED_COST: u64 = 24 << 20;

/// Each rendering the tests check, by what it is: the plain manifests, the chart with its
/// defaults (the agent alone), and the chart with every optional value set.
fn renderings(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let defaults = dir.join("defaults.yaml");
    render_chart(&[], &defaults);
    let all = dir.join("all-values.yaml");
    render_chart(&["ci/all-values.yaml"], &all);
    vec![
        (PLAIN, repo().join(PLAIN)),
        ("the chart with its default values", defaults),
        ("the chart with ci/all-values.yaml", all),
    ]
}

fn kind_and_name(object: &Value) -> (&str, &str) {
    (
        object["kind"].as_str().expect("kind"),
        object["metadata"]["name"].as_str().expect("metadata.name"),
    )
}

#[test]
fn the_plain_manifests_are_the_chart_rendered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = dir.path().join("logship.yaml");
    render_chart(&["ci/plain-values.yaml"], &rendered);
    let committed = std::fs::read_to_string(repo().join(PLAIN)).expect(PLAIN);
    assert!(
        std::fs::read_to_string(&rendered).expect("rendering") == committed,
        "{PLAIN} is not the chart rendered: run scripts/packaging-tools.sh manifests"
    );
    let objects = yaml_documents(&rendered);
    let kinds: Vec<_> = objects.iter().map(kind_and_name).collect();
    assert_eq!(
        kinds,
        [
            ("Namespace", "logship"),
            ("ServiceAccount", "logship-agent"),
            ("ServiceAccount", "logship-sink-es"),
            ("ServiceAccount", "logship-sink-s3"),
            ("ConfigMap", "logship-agent"),
            ("ConfigMap", "logship-sink-es"),
            ("ConfigMap", "logship-sink-s3"),
            ("DaemonSet", "logship-agent"),
            ("Deployment", "logship-sink-es"),
            ("Deployment", "logship-sink-s3"),
        ]
    );
    let chart = yaml_documents(&repo().join("packaging/helm/logship/Chart.yaml"));
    assert_eq!(
        chart[0]["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml's appVersion (the default image tag) is not Cargo.toml's version"
    );
}

#[test]
fn every_rendering_passes_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, file) in renderings(dir.path()) {
        let objects = yaml_documents(&file).len();
        assert!(objects >= 3, "{what}: {objects} objects");
        for version in KUBERNETES_VERSIONS {
            let out = run(Command::new(tool("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", version])
                .arg(&file));
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // A kind without a schema is only a warning to kubernetes-validate.
            let passed = report.matches(" passed for resource ").count();
            assert!(
                passed == objects && !report.contains("WARN") && !report.contains("ERROR"),
                "{what} against Kubernetes {version}: {passed} of {objects} objects passed\n{report}"
            );
        }
    }
}

/// A DaemonSet or Deployment, its one container, and the config its ConfigMap holds.
struct Workload<'a> {
    /// `Kind/name`, for messages.
    id: String,
    object: &'a Value,
    pod: &'a Value,
    container: &'a Value,
    /// `logship`, `logship-sink-es` or `logship-sink-s3`.
    program: String,
    config: String,
}

fn workloads(objects: &[Value]) -> Vec<Workload<'_>> {
    let workloads: Vec<_> = objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("DaemonSet" | "Deployment")))
        .map(|object| {
            let (kind, name) = kind_and_name(object);
            let id = format!("{kind}/{name}");
            let pod = &object["spec"]["template"];
            let containers = pod["spec"]["containers"].as_array().expect("containers");
            assert_eq!(containers.len(), 1, "{id}: one container");
            let container = &containers[0];
            let program = container["command"][0]
                .as_str()
                .expect("command")
                .to_owned();
            let args: Vec<&str> = container["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("string arg"))
                .collect();
            assert_eq!(args[0], "run", "{id}: {args:?}");
            let path = args
                .windows(2)
                .find(|w| w[0] == "-c")
                .map(|w| w[1])
                .unwrap_or_else(|| panic!("{id}: no -c FILE in {args:?}"));
            let (directory, file) = path.rsplit_once('/').expect("an absolute config path");
            let mount = array(&container["volumeMounts"])
                .find(|m| m["mountPath"] == directory)
                .unwrap_or_else(|| panic!("{id}: nothing mounted at {directory}"));
            let volume = array(&pod["spec"]["volumes"])
                .find(|v| v["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{id}: no volume {}", mount["name"]));
            let map = &volume["configMap"]["name"];
            let config = objects
                .iter()
                .find(|o| o["kind"] == "ConfigMap" && &o["metadata"]["name"] == map)
                .and_then(|o| o["data"][file].as_str())
                .unwrap_or_else(|| panic!("{id}: ConfigMap {map} has no {file}"));
            Workload {
                id,
                object,
                pod,
                container,
                program,
                config: config.to_owned(),
            }
        })
        .collect();
    assert!(!workloads.is_empty(), "no DaemonSet or Deployment");
    workloads
}

/// The elements of a JSON array; none when the key is absent.
fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// The container's environment as the pod would see it: its literal values, the downward API's
/// fields for a node `node-a`, and a stand-in for each Secret's key.
fn pod_env(w: &Workload<'_>) -> BTreeMap<String, String> {
    array(&w.container["env"])
        .map(|var| {
            let name = var["name"].as_str().expect("env name").to_owned();
            let value = if let Some(value) = var["value"].as_str() {
                value.to_owned()
            } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match field {
                    "spec.nodeName" => "node-a".to_owned(),
                    "metadata.namespace" => w.object["metadata"]["namespace"]
                        .as_str()
                        .expect("namespace")
                        .to_owned(),
                    "metadata.name" => format!("{}-x7k2p", kind_and_name(w.object).1),
                    other => panic!("{}: no stand-in for the field {other}", w.id),
                }
            } else if let Some(secret) = var["valueFrom"].get("secretKeyRef") {
                let part = |key: &str| secret[key].as_str().expect("secretKeyRef").to_owned();
                format!("from-secret-{}-{}", part("name"), part("key"))
            } else {
                panic!("{}: {name} has neither a value nor a known valueFrom", w.id)
            };
            (name, value)
        })
        .collect()
}

fn binary(program: &str) -> &'static str {
    match program {
        "logship" => env!("CARGO_BIN_EXE_logship"),
        "logship-sink-es" => env!("CARGO_BIN_EXE_logship-sink-es"),
        "logship-sink-s3" => env!("CARGO_BIN_EXE_logship-sink-s3"),
        other => panic!("the image has no {other}"),
    }
}

#[test]
fn the_configs_in_the_config_maps_pass_validate_and_their_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut checked = BTreeSet::new();
    for (n, (what, file)) in renderings(dir.path()).into_iter().enumerate() {
        let objects = yaml_documents(&file);
        for w in workloads(&objects) {
            let config = dir.path().join(format!("{n}-{}.toml", w.program));
            std::fs::write(&config, &w.config).expect("write config");
            // Only what the pod has: a variable the config needs and the pod lacks fails here.
            let command = |subcommand: &str| {
                let mut command = Command::new(binary(&w.program));
                command
                    .env_clear()
                    .envs(pod_env(&w))
                    .env("LOGSHIP_DATA_DIR", &data_dir)
                    .arg(subcommand)
                    .arg("-c")
                    .arg(&config);
                command
            };
            let out = run(&mut command("validate"));
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                warnings.trim().is_empty(),
                "{what}, {}: {} validate warns: {warnings}",
                w.id,
                w.program
            );
            if w.program == "logship" {
                let out = run(&mut command("test"));
                let report = String::from_utf8_lossy(&out.stdout);
                let summary = report.lines().last().unwrap_or_default();
                assert!(
                    summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 test"),
                    "{what}, {}: logship test: {report}",
                    w.id
                );
            }
            checked.insert(w.program);
        }
    }
    assert_eq!(
        checked,
        BTreeSet::from(["logship", "logship-sink-es", "logship-sink-s3"].map(String::from))
    );
}

/// What a config says the pod must match: where /health and /metrics listen, how long a drain
/// after SIGTERM may take, and for the agent its memory limit and data_dir as the pod sets them.
struct Checked {
    api: SocketAddr,
    shutdown_timeout: Duration,
    memory_limit: Option<u64>,
    data_dir: Option<String>,
}

fn checked_config(w: &Workload<'_>, scratch: &Path) -> Checked {
    let mut env = pod_env(w);
    let lookup = |env: &BTreeMap<String, String>, name: &str| env.get(name).cloned();
    match w.program.as_str() {
        "logship" => {
            // data_dir as the pod has it (its default); validation itself needs a writable one.
            let text =
                logship::config::interpolate(&w.config, &|n| lookup(&env, n)).expect("interpolate");
            let table: toml::Table = toml::from_str(&text).expect("TOML");
            let data_dir = table
                .get("data_dir")
                .and_then(|d| d.as_str())
                .unwrap_or("/var/lib/logship")
                .to_owned();
            env.insert("LOGSHIP_DATA_DIR".into(), scratch.display().to_string());
            let config = logship::config::Config::from_toml(&w.config, &|n| lookup(&env, n))
                .unwrap_or_else(|e| panic!("{}: {e}", w.id));
            Checked {
                api: config.api_address,
                shutdown_timeout: config.shutdown_timeout,
                memory_limit: Some(config.memory.limit),
                data_dir: Some(data_dir),
            }
        }
        "logship-sink-es" => {
            let config = logship::config::EsSinkConfig::from_toml(&w.config, &|n| lookup(&env, n))
                .unwrap_or_else(|e| panic!("{}: {e}", w.id));
            sink_checked(&config.common)
        }
        "logship-sink-s3" => {
            let config = logship::config::S3SinkConfig::from_toml(&w.config, &|n| lookup(&env, n))
                .unwrap_or_else(|e| panic!("{}: {e}", w.id));
            sink_checked(&config.common)
        }
        other => panic!("the image has no {other}"),
    }
}

fn sink_checked(common: &logship::config::SinkCommon) -> Checked {
    Checked {
        api: common.api_address,
        shutdown_timeout: common.shutdown_timeout,
        memory_limit: None,
        data_dir: None,
    }
}

/// A Kubernetes memory quantity in bytes: plain, or with a binary or decimal suffix.
fn quantity_bytes(quantity: &str) -> u64 {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u64 = number.parse().expect("quantity digits");
    let unit: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => panic!("unexpected quantity suffix {other} in {quantity}"),
    };
    number * unit
}

#[test]
fn probes_ports_mounts_and_limits_agree_with_the_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, file) in renderings(dir.path()) {
        let objects = yaml_documents(&file);
        for w in workloads(&objects) {
            let at = format!("{what}, {}", w.id);
            let config = checked_config(&w, &dir.path().join("data"));
            let c = w.container;
            let spec = &w.pod["spec"];

            // kubelet and Prometheus come from outside the pod's loopback.
            assert!(
                config.api.ip().is_unspecified(),
                "{at}: [api] address {} cannot be reached by kubelet's probes",
                config.api
            );
            let ports: BTreeMap<&str, u64> = array(&c["ports"])
                .map(|p| {
                    let name = p["name"].as_str().expect("port name");
                    (name, p["containerPort"].as_u64().expect("containerPort"))
                })
                .collect();
            let port = u64::from(config.api.port());
            assert_eq!(ports.get("api"), Some(&port), "{at}: the `api` port");
            for (probe, path) in [
                ("readinessProbe", "/health"),
                ("livenessProbe", "/health/live"),
            ] {
                let get = &c[probe]["httpGet"];
                let probed = match &get["port"] {
                    Value::String(name) => *ports
                        .get(name.as_str())
                        .unwrap_or_else(|| panic!("{at}: {probe} names no port {name}")),
                    number => number.as_u64().expect("port number"),
                };
                assert_eq!(probed, port, "{at}: {probe}'s port");
                assert_eq!(get["path"], path, "{at}: {probe}'s path");
            }
            let annotations = &w.pod["metadata"]["annotations"];
            assert_eq!(annotations["prometheus.io/scrape"], "true", "{at}");
            assert_eq!(annotations["prometheus.io/port"], port.to_string(), "{at}");
            assert_eq!(annotations["prometheus.io/path"], "/metrics", "{at}");

            let grace = spec["terminationGracePeriodSeconds"]
                .as_u64()
                .expect("grace");
            assert!(
                grace > config.shutdown_timeout.as_secs(),
                "{at}: {grace} s of grace for a drain of up to {:?}",
                config.shutdown_timeout
            );
            let security = &c["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{at}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{at}");
            assert_eq!(security["privileged"], false, "{at}");
            assert_eq!(
                security["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{at}"
            );
            assert!(security["capabilities"].get("add").is_none(), "{at}");
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{at}"
            );
            assert_eq!(spec["automountServiceAccountToken"], false, "{at}");
            let limit = c["resources"]["limits"]["memory"]
                .as_str()
                .map(quantity_bytes)
                .unwrap_or_else(|| panic!("{at}: no memory limit"));
            assert!(c["resources"]["requests"]["memory"].is_string(), "{at}");
            // Credentials come from Secrets, never from the manifest.
            for var in array(&c["env"]) {
                let name = var["name"].as_str().expect("env name");
                if ["PASSWORD", "SECRET", "ACCESS_KEY", "TOKEN"]
                    .iter()
                    .any(|s| name.contains(s))
                {
                    assert!(
                        var["valueFrom"]["secretKeyRef"].is_object(),
                        "{at}: {name} is not from a Secret"
                    );
                }
            }

            if let (Some(budget), Some(data_dir)) = (config.memory_limit, &config.data_dir) {
                assert!(
                    limit >= budget + AGENT_FIXED_COST,
                    "{at}: a memory limit of {limit} bytes leaves less than 24 MiB above \
                     memory_limit_bytes ({budget})"
                );
                agent_mounts(&at, &w, data_dir);
                let env = pod_env(&w);
                assert_eq!(
                    env.get("NODE_NAME").map(String::as_str),
                    Some("node-a"),
                    "{at}"
                );
                assert_eq!(
                    w.object["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"], 0,
                    "{at}: two agents on one node would share data_dir"
                );
            } else {
                let user = &spec["securityContext"];
                assert_eq!(user["runAsNonRoot"], true, "{at}");
                assert!(user["runAsUser"].as_u64().is_some_and(|u| u > 0), "{at}");
                assert!(
                    spec["volumes"]
                        .as_array()
                        .is_some_and(|v| v.iter().all(|v| v.get("hostPath").is_none()))
                );
            }
        }
    }
}

/// The agent reads the node's logs through a read-only hostPath at /var/log (where the
/// kubernetes_path step expects them) and keeps data_dir on a writable hostPath.
fn agent_mounts(at: &str, w: &Workload<'_>, data_dir: &str) {
    let host_path = |mount: &Value| {
        array(&w.pod["spec"]["volumes"])
            .find(|v| v["name"] == mount["name"])
            .and_then(|v| v["hostPath"]["path"].as_str())
            .map(str::to_owned)
    };
    let mounts: Vec<&Value> = array(&w.container["volumeMounts"]).collect();
    let logs = mounts
        .iter()
        .find(|m| m["mountPath"] == "/var/log")
        .unwrap_or_else(|| panic!("{at}: /var/log is not mounted"));
    assert_eq!(logs["readOnly"], true, "{at}: /var/log must be read-only");
    assert!(
        host_path(logs).is_some(),
        "{at}: /var/log is not the node's"
    );
    let data = mounts
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .unwrap_or_else(|| panic!("{at}: data_dir {data_dir} is not mounted"));
    assert_ne!(data["readOnly"], true, "{at}: data_dir must be writable");
    assert!(
        host_path(data).is_some(),
        "{at}: data_dir must outlive the pod (a hostPath)"
    );
    for mount in &mounts {
        let path = mount["mountPath"].as_str().expect("mountPath");
        assert!(
            mount["readOnly"] == true || path == data_dir,
            "{at}: {path} is writable"
        );
    }
}
