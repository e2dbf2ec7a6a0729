# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import socket
import struct

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun, turn
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_turn import DEFAULT_USERS, FakeTURNServer

USER, PASSWORD = next(iter(DEFAULT_USERS.items()))
REALM = "lab.example"

# RFC 5769 section 2.4: request with long-term authentication (NUL padded, so it can be rebuilt byte for byte).
RFC5769_LTC = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c662f2f34"
    "39396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014f67024656dd64a3e"
    "02b8e0712e85c9a28ca89666"
)
RFC5769_USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
RFC5769_PASSWORD = "TheMatrIX"  # after SASLprep


def client(server, **kwargs):
    kwargs.setdefault("username", USER)
    kwargs.setdefault("password", PASSWORD)
    kwargs.setdefault("timeout", 2)
    return turn.TURNClient(server.host, server.port, server.transport, **kwargs)


def attribute_types(message):
    return [t for t, _ in message["attributes"]]


# -- generic STUN additions ---------------------------------------------------


@pytest.mark.parametrize(
    "method, klass, expected",
    [
        (turn.METHOD_ALLOCATE, "request", 0x0003),
        (turn.METHOD_ALLOCATE, "success", 0x0103),
        (turn.METHOD_ALLOCATE, "error", 0x0113),
        (turn.METHOD_REFRESH, "request", 0x0004),
        (turn.METHOD_CREATE_PERMISSION, "success", 0x0108),
        (turn.METHOD_CREATE_PERMISSION, "error", 0x0118),
        (0x001, "indication", stun.BINDING_INDICATION),
        (0x001, "success", stun.BINDING_SUCCESS),
    ],
)
def test_message_type(method, klass, expected):
    assert stun.message_type(method, klass) == expected
    parsed = stun.parse_message(stun.encode_message(expected, b"\x00" * 12))
    assert (parsed["method"], parsed["class"]) == (method, klass)


def test_rfc5769_long_term_request_rebuilt_byte_for_byte():
    key = stun.long_term_key(RFC5769_USERNAME, "example.org", RFC5769_PASSWORD)
    assert key == hashlib.md5(f"{RFC5769_USERNAME}:example.org:TheMatrIX".encode()).digest()
    data = stun.encode_message(
        stun.BINDING_REQUEST,
        bytes.fromhex("78ad3433c6ad72c029da412e"),
        [
            (stun.ATTR_USERNAME, RFC5769_USERNAME.encode()),
            (stun.ATTR_NONCE, b"f//499k954d6OL34oL9FSTvy64sA"),
            (stun.ATTR_REALM, b"example.org"),
        ],
        integrity_key=key,
    )
    assert data == RFC5769_LTC
    assert stun.check_message_integrity(RFC5769_LTC, key) is True
    assert stun.check_message_integrity(RFC5769_LTC, stun.long_term_key(RFC5769_USERNAME, "example.org", "x")) is False


def test_message_integrity_and_fingerprint_verified_independently():
    txid = bytes(range(12))
    key = stun.long_term_key(USER, REALM, PASSWORD)
    attrs = [(turn.ATTR_REQUESTED_TRANSPORT, turn.encode_requested_transport()), (stun.ATTR_USERNAME, b"alice")]
    data = stun.encode_message(stun.message_type(turn.METHOD_ALLOCATE, "request"), txid, attrs, True, key)
    parsed = stun.parse_message(data)  # also checks the FINGERPRINT
    assert attribute_types(parsed) == [
        turn.ATTR_REQUESTED_TRANSPORT,
        stun.ATTR_USERNAME,
        stun.ATTR_MESSAGE_INTEGRITY,
        stun.ATTR_FINGERPRINT,
    ]
    assert stun.get_attribute(parsed, turn.ATTR_REQUESTED_TRANSPORT) == b"\x11\x00\x00\x00"
    # Layout: header 20, REQUESTED-TRANSPORT 8, USERNAME 4+8, MESSAGE-INTEGRITY 4+20, FINGERPRINT 4+4.
    mi_at, fp_at = 20 + 8 + 12, 20 + 8 + 12 + 24
    assert len(data) == fp_at + 8
    assert struct.unpack("!H", data[2:4])[0] == len(data) - 20
    # MESSAGE-INTEGRITY: HMAC-SHA1 over the message before it, with the length counting up to its end.
    covered = data[:2] + struct.pack("!H", mi_at + 24 - 20) + data[4:mi_at]
    assert data[mi_at : mi_at + 4] == b"\x00\x08\x00\x14"
    assert data[mi_at + 4 : fp_at] == hmac.new(key, covered, hashlib.sha1).digest()
    # FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554e.
    assert data[fp_at : fp_at + 4] == b"\x80\x28\x00\x04"
    crc = (binascii.crc32(data[:fp_at]) & 0xFFFFFFFF) ^ 0x5354554E
    assert data[fp_at + 4 :] == struct.pack("!I", crc)
    assert stun.check_message_integrity(data, key) is True
    # Tampering breaks both.
    tampered = bytearray(data)
    tampered[27] ^= 0x01
    assert stun.check_message_integrity(bytes(tampered), key) is False
    with pytest.raises(stun.STUNParseError, match="FINGERPRINT"):
        stun.parse_message(bytes(tampered))


