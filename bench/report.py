#!/usr/bin/env python3
"""Report step of bench/run.sh (Python 3 standard library only).

Reads the raw results a run left in DIR (DIR/machine.txt, DIR/raw/SYSTEM/*),
writes DIR/results.json, DIR/results.csv, DIR/results.md and DIR/chart.png
(gnuplot), prints the Markdown table, and with --docs DOCDIR also writes
DOCDIR/performance.md and DOCDIR/performance.png.

    python3 bench/report.py --results bench/results [--docs docs] [--note TEXT]
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys

SYSTEMS = [
    ("direct", "direct (no proxy)"),
    ("ss", "shadowsocks-libev aes-128-gcm"),
    ("microsocks", "microsocks"),
    ("wstan-ws", "tunneld wstan ws"),
    ("wstan-wss", "tunneld wstan wss"),
    ("jproxy", "tunneld jProxy"),
]
LABEL = dict(SYSTEMS)
BASE = "ss"

# Descriptors one held connection costs in each chain process (for the note
# on runs whose RLIMIT_NOFILE is too small for the largest step).
FDS_PER_CONN = {
    "ss": ("ss-server", 2, "ss-local", 2),
    "microsocks": ("microsocks", 2),
    "wstan-ws": ("tunneld server", 2, "tunneld client", 2),
    "wstan-wss": ("tunneld server", 2, "tunneld client", 2),
    "jproxy": ("tunneld server", 1, "tunneld client", 1),
}


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def read_json(path):
    text = read(path).strip()
    if not text:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def machine_facts(results):
    facts = {}
    for line in read(os.path.join(results, "machine.txt")).splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            facts[k.strip()] = v.strip()
    return facts


def collect(results):
    clk = os.sysconf("SC_CLK_TCK")
    out = []
    for sysname, label in SYSTEMS:
        raw = os.path.join(results, "raw", sysname)
        if not os.path.isdir(raw):
            continue
        status, _, reason = read(os.path.join(raw, "status.txt"), "n/a\tnot run").strip().partition("\t")
        r = {"system": sysname, "label": label, "status": status or "n/a", "reason": reason.strip(),
             "commands": read(os.path.join(raw, "commands.txt")).strip(),
             "load": read(os.path.join(raw, "load.txt")).strip()}
        runs = []
        for line in read(os.path.join(raw, "bulk.txt")).splitlines():
            parts = line.split()
            if len(parts) >= 2:
                runs.append({"bytes_per_s": float(parts[0]), "bytes": int(float(parts[1])),
                             "chain_cpu_s": int(parts[2]) / clk if len(parts) > 2 else None})
        if runs:
            speeds = [x["bytes_per_s"] / 1e6 for x in runs]
            r["bulk"] = {"runs": runs, "best_mbs": max(speeds), "median_mbs": statistics.median(speeds)}
        rps = read_json(os.path.join(raw, "rps.json"))
        if rps:
            ticks = read(os.path.join(raw, "rps_cpu_ticks.txt")).strip()
            if ticks.isdigit():
                total = rps.get("warmup_s", 0) + rps.get("duration_s", 0)
                rps["chain_cpu_s"] = int(ticks) / clk
                rps["chain_cpu_pct"] = 100.0 * int(ticks) / clk / total if total else None
            r["rps"] = rps
        hold = read_json(os.path.join(raw, "hold.json"))
        if hold:
            r["hold"] = hold
        hs = read(os.path.join(raw, "hold_status.txt")).strip()
        if hs:
            r["hold_status"] = hs.partition("\t")[2] or hs
        died = read(os.path.join(raw, "died.txt")).strip()
        if died:
            r["died"] = died
        for name in ("rps.err", "hold.err", "bulk.err"):
            t = read(os.path.join(raw, name)).strip()
            if t:
                r.setdefault("stderr", {})[name] = t[-2000:]
        out.append(r)
    return out


# --------------------------------------------------------------------------
# Numbers and formatting

def bulk_best(r):
    b = r.get("bulk")
    return b["best_mbs"] if b and b["best_mbs"] > 0 else None


def rps_of(r):
    x = r.get("rps")
    return x["rps"] if x and x.get("requests", 0) > 0 else None


def p99_of(r):
    x = r.get("rps")
    return x["p99_ms"] if x and x.get("requests", 0) > 0 else None


def hold_steps(r):
    h = r.get("hold")
    return h.get("steps", []) if h else []


def step(r, target):
    for s in hold_steps(r):
        if s["target"] == target:
            return s
    return None


def step_errors(s):
    return s["target"] - s["held"] if s else None


def all_targets(rows):
    ts = set()
    for r in rows:
        for s in hold_steps(r):
            ts.add(s["target"])
    return sorted(ts)


def fmt(v, digits=1, na="n/a"):
    if v is None:
        return na
    if isinstance(v, int):
        return str(v)
    return "%.*f" % (digits, v)


def ratio(v, base):
    if v is None or base is None or base == 0:
        return None
    return v / base


def fmt_ratio(v):
    return "n/a" if v is None else "%.2f×" % v


def find(rows, sysname):
    for r in rows:
        if r["system"] == sysname:
            return r
    return None


def md_table(rows, facts=None):
    base = find(rows, BASE)
    b_bulk = bulk_best(base) if base else None
    b_rps = rps_of(base) if base else None
    targets = all_targets(rows)
    head = ["system", "bulk MB/s (best)", "bulk MB/s (median)", "bulk × ss", "rps", "rps × ss",
            "p50 ms", "p99 ms", "rps errors"]
    for t in targets:
        head += ["KiB/conn @%d" % t, "held @%d" % t]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    notes = []
    for r in rows:
        if r["status"] != "ok":
            cells = [r["label"]] + ["n/a"] * (len(head) - 1)
            lines.append("| " + " | ".join(cells) + " |")
            notes.append("%s: n/a — %s" % (r["label"], r["reason"] or "not available"))
            continue
        b = r.get("bulk")
        x = r.get("rps")
        cells = [r["label"], fmt(bulk_best(r)), fmt(b["median_mbs"] if b else None),
                 fmt_ratio(ratio(bulk_best(r), b_bulk))]
        if r["system"] == "direct":
            cells += ["—"] * 5
        else:
            cells += [fmt(rps_of(r), 0), fmt_ratio(ratio(rps_of(r), b_rps)),
                      fmt(x["p50_ms"], 2) if x else "n/a", fmt(x["p99_ms"], 2) if x else "n/a",
                      str(x["errors"]) if x else "n/a"]
        for t in targets:
            s = step(r, t)
            if r["system"] == "direct":
                cells += ["—", "—"]
            elif s is None:
                cells += ["n/a", "n/a"]
            else:
                per = s["per_conn_kib"] if s["per_conn_kib"] >= 0 else None
                cells += [fmt(per, 1), "%d/%d" % (s["held"], s["target"])]
        lines.append("| " + " | ".join(cells) + " |")
        if r.get("hold_status"):
            notes.append("%s: memory not measured — %s" % (r["label"], r["hold_status"]))
        if r.get("died"):
            notes.append("%s: %s" % (r["label"], r["died"].replace("\n", "; ")))
        if x and x.get("errors"):
            kinds = ", ".join("%s %d" % (k, v) for k, v in x["errors_by_kind"].items() if v)
            notes.append("%s: rps errors: %s" % (r["label"], kinds))
        h = r.get("hold")
        if h:
            kinds = ", ".join("%s %d" % (k, v) for k, v in h["errors_by_kind"].items() if v)
            last = hold_steps(r)[-1] if hold_steps(r) else None
            if kinds or (last and last["dropped"]):
                notes.append("%s: hold errors: %s%s" % (
                    r["label"], kinds or "none",
                    ("; dropped while idle %d" % last["dropped"]) if last and last["dropped"] else ""))
    nofile = int((facts or {}).get("nofile", "0") or 0)
    if targets and nofile and nofile < 2 * targets[-1] + 1000:
        short = [r["label"] for r in rows if hold_steps(r) and step_errors(hold_steps(r)[-1])]
        if short:
            notes.append("The connections missing at the %d step (%s) ran into this run's descriptor limit "
                         "(%d): a relay that holds two sockets per connection needs about %d. The chains' "
                         "logs (bench/results/logs/) show the failures at the limit." % (
                             targets[-1], ", ".join(short), nofile, 2 * targets[-1]))
    return "\n".join(lines), notes


def cpu_table(rows):
    lines = ["| system | chain CPU s per bulk run (median) | chain CPU % during rps |",
             "|---|---:|---:|"]
    for r in rows:
        if r["status"] != "ok" or r["system"] == "direct":
            continue
        b = r.get("bulk")
        cpus = [x["chain_cpu_s"] for x in b["runs"] if x.get("chain_cpu_s") is not None] if b else []
        x = r.get("rps") or {}
        lines.append("| %s | %s | %s |" % (r["label"], fmt(statistics.median(cpus) if cpus else None, 2),
                                            fmt(x.get("chain_cpu_pct"), 0)))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Targets

def targets(rows, facts):
    base = find(rows, BASE)
    ws, wss, jp = find(rows, "wstan-ws"), find(rows, "wstan-wss"), find(rows, "jproxy")
    nofile = int(facts.get("nofile", "0") or 0)
    out = []

    def add(name, value_text, ok, note=""):
        out.append((name, value_text, "n/a" if ok is None else ("PASS" if ok else "FAIL"), note))

    def bulk_target(r, need, name):
        v = ratio(bulk_best(r), bulk_best(base)) if r and base else None
        add(name, fmt_ratio(v), None if v is None else v >= need)

    bulk_target(ws, 2.5, "wstan ws bulk ≥ 2.5× shadowsocks-libev")
    bulk_target(wss, 1.5, "wstan wss bulk ≥ 1.5× shadowsocks-libev")
    bulk_target(jp, 3.0, "jProxy bulk ≥ 3× shadowsocks-libev")

    def rps_target(r, need, name):
        v = ratio(rps_of(r), rps_of(base)) if r and base else None
        p, pb = (p99_of(r) if r else None), (p99_of(base) if base else None)
        if v is None or p is None or pb is None:
            add(name, "n/a", None)
            return
        add(name, "%s, p99 %.2f ms vs %.2f ms" % (fmt_ratio(v), p, pb), v >= need and p <= pb)

    rps_target(ws, 1.2, "wstan ws rps ≥ 1.2× shadowsocks-libev, p99 no worse")
    rps_target(jp, 1.3, "jProxy rps ≥ 1.3× shadowsocks-libev, p99 no worse")

    def mem_target(r, limit, name):
        steps = hold_steps(r) if r else []
        if not steps:
            add(name, "n/a", None)
            return
        if not any(s["held"] > 0 and s["per_conn_kib"] >= 0 for s in steps):
            add(name, "n/a", None, "no connection was held")
            return
        text = ", ".join("%.1f KiB @%d" % (s["per_conn_kib"], s["held"]) for s in steps
                         if s["held"] > 0 and s["per_conn_kib"] >= 0)
        # judged at scale: the largest step of the run
        last = steps[-1]
        if last["held"] <= 0 or last["per_conn_kib"] < 0:
            add(name, text, None, "the largest step held nothing")
            return
        add(name, text, last["per_conn_kib"] <= limit, "judged at the largest step (%d)" % last["target"])

    mem_target(ws, 16, "≤ 16 KiB RSS per held wstan (ws) connection, whole chain")
    mem_target(jp, 4, "≤ 4 KiB RSS per held jProxy stream, whole chain")

    def hold_target(r, name):
        s = step(r, 10000) if r else None
        if s is None:
            largest = max((x["target"] for x in hold_steps(r)), default=0) if r else 0
            add(name, "not measured" + (" (largest step %d)" % largest if largest else ""), None)
            return
        errs = step_errors(s) + s["dropped"]
        note = ""
        if errs and r["system"] in FDS_PER_CONN and nofile and nofile < 65536:
            need = FDS_PER_CONN[r["system"]]
            per = ", ".join("%s %d" % (need[i], need[i + 1]) for i in range(0, len(need), 2))
            note = ("this run's descriptor limit was %d; descriptors per connection: %s"
                    % (nofile, per))
        add(name, "%d/%d held, %d dropped" % (s["held"], s["target"], s["dropped"]), errs == 0, note)

    hold_target(ws, "10 000 held wstan (ws) connections without errors")
    hold_target(jp, "10 000 held jProxy streams without errors")
    return out


def targets_md(rows, facts):
    lines = ["| target | this run | result | note |", "|---|---|---|---|"]
    for name, val, res, note in targets(rows, facts):
        lines.append("| %s | %s | **%s** | %s |" % (name, val, res, note))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Chart

def chart(rows, results, facts):
    gp = shutil.which("gnuplot")
    png = os.path.join(results, "chart.png")
    if not gp:
        return None, "gnuplot is not installed"
    base = find(rows, BASE)
    b_bulk = bulk_best(base) if base else None
    b_rps = rps_of(base) if base else None
    mib_text = "%s MiB" % facts.get("bulk_mib", "?")
    runs_text = facts.get("bulk_runs", "?")
    dat = os.path.join(results, "chart.dat")
    direct = find(rows, "direct")
    direct_text = ""
    if direct and bulk_best(direct):
        direct_text = " (direct, the loopback limit: %.0f MB/s)" % bulk_best(direct)
    with open(dat, "w") as f:
        f.write("# i label bulk_mbs bulk_ratio rps rps_ratio\n")
        i = 0
        for r in rows:
            if r["status"] != "ok" or r["system"] == "direct":
                continue
            i += 1
            bb, rr = bulk_best(r), rps_of(r)
            f.write('%d "%s" %s "%s" %s "%s"\n' % (
                i, r["label"].replace("shadowsocks-libev", "ss-libev").replace(" aes-128-gcm", ""),
                fmt(bb, 1, "NaN"), fmt_ratio(ratio(bb, b_bulk)) if bb and b_bulk else "",
                fmt(rr, 0, "NaN") if r["system"] != "direct" else "NaN",
                fmt_ratio(ratio(rr, b_rps)) if rr and b_rps else ""))
    script = os.path.join(results, "chart.gp")
    with open(script, "w") as f:
        f.write("""set terminal pngcairo size 1200,520 font "DejaVu Sans,10"
