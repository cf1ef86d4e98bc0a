#!/usr/bin/env bash
# packaging-tools.sh — the checkers tests/integration/packaging.rs runs on packaging/, in a
# private virtualenv (pinned in scripts/requirements-packaging.txt), and the plain Kubernetes
# manifests rendered from the Helm chart.
#
#   scripts/packaging-tools.sh install     venv + pinned packages (a no-op when already there);
#                                          prints LOGSHIP_PACKAGING_TOOLS=<its bin directory>
#   scripts/packaging-tools.sh manifests   writes packaging/kubernetes/logship.yaml: the chart
#                                          rendered with packaging/helm/logship/ci/plain-values.yaml
#
# stdout carries only KEY=VALUE lines (progress goes to stderr), so a caller can do
#   set -a; eval "$(scripts/packaging-tools.sh install)"; set +a
# Environment: LOGSHIP_CACHE_DIR (default ~/.cache/logship; the venv lives in it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQS=$REPO/scripts/requirements-packaging.txt
CACHE_DIR=${LOGSHIP_CACHE_DIR:-$HOME/.cache/logship}
VENV=$CACHE_DIR/packaging-venv

log() { echo "packaging-tools.sh: $*" >&2; }

install() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/packaging-install.lock"
    flock 8
    local key stamp=$VENV/.logship-requirements.sha256
    key=$(sha256sum <"$REQS" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ] || ! "$VENV/bin/python" -c '' 2>/dev/null \
        || [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
        log "installing $(grep -v '^#' "$REQS" | xargs) into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" >&2
        "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQS" >&2
        # Prove the native pieces load here, not only that pip unpacked them.
        "$VENV/bin/python" -c 'import helm_python' >&2
        "$VENV/bin/hadolint" --version >&2
        echo "$key" >"$stamp"
    fi
    exec 8>&-
    echo "LOGSHIP_PACKAGING_TOOLS=$VENV/bin"
}

case "${1:-}" in
    install)
        install
        ;;
    manifests)
        install >/dev/null
        "$VENV/bin/python" "$REPO/scripts/chart.py" render "$REPO/packaging/helm/logship" \
            -f "$REPO/packaging/helm/logship/ci/plain-values.yaml" \
            -o "$REPO/packaging/kubernetes/logship.yaml"
        log "wrote packaging/kubernetes/logship.yaml"
        ;;
    *)
        echo "usage: $0 install|manifests" >&2
        exit 2
        ;;
esac
