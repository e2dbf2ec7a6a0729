"""Shared helpers for the benchmarks in bench/ (issue #8).

  ROOT, LAB, RESULTS, HOST        paths and the lab host container's name
  lab_info()                      .lab/lab.json + .lab/secrets.yml in one dict
  sh(), lab_exec()                run a command here / in the lab host container
  machine(), machine_info()       what the figures were measured on
  pct(), stats()                  percentiles
  write_result(name, result)      bench/results/<name>-<timestamp>.json (with the machine)
  ContainerSampler                CPU seconds, RSS/PSS, threads and cgroup memory of
                                  the containers inside the lab host (webrtc-asterisk,
                                  webrtc-nginx), all processes of each container summed

Standard library only. Benchmarks print figures and write JSON; they are not
timed tests.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / ".lab"
RESULTS = ROOT / "bench" / "results"
HOST = os.environ.get("LAB_HOST_CONTAINER", "webrtc-lab-host")
ASTERISK = "webrtc-asterisk"
NGINX = "webrtc-nginx"


class BenchError(RuntimeError):
    """Stops a benchmark with one sentence."""


# -- the lab -------------------------------------------------------------------


def lab_info() -> dict:
    """The lab `make lab` made: addresses, URLs, CA file and secrets.

    Keys: container, ip, web_url, wss_url, sip_domain, ca (path or None),
    passwords ({extension: password} of the lab agents), secrets (all of
    .lab/secrets.yml, which holds JSON), lab (all of .lab/lab.json).
    """
    try:
        lab = json.loads((LAB / "lab.json").read_text())
        secrets = json.loads((LAB / "secrets.yml").read_text())
    except FileNotFoundError as exc:
        raise BenchError(f"{exc.filename} not found: run `make lab` first") from exc
    ca = lab.get("ca_certificate") or str(LAB / "lab-ca.crt")
    ip = lab["host_address"]
    return {
        "container": os.environ.get("LAB_HOST_CONTAINER", lab.get("host_container", HOST)),
        "ip": ip,
        "web_url": lab.get("web_url", f"https://{ip}/"),
        "wss_url": lab.get("wss_url", f"wss://{ip}:8089/ws"),
        "sip_domain": lab.get("sip_domain", ip),
        "ca": ca if Path(ca).is_file() else None,
        "passwords": secrets.get("lab_agent_passwords", {}),
        "secrets": secrets,
        "lab": lab,
    }


def sh(*cmd: str, stdin: str | None = None, check: bool = True, timeout: float | None = None) -> str:
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:6])} failed: {res.stderr.strip()[-500:]}")
    return res.stdout


def lab_exec(*cmd: str, stdin: str | None = None, check: bool = True, timeout: float | None = None) -> str:
    """A command in the lab host container (inner containers: `docker exec NAME ...` there)."""
    return sh("docker", "exec", "-i", HOST, *cmd, stdin=stdin, check=check, timeout=timeout)


# -- the machine ---------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (res.stdout.strip().splitlines() or ["?"])[0]


def machine_info() -> dict:
    """What the figures were measured on (host, OS, kernel, CPU, cores, RAM, Docker, Python)."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "host": platform.node(),
        "os": os_name,
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "python": platform.python_version(),
    }


_MACHINE: dict | None = None


def machine() -> str:
    """One line: hostname, OS, kernel, cores, CPU model, RAM, Docker."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = machine_info()
    m = _MACHINE
    return (
        f"{m['host']}: {m['os']}, kernel {m['kernel']}, {m['cores']} cores {m['cpu']}, "
        f"{m['memory_gib']} GiB RAM, Docker {m['docker']}"
    )


# -- figures -------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def stats(values: list[float]) -> dict | None:
    """p50, p95, p99, max and mean of values (None when there are none)."""
    if not values:
        return None
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def write_result(name: str, result: dict, stamp: str | None = None) -> Path:
    """bench/results/<name>-<timestamp>.json; adds the machine if result has none."""
    result.setdefault("machine", machine())
    result.setdefault("machine_info", _MACHINE or machine_info())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{stamp or time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


# -- resource use of the containers inside the lab host --------------------------

# Runs in the lab host container (python3 there), reads one command a line on
# stdin and answers one JSON line. It sees the inner containers' processes in
# its PID namespace and their cgroups under /sys/fs/cgroup, and shares their
# network namespace (host networking).
_SAMPLER = r'''
import glob, json, os, subprocess, sys

TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
names = sys.argv[1:]


def read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def inspect(name):
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.State.Pid}}", name],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None, 0
    cid, pid = out.stdout.split()
    return cid, int(pid)


def cgroup_dirs(pid, cid):
    """{controller: dir} for the container's cgroups (v1, v2 or hybrid)."""
    dirs = {}
    for line in (read(f"/proc/{pid}/cgroup") or "").splitlines():
        _, ctrls, path = line.split(":", 2)
        if cid not in path:
            continue
        if ctrls == "":
            for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                if os.path.exists(base + path + "/cgroup.procs"):
                    dirs.setdefault("v2", base + path)
                    break
            continue
        for ctrl in ctrls.split(","):
            for base in [f"/sys/fs/cgroup/{ctrls}", f"/sys/fs/cgroup/{ctrl}"] + glob.glob(f"/sys/fs/cgroup/*{ctrl}*"):
                if os.path.exists(base + path + "/cgroup.procs"):
                    dirs.setdefault(ctrl, base + path)
                    break
    return dirs


def pids_of(c):
    for key in ("pids", "memory", "cpuacct", "v2"):
        d = c["dirs"].get(key)
        txt = read(f"{d}/cgroup.procs") if d else None
        if txt is not None:
            return [int(p) for p in txt.split()]
    found = []  # no readable cgroup: every process whose cgroup names the container
    for p in os.listdir("/proc"):
        if p.isdigit() and c["id"] in (read(f"/proc/{p}/cgroup") or ""):
            found.append(int(p))
    return found


