#!/bin/sh
# Install the dependencies, build tunneld, and run it in the foreground on
# the quickstart config (a SOCKS5 + HTTP proxy on 127.0.0.1, direct and through a
# wstan tunnel whose client and server both run in this one daemon, on loopback).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/packaging/deps/install-deps.sh"
# Our static libwebsockets (patched; cached under build/deps, rebuilt only
# when a patch changes); CMake links it.
"$root/packaging/deps/build-lws.sh" >/dev/null
cmake -S "$root" -B "$root/build/release" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTUNNELD_TESTS=OFF
cmake --build "$root/build/release"
config=${1:-$root/docs/examples/quickstart.yaml}
echo "run: starting $root/build/release/tunneld --config $config (Ctrl-C to stop)"
exec "$root/build/release/tunneld" --config "$config"
