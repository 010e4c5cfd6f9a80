#!/usr/bin/env python3
"""Summarize an `conformance server -o DIR` results folder (stdlib only, any python3).

    conformance-summary.py DIR            -> one JSON object on stdout:
        {"passed": [...], "failed": [...],
         "scenarios": {"<scenario>": {"ok": bool, "failed_checks": ["<check-id>: <message>", ...],
                                      "counts": {"SUCCESS": n, "FAILURE": n, ...}}}}
    conformance-summary.py DIR --baseline -> an --expected-failures YAML (per-check entries
                                             `<scenario>:<check-id>`) for the failures in DIR

The runner writes one folder per scenario, DIR/server-<scenario>-<timestamp>/checks.json, a JSON array of
checks {id, status: SUCCESS|FAILURE|WARNING|INFO|SKIPPED, errorMessage?, ...}. A scenario fails iff one
of its checks has status FAILURE (this is how the runner's own summary counts), or if its folder has no
checks.json (the runner crashed in it: "Failed to run scenario ..."). If a scenario was run
more than once into the same DIR, the newest folder wins.
"""
import json
import os
import re
import sys

DIR_RE = re.compile(r"^(?:server|client|authorization)-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$")


def load(results_dir):
    latest = {}
    for name in os.listdir(results_dir):
        m = DIR_RE.match(name)
        path = os.path.join(results_dir, name, "checks.json")
        if not m or not os.path.isdir(os.path.join(results_dir, name)):
            continue
        scenario, stamp = m.group(1), m.group(2)
        if scenario not in latest or stamp > latest[scenario][0]:
            latest[scenario] = (stamp, path)
    out = {}
    for scenario, (_, path) in sorted(latest.items()):
        if not os.path.isfile(path):
            # The runner crashed in this scenario (it prints "Failed to run scenario ..."): count it as failed.
            out[scenario] = {"ok": False, "failed_checks": ["(no checks.json: the scenario did not complete)"],
                             "counts": {}, "failed_ids": [], "crashed": True}
            continue
        with open(path, encoding="utf-8") as f:
            checks = json.load(f)
        counts, failed = {}, []
        for c in checks:
            st = c.get("status", "?")
            counts[st] = counts.get(st, 0) + 1
            if st == "FAILURE":
                failed.append(f"{c.get('id')}: {(c.get('errorMessage') or '').strip()[:300]}")
        out[scenario] = {"ok": not failed, "failed_checks": failed, "counts": counts,
                         "failed_ids": sorted({c.get("id") for c in checks if c.get("status") == "FAILURE"})}
    return out


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    scenarios = load(argv[0])
    if not scenarios:
        print(f"no checks.json found under {argv[0]}", file=sys.stderr)
        return 1
    if "--baseline" in argv[1:]:
        print("server:")
        for name, s in scenarios.items():
            if s.get("crashed"):
                print(f"  - {name}")
            for cid in s["failed_ids"]:
                print(f"  - {name}:{cid}")
        return 0
    for s in scenarios.values():
        del s["failed_ids"]
    print(json.dumps({
        "passed": [n for n, s in scenarios.items() if s["ok"]],
        "failed": [n for n, s in scenarios.items() if not s["ok"]],
        "scenarios": scenarios,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
