# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun
from ansible_collections.voiceops.webrtc_pbx.plugins.modules import turn_allocation
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_turn import DEFAULT_USERS, FakeTURNServer
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import refused_udp_port
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module

USER, PASSWORD = next(iter(DEFAULT_USERS.items()))
SECRET = "a-long-static-auth-secret-for-tests"


def run(server=None, check_mode=False, **args):
    if server is not None:
        args = dict({"host": server.host, "port": server.port, "transport": server.transport, "timeout": 2}, **args)
    if "rest_secret" not in args:
        args.setdefault("username", USER)
        args.setdefault("password", PASSWORD)
    return run_module(turn_allocation.main, args, check_mode=check_mode)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_success(transport):
    with FakeTURNServer(transport=transport) as server:
        failed, result = run(server)
    assert not failed, result
    assert server.errors == []
    assert result["changed"] is False
    assert (result["relayed_address"], result["relayed_port"]) == ("127.0.0.1", 49152)
    assert result["mapped_address"] == "127.0.0.1"
    assert result["mapped_port"] > 0
    assert result["lifetime"] == 600
    assert isinstance(result["rtt_ms"], float)
    assert result["permissions"] == []
    assert result["username"] == USER
    assert result["realm"] == "lab.example"
    assert result["auth_required"] is True
    assert result["released"] is True
    assert result["software"] == "FakeTURN 1.0"
    assert server.methods() == ["Allocate", "Allocate", "Refresh"]
    assert server.allocations == {}
    assert PASSWORD not in json.dumps(result)


def test_check_mode_runs():
    with FakeTURNServer() as server:
        failed, result = run(server, check_mode=True)
    assert not failed
    assert result["changed"] is False
    assert result["relayed_port"] == 49152


def test_rest_credentials():
    with FakeTURNServer(rest_secret=SECRET) as server:
        before = int(time.time())
        failed, result = run(server, rest_secret=SECRET)
    assert not failed, result
    match = re.fullmatch(r"(\d+):health", result["username"])
    assert match and before + 300 <= int(match.group(1)) <= int(time.time()) + 300
    # The credential the fake server accepted is the coturn one: base64(HMAC-SHA1(secret, username)).
    request = server.requests[1]
    assert stun.get_attribute(request, stun.ATTR_USERNAME) == result["username"].encode()
    password = base64.b64encode(hmac.new(SECRET.encode(), result["username"].encode(), hashlib.sha1).digest()).decode()
    key = hashlib.md5(f"{result['username']}:lab.example:{password}".encode()).digest()
    assert stun.check_message_integrity(server.raw_requests[1], key) is True
    assert SECRET not in json.dumps(result) and password not in json.dumps(result)


def test_rest_user_and_ttl():
    with FakeTURNServer(rest_secret=SECRET) as server:
        failed, result = run(server, rest_secret=SECRET, rest_user="monitor", rest_ttl=60)
    assert not failed
    expiry, user = result["username"].split(":")
    assert user == "monitor"
    assert int(expiry) <= time.time() + 60


def test_rest_wrong_secret():
    with FakeTURNServer(rest_secret=SECRET) as server:
        failed, result = run(server, rest_secret="not-the-secret")
    assert failed
    assert "wrong credentials or realm" in result["msg"]
    assert "not-the-secret" not in json.dumps(result)


def test_wrong_password():
    with FakeTURNServer() as server:
        failed, result = run(server, password="hunter2")
    assert failed
    assert result["error_code"] == 401
    assert result["msg"] == (
        f"TURN server 127.0.0.1:{server.port} over udp: TURN Allocate rejected with 401 Unauthorized after "
        "authenticating as 'alice' in realm 'lab.example': wrong credentials or realm"
    )
    assert "hunter2" not in json.dumps(result)
    assert server.methods() == ["Allocate", "Allocate"]