def test_check_message_integrity_absent():
    data, _ = stun.build_binding_request(fingerprint=True)
    assert stun.check_message_integrity(data, b"key") is None


def test_exchange_keeps_stream_bytes_between_calls():
    left, right = socket.socketpair()
    try:
        first, second = b"\x01" * 12, b"\x02" * 12
        responses = stun.encode_message(stun.BINDING_SUCCESS, first) + stun.encode_message(stun.BINDING_SUCCESS, second)
        right.sendall(responses)  # both responses arrive in one chunk
        buffer = bytearray()
        data, _, _ = stun.exchange(left, "tcp", b"", first, 1, "127.0.0.1", 1, stream_buffer=buffer)
        assert data[8:20] == first
        data, _, _ = stun.exchange(left, "tcp", b"", second, 1, "127.0.0.1", 1, stream_buffer=buffer)
        assert data[8:20] == second
        with pytest.raises(stun.STUNTimeout, match="No TURN Refresh response"):
            stun.exchange(left, "tcp", b"", first, 0.1, "127.0.0.1", 1, label="TURN Refresh", stream_buffer=buffer)
    finally:
        left.close()
        right.close()


# -- TURN REST credentials ------------------------------------------------------


def test_rest_credentials_known_vector():
    username, password = turn.rest_credentials("coturn-static-auth-secret", "health", 300, now=1700000000)
    assert username == "1700000300:health"
    # openssl: printf %s 1700000300:health | openssl dgst -sha1 -hmac coturn-static-auth-secret -binary | base64
    assert password == "ikQCI48r/WvPfQKZ111+jEezxiA="
    digest = hmac.new(b"coturn-static-auth-secret", b"1700000300:health", hashlib.sha1).digest()
    assert password == base64.b64encode(digest).decode()


def test_rest_credentials_default_expiry():
    username, _ = turn.rest_credentials("s", now=1000.9)
    assert username == "1300:health"


# -- client against the fake server ---------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_allocate_permission_refresh(transport):
    with FakeTURNServer(transport=transport) as server, client(server) as c:
        result = c.allocate()
        local_port = c.sock.getsockname()[1]
        assert c.create_permission("192.0.2.1") == {
            "peer": "192.0.2.1",
            "allowed": True,
            "error_code": None,
            "reason": None,
        }
        assert c.create_permission("10.1.2.3") == {
            "peer": "10.1.2.3",
            "allowed": False,
            "error_code": 403,
            "reason": "Forbidden",
        }
        assert c.release() is True
    assert server.errors == []
    assert result["relayed_address"] == "127.0.0.1"
    assert result["relayed_port"] == 49152
    assert result["mapped_address"] == "127.0.0.1"
    assert result["mapped_port"] == local_port
    assert result["lifetime"] == 600
    assert result["rtt_ms"] >= 0
    assert c.realm == REALM
    assert c.auth_required is True
    assert c.software == "FakeTURN 1.0"
    assert server.methods() == ["Allocate", "Allocate", "CreatePermission", "CreatePermission", "Refresh"]
    assert server.freed == [("127.0.0.1", 49152)]
    assert server.permissions and "192.0.2.1" in next(iter(server.permissions.values()))


