"""Brute-force protection and agents-only-over-WebSocket, from an attacker's side.

The attacker is a throw-away container on the lab network (its own address);
the legitimate agents are browsers on the machine. A credential-stuffing run
of REGISTERs over WSS gets the attacker's address banned by firewalld (every
port silent), while the agents keep registering and calling.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TONES, lab_exec, wait_tone

HERE = Path(__file__).resolve().parent
NET = os.environ.get("VOICEOPS_LAB_NET", "172.28.77")
ATTACKER_IP = f"{NET}.98"
GUARD = ["/usr/bin/python3", "/usr/local/libexec/voiceops/sipguard.py", "/etc/voiceops/sipguard/sipguard.json"]
SCRIPT = (HERE / "ws_register.py").read_text()


def _network(lab) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", lab["container"]],
        capture_output=True,
        text=True,
    )
    return out.stdout.split()[0]


def _attack(lab, *args: str, timeout: float = 300) -> list[str]:
    res = subprocess.run(
        ["docker", "run", "--rm", "--network", _network(lab), "--ip", ATTACKER_IP, "--entrypoint", "python3",
         "voiceops/labhost:12", "-c", SCRIPT, *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.fixture
def unban(lab):
    lab_exec(lab, *GUARD, "--unban", ATTACKER_IP)  # a clean start even after an interrupted run
    yield
    lab_exec(lab, *GUARD, "--unban", ATTACKER_IP)


def test_agent_register_over_udp_is_refused(lab):
    # The lab host's own public address is not loopback: as if an agent bypassed nginx.
    security = "/var/log/voiceops/asterisk/security.log"
    acl_failures = int(lab_exec(lab, "grep", "-c", 'FailedACL.*AccountID="1002"', security).strip() or 0)
    lab_exec(lab, "sh", "-c", f"cat > /tmp/ws_register.py <<'EOF'\n{SCRIPT}\nEOF")
    codes = lab_exec(lab, "python3", "/tmp/ws_register.py", lab["ip"], "5060", "1002", lab["passwords"]["1002"], "1",
                     "udp").split()  # fmt: skip
    print(f"\nREGISTER 1002 over UDP with the right password: {codes}")
    # Asterisk logs FailedACL and answers like for a wrong password (no account enumeration).
    assert codes and codes[0] in ("401", "403"), codes
    assert int(lab_exec(lab, "grep", "-c", 'FailedACL.*AccountID="1002"', security).strip() or 0) > acl_failures


def test_register_brute_force_over_wss_is_banned(lab, phones, unban):
    config = json.loads(lab_exec(lab, "cat", "/etc/voiceops/sipguard/sipguard.json"))
    limit = config["max_failures"]
    t0 = time.monotonic()
    # An attacker across the internet: one guess every 50 ms (on loopback 110 guesses take 0.15 s).
    codes = _attack(lab, lab["ip"], "8089", "1002", "guessed-password-1", str(limit + 100), "ws", "0.05")
    took = time.monotonic() - t0
    print(f"\n{len(codes)} guessed REGISTERs over WSS from {ATTACKER_IP}: {' '.join(codes)} ({took:.1f} s)")
    failures = [c for c in codes if c in ("401", "403")]
    assert len(failures) >= limit - 1, codes
    assert codes[-1] in ("timeout", "closed"), f"still answered after {limit} failures: {codes}"
    journal = lab_exec(lab, "journalctl", "-u", "voiceops-sipguard", "--no-pager", "-n", "50")
    assert f"BAN {ATTACKER_IP}" in journal, journal[-2000:]
    print([line for line in journal.splitlines() if "BAN" in line][-1])
    # Banned on every port: even the web page is gone for the attacker.
    again = _attack(lab, lab["ip"], "443", "1002", "guessed-password-2", "1", timeout=60)
    assert again in (["timeout"], ["closed"]), again
    # The legitimate agents (another address) are unaffected.
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])
    a.js("() => window.softphone.hangup()")
    # Unban restores access: Asterisk answers the attacker's address again.
    lab_exec(lab, *GUARD, "--unban", ATTACKER_IP)
    again = _attack(lab, lab["ip"], "8089", "1002", "guessed-password-3", "1", timeout=60)
    assert again == ["401"], again


RATE_PY = r"""
import concurrent.futures, json, ssl, sys, urllib.request, urllib.error, collections
url, n = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def get(_):
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    print(json.dumps(collections.Counter(pool.map(get, range(n)))))
"""


@pytest.mark.parametrize("path,requests", [("/turn-credentials", 80), ("/ws", 400)])
def test_nginx_rate_limits(lab, path, requests):
    res = subprocess.run(
        ["docker", "run", "--rm", "--network", _network(lab), "--ip", f"{NET}.97", "--entrypoint", "python3",
         "voiceops/labhost:12", "-c", RATE_PY, f"https://{lab['ip']}:8089{path}", str(requests)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    counts = {int(k): v for k, v in json.loads(res.stdout).items()}
    print(f"\n{requests} requests to {path} from one address: {counts}")
    assert counts.get(429, 0) > 0, counts
    assert sum(v for k, v in counts.items() if k != 429) >= 20, counts
