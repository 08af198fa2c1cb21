#!/bin/sh
# Install the dependencies, then build and run the whole suite twice:
#   1. gcc, optimised: unit, integration and seed-corpus tests, then the
#      .deb built from that tree and checked (packaging/check-deb.sh);
#   2. clang with ASan+UBSan: the same tests, plus each libFuzzer target
#      for a short fixed time.
# Exits non-zero on any failure.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_secs=${TUNNELD_FUZZ_SECONDS:-20}

"$root/packaging/deps/install-deps.sh"
# Our static libwebsockets (patched; cached under build/deps, rebuilt only
# when a patch changes); CMake links it.
"$root/packaging/deps/build-lws.sh" >/dev/null

echo "== lint"
"$root/scripts/lint.sh"

echo "== build: release (gcc)"
cmake -S "$root" -B "$root/build/test-release" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$root/build/test-release" -j "$jobs"
echo "== test: release"
ctest --test-dir "$root/build/test-release" --output-on-failure -LE integration -j "$jobs"
ctest --test-dir "$root/build/test-release" --output-on-failure -L integration
echo "== package: .deb (lintian, systemd-analyze verify, contents, scratch root)"
"$root/packaging/check-deb.sh" "$root/build/test-release"

echo "== build: asan+ubsan+fuzz (clang)"
CC=clang cmake -S "$root" -B "$root/build/test-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DTUNNELD_SANITIZE=address,undefined -DTUNNELD_FUZZ=ON -DTUNNELD_FUZZ_SECONDS="$fuzz_secs"
cmake --build "$root/build/test-asan" -j "$jobs"
echo "== test: asan+ubsan+fuzz"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build/test-asan" --output-on-failure -LE integration -j "$jobs"
ctest --test-dir "$root/build/test-asan" --output-on-failure -L integration

echo "== all tests passed"