set output '%s'
set datafile missing "NaN"
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -25 nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set multiplot layout 1,2 title "tunneld benchmark (127.0.0.1, one run; ratios against shadowsocks-libev)"
set title "bulk: one %s download through SOCKS5, best of %s (MB/s)\\n%s"
plot '%s' using 1:3:xtic(2) with boxes lc rgb "#4878a8" notitle, \\
     '' using 1:3:4 with labels offset 0,0.8 notitle
set title "rps: new connection + SOCKS5 + GET /1k, 32 workers (requests/s)"
plot '%s' using 1:5:xtic(2) with boxes lc rgb "#e07b39" notitle, \\
     '' using 1:5:6 with labels offset 0,0.8 notitle
unset multiplot
""" % (png, mib_text, runs_text, direct_text, dat, dat))
    p = subprocess.run([gp, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0 or not os.path.exists(png):
        # pngcairo may be missing: fall back to the libgd png terminal
        with open(script) as f:
            text = f.read().replace('pngcairo size 1200,520 font "DejaVu Sans,10"', "png size 1200,520")
        with open(script, "w") as f:
            f.write(text)
        p = subprocess.run([gp, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0 or not os.path.exists(png):
            return None, "gnuplot failed: " + p.stderr.decode("utf-8", "replace")[-500:]
    return png, ""


# --------------------------------------------------------------------------
# Outputs

def write_csv(rows, results):
    targets_ = all_targets(rows)
    base = find(rows, BASE)
    path = os.path.join(results, "results.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["system", "label", "status", "bulk_best_mbs", "bulk_median_mbs", "bulk_ratio_ss",
                "rps", "rps_ratio_ss", "p50_ms", "p90_ms", "p99_ms", "rps_errors", "rps_chain_cpu_pct"]
        for t in targets_:
            head += ["held_%d" % t, "errors_%d" % t, "dropped_%d" % t, "rss_kib_%d" % t, "kib_per_conn_%d" % t]
        w.writerow(head)
        for r in rows:
            b, x = r.get("bulk"), r.get("rps") or {}
            row = [r["system"], r["label"], r["status"],
                   fmt(bulk_best(r), 2, ""), fmt(b["median_mbs"] if b else None, 2, ""),
                   fmt(ratio(bulk_best(r), bulk_best(base) if base else None), 3, ""),
                   fmt(rps_of(r), 1, ""), fmt(ratio(rps_of(r), rps_of(base) if base else None), 3, ""),
                   x.get("p50_ms", ""), x.get("p90_ms", ""), x.get("p99_ms", ""), x.get("errors", ""),
                   fmt(x.get("chain_cpu_pct"), 1, "")]
            for t in targets_:
                s = step(r, t)
                row += ([s["held"], step_errors(s), s["dropped"], s["rss_kib"], "%.3f" % s["per_conn_kib"]]
                        if s else [""] * 5)
            w.writerow(row)


def machine_md(facts):
    keys = [("nproc", "cores (nproc)"), ("cpu", "CPU"), ("kernel", "kernel"), ("os", "OS"),
            ("memory", "memory"), ("loadavg_start", "load average at start"),
            ("loadavg_end", "load average at end"), ("nofile", "descriptor limit (RLIMIT_NOFILE)"),
            ("tunneld", "tunneld"), ("tunneld_commit", "tunneld commit"), ("nginx", "nginx-light"),
            ("shadowsocks-libev", "shadowsocks-libev"), ("microsocks", "microsocks"), ("curl", "curl"),
            ("openssl", "OpenSSL"), ("libuv", "libuv"), ("date", "date (UTC)"),
            ("elapsed_s", "run time (s, with installs and build)")]
    lines = ["| | |", "|---|---|"]
    for k, name in keys:
        if k in facts:
            lines.append("| %s | %s |" % (name, facts[k]))
    return "\n".join(lines)


def params_text(facts):
    return ("bulk: %s MiB file, %s runs each; rps: %s workers, %s s warm-up, %s s measured; "
            "memory: held-connection steps %s" % (
                facts.get("bulk_mib", "?"), facts.get("bulk_runs", "?"), facts.get("rps_concurrency", "?"),
                facts.get("rps_warmup_s", "?"), facts.get("rps_duration_s", "?"), facts.get("hold_steps", "?")))


def commands_md(rows):
    out = []
    for r in rows:
        if not r["commands"]:
            continue
        out.append("**%s**\n" % r["label"])
        # commands.txt: command lines, and files between "--- NAME" and "---"
        block, in_file, fname = [], False, ""
        for line in r["commands"].splitlines():
            if not in_file and line.startswith("--- "):
                if block:
                    out.append("```sh\n%s\n```\n" % "\n".join(block))
                    block = []
                in_file, fname = True, line[4:]
                continue
            if in_file and line == "---":
                out.append("`%s`:\n\n```yaml\n%s\n```\n" % (fname, "\n".join(block)))
                block, in_file = [], False
                continue
            block.append(line)
        if block:
            out.append("```sh\n%s\n```\n" % "\n".join(block))
        if r.get("load"):
            out.append("The load:\n\n```sh\n%s\n```\n" % r["load"])
    return "\n".join(out)


HOW_TO_RUN = """\
```sh
bench/run.sh                 # full run: every system (under 10 min on 2 cores, installs and
                             # build included); writes bench/results/ and this page
bench/run.sh --quick         # smoke run (~1 min): small sizes, short durations;
                             # results in build/bench-quick/, this page untouched
bench/run.sh --only wstan-ws,ss --out /tmp/bench   # some systems; ratios need ss among them
bench/run.sh --no-install    # skip apt-get (everything already installed)
bench/run.sh --hold-steps 2000,10000 --quick        # a quick run with the full memory steps
```

