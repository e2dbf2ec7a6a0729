#!/usr/bin/env python3
"""Benchmark: deploy time of playbooks/site.yml (issue #8).

Creates a NEW lab host container, webrtc-bench-host (172.28.77.30 on the lab
network webrtc-lab, its own fresh Docker volumes; made by lab/lab.py's
create_host, like `make lab`'s webrtc-lab-host), then times:

  fresh   ansible-playbook playbooks/site.yml against the empty host
  re-run  the same command again at once: must report changed=0

with the lab inventory, the lab secrets (-e @.lab/secrets.yml, as `make lab`)
and extra vars that point the inventory's lab-pbx at the bench host
(ansible_host, pbx_public_address, and trunk addresses nobody uses). The
ansible.posix.profile_tasks callback gives each task's time; the slowest, the
time per role and the CPU seconds spent by Ansible here and in the bench host
go into the JSON.

  .venv/bin/python bench/deploy.py [--reruns N] [-- -e var=value ...]

Prints the figures and writes JSON (and each run's playbook log) to
bench/results/. Removes the bench host container and the volumes it made at
the end, whatever happens (--keep leaves them for a look). The lab host
webrtc-lab-host is never touched; `make lab` (or at least the webrtc-lab
network and the images in .lab/images) must exist. Goal (issue #8): the re-run
<= 30 s. Exits non-zero when a run fails or the re-run changes anything.

Another converge on this machine (2 cores) skews the figures: each run first
waits for other ansible-playbook processes to end (--wait-idle seconds) and
the JSON records any that ran alongside. Uses bench/common.py (machine(),
write_result()).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, BenchError, machine, write_result  # noqa: E402

import lab  # noqa: E402 - lab/lab.py, not a package

BENCH_HOST = "webrtc-bench-host"
BENCH_HOSTNAME = "pbx-bench"
BENCH_IP = f"{lab.NET_PREFIX}.30"
BENCH_DOCKER_VOLUME = "webrtc-bench-docker"
BENCH_DATA_VOLUME = "webrtc-bench-data"
# The trunk of the bench host points at addresses nobody uses, so its OPTIONS
# never reach the lab's Genesys simulator (.21/.22, which belongs to the lab).
BENCH_TRUNK = (f"{lab.NET_PREFIX}.31", f"{lab.NET_PREFIX}.32")
# Marks what this script made: only containers and volumes carrying it are removed.
LABEL = "voiceops.bench=deploy"
INVENTORY_HOST = "lab-pbx"
GOAL_RERUN_S = 30.0

RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
TASK_RE = re.compile(r"^(?P<name>.*?) [- ]*?(?P<secs>\d+\.\d+)s$")


def other_playbooks(own: int | None = None) -> list[int]:
    """PIDs of ansible-playbook processes on this machine other than `own` and its workers."""
    res = subprocess.run(["pgrep", "-f", "bin/ansible-playbook"], capture_output=True, text=True)
    others = []
    for pid in (int(p) for p in res.stdout.split()):
        chain, cur = [], pid
        while cur > 1 and len(chain) < 64:
            chain.append(cur)
            try:
                stat = Path(f"/proc/{cur}/stat").read_text()
            except OSError:
                break
            cur = int(stat.rsplit(")", 1)[1].split()[1])
        if own is None or own not in chain:
            others.append(pid)
    return others


def wait_idle(limit: float) -> float:
    """Wait until no other ansible-playbook runs (at most `limit` s); returns the seconds waited."""
    t0 = time.monotonic()
    said = False
    while other_playbooks() and time.monotonic() - t0 < limit:
        if not said:
            print(f"  waiting for other ansible-playbook runs to end (pids {other_playbooks()})", flush=True)
            said = True
        time.sleep(5)
    return time.monotonic() - t0


# -- the bench host -----------------------------------------------------------


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise BenchError(f"'docker {' '.join(args[:3])} ...' failed: {res.stderr.strip()[-300:]}")
    return res


def labelled(kind: str, name: str) -> bool | None:
    """None: no such container/volume; True: made by this script; False: somebody else's."""
    res = docker(kind, "inspect", "-f", "{{json .%sLabels}}" % ("Config." if kind == "container" else ""), name,
                 check=False)  # fmt: skip
    if res.returncode != 0:
        return None
    labels = json.loads(res.stdout.strip() or "null") or {}
    key, value = LABEL.split("=")
    return labels.get(key) == value


