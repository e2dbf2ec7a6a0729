#!/usr/bin/env python3
"""Benchmark: reading PJSIP state for 1000 endpoints.

Provisions N extra endpoints in the lab's Asterisk (pjsip.d/bench.conf, then a
PJSIP reload), and times in the same run:

  1. the collection's way: one PJSIPShowEndpoints + one PJSIPShowContacts over
     AMI (module_utils.pjsip_state.fetch_endpoints), run on the lab host;
  2. the whole pjsip_endpoint_info module through ansible-playbook (task time
     from the profile_tasks callback, so Ansible's own start-up is excluded);
  3. a per-endpoint CLI loop: `asterisk -rx 'pjsip show endpoint X'` for each
     endpoint, run inside the Asterisk container (no docker exec per call).

Prints the figures and writes JSON to bench/results/. Removes the endpoints
afterwards. Needs `make lab` first. Targets: <= 1 s for 1000 endpoints and
>= 20x faster than the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ASTERISK, HOST, LAB, ROOT, lab_exec, lab_info, machine, sh, write_result  # noqa: E402

CONF = "/etc/voiceops/asterisk/pjsip.d/bench.conf"

AMI_RUNNER = r"""
import json, sys, time
sys.path.insert(0, "/tmp/voiceops-bench")
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.ami import AMIClient
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.pjsip_state import fetch_endpoints, summarize
secret = sys.stdin.read().strip()
runs = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    with AMIClient(timeout=30) as client:
        client.login("voiceops", secret)
        eps = fetch_endpoints(client)
    runs.append(time.perf_counter() - t0)
print(json.dumps({"runs": runs, "summary": summarize(eps)}))
"""


def provision(n: int) -> None:
    lines = []
    for i in range(n):
        name = f"bench{i:05d}"
        lines += [
            f"[{name}]",
            "type = endpoint",
            "context = from-internal",
            "disallow = all",
            "allow = ulaw",
            f"aors = {name}",
            f"auth = {name}-auth",
            "",
            f"[{name}-auth]",
            "type = auth",
            "auth_type = userpass",
            f"username = {name}",
            f"password = bench-{i}-not-a-secret",
            "",
            f"[{name}]",
            "type = aor",
            "max_contacts = 1",
            "",
        ]
    lab_exec("sh", "-c", f"cat > {CONF} && chown 1000:1000 {CONF}", stdin="\n".join(lines))
    reload_pjsip()


def reload_pjsip() -> None:
    lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "module reload res_pjsip.so")
    time.sleep(2)


def cleanup() -> None:
    lab_exec("rm", "-f", CONF, check=False)
    reload_pjsip()


def ami_fetch(runs: int) -> dict:
    src = ROOT / "plugins" / "module_utils"
    lab_exec("rm", "-rf", "/tmp/voiceops-bench")
    base = "/tmp/voiceops-bench/ansible_collections/voiceops/webrtc_pbx/plugins/module_utils"
    lab_exec("mkdir", "-p", base)
    for part in (
        "ansible_collections",
        "ansible_collections/voiceops",
        "ansible_collections/voiceops/webrtc_pbx",
        "ansible_collections/voiceops/webrtc_pbx/plugins",
        "ansible_collections/voiceops/webrtc_pbx/plugins/module_utils",
    ):
        lab_exec("touch", f"/tmp/voiceops-bench/{part}/__init__.py")
    for name in ("ami.py", "pjsip_state.py"):
        sh("docker", "cp", str(src / name), f"{HOST}:{base}/{name}")
    lab_exec("sh", "-c", "cat > /tmp/voiceops-bench/run.py", stdin=AMI_RUNNER)
    secret = lab_info()["secrets"]["asterisk_ami_secret"]
    out = lab_exec("python3", "/tmp/voiceops-bench/run.py", str(runs), stdin=secret)
    return json.loads(out)


def module_task_time() -> tuple[float | None, float | None]:
    """The pjsip_endpoint_info task's own duration, from ansible.posix.profile_tasks."""
    with tempfile.TemporaryDirectory() as d:
        inv = Path(d) / "hosts.yml"
        inv.write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            "lab-pbx": {
                                "ansible_connection": "community.docker.docker",
                                "ansible_host": HOST,
                                "ansible_python_interpreter": "/usr/bin/python3",
                            }
                        }
                    }
                }
            )
        )
        play = Path(d) / "play.yml"
        play.write_text(
            json.dumps(
                [
                    {
                        "hosts": "lab-pbx",
                        "gather_facts": False,
                        "tasks": [
                            {"name": "baseline ping", "ansible.builtin.ping": {}},
                            {
                                "name": "pjsip_endpoint_info",
                                "voiceops.webrtc_pbx.pjsip_endpoint_info": {
                                    "ami_username": "voiceops",
                                    "ami_secret": "{{ asterisk_ami_secret }}",
                                },
                                "no_log": True,
                            },
                        ],
                    }
                ]
            )
        )
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
            ANSIBLE_COLLECTIONS_PATH=str(LAB / "collections"),
        )
        exe = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
        res = subprocess.run(
            [exe, "-i", str(inv), str(play), "-e", f"@{LAB / 'secrets.yml'}"], capture_output=True, text=True, env=env
        )
        m = re.search(r"pjsip_endpoint_info -+ (\d+\.\d+)s", res.stdout)
        b = re.search(r"baseline ping -+ (\d+\.\d+)s", res.stdout)
        if not (m and b) or res.returncode != 0:
            print(f"bench: could not time the module task:\n{res.stdout[-1500:]}", file=sys.stderr)
            return None, None
        return float(m.group(1)), float(b.group(1))


