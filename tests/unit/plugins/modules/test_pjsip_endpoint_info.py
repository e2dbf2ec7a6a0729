# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import time

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.modules import pjsip_endpoint_info
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module

SECRET = "Sup3r-s3cret:AMI"


def args_for(server, **extra):
    args = {
        "ami_host": server.host,
        "ami_port": server.port,
        "ami_username": "ansible",
        "ami_secret": SECRET,
        "timeout": 2,
    }
    args.update(extra)
    return args


def run(server, check_mode=False, **extra):
    return run_module(pjsip_endpoint_info.main, args_for(server, **extra), check_mode=check_mode)


def assert_no_secret(result):
    text = json.dumps(result)
    assert SECRET not in text
    assert "AuthDetail" not in text
    assert "1000-auth" not in text


def test_normal(ami_server):
    server = ami_server("normal")
    failed, result = run(server)
    assert not failed, result
    assert result["changed"] is False
    assert [ep["name"] for ep in result["endpoints"]] == ["1000", "1001", "genesys-trunk"]
    assert result["summary"] == {
        "total": 3,
        "online": 2,
        "offline": 1,
        "registered": 2,
        "contacts_total": 2,
        "contacts_reachable": 1,
    }
    assert result["missing"] == []
    assert result["failing"] == []
    assert result["polls"] == 1
    trunk = result["endpoints"][2]
    assert trunk["contacts"][0]["rtt_ms"] == 1.234
    # exactly one list action of each kind, never the per-endpoint action
    assert server.action_names() == ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts", "Logoff"]
    assert server.errors == []
    assert_no_secret(result)


def test_check_mode(ami_server):
    server = ami_server("normal")
    failed, result = run(server, check_mode=True)
    assert not failed
    assert result["changed"] is False
    assert result["summary"]["total"] == 3


def test_filter_by_name(ami_server):
    server = ami_server("normal")
    failed, result = run(server, endpoints=["genesys-trunk", "9999"])
    assert not failed
    assert [ep["name"] for ep in result["endpoints"]] == ["genesys-trunk"]
    assert result["missing"] == ["9999"]
    assert result["summary"]["total"] == 1
    assert "PJSIPShowEndpoint" not in server.action_names()


def test_empty(ami_server):
    server = ami_server("empty")
    failed, result = run(server)
    assert not failed
    assert result["endpoints"] == []
    assert result["summary"]["total"] == 0


def test_auth_failure(ami_server):
    server = ami_server("auth_failure")
    failed, result = run(server)
    assert failed
    assert result["msg"].startswith("AMI login failed: Authentication failed")
    assert "'ansible'" in result["msg"]
    assert_no_secret(result)


def test_connection_refused(ami_server):
    server = ami_server("refused")
    failed, result = run(server)
    assert failed
    assert result["msg"].startswith(f"AMI connection failed: Connection refused by AMI at 127.0.0.1:{server.port}")


def test_timeout(ami_server):
    server = ami_server("timeout")
    start = time.monotonic()
    failed, result = run(server, timeout=0.4)
    assert failed
    assert result["msg"].startswith("AMI timeout: Timed out after 0.4s")
    assert time.monotonic() - start < 3


def test_malformed(ami_server):
    server = ami_server("malformed")
    failed, result = run(server)
    assert failed
    assert "AMI protocol error" in result["msg"]


def test_wait_until_registered(ami_server):
    server = ami_server("registering")
    failed, result = run(server, wait_for="online", wait_timeout=5, poll_interval=0.05)
    assert not failed, result
    assert result["polls"] == 2
    assert result["endpoints"][0]["online"] is True
    assert result["condition"] == "1 of 1 endpoint(s) online"
    # one session for all polls
    assert server.action_names().count("Login") == 1
    assert server.errors == []


def test_wait_timeout_lists_exactly_the_failing_endpoints(ami_server, transcript):
    data = transcript("normal")
    data["repeat_tail"] = 2
    server = ami_server(data)
    start = time.monotonic()
    failed, result = run(server, wait_for="reachable", wait_timeout=0.3, poll_interval=0.05)
    assert failed
    assert time.monotonic() - start < 3
    assert result["failing"] == ["1000", "1001"]
    msg = result["msg"]
    assert msg.startswith("Timed out after 0.3s (")
    assert "waiting for endpoints to be reachable" in msg
    assert "1000 (device state Not in use, contacts: 1 NonQualified)" in msg
    assert "1001 (device state Unavailable, no contacts)" in msg
    assert "genesys-trunk" not in msg
    assert result["polls"] >= 2
    assert result["summary"]["total"] == 3
    assert "PJSIPShowEndpoint" not in server.action_names()
    assert_no_secret(result)


def test_wait_timeout_zero_checks_once(ami_server):
    server = ami_server("normal")
    failed, result = run(server, wait_for="online")
    assert failed
    assert result["polls"] == 1
    assert result["failing"] == ["1001"]
    assert "checked once" in result["msg"]


def test_wait_for_named_endpoints(ami_server):
    server = ami_server("normal")
    failed, result = run(server, wait_for="registered", endpoints=["1000", "genesys-trunk"])
    assert not failed
    assert result["failing"] == []


def test_min_online(ami_server):
    server = ami_server("normal")
    failed, result = run(server, min_online=2)
    assert not failed
    assert result["condition"].startswith("2 of 3 endpoint(s) online, need at least 2")


def test_missing_endpoint_fails_wait(ami_server):
    server = ami_server("normal")
    failed, result = run(server, wait_for="online", endpoints=["1000", "ghost"])
    assert failed
    assert result["failing"] == ["ghost"]
    assert "ghost (not found)" in result["msg"]


def test_wait_retries_connection_until_deadline(ami_server):
    server = ami_server("refused")
    start = time.monotonic()
    failed, result = run(server, wait_for="online", wait_timeout=0.3, poll_interval=0.05)
    assert failed
    assert "Connection refused" in result["msg"]
    assert 0.2 < time.monotonic() - start < 3


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"poll_interval": 0}, "poll_interval must be greater than 0"),
        ({"wait_timeout": -1}, "wait_timeout must not be negative"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"min_online": -1}, "min_online must not be negative"),
    ],
)
def test_invalid_arguments(ami_server, extra, message):
    server = ami_server("refused")
    failed, result = run(server, **extra)
    assert failed
    assert result["msg"] == message


def test_required_arguments():
    failed, result = run_module(pjsip_endpoint_info.main, {"ami_username": "x"})
    assert failed
    assert "ami_secret" in result["msg"]
