#!/usr/bin/env bash
# tunneld benchmark: tunneld against the proxies users would pick instead,
# side by side in one run on this machine, everything on 127.0.0.1.
#
#   bench/run.sh [--quick] [--only SYSTEM[,SYSTEM...]] [--out DIR]
#                [--docs | --no-docs] [--no-install] [--note TEXT]
#                [--hold-steps N,N]
#
# Systems: direct, ss (shadowsocks-libev aes-128-gcm), microsocks,
# wstan-ws, wstan-wss, jproxy (the last three are tunneld).
# Measures per system: bulk (one 256 MiB download through the SOCKS5 front
# with curl, best of 3), rps (bench/loadgen: 32 workers, a new connection +
# SOCKS5 CONNECT + GET /1k per request) and memory (RSS of the chain's
# processes with 2000 and 10000 idle tunnelled connections held open).
# Results go to DIR (default bench/results, build/bench-quick with --quick);
# a full run of every system also writes docs/performance.md and
# docs/performance.png (--docs / --no-docs force it either way).
#
# Installs what it needs (apt-get, through sudo when not root), builds
# tunneld (Release) and the load generator, and kills everything it started
# when it exits.  Every wait and every loop is bounded.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
t_start=$(date +%s)

ALL_SYSTEMS="direct ss microsocks wstan-ws wstan-wss jproxy"
QUICK=0
ONLY=""
OUT=""
DOCS=auto
INSTALL=1
NOTE=""
HOLD_STEPS_OPT=""

usage() {   # the comment at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only)
            [ $# -ge 2 ] || usage
            ONLY="$ONLY $(printf '%s' "$2" | tr ',' ' ')"
            shift ;;
        --out)
            [ $# -ge 2 ] || usage
            OUT=$2
            shift ;;
        --docs) DOCS=yes ;;
        --no-docs) DOCS=no ;;
        --no-install) INSTALL=0 ;;
        --note)
            [ $# -ge 2 ] || usage
            NOTE=$2
            shift ;;
        --hold-steps)
            [ $# -ge 2 ] || usage
            HOLD_STEPS_OPT=$2
            shift ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done

SYSTEMS=$ALL_SYSTEMS
if [ -n "$ONLY" ]; then
    SYSTEMS=""
    for s in $ONLY; do
        case "$s" in
            shadowsocks|shadowsocks-libev) s=ss ;;
            wstan) s=wstan-ws ;;
            wss) s=wstan-wss ;;
        esac
        case " $ALL_SYSTEMS " in
            *" $s "*) SYSTEMS="$SYSTEMS $s" ;;
            *) echo "run.sh: unknown system '$s' (one of: $ALL_SYSTEMS)" >&2; exit 2 ;;
        esac
    done
fi
if [ -z "$OUT" ]; then
    # smoke numbers never overwrite the committed results of a full run
    if [ "$QUICK" -eq 1 ]; then OUT="$root/build/bench-quick"; else OUT="$root/bench/results"; fi
fi
if [ "$DOCS" = auto ]; then
    if [ "$QUICK" -eq 0 ] && [ -z "$ONLY" ]; then DOCS=yes; else DOCS=no; fi
fi

if [ "$QUICK" -eq 1 ]; then
    BULK_MIB=32; BULK_RUNS=2
    RPS_WARMUP=1; RPS_DURATION=3
    HOLD_STEPS="200,1000"; HOLD_SETTLE=1; HOLD_STEP_TIME=30
else
    BULK_MIB=256; BULK_RUNS=3
    RPS_WARMUP=2; RPS_DURATION=10
    HOLD_STEPS="2000,10000"; HOLD_SETTLE=2; HOLD_STEP_TIME=90
fi
[ -z "$HOLD_STEPS_OPT" ] || HOLD_STEPS=$HOLD_STEPS_OPT
RPS_CONCURRENCY=32
HOLD_PARALLEL=64
HOLD_TIMEOUT=10
HOLD_MAX_ERRORS=200

# Only loopback: no proxy from the environment may take our requests.
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY

log() { printf 'bench: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------
# Installs

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

BENCH_PACKAGES="nginx-light shadowsocks-libev microsocks gnuplot-nox curl procps openssl python3 iproute2 util-linux"
if [ "$INSTALL" -eq 1 ]; then
    "$root/packaging/deps/install-deps.sh"
    missing=""
    for p in $BENCH_PACKAGES; do
        is_installed "$p" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        if [ "$SUDO" = none ]; then
            log "need root (or sudo) to install:$missing; the systems that need them will be n/a"
        else
            log "installing:$missing"
            # The service a package may start (shadowsocks-libev) is not ours:
            # we start our own processes on our own ports.
            # shellcheck disable=SC2086
            if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; then
                $SUDO apt-get update -q || true
                for p in $missing; do
                    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" \
                        || log "could not install $p"
                done
            fi
        fi
    fi
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet shadowsocks-libev 2>/dev/null; then
    log "note: the shadowsocks-libev package's own system service is running (not ours, not used here);"
    log "      'systemctl disable --now shadowsocks-libev' stops it if you do not want it"
fi
for tool in cmake ninja cc pkg-config python3 curl ss setpriv; do
    command -v "$tool" >/dev/null 2>&1 || { log "missing required tool: $tool"; exit 1; }
done

# --------------------------------------------------------------------------
# Build: tunneld in Release, and our load generator (outside the main build)

BUILD="$root/build/bench"
log "building tunneld (Release) in $BUILD"
cmake -S "$root" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTUNNELD_TESTS=OFF >"$BUILD.cmake.log" 2>&1 \
    || { cat "$BUILD.cmake.log" >&2; exit 1; }
cmake --build "$BUILD" >"$BUILD.build.log" 2>&1 || { tail -50 "$BUILD.build.log" >&2; exit 1; }
TUNNELD="$BUILD/tunneld"
TUNNELCTL="$BUILD/tunnelctl"
LOADGEN="$BUILD/loadgen"
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
    -Wmissing-prototypes -Wno-unused-parameter -fno-strict-aliasing -D_GNU_SOURCE \
    -o "$LOADGEN" "$root/bench/loadgen.c" $(pkg-config --cflags --libs libuv)

# --------------------------------------------------------------------------
# Work space, output, clean-up

WORK=$(mktemp -d /dev/shm/tunneld-bench.XXXXXX)
chmod 755 "$WORK"   # nginx reads its files as nobody
mkdir -p "$OUT"
rm -rf "$OUT/raw" "$OUT/logs"
rm -f "$OUT/results.json" "$OUT/results.csv" "$OUT/results.md" "$OUT/chart.png" "$OUT/chart.gp" "$OUT/chart.dat" "$OUT/machine.txt"
mkdir -p "$OUT/raw" "$OUT/logs"

PIDS=""        # every process we started and have not stopped
CHAIN_PIDS=""  # the current system's chain

kill_pid() {
    local pid=$1 new="" p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in $PIDS; do [ "$p" = "$pid" ] || new="$new $p"; done
    PIDS=$new
}

cleanup() {
    set +e
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    for p in $PIDS; do kill_pid "$p"; done
    if [ -d "$WORK" ]; then
        # keep the daemons' logs; drop keys, certificates and the big file
        # (not keygen.log: it names the token)
        (cd "$WORK" && find . -name '*.log' ! -name keygen.log ! -name check.log ! -name openssl.log \
            -size -20M -exec cp --parents {} "$OUT/logs/" \;) 2>/dev/null
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start NAME LOG CMD...: start CMD in the background, remember its pid in LAST_PID
start() {
    local name=$1 logf=$2; shift 2
    "$@" >"$logf" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
    log "  started $name (pid $LAST_PID)"
}

stop_chain() {
    local p rev=""
    for p in $CHAIN_PIDS; do rev="$p $rev"; done   # the client first, then its server
    for p in $rev; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $rev; do kill_pid "$p"; done
    CHAIN_PIDS=""
}

# wait_listen PORT PID: until something listens on 127.0.0.1:PORT (10 s)
wait_listen() {
    for _ in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || return 1
        if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    return 1
}

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# sum of utime+stime (clock ticks) of the given pids
cpu_ticks() {
    local t=0 p v
    for p in "$@"; do
        if [ -r "/proc/$p/stat" ]; then
            v=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
            t=$((t + v))
        fi
    done
    echo "$t"
}

# --------------------------------------------------------------------------
# Descriptor limit for everything started from here

NOFILE_WANT=65536
if ulimit -n "$NOFILE_WANT" 2>/dev/null; then
    :
else
    hard=$(ulimit -Hn)
    ulimit -n "$hard" 2>/dev/null || true
    log "WARNING: cannot raise the descriptor limit to $NOFILE_WANT (hard limit $hard, no CAP_SYS_RESOURCE):"
    log "         10000 held connections need 2 descriptors per connection in most chain processes"
fi
NOFILE=$(ulimit -n)
log "descriptor limit: $NOFILE"

# --------------------------------------------------------------------------
# Machine facts

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "kernel: $(uname -sr)"
    echo "os: $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nofile: $NOFILE"
    echo "tunneld: $("$TUNNELD" --version 2>&1 | head -1)"
    echo "tunneld_commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo '+dirty')"
    echo "nginx: $(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null || echo '?')"
    echo "shadowsocks-libev: $(dpkg-query -W -f='${Version}' shadowsocks-libev 2>/dev/null || echo 'not installed')"
    echo "microsocks: $(dpkg-query -W -f='${Version}' microsocks 2>/dev/null || echo 'not installed')"
    echo "curl: $(curl --version | head -1 | cut -d' ' -f1-2)"
    echo "openssl: $(openssl version 2>/dev/null)"
    echo "libuv: $(pkg-config --modversion libuv)"
    echo "quick: $QUICK"
    echo "bulk_mib: $BULK_MIB"
    echo "bulk_runs: $BULK_RUNS"
    echo "rps_concurrency: $RPS_CONCURRENCY"
    echo "rps_warmup_s: $RPS_WARMUP"
    echo "rps_duration_s: $RPS_DURATION"
    echo "hold_steps: $HOLD_STEPS"
} >"$OUT/machine.txt"

# --------------------------------------------------------------------------
# The origin: Debian's nginx, unprivileged, on 127.0.0.1, files on tmpfs

log "origin: making a $BULK_MIB MiB and a 1 KiB file in $WORK/www"
mkdir -p "$WORK/www" "$WORK/nginx/tmp"
head -c $((BULK_MIB * 1024 * 1024)) /dev/urandom >"$WORK/www/bulk"
head -c 1024 /dev/urandom >"$WORK/www/1k"
chmod 644 "$WORK/www/bulk" "$WORK/www/1k"
BULK_BYTES=$((BULK_MIB * 1024 * 1024))

read -r ORIGIN_PORT ECHO_PORT_UNUSED <<<"$(free_ports 2)"
: "$ECHO_PORT_UNUSED"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        root $WORK/www;
        location = /1k { }
        location = /bulk { }
    }
}
EOF
NGINX_CMD="nginx -e $WORK/nginx/error.log -p $WORK/nginx -c $WORK/nginx/nginx.conf"
if [ "$(id -u)" -eq 0 ]; then
    chown -R nobody "$WORK/nginx"
    nobody_group=$(id -gn nobody)
    # shellcheck disable=SC2086
    start nginx "$WORK/nginx/stdout.log" setpriv --reuid=nobody --regid="$nobody_group" --clear-groups $NGINX_CMD
