"""Reboot the whole lab host (runs last): every service comes back with no manual step."""

from __future__ import annotations

import subprocess
import time

from conftest import TONES, _health, asterisk_cli, lab_exec, wait_tone


def test_lab_host_reboot_brings_everything_back(phones, lab, inventory, tmp_path):
    t0 = time.monotonic()
    subprocess.run(["docker", "restart", "-t", "30", lab["container"]], check=True, capture_output=True)
    deadline = time.monotonic() + 180
    running = ws = ""
    while time.monotonic() < deadline:
        running = lab_exec(lab, "docker", "ps", "--format", "{{.Names}}")
        ok = lab_exec(lab, "systemctl", "is-active", "voiceops-turn-credentials").strip() == "active"
        # The agents' path too: nginx answers /ws from Asterisk (426 to a plain GET), not 502
        # (upstream not up yet, or marked failed for nginx's fail_timeout).
        ws = lab_exec(lab, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:8089/ws")
        if ok and ws == "426" and all(n in running for n in ("webrtc-asterisk", "webrtc-nginx", "webrtc-coturn")):
            break
        time.sleep(2)
    assert all(n in running for n in ("webrtc-asterisk", "webrtc-nginx", "webrtc-coturn")), running
    assert ws == "426", f"wss /ws through nginx answers {ws} after the reboot, not 426 from Asterisk"
    asterisk_cli(lab, "core waitfullybooted")
    print(f"\nlab host rebooted: services back after {time.monotonic() - t0:.1f} s")
    ip_now = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", lab["container"]],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert ip_now == lab["ip"], "the lab host came back with another address"
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])
    a.js("() => window.softphone.hangup()")
    res, report = _health(inventory, tmp_path)
    assert res.returncode == 0, [c for c in report.get("checks", []) if not c["ok"]]
