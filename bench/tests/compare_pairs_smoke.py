#!/usr/bin/python3
"""Smoke test of bench/compare's rounds (label bench): --quick --latency --pairs 2 against coturn
(and Pion when bench/compare can build it), the same as an A/A of one ferry binary with
--ferry-b, and --quick --transports --pairs 2 (TCP, TLS and IPv6 client/peer legs, RFC 6062 TCP
peer legs). Checks the exit status and the --json-out shape the lead's scripts read: two rounds
in alternating order, a `median` with p99_ratio keyed by allocation count and ferry_p99_flatness,
and every ratio summarised as median/min/max. Figures are not judged (a busy CI machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402

NAME = "bench_compare_pairs_smoke"
QUICK_LATENCY_ALLOCATIONS = ["10", "100"]  # bench/compare's QUICK plan


def compare(args, json_out: Path, *extra: str, part: str = "--latency") -> tuple[harness.ClientResult, dict | None]:
    cmd = ["/usr/bin/python3", str(ROOT / "bench" / "compare"), "--quick", part, "--pairs", "2",
           "--no-install", "--ferry", args.ferry, "--loadgen", args.loadgen, "--forwarder", args.forwarder,
           "--json-out", str(json_out), *extra]
    r = harness.run_client(cmd, timeout=240, line_buffered=False)
    if r.returncode != 0 or r.timed_out:
        print(r.output[-4000:], file=sys.stderr)
    try:
        return r, json.loads(json_out.read_text())
    except (OSError, ValueError):
        return r, None


def positive(v) -> bool:
    return isinstance(v, (int, float)) and v > 0


def check_rounds(d: dict, columns: list[str], what: str, latency: bool = True) -> None:
    pairs = d["pairs"]
    harness.check(f"{what}: two rounds, the second in reverse order",
                  len(pairs) == 2 and pairs[0]["order"] == columns and pairs[1]["order"] == columns[::-1],
                  json.dumps([p["order"] for p in pairs]))
    harness.check(f"{what}: each round records the load average", all(p["loadavg_before"] for p in pairs))
    if latency:
        ok = all(sorted(p[c]["latency"]) == sorted(QUICK_LATENCY_ALLOCATIONS) for p in pairs for c in columns)
        harness.check(f"{what}: latency runs at 10 and 100 allocations for every server", ok)
    rows = d["summary"]
    ratio = d["ratios"][0]
    ok = bool(rows) and all(e[ratio] is None or
                            (e[ratio]["min"] <= e[ratio]["median"] <= e[ratio]["max"] and len(e[ratio]["values"]) == 2)
                            for e in rows.values())
    harness.check(f"{what}: every row's {ratio} summarised as median within min-max of two rounds", ok,
                  json.dumps(rows)[:2000])


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferry", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--forwarder", required=True)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ferry-compare-pairs-") as tmp:
        r, d = compare(args, Path(tmp) / "pairs.json")
        harness.check("--quick --latency --pairs 2 exits 0 and writes --json-out", r.returncode == 0 and d is not None,
                      r.output[-2000:])
        if d is not None:
            columns = list(d["columns"])
            harness.check("columns: ferry, coturn (and pion when built)",
                          columns[:2] == ["ferry", "coturn"] and columns[2:] in ([], ["pion"]), str(columns))
            if columns[2:] == []:
                harness.log(f"pion: {d['pion']}")
            check_rounds(d, columns, "ferry/coturn")
            m = d["median"]
            harness.check("median.p99_ratio (ferry/coturn) keyed by allocation count",
                          sorted(m["p99_ratio"]) == sorted(QUICK_LATENCY_ALLOCATIONS)
                          and all(positive(v) for v in m["p99_ratio"].values()), json.dumps(m))
            harness.check("median.ferry_p99_flatness", positive(m["ferry_p99_flatness"]), json.dumps(m))
            harness.check("the machine's floor (bench/forwarder) in every round, and each server's p99 over it",
                          all("floor" in p for p in d["pairs"]) and positive(m["floor_p99_us"])
                          and sorted(m["p99_over_floor"]) == sorted(columns)
                          and all(positive(v) for c in columns for v in m["p99_over_floor"][c].values()),
                          json.dumps(m))
            harness.check("the table has the ratio column and a p99 row per allocation count",
                          "ferry/coturn" in r.output and r.output.count("latency p99") == 2, r.output[-3000:])

        r, d = compare(args, Path(tmp) / "ab.json", "--ferry-b", args.ferry)
        harness.check("--ferry-b (A/A, one binary twice) exits 0 and writes --json-out",
                      r.returncode == 0 and d is not None, r.output[-2000:])
        if d is not None:
            harness.check("A/B: columns A and B, ratio B/A", list(d["columns"]) == ["A", "B"] and d["ratios"] == ["B/A"],
                          json.dumps(d["columns"]))
            check_rounds(d, ["A", "B"], "A/B")
            m = d["median"]
            harness.check("A/B: median.p99_ratio (B/A) and B's flatness",
                          sorted(m["p99_ratio"]) == sorted(QUICK_LATENCY_ALLOCATIONS)
                          and all(positive(v) for v in m["p99_ratio"].values())
                          and m["ferry_p99_flatness"] == m["p99_flatness"]["B"], json.dumps(m))

        r, d = compare(args, Path(tmp) / "transports.json", part="--transports")
        harness.check("--quick --transports --pairs 2 exits 0 and writes --json-out", r.returncode == 0 and d is not None,
                      r.output[-2000:])
        if d is not None:
            legs = ["udp4", "tcp4", "tls4", "udp6", "tcp6", "tcp4-rfc6062"]
            columns = list(d["columns"])
            harness.check("transports: ferry, coturn (and pion when built)",
                          columns[:2] == ["ferry", "coturn"] and columns[2:] in ([], ["pion"]), str(columns))
            check_rounds(d, columns, "transports", latency=False)
            # Pion 2.1 relays over UDP/IPv4 only, and bench/pion has no TLS: its udp4 and tcp4 legs.
            ok = all(p[c]["legs"][leg][k]["transport"] == leg[:3] and p[c]["legs"][leg][k]["family"] == f"ipv{leg[3]}"
                     and p[c]["legs"][leg][k]["peer_transport"] == ("tcp" if leg.endswith("-rfc6062") else "udp")
                     and p[c]["legs"][leg][k]["received"] > 0
                     for p in d["pairs"] for c in columns for leg in legs if c != "pion" or leg in ("udp4", "tcp4")
                     for k in ("closed", "latency"))
            harness.check("transports: every leg relayed over its client and peer transports and family, every server",
                          ok)
            m = d["median"]
            harness.check("transports: median pps/cpu/p99 ratios keyed by leg",
                          all(sorted(m[k]) == sorted(legs) and all(positive(v) for v in m[k].values())
                              for k in ("pps_ratio", "cpu_ratio", "p99_ratio")), json.dumps(m))


def main() -> int:
    return harness.run_test(NAME, run)


if __name__ == "__main__":
    sys.exit(main())