else
    # shellcheck disable=SC2086
    start nginx "$WORK/nginx/stdout.log" $NGINX_CMD
fi
NGINX_PID=$LAST_PID
if ! wait_listen "$ORIGIN_PORT" "$NGINX_PID"; then
    log "the origin (nginx) did not start:"
    cat "$WORK/nginx/stdout.log" "$WORK/nginx/error.log" >&2 2>/dev/null || true
    exit 1
fi
ORIGIN="127.0.0.1:$ORIGIN_PORT"
got=$(curl -sS --max-time 10 -o /dev/null -w '%{size_download}' "http://$ORIGIN/1k" || echo 0)
[ "$got" = 1024 ] || { log "the origin does not serve /1k (got $got bytes)"; exit 1; }
log "origin: nginx on $ORIGIN (pid $NGINX_PID)"

# Shared secrets for this run only (loopback, thrown away at exit)
SS_PASSWORD=$(openssl rand -hex 16)
WSTAN_KEY=$(openssl rand -base64 16)

# --------------------------------------------------------------------------
# Chains.  Each setup_SYSTEM starts the client and server of one system, sets
# SOCKS_PORT and CHAIN_PIDS, writes its commands to $RAW/commands.txt, and
# returns non-zero with a reason in $RAW/status.txt if it cannot.

na() {   # na REASON
    log "  n/a: $1"
    printf 'n/a\t%s\n' "$1" >"$STATUS_FILE"
}