Systems (`--only` names): `direct`, `ss`, `microsocks`, `wstan-ws`,
`wstan-wss`, `jproxy`. Ratios need `ss` in the same run.

The script installs what it needs (`packaging/deps/install-deps.sh`, then
`nginx-light shadowsocks-libev microsocks gnuplot-nox curl procps ...` with
apt-get, through sudo when not root), builds tunneld in Release
(`cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DTUNNELD_TESTS=OFF`)
and the load generator `bench/loadgen.c` (libuv, outside the main build),
then for each system starts a client and a server on 127.0.0.1 with a
SOCKS5 front and measures:

* **bulk**: one download of a 256 MiB file from the origin through the SOCKS5
  front, `curl --socks5-hostname 127.0.0.1:PORT -o /dev/null -w '%{speed_download}'`,
  best of 3 (MB/s = 10^6 bytes/s; the median of the 3 is shown too);
* **rps**: `loadgen rps`: 32 concurrent workers, each request a new TCP
  connection to the SOCKS5 front, SOCKS5 CONNECT to the origin, `GET /1k`
  (HTTP/1.1, `Connection: close`), the whole response read, close; 2 s
  warm-up, then 10 s measured; requests/s, p50 and p99 latency (from
  connect to the last byte), errors;
* **memory**: on a freshly started chain, `loadgen hold` opens 2000, then
  10 000 connections through the SOCKS5 front to an echo server
  (`loadgen echo`), checks each end to end with a 4-byte ping, and leaves
  them idle; after each step (and 2 s to settle) it sums VmRSS of every
  process of the chain from `/proc`: (RSS with N held − RSS before) / N.

