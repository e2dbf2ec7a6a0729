"""REGISTER over SIP WebSocket (wss) with digest auth - stdlib only.

Runs inside throw-away test containers (python3 without extra packages) as a
credential-stuffing attacker, and from the tests as a plain client:

  python3 ws_register.py HOST PORT USER PASSWORD [ATTEMPTS] [ws|udp] [PAUSE_SECONDS]

Each attempt sends REGISTER, answers the 401 challenge with PASSWORD and
prints the final status code; "closed" when the connection is dropped and
"timeout" when nothing comes back (a firewall ban).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
import struct
import sys
import time
import uuid


def ws_connect(host: str, port: int, timeout: float = 5.0) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, port), timeout=timeout)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the WebSocket handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    if " 101 " not in status:
        raise ConnectionError(f"WebSocket handshake refused: {status}")
    return sock


def ws_send(sock: ssl.SSLSocket, text: str) -> None:
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def _recv_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def ws_recv(sock: ssl.SSLSocket) -> str:
    while True:
        b0, b1 = _recv_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", _recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", _recv_exact(sock, 8))[0]
        payload = _recv_exact(sock, n)
        if b0 & 0x0F in (0x1, 0x2):
            return payload.decode(errors="replace")
        if b0 & 0x0F == 0x8:
            raise ConnectionError("closed")


class Udp:
    """The same REGISTER over plain UDP (agents must be refused there)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.addr = (host, port)

    def sendall(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def recv_text(self) -> str:
        return self.sock.recv(65535).decode(errors="replace")


def _send(sock, text: str) -> None:
    if isinstance(sock, Udp):
        sock.sendall(text.encode())
    else:
        ws_send(sock, text)


def _register(host: str, user: str, cseq: int, call_id: str, tag: str, auth: str = "", via: str = "WSS") -> str:
    branch = "z9hG4bK" + uuid.uuid4().hex
    return (
        f"REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/{via} attacker.invalid;branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{user}@{host}>\r\nFrom: <sip:{user}@{host}>;tag={tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{uuid.uuid4().hex[:8]}@attacker.invalid;transport=ws>;expires=60\r\n"
        f"{auth}Expires: 60\r\nContent-Length: 0\r\n\r\n"
    )


def _sip_response(sock) -> str:
    while True:
        msg = sock.recv_text() if isinstance(sock, Udp) else ws_recv(sock)
        if msg.startswith("SIP/2.0 ") and not msg.startswith("SIP/2.0 100"):
            return msg


def attempt(sock, host: str, user: str, password: str, cseq: int) -> str:
    call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
    via = "UDP" if isinstance(sock, Udp) else "WSS"
    _send(sock, _register(host, user, cseq, call_id, tag, via=via))
    resp = _sip_response(sock)
    code = resp.split(" ", 2)[1]
    if code != "401":
        return code
    challenge = re.search(r"WWW-Authenticate:\s*Digest\s+(.*)", resp, re.I).group(1)
    realm = re.search(r'realm="([^"]+)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    qop = "auth" if re.search(r'qop="[^"]*auth', challenge) else None
    uri = f"sip:{host}"
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - SIP digest is MD5
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()  # noqa: S324
    cnonce, nc = uuid.uuid4().hex[:16], "00000001"
    if qop:
        digest = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()  # noqa: S324
        extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        digest = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()  # noqa: S324
        extra = ""
    auth = (
        f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{digest}", algorithm=MD5{extra}\r\n'
    )
    _send(sock, _register(host, user, cseq + 1, call_id, tag, auth, via=via))
    return _sip_response(sock).split(" ", 2)[1]


def main(argv: list[str]) -> int:
    host, port, user, password = argv[1], int(argv[2]), argv[3], argv[4]
    attempts = int(argv[5]) if len(argv) > 5 else 1
    transport = argv[6] if len(argv) > 6 else "ws"
    pause = float(argv[7]) if len(argv) > 7 else 0.0
    codes = []
    sock = None
    for i in range(attempts):
        try:
            if sock is None:
                sock = Udp(host, port) if transport == "udp" else ws_connect(host, port)
            codes.append(attempt(sock, host, user, password, 2 * i + 1))
        except (socket.timeout, TimeoutError):
            codes.append("timeout")
            sock = None
        except (ConnectionError, OSError):
            codes.append("closed")
            sock = None
        if codes[-2:] in (["timeout", "timeout"], ["closed", "closed"]):
            break  # banned: no point waiting out the rest
        time.sleep(pause)
    print(" ".join(codes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