# record a command line (with the work dir and secrets masked) for the docs
record_cmd() {
    printf '%s\n' "$*" | sed -e "s#$WORK#\$WORK#g" -e "s#$SS_PASSWORD#\$PASSWORD#g" >>"$CMDS"
}
record_file() {   # record_file PATH
    { echo "--- $(basename "$1")"; sed -e "s#$WORK#\$WORK#g" -e "s#$WSTAN_KEY#\$KEY#g" "$1"; echo "---"; } >>"$CMDS"
}

setup_direct() {
    SOCKS_PORT=""
    CHAIN_PIDS=""
    record_cmd "curl -o /dev/null http://$ORIGIN/bulk   # no proxy"
}

setup_ss() {
    if ! command -v ss-server >/dev/null 2>&1 || ! command -v ss-local >/dev/null 2>&1; then
        na "shadowsocks-libev (ss-server, ss-local) is not installed"; return 1
    fi
    read -r sp lp <<<"$(free_ports 2)"
    local d="$WORK/$PHASE/ss"; mkdir -p "$d"
    set -- ss-server -s 127.0.0.1 -p "$sp" -k "$SS_PASSWORD" -m aes-128-gcm -t 600 -n "$NOFILE"
    start ss-server "$d/ss-server.log" "$@"; local p1=$LAST_PID
    record_cmd "$*"
    set -- ss-local -s 127.0.0.1 -p "$sp" -b 127.0.0.1 -l "$lp" -k "$SS_PASSWORD" -m aes-128-gcm -t 600 -n "$NOFILE"
    start ss-local "$d/ss-local.log" "$@"; local p2=$LAST_PID
    record_cmd "$*"
    CHAIN_PIDS="$p1 $p2"
    SOCKS_PORT=$lp
    if ! wait_listen "$sp" "$p1" || ! wait_listen "$lp" "$p2"; then
        na "ss-server/ss-local did not start: $(tail -3 "$d"/*.log | tr '\n' ' ')"; return 1
    fi
}

setup_microsocks() {
    command -v microsocks >/dev/null 2>&1 || { na "microsocks is not installed"; return 1; }
    read -r lp <<<"$(free_ports 1)"
    local d="$WORK/$PHASE/microsocks"; mkdir -p "$d"
    set -- microsocks -i 127.0.0.1 -p "$lp"
    # it logs every connection and has no quiet option: that output goes nowhere
    start microsocks /dev/null "$@"
    record_cmd "$* >/dev/null 2>&1"
    CHAIN_PIDS=$LAST_PID
    SOCKS_PORT=$lp
    wait_listen "$lp" "$LAST_PID" || { na "microsocks did not start (pid $LAST_PID, port $lp)"; return 1; }
}

# tunneld_common DIR: the parts every bench config shares
tunneld_common() {
    cat <<EOF
version: 1
log:
  level: warn
  file: "-"
control:
  socket: "$1/control.sock"
state_dir: "$1/state"
limits:
  max_connections: 100000
  max_handshakes: 100000
  handshake_memory: 1GiB
  idle_timeout: 10m
  drain_timeout: 0
EOF
}

# start_tunneld NAME DIR CONFIG PORT
start_tunneld() {
    mkdir -p "$2/state"
    if ! "$TUNNELD" --check-config "$3" >"$2/check.log" 2>&1; then
        na "tunneld rejected $(basename "$3"): $(tr '\n' ' ' <"$2/check.log")"; return 1
    fi
    set -- "$1" "$2" "$3" "$4"
    start "$1" "$2/$1.log" "$TUNNELD" --config "$3"
    CHAIN_PIDS="$CHAIN_PIDS $LAST_PID"
    record_cmd "tunneld --config $3"
    record_file "$3"
    wait_listen "$4" "$LAST_PID" || { na "$1 did not start: $(tail -5 "$2/$1.log" | tr '\n' ' ')"; return 1; }
}

client_config() {   # client_config DIR PORT  (the tunnel section follows)
    tunneld_common "$1"
    cat <<EOF
listeners:
  - name: socks
    type: socks5
    listen: 127.0.0.1:$2
    route: tun
EOF
}

