"""Bad voicemail_portal input fails in the role's validation, naming the variable, without printing secrets.

Runs roles/voicemail_portal/tasks/validate.yml (what site.yml's preflight play
runs) through tests/validation/validate.yml on localhost, like test_validation.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_validation import validate_with

SECRET = "v" * 30
AGENTS = [
    {"extension": "1000", "password": "Str0ng-enough-pass1"},
    {"extension": "1001", "password": "Str0ng-enough-pass2"},
]
BASE = {
    "validate_role": "voicemail_portal",
    "voicemail_portal_secret": SECRET,
    "asterisk_agents": AGENTS,
    "asterisk_ami_secret": "a" * 20,
    "voicemail_portal_emails": {"1000": "agent1000@example.com"},
}
RELAY = {"voicemail_portal_smtp_host": "smtp.example.com", "voicemail_portal_smtp_from": "pbx@example.com"}

CASES = [
    ({"voicemail_portal_secret": None}, "voicemail_portal_secret"),
    ({"voicemail_portal_secret": "too-short"}, "voicemail_portal_secret"),
    ({"voicemail_portal_port": 70000}, "voicemail_portal_port"),
    ({**RELAY, "voicemail_portal_smtp_port": 0}, "voicemail_portal_smtp_port"),
    ({**RELAY, "voicemail_portal_smtp_port": "smtp"}, "voicemail_portal_smtp_port"),
    ({**RELAY, "voicemail_portal_smtp_tls": "ssl"}, "voicemail_portal_smtp_tls"),
    ({"voicemail_portal_smtp_host": "smtp.example.com"}, "voicemail_portal_smtp_from"),
    ({**RELAY, "voicemail_portal_smtp_username": "pbx"}, "voicemail_portal_smtp_password"),
    ({"voicemail_portal_emails": {"1999": "x@example.com"}}, "voicemail_portal_emails"),
    ({"voicemail_portal_emails": {"1000": "not an address"}}, "voicemail_portal_emails"),
    ({"asterisk_ami_secret": None}, "voicemail_portal_ami_secret"),
    ({"voicemail_portal_poll_interval": 0}, "voicemail_portal_poll_interval"),
]


def run_validate(extra: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    variables = {**BASE, **extra}
    return validate_with({k: v for k, v in variables.items() if v is not None}, tmp_path)


@pytest.mark.parametrize(
    "extra",
    [{}, {**RELAY, "voicemail_portal_smtp_username": "pbx", "voicemail_portal_smtp_password": "s3cret-smtp-pw"}],
    ids=["defaults", "relay-with-login"],
)
def test_good_input_passes(extra, tmp_path):
    res = run_validate(extra, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert SECRET not in out and "s3cret-smtp-pw" not in out


@pytest.mark.parametrize("extra,variable", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_fails_naming_the_variable(extra, variable, tmp_path):
    res = run_validate(extra, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"bad input was accepted: {extra}"
    assert variable in out, out[-2000:]
    for value in (SECRET, "Str0ng-enough-pass1", "a" * 20):
        assert value not in out, "a secret value appeared in the output"
