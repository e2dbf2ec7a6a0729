# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import struct

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import (
    refused_tcp_port,
    refused_udp_port,
    silent_responder,
    stun_responder,
)

# Transaction id and XOR-MAPPED-ADDRESS values of the RFC 5769 sample responses
# (192.0.2.1:32853 and 2001:db8:1234:5678:11:2233:4455:6677 port 32853).
RFC5769_TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
RFC5769_XOR_V4 = bytes.fromhex("0001a147e112a643")
RFC5769_XOR_V6 = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")


def test_binding_request_header():
    data, txid = stun.build_binding_request()
    assert len(data) == 20
    assert struct.unpack("!HHI", data[:8]) == (0x0001, 0, stun.MAGIC_COOKIE)
    assert data[8:] == txid
    parsed = stun.parse_message(data)
    assert parsed["class"] == "request"
    assert parsed["method"] == 1


def test_binding_request_with_software_and_fingerprint():
    data, txid = stun.build_binding_request(b"\x01" * 12, software="ansible", fingerprint=True)
    parsed = stun.parse_message(data)
    assert [t for t, _ in parsed["attributes"]] == [stun.ATTR_SOFTWARE, stun.ATTR_FINGERPRINT]
    assert stun.get_attribute(parsed, stun.ATTR_SOFTWARE) == b"ansible"
    assert len(data) % 4 == 0


def test_rfc5769_xor_mapped_address_ipv4():
    assert stun.decode_address(RFC5769_XOR_V4, RFC5769_TXID) == ("IPv4", "192.0.2.1", 32853)
    assert stun.encode_address("192.0.2.1", 32853, RFC5769_TXID) == RFC5769_XOR_V4


def test_rfc5769_xor_mapped_address_ipv6():
    assert stun.decode_address(RFC5769_XOR_V6, RFC5769_TXID) == (
        "IPv6",
        "2001:db8:1234:5678:11:2233:4455:6677",
        32853,
    )
    assert stun.encode_address("2001:db8:1234:5678:11:2233:4455:6677", 32853, RFC5769_TXID) == RFC5769_XOR_V6


def test_plain_mapped_address():
    value = stun.encode_address("198.51.100.7", 4000, xor=False)
    assert value == bytes.fromhex("00010fa0c6336407")
    assert stun.decode_address(value, xor=False) == ("IPv4", "198.51.100.7", 4000)


@pytest.mark.parametrize(
    "value",
    [b"\x00\x01", bytes.fromhex("00030000") + b"\x00" * 4, bytes.fromhex("00010000") + b"\x00" * 3],
)
def test_bad_address(value):
    with pytest.raises(stun.STUNParseError):
        stun.decode_address(value, RFC5769_TXID)


def success_response(txid, attributes, fingerprint=True):
    return stun.encode_message(stun.BINDING_SUCCESS, txid, attributes, fingerprint=fingerprint)


def test_interpret_success_response():
    data = success_response(
        RFC5769_TXID,
        [
            (stun.ATTR_SOFTWARE, b"test vector"),
            (stun.ATTR_XOR_MAPPED_ADDRESS, RFC5769_XOR_V4),
            (stun.ATTR_RESPONSE_ORIGIN, stun.encode_address("192.0.2.9", 3478, xor=False)),
        ],
    )
    parsed = stun.parse_message(data)
    assert parsed["class"] == "success"
    result = stun.interpret_binding_response(parsed, RFC5769_TXID)
    assert result["mapped_address"] == "192.0.2.1"
    assert result["mapped_port"] == 32853
    assert result["mapped_family"] == "IPv4"
    assert result["mapped_attribute"] == "XOR-MAPPED-ADDRESS"
    assert result["software"] == "test vector"
    assert result["response_origin"] == {"address": "192.0.2.9", "port": 3478}
    assert result["other_address"] is None
    assert result["attributes"] == ["SOFTWARE", "XOR-MAPPED-ADDRESS", "RESPONSE-ORIGIN", "FINGERPRINT"]


def test_rfc3489_mapped_address_only():
    data = success_response(RFC5769_TXID, [(stun.ATTR_MAPPED_ADDRESS, stun.encode_address("10.1.2.3", 5, xor=False))])
    result = stun.interpret_binding_response(stun.parse_message(data))
    assert (result["mapped_address"], result["mapped_port"]) == ("10.1.2.3", 5)
    assert result["mapped_attribute"] == "MAPPED-ADDRESS"
    assert result["software"] is None