setup_wstan() {   # setup_wstan ws|wss
    local mode=$1 d="$WORK/$PHASE/wstan-$1" c="$WORK/wss-cert" sp lp
    mkdir -p "$d"
    read -r sp lp <<<"$(free_ports 2)"
    CHAIN_PIDS=""
    local tls_srv="" tls_cli="" scheme=ws
    if [ "$mode" = wss ]; then
        scheme=wss
        mkdir -p "$c"
        if [ ! -s "$c/cert.pem" ] && ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
                -nodes -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
                -keyout "$c/key.pem" -out "$c/cert.pem" >"$c/openssl.log" 2>&1; then
            na "openssl could not make a certificate: $(tail -2 "$c/openssl.log")"; return 1
        fi
        record_cmd "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout $c/key.pem -out $c/cert.pem"
        tls_srv=$(printf '    tls:\n      cert: "%s"\n      key: "%s"\n' "$c/cert.pem" "$c/key.pem")
        tls_cli=$(printf '    tls:\n      ca: "%s"\n      sni: localhost\n' "$c/cert.pem")
    fi
    {
        tunneld_common "$d/server"
        cat <<EOF
servers:
  - name: wstan-in
    protocol: wstan
    listen: 127.0.0.1:$sp
    keys: ["$WSTAN_KEY"]
    deny: []
EOF
        [ -z "$tls_srv" ] || printf '%s\n' "$tls_srv"
    } >"$d/server.yaml"
    {
        client_config "$d/client" "$lp"
        cat <<EOF
tunnels:
  - name: tun
    protocol: wstan
    url: $scheme://127.0.0.1:$sp/
    key: "$WSTAN_KEY"
EOF
        [ -z "$tls_cli" ] || printf '%s\n' "$tls_cli"
    } >"$d/client.yaml"
    mkdir -p "$d/server" "$d/client"
    start_tunneld tunneld-server "$d/server" "$d/server.yaml" "$sp" || return 1
    start_tunneld tunneld-client "$d/client" "$d/client.yaml" "$lp" || return 1
    SOCKS_PORT=$lp
}

JP_KEYS_DONE=0
setup_jproxy() {
    local d="$WORK/$PHASE/jproxy" k="$WORK/jproxy-keys" sp lp
    mkdir -p "$d/server" "$d/client" "$k"
    if [ "$JP_KEYS_DONE" -eq 0 ]; then
        if ! "$TUNNELCTL" jproxy-keygen --user bench --key-out "$k/key.dat" --users-dir "$k/users" \
                >"$k/keygen.log" 2>&1; then
            na "tunnelctl jproxy-keygen failed: $(tail -2 "$k/keygen.log")"; return 1
        fi
        JP_KEYS_DONE=1
    fi
    record_cmd "tunnelctl jproxy-keygen --user bench --key-out $k/key.dat --users-dir $k/users"
    read -r sp lp <<<"$(free_ports 2)"
    CHAIN_PIDS=""
    {
        tunneld_common "$d/server"
        cat <<EOF
servers:
  - name: jproxy-in
    protocol: jproxy
    listen: 127.0.0.1:$sp
    users_dir: "$k/users"
    max_streams: 65535
    deny: []
EOF
    } >"$d/server.yaml"
    {
        client_config "$d/client" "$lp"
        cat <<EOF
tunnels:
  - name: tun
    protocol: jproxy
    server: 127.0.0.1:$sp
    key_file: "$k/key.dat"
    max_streams: 65535
EOF
    } >"$d/client.yaml"
    start_tunneld tunneld-server "$d/server" "$d/server.yaml" "$sp" || return 1
    start_tunneld tunneld-client "$d/client" "$d/client.yaml" "$lp" || return 1
    SOCKS_PORT=$lp
}

setup_system() {   # setup_system SYSTEM
    case "$1" in
        direct) setup_direct ;;
        ss) setup_ss ;;
        microsocks) setup_microsocks ;;
        wstan-ws) setup_wstan ws ;;
        wstan-wss) setup_wstan wss ;;
        jproxy) setup_jproxy ;;
    esac
}

# curl through the current chain: fetch PATH [curl options...]
fetch() {
    local path=$1; shift
    if [ -n "$SOCKS_PORT" ]; then
        curl -sS --max-time 120 --socks5-hostname "127.0.0.1:$SOCKS_PORT" "$@" "http://$ORIGIN$path"
    else
        curl -sS --max-time 120 "$@" "http://$ORIGIN$path"
    fi
}

