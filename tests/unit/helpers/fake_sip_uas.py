# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake SIP user agent server with an RTP echo, on 127.0.0.1.

It behaves like an Asterisk endpoint calling ``Echo()``: INVITEs are
challenged with ``401`` (Digest MD5, with or without ``qop=auth``), the
Digest response is checked against a known password (computed here with
``hashlib``, independently of ``sip.digest_response``), the call is answered
with SDP pointing at its own RTP socket, and every RTP packet is sent back
to where it came from with the fake's own SSRC and sequence numbers.

``mode`` selects the behaviour:

* ``echo``: echo everything.
* ``drop``: echo, but drop every 10th packet (10 % loss).
* ``silence``: answer every packet with u-law silence.
* ``no_rtp``: answer the call but never send RTP.
* ``busy``: answer the authenticated INVITE with ``486 Busy Here``.
* ``ringing``: send ``180 Ringing`` and never answer (CANCEL gets 200 + 487).
* ``never``: ignore every SIP message.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import struct
import threading
import time

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import sip

SILENCE = 0xFF  # u-law +0


def _md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class FakeSIPUAS:
    def __init__(
        self,
        username="health",
        password="Health-Secret-4711",
        realm="asterisk",
        qop=True,
        mode="echo",
        transport="udp",
        challenge_bye=False,
        ignore_first_ack=False,
        hangup_after=None,
        record_route=True,
    ):
        self.username = username
        self.password = password
        self.realm = realm
        self.qop = qop
        self.mode = mode
        self.transport = transport
        self.challenge_bye = challenge_bye
        self.ignore_first_ack = ignore_first_ack
        self.hangup_after = hangup_after
        self.record_route = record_route
        self.host = "127.0.0.1"
        self.requests = []  # parsed SIP requests, in order
        self.responses = []  # (status_code, method) sent
        self.auth_checks = []  # (method, ok)
        self.offer = None
        self.rtp_in = []  # parsed headers of received RTP packets
        self.rtp_out = 0
        self.acks = 0
        self.errors = []
        self.bye_from_client = None
        self.bye_answer = None
        self._nonces = {}  # method challenged -> nonces issued
        self._to_tag = os.urandom(4).hex()
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self._seq = int.from_bytes(os.urandom(2), "big")
        self._ts_offset = int.from_bytes(os.urandom(4), "big")
        self._invite = None  # answered (or ringing) INVITE
        self._final = None  # bytes of the final response to resend until ACK
        self._acked = False
        self._next_retransmit = None
        self._sip_peer = None
        self._hung_up = False
        self._stop = threading.Event()
        socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sip_sock = socket.socket(socket.AF_INET, socktype)
        if transport == "tcp":
            self.sip_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sip_sock.bind((self.host, 0))
        if transport == "tcp":
            self.sip_sock.listen(2)
        self.port = self.sip_sock.getsockname()[1]
        self.rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp_sock.bind((self.host, 0))
        self.rtp_port = self.rtp_sock.getsockname()[1]
        self._conn = None
        self._buffer = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        for sock in (self.sip_sock, self.rtp_sock, self._conn):
            if sock is not None:
                sock.close()
        return False

    def methods(self):
        return [request["method"] for request in self.requests]

    # -- loop --------------------------------------------------------------------

    def _serve(self):
        while True:
            watch = [self.sip_sock, self.rtp_sock] + ([self._conn] if self._conn is not None else [])
            try:
                readable = select.select(watch, [], [], 0.02)[0]
            except (OSError, ValueError):
                return
            if not readable and self._stop.is_set():
                return  # stop only once everything sent to us has been handled
            try:
                for sock in readable:
                    if sock is self.rtp_sock:
                        self._on_rtp()
                    elif sock is self.sip_sock and self.transport == "tcp":
                        conn, _ = self.sip_sock.accept()
                        if self._conn is not None:
                            self._conn.close()
                        self._conn, self._buffer = conn, b""
                    elif sock is self.sip_sock:
                        data, peer = self.sip_sock.recvfrom(65535)
                        self._sip_peer = peer
                        self._on_sip(data)
                    else:
                        chunk = self._conn.recv(65535)
                        if not chunk:
                            self._conn.close()
                            self._conn = None
                            continue
                        self._buffer += chunk
                        while True:
                            data, self._buffer = sip.split_stream_message(self._buffer)
                            if data is None:
                                break
                            self._on_sip(data)
                self._timers()
            except Exception as exc:  # keep serving; tests look at errors
                self.errors.append(repr(exc))

    def _send_sip(self, data):
        if self.transport == "udp":
            if self._sip_peer is not None:
                self.sip_sock.sendto(data, self._sip_peer)
        elif self._conn is not None:
            self._conn.sendall(data)

    def _respond(self, request, code, reason, headers=(), body=""):
        data = sip.build_response(
            request, code, reason, to_tag=self._to_tag, headers=headers, body=body, server="FakeAsterisk PBX 22"
        )
        self.responses.append((code, request["method"]))
        self._send_sip(data)
        return data

    def _timers(self):
        now = time.monotonic()
        if self._final is not None and not self._acked and self._next_retransmit and now >= self._next_retransmit:
            self._send_sip(self._final)
            self._next_retransmit = now + 0.2

    # -- SIP -------------------------------------------------------------------------

    def _on_sip(self, data):
        if self.mode == "never":
            return
        message = sip.parse_message(data)
        if message["kind"] != "request":
            if message["status_code"] and sip.header(message, "cseq", "").endswith("BYE"):
                self.bye_answer = message["status_code"]
            return
        self.requests.append(message)
        handler = getattr(self, f"_on_{message['method'].lower()}", None)
        if handler is None:
            self._respond(message, 501, "Not Implemented")
        else:
            handler(message)

    def _challenge(self, request):
        nonce = os.urandom(12).hex()
        self._nonces.setdefault(request["method"], set()).add(nonce)
        value = f'Digest realm="{self.realm}",nonce="{nonce}",opaque="{os.urandom(4).hex()}",algorithm=MD5'
        if self.qop:
            value += ',qop="auth"'
        self._respond(request, 401, "Unauthorized", headers=[("WWW-Authenticate", value)])

    def _authorized(self, request):
        """Check the Authorization header; None when there is none."""
        value = sip.header(request, "authorization")
        if value is None:
            return None
        scheme, params = sip.parse_auth_params(value)
        method = request["method"]
        ok = (
            scheme == "digest"
            and params.get("username") == self.username
            and params.get("realm") == self.realm
            and params.get("nonce") in self._nonces.get(method if self.challenge_bye else "INVITE", ())
            and params.get("uri") == request["uri"]
            and params.get("opaque") is not None
        )
        if ok:
            ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
            ha2 = _md5(f"{method}:{params['uri']}")
            if self.qop:
                ok = params.get("qop") == "auth" and params.get("nc") and params.get("cnonce")
                expected = _md5(f"{ha1}:{params['nonce']}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
            else:
                ok = "qop" not in params
                expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
            ok = bool(ok) and params.get("response") == expected
        self.auth_checks.append((method, ok))
        return ok

    def _on_invite(self, request):
        if self._invite is not None and all(
            sip.header(request, name) == sip.header(self._invite, name) for name in ("call-id", "cseq")
        ):
            if self._final is not None:  # retransmission
                self._send_sip(self._final)
            return
        self._respond(request, 100, "Trying")
        authorized = self._authorized(request)
        if not authorized:
            self._challenge(request)
            return
        self.offer = sip.parse_sdp(request["body"])
        self._invite = request
        if self.mode == "busy":
            self._respond(request, 486, "Busy Here")
            return
        self._respond(request, 180, "Ringing")
        if self.mode == "ringing":
            return
        headers = [("Contact", f"<sip:600@{self.host}:{self.port}>"), ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]
        if self.record_route:
            headers.insert(0, ("Record-Route", f"<sip:{self.host}:{self.port};lr>"))
        answer = sip.build_sdp(self.host, self.rtp_port, session_name="FakeAsterisk")
        self._final = self._respond(request, 200, "OK", headers=headers, body=answer)
        self._next_retransmit = time.monotonic() + 0.2

    def _on_ack(self, request):
        if self._invite is None or sip.header(request, "call-id") != sip.header(self._invite, "call-id"):
            return
        if sip.header(request, "cseq", "").split()[0] != sip.header(self._invite, "cseq", "").split()[0]:
            return
        self.acks += 1
        if self.ignore_first_ack and self.acks == 1:
            return
        self._acked = True

    def _on_cancel(self, request):
        self._respond(request, 200, "OK")
        if self._invite is not None and self._final is None:
            self._final = self._respond(self._invite, 487, "Request Terminated")
            self._next_retransmit = time.monotonic() + 0.2

    def _on_bye(self, request):
        if self.challenge_bye and not self._authorized(request):
            self._challenge(request)
            return
        self.bye_from_client = request
        self._respond(request, 200, "OK")

    def _on_options(self, request):
        self._respond(request, 200, "OK")

    def _send_bye(self):
        """Hang up from our side (the far end of the call)."""
        invite = self._invite
        from_value = sip.header(invite, "from")
        contact = sip.name_addr_uri(sip.header(invite, "contact"))
        data = sip.build_request(
            "BYE",
            contact,
            transport=self.transport,
            local_host=self.host,
            local_port=self.port,
            branch=sip.BRANCH_MAGIC + os.urandom(5).hex(),
            call_id=sip.header(invite, "call-id"),
            cseq=1,
            from_uri=sip.name_addr_uri(sip.header(invite, "to")),
            from_tag=self._to_tag,
            to_uri=sip.name_addr_uri(from_value),
            to_tag=sip.header_param(from_value, "tag"),
        )
        self._hung_up = True
        self._send_sip(data)

    # -- RTP -----------------------------------------------------------------------------

    def _on_rtp(self):
        data, peer = self.rtp_sock.recvfrom(2048)
        if len(data) < 12:
            return
        first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        self.rtp_in.append(
            {
                "version": first >> 6,
                "marker": bool(second & 0x80),
                "pt": second & 0x7F,
                "seq": seq,
                "ts": ts,
                "ssrc": ssrc,
            }
        )
        if self.mode == "no_rtp" or self._hung_up:
            return
        payload = data[12 + 4 * (first & 0x0F) :]
        self._seq = (self._seq + 1) & 0xFFFF
        if self.mode == "drop" and len(self.rtp_in) % 10 == 0:
            return
        if self.mode == "silence":
            payload = bytes([SILENCE]) * len(payload)
        header = struct.pack("!BBHII", 0x80, second & 0xFF, self._seq, (ts + self._ts_offset) & 0xFFFFFFFF, self._ssrc)
        self.rtp_sock.sendto(header + payload, peer)
        self.rtp_out += 1
        if self.hangup_after is not None and self.rtp_out >= self.hangup_after:
            self._send_bye()