def test_wrong_realm():
    with FakeTURNServer() as server:
        failed, result = run(server, realm="elsewhere.example")
    assert failed
    assert "in realm 'elsewhere.example': wrong credentials or realm" in result["msg"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_timeout(transport):
    with FakeTURNServer(transport=transport, silent=True) as server:
        failed, result = run(server, timeout=0.3)
    assert failed
    assert result["msg"].startswith(
        f"TURN timeout: No TURN Allocate response from 127.0.0.1:{server.port} over {transport} within 0.3s"
    )
    assert result["msg"].endswith("is the TURN server running and the port open in the firewall?")


def test_refused():
    failed, result = run(host="127.0.0.1", port=refused_udp_port(), timeout=2)
    assert failed
    assert "refused" in result["msg"]


def test_denied_peers_as_expected():
    with FakeTURNServer() as server:
        failed, result = run(server, permission_peers=["127.0.0.1", "10.20.30.40"], expect_permission="denied")
    assert not failed, result
    assert result["permissions"] == [
        {"peer": "127.0.0.1", "allowed": False, "error_code": 403, "reason": "Forbidden"},
        {"peer": "10.20.30.40", "allowed": False, "error_code": 403, "reason": "Forbidden"},
    ]
    assert result["released"] is True


def test_allowed_peers_as_expected_tcp():
    with FakeTURNServer(transport="tcp") as server:
        failed, result = run(server, permission_peers=["192.0.2.1", "2001:db8::5"])
    assert not failed, result
    assert [p["allowed"] for p in result["permissions"]] == [True, True]
    assert server.methods() == ["Allocate", "Allocate", "CreatePermission", "CreatePermission", "Refresh"]


def test_expected_allowed_but_denied():
    with FakeTURNServer() as server:
        failed, result = run(server, permission_peers=["192.0.2.1", "127.0.0.1", "10.0.0.1"])
    assert failed
    assert result["msg"] == (
        f"TURN server 127.0.0.1:{server.port} over udp: CreatePermission outcome differs from "
        "expect_permission=allowed for 2 peer(s): 127.0.0.1 (403 Forbidden), 10.0.0.1 (403 Forbidden)"
    )
    assert [p["allowed"] for p in result["permissions"]] == [True, False, False]
    assert result["released"] is True  # freed before failing
    assert server.allocations == {}


def test_expected_denied_but_allowed():
    with FakeTURNServer() as server:
        failed, result = run(server, permission_peers=["10.0.0.1", "198.51.100.9"], expect_permission="denied")
    assert failed
    assert result["msg"].endswith("expect_permission=denied for 1 peer(s): 198.51.100.9 (allowed)")


def test_stale_nonce_retry():
    with FakeTURNServer(stale_nonces=1) as server:
        failed, result = run(server, permission_peers=["192.0.2.1"])
    assert not failed, result
    assert server.methods() == ["Allocate", "Allocate", "Allocate", "CreatePermission", "Refresh"]


@pytest.mark.parametrize(
    "code, reason, hint",
    [
        (486, "Allocation Quota Reached", "user-quota/total-quota"),
        (508, "Insufficient Capacity", "min-port/max-port"),
        (437, "Allocation Mismatch", "an allocation already exists"),
    ],
)
def test_allocate_errors(code, reason, hint):
    with FakeTURNServer(allocate_error=(code, reason)) as server:
        failed, result = run(server)
    assert failed
    assert (result["error_code"], result["reason"]) == (code, reason)
    assert f"TURN Allocate failed with {code} {reason} (" in result["msg"]
    assert hint in result["msg"]
    assert server.methods() == ["Allocate", "Allocate"]  # nothing allocated, no Refresh


@pytest.mark.parametrize(
    "args, message",
    [
        ({"permission_peers": ["turn.example.com", "10.0.0.1:3478"]}, "permission_peers must be IP addresses"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"rest_secret": SECRET, "rest_ttl": 0}, "rest_ttl must be greater than 0"),
    ],
)
def test_bad_parameters(args, message):
    failed, result = run(host="127.0.0.1", **args)
    assert failed
    assert message in result["msg"]


def test_credentials_required():
    failed, result = run_module(turn_allocation.main, {"host": "127.0.0.1"})
    assert failed
    assert "username" in result["msg"] and "rest_secret" in result["msg"]


def test_static_and_rest_credentials_exclusive():
    failed, result = run(host="127.0.0.1", rest_secret=SECRET, username=USER, password=PASSWORD)
    assert failed
    assert "mutually exclusive" in result["msg"]
