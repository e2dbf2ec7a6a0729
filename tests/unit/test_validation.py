"""Bad inventory input fails in the roles' validation, naming the variable.

Each case runs the role's tasks/validate.yml (the same tasks site.yml's
preflight play runs before any change) through ansible-playbook on localhost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "validation" / "validate.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

GOOD_AGENTS = [
    {"extension": "1000", "password": "Str0ng-enough-pass1"},
    {"extension": "1001", "password": "Str0ng-enough-pass2"},
]
BASE = {
    "asterisk": {"asterisk_ami_secret": "a" * 20, "asterisk_health_secret": "h" * 20, "asterisk_agents": GOOD_AGENTS},
    "coturn": {"coturn_static_auth_secret": "s" * 30},
    "nginx_tls": {"nginx_tls_generate_lab_ca": True},
    "firewalld": {},
    "sipguard": {},
    "genesys_trunk": {
        "genesys_trunk_enabled": True,
        "genesys_trunk_primary": "192.0.2.10",
        "genesys_trunk_backup": "192.0.2.11",
        "asterisk_agents": GOOD_AGENTS,
        "asterisk_feature_codes": {"echo_test": "600", "conference": "700"},
        "genesys_trunk_dnis_routes": {
            "5000": {"type": "extension", "target": "1000"},
            "5001": {"type": "ring", "targets": ["1000", "1001"]},
            "5600": {"type": "internal", "target": "600"},
        },
    },
}
ROUTES = BASE["genesys_trunk"]["genesys_trunk_dnis_routes"]
# Recorded trunk calls need the asterisk role's recording directory.
RECORDING = {
    "asterisk_data_dir": "/var/lib/voiceops/asterisk",
    "asterisk_recording_dir": "/var/lib/voiceops/asterisk/spool/monitor",
}
RECORDED_ROUTES = {
    **ROUTES,
    "5010": {"type": "extension", "target": "1000", "record": True},
    "5011": {"type": "ring", "targets": ["1000", "1001"], "record": True},
    "5600": {"type": "internal", "target": "600", "record": True},
    "5601": {"type": "internal", "target": "1001", "record": False},
}
RANGE_SECRET = "r" * 30
RANGES = {"asterisk_agent_ranges": [{"first": 20000, "count": 500}], "asterisk_agent_range_secret": RANGE_SECRET}
VM_PIN = "482915"
ADMIN_PIN = "735106"
PROMPT = str(ROOT / "tests/unit/fixtures/prompt.wav")
HOLD = {"name": "support-hold", "files": [PROMPT]}
APPS = {
    "asterisk_voicemail_mailboxes": [{"extension": "1000", "pin": VM_PIN}, {"extension": "1001", "pin": "90210"}],
    "asterisk_conference_rooms": [
        {"number": "700", "name": "main", "admin_pin": ADMIN_PIN, "admins": ["1001"]},
        {"number": "701", "admin_pin": "111999", "pin": "222888", "record": True},
    ],
    "asterisk_queues": [
        {"number": "800", "name": "support", "members": ["1000", "1001"], "strategy": "rrmemory"},
        {"number": "801", "name": "sales", "members": ["1001"], "music_class": "support-hold"},
        {"number": "802", "name": "billing", "members": ["1000"], "music_class": ""},
    ],
    "asterisk_moh_classes": [HOLD, {"name": "night_2", "files": [PROMPT], "sort": "alpha"}],
    "asterisk_recording_dir": "/var/lib/voiceops/asterisk/spool/recordings",
    "asterisk_ivr_menus": [
        {
            "name": "main",
            "number": "500",
            "prompt_text": "For agent 1001 press 1.",
            "options": {
                "1": {"type": "extension", "target": "1001"},
                "2": {"type": "queue", "target": "support"},
                "3": {"type": "voicemail", "target": "1000"},
                "4": {"type": "conference", "target": "701"},
                "9": {"type": "menu", "target": "sub"},
            },
            "on_timeout": {"type": "queue", "target": "800"},
        },
        {
            "name": "sub",
            "prompt_file": PROMPT,
            "options": {"0": {"type": "hangup"}},
        },
    ],
}
IVR = APPS["asterisk_ivr_menus"][0]

CASES = [
    # (role, overrides, variable named in the error)
    ("asterisk", {"asterisk_rtp_port_start": 10000}, "asterisk_rtp_port_start"),
    ("asterisk", {"asterisk_rtp_port_start": 20000, "asterisk_rtp_port_end": 20050}, "asterisk_rtp_port_start"),
    ("asterisk", {"asterisk_agents": []}, "asterisk_agents"),
    ("asterisk", {"asterisk_agents": GOOD_AGENTS + [GOOD_AGENTS[0]]}, "asterisk_agents"),
    ("asterisk", {"asterisk_agents": [{"extension": "10a0", "password": "Str0ng-enough-pass1"}]}, "asterisk_agents"),
    ("asterisk", {"asterisk_agents": [{"extension": "1000", "password": "short"}]}, "asterisk_agents"),
    ("asterisk", {"asterisk_agents": [{"extension": "1000"}]}, "asterisk_agents"),
    ("asterisk", {"asterisk_ami_secret": "short"}, "asterisk_ami_secret"),
    ("asterisk", {"asterisk_codecs": ["opus", "speex"]}, "asterisk_codecs"),
    (
        "asterisk",
        {"asterisk_agents": [{"extension": "600", "password": "Str0ng-enough-pass1"}]},
        "asterisk_feature_codes",
    ),
    ("asterisk", {"asterisk_health_secret": "short"}, "asterisk_health_secret"),
    ("nginx_tls", {"nginx_tls_metrics_password": "short"}, "nginx_tls_metrics_password"),
    ("asterisk", {"asterisk_rtp_port_end": 70000}, "asterisk_rtp_port_start"),
    ("asterisk", {"asterisk_codecs": []}, "asterisk_codecs"),
    ("asterisk", {"asterisk_agents": [{"extension": "1000", "password": "onlylettersnodigits"}]}, "asterisk_agents"),
    ("coturn", {"coturn_relay_port_start": 49999, "coturn_relay_port_end": 49160}, "coturn_relay_port_start"),
    ("coturn", {"coturn_static_auth_secret": None}, "coturn_static_auth_secret"),
    ("nginx_tls", {"nginx_tls_ws_upstreams": []}, "nginx_tls_ws_upstreams"),
    ("firewalld", {"firewalld_sip_ports": ["5060"]}, "firewalld_sip_ports"),
    ("genesys_trunk", {"genesys_trunk_primary": ""}, "genesys_trunk_primary"),
    ("genesys_trunk", {"genesys_trunk_primary": "10.0.0.300"}, "genesys_trunk_primary"),
    ("genesys_trunk", {"genesys_trunk_backup": "192.0.2.10"}, "genesys_trunk_backup"),
    ("genesys_trunk", {"genesys_trunk_vip": "vip.example"}, "genesys_trunk_vip"),
    ("genesys_trunk", {"genesys_trunk_transport": "sctp"}, "genesys_trunk_transport"),
    ("genesys_trunk", {"genesys_trunk_auth_mode": "kerberos"}, "genesys_trunk_auth_mode"),
    ("genesys_trunk", {"genesys_trunk_auth_mode": "digest"}, "genesys_trunk_inbound_password"),
    (
        "genesys_trunk",
        {
            "genesys_trunk_auth_mode": "digest",
            "genesys_trunk_inbound_password": "Str0ng-enough-pass1",
            "genesys_trunk_outbound_password": "short",
        },
        "genesys_trunk_outbound_password",
    ),
    ("genesys_trunk", {"genesys_trunk_auth_mode": "tls"}, "genesys_trunk_tls_cert_file"),
    ("genesys_trunk", {"genesys_trunk_srtp": "sdes"}, "genesys_trunk_srtp"),
    ("genesys_trunk", {"genesys_trunk_codecs": ["opus"]}, "genesys_trunk_codecs"),
    (
        "genesys_trunk",
        {"genesys_trunk_number_rules": [{"pattern": "_0NXXXXXXXXX", "strip": 1, "prepend": "plus44"}]},
        "genesys_trunk_number_rules",
    ),
    ("genesys_trunk", {"genesys_trunk_blocked_patterns": ["premium numbers"]}, "genesys_trunk_blocked_patterns"),
    ("genesys_trunk", {"genesys_trunk_caller_id_mode": "fixed"}, "genesys_trunk_caller_id_number"),
    (
        "genesys_trunk",
        {"genesys_trunk_dnis_routes": {**ROUTES, "5002": {"type": "extension", "target": "1999"}}},
        "genesys_trunk_dnis_routes",
    ),
    ("genesys_trunk", {"genesys_trunk_dnis_routes": {**ROUTES, "5003": {}}}, "genesys_trunk_dnis_routes"),
    (
        "genesys_trunk",
        {"genesys_trunk_dnis_routes": {**ROUTES, "5004": {"type": "internal", "target": "9004412345"}}},
        "genesys_trunk_dnis_routes",
    ),
    (
        "genesys_trunk",
        {"genesys_trunk_dnis_routes": {"50x0": {"type": "extension", "target": "1000"}}},
        "genesys_trunk_dnis_routes",
    ),
    # Recorded routes and outbound calls (issue #4).
    (
        "genesys_trunk",
        {**RECORDING, "genesys_trunk_dnis_routes": {**ROUTES, "5600": {**ROUTES["5600"], "record": "always"}}},
        "genesys_trunk_dnis_routes",
    ),
    ("genesys_trunk", {**RECORDING, "genesys_trunk_record_outbound": "sometimes"}, "genesys_trunk_record_outbound"),
    ("genesys_trunk", {"genesys_trunk_dnis_routes": RECORDED_ROUTES}, "asterisk_recording_dir"),
    (
        "genesys_trunk",
        {**RECORDING, "asterisk_recording_dir": "/tmp/recordings", "genesys_trunk_dnis_routes": RECORDED_ROUTES},
        "asterisk_recording_dir",
    ),
    ("coturn", {"coturn_static_auth_secret": "tooshort"}, "coturn_static_auth_secret"),
    (
        "coturn",
        {
            "coturn_relay_port_start": 15000,
            "coturn_relay_port_end": 16000,
            "asterisk_rtp_port_start": 10082,
            "asterisk_rtp_port_end": 20000,
        },
        "coturn_relay_port_start",
    ),
    ("nginx_tls", {"nginx_tls_generate_lab_ca": False}, "nginx_tls_certificate_src"),
    (
        "nginx_tls",
        {
            "nginx_tls_generate_lab_ca": False,
            "nginx_tls_certificate_src": "/nonexistent/cert.pem",
            "nginx_tls_private_key_src": "/nonexistent/key.pem",
        },
        "nginx_tls_certificate_src",
    ),
    ("firewalld", {"firewalld_sip_sources": ["10.0.0.300/33x"]}, "firewalld_sip_sources"),
    ("firewalld", {"firewalld_ports": ["5038/tcp"]}, "firewalld_ports"),
    ("firewalld", {"firewalld_ports": ["https"]}, "firewalld_ports"),
    (
        "genesys_trunk",
        {"asterisk_agents": [{**GOOD_AGENTS[0], "outbound_class": "vip"}, GOOD_AGENTS[1]]},
        "genesys_trunk_outbound_classes",
    ),
    (
        "genesys_trunk",
        {"genesys_trunk_outbound_classes": {"default": ["everything"]}},
        "genesys_trunk_outbound_classes",
    ),
    ("asterisk", {"asterisk_agents": [{**GOOD_AGENTS[0], "call_limit": 0}]}, "asterisk_agents"),
    ("sipguard", {"sipguard_max_failures": 1}, "sipguard_max_failures"),
    ("sipguard", {"sipguard_ignore": ["office-nat"]}, "sipguard_ignore"),
    ("nginx_tls", {"nginx_tls_ws_upstreams": ["10.0.0.5:8088"]}, "nginx_tls_ws_client_loopback_bind"),
    # Agent ranges (thousands of agents, passwords derived from one secret).
    ("asterisk", {"asterisk_agent_ranges": [{"first": 20000, "count": 10}]}, "asterisk_agent_range_secret"),
    (
        "asterisk",
        {"asterisk_agent_ranges": [{"first": 20000, "count": 10}], "asterisk_agent_range_secret": "too-short"},
        "asterisk_agent_range_secret",
    ),
    ("asterisk", {**RANGES, "asterisk_agent_ranges": [{"first": 995, "count": 10}]}, "asterisk_agent_ranges"),
    ("asterisk", {**RANGES, "asterisk_agent_ranges": [{"first": 20000, "count": 0}]}, "asterisk_agent_ranges"),
    ("asterisk", {**RANGES, "asterisk_agent_ranges": [{"first": 99990, "count": 20}]}, "asterisk_agent_ranges"),
    (
        "asterisk",
        {**RANGES, "asterisk_agent_ranges": [{"first": 20000, "count": 10, "codecs": ["speex"]}]},
        "asterisk_agent_ranges",
    ),
    (
        "asterisk",
        {**RANGES, "asterisk_agent_ranges": [{"first": 20000, "count": 5, "team": "x"}]},
        "asterisk_agent_ranges",
    ),
    # PBX applications (issue #4).
    (
        "asterisk",
        {"asterisk_voicemail_mailboxes": [{"extension": "1999", "pin": VM_PIN}]},
        "asterisk_voicemail_mailboxes",
    ),
    ("asterisk", {"asterisk_voicemail_mailboxes": [{"extension": "1000"}]}, "asterisk_voicemail_mailboxes"),
    (
        "asterisk",
        {"asterisk_voicemail_mailboxes": [{"extension": "1000", "pin": "12ab"}]},
        "asterisk_voicemail_mailboxes",
    ),
    (
        "asterisk",
        {"asterisk_voicemail_mailboxes": [{"extension": "1000", "pin": VM_PIN}, {"extension": "1000", "pin": VM_PIN}]},
        "asterisk_voicemail_mailboxes",
    ),
    (
        "asterisk",
        {
            "asterisk_conference_require_pin": True,
            "asterisk_conference_rooms": [{"number": "700", "admin_pin": ADMIN_PIN}],
        },
        "asterisk_conference_rooms",
    ),
    ("asterisk", {"asterisk_conference_rooms": [{"number": "700"}]}, "asterisk_conference_rooms"),
    (
        "asterisk",
        {"asterisk_conference_rooms": [{"number": "700", "admin_pin": ADMIN_PIN, "admins": ["1999"]}]},
        "asterisk_conference_rooms",
    ),
    (
        "asterisk",
        {"asterisk_conference_rooms": [{"number": "1000", "admin_pin": ADMIN_PIN}]},
        "asterisk_conference_rooms",
    ),
    (
        "asterisk",
        {"asterisk_queues": [{"number": "800", "name": "support", "members": ["1000", "1999"]}]},
        "asterisk_queues",
    ),
    ("asterisk", {"asterisk_queues": [{"number": "800", "name": "support", "members": []}]}, "asterisk_queues"),
    (
        "asterisk",
        {"asterisk_queues": [{"number": "800", "name": "support", "members": ["1000"], "strategy": "loudest"}]},
        "asterisk_queues",
    ),
    ("asterisk", {"asterisk_recording_dir": "/tmp/recordings"}, "asterisk_recording_dir"),
    ("asterisk", {"asterisk_recording_dir": "/var/lib/voiceops/asterisk/spool/../../../etc"}, "asterisk_recording_dir"),
    (
        "asterisk",
        {"asterisk_recording_encrypt_certificate": "not a certificate"},
        "asterisk_recording_encrypt_certificate",
    ),
    (
        "asterisk",
        {"asterisk_ivr_menus": [{**IVR, "options": {"1": {"type": "extension", "target": "1999"}}}]},
        "asterisk_ivr_menus",
    ),
    (
        "asterisk",
        {"asterisk_ivr_menus": [{**IVR, "options": {"1": {"type": "menu", "target": "nowhere"}}}]},
        "asterisk_ivr_menus",
    ),
    (
        "asterisk",
        {"asterisk_ivr_menus": [{**IVR, "options": {"1": {"type": "queue", "target": "sales"}}}]},
        "asterisk_ivr_menus",
    ),
    ("asterisk", {"asterisk_ivr_menus": [{**IVR, "on_timeout": {"type": "teleport"}}]}, "asterisk_ivr_menus"),
    ("asterisk", {"asterisk_ivr_menus": [{**IVR, "prompt_file": "/x.wav"}]}, "asterisk_ivr_menus"),
    (
        "asterisk",
        {"asterisk_ivr_menus": [{"name": "main", "prompt_file": "/nonexistent/prompt.wav", "options": {}}]},
        "asterisk_ivr_menus",
    ),
    ("asterisk", {"asterisk_ivr_menus": [{**IVR, "number": "1000", "options": {}}]}, "asterisk_ivr_menus"),
    # Music on hold: a queue's music_class must be "", default or a class; classes need files on the controller.
    (
        "asterisk",
        {"asterisk_queues": [{"number": "800", "name": "support", "members": ["1000"], "music_class": "jazz"}]},
        "asterisk_queues",
    ),
    (
        "asterisk",
        {"asterisk_moh_classes": [{"name": "hold", "files": ["/nonexistent/hold.wav"]}]},
        "asterisk_moh_classes",
    ),
    ("asterisk", {"asterisk_moh_classes": [{**HOLD, "name": "Support Hold"}]}, "asterisk_moh_classes"),
    ("asterisk", {"asterisk_moh_classes": [{**HOLD, "name": "default"}]}, "asterisk_moh_classes"),
    (
        "asterisk",
        {"asterisk_sounds_archives": [{"url": "downloads.asterisk.org/core-sounds.tar.gz"}]},
        "asterisk_sounds_archives",
    ),
    (
        "asterisk",
        {"asterisk_sounds_archives": [{"url": "https://mirror.example/core-sounds-en-wav.tar.gz", "type": "prompts"}]},
        "asterisk_sounds_archives",
    ),
    (
        "asterisk",
        {"asterisk_sounds_archives": [{"url": "https://mirror.example/moh.tar.gz", "type": "moh", "checksum": "abc"}]},
        "asterisk_sounds_archives",
    ),
    ("asterisk", {"asterisk_moh_classes": [HOLD, HOLD]}, "asterisk_moh_classes"),
    ("asterisk", {"asterisk_moh_classes": [{**HOLD, "files": ["/srv/music/hold.mp3"]}]}, "asterisk_moh_classes"),
    # Recordings inside the music on hold directory would be pruned with it.
    ("asterisk", {"asterisk_recording_dir": "/var/lib/voiceops/asterisk/spool/moh/rec"}, "asterisk_recording_dir"),
]


def run_validate(role: str, extra: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return validate_with({"validate_role": role, **BASE[role], **extra}, tmp_path)


def validate_with(variables: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run tests/validation/validate.yml on localhost with these variables (validate_role names the role)."""
    if not ANSIBLE_PLAYBOOK.exists() and not shutil.which("ansible-playbook"):
        pytest.fail("ansible-playbook not found: run the tests from the project venv (make unit)")
    varsfile = tmp_path / "vars.json"
    varsfile.write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    exe = str(ANSIBLE_PLAYBOOK) if ANSIBLE_PLAYBOOK.exists() else "ansible-playbook"
    return subprocess.run(
        [exe, "-i", "localhost,", str(PLAYBOOK), "-e", f"@{varsfile}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("role", sorted(BASE))
def test_good_input_passes(role, tmp_path):
    res = run_validate(role, {}, tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


@pytest.mark.parametrize("role,extra,variable", CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_fails_naming_the_variable(role, extra, variable, tmp_path):
    res = run_validate(role, extra, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"bad input was accepted: {extra}"
    failed = [line for line in out.splitlines() if "msg" in line or "FAILED" in line or variable in line]
    assert variable in out, "\n".join(failed)[-2000:]
    for value in ("Str0ng-enough-pass1", "a" * 20, "h" * 20, "s" * 30, RANGE_SECRET, VM_PIN, ADMIN_PIN):
        assert value not in out, "a secret value appeared in the output"


@pytest.mark.parametrize("role", ["asterisk", "genesys_trunk"])
def test_agent_ranges_pass(role, tmp_path):
    """500 range agents (and a DNIS route to one of them) validate, without printing the range secret."""
    extra = dict(RANGES)
    if role == "genesys_trunk":
        extra["genesys_trunk_dnis_routes"] = {**ROUTES, "5002": {"type": "extension", "target": "20499"}}
    res = run_validate(role, extra, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert RANGE_SECRET not in out


def test_applications_pass(tmp_path):
    """Mailboxes, rooms, a queue, IVR menus and a recording directory validate, without printing a PIN."""
    res = run_validate("asterisk", APPS, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert VM_PIN not in out and ADMIN_PIN not in out


def test_recorded_trunk_calls_pass(tmp_path):
    """record: true on every route type and genesys_trunk_record_outbound validate with a recording directory."""
    extra = {**RECORDING, "genesys_trunk_dnis_routes": RECORDED_ROUTES, "genesys_trunk_record_outbound": True}
    res = run_validate("genesys_trunk", extra, tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {**RECORDING, "genesys_trunk_dnis_routes": {**ROUTES, "5600": {**ROUTES["5600"], "record": "yes"}}},
            'genesys_trunk_dnis_routes["5600"]: record must be true or false',
        ),
        ({"genesys_trunk_dnis_routes": RECORDED_ROUTES}, "genesys_trunk_dnis_routes 5010, 5011, 5600 (record: true)"),
        ({"genesys_trunk_record_outbound": True}, "genesys_trunk_record_outbound records calls"),
        (
            {**RECORDING, "asterisk_recording_dir": "/tmp/recordings", "genesys_trunk_record_outbound": True},
            "asterisk_recording_dir (/tmp/recordings)",
        ),
    ],
    ids=["record-not-boolean", "routes-without-recording-dir", "outbound-without-recording-dir", "dir-outside-spool"],
)
def test_recording_errors_name_the_route_and_setting(extra, message, tmp_path):
    res = run_validate("genesys_trunk", extra, tmp_path)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, f"bad input was accepted: {extra}"
    assert message in out, out[-2000:]


def test_shared_numbers_are_listed_once(tmp_path):
    """A queue on a conference room's number fails, naming that number once (the list is built in linear time)."""
    queues = APPS["asterisk_queues"] + [{"number": "701", "name": "dup", "members": ["1000"]}]
    res = run_validate("asterisk", {**APPS, **RANGES, "asterisk_queues": queues}, tmp_path)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, "a number shared by a queue and a room was accepted"
    assert "share numbers: 701" in out and "share numbers: 701 701" not in out, out[-2000:]