verify_chain() {
    local got=""
    for _ in 1 2 3; do   # a tunnel may still be connecting: three tries, 10 s each at most
        got=$(fetch /1k --max-time 10 -o /dev/null -w '%{size_download}' 2>"$RAW/verify.err" || true)
        [ "$got" = 1024 ] && break
        sleep 0.5
    done
    if [ "$got" != 1024 ]; then
        na "a GET /1k through the chain failed (got '$got' bytes: $(tr '\n' ' ' <"$RAW/verify.err"))"
        return 1
    fi
}

# --------------------------------------------------------------------------
# The measures

# record_load CMD...: the load commands, as run (paths shortened), for the docs
record_load() {
    printf '%s\n' "$*" | sed -e "s#$BUILD/#build/bench/#g" -e "s#$WORK#\$WORK#g" >>"$RAW/load.txt"
}

measure_bulk() {   # measure_bulk RUN: one download, appended to $RAW/bulk.txt
    local i=$1 out speed size c0 c1
    if [ "$i" -eq 1 ]; then
        if [ -n "$SOCKS_PORT" ]; then
            record_load "curl -sS --max-time 120 --socks5-hostname 127.0.0.1:$SOCKS_PORT -o /dev/null -w '%{speed_download} %{size_download}' http://$ORIGIN/bulk   # x $BULK_RUNS, best"
        else
            record_load "curl -sS --max-time 120 -o /dev/null -w '%{speed_download} %{size_download}' http://$ORIGIN/bulk   # x $BULK_RUNS, best"
        fi
    fi
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $CHAIN_PIDS)
    out=$(fetch /bulk -o /dev/null -w '%{speed_download} %{size_download}' 2>>"$RAW/bulk.err" || echo "0 0")
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $CHAIN_PIDS)
    read -r speed size <<<"$out"
    if [ "$size" != "$BULK_BYTES" ]; then
        log "  $SYS bulk run $i: incomplete ($size of $BULK_BYTES bytes)"
        speed=0
    fi
    printf '%s %s %s\n' "$speed" "$size" "$((c1 - c0))" >>"$RAW/bulk.txt"
    log "  $SYS bulk run $i: $(awk -v s="$speed" 'BEGIN {printf "%.1f MB/s", s / 1e6}')"
}

measure_rps() {
    local c0 c1
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $CHAIN_PIDS)
    record_load "$LOADGEN" rps --socks "127.0.0.1:$SOCKS_PORT" --target "$ORIGIN" --path /1k \
        --concurrency "$RPS_CONCURRENCY" --warmup "$RPS_WARMUP" --duration "$RPS_DURATION" --timeout 10
    timeout $((RPS_WARMUP + RPS_DURATION + 30)) "$LOADGEN" rps --socks "127.0.0.1:$SOCKS_PORT" --target "$ORIGIN" \
        --path /1k --concurrency "$RPS_CONCURRENCY" --warmup "$RPS_WARMUP" --duration "$RPS_DURATION" \
        --timeout 10 >"$RAW/rps.json" 2>"$RAW/rps.err" || log "  rps: loadgen failed: $(tail -2 "$RAW/rps.err")"
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $CHAIN_PIDS)
    echo "$((c1 - c0))" >"$RAW/rps_cpu_ticks.txt"
    log "  $SYS rps: $(cat "$RAW/rps.json" 2>/dev/null)"
}

