"""Attacker's-side and fault checks against the lab host (issue #7 pieces).

All traffic goes to the lab host container this run created.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

from conftest import LAB, TONES, asterisk_cli, connect, lab_exec, run_module, run_playbook, wait_tone


def test_turn_refuses_relaying_to_loopback_and_private_peers(lab, inventory, tmp_path):
    peers = ["127.0.0.1", "10.1.2.3", "192.168.1.10", "172.16.5.5", "169.254.1.1"]
    out = run_module(
        inventory,
        "turn_allocation",
        {
            "host": lab["ip"],
            "rest_secret": "{{ coturn_static_auth_secret }}",
            "rest_user": "attacker",
            "permission_peers": peers,
            "expect_permission": "denied",
        },
        tmp_path,
    )
    assert not out.get("failed"), out.get("msg")
    assert {p["peer"] for p in out["permissions"] if not p["allowed"] and p["error_code"] == 403} == set(peers)


def test_turn_rejects_wrong_rest_secret(lab, inventory, tmp_path):
    out = run_module(
        inventory, "turn_allocation", {"host": lab["ip"], "rest_secret": "x" * 40, "rest_user": "attacker"}, tmp_path
    )
    assert out.get("failed")
    assert "401" in out["msg"] or "credential" in out["msg"].lower()


def test_unauthenticated_invite_to_outside_number_is_rejected(lab, inventory, tmp_path):
    # A toll-fraud attempt at the public address with guessed credentials -> no call.
    out = run_module(
        inventory,
        "sip_echo_call",
        {
            "host": lab["ip"],
            "target": "900442071234567",
            "username": "1000",
            "password": "guessed-password-1",
            "timeout": 10,
        },
        tmp_path,
    )
    assert out.get("failed")
    print("\n" + out["msg"])
    assert "401" in out["msg"] or "403" in out["msg"], out["msg"]


def _site(inventory, *extra: str) -> subprocess.CompletedProcess:
    return run_playbook(inventory, "site.yml", *extra)


def test_site_verbose_output_holds_no_secret(inventory):
    res = _site(inventory, "-v")
    assert res.returncode == 0, res.stdout[-3000:]
    recap = re.findall(r"changed=(\d+)", res.stdout)
    assert recap and all(n == "0" for n in recap), "re-running site.yml must change nothing: " + res.stdout[-1500:]
    secrets = json.loads((LAB / "secrets.yml").read_text())
    values = [v for v in secrets.values() if isinstance(v, str)] + list(secrets["lab_agent_passwords"].values())
    leaked = [v[:4] + "..." for v in values if v in res.stdout or v in res.stderr]
    assert not leaked, f"secret values in the -v output: {leaked}"


def test_live_call_survives_a_config_change_and_reconverge(phones, lab, inventory):
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    connect(a, b)
    wait_tone(b, TONES["1000"])  # media is up before the change
    # A dialplan/PJSIP value changes: site.yml re-renders and reloads (never restarts) Asterisk.
    res = _site(inventory, "-e", "asterisk_agent_call_limit=3", "--tags", "asterisk")
    assert res.returncode == 0, res.stdout[-3000:]
    assert re.search(r"RUNNING HANDLER \[[^\]]*: Reload asterisk\] \**\nchanged: ", res.stdout), res.stdout[-3000:]
    assert a.js("() => window.softphone.state().call") == "in-call"
    # The same call, still up: both directions heard again within a few seconds (a lost
    # media path, e.g. after a restart, never comes back).
    wait_tone(b, TONES["1000"], timeout=4.0)
    wait_tone(a, TONES["1001"], timeout=4.0)
    a.js("() => window.softphone.hangup()")
    res = _site(inventory, "--tags", "asterisk")  # back to the inventory's value
    assert res.returncode == 0, res.stdout[-3000:]


def test_nginx_config_change_reaches_the_running_nginx(lab, inventory):
    """A re-rendered nginx.conf is validated and reloaded into the running nginx (no restart).

    Regression: nginx.conf was bind-mounted as a single file, so a new version
    (a new inode) never reached the container until it was recreated.
    """

    def seen() -> str:
        out = lab_exec(lab, "docker", "exec", "webrtc-nginx", "nginx", "-T", "-c", "/etc/nginx/voiceops/nginx.conf")
        return re.search(r"worker_connections\s+(\d+)", out).group(1)

    started = lab_exec(lab, "docker", "inspect", "-f", "{{.State.StartedAt}}", "webrtc-nginx").strip()
    before = seen()
    res = _site(inventory, "-e", "nginx_tls_worker_connections=15999", "--tags", "nginx_tls")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Reload nginx workers" in res.stdout
    try:
        assert seen() == "15999"
        assert lab_exec(lab, "docker", "inspect", "-f", "{{.State.StartedAt}}", "webrtc-nginx").strip() == started
    finally:
        res = _site(inventory, "--tags", "nginx_tls")  # back to the inventory's value
        assert res.returncode == 0, res.stdout[-3000:]
    assert seen() == before


def test_asterisk_crash_recovers_and_agents_reregister(phones, lab):
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    pid = lab_exec(lab, "docker", "inspect", "-f", "{{.State.Pid}}", "webrtc-asterisk").strip()
    started = lab_exec(lab, "docker", "inspect", "-f", "{{.State.StartedAt}}", "webrtc-asterisk").strip()
    lab_exec(lab, "kill", "-9", pid)  # a crash, not a docker stop: the restart policy applies
    t0 = time.monotonic()
    deadline = t0 + 60
    back = None
    while time.monotonic() < deadline:
        now = lab_exec(lab, "docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.Running}}", "webrtc-asterisk")
        if now.split()[0] != started and now.split()[-1] == "true":
            back = time.monotonic() - t0
            break
        time.sleep(0.5)
    assert back is not None, "Asterisk did not come back by its restart policy"
    a.wait_reg("registered", timeout=45000)
    b.wait_reg("registered", timeout=45000)
    # both must really be registered in the new Asterisk, not just in the page
    deadline = time.monotonic() + 30
    contacts = ""
    while time.monotonic() < deadline:
        contacts = asterisk_cli(lab, "pjsip show contacts")
        if "1000/" in contacts and "1001/" in contacts:
            break
        time.sleep(1)
    took = time.monotonic() - t0
    print(f"\nAsterisk killed: container back in {back:.1f} s, both agents registered again after {took:.1f} s")
    assert "1000/" in contacts and "1001/" in contacts
    assert took <= 30, f"agents took {took:.1f} s to register again (goal 30 s)"


def test_nginx_restart_agents_reconnect(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    lab_exec(lab, "docker", "restart", "-t", "2", "webrtc-nginx")
    t0 = time.monotonic()
    deadline = t0 + 45
    contacts = ""
    while time.monotonic() < deadline:
        contacts = asterisk_cli(lab, "pjsip show contacts")
        state = a.js("() => window.softphone.state().registration")
        if state == "registered" and "1000/" in contacts and time.monotonic() - t0 > 3:
            break
        time.sleep(1)
    print(f"\nnginx restarted: agent registered again after {time.monotonic() - t0:.1f} s")
    assert a.js("() => window.softphone.state().registration") == "registered"
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])
    a.js("() => window.softphone.hangup()")


def _tls_probe(ip: str, port: int, proto: str) -> str:
    if "-cipher" not in proto:
        proto += " -cipher DEFAULT@SECLEVEL=0"
    cmd = f"echo | timeout 8 openssl s_client -connect {ip}:{port} {proto} 2>&1"
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout


def test_tls_scan_https_and_turns(lab):
    for port in (443, 8089, 5349):
        modern = _tls_probe(lab["ip"], port, "-tls1_2")
        assert "Cipher is (NONE)" not in modern and "Cipher is" in modern, f"{port}: TLS 1.2 not offered"
        if port != 5349:  # coturn 4.6.1 (Debian 12) serves TURN/TLS with TLS 1.2 only
            assert "TLSv1.3" in _tls_probe(lab["ip"], port, "-tls1_3"), f"{port}: TLS 1.3 not offered"
        for old in ("-tls1", "-tls1_1"):
            out = _tls_probe(lab["ip"], port, old)
            # refused with an alert, or left hanging until the timeout: never a completed handshake
            assert "BEGIN CERTIFICATE" not in out and not re.search(r"Cipher is (?!\(NONE\))", out), f"{port} {old}"
        weak = _tls_probe(lab["ip"], port, "-tls1_2 -cipher RC4:3DES:NULL:EXPORT:DES:MD5")
        assert "BEGIN CERTIFICATE" not in weak, f"{port}: a weak cipher was accepted"


def test_agent_call_limit(phones, lab):
    # asterisk_agent_call_limit (2) calls at once from one agent; the third is refused as busy.
    pages = [phones("1000") for _ in range(3)]
    for p in pages:
        p.login(lab["passwords"]["1000"])
    for p in pages[:2]:
        p.js("(t) => window.softphone.call(t)", "600")
        p.wait_call("in-call")
    pages[2].js("(t) => window.softphone.call(t)", "600")
    pages[2].page.wait_for_function(
        "() => ['ended', 'idle', 'failed'].includes(window.softphone.state().call)", timeout=15000
    )
    log = lab_exec(lab, "grep", "-c", "1000 is over its limit of 2 calls", "/var/log/voiceops/asterisk/messages.log")
    assert int(log.strip() or 0) > 0
    for p in pages[:2]:
        assert p.js("() => window.softphone.state().call") == "in-call"
        p.js("() => window.softphone.hangup()")
