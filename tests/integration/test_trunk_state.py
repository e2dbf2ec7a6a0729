"""Trunk liveness as seen by the modules and health.yml.

A throw-away SIP peer (a bare Asterisk from the lab image, answering OPTIONS)
stands in for Genesys SIP Server on the lab host's Docker network; the
genesys_trunk role points the trunk at it. Started -> Reachable; stopped ->
Unreachable, and health.yml fails naming the trunk check.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import BIN, LAB, ROOT, _env, _health, ami_args, run_module

PEER = "webrtc-test-sippeer"
PEER_CMD = (
    "printf '[udp]\\ntype=transport\\nprotocol=udp\\nbind=0.0.0.0:5060\\n' > /etc/asterisk/pjsip.conf && "
    "exec /usr/sbin/asterisk -f -U asterisk"
)


def docker(*args: str, check: bool = True) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])}: {res.stderr.strip()}")
    return res.stdout.strip()


def converge_trunk(inventory, **extra) -> None:
    cmd = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / "site.yml"),
        "--tags",
        "genesys_trunk",
        "-e",
        f"@{LAB / 'secrets.yml'}",
        "-e",
        json.dumps(extra),
    ]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.fixture
def sip_peer(lab, inventory):
    network = docker(
        "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", lab["container"]
    ).split()[0]
    docker("rm", "-f", PEER, check=False)
    docker(
        "run", "-d", "--name", PEER, "--network", network, "--entrypoint", "sh", "voiceops/asterisk:22", "-c", PEER_CMD
    )
    ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", PEER)
    converge_trunk(
        inventory,
        genesys_trunk_enabled=True,
        genesys_trunk_primary=ip,
        genesys_trunk_source_addresses=[ip],
        genesys_trunk_qualify_frequency=5,
    )
    yield ip
    docker("rm", "-f", PEER, check=False)
    converge_trunk(inventory, genesys_trunk_enabled=False)


def test_trunk_reachable_then_unreachable(lab, inventory, sip_peer, tmp_path):
    out = run_module(
        inventory,
        "pjsip_endpoint_info",
        ami_args(endpoints=["genesys"], wait_for="reachable", wait_timeout=30),
        tmp_path,
    )
    assert not out.get("failed"), out.get("msg")
    contact = out["endpoints"][0]["contacts"][0]
    assert contact["status"] == "Reachable" and sip_peer in contact["uri"]

    docker("stop", PEER)
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        out = run_module(inventory, "pjsip_endpoint_info", ami_args(endpoints=["genesys"]), tmp_path)
        status = out["endpoints"][0]["contacts"][0]["status"]
        if status == "Unreachable":
            break
        time.sleep(2)
    assert status == "Unreachable"

    res, report = _health(
        inventory, tmp_path, "-e", json.dumps({"genesys_trunk_enabled": True, "health_trunk_timeout": 5})
    )
    assert res.returncode != 0
    failed = {c["check"] for c in report["checks"] if not c["ok"]}
    assert failed == {"trunk reachable"}, failed
    assert "genesys" in next(c["detail"] for c in report["checks"] if c["check"] == "trunk reachable")
