//! `kubernetes_path`: namespace, pod, pod uid and container from the path of a Kubernetes log
//! file: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`, or
//! `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`.

use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::path::FieldPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_field")]
    field: String,
}

fn default_field() -> String {
    "log.file.path".into()
}

const NAMESPACE: &str = "kubernetes.namespace";
const POD_NAME: &str = "kubernetes.pod.name";
const POD_UID: &str = "kubernetes.pod.uid";
const CONTAINER_NAME: &str = "kubernetes.container.name";
const CONTAINER_ID: &str = "container.id";

pub fn outputs() -> Vec<Output> {
    [NAMESPACE, POD_NAME, POD_UID, CONTAINER_NAME, CONTAINER_ID]
        .iter()
        .filter_map(|f| FieldPath::parse(f).ok())
        .map(Output::Field)
        .collect()
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let path = |name: &str| field_path("type", name);
        Ok(Step::KubernetesPath(KubernetesPath {
            field: field_path("field", &self.field)?,
            namespace: path(NAMESPACE)?,
            pod_name: path(POD_NAME)?,
            pod_uid: path(POD_UID)?,
            container_name: path(CONTAINER_NAME)?,
            container_id: path(CONTAINER_ID)?,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct KubernetesPath {
    field: FieldPath,
    namespace: FieldPath,
    pod_name: FieldPath,
    pod_uid: FieldPath,
    container_name: FieldPath,
    container_id: FieldPath,
}

/// What a Kubernetes log path tells.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodPath<'a> {
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: Option<&'a str>,
    pub container_name: &'a str,
    pub container_id: Option<&'a str>,
}

/// Reads a kubelet log path; `None` when it is neither layout. Runs per event: no allocation.
pub fn parse(path: &str) -> Option<PodPath<'_>> {
    let mut back = path.rsplit('/').filter(|p| !p.is_empty());
    let file = back.next()?;
    let parent = back.next()?;
    // …/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
    if let (Some(pod_dir), Some("pods")) = (back.next(), back.next())
        && file.ends_with(".log")
    {
        let [namespace, pod_name, uid] = three_fields(pod_dir)?;
        return Some(PodPath {
            namespace,
            pod_name,
            pod_uid: Some(uid),
            container_name: parent,
            container_id: None,
        });
    }
    // …/containers/<pod>_<namespace>_<container>-<64 hex id>.log
    if parent == "containers" {
        let (rest, id) = file.strip_suffix(".log")?.rsplit_once('-')?;
        let [pod_name, namespace, container] = three_fields(rest)?;
        return (!id.is_empty()).then_some(PodPath {
            namespace,
            pod_name,
            pod_uid: None,
            container_name: container,
            container_id: Some(id),
        });
    }
    None
}

/// `a_b_c` as three non-empty parts (the third may hold more `_`).
fn three_fields(text: &str) -> Option<[&str; 3]> {
    let mut fields = text.splitn(3, '_');
    let parts = [fields.next()?, fields.next()?, fields.next()?];
    parts.iter().all(|p| !p.is_empty()).then_some(parts)
}

impl KubernetesPath {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        let Some(pod) = parse(&text) else {
            return Err(StepFailure::new(
                "not_a_pod_path",
                format!("`{text}` is not a Kubernetes pod log path"),
            ));
        };
        let mut values = vec![
            (&self.namespace, pod.namespace.to_owned()),
            (&self.pod_name, pod.pod_name.to_owned()),
            (&self.container_name, pod.container_name.to_owned()),
        ];
        if let Some(uid) = pod.pod_uid {
            values.push((&self.pod_uid, uid.to_owned()));
        }
        if let Some(id) = pod.container_id {
            values.push((&self.container_id, id.to_owned()));
        }
        drop(text);
        for (path, value) in values {
            super::set(event, path, Value::String(value))?;
        }
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_layout() {
        assert_eq!(
            parse("/var/log/pods/shop_web-7d9f_1b2c-33/nginx/0.log"),
            Some(PodPath {
                namespace: "shop",
                pod_name: "web-7d9f",
                pod_uid: Some("1b2c-33"),
                container_name: "nginx",
                container_id: None,
            })
        );
    }

    #[test]
    fn containers_layout() {
        assert_eq!(
            parse("/var/log/containers/web-7d9f_shop_nginx-0123abcd.log"),
            Some(PodPath {
                namespace: "shop",
                pod_name: "web-7d9f",
                pod_uid: None,
                container_name: "nginx",
                container_id: Some("0123abcd"),
            })
        );
    }

    #[test]
    fn other_paths_are_not_pods() {
        assert_eq!(parse("/var/log/syslog"), None);
        assert_eq!(parse("/var/log/pods/bad/nginx/0.log"), None);
        assert_eq!(parse("/var/log/containers/nodash.log"), None);
        assert_eq!(parse(""), None);
    }
}