def test_requests_on_the_wire():
    with FakeTURNServer() as server, client(server) as c:
        c.allocate()
        c.create_permission("2001:db8::1")
        c.release()
    first, second, permission, refresh = server.requests
    raw_second = server.raw_requests[1]
    # Unauthenticated Allocate: REQUESTED-TRANSPORT UDP and FINGERPRINT only.
    assert attribute_types(first) == [turn.ATTR_REQUESTED_TRANSPORT, stun.ATTR_FINGERPRINT]
    assert first["type"] == 0x0003
    # Authenticated one: the credentials, then MESSAGE-INTEGRITY, then FINGERPRINT.
    assert attribute_types(second) == [
        turn.ATTR_REQUESTED_TRANSPORT,
        stun.ATTR_USERNAME,
        stun.ATTR_REALM,
        stun.ATTR_NONCE,
        stun.ATTR_MESSAGE_INTEGRITY,
        stun.ATTR_FINGERPRINT,
    ]
    assert stun.get_attribute(second, stun.ATTR_USERNAME) == USER.encode()
    assert stun.get_attribute(second, stun.ATTR_REALM) == REALM.encode()
    assert stun.get_attribute(second, stun.ATTR_NONCE) == b"fake-nonce-1"
    key = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).digest()
    assert stun.check_message_integrity(raw_second, key) is True
    # XOR-PEER-ADDRESS of an IPv6 peer is XORed with the cookie and the transaction id.
    value = stun.get_attribute(permission, turn.ATTR_XOR_PEER_ADDRESS)
    assert stun.decode_address(value, permission["transaction_id"]) == ("IPv6", "2001:db8::1", 0)
    assert stun.get_attribute(refresh, turn.ATTR_LIFETIME) == b"\x00\x00\x00\x00"
    assert PASSWORD.encode() not in b"".join(server.raw_requests)


def test_stale_nonce_is_retried_once():
    with FakeTURNServer(stale_nonces=1) as server, client(server) as c:
        c.allocate()
    assert server.methods() == ["Allocate", "Allocate", "Allocate"]
    nonces = [stun.get_attribute(r, stun.ATTR_NONCE) for r in server.requests]
    assert nonces == [None, b"fake-nonce-1", b"fake-nonce-2"]


def test_stale_nonce_twice_fails():
    with FakeTURNServer(stale_nonces=2) as server, client(server) as c, pytest.raises(turn.TURNErrorResponse) as exc:
        c.allocate()
    assert exc.value.code == 438
    assert len(server.requests) == 3


def test_wrong_password():
    with FakeTURNServer() as server, client(server, password="wrong") as c, pytest.raises(turn.TURNAuthError) as exc:
        c.allocate()
    assert exc.value.code == 401
    assert "wrong credentials or realm" in str(exc.value)
    assert "'alice'" in str(exc.value) and "wrong'" not in str(exc.value)
    assert c.allocated is False


def test_forced_wrong_realm():
    with FakeTURNServer() as server, client(server, realm="other.example") as c, pytest.raises(turn.TURNAuthError):
        c.allocate()
    assert stun.get_attribute(server.requests[1], stun.ATTR_REALM) == b"other.example"


def test_no_credentials_but_auth_required():
    with FakeTURNServer() as server:
        c = client(server, username=None, password=None)
        with c, pytest.raises(turn.TURNError, match="requires authentication"):
            c.allocate()


def test_open_server_without_auth():
    with FakeTURNServer(require_auth=False) as server, client(server) as c:
        c.allocate()
    assert c.auth_required is False
    assert server.methods() == ["Allocate"]


def test_bad_response_integrity():
    with FakeTURNServer(bad_response_integrity=True) as server:
        c = client(server)
        with c, pytest.raises(stun.STUNParseError, match="MESSAGE-INTEGRITY"):
            c.allocate()


def test_allocate_error_has_hint():
    with FakeTURNServer(allocate_error=(486, "Allocation Quota Reached")) as server:
        c = client(server)
        with c, pytest.raises(turn.TURNErrorResponse) as exc:
            c.allocate()
    assert str(exc.value) == (
        "TURN Allocate failed with 486 Allocation Quota Reached "
        "(too many allocations for this user or in total: coturn user-quota/total-quota)"
    )
    assert c.release() is False  # nothing allocated, nothing sent
    assert server.methods() == ["Allocate", "Allocate"]


def test_second_allocate_mismatch():
    with FakeTURNServer() as server, client(server) as c:
        c.allocate()
        with pytest.raises(turn.TURNErrorResponse, match="437 Allocation Mismatch"):
            c.allocate()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_timeout(transport):
    with FakeTURNServer(transport=transport, silent=True) as server:
        c = client(server, timeout=0.3)
        with c, pytest.raises(stun.STUNTimeout, match=f"No TURN Allocate response from 127.0.0.1:{server.port} over"):
            c.allocate()


def test_turn_check_releases_and_reports():
    with FakeTURNServer(transport="tcp") as server:
        result = turn.turn_check(
            server.host, server.port, "tcp", 2, USER, PASSWORD, permission_peers=["127.0.0.1", "198.51.100.1"]
        )
    assert result["released"] is True
    assert result["server_address"] == {"address": "127.0.0.1", "port": server.port}
    assert [p["allowed"] for p in result["permissions"]] == [False, True]
    assert server.freed
