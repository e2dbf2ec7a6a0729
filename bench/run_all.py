#!/usr/bin/env python3
"""`make bench`: every benchmark of issue #8 against the lab, then one summary table.

Order (the heavy, machine-wide ones first, each alone on the machine):

  1. deploy.py         fresh converge + idempotent re-run on a new, separate lab host
  2. converge the lab with bench/profile.yml (load-generator plumbing only)
  3. call_setup.py     20 softphone calls to 600 through nginx TLS
  4. registrations.py  5000 agents over WSS through nginx, held 120 s
  5. trunk_calls.py    SIPp G.711 calls relayed by Asterisk, stepped up
  6. webrtc_calls.py   concurrent browser <-> trunk calls, PCMU then Opus
  7. pjsip_state.py    reading PJSIP state for 1000 more endpoints
  8. trunk_calls.py --peer loopback, after a converge that makes SIPp in the
     lab host's network namespace the trunk's SIP Server: the same calls over
     loopback, as issue 8's bare-Asterisk figures were measured
  9. converge the lab back without the profile

Each benchmark prints its own figures and writes bench/results/<name>-*.json;
this script reads those files and prints the summary (also written as
bench/results/summary-*.json and .md). A failed benchmark is reported in the
table and makes the exit status non-zero; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, machine  # noqa: E402

PY = sys.executable
BENCH = ROOT / "bench"


# SIPp's UAS port when it shares the lab host's network namespace (Asterisk has 5060).
LOOPBACK_PORT = 5090


def converge(profile: bool, *extra: str) -> dict:
    cmd = [
        str(Path(PY).parent / "ansible-playbook"),
        "-i",
        str(ROOT / "inventories" / "lab"),
        str(ROOT / "playbooks" / "site.yml"),
        "-e",
        f"@{ROOT / '.lab' / 'secrets.yml'}",
    ]
    if profile:
        cmd += ["-e", f"@{BENCH / 'profile.yml'}"]
    cmd += list(extra)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    recap = [line for line in res.stdout.splitlines() if "ok=" in line and "changed=" in line]
    return {
        "ok": res.returncode == 0,
        "seconds": time.monotonic() - t0,
        "recap": recap[-1].strip() if recap else "",
        "tail": res.stdout[-1500:] if res.returncode else "",
    }


def run(name: str, *args: str) -> dict:
    print(f"\n=== {name} {' '.join(args)}", flush=True)
    t0 = time.time()
    res = subprocess.run([PY, str(BENCH / f"{name}.py"), *args], cwd=ROOT)
    files = sorted(p for p in RESULTS.glob(f"{name}-*.json") if p.stat().st_mtime >= t0)
    data = json.loads(files[-1].read_text()) if files else None
    return {"exit": res.returncode, "json": str(files[-1].relative_to(ROOT)) if files else None, "data": data}


def _g(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def fmt(v, spec: str = ".0f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def rows(runs: dict, profile: dict) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, result, goal) rows for the table."""
    out = []
    d = _g(runs, "deploy", "data")
    if d:
        out.append(("deploy", "fresh converge of site.yml", fmt(_g(d, "fresh", "seconds"), ".0f", " s"), "-"))
        reruns = d.get("reruns") or [{}]
        rerun = d.get("rerun_s", reruns[0].get("seconds"))
        changed = d.get("rerun_changed")
        changed = changed[0] if isinstance(changed, list) and len(changed) == 1 else changed
        out.append(
            (
                "deploy",
                "idempotent re-run (changed)",
                f"{fmt(rerun, '.0f', ' s')} (changed={changed})",
                "<= 30 s, changed=0",
            )
        )
    if profile:
        out.append(("deploy", "lab re-converge with 5080 agents", fmt(profile.get("seconds"), ".0f", " s"), "-"))
    d = _g(runs, "call_setup", "data")
    if d:
        out.append(
            (
                "call setup",
                "INVITE -> 200 OK p50 / p95",
                f"{fmt(_g(d, 'setup_ms', 'p50'))} / {fmt(_g(d, 'setup_ms', 'p95'))} ms",
                "p50 <= 100 ms",
            )
        )
        out.append(
            (
                "call setup",
                "200 OK -> first audio p50 / p95",
                f"{fmt(_g(d, 'first_audio_ms', 'p50'))} / {fmt(_g(d, 'first_audio_ms', 'p95'))} ms",
                "p50 <= 100 ms",
            )
        )
    d = _g(runs, "registrations", "data")
    if d:
        cycles = d.get("cycles") or []
        ok = min((c.get("ok", 0) for c in cycles), default=0)
        total = _g(d, "config", "count") or (cycles[0].get("registrations") if cycles else None)
        bursts = [c.get("burst_s") for c in cycles if c.get("burst_s") is not None]
        out.append(
            (
                "registrations",
                "agents held over WSS 120 s (fail)",
                f"{ok}/{total} ({d.get('failures_total')})",
                "5000, 0 failures",
            )
        )
        out.append(("registrations", "burst", fmt(max(bursts) if bursts else None, ".1f", " s"), "<= 30 s"))
        leak = d.get("leak") or {}
        parts = []
        for key, label in (("asterisk_rss", "Asterisk"), ("nginx_rss", "nginx")):
            growth = _g(leak, key, "growth_per_cycle") or []
            if growth:
                parts.append(f"{label} {', '.join(f'{g / 2**20:+.0f}' for g in growth)} MiB")
        verdict = str(_g(leak, "asterisk_rss", "verdict") or "-").split(":")[0]
        out.append(
            (
                "registrations",
                "RSS kept after close, per cycle",
                f"{'; '.join(parts) or '-'} ({verdict})",
                "no leak",
            )
        )
    d = _g(runs, "trunk_calls", "data")
    if d:
        out.append(("trunk calls", "clean concurrent G.711 calls", fmt(d.get("max_clean_concurrent")), ">= 300"))
        out.append(
            (
                "trunk calls",
                "Asterisk CPU per call",
                fmt(d.get("per_call_pct_core_at_max"), ".2f", " % core"),
                "<= 0.41 %",
            )
        )
    d = _g(runs, "trunk_calls_loopback", "data")
    if d:
        out.append(
            (
                "trunk calls, SIPp over loopback",
                "clean concurrent calls; Asterisk CPU per call",
                f"{fmt(d.get('max_clean_concurrent'))}; {fmt(d.get('per_call_pct_core_at_max'), '.2f', ' % core')}",
                ">= 300; <= 0.41 %",
            )
        )
    d = _g(runs, "webrtc_calls", "data")
    if d:
        for phase in d.get("phases") or []:
            codec = phase.get("codec") or phase.get("name")
            goal = "<= 0.6 % (>= 300/host)" if str(codec).upper().startswith("PCMU") else "<= 1.2 % (>= 150/host)"
            out.append(
                (
                    f"WebRTC calls ({codec})",
                    f"{phase.get('calls_established')} calls: CPU/call, 2-core capacity",
                    f"{fmt(phase.get('per_call_pct_core'), '.2f', ' %')}, {fmt(phase.get('capacity_2core'))}",
                    goal,
                )
            )
    d = _g(runs, "pjsip_state", "data")
    if d:
        out.append(
            (
                "PJSIP state",
                f"AMI fetch, {d.get('endpoints')} endpoints",
                fmt((_g(d, "ami_fetch_s", "median") or 0) * 1000, ".0f", " ms"),
                "<= 1 s",
            )
        )
    for name, r in runs.items():
        if r["exit"] != 0:
            out.append((name, "exit status", str(r["exit"]), "0"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", default="", help="comma-separated benchmarks to skip (e.g. deploy,webrtc_calls)")
    ap.add_argument("--keep-profile", action="store_true", help="leave the lab converged with bench/profile.yml")
    ap.add_argument(
        "--table-only", action="store_true", help="run nothing: print the table from the newest bench/results/*.json"
    )
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    runs: dict[str, dict] = {}
    started = time.time()
    if args.table_only:
        for name in ("deploy", "call_setup", "registrations", "trunk_calls", "webrtc_calls", "pjsip_state"):
            files = sorted(p for p in RESULTS.glob(f"{name}-*.json") if p.stem[len(name) + 1 :].isalnum())
            for path in reversed(files):
                data = json.loads(path.read_text())
                key = "trunk_calls_loopback" if data.get("peer") == "loopback" else name
                if key not in runs:
                    runs[key] = {"exit": 0, "json": str(path.relative_to(ROOT)), "data": data}
                if name != "trunk_calls" or {"trunk_calls", "trunk_calls_loopback"} <= runs.keys():
                    break
        print("\n".join("| " + " | ".join(r) + " |" for r in rows(runs, {})))
        return 0
    if "deploy" not in skip:
        runs["deploy"] = run("deploy")
    print("\n=== converge the lab with bench/profile.yml", flush=True)
    profile = converge(True)
    print(f"  {profile['recap']} in {profile['seconds']:.0f} s", flush=True)
    if not profile["ok"]:
        print(profile["tail"], file=sys.stderr)
        return 1
    try:
        plan = [
            ("call_setup", []),
            ("registrations", ["--first", "20000", "--count", "5000", "--hold", "120", "--cycles", "3"]),
            ("trunk_calls", []),
            ("webrtc_calls", []),
            ("pjsip_state", []),
        ]
        for name, extra in plan:
            if name not in skip:
                runs[name] = run(name, *extra)
        # The same trunk calls with SIPp in the lab host's network namespace:
        # SIP and RTP over loopback, as in issue 8's bare-Asterisk figures, so
        # that the two runs tell the lab network path's share from the stack's.
        if "trunk_calls_loopback" not in skip and "trunk_calls" not in skip:
            lab = json.loads((ROOT / ".lab" / "lab.json").read_text())
            print("\n=== converge the lab with the trunk's SIP Server on the lab host's loopback", flush=True)
            loop = converge(
                True, "-e", f"genesys_trunk_primary={lab['host_address']}", "-e", f"genesys_trunk_port={LOOPBACK_PORT}"
            )
            print(f"  {loop['recap']} in {loop['seconds']:.0f} s", flush=True)
            if loop["ok"]:
                runs["trunk_calls_loopback"] = run(
                    "trunk_calls", "--peer", "loopback", "--uas-port", str(LOOPBACK_PORT)
                )
            else:
                print(loop["tail"], file=sys.stderr)
                runs["trunk_calls_loopback"] = {"exit": 1, "json": None, "data": None}
    finally:
        if not args.keep_profile:
            print("\n=== converge the lab back (without bench/profile.yml)", flush=True)
            back = converge(False)
            print(f"  {back['recap']} in {back['seconds']:.0f} s", flush=True)
    table = rows(runs, profile)
    width = [max(len(r[i]) for r in [("Benchmark", "Figure", "Result", "Goal"), *table]) for i in range(4)]
    lines = [
        f"Benchmarks on {machine()}, {time.strftime('%Y-%m-%d')} ({(time.time() - started) / 60:.0f} min)",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(("Benchmark", "Figure", "Result", "Goal"), width)) + " |",
        "|" + "|".join("-" * (w + 2) for w in width) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, width)) + " |" for r in table]
    text = "\n".join(lines)
    print("\n" + text)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"summary-{stamp}.md").write_text(text + "\n")
    summary = {name: {k: v for k, v in r.items() if k != "data"} for name, r in runs.items()}
    (RESULTS / f"summary-{stamp}.json").write_text(
        json.dumps({"machine": machine(), "profile_converge": profile, "runs": summary, "table": table}, indent=2)
        + "\n"
    )
    return 0 if all(r["exit"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
