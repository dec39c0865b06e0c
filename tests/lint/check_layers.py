#!/usr/bin/env python3
"""Fails when a source file includes a layer above its own (docs/ARCHITECTURE.md).

Each module may include only the modules it stands on (DIRECT below, closed transitively).
`--dot` prints the module graph as Graphviz instead, from the includes actually present.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# module -> the modules directly below it. turn and db stand beside each other: neither may
# include the other. server/ folders stack config <- tls <- net <- relay <- worker <- ops <- app.
DIRECT = {
    "base": [],
    "stun": ["base"],
    "auth": ["stun"],
    "turn": ["auth"],
    "db": ["auth"],
    "client": ["stun"],
    "server/config": ["turn"],
    "server/tls": ["server/config"],
    "server/net": ["server/tls"],
    "server/relay": ["server/net"],
    "server/fastpath": ["server/config"],
    "server/worker": ["server/relay", "server/fastpath", "db"],
    "server/ops": ["server/worker"],
    "server/app": ["server/ops"],
    "tools": ["db", "client"],
    "bench": ["client", "turn"],
    "examples": ["client"],
}


def allowed(module):
    seen, todo = set(), list(DIRECT[module])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(DIRECT[m])
    return seen | {module}


def module_of(path):
    parts = path.split("/")
    if parts[0] == "server" and len(parts) > 2:
        return "server/" + parts[1]
    return parts[0] if parts[0] in DIRECT else None


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def edges():
    for top in sorted({m.split("/")[0] for m in DIRECT}):
        base = os.path.join(ROOT, top)
        if not os.path.isdir(base):
            continue
        for dirpath, _, files in os.walk(base):
            for f in files:
                if not f.endswith((".h", ".cpp")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                src = module_of(rel)
                if src is None:
                    continue
                with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
                    for inc in INCLUDE.findall(fh.read()):
                        dst = module_of(inc)
                        if dst is not None:
                            yield rel, inc, src, dst


def main():
    if "--dot" in sys.argv:
        graph = sorted({(s, d) for _, _, s, d in edges() if s != d})
        print("digraph ferry_layers {\n  rankdir=BT;")
        for s, d in graph:
            print(f'  "{s}" -> "{d}";')
        print("}")
        return 0
    bad = [(rel, inc) for rel, inc, src, dst in edges() if dst not in allowed(src)]
    for rel, inc in bad:
        print(f"{rel}: includes \"{inc}\", a layer that {module_of(rel)} may not use", file=sys.stderr)
    checked = len({rel for rel, *_ in edges()})
    print(f"layers: {checked} files checked, {len(bad)} upward or sideways includes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