def remove_bench_host() -> list[str]:
    """Remove the bench container and volumes - only those carrying our label."""
    removed = []
    if labelled("container", BENCH_HOST):
        docker("rm", "-f", "-v", BENCH_HOST)
        removed.append(f"container {BENCH_HOST}")
    for vol in (BENCH_DOCKER_VOLUME, BENCH_DATA_VOLUME):
        if labelled("volume", vol):
            docker("volume", "rm", "-f", vol)
            removed.append(f"volume {vol}")
    return removed


def preflight() -> bool:
    """Checks what the bench needs; returns True when it had to create the lab network."""
    if not lab.docker_reachable():
        raise BenchError("no Docker daemon is reachable: run 'make lab' (or 'make dockerd') first.")
    for what, name in (("container", BENCH_HOST), ("volume", BENCH_DOCKER_VOLUME), ("volume", BENCH_DATA_VOLUME)):
        if labelled(what, name) is False:
            raise BenchError(f"{what} {name} exists and was not made by bench/deploy.py: remove it yourself first.")
    if docker("image", "inspect", lab.HOST_IMAGE, check=False).returncode != 0:
        raise BenchError(f"image {lab.HOST_IMAGE} is missing: run 'make lab' (or 'make images') first.")
    for tar in ("asterisk.tar", "nginx.tar", "coturn.tar"):
        if not (lab.IMAGES / tar).exists():
            raise BenchError(f".lab/images/{tar} is missing: run 'make lab' (or 'make images') first.")
    if not lab.SECRETS.exists():
        raise BenchError(".lab/secrets.yml is missing: run 'make lab' (or 'make secrets') first.")
    if not (ROOT / "softphone" / "dist" / "app.js").exists():
        raise BenchError("softphone/dist is missing: run 'make softphone' first.")
    if docker("network", "inspect", lab.NETWORK, check=False).returncode == 0:
        lab.ensure_network()  # checks the subnet only
        return False
    lab.ensure_network()
    return True


def create_bench_host() -> float:
    remove_bench_host()  # leftovers of an interrupted run (ours only)
    for vol in (BENCH_DOCKER_VOLUME, BENCH_DATA_VOLUME):
        docker("volume", "create", "--label", LABEL, vol)
    t0 = time.monotonic()
    lab.create_host(
        BENCH_HOST,
        BENCH_HOSTNAME,
        BENCH_IP,
        BENCH_DOCKER_VOLUME,
        BENCH_DATA_VOLUME,
        extra_args=("--label", LABEL),
    )
    lab.wait_for_systemd(BENCH_HOST)
    return time.monotonic() - t0


# -- converging ---------------------------------------------------------------


def parse_recap(lines: list[str]) -> dict[str, int] | None:
    try:
        start = max(i for i, ln in enumerate(lines) if ln.startswith("PLAY RECAP"))
    except ValueError:
        return None
    for ln in lines[start + 1 :]:
        m = RECAP_RE.match(ln.strip())
        if m and m["host"] == INVENTORY_HOST:
            return {k: int(v) for k, v in (kv.split("=") for kv in m["counts"].split())}
    return None


def parse_profile(lines: list[str]) -> list[dict]:
    """profile_tasks' summary: every task with its seconds, slowest first."""
    try:
        start = max(i for i, ln in enumerate(lines) if ln.startswith("TASKS RECAP"))
    except ValueError:
        return []
    tasks = []
    for ln in lines[start + 1 :]:
        if ln.startswith("=") or not ln.strip():
            continue
        m = TASK_RE.match(ln.rstrip())
        if m:
            tasks.append({"task": m["name"].rstrip(" -"), "seconds": float(m["secs"])})
    return sorted(tasks, key=lambda t: t["seconds"], reverse=True)


