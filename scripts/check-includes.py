#!/usr/bin/env python3
"""The include graph must show the design (docs/architecture.md):

* no arrow from common/ to daemon/ or ctl/ (libtunnel_common stands alone);
* no arrow from daemon/core/ (or daemon/front/) to a protocol folder
  (daemon/wstan/, daemon/jproxy/), and none between the protocol folders:
  the core reaches protocols only through the kind tables;
* no cycle between folders: the graph of folders is a DAG.

Includes are resolved the way the compiler does with our include roots:
the including file's own folder first, then common/, daemon/ and ctl/.
System headers (<...>) and headers that resolve to no project file are not
part of the graph.  Exits 1 and prints every violation."""

import os
import re
import sys

ROOTS = ("common", "daemon", "ctl")
PROTOCOLS = ("daemon/wstan", "daemon/jproxy")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def project_files(top):
    for root in ROOTS:
        for dirpath, _, files in os.walk(os.path.join(top, root)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, f), top)


def resolve(top, src, inc):
    cands = [os.path.join(os.path.dirname(src), inc)] + [os.path.join(r, inc) for r in ROOTS]
    for c in cands:
        c = os.path.normpath(c)
        if os.path.isfile(os.path.join(top, c)):
            return c
    return None


def folder(path):
    return os.path.dirname(path)


def main():
    top = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), ".."))
    edges = {}  # folder -> {folder: (src, inc)}
    problems = []
    for src in sorted(project_files(top)):
        with open(os.path.join(top, src), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for inc in INCLUDE_RE.findall(text):
            dst = resolve(top, src, inc)
            if not dst:
                continue
            a, b = folder(src), folder(dst)
            if a == b:
                continue
            edges.setdefault(a, {}).setdefault(b, (src, inc))
            why = None
            if a.startswith("common") and not b.startswith("common"):
                why = "common/ must not include %s/" % b
            elif (a.startswith(("daemon/core", "daemon/front")) and b.startswith(PROTOCOLS)):
                why = "%s/ must reach protocols through the kind tables, not %s/" % (a, b)
            elif a.startswith(PROTOCOLS) and b.startswith(PROTOCOLS):
                why = "protocol folders must not include each other"
            if why:
                problems.append("%s: #include \"%s\" (%s): %s" % (src, inc, dst, why))
    # Cycles between folders.
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, {})):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):] + [m]
                ex = ["%s -> %s (%s includes \"%s\")" % (x, y, *edges[x][y])
                      for x, y in zip(cyc, cyc[1:])]
                problems.append("include cycle between folders: " + "; ".join(ex))
            elif not state.get(m):
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if not state.get(n):
            visit(n)
    for p in problems:
        print("check-includes: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
