"""The collection's modules and playbooks/health.yml against the real stack."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request

from conftest import LAB, _health, ami_args, lab_exec, run_module


def test_pjsip_endpoint_info_sees_browser_agent(phones, lab, inventory, tmp_path):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    out = run_module(
        inventory,
        "pjsip_endpoint_info",
        ami_args(endpoints=["1000", "1001", "1002"], wait_for="registered", min_online=1, wait_timeout=15),
        tmp_path,
    )
    assert not out.get("failed"), out.get("msg")
    eps = {e["name"]: e for e in out["endpoints"]}
    assert eps["1000"]["online"] is True
    contact = eps["1000"]["contacts"][0]
    assert contact["status"] in ("Reachable", "NonQualified")
    assert "JsSIP" in (contact.get("user_agent") or "")
    assert lab["passwords"]["1000"] not in json.dumps(out)


def test_wait_times_out_naming_the_missing_endpoints(phones, lab, inventory, tmp_path):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    t0 = time.monotonic()
    out = run_module(
        inventory,
        "pjsip_endpoint_info",
        ami_args(endpoints=["1000", "1002"], wait_for="registered", wait_timeout=3),
        tmp_path,
    )
    assert out.get("failed"), "waiting for an unregistered endpoint must fail"
    assert "1002" in out["msg"]
    assert time.monotonic() - t0 < 120


def test_health_playbook_passes_with_a_synthetic_call(lab, inventory, tmp_path):
    res, report = _health(inventory, tmp_path)
    print("\n" + "\n".join(line for line in res.stdout.splitlines() if line.strip().startswith(("OK ", "FAIL "))))
    assert res.returncode == 0, res.stdout[-4000:]
    checks = {c["check"]: c for c in report["checks"]}
    for name in (
        "softphone HTTPS 200",
        "SIP OPTIONS to Asterisk",
        "agents registered",
        "synthetic call (echo test)",
        "STUN binding",
        "TURN allocation",
    ):
        assert checks[name]["ok"], checks[name]
    assert "tone SNR" in checks["synthetic call (echo test)"]["detail"]
    for secret in json.loads((LAB / "secrets.yml").read_text()).values():
        if isinstance(secret, str):
            assert secret not in res.stdout


def test_health_playbook_fails_naming_coturn_checks(lab, inventory, tmp_path):
    lab_exec(lab, "docker", "stop", "webrtc-coturn")
    try:
        res, report = _health(inventory, tmp_path)
    finally:
        lab_exec(lab, "docker", "start", "webrtc-coturn")
    assert res.returncode != 0
    failed = {c["check"] for c in report["checks"] if not c["ok"]}
    assert failed == {"STUN binding", "TURN allocation"}, failed
    assert "STUN binding" in res.stdout and "Failed health checks" in res.stdout


def test_call_quality_lands_in_the_cdr(lab, inventory, tmp_path):
    # The synthetic call of the health check is a real call: its RTCP figures land in the CDR.
    _health(inventory, tmp_path)
    cdr = lab_exec(lab, "tail", "-n", "3", "/var/log/voiceops/asterisk/cdr-custom/Master.csv")
    assert "rxjitter=" in cdr and "rtt=" in cdr, cdr


def _get(url: str, auth: str | None = None) -> tuple[int, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_metrics_only_with_authentication(lab):
    password = json.loads((LAB / "secrets.yml").read_text())["nginx_tls_metrics_password"]
    status, _ = _get(f"https://{lab['ip']}/metrics")
    assert status == 401
    status, _ = _get(f"https://{lab['ip']}/metrics", "prometheus:wrong-password")
    assert status == 401
    status, body = _get(f"https://{lab['ip']}/metrics", f"prometheus:{password}")
    assert status == 200
    assert "asterisk_core_uptime_seconds" in body or "asterisk_" in body
