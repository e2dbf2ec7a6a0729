# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fake STUN and SIP responders on 127.0.0.1 (UDP, and TCP for SIP/STUN)."""

from __future__ import annotations

import socket
import struct
import threading

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import sip, stun


class _Responder:
    """Serve datagrams (or TCP connections) on 127.0.0.1 in a thread.

    ``handler(data, peer)`` returns a list of byte strings to send back.
    ``drop_first`` ignores that many requests (to test retransmission).
    """

    def __init__(
        self, handler, transport="udp", drop_first=0, family=socket.AF_INET, host="127.0.0.1", ssl_context=None
    ):
        self.handler = handler
        self.ssl_context = ssl_context
        self.errors = []
        self.transport = transport
        self.drop_first = drop_first
        self.requests = []
        self._stop = threading.Event()
        socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(family, socktype)
        if transport != "udp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        if transport != "udp":
            self.sock.listen(5)
        self.sock.settimeout(0.05)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return False

    def _answer(self, data, peer):
        self.requests.append(data)
        if len(self.requests) <= self.drop_first:
            return []
        return self.handler(data, peer) or []

    def _serve(self):
        while not self._stop.is_set():
            if self.transport == "udp":
                try:
                    data, peer = self.sock.recvfrom(65535)
                except socket.timeout:
                    continue
                except OSError:
                    return
                for reply in self._answer(data, peer):
                    self.sock.sendto(reply, peer)
            else:
                try:
                    conn, peer = self.sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                conn.settimeout(2)
                if self.ssl_context is not None:
                    try:
                        conn = self.ssl_context.wrap_socket(conn, server_side=True)
                    except OSError as exc:  # e.g. the client rejected our certificate
                        self.errors.append(str(exc))
                        conn.close()
                        continue
                with conn:
                    try:
                        data = self._read_stream_request(conn)
                        for reply in self._answer(data, peer):
                            conn.sendall(reply)
                        conn.settimeout(0.5)
                        conn.recv(1)  # wait for the client to close
                    except OSError:
                        pass

    def _read_stream_request(self, conn):
        data = b""
        while True:
            chunk = conn.recv(65535)
            if not chunk:
                return data
            data += chunk
            if data[:2] in (b"\x00\x01",) and len(data) >= 20:  # STUN
                length = struct.unpack("!H", data[2:4])[0]
                if len(data) >= 20 + length:
                    return data
            elif b"\r\n\r\n" in data:
                return data


def stun_handler(software="FakeSTUN 1.0", mapped=None, extra_attributes=(), error=None, fingerprint=True):
    """Binding responder: echo the source address as XOR-MAPPED-ADDRESS."""

    def handle(data, peer):
        request = stun.parse_message(data)
        txid = request["transaction_id"]
        if error is not None:
            attrs = [(stun.ATTR_ERROR_CODE, stun.encode_error_code(*error))]
            return [stun.encode_message(stun.BINDING_ERROR, txid, attrs)]
        ip, port = mapped or peer[:2]
        attrs = [
            (stun.ATTR_XOR_MAPPED_ADDRESS, stun.encode_address(ip, port, txid, xor=True)),
            (stun.ATTR_MAPPED_ADDRESS, stun.encode_address(ip, port, xor=False)),
        ]
        attrs.extend(extra_attributes)
        if software:
            attrs.append((stun.ATTR_SOFTWARE, software.encode("utf-8")))
        return [stun.encode_message(stun.BINDING_SUCCESS, txid, attrs, fingerprint=fingerprint)]

    return handle


def sip_handler(status=200, reason="OK", server="FakeAsterisk PBX 22.10.1", provisional=(), known_users=None):
    """OPTIONS responder: copy Via/From/To/Call-ID/CSeq, answer ``status``.

    With ``known_users`` a Request-URI user outside that set gets 404.
    """

    def handle(data, peer):
        request = sip.parse_message(data)
        code, text = status, reason
        user = request["uri"].split(":", 1)[1].split("@", 1)[0] if "@" in request["uri"] else None
        if known_users is not None and user is not None and user not in known_users:
            code, text = 404, "Not Found"
        replies = []
        for prov in provisional:
            replies.append(_sip_response(request, prov, "Trying", server))
        replies.append(_sip_response(request, code, text, server))
        return replies

    return handle


def _sip_response(request, code, reason, server):
    h = request["headers"]
    lines = [f"SIP/2.0 {code} {reason}"]
    for via in h.get("via", []):
        lines.append(f"Via: {via};received=127.0.0.1")
    lines.append(f"From: {h['from'][0]}")
    lines.append(f"To: {h['to'][0]};tag=fake{code}")
    lines.append(f"Call-ID: {h['call-id'][0]}")
    lines.append(f"CSeq: {h['cseq'][0]}")
    lines.append("Allow: OPTIONS, REGISTER, INVITE, ACK, BYE, CANCEL")
    if server:
        lines.append(f"Server: {server}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def stun_responder(**kwargs):
    transport = kwargs.pop("transport", "udp")
    drop_first = kwargs.pop("drop_first", 0)
    return _Responder(stun_handler(**kwargs), transport=transport, drop_first=drop_first)


def sip_responder(**kwargs):
    transport = kwargs.pop("transport", "udp")
    drop_first = kwargs.pop("drop_first", 0)
    ssl_context = kwargs.pop("ssl_context", None)
    return _Responder(sip_handler(**kwargs), transport=transport, drop_first=drop_first, ssl_context=ssl_context)


def silent_responder(transport="udp"):
    """Bound socket that never answers (timeouts)."""
    return _Responder(lambda data, peer: [], transport=transport)


def refused_udp_port():
    """A UDP port on 127.0.0.1 with nothing listening (ICMP port unreachable)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def refused_tcp_port():
    """A TCP port on 127.0.0.1 with nothing listening (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
