# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake TURN server on 127.0.0.1 (UDP or TCP) with just enough of RFC 5766.

* Requests without ``MESSAGE-INTEGRITY`` get ``401`` with ``REALM`` and ``NONCE``.
* Authenticated requests are checked like coturn does: nonce (``438`` with a
  new one when stale), realm, user and ``MESSAGE-INTEGRITY`` (``401``).
  Credentials are static (``users``) or TURN REST (``rest_secret``).
* ``Allocate`` returns ``XOR-RELAYED-ADDRESS``, ``XOR-MAPPED-ADDRESS`` and
  ``LIFETIME``; a second Allocate on the same 5-tuple gets ``437``.
* ``CreatePermission`` answers ``403 Forbidden`` for peers in ``denied``
  (127.0.0.0/8 and 10.0.0.0/8, like coturn's ``denied-peer-ip``).
* ``Refresh`` with ``LIFETIME 0`` frees the allocation.
* Responses to retransmitted requests (same transaction id) are replayed.

No relaying happens; nothing but 127.0.0.1 is ever contacted.  Every request
is kept in ``requests`` (parsed) and ``raw_requests``; protocol slips of the
client (no FINGERPRINT, ...) are collected in ``errors``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import itertools
import socket
import struct
import threading
import time

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import stun, turn

DEFAULT_USERS = {"alice": "correct horse"}
DEFAULT_DENIED = ("127.0.0.0/8", "10.0.0.0/8")


class FakeTURNServer:
    def __init__(
        self,
        transport="udp",
        realm="lab.example",
        users=None,
        rest_secret=None,
        denied=DEFAULT_DENIED,
        stale_nonces=0,
        silent=False,
        require_auth=True,
        allocate_error=None,
        lifetime=600,
        software="FakeTURN 1.0",
        relay_ip="127.0.0.1",
        bad_response_integrity=False,
    ):
        self.transport = transport
        self.realm = realm
        self.users = DEFAULT_USERS if users is None else users
        self.rest_secret = rest_secret
        self.denied = [ipaddress.ip_network(n) for n in denied]
        self.stale_nonces = stale_nonces
        self.silent = silent
        self.require_auth = require_auth
        self.allocate_error = allocate_error
        self.lifetime = lifetime
        self.software = software
        self.relay_ip = relay_ip
        self.bad_response_integrity = bad_response_integrity

        self.requests = []
        self.raw_requests = []
        self.errors = []
        self.allocations = {}
        self.permissions = {}
        self.freed = []
        self._nonce_counter = itertools.count(1)
        self.nonce = self._new_nonce()
        self._relay_ports = itertools.count(49152)
        self._cache = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

        socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, socktype)
        if transport == "tcp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.host = "127.0.0.1"
        self.sock.bind((self.host, 0))
        if transport == "tcp":
            self.sock.listen(5)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]

    # -- lifecycle --------------------------------------------------------

    def __enter__(self):
        target = self._serve_udp if self.transport == "udp" else self._serve_tcp
        self._spawn(target)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.sock.close()
        return False

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- inspection -------------------------------------------------------

    def methods(self):
        """Method names of the requests seen, in order."""
        return [turn.method_name(m["method"]) for m in self.requests]

    # -- serving ----------------------------------------------------------

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(data, peer)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve_connection, conn, peer)

    def _serve_connection(self, conn, peer):
        conn.settimeout(0.05)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                while len(buffer) >= stun.HEADER_LEN:
                    length = stun.HEADER_LEN + struct.unpack("!H", buffer[2:4])[0]
                    if len(buffer) < length:
                        break
                    data, buffer = buffer[:length], buffer[length:]
                    reply = self._answer(data, peer)
                    if reply is not None:
                        conn.sendall(reply)
                try:
                    chunk = conn.recv(65535)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    with self._lock:
                        self.allocations.pop(peer, None)  # a TCP allocation dies with its connection
                    return
                buffer += chunk

    def _answer(self, data, peer):
        with self._lock:
            self.raw_requests.append(data)
            try:
                request = stun.parse_message(data)
            except stun.STUNParseError as exc:
                self.errors.append(f"unparsable request: {exc}")
                return None
            self.requests.append(request)
            if self.silent:
                return None
            if stun.get_attribute(request, stun.ATTR_FINGERPRINT) is None:
                self.errors.append(f"{turn.method_name(request['method'])} request without FINGERPRINT")
            txid = request["transaction_id"]
            if txid in self._cache:
                return self._cache[txid]
            reply = self._handle(request, data, peer)
            self._cache[txid] = reply
            return reply

    # -- protocol ---------------------------------------------------------

    def _new_nonce(self):
        return f"fake-nonce-{next(self._nonce_counter)}".encode()

    def _password(self, username):
        if self.rest_secret is not None:
            expiry, _, _ = username.partition(":")
            if not expiry.isdigit() or int(expiry) < time.time():
                return None
            digest = hmac.new(self.rest_secret.encode(), username.encode(), hashlib.sha1).digest()
            return base64.b64encode(digest).decode()
        return self.users.get(username)

    def _reply(self, request, klass, attributes=(), key=None):
        msg_type = stun.message_type(request["method"], klass)
        attributes = list(attributes)
        if self.software:
            attributes.append((stun.ATTR_SOFTWARE, self.software.encode()))
        if key is not None and self.bad_response_integrity:
            key = b"not the key"
        return stun.encode_message(msg_type, request["transaction_id"], attributes, fingerprint=True, integrity_key=key)

    def _error(self, request, code, reason, key=None, challenge=False):
        attributes = [(stun.ATTR_ERROR_CODE, stun.encode_error_code(code, reason))]
        if challenge:
            attributes += [(stun.ATTR_REALM, self.realm.encode()), (stun.ATTR_NONCE, self.nonce)]
        return self._reply(request, "error", attributes, key)

    def _authenticate(self, request, data):
        """Return ``(key, None)`` or ``(None, error reply)``."""
        if stun.get_attribute(request, stun.ATTR_MESSAGE_INTEGRITY) is None:
            return None, self._error(request, 401, "Unauthorized", challenge=True)
        username = stun.get_attribute(request, stun.ATTR_USERNAME)
        realm = stun.get_attribute(request, stun.ATTR_REALM)
        nonce = stun.get_attribute(request, stun.ATTR_NONCE)
        if username is None or realm is None or nonce is None:
            return None, self._error(request, 400, "Bad Request")
        if nonce != self.nonce or self.stale_nonces > 0:
            self.stale_nonces = max(self.stale_nonces - 1, 0)
            self.nonce = self._new_nonce()
            return None, self._error(request, 438, "Stale Nonce", challenge=True)
        username = username.decode()
        password = self._password(username)
        if realm.decode() != self.realm or password is None:
            return None, self._error(request, 401, "Unauthorized", challenge=True)
        key = stun.long_term_key(username, self.realm, password)
        if not stun.check_message_integrity(data, key):
            return None, self._error(request, 401, "Unauthorized", challenge=True)
        return key, None

    def _handle(self, request, data, peer):
        if request["class"] != "request":
            return None
        key = None
        if self.require_auth:
            key, error = self._authenticate(request, data)
            if error is not None:
                return error
        method = request["method"]
        txid = request["transaction_id"]
        if method == turn.METHOD_ALLOCATE:
            if self.allocate_error is not None:
                return self._error(request, *self.allocate_error, key=key)
            if peer in self.allocations:
                return self._error(request, 437, "Allocation Mismatch", key=key)
            transport = stun.get_attribute(request, turn.ATTR_REQUESTED_TRANSPORT)
            if transport is None:
                return self._error(request, 400, "Bad Request", key=key)
            if transport[0] != turn.PROTOCOL_UDP:
                return self._error(request, 442, "Unsupported Transport Protocol", key=key)
            relay = (self.relay_ip, next(self._relay_ports))
            self.allocations[peer] = relay
            self.permissions[peer] = set()
            return self._reply(
                request,
                "success",
                [
                    (turn.ATTR_XOR_RELAYED_ADDRESS, stun.encode_address(*relay, txid, xor=True)),
                    (turn.ATTR_LIFETIME, struct.pack("!I", self.lifetime)),
                    (stun.ATTR_XOR_MAPPED_ADDRESS, stun.encode_address(peer[0], peer[1], txid, xor=True)),
                ],
                key,
            )
        if peer not in self.allocations:
            return self._error(request, 437, "Allocation Mismatch", key=key)
        if method == turn.METHOD_CREATE_PERMISSION:
            peers = [v for t, v in request["attributes"] if t == turn.ATTR_XOR_PEER_ADDRESS]
            if not peers:
                return self._error(request, 400, "Bad Request", key=key)
            for value in peers:
                _, ip, _ = stun.decode_address(value, txid, xor=True)
                if any(ipaddress.ip_address(ip) in net for net in self.denied):
                    return self._error(request, 403, "Forbidden", key=key)
            for value in peers:
                self.permissions[peer].add(stun.decode_address(value, txid, xor=True)[1])
            return self._reply(request, "success", [], key)
        if method == turn.METHOD_REFRESH:
            value = stun.get_attribute(request, turn.ATTR_LIFETIME)
            lifetime = self.lifetime if value is None else min(struct.unpack("!I", value)[0], 3600)
            if lifetime == 0:
                self.freed.append(self.allocations.pop(peer))
            return self._reply(request, "success", [(turn.ATTR_LIFETIME, struct.pack("!I", lifetime))], key)
        return self._error(request, 400, "Bad Request", key=key)