def by_role(tasks: list[dict]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for t in tasks:
        role = t["task"].split(" : ", 1)[0] if " : " in t["task"] else "(play)"
        role = role.replace("voiceops.webrtc_pbx.", "")
        sums[role] = round(sums.get(role, 0.0) + t["seconds"], 2)
    return dict(sorted(sums.items(), key=lambda kv: kv[1], reverse=True))


def host_cpu_s() -> float | None:
    """CPU seconds used so far by the bench host container's own cgroup (cgroup v1 cpuacct or v2), or None."""
    cid = docker("inspect", "-f", "{{.Id}}", BENCH_HOST, check=False).stdout.strip()
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
        (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e-6),
    ):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            text = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("usage_usec")), "0")
        return int(text.strip()) * scale
    return None


def run_playbook(label: str, extra: list[str], log: Path, verbose: bool, idle_limit: float) -> dict:
    overrides = {
        "ansible_host": BENCH_HOST,
        "pbx_public_address": BENCH_IP,
        "genesys_trunk_primary": BENCH_TRUNK[0],
        "genesys_trunk_backup": BENCH_TRUNK[1],
    }
    cmd, env = lab.playbook_command("-e", json.dumps(overrides), "--limit", INVENTORY_HOST, *extra)
    env.update(
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
        ANSIBLE_NOCOLOR="1",
    )
    waited = wait_idle(idle_limit)
    print(f"{label}: ansible-playbook site.yml -> {BENCH_HOST} (log {log.relative_to(ROOT)})", flush=True)
    lines: list[str] = []
    alongside: set[int] = set()
    load = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    host0 = host_cpu_s()
    t0 = time.monotonic()
    popen = {"cwd": ROOT, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with log.open("w") as fh, subprocess.Popen(cmd, **popen) as proc:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(5):
                alongside.update(other_playbooks(proc.pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            lines.append(line.rstrip("\n"))
            if verbose:
                print(line, end="", flush=True)
        done.set()
    took = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    host1 = host_cpu_s()
    watcher.join()
    if alongside:
        print(f"  warning: other ansible-playbook runs (pids {sorted(alongside)}) ran alongside: figures skewed")
    recap = parse_recap(lines)
    tasks = parse_profile(lines)
    return {
        "seconds": round(took, 1),
        "rc": proc.returncode,
        "recap": recap,
        "tasks": len(tasks),
        "by_role": by_role(tasks),
        "slowest": tasks[:25],
        "log": str(log.relative_to(ROOT)),
        "waited_for_others_s": round(waited, 1),
        "other_playbooks_alongside": sorted(alongside),
        "load_1min_at_start": round(load, 2),
        # user+sys CPU of ansible-playbook, its workers and the docker CLI processes they ran
        "controller_cpu_s": round(cpu, 1),
        # CPU of the bench host container's cgroup: systemd, the modules, its dockerd (not the inner containers)
        "target_cpu_s": round(host1 - host0, 1) if host0 is not None and host1 is not None else None,
    }


def ansible_config() -> list[str]:
    """The settings that differ from Ansible's defaults (ansible.cfg and ANSIBLE_* in the environment)."""
    cmd, env = lab.playbook_command()
    exe = str(Path(cmd[0]).with_name("ansible-config"))
    res = subprocess.run([exe, "dump", "--only-changed"], cwd=ROOT, env=env, capture_output=True, text=True)
    return [ln for ln in res.stdout.splitlines() if ln.strip() and "CONFIG_FILE" not in ln]


def show(label: str, run: dict, top: int) -> None:
    r = run["recap"] or {}
    counts = " ".join(f"{k}={r.get(k, '?')}" for k in ("ok", "changed", "failed", "unreachable"))
    print(f"  {label:7} {run['seconds']:6.1f} s  {counts}  rc={run['rc']}")
    print(f"           CPU: controller {run['controller_cpu_s']} s, bench host {run['target_cpu_s']} s")
    for t in run["slowest"][:top]:
        print(f"           {t['seconds']:6.2f} s  {t['task']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reruns", type=int, default=1, help="idempotent re-runs after the fresh one (default 1)")
    ap.add_argument("--top", type=int, default=10, help="slowest tasks to print per run (JSON keeps 25)")
    ap.add_argument("--keep", action="store_true", help="leave the bench host and its volumes (remove them later "
                    "with --remove)")  # fmt: skip
    ap.add_argument("--remove", action="store_true", help="only remove a kept bench host and its volumes")
    ap.add_argument("--reuse", action="store_true", help="no fresh converge: only re-runs against a kept bench "
                    "host (with --keep to keep it again)")  # fmt: skip
    ap.add_argument("--wait-idle", type=float, default=900, help="seconds to wait for other ansible-playbook runs "
                    "to end before each run (default 900)")  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true", help="stream the playbook output")
    ap.add_argument("ansible_args", nargs="*", help="after --: more ansible-playbook arguments (e.g. -e var=value)")
    args = ap.parse_args(argv)

    if args.remove:
        print("\n".join(remove_bench_host()) or "nothing to remove")
        return 0
    stamp = time.strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"deploy benchmark on {machine()}")
    result: dict = {
        "benchmark": "deploy",
        "machine": machine(),
        "target": {"container": BENCH_HOST, "address": BENCH_IP, "inventory_host": INVENTORY_HOST},
        "ansible_args": args.ansible_args,
        "ansible_config": ansible_config(),
        "goal_rerun_s": GOAL_RERUN_S,
    }
    made_network = False
    rc = 1
    try:
        if args.reuse:
            if not labelled("container", BENCH_HOST) or lab.container_state(BENCH_HOST) != "running":
                raise BenchError(f"--reuse needs a running {BENCH_HOST} kept by an earlier 'deploy.py --keep'.")
            print(f"re-using {BENCH_HOST} ({BENCH_IP}): no fresh converge")
        else:
            made_network = preflight()
            result["host_boot_s"] = round(create_bench_host(), 1)
            print(f"{BENCH_HOST} ({BENCH_IP}) up, systemd booted in {result['host_boot_s']} s")
            result["fresh"] = run_playbook(
                "fresh", args.ansible_args, RESULTS / f"deploy-{stamp}-fresh.log", args.verbose, args.wait_idle
            )
            show("fresh", result["fresh"], args.top)
            if result["fresh"]["rc"] != 0 or result["fresh"]["recap"] is None:
                raise BenchError(f"the fresh converge failed: see {result['fresh']['log']}")
        result["reruns"] = []
        for i in range(1, args.reruns + 1):
            log = RESULTS / f"deploy-{stamp}-rerun{i}.log"
            run = run_playbook(f"re-run {i}", args.ansible_args, log, args.verbose, args.wait_idle)
            result["reruns"].append(run)
            show(f"re-run{i}", run, args.top)
            if run["rc"] != 0 or run["recap"] is None:
                raise BenchError(f"re-run {i} failed: see {run['log']}")
        changed = [r["recap"]["changed"] for r in result["reruns"]]
        best = min(r["seconds"] for r in result["reruns"]) if result["reruns"] else None
        result["rerun_s"] = best
        result["rerun_changed"] = changed
        result["idempotent"] = all(c == 0 for c in changed)
        result["goal_met"] = best is not None and best <= GOAL_RERUN_S
        rc = 0 if result["idempotent"] else 1
        fresh = f"{result['fresh']['seconds']:.1f} s" if "fresh" in result else "not run (--reuse)"
        print(f"fresh converge {fresh}; re-run {best} s (goal <= {GOAL_RERUN_S:.0f} s: "
              f"{'met' if result['goal_met'] else 'NOT met'}); re-run changed={changed}"
              f"{'' if result['idempotent'] else '  <- NOT idempotent'}")  # fmt: skip
    except (BenchError, lab.LabError) as exc:
        result["error"] = str(exc)
        print(f"bench/deploy.py: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        result["error"] = "interrupted"
        rc = 130
    finally:
        if args.keep:
            print(f"kept {BENCH_HOST} and its volumes: remove them with 'bench/deploy.py --remove'")
        else:
            try:
                removed = remove_bench_host()
                if made_network:
                    docker("network", "rm", lab.NETWORK, check=False)
                    removed.append(f"network {lab.NETWORK}")
                print(f"removed {', '.join(removed) or 'nothing'}")
            except BenchError as exc:
                print(f"bench/deploy.py: cleaning up failed: {exc}", file=sys.stderr)
                rc = rc or 1
        out = write_result("deploy", result, stamp)
        print(f"JSON: {out.relative_to(ROOT)}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
