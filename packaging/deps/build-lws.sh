#!/bin/sh
# Build the libwebsockets tunneld links: Debian's lws 4.1.6 source package
# plus our patches (packaging/deps/lws/*.patch), as a static library with the
# libuv event loop built in (no dlopen()ed evlib plugin), OpenSSL for TLS,
# only the roles we use (http/1 for the upgrade, ws client and server), no
# extensions and no test apps.
#
#   packaging/deps/build-lws.sh            build if needed; print the prefix
#   packaging/deps/build-lws.sh --prefix   print the prefix it would use; exit 0
#                                          when it is built, 2 when it is not
#
# The result is cached under build/deps/lws-4.1.6-KEY/ (or
# $TUNNELD_DEPS_DIR), where KEY hashes the patches, this script and the
# source package's .dsc: a local run or CI rebuilds only when one of them
# changes (about 15 s on 2 cores).  The source comes from apt (a deb-src
# entry for Debian's own mirror is added when there is none), so it is the
# same code Debian ships.  Needs root (or sudo) only for that apt step.
set -eu

LWS_VERSION=4.1.6
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
deps=${TUNNELD_DEPS_DIR:-$root/build/deps}
patches=$(ls "$here"/lws/*.patch 2>/dev/null | LC_ALL=C sort || true)

# Everything that changes the result is in the key.
key=$(cat "$0" $patches | sha256sum | cut -c1-12)
prefix=$deps/lws-$LWS_VERSION-$key

if [ "${1:-}" = "--prefix" ]; then
    echo "$prefix"
    [ -f "$prefix/.built" ] && exit 0
    exit 2
fi
if [ -f "$prefix/.built" ]; then
    echo "$prefix"
    exit 0
fi

log() { echo "build-lws: $*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
else
    SUDO="sudo"
fi

# ---- source: Debian's package, fetched once into build/deps/src ---------------
src_cache=$deps/src
mkdir -p "$src_cache"
dsc=$(ls "$src_cache"/libwebsockets_"$LWS_VERSION"-*.dsc 2>/dev/null | LC_ALL=C sort | tail -1 || true)
if [ -z "$dsc" ]; then
    if ! apt-get source --print-uris libwebsockets >/dev/null 2>&1 ||
        [ -z "$(apt-get source --print-uris libwebsockets 2>/dev/null | grep "'" || true)" ]; then
        # No deb-src entry: add one for the mirror apt already uses.
        list=/etc/apt/sources.list.d/tunneld-deb-src.sources
        log "adding $list (Types: deb-src) and running apt-get update"
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            sed -e 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
                $SUDO tee "$list" >/dev/null
        else
            . /etc/os-release
            printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "${VERSION_CODENAME:-bookworm}" | $SUDO tee "$list" >/dev/null
        fi
        $SUDO apt-get update -q >&2
    fi
    log "fetching the libwebsockets source package"
    (cd "$src_cache" && apt-get source --download-only -q libwebsockets >&2)
    dsc=$(ls "$src_cache"/libwebsockets_"$LWS_VERSION"-*.dsc 2>/dev/null | LC_ALL=C sort | tail -1 || true)
    if [ -z "$dsc" ]; then
        log "apt did not give libwebsockets $LWS_VERSION (got: $(ls "$src_cache"))"
        exit 1
    fi
fi

work=$deps/lws-build-$key
rm -rf "$work" "$prefix"
mkdir -p "$work"
log "unpacking $(basename "$dsc")"
dpkg-source --no-check -x "$dsc" "$work/src" >/dev/null
for p in $patches; do
    log "applying $(basename "$p")"
    patch -d "$work/src" -p1 --forward --quiet <"$p"
done

# ---- configure and build ------------------------------------------------------
# LWS_HAVE_SYS_CAPABILITY_H/LIBCAP preset to off: lws would otherwise link
# libcap for a privilege drop we do ourselves (daemon/platform/privdrop_*).
log "configuring"
cmake -S "$work/src" -B "$work/b" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DCMAKE_C_FLAGS="-O2 -g -fno-strict-aliasing -Wno-error" \
    -DDISABLE_WERROR=ON \
    -DLWS_WITH_STATIC=ON -DLWS_WITH_SHARED=OFF -DLWS_STATIC_PIC=ON \
    -DLWS_WITH_LIBUV=ON -DLWS_WITH_EVLIB_PLUGINS=OFF \
    -DLWS_WITH_SSL=ON -DLWS_WITH_MBEDTLS=OFF \
    -DLWS_ROLE_H1=ON -DLWS_ROLE_WS=ON -DLWS_WITH_HTTP2=OFF \
    -DLWS_ROLE_RAW_FILE=OFF -DLWS_ROLE_MQTT=OFF -DLWS_ROLE_DBUS=OFF \
    -DLWS_WITH_CLIENT=ON -DLWS_WITH_SERVER=ON \
    -DLWS_WITHOUT_EXTENSIONS=ON -DLWS_WITH_ZLIB=OFF \
    -DLWS_IPV6=ON -DLWS_UNIX_SOCK=ON -DLWS_WITH_CUSTOM_HEADERS=ON \
    -DLWS_WITH_LEJP=OFF -DLWS_WITH_LWSAC=ON -DLWS_WITH_SYS_SMD=OFF \
    -DLWS_WITH_DIR=OFF -DLWS_WITH_LEJP_CONF=OFF -DLWS_WITH_PLUGINS=OFF \
    -DLWS_WITHOUT_TESTAPPS=ON -DLWS_WITHOUT_TEST_SERVER=ON \
    -DLWS_WITHOUT_TEST_SERVER_EXTPOLL=ON -DLWS_WITHOUT_TEST_PING=ON \
    -DLWS_WITHOUT_TEST_CLIENT=ON -DLWS_WITH_MINIMAL_EXAMPLES=OFF \
    -DLWS_CTEST_INTERNET_AVAILABLE=OFF \
    -DLWS_HAVE_SYS_CAPABILITY_H=OFF -DLWS_HAVE_LIBCAP=OFF \
    >"$work/configure.log" 2>&1 || {
    tail -30 "$work/configure.log" >&2
    exit 1
}
log "building"
nice -n 10 cmake --build "$work/b" -j "$(nproc 2>/dev/null || echo 2)" >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log" >&2
    exit 1
}
cmake --install "$work/b" >"$work/install.log" 2>&1 || {
    tail -20 "$work/install.log" >&2
    exit 1
}
{
    echo "libwebsockets $LWS_VERSION from $(basename "$dsc")"
    for p in $patches; do echo "patch $(basename "$p") $(sha256sum "$p" | cut -c1-16)"; done
} >"$prefix/.built"
rm -rf "$work"
# Older keys are stale once a patch changed.
for old in "$deps"/lws-"$LWS_VERSION"-*; do
    [ "$old" = "$prefix" ] || rm -rf "$old"
done
log "done: $prefix"
echo "$prefix"
