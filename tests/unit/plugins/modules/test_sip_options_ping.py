# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.voiceops.webrtc_pbx.plugins.modules import sip_options_ping
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import (
    refused_udp_port,
    silent_responder,
    sip_responder,
)
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module


def run(check_mode=False, **args):
    return run_module(sip_options_ping.main, args, check_mode=check_mode)


def test_ok():
    with sip_responder() as server:
        failed, result = run(host=server.host, port=server.port, timeout=2)
    assert not failed, result
    assert result["changed"] is False
    assert result["status_code"] == 200
    assert result["reason"] == "OK"
    assert result["server"] == "FakeAsterisk PBX 22.10.1"
    assert result["rtt_ms"] >= 0
    assert result["request_uri"] == f"sip:127.0.0.1:{server.port}"


def test_check_mode_still_pings():
    with sip_responder() as server:
        failed, result = run(check_mode=True, host=server.host, port=server.port, timeout=2)
    assert not failed
    assert result["status_code"] == 200
    assert len(server.requests) == 1


def test_unexpected_status_fails():
    with sip_responder(known_users={"1000"}) as server:
        failed, result = run(host=server.host, port=server.port, user="4711", timeout=2)
    assert failed
    assert result["status_code"] == 404
    port = server.port
    assert result["msg"] == (
        f"127.0.0.1:{port} over udp answered OPTIONS sip:4711@127.0.0.1:{port} with 404 Not Found, expected 200"
    )


def test_expected_error_status_passes():
    with sip_responder(status=503, reason="Service Unavailable") as server:
        failed, result = run(host=server.host, port=server.port, expected_status=[200, 503], timeout=2)
    assert not failed
    assert result["status_code"] == 503


def test_tcp_without_server_header():
    with sip_responder(transport="tcp", server=None) as server:
        failed, result = run(host=server.host, port=server.port, transport="tcp", timeout=2)
    assert not failed
    assert result["server"] is None


def test_timeout_message():
    with silent_responder() as server:
        failed, result = run(host=server.host, port=server.port, timeout=0.3)
    assert failed
    assert result["msg"].startswith(f"SIP OPTIONS timed out: No final SIP response from 127.0.0.1:{server.port}")
    assert "status_code" not in result


def test_refused_message():
    port = refused_udp_port()
    failed, result = run(host="127.0.0.1", port=port, timeout=2)
    assert failed
    assert "ICMP port unreachable" in result["msg"]


def test_invalid_timeout():
    failed, result = run(host="127.0.0.1", timeout=0)
    assert failed
    assert result["msg"] == "timeout must be greater than 0"
