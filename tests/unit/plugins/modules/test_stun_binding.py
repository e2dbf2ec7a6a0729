# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun
from ansible_collections.voiceops.webrtc_pbx.plugins.modules import stun_binding
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import (
    refused_udp_port,
    silent_responder,
    stun_responder,
)
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module


def run(check_mode=False, **args):
    return run_module(stun_binding.main, args, check_mode=check_mode)


def test_ok_udp():
    with stun_responder() as server:
        failed, result = run(host=server.host, port=server.port, timeout=2)
    assert not failed, result
    assert result["changed"] is False
    assert result["mapped_address"] == "127.0.0.1"
    assert result["mapped_port"] == result["local_address"]["port"]
    assert result["mapped_family"] == "IPv4"
    assert result["software"] == "FakeSTUN 1.0"
    assert result["attributes"] == ["XOR-MAPPED-ADDRESS", "MAPPED-ADDRESS", "SOFTWARE", "FINGERPRINT"]


def test_ipv6_mapped_address_and_other_address():
    other = stun.encode_address("192.0.2.2", 3479, xor=False)
    with stun_responder(mapped=("2001:db8::7", 61000), extra_attributes=[(stun.ATTR_OTHER_ADDRESS, other)]) as server:
        failed, result = run(host=server.host, port=server.port, timeout=2, software="ansible-test")
    assert not failed
    assert (result["mapped_address"], result["mapped_port"], result["mapped_family"]) == ("2001:db8::7", 61000, "IPv6")
    assert result["other_address"] == {"address": "192.0.2.2", "port": 3479}
    request = stun.parse_message(server.requests[0])
    assert stun.get_attribute(request, stun.ATTR_SOFTWARE) == b"ansible-test"


def test_check_mode_tcp():
    with stun_responder(transport="tcp") as server:
        failed, result = run(check_mode=True, host=server.host, port=server.port, transport="tcp", timeout=2)
    assert not failed
    assert result["mapped_address"] == "127.0.0.1"


def test_error_response():
    with stun_responder(error=(400, "Bad Request")) as server:
        failed, result = run(host=server.host, port=server.port, timeout=2)
    assert failed
    assert result["error_code"] == 400
    assert result["msg"] == f"STUN server 127.0.0.1:{server.port} over udp answered with error 400 Bad Request"


def test_timeout():
    with silent_responder() as server:
        failed, result = run(host=server.host, port=server.port, timeout=0.3)
    assert failed
    assert result["msg"].startswith(f"STUN timeout: No STUN Binding response from 127.0.0.1:{server.port} over udp")


def test_refused():
    failed, result = run(host="127.0.0.1", port=refused_udp_port(), timeout=2)
    assert failed
    assert "refused" in result["msg"]
