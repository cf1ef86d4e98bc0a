#!/usr/bin/env bash
# deb.sh — the Debian package: build it, and prove that it installs and works.
#
#   scripts/deb.sh build   release binaries, then target/debian/logship_<version>-1_<arch>.deb
#   scripts/deb.sh check   build, `dpkg -i` it, check what it installed (binaries, the logship
#                          user in adm and systemd-journal, modes of the config and data dir,
#                          units neither enabled nor started), run `logship --version` and
#                          `logship validate -c /etc/logship/logship.toml` as the logship user,
#                          then purge it again and check that the data dir went with it
#
# cargo-deb is installed once into ~/.cache/logship/tools. `check` changes the machine (it is
# run by scripts/test.sh on CI's fresh machine); it refuses to touch a logship package that it
# did not install itself unless LOGSHIP_DEB_REPLACE=1. Needs root (or sudo) for dpkg.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
TOOLS=${LOGSHIP_CACHE_DIR:-$HOME/.cache/logship}/tools
target=${CARGO_TARGET_DIR:-$(pwd)/target}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

log() { echo "deb.sh: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

build() {
    if [ "$("$TOOLS/bin/cargo-deb" --version 2>/dev/null)" != "$CARGO_DEB_VERSION" ]; then
        log "installing cargo-deb $CARGO_DEB_VERSION into $TOOLS"
        cargo install --locked --quiet --root "$TOOLS" --version "$CARGO_DEB_VERSION" cargo-deb
    fi
    cargo build --release --locked --bins >&2
    # cargo-deb maps the assets' target/release paths to the target directory in use.
    "$TOOLS/bin/cargo-deb" --no-build --quiet --output "$target/debian/" >&2
    ls -t "$target"/debian/logship_*.deb | head -n 1
}

check() {
    if dpkg-query -W -f='${Status}' logship 2>/dev/null | grep -q "install ok installed" \
        && [ ! -e /var/lib/logship/.installed-by-deb-check ] && [ "${LOGSHIP_DEB_REPLACE:-0}" != 1 ]; then
        fail "a logship package is installed already; set LOGSHIP_DEB_REPLACE=1 to replace and purge it"
    fi
    local deb version
    deb=$(build)
    version=$(awk -F'"' '/^version =/ {print $2; exit}' Cargo.toml)
    log "installing $deb"
    $sudo dpkg -i "$deb" >&2
    $sudo touch /var/lib/logship/.installed-by-deb-check

    for bin in logship logship-sink-es logship-sink-s3; do
        [ "$(command -v "$bin")" = "/usr/bin/$bin" ] || fail "$bin is not /usr/bin/$bin"
        "$bin" --version | grep -qx "$bin $version" || fail "$bin --version: $("$bin" --version)"
    done
    id logship >/dev/null || fail "no logship user"
    for group in adm systemd-journal; do
        id -nG logship | tr ' ' '\n' | grep -qx "$group" || fail "logship is not in $group"
    done
    [ "$(stat -c '%U:%G %a' /var/lib/logship)" = "logship:logship 750" ] \
        || fail "/var/lib/logship is $(stat -c '%U:%G %a' /var/lib/logship)"
    for file in logship logship-sink-es logship-sink-s3; do
        [ "$(stat -c '%U:%G %a' "/etc/logship/$file.toml")" = "root:logship 640" ] \
            || fail "/etc/logship/$file.toml is $(stat -c '%U:%G %a' "/etc/logship/$file.toml")"
    done
    dpkg-query -W -f='${Conffiles}\n' logship | grep -q /etc/logship/logship.toml \
        || fail "/etc/logship/logship.toml is not a conffile"
    for unit in logship logship-sink-es logship-sink-s3; do
        local file
        file=$(dpkg -L logship | grep "/systemd/system/$unit.service$") || fail "no $unit.service"
        systemd-analyze verify "$file" || fail "$unit.service does not verify"
        [ ! -e "/etc/systemd/system/multi-user.target.wants/$unit.service" ] \
            || fail "$unit.service was enabled on install"
    done

    log "logship validate as the logship user"
    $sudo runuser -u logship -- logship validate -c /etc/logship/logship.toml >&2 \
        || fail "the packaged configuration does not validate"
    for sink in es s3; do
        $sudo runuser -u logship -- env LOGSHIP_BROKERS=127.0.0.1:9092 \
            "logship-sink-$sink" validate -c "/etc/logship/logship-sink-$sink.toml" >&2 \
            || fail "the packaged logship-sink-$sink.toml does not validate"
    done

    log "purging"
    $sudo dpkg --purge logship >&2
    [ ! -e /usr/bin/logship ] || fail "/usr/bin/logship is still there"
    [ ! -e /var/lib/logship ] || fail "/var/lib/logship survived the purge"
    log "ok: $deb installs, runs, validates and purges"
}

case "${1:-}" in
    build) build ;;
    check) check ;;
    *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
