#!/bin/sh
# Install everything tunneld needs to build, run and test on Debian 12 or
# Ubuntu.  Idempotent: when every package is present it changes nothing.
# Runs as root, or through sudo when started by another user.
set -eu

# The last line builds and checks the .deb (packaging/check-deb.sh).
PACKAGES="
  ca-certificates git cmake ninja-build pkg-config gcc libc6-dev make
  libuv1-dev libmbedtls-dev libyaml-dev libssl-dev libwebsockets-dev libwebsockets-evlib-uv
  dpkg-dev patch xz-utils
  libcmocka-dev clang libclang-rt-14-dev clang-format
  python3 curl procps iproute2 openssl nginx-light
  dpkg-dev file lintian systemd
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root (or sudo) to install:$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
