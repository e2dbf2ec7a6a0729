# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""STUN (RFC 5389) Binding messages: encoding, parsing and a small client.

Standard library only.  The client sends one Binding Request over UDP (with
RFC 5389 retransmissions: RTO 500 ms, doubling) or TCP and decodes the
``XOR-MAPPED-ADDRESS`` (or, from RFC 3489 servers, ``MAPPED-ADDRESS``).

The generic pieces (message types of any method, ``MESSAGE-INTEGRITY`` with
long-term credentials, :func:`connect` and :func:`exchange`) are shared with
the TURN client in ``turn.py``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import os
import socket
import struct
import time

MAGIC_COOKIE = 0x2112A442
HEADER_LEN = 20
FINGERPRINT_XOR = 0x5354554E

# Message types (method Binding = 0x001)
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
BINDING_INDICATION = 0x0011

# Attributes
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_UNKNOWN_ATTRIBUTES = 0x000A
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_XOR_MAPPED_ADDRESS_OLD = 0x8020  # pre-RFC drafts, still sent by some servers
ATTR_SOFTWARE = 0x8022
ATTR_ALTERNATE_SERVER = 0x8023
ATTR_FINGERPRINT = 0x8028
ATTR_RESPONSE_ORIGIN = 0x802B
ATTR_OTHER_ADDRESS = 0x802C

ATTRIBUTE_NAMES = {
    ATTR_MAPPED_ADDRESS: "MAPPED-ADDRESS",
    ATTR_USERNAME: "USERNAME",
    ATTR_MESSAGE_INTEGRITY: "MESSAGE-INTEGRITY",
    ATTR_ERROR_CODE: "ERROR-CODE",
    ATTR_UNKNOWN_ATTRIBUTES: "UNKNOWN-ATTRIBUTES",
    ATTR_REALM: "REALM",
    ATTR_NONCE: "NONCE",
    ATTR_XOR_MAPPED_ADDRESS: "XOR-MAPPED-ADDRESS",
    ATTR_XOR_MAPPED_ADDRESS_OLD: "XOR-MAPPED-ADDRESS",
    ATTR_SOFTWARE: "SOFTWARE",
    ATTR_ALTERNATE_SERVER: "ALTERNATE-SERVER",
    ATTR_FINGERPRINT: "FINGERPRINT",
    ATTR_RESPONSE_ORIGIN: "RESPONSE-ORIGIN",
    ATTR_OTHER_ADDRESS: "OTHER-ADDRESS",
}

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02

RTO_INITIAL = 0.5
MAX_UDP_TRANSMISSIONS = 7


class STUNError(Exception):
    """Base class for STUN errors."""


class STUNParseError(STUNError):
    """The bytes are not a well-formed STUN message."""


class STUNTimeout(STUNError):
    """No matching response arrived in time."""


class STUNConnectionError(STUNError):
    """The socket could not be used (refused, unreachable, ...)."""


class STUNErrorResponse(STUNError):
    """The server answered with a Binding Error Response."""

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason
        super().__init__(f"STUN error response {code} {reason}")


MESSAGE_CLASSES = ("request", "indication", "success", "error")


def message_type(method, klass):
    """Message type of ``method`` (12 bits) in ``klass`` (request, indication, success, error)."""
    c = MESSAGE_CLASSES.index(klass)
    return ((method & 0x0F80) << 2) | ((method & 0x0070) << 1) | (method & 0x000F) | ((c & 0x2) << 7) | ((c & 0x1) << 4)


def long_term_key(username, realm, password):
    """RFC 5389 long-term credential key: MD5(username ":" realm ":" password).

    The strings are used as given (UTF-8); SASLprep is not applied, which makes
    no difference for ASCII credentials.
    """
    data = f"{username}:{realm}:{password}".encode()
    return hashlib.md5(data, usedforsecurity=False).digest()


def new_transaction_id():
    return os.urandom(12)


def _pad(length):
    return (4 - length % 4) % 4


def encode_attribute(attr_type, value):
    return struct.pack("!HH", attr_type, len(value)) + value + b"\x00" * _pad(len(value))