def test_response_without_address():
    data = success_response(RFC5769_TXID, [(stun.ATTR_SOFTWARE, b"x")])
    with pytest.raises(stun.STUNParseError, match="without XOR-MAPPED-ADDRESS"):
        stun.interpret_binding_response(stun.parse_message(data))


def test_error_response():
    data = stun.encode_message(
        stun.BINDING_ERROR, RFC5769_TXID, [(stun.ATTR_ERROR_CODE, stun.encode_error_code(420, "Unknown Attribute"))]
    )
    parsed = stun.parse_message(data)
    assert parsed["class"] == "error"
    with pytest.raises(stun.STUNErrorResponse) as info:
        stun.interpret_binding_response(parsed)
    assert info.value.code == 420
    assert info.value.reason == "Unknown Attribute"


def test_transaction_mismatch():
    data = success_response(RFC5769_TXID, [(stun.ATTR_XOR_MAPPED_ADDRESS, RFC5769_XOR_V4)])
    with pytest.raises(stun.STUNParseError, match="Transaction id"):
        stun.interpret_binding_response(stun.parse_message(data), b"\x00" * 12)


def test_fingerprint_mismatch():
    data = bytearray(success_response(RFC5769_TXID, [(stun.ATTR_XOR_MAPPED_ADDRESS, RFC5769_XOR_V4)]))
    data[-1] ^= 0xFF
    with pytest.raises(stun.STUNParseError, match="FINGERPRINT"):
        stun.parse_message(bytes(data))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x01\x00", "too short"),
        (bytes.fromhex("c0010000") + struct.pack("!I", stun.MAGIC_COOKIE) + b"\x00" * 12, "first two bits"),
        (bytes.fromhex("01010000") + b"\x00" * 16, "magic cookie"),
        (bytes.fromhex("01010002") + struct.pack("!I", stun.MAGIC_COOKIE) + b"\x00" * 12, "multiple of 4"),
        (bytes.fromhex("01010008") + struct.pack("!I", stun.MAGIC_COOKIE) + b"\x00" * 12, "truncated"),
        (
            bytes.fromhex("01010008") + struct.pack("!I", stun.MAGIC_COOKIE) + b"\x00" * 12 + bytes.fromhex("00200010"),
            "overruns",
        ),
    ],
)
def test_malformed_messages(data, message):
    if message == "overruns":
        data += b"\x00" * 4
    with pytest.raises(stun.STUNParseError, match=message):
        stun.parse_message(data)


def test_binding_request_udp():
    with stun_responder() as server:
        result = stun.binding_request(server.host, server.port, timeout=2)
    assert result["mapped_address"] == "127.0.0.1"
    assert result["mapped_port"] == result["local_address"]["port"]
    assert result["mapped_family"] == "IPv4"
    assert result["software"] == "FakeSTUN 1.0"
    assert result["transmissions"] == 1
    assert result["rtt_ms"] >= 0
    assert len(server.requests) == 1


def test_binding_request_retransmits_over_udp():
    with stun_responder(drop_first=1) as server:
        result = stun.binding_request(server.host, server.port, timeout=3)
    assert result["transmissions"] == 2
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]  # same transaction id


def test_binding_request_tcp():
    with stun_responder(transport="tcp", software=None) as server:
        result = stun.binding_request(server.host, server.port, transport="tcp", timeout=2)
    assert result["mapped_address"] == "127.0.0.1"
    assert result["software"] is None
    assert result["transport"] == "tcp"


def test_binding_request_timeout():
    with silent_responder() as server, pytest.raises(stun.STUNTimeout, match="No STUN Binding response from 127.0.0.1"):
        stun.binding_request(server.host, server.port, timeout=0.3)


def test_binding_request_refused():
    port = refused_udp_port()
    with pytest.raises(stun.STUNConnectionError, match="refused"):
        stun.binding_request("127.0.0.1", port, timeout=2)


def test_binding_request_tcp_refused():
    port = refused_tcp_port()
    with pytest.raises(stun.STUNConnectionError, match="Cannot connect"):
        stun.binding_request("127.0.0.1", port, transport="tcp", timeout=2)
