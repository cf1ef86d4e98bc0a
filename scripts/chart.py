#!/usr/bin/env python3
"""chart.py: the Helm chart in packaging/helm/logship, linted and rendered offline with Helm's own
Go SDK (the helm-python-sdk wheel bundles it; no helm binary and no cluster), and YAML read back
as JSON for the tests. Runs in the virtualenv scripts/packaging-tools.sh installs.

  chart.py render CHART [-f VALUES]... [-o FILE]   lint (warnings fail), render as release
                                                   `logship` in namespace `logship`, and write
                                                   the objects in Helm's install order
  chart.py json FILE...                            every YAML document in FILEs, as one JSON array
"""

import argparse
import json
import re
import sys

import yaml

RELEASE = "logship"
NAMESPACE = "logship"
# Helm's install order (pkg/release/util/kind_sorter.go) for the kinds this chart makes.
KIND_ORDER = ["Namespace", "ServiceAccount", "Secret", "ConfigMap", "DaemonSet", "Deployment"]
HEADER = (
    "# Generated from packaging/helm/logship by `scripts/packaging-tools.sh manifests`: edit the\n"
    "# chart (or packaging/helm/logship/ci/plain-values.yaml), not this file.\n"
    "# kubectl apply -f packaging/kubernetes/logship.yaml\n"
)


def fail(message):
    print(f"chart.py: {message}", file=sys.stderr)
    sys.exit(1)


def load_values(paths):
    values = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            merge(values, yaml.safe_load(f) or {})
    return values


def merge(into, layer):
    """Helm's rule for several -f files: maps merge key by key, anything else is replaced."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def documents(rendered):
    """(kind, template, text) for every object, comments kept with the object below them."""
    out = []
    for template in sorted(rendered):
        if template.endswith("NOTES.txt"):
            continue
        for text in re.split(r"(?m)^---[ \t]*$\n?", rendered[template]):
            doc = yaml.safe_load(text)
            if doc is None:
                continue
            kind = doc.get("kind")
            if kind not in KIND_ORDER:
                fail(f"{template}: kind {kind!r} has no place in KIND_ORDER")
            # Blank lines inside block scalars come out indented; trailing blanks mean nothing.
            body = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")) + "\n"
            out.append((KIND_ORDER.index(kind), template, body))
    # Stable: within a kind, templates in name order and objects as each template writes them.
    out.sort(key=lambda d: d[0])
    return out


def render(args):
    import helm_python as helm

    values = load_values(args.values)
    report = helm.lint(args.chart, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    problems += [{"error": e} for e in report.get("errors") or []]
    if problems:
        fail("helm lint: " + "; ".join(str(p.get("error")) for p in problems))
    with helm.Chart.load(args.chart) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = documents(rendered)
    if not docs:
        fail("the chart rendered no objects")
    text = HEADER + "".join(f"---\n# Source: {t}\n{body}" for _, t, body in docs)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def to_json(args):
    docs = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    json.dump(docs, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("render")
    r.add_argument("chart")
    r.add_argument("-f", "--values", action="append", default=[])
    r.add_argument("-o", "--output")
    r.set_defaults(run=render)
    j = commands.add_parser("json")
    j.add_argument("files", nargs="+")
    j.set_defaults(run=to_json)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