The origin is Debian's nginx run as an unprivileged process (`nobody`) on
127.0.0.1 and a free port, serving the two files from tmpfs (`/dev/shm`),
access log off. Every process gets the highest descriptor limit the
script can set (65536 where allowed). Everything binds to 127.0.0.1, every
wait is bounded, and everything the script started is killed when it exits.
Raw numbers are in `bench/results/` (`results.json`, `results.csv`,
`results.md`, `chart.png`, `raw/SYSTEM/*`, the daemons' logs in `logs/`).
A system that cannot be installed or started is shown as n/a, with the
reason, and the run goes on.

Run order: every chain is started first; the bulk downloads run in rounds
(one download per system per round), then the rps runs one system after
the other, so a change in the machine's load during the run spreads over
all systems; memory is measured last, on a fresh chain per system.

Two things to know about the machine:

* **Descriptors.** 10 000 held connections need about 20 000 descriptors in
  a relay that holds two sockets per connection (ss-local, ss-server,
  microsocks, both wstan daemons; the jProxy daemons hold one per stream,
  plus the link). The script raises `ulimit -n` to 65536;
  where it cannot (no `CAP_SYS_RESOURCE`, a lower hard limit) it uses the
  hard limit, says so, and the last few connections of the 10 000 step fail
  at the limit. The table shows it (`held @10000`), and the targets name
  the limit in their note.
* **Installed services.** On a machine where systemd runs, installing
  `shadowsocks-libev` (and `nginx-light`) also enables and starts the
  package's own system service. The benchmark never uses them; it starts
  its own processes on free ports (`systemctl disable --now
  shadowsocks-libev` if you do not want that one).
"""


def profiles_md():
    """The hand-written profiles (bench/profiles.md: where the time and the
    memory go, before and after each change), kept apart from the computed
    tables so that a new run does not overwrite them."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles.md")
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    if not text:
        return ("_To be filled in_: where tunneld spends its time and memory in each "
                "measure (bench/profiles.md).\n")
    return "<!-- profiles: from bench/profiles.md -->\n" + text + "\n"


