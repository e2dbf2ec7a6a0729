# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TURN (RFC 5766 / RFC 8656) client: Allocate, CreatePermission, Refresh.

Standard library only; the message encoding, sockets and retransmissions come
from ``stun.py``.  The client authenticates with long-term credentials
(``MESSAGE-INTEGRITY`` keyed with MD5(username:realm:password)), either
static ones or TURN REST ones derived from a shared secret as coturn's
``use-auth-secret`` expects (see :func:`rest_credentials`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import struct
import time

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.stun import (
    STUNConnectionError,
    STUNError,
    STUNParseError,
    STUNTimeout,
)

__all__ = [
    "STUNConnectionError",
    "STUNParseError",
    "STUNTimeout",
    "TURNAuthError",
    "TURNError",
    "TURNErrorResponse",
    "TURNClient",
    "rest_credentials",
    "turn_check",
]

# Methods
METHOD_ALLOCATE = 0x003
METHOD_REFRESH = 0x004
METHOD_CREATE_PERMISSION = 0x008

METHOD_NAMES = {
    METHOD_ALLOCATE: "Allocate",
    METHOD_REFRESH: "Refresh",
    METHOD_CREATE_PERMISSION: "CreatePermission",
}

# Attributes
ATTR_LIFETIME = 0x000D
ATTR_XOR_PEER_ADDRESS = 0x0012
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_REQUESTED_TRANSPORT = 0x0019

ATTRIBUTE_NAMES = dict(stun.ATTRIBUTE_NAMES)
ATTRIBUTE_NAMES.update(
    {
        ATTR_LIFETIME: "LIFETIME",
        ATTR_XOR_PEER_ADDRESS: "XOR-PEER-ADDRESS",
        ATTR_XOR_RELAYED_ADDRESS: "XOR-RELAYED-ADDRESS",
        ATTR_REQUESTED_TRANSPORT: "REQUESTED-TRANSPORT",
    }
)

PROTOCOL_UDP = 17

# Error codes with a hint for the operator.
ERROR_HINTS = {
    400: "the server could not parse the request",
    403: "the server's policy forbids it",
    420: "the server does not understand a required attribute",
    437: "an allocation already exists for this client address, or none exists any more",
    440: "the server does not support the address family",
    441: "the credentials differ from those that created the allocation",
    442: "the server does not relay the requested transport (UDP)",
    443: "the peer's address family differs from the relayed address's",
    486: "too many allocations for this user or in total: coturn user-quota/total-quota",
    500: "the server failed",
    508: "no relay port free in the server's min-port/max-port range",
}


class TURNError(STUNError):
    """Base class for TURN errors."""


class TURNErrorResponse(TURNError):
    """The server answered a TURN request with an error response."""

    def __init__(self, method, code, reason, text=None):
        self.method = method
        self.code = code
        self.reason = reason
        if text is None:
            hint = ERROR_HINTS.get(code)
            text = f"TURN {method_name(method)} failed with {code} {reason}".rstrip()
            text = f"{text} ({hint})" if hint else text
        super().__init__(text)


class TURNAuthError(TURNErrorResponse):
    """401 Unauthorized to an authenticated request: wrong credentials or realm."""

    def __init__(self, method, code, reason, username, realm):
        self.username = username
        self.realm = realm
        text = (
            f"TURN {method_name(method)} rejected with {code} {reason} after authenticating as {username!r} "
            f"in realm {realm!r}: wrong credentials or realm"
        )
        super().__init__(method, code, reason, text)


def method_name(method):
    return METHOD_NAMES.get(method, f"0x{method:03x}")


def rest_credentials(secret, user="health", ttl=300, now=None):
    """TURN REST credentials (coturn ``use-auth-secret``).

    ``username = "<unix expiry>:<user>"``, ``password =
    base64(HMAC-SHA1(secret, username))``.  Returns ``(username, password)``.
    """
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _text(value):
    return value.decode("utf-8", errors="replace") if value is not None else None


def _error_of(message):
    value = stun.get_attribute(message, stun.ATTR_ERROR_CODE)
    if value is None:
        return 0, "no ERROR-CODE attribute"
    return stun.decode_error_code(value)


def encode_lifetime(seconds):
    return struct.pack("!I", seconds)


def encode_requested_transport(protocol=PROTOCOL_UDP):
    return struct.pack("!B3x", protocol)


class TURNClient:
    """One TURN session (one 5-tuple) over UDP or TCP.

    ``username``/``password`` are the long-term credentials; ``realm`` forces
    the realm (otherwise the one of the first 401 is used).  The password is
    only kept as the derived key and never appears in errors.
    """

    def __init__(self, host, port=3478, transport="udp", timeout=5.0, username=None, password=None, realm=None):
        self.host = host
        self.port = port
        self.transport = transport.lower()
        if self.transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        self.timeout = timeout
        self.username = username
        self._password = password
        self.realm = realm
        self._realm_from_server = realm is None
        self.nonce = None
        self.key = None
        self.auth_required = None
        self.software = None
        self.allocated = False
        self.sock = None
        self.sockaddr = None
        self._stream_buffer = bytearray()

    # -- socket -----------------------------------------------------------

    def open(self):
        if self.sock is None:
            self.sock, self.sockaddr = stun.connect(self.host, self.port, self.transport, self.timeout)
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- transactions -----------------------------------------------------

    def _set_auth(self, message):
        """Take REALM (unless forced) and NONCE from a 401/438 response."""
        nonce = stun.get_attribute(message, stun.ATTR_NONCE)
        realm = stun.get_attribute(message, stun.ATTR_REALM)
        if nonce is None:
            raise STUNParseError("401/438 response without NONCE attribute")
        self.nonce = nonce
        if self._realm_from_server:
            if realm is None:
                raise STUNParseError("401/438 response without REALM attribute (set the realm option)")
            self.realm = _text(realm)
            self._realm_from_server = True
        if self.username is None or self._password is None:
            raise TURNError(f"{self.host}:{self.port} requires authentication but no credentials were given")
        self.key = stun.long_term_key(self.username, self.realm, self._password)

    def _send(self, method, attributes, timeout=None):
        """One transaction; returns ``(message, raw, rtt_seconds)``."""
        txid = stun.new_transaction_id()
        attrs = list(attributes(txid) if callable(attributes) else attributes)
        if self.key is not None:
            attrs += [
                (stun.ATTR_USERNAME, self.username.encode()),
                (stun.ATTR_REALM, self.realm.encode()),
                (stun.ATTR_NONCE, self.nonce),
            ]
        request = stun.encode_message(
            stun.message_type(method, "request"), txid, attrs, fingerprint=True, integrity_key=self.key
        )
        label = f"TURN {method_name(method)}"
        data, rtt, _ = stun.exchange(
            self.sock,
            self.transport,
            request,
            txid,
            self.timeout if timeout is None else timeout,
            self.host,
            self.port,
            label=label,
            stream_buffer=self._stream_buffer,
        )
        message = stun.parse_message(data)
        if message["method"] != method or message["class"] not in ("success", "error"):
            raise STUNParseError(f"Unexpected {message['class']} of method 0x{message['method']:03x} to a {label}")
        # A MESSAGE-INTEGRITY in a success response to an authenticated request must verify
        # (servers that leave it out are tolerated).
        if (
            self.key is not None
            and message["class"] == "success"
            and stun.check_message_integrity(data, self.key) is False
        ):
            raise STUNParseError(f"MESSAGE-INTEGRITY of the {label} response does not verify")
        software = stun.get_attribute(message, stun.ATTR_SOFTWARE)
        if software is not None:
            self.software = _text(software).rstrip("\x00")
        return message, data, rtt

    def request(self, method, attributes=(), timeout=None):
        """Send an (authenticated when a key is known) request.

        Answers 401 (first time, to get REALM/NONCE) and 438 Stale Nonce by
        retrying once each.  Returns ``(message, rtt_seconds)`` of a success
        response; raises :class:`TURNAuthError` or :class:`TURNErrorResponse`.
        """
        retried_401 = retried_438 = False
        while True:
            message, _, rtt = self._send(method, attributes, timeout)
            if message["class"] == "success":
                if self.auth_required is None:
                    self.auth_required = self.key is not None
                return message, rtt
            code, reason = _error_of(message)
            if code == 401 and self.key is None and not retried_401:
                retried_401 = True
                self._set_auth(message)
                continue
            if code == 438 and self.key is not None and not retried_438:
                retried_438 = True
                self._set_auth(message)
                continue
            if code == 401:
                raise TURNAuthError(method, code, reason, self.username, self.realm)
            raise TURNErrorResponse(method, code, reason)

    # -- TURN methods -----------------------------------------------------

    def allocate(self):
        """Allocate a UDP relay; returns a dict with the relayed/mapped address and lifetime."""
        message, rtt = self.request(METHOD_ALLOCATE, [(ATTR_REQUESTED_TRANSPORT, encode_requested_transport())])
        self.allocated = True
        txid = message["transaction_id"]
        result = {"rtt_ms": round(rtt * 1000.0, 3)}
        for key, attr in (("relayed", ATTR_XOR_RELAYED_ADDRESS), ("mapped", stun.ATTR_XOR_MAPPED_ADDRESS)):
            value = stun.get_attribute(message, attr)
            if value is None:
                raise STUNParseError(f"Allocate success response without {ATTRIBUTE_NAMES[attr]}")
            family, ip, port = stun.decode_address(value, txid, xor=True)
            result.update({f"{key}_address": ip, f"{key}_port": port, f"{key}_family": family})
        lifetime = stun.get_attribute(message, ATTR_LIFETIME)
        result["lifetime"] = struct.unpack("!I", lifetime)[0] if lifetime is not None and len(lifetime) == 4 else None
        result["attributes"] = [ATTRIBUTE_NAMES.get(t, f"0x{t:04x}") for t, _ in message["attributes"]]
        return result

    def create_permission(self, peer):
        """CreatePermission for one peer IP; returns ``{peer, allowed, error_code, reason}``."""
        peer = str(ipaddress.ip_address(peer))

        def attributes(txid):
            return [(ATTR_XOR_PEER_ADDRESS, stun.encode_address(peer, 0, txid, xor=True))]

        try:
            self.request(METHOD_CREATE_PERMISSION, attributes)
        except TURNAuthError:
            raise
        except TURNErrorResponse as exc:
            return {"peer": peer, "allowed": False, "error_code": exc.code, "reason": exc.reason}
        return {"peer": peer, "allowed": True, "error_code": None, "reason": None}

    def refresh(self, lifetime=0, timeout=None):
        """Refresh the allocation; ``lifetime=0`` deletes it."""
        message, _ = self.request(METHOD_REFRESH, [(ATTR_LIFETIME, encode_lifetime(lifetime))], timeout)
        if lifetime == 0:
            self.allocated = False
        value = stun.get_attribute(message, ATTR_LIFETIME)
        return struct.unpack("!I", value)[0] if value is not None and len(value) == 4 else None

    def release(self):
        """Best effort: delete the allocation (Refresh with LIFETIME 0).  Returns True when freed."""
        if not self.allocated or self.sock is None:
            return False
        try:
            self.refresh(0, timeout=min(self.timeout, 2.0))
        except TURNErrorResponse as exc:
            # 437: the allocation is already gone (e.g. a retransmitted Refresh after the first one worked).
            return exc.code == 437
        except (STUNError, OSError):
            return False
        return True


def turn_check(
    host, port=3478, transport="udp", timeout=5.0, username=None, password=None, realm=None, permission_peers=()
):
    """Allocate a relay, try CreatePermission for each peer, then free the allocation.

    Returns a dict with ``relayed_address``, ``relayed_port``, ``mapped_address``,
    ``mapped_port``, ``lifetime``, ``rtt_ms``, ``permissions``, ``realm``,
    ``software``, ``auth_required`` and ``released``.
    """
    peers = [str(ipaddress.ip_address(peer)) for peer in permission_peers or ()]
    client = TURNClient(host, port, transport, timeout, username=username, password=password, realm=realm)
    with client:
        try:
            result = client.allocate()
            result["permissions"] = [client.create_permission(peer) for peer in peers]
        finally:
            released = client.release()
    result.update(
        released=released,
        realm=client.realm,
        software=client.software,
        auth_required=client.auth_required,
        transport=client.transport,
        server_address={"address": client.sockaddr[0], "port": client.sockaddr[1]},
    )
    return result