def cli_loop(n_total: int) -> float:
    script = (
        "t0=$(date +%s.%N); for e in $(asterisk -rx 'pjsip list endpoints' | awk '/^ Endpoint:/{print $2}'); do "
        'asterisk -rx "pjsip show endpoint $e" >/dev/null; done; t1=$(date +%s.%N); echo "$t0 $t1"'
    )
    out = lab_exec("docker", "exec", ASTERISK, "sh", "-c", script).split()
    return float(out[1]) - float(out[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if subprocess.run(["docker", "inspect", HOST], capture_output=True).returncode != 0:
        sys.exit(f"bench: lab host {HOST} not found: run `make lab` first")
    provision(args.endpoints)
    try:
        ami = ami_fetch(args.runs)
        total = ami["summary"]["total"]
        task, baseline = module_task_time()
        loop = cli_loop(total)
    finally:
        cleanup()
    best = min(ami["runs"])
    median = sorted(ami["runs"])[len(ami["runs"]) // 2]
    result = {
        "benchmark": "pjsip_state",
        "machine": machine(),
        "endpoints": total,
        "ami_fetch_s": {"best": best, "median": median, "runs": ami["runs"]},
        "module_task_s": task,
        "ping_task_s": baseline,
        "cli_loop_s": loop,
        "speedup_vs_cli_loop": loop / median,
        "targets": {"ami_fetch_le_1s": median <= 1.0, "speedup_ge_20x": loop / median >= 20},
    }
    out = write_result("pjsip_state", result)
    print(f"machine: {result['machine']}")
    print(f"{total} endpoints")
    print(
        f"  AMI (1 PJSIPShowEndpoints + 1 PJSIPShowContacts): median {median * 1000:.0f} ms, best {best * 1000:.0f} ms"
    )
    if task is not None:
        print(
            f"  pjsip_endpoint_info task (profile_tasks):         {task * 1000:.0f} ms"
            f"  (an ansible.builtin.ping task over the same connection: {baseline * 1000:.0f} ms)"
        )
    print(f"  CLI loop 'pjsip show endpoint X' x{total}:        {loop:.1f} s")
    print(f"  speed-up vs loop: {loop / median:.0f}x   (targets: <= 1 s, >= 20x)")
    print(f"  written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