def kv(text):
    out = {}
    for line in (text or "").splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def sample_container(c, pss):
    s = {"processes": 0, "cpu_ticks": 0, "rss_kib": 0, "threads": 0, "pss_kib": 0 if pss else None,
         "anon_kib": 0 if pss else None, "fds": []}
    if not c["id"]:
        s["error"] = "no such container"
        return s
    for pid in pids_of(c):
        stat = read(f"/proc/{pid}/stat")
        status = read(f"/proc/{pid}/status")
        if not stat or not status:
            continue
        f = stat.rsplit(")", 1)[1].split()
        s["cpu_ticks"] += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
        st = kv(status)
        s["rss_kib"] += st.get("VmRSS", 0)
        s["threads"] += st.get("Threads", 0)
        s["processes"] += 1
        try:
            s["fds"].append(len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            pass
        if pss:
            roll = kv(read(f"/proc/{pid}/smaps_rollup"))
            s["pss_kib"] += roll.get("Pss", 0)
            s["anon_kib"] += roll.get("Anonymous", 0)
    s["cpu_s"] = s["cpu_ticks"] / TCK
    d = c["dirs"]
    if "cpuacct" in d:
        usage = read(f"{d['cpuacct']}/cpuacct.usage")
        s["cgroup_cpu_s"] = int(usage) / 1e9 if usage else None
    elif "v2" in d:
        s["cgroup_cpu_s"] = kv(read(f"{d['v2']}/cpu.stat")).get("usage_usec", 0) / 1e6
    if "memory" in d:
        ms = kv(read(f"{d['memory']}/memory.stat"))
        s["cgroup_anon_bytes"] = ms.get("total_rss", ms.get("rss"))
        s["cgroup_file_bytes"] = ms.get("total_cache", ms.get("cache"))
        usage = read(f"{d['memory']}/memory.usage_in_bytes")
        kmem = read(f"{d['memory']}/memory.kmem.usage_in_bytes")
        s["cgroup_usage_bytes"] = int(usage) if usage else None
        s["cgroup_kernel_bytes"] = int(kmem) if kmem else None
    elif "v2" in d:
        ms = kv(read(f"{d['v2']}/memory.stat"))
        cur = read(f"{d['v2']}/memory.current")
        s["cgroup_anon_bytes"] = ms.get("anon")
        s["cgroup_file_bytes"] = ms.get("file")
        s["cgroup_usage_bytes"] = int(cur) if cur else None
        s["cgroup_kernel_bytes"] = ms.get("kernel", (ms.get("slab") or 0) + (ms.get("kernel_stack") or 0)) or None
    return s


def tcp_counts(ports):
    """Established sockets per local port and TIME_WAIT total (this network namespace)."""
    est = {str(p): 0 for p in ports}
    tw = 0
    want = {f"{p:04X}": str(p) for p in ports}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (read(path) or "").splitlines()[1:]:
            f = line.split()
            st = f[3]
            if st == "06":
                tw += 1
            elif st == "01":
                port = f[1].rsplit(":", 1)[1]
                if port in want:
                    est[want[port]] += 1
    return {"established": est, "time_wait": tw}


def asterisk_cli(name, cmd):
    out = subprocess.run(["docker", "exec", name, "asterisk", "-rx", cmd], capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


containers = {}
for n in names:
    cid, pid = inspect(n)
    containers[n] = {"id": cid, "pid": pid, "dirs": cgroup_dirs(pid, cid) if cid else {}}
print(json.dumps({"ready": {n: {"pid": c["pid"], "cgroups": sorted(c["dirs"])} for n, c in containers.items()}}),
      flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out = {"containers": {n: sample_container(c, req.get("pss", True)) for n, c in containers.items()}}
    if req.get("ports"):
        out["tcp"] = tcp_counts(req["ports"])
    for key, (name, cmd) in (req.get("cli") or {}).items():
        out.setdefault("cli", {})[key] = asterisk_cli(name, cmd)
    print(json.dumps(out), flush=True)
'''


class ContainerSampler:
    """CPU and memory of containers inside the lab host, from one long-lived `docker exec`.

    Each sample sums all processes of each container (from its cgroup, e.g.
    nginx master + workers): cpu_s (utime + stime / SC_CLK_TCK), rss_kib
    (VmRSS, counts shared pages once per process), pss_kib and anon_kib
    (smaps_rollup), threads, open files per process (fds); plus the container cgroup's CPU time and memory
    (anon, page cache, kernel) when readable. `ports` adds established TCP
    socket counts per local port; `cli` runs `asterisk -rx` commands
    ({key: (container, command)}) and returns their output.
    """

    def __init__(self, names: list[str], host: str = HOST):
        self.names = names
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", host, "python3", "-u", "-c", _SAMPLER, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip()[-400:]
            raise BenchError(f"resource sampler in {host} did not start: {err}")
        self.ready = json.loads(line)["ready"]
        missing = [n for n, r in self.ready.items() if not r["pid"]]
        if missing:
            self.close()
            raise BenchError(f"container(s) {', '.join(missing)} not running in {host}")

    def sample(self, pss: bool = True, ports: list[int] | None = None, cli: dict | None = None) -> dict:
        req = {"pss": pss, "ports": ports or [], "cli": cli or {}}
        with self.lock:
            t = time.time()
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise BenchError("resource sampler stopped: " + self.proc.stderr.read().strip()[-400:])
        out = json.loads(line)
        out["t"] = t
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ContainerSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