def encode_message(msg_type, transaction_id, attributes=(), fingerprint=False, integrity_key=None):
    """Encode a STUN message.  ``attributes`` is a list of (type, bytes).

    With ``integrity_key`` a ``MESSAGE-INTEGRITY`` (HMAC-SHA1) is appended
    after the attributes and before the optional ``FINGERPRINT``.
    """
    if len(transaction_id) != 12:
        raise ValueError("STUN transaction id must be 12 bytes")
    body = b"".join(encode_attribute(t, v) for t, v in attributes)
    if integrity_key is not None:
        header = struct.pack("!HHI", msg_type, len(body) + 24, MAGIC_COOKIE) + transaction_id
        mac = hmac.new(integrity_key, header + body, hashlib.sha1).digest()
        body += encode_attribute(ATTR_MESSAGE_INTEGRITY, mac)
    if fingerprint:
        length = len(body) + 8
        header = struct.pack("!HHI", msg_type, length, MAGIC_COOKIE) + transaction_id
        crc = (binascii.crc32(header + body) & 0xFFFFFFFF) ^ FINGERPRINT_XOR
        body += encode_attribute(ATTR_FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HHI", msg_type, len(body), MAGIC_COOKIE) + transaction_id + body


def build_binding_request(transaction_id=None, software=None, fingerprint=False):
    """Return ``(bytes, transaction_id)`` of a Binding Request."""
    transaction_id = transaction_id or new_transaction_id()
    attributes = []
    if software:
        attributes.append((ATTR_SOFTWARE, software.encode("utf-8")))
    return encode_message(BINDING_REQUEST, transaction_id, attributes, fingerprint), transaction_id


def _xor_bytes(transaction_id):
    return struct.pack("!I", MAGIC_COOKIE) + transaction_id


def encode_address(ip, port, transaction_id=None, xor=True):
    """Encode a (XOR-)MAPPED-ADDRESS value."""
    address = ipaddress.ip_address(ip)
    family = FAMILY_IPV4 if address.version == 4 else FAMILY_IPV6
    raw = address.packed
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = _xor_bytes(transaction_id or b"\x00" * 12)[: len(raw)]
        raw = bytes(a ^ b for a, b in zip(raw, mask))
    return struct.pack("!BBH", 0, family, port) + raw


def decode_address(value, transaction_id=None, xor=True):
    """Decode a (XOR-)MAPPED-ADDRESS value to ``(family, ip, port)``.

    ``family`` is ``"IPv4"`` or ``"IPv6"``.  For the XOR variant the port is
    XORed with the top 16 bits of the magic cookie, an IPv4 address with the
    cookie and an IPv6 address with the cookie followed by the transaction id.
    """
    if len(value) < 4:
        raise STUNParseError(f"Address attribute too short ({len(value)} bytes)")
    _, family, port = struct.unpack("!BBH", value[:4])
    if family == FAMILY_IPV4:
        expected, family_name = 4, "IPv4"
    elif family == FAMILY_IPV6:
        expected, family_name = 16, "IPv6"
    else:
        raise STUNParseError(f"Unknown address family 0x{family:02x}")
    raw = value[4:]
    if len(raw) != expected:
        raise STUNParseError(f"{family_name} address attribute has {len(raw)} address bytes, expected {expected}")
    if xor:
        if transaction_id is None and family == FAMILY_IPV6:
            raise STUNParseError("Transaction id needed to decode an IPv6 XOR address")
        port ^= MAGIC_COOKIE >> 16
        mask = _xor_bytes(transaction_id or b"\x00" * 12)[:expected]
        raw = bytes(a ^ b for a, b in zip(raw, mask))
    return family_name, str(ipaddress.ip_address(raw)), port


def decode_error_code(value):
    if len(value) < 4:
        raise STUNParseError("ERROR-CODE attribute too short")
    klass = value[2] & 0x07
    number = value[3]
    reason = value[4:].decode("utf-8", errors="replace")
    return klass * 100 + number, reason


def encode_error_code(code, reason):
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


def parse_message(data):
    """Parse a STUN message.

    Returns a dict ``{type, method, class, transaction_id, attributes}`` where
    ``attributes`` is a list of ``(type, value_bytes)``.  Checks the leading
    zero bits, the magic cookie, the length field, attribute padding and (when
    present) the FINGERPRINT.
    """
    if len(data) < HEADER_LEN:
        raise STUNParseError(f"STUN message too short ({len(data)} bytes)")
    msg_type, length, cookie = struct.unpack("!HHI", data[:8])
    if msg_type & 0xC000:
        raise STUNParseError("Not a STUN message (first two bits not zero)")
    if cookie != MAGIC_COOKIE:
        raise STUNParseError(f"Bad STUN magic cookie 0x{cookie:08x}")
    if length % 4:
        raise STUNParseError(f"STUN length {length} is not a multiple of 4")
    if len(data) < HEADER_LEN + length:
        raise STUNParseError(f"STUN message truncated: header says {length} bytes, got {len(data) - HEADER_LEN}")
    transaction_id = data[8:20]
    attributes = []
    offset = HEADER_LEN
    end = HEADER_LEN + length
    while offset < end:
        if offset + 4 > end:
            raise STUNParseError("Truncated STUN attribute header")
        attr_type, attr_len = struct.unpack("!HH", data[offset : offset + 4])
        value_start = offset + 4
        value_end = value_start + attr_len
        if value_end > end:
            raise STUNParseError(f"STUN attribute 0x{attr_type:04x} overruns the message")
        value = data[value_start:value_end]
        if attr_type == ATTR_FINGERPRINT:
            if attr_len != 4:
                raise STUNParseError("Bad FINGERPRINT length")
            # CRC over the message up to the attribute, with the length field as sent.
            crc = (binascii.crc32(data[:offset]) & 0xFFFFFFFF) ^ FINGERPRINT_XOR
            if struct.unpack("!I", value)[0] != crc:
                raise STUNParseError("STUN FINGERPRINT mismatch")
        attributes.append((attr_type, value))
        offset = value_end + _pad(attr_len)
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    klass_bits = ((msg_type & 0x0100) >> 7) | ((msg_type & 0x0010) >> 4)
    klass = ("request", "indication", "success", "error")[klass_bits]
    return {
        "type": msg_type,
        "method": method,
        "class": klass,
        "transaction_id": transaction_id,
        "attributes": attributes,
        "length": HEADER_LEN + length,
    }


def check_message_integrity(data, key):
    """Verify the ``MESSAGE-INTEGRITY`` of the raw message ``data`` with ``key``.

    Returns ``None`` when the message has no ``MESSAGE-INTEGRITY``, else
    ``True`` or ``False``.  The HMAC covers the message up to the attribute,
    with the header length counting up to the end of the attribute.
    """
    if len(data) < HEADER_LEN:
        raise STUNParseError(f"STUN message too short ({len(data)} bytes)")
    end = HEADER_LEN + struct.unpack("!H", data[2:4])[0]
    offset = HEADER_LEN
    while offset + 4 <= min(end, len(data)):
        attr_type, attr_len = struct.unpack("!HH", data[offset : offset + 4])
        if attr_type == ATTR_MESSAGE_INTEGRITY:
            value = data[offset + 4 : offset + 4 + attr_len]
            if attr_len != 20 or len(value) != 20:
                raise STUNParseError("Bad MESSAGE-INTEGRITY length")
            covered = data[:2] + struct.pack("!H", offset + 24 - HEADER_LEN) + data[4:offset]
            return hmac.compare_digest(hmac.new(key, covered, hashlib.sha1).digest(), value)
        offset += 4 + attr_len + _pad(attr_len)
    return None


def get_attribute(message, attr_type):
    for t, v in message["attributes"]:
        if t == attr_type:
            return v
    return None


def interpret_binding_response(message, transaction_id=None):
    """Extract the useful fields of a Binding Success/Error Response.

    Raises :class:`STUNErrorResponse` for an error response and
    :class:`STUNParseError` when no mapped address is present.
    """
    if transaction_id is not None and message["transaction_id"] != transaction_id:
        raise STUNParseError("Transaction id mismatch")
    if message["method"] != 0x001:
        raise STUNParseError(f"Not a Binding message (method 0x{message['method']:03x})")
    txid = message["transaction_id"]
    if message["class"] == "error":
        value = get_attribute(message, ATTR_ERROR_CODE)
        code, reason = decode_error_code(value) if value is not None else (0, "no ERROR-CODE attribute")
        raise STUNErrorResponse(code, reason)
    if message["class"] != "success":
        raise STUNParseError(f"Expected a Binding response, got a {message['class']}")

    result = {"mapped_address": None, "mapped_port": None, "mapped_family": None, "mapped_attribute": None}
    for attr_type, xor in (
        (ATTR_XOR_MAPPED_ADDRESS, True),
        (ATTR_XOR_MAPPED_ADDRESS_OLD, True),
        (ATTR_MAPPED_ADDRESS, False),
    ):
        value = get_attribute(message, attr_type)
        if value is not None:
            family, ip, port = decode_address(value, txid, xor=xor)
            result.update(
                mapped_address=ip, mapped_port=port, mapped_family=family, mapped_attribute=ATTRIBUTE_NAMES[attr_type]
            )
            break
    else:
        raise STUNParseError("Binding response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS")

    software = get_attribute(message, ATTR_SOFTWARE)
    result["software"] = software.decode("utf-8", errors="replace").rstrip("\x00") if software is not None else None
    for key, attr_type in (("response_origin", ATTR_RESPONSE_ORIGIN), ("other_address", ATTR_OTHER_ADDRESS)):
        value = get_attribute(message, attr_type)
        result[key] = None
        if value is not None:
            try:
                _, ip, port = decode_address(value, txid, xor=False)
                result[key] = {"address": ip, "port": port}
            except STUNParseError:
                pass
    result["attributes"] = [ATTRIBUTE_NAMES.get(t, f"0x{t:04x}") for t, _ in message["attributes"]]
    return result


def _resolve(host, port, socktype):
    try:
        infos = socket.getaddrinfo(host, port, 0, socktype)
    except socket.gaierror as exc:
        raise STUNConnectionError(f"Cannot resolve {host}: {exc}") from None
    if not infos:
        raise STUNConnectionError(f"Cannot resolve {host}")
    return infos[0]


def connect(host, port, transport="udp", timeout=5.0):
    """Open a UDP (connected) or TCP socket to ``host:port``.

    Returns ``(sock, sockaddr)``; raises :class:`STUNTimeout` or
    :class:`STUNConnectionError`.
    """
    transport = transport.lower()
    if transport not in ("udp", "tcp"):
        raise ValueError("transport must be udp or tcp")
    socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    family, _, proto, _, sockaddr = _resolve(host, port, socktype)
    sock = socket.socket(family, socktype, proto)
    try:
        sock.settimeout(max(timeout, 0.001))
        sock.connect(sockaddr)
    except socket.timeout:
        sock.close()
        raise STUNTimeout(f"Timed out connecting to {host}:{port} over {transport}") from None
    except OSError as exc:
        sock.close()
        raise STUNConnectionError(f"Cannot connect to {host}:{port} over {transport}: {exc.strerror or exc}") from None
    return sock, sockaddr


def exchange(sock, transport, request, txid, timeout, host, port, label="STUN", stream_buffer=None):
    """Send ``request`` on a socket from :func:`connect` and wait for the response to ``txid``.

    UDP requests are retransmitted (RTO 500 ms, doubling) until ``timeout``.
    Returns ``(data, rtt_seconds, transmissions)``.  ``label`` names the
    request in timeout errors.  For TCP, pass the same ``stream_buffer``
    (a ``bytearray``) to consecutive calls on one connection so that bytes read
    past a response are kept.
    """
    deadline = time.monotonic() + timeout
    if transport == "udp":
        return _exchange_udp(sock, request, txid, deadline, host, port, label)
    return _exchange_tcp(sock, request, txid, deadline, host, port, label, stream_buffer)


def binding_request(host, port=3478, transport="udp", timeout=5.0, software=None):
    """Send a Binding Request and return the decoded response plus timing.

    Adds ``rtt_ms`` (from the last transmission to the response),
    ``transmissions``, ``server_address`` and ``local_address`` to the result
    of :func:`interpret_binding_response`.
    """
    transport = transport.lower()
    request, txid = build_binding_request(software=software)
    deadline = time.monotonic() + timeout
    sock, sockaddr = connect(host, port, transport, timeout)
    try:
        local = sock.getsockname()
        if transport == "udp":
            data, rtt, transmissions = _exchange_udp(sock, request, txid, deadline, host, port)
        else:
            data, rtt, transmissions = _exchange_tcp(sock, request, txid, deadline, host, port)
    finally:
        sock.close()
    result = interpret_binding_response(parse_message(data), txid)
    result.update(
        rtt_ms=round(rtt * 1000.0, 3),
        transmissions=transmissions,
        transaction_id=txid.hex(),
        server_address={"address": sockaddr[0], "port": sockaddr[1]},
        local_address={"address": local[0], "port": local[1]},
        transport=transport,
    )
    return result


def _timeout_error(host, port, transport, timeout, transmissions, label="STUN Binding"):
    return STUNTimeout(
        f"No {label} response from {host}:{port} over {transport} within {timeout:.1f}s "
        f"({transmissions} request(s) sent)"
    )


def _exchange_udp(sock, request, txid, deadline, host, port, label="STUN Binding"):
    total = deadline - time.monotonic()
    rto = RTO_INITIAL
    transmissions = 0
    next_send = time.monotonic()
    sent_at = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise _timeout_error(host, port, "udp", total, transmissions, label)
        if now >= next_send and transmissions < MAX_UDP_TRANSMISSIONS:
            try:
                sock.send(request)
            except OSError as exc:
                raise STUNConnectionError(f"Cannot send to {host}:{port} over udp: {exc.strerror or exc}") from None
            sent_at = time.monotonic()
            transmissions += 1
            next_send = sent_at + rto
            rto *= 2
        wait_until = deadline if transmissions >= MAX_UDP_TRANSMISSIONS else min(deadline, next_send)
        sock.settimeout(max(wait_until - time.monotonic(), 0.001))
        try:
            data = sock.recv(65535)
        except socket.timeout:
            continue
        except ConnectionRefusedError:
            raise STUNConnectionError(
                f"{host}:{port} refused the STUN request (ICMP port unreachable: nothing listens on udp/{port})"
            ) from None
        except OSError as exc:
            raise STUNConnectionError(f"Error receiving from {host}:{port}: {exc.strerror or exc}") from None
        try:
            message = parse_message(data)
        except STUNParseError:
            continue  # not STUN; ignore like a real client would
        if message["transaction_id"] != txid:
            continue
        return data, time.monotonic() - sent_at, transmissions


def _exchange_tcp(sock, request, txid, deadline, host, port, label="STUN Binding", buffer=None):
    total = deadline - time.monotonic()
    try:
        sock.sendall(request)
    except OSError as exc:
        raise STUNConnectionError(f"Cannot send to {host}:{port} over tcp: {exc.strerror or exc}") from None
    sent_at = time.monotonic()
    if buffer is None:
        buffer = bytearray()
    while True:
        if len(buffer) >= HEADER_LEN:
            length = struct.unpack("!H", buffer[2:4])[0]
            if len(buffer) >= HEADER_LEN + length:
                data = bytes(buffer[: HEADER_LEN + length])
                del buffer[: HEADER_LEN + length]
                if parse_message(data)["transaction_id"] == txid:
                    return data, time.monotonic() - sent_at, 1
                continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout_error(host, port, "tcp", total, 1, label)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65535)
        except socket.timeout:
            raise _timeout_error(host, port, "tcp", total, 1, label) from None
        except OSError as exc:
            raise STUNConnectionError(f"Error receiving from {host}:{port}: {exc.strerror or exc}") from None
        if not chunk:
            raise STUNConnectionError(f"{host}:{port} closed the TCP connection without a STUN response")
        buffer += chunk