measure_hold() {
    local last=${HOLD_STEPS##*,} echo_pid echo_port pids
    start loadgen-echo "$RAW/echo.err" "$LOADGEN" echo --listen 127.0.0.1:0 --max-conns $((last + 2000)) --max-time 900
    echo_pid=$LAST_PID
    # the echo server prints its port on its first line (to stdout, merged in the log)
    for _ in $(seq 1 50); do
        echo_port=$(sed -n 's/.*"mode":"echo","port":\([0-9]*\).*/\1/p' "$RAW/echo.err" | head -1)
        [ -n "$echo_port" ] && break
        sleep 0.1
    done
    if [ -z "$echo_port" ]; then
        log "  hold: the echo server did not start"
        kill_pid "$echo_pid"
        return 0
    fi
    pids=$(echo "$CHAIN_PIDS" | xargs | tr ' ' ',')
    record_load "$LOADGEN" echo --listen 127.0.0.1:0 --max-conns $((last + 2000)) --max-time 900 "  # prints its port"
    record_load "$LOADGEN" hold --socks "127.0.0.1:$SOCKS_PORT" --target "127.0.0.1:$echo_port" \
        --steps "$HOLD_STEPS" --parallel "$HOLD_PARALLEL" --timeout "$HOLD_TIMEOUT" --settle "$HOLD_SETTLE" \
        --step-time "$HOLD_STEP_TIME" --max-errors "$HOLD_MAX_ERRORS" --pids "PIDS_OF_THE_CHAIN" --max-time 540
    timeout 600 "$LOADGEN" hold --socks "127.0.0.1:$SOCKS_PORT" --target "127.0.0.1:$echo_port" \
        --steps "$HOLD_STEPS" --parallel "$HOLD_PARALLEL" --timeout "$HOLD_TIMEOUT" --settle "$HOLD_SETTLE" \
        --step-time "$HOLD_STEP_TIME" --max-errors "$HOLD_MAX_ERRORS" --pids "$pids" --max-time 540 \
        >"$RAW/hold.json" 2>"$RAW/hold.err" || log "  hold: loadgen failed: $(tail -2 "$RAW/hold.err")"
    kill_pid "$echo_pid"
    log "  $SYS hold: $(cat "$RAW/hold.json" 2>/dev/null)"
}

# --------------------------------------------------------------------------
# Run

# The bulk and rps measures run with every chain started at once (idle
# chains cost nothing), in rounds across the systems, so that a change in
# the machine's load during the run spreads over all of them.  Memory is
# measured afterwards on a fresh chain per system, one at a time.

declare -A SYS_PIDS SYS_PORT
OK_SYSTEMS=""

use_system() {   # use_system SYS: point the measures at this system's chain
    SYS=$1
    RAW="$OUT/raw/$SYS"
    CHAIN_PIDS=${SYS_PIDS[$SYS]:-}
    SOCKS_PORT=${SYS_PORT[$SYS]:-}
}

note_died() {
    local p
    for p in $CHAIN_PIDS; do
        kill -0 "$p" 2>/dev/null || echo "process $p ($1) exited during the run" >>"$RAW/died.txt"
    done
}

PHASE=perf
for sys in $SYSTEMS; do
    use_system "$sys"
    mkdir -p "$RAW"
    CMDS="$RAW/commands.txt"
    STATUS_FILE="$RAW/status.txt"
    : >"$CMDS"
    : >"$RAW/bulk.txt"
    : >"$RAW/load.txt"
    log "== start $sys"
    SOCKS_PORT=""
    CHAIN_PIDS=""
    if setup_system "$sys" && verify_chain; then
        printf 'ok\t\n' >"$STATUS_FILE"
        OK_SYSTEMS="$OK_SYSTEMS $sys"
        SYS_PIDS[$sys]=$CHAIN_PIDS
        SYS_PORT[$sys]=$SOCKS_PORT
    else
        stop_chain
    fi
done

log "== bulk: $BULK_RUNS rounds of one $BULK_MIB MiB download per system"
for i in $(seq 1 "$BULK_RUNS"); do
    for sys in $OK_SYSTEMS; do
        use_system "$sys"
        measure_bulk "$i"
    done
done

log "== rps"
for sys in $OK_SYSTEMS; do
    [ "$sys" != direct ] || continue
    use_system "$sys"
    measure_rps
done

for sys in $OK_SYSTEMS; do
    use_system "$sys"
    note_died "bulk/rps"
    stop_chain
done

log "== memory (a fresh chain per system)"
PHASE=hold
CMDS=/dev/null
for sys in $OK_SYSTEMS; do
    [ "$sys" != direct ] || continue
    use_system "$sys"
    STATUS_FILE="$RAW/hold_status.txt"
    CHAIN_PIDS=""
    log "  $sys"
    if setup_system "$sys" && verify_chain; then
        measure_hold
        note_died "hold"
    else
        log "  $sys hold: could not start the chain again"
    fi
    stop_chain
done

echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "elapsed_s: $(($(date +%s) - t_start))" >>"$OUT/machine.txt"

report_args=(--results "$OUT" --note "$NOTE")
if [ "$DOCS" = yes ]; then
    report_args+=(--docs "$root/docs")
fi
python3 "$root/bench/report.py" "${report_args[@]}"
log "done in $(($(date +%s) - t_start)) s; results in $OUT"