def write_docs(rows, facts, docdir, png, note):
    table, notes = md_table(rows, facts)
    img = ""
    if png:
        shutil.copyfile(png, os.path.join(docdir, "performance.png"))
        img = "![bulk MB/s and rps per system](performance.png)\n"
    quick = facts.get("quick") == "1"
    parts = ["# Performance", "",
             "tunneld against the proxies users would pick instead, side by side in one run "
             "on one machine, everything on 127.0.0.1. Ratios are against shadowsocks-libev "
             "(aes-128-gcm) **from the same run**; numbers from different runs or machines "
             "are not comparable. These numbers live here, never in timed tests.", ""]
    if note:
        parts += ["> " + note, ""]
    if quick:
        parts += ["> This page was written from a `--quick` run (small sizes, short "
                  "durations): smoke numbers only.", ""]
    parts += ["## How to run", "", HOW_TO_RUN,
              "## Machine", "", machine_md(facts), "",
              "Parameters of this run: " + params_text(facts) + ".", "",
              "## Results", "", table, ""]
    if notes:
        parts += ["Notes:", ""] + ["* " + n for n in notes] + [""]
    parts += ["`KiB/conn @N`: (sum of VmRSS of the chain's processes with N connections "
              "held − before) / N held. `held @N`: connections established and checked end "
              "to end out of N attempted. p50/p99: latency of one rps request, from the "
              "TCP connect to the last byte of the response.", "",
              "CPU used by the chain's processes (utime + stime from `/proc`):", "",
              cpu_table(rows), "", img,
              "## Targets", "",
              "<!-- targets: computed by bench/report.py from this run's numbers -->",
              "Targets of the performance work, each checked against this run's numbers "
              "(PASS/FAIL are computed, not edited):", "",
              targets_md(rows, facts), "",
              "## Profiles", "",
              profiles_md(),
              "## Commands used for each system", "",
              "Exactly what the run started (`$WORK` is the run's tmpfs work directory; "
              "the keys and the password are random per run).", "",
              commands_md(rows)]
    with open(os.path.join(docdir, "performance.md"), "w") as f:
        f.write("\n".join(parts).rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--docs")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    facts = machine_facts(a.results)
    rows = collect(a.results)
    if not rows:
        print("report: no results in %s" % a.results, file=sys.stderr)
        return 1
    with open(os.path.join(a.results, "results.json"), "w") as f:
        json.dump({"machine": facts, "systems": rows}, f, indent=1)
    write_csv(rows, a.results)
    table, notes = md_table(rows, facts)
    png, why = chart(rows, a.results, facts)
    md = ["# tunneld benchmark results", "", params_text(facts), "", table, ""]
    if notes:
        md += ["Notes:", ""] + ["* " + n for n in notes] + [""]
    md += ["## Targets", "", targets_md(rows, facts), ""]
    with open(os.path.join(a.results, "results.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    if not png:
        print("report: no chart: %s" % why, file=sys.stderr)
    if a.docs:
        write_docs(rows, facts, a.docs, png, a.note)
        print("report: wrote %s" % os.path.join(a.docs, "performance.md"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
