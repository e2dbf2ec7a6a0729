# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIP OPTIONS over UDP, TCP or TLS with the standard library.

Builds an out-of-dialog OPTIONS request (RFC 3261), sends it, retransmits it
over UDP (timer E: T1 = 500 ms doubling up to T2 = 4 s), skips provisional
responses and parses the final response.
"""

from __future__ import annotations

import os
import socket
import ssl
import time

T1 = 0.5
T2 = 4.0
BRANCH_MAGIC = "z9hG4bK"
MAX_MESSAGE_BYTES = 65535

#: RFC 3261 compact header forms.
COMPACT_HEADERS = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "u": "allow-events",
    "x": "session-expires",
}

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


class SIPError(Exception):
    """Base class for SIP errors."""


class SIPParseError(SIPError):
    """The bytes are not a SIP response."""


class SIPTimeout(SIPError):
    """No final response arrived in time."""


class SIPConnectionError(SIPError):
    """Connection refused, reset, TLS failure, ..."""


def random_token(nbytes=8):
    return os.urandom(nbytes).hex()


def format_host(host):
    """Bracket IPv6 literals for use in URIs and Via."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def build_request_uri(host, port, transport="udp", user=None):
    uri = "sip:"
    if user:
        uri += f"{user}@"
    uri += f"{format_host(host)}:{int(port)}"
    if transport != "udp":
        uri += f";transport={transport}"
    return uri


def build_options(
    host,
    port,
    transport="udp",
    user=None,
    local_host="127.0.0.1",
    local_port=5060,
    from_user="ansible",
    user_agent="ansible-voiceops-sip-options-ping",
    call_id=None,
    branch=None,
    from_tag=None,
    cseq=1,
    max_forwards=70,
):
    """Return ``(bytes, info)`` for an OPTIONS request.

    ``info`` holds ``call_id``, ``branch``, ``cseq``, ``from_tag`` and
    ``request_uri`` so that the response can be matched.
    """
    transport = transport.lower()
    call_id = call_id or f"{random_token(12)}@{local_host.strip('[]')}"
    branch = branch or BRANCH_MAGIC + random_token(10)
    from_tag = from_tag or random_token(6)
    request_uri = build_request_uri(host, port, transport, user)
    user_part = f"{user}@" if user else ""
    to_uri = f"sip:{user_part}{format_host(host)}"
    local = f"{format_host(local_host)}:{int(local_port)}"
    contact_params = "" if transport == "udp" else f";transport={transport}"
    lines = [
        f"OPTIONS {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local};branch={branch};rport",
        f"Max-Forwards: {max_forwards}",
        f"From: <sip:{from_user}@{format_host(local_host)}>;tag={from_tag}",
        f"To: <{to_uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <sip:{from_user}@{local}{contact_params}>",
        "Accept: application/sdp",
        f"User-Agent: {user_agent}",
        "Content-Length: 0",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    info = {"call_id": call_id, "branch": branch, "cseq": cseq, "from_tag": from_tag, "request_uri": request_uri}
    return data, info


def _split_head(data):
    for sep in (b"\r\n\r\n", b"\n\n"):
        index = data.find(sep)
        if index >= 0:
            return data[:index], data[index + len(sep) :]
    return None, None


def parse_headers(lines):
    """Parse header lines (with folding) to a dict of lowercase name -> list."""
    headers = {}
    current = None
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            if current is None:
                raise SIPParseError("Continuation line before any header")
            values = headers[current]
            values[-1] = values[-1] + " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name:
            raise SIPParseError(f"Malformed SIP header line: {line[:120]!r}")
        name = COMPACT_HEADERS.get(name, name)
        headers.setdefault(name, []).append(value.strip())
        current = name
    return headers


def parse_message(data):
    """Parse a SIP message (response or request) from bytes.

    Returns ``{kind, status_code, reason, method, uri, version, headers,
    body}``; ``headers`` maps lowercase full header names to lists of values.
    """
    head, body = _split_head(data)
    if head is None:
        raise SIPParseError("Incomplete SIP message (no blank line after headers)")
    text = head.decode("utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)  # RFC 3261 7.5: ignore leading CRLFs (keep-alives)
    if not lines:
        raise SIPParseError("Empty SIP message")
    start = lines[0]
    parts = start.split(" ", 2)
    result = {"status_code": None, "reason": None, "method": None, "uri": None}
    if parts[0].upper().startswith("SIP/"):
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            raise SIPParseError(f"Malformed SIP status line: {start[:120]!r}")
        reason = parts[2] if len(parts) > 2 else ""
        result.update(kind="response", version=parts[0], status_code=int(parts[1]), reason=reason)
    elif len(parts) == 3 and parts[2].upper().startswith("SIP/"):
        result.update(kind="request", version=parts[2], method=parts[0], uri=parts[1])
    else:
        raise SIPParseError(f"Not a SIP message: {start[:120]!r}")
    headers = parse_headers(lines[1:])
    length = headers.get("content-length")
    if length:
        try:
            body = body[: int(length[0])]
        except ValueError:
            raise SIPParseError(f"Bad Content-Length {length[0]!r}") from None
    result["headers"] = headers
    result["body"] = body.decode("utf-8", errors="replace")
    return result


def header(message, name, default=None):
    """First value of a header (case-insensitive, compact forms accepted)."""
    name = name.lower()
    name = COMPACT_HEADERS.get(name, name)
    values = message["headers"].get(name)
    return values[0] if values else default


def via_branch(via_value):
    for param in via_value.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "branch":
            return value.strip()
    return None


def matches(message, info):
    """True when a response belongs to the request described by ``info``."""
    if message.get("kind") != "response":
        return False
    if header(message, "call-id") != info["call_id"]:
        return False
    cseq = (header(message, "cseq") or "").split()
    if len(cseq) != 2 or cseq[1].upper() != "OPTIONS" or cseq[0] != str(info["cseq"]):
        return False
    via = header(message, "via")
    return via is None or via_branch(via) == info["branch"]


def flat_headers(message):
    """Headers as a plain dict (``Title-Case`` names, repeated values joined)."""
    return {"-".join(p.capitalize() for p in name.split("-")): ", ".join(v) for name, v in message["headers"].items()}


def _resolve(host, port, socktype):
    try:
        infos = socket.getaddrinfo(host, port, 0, socktype)
    except socket.gaierror as exc:
        raise SIPConnectionError(f"Cannot resolve {host}: {exc}") from None
    if not infos:
        raise SIPConnectionError(f"Cannot resolve {host}")
    return infos[0]


def make_tls_context(validate_certs=True, ca_path=None):
    context = ssl.create_default_context(cafile=ca_path) if validate_certs else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def options_ping(
    host,
    port=None,
    transport="udp",
    user=None,
    timeout=5.0,
    from_user="ansible",
    user_agent="ansible-voiceops-sip-options-ping",
    validate_certs=True,
    ca_path=None,
    server_name=None,
):
    """Send OPTIONS and wait for the final response.

    Returns ``{status_code, reason, rtt_ms, server, user_agent, headers,
    transmissions, request_uri, provisional}``.  ``rtt_ms`` runs from the
    first transmission to the final response.
    """
    transport = transport.lower()
    if transport not in DEFAULT_PORTS:
        raise ValueError("transport must be udp, tcp or tls")
    port = int(port or DEFAULT_PORTS[transport])
    socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    family, _, proto, _, sockaddr = _resolve(host, port, socktype)
    where = f"{host}:{port} over {transport}"
    deadline = time.monotonic() + timeout
    sock = socket.socket(family, socktype, proto)
    try:
        sock.settimeout(max(timeout, 0.001))
        try:
            sock.connect(sockaddr)
            if transport == "tls":
                context = make_tls_context(validate_certs, ca_path)
                sock = context.wrap_socket(sock, server_hostname=server_name or host)
        except socket.timeout:
            raise SIPTimeout(f"Timed out connecting to {where}") from None
        except ssl.SSLError as exc:
            raise SIPConnectionError(f"TLS handshake with {where} failed: {exc}") from None
        except OSError as exc:
            raise SIPConnectionError(f"Cannot connect to {where}: {exc.strerror or exc}") from None
        local_host, local_port = sock.getsockname()[:2]
        request, info = build_options(
            host,
            port,
            transport,
            user=user,
            local_host=local_host,
            local_port=local_port,
            from_user=from_user,
            user_agent=user_agent,
        )
        if transport == "udp":
            message, first_sent, transmissions, provisional = _exchange_udp(sock, request, info, deadline, where)
        else:
            message, first_sent, transmissions, provisional = _exchange_stream(sock, request, info, deadline, where)
        rtt = time.monotonic() - first_sent
    finally:
        sock.close()
    return {
        "status_code": message["status_code"],
        "reason": message["reason"],
        "rtt_ms": round(rtt * 1000.0, 3),
        "server": header(message, "server"),
        "user_agent": header(message, "user-agent"),
        "headers": flat_headers(message),
        "transmissions": transmissions,
        "request_uri": info["request_uri"],
        "provisional": provisional,
        "local_address": {"address": local_host, "port": local_port},
    }


def _timeout(where, deadline_total, transmissions, provisional):
    text = f"No final SIP response from {where} within {deadline_total:.1f}s ({transmissions} request(s) sent"
    if provisional:
        text += "; provisional: " + ", ".join(str(code) for code in provisional)
    return SIPTimeout(text + ")")


def _exchange_udp(sock, request, info, deadline, where):
    total = deadline - time.monotonic()
    interval = T1
    transmissions = 0
    first_sent = None
    next_send = time.monotonic()
    provisional = []
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise _timeout(where, total, transmissions, provisional)
        # After a provisional response, RFC 3261 17.1.2.2 keeps retransmitting at T2.
        if now >= next_send:
            try:
                sock.send(request)
            except OSError as exc:
                raise SIPConnectionError(f"Cannot send to {where}: {exc.strerror or exc}") from None
            if first_sent is None:
                first_sent = time.monotonic()
            transmissions += 1
            next_send = time.monotonic() + interval
            interval = T2 if provisional else min(interval * 2, T2)
        sock.settimeout(max(min(deadline, next_send) - time.monotonic(), 0.001))
        try:
            data = sock.recv(MAX_MESSAGE_BYTES)
        except socket.timeout:
            continue
        except ConnectionRefusedError:
            raise SIPConnectionError(
                f"{where} refused the request (ICMP port unreachable: nothing listens there)"
            ) from None
        except OSError as exc:
            raise SIPConnectionError(f"Error receiving from {where}: {exc.strerror or exc}") from None
        try:
            message = parse_message(data)
        except SIPParseError:
            continue
        if not matches(message, info):
            continue
        if message["status_code"] < 200:
            provisional.append(message["status_code"])
            interval = T2
            continue
        return message, first_sent, transmissions, provisional


def _exchange_stream(sock, request, info, deadline, where):
    total = deadline - time.monotonic()
    try:
        sock.sendall(request)
    except OSError as exc:
        raise SIPConnectionError(f"Cannot send to {where}: {exc.strerror or exc}") from None
    first_sent = time.monotonic()
    buffer = b""
    provisional = []
    while True:
        buffer = buffer.lstrip(b"\r\n")  # keep-alive CRLFs
        head, rest = _split_head(buffer)
        if head is not None:
            head_lines = [line.rstrip("\r") for line in head.decode("utf-8", errors="replace").split("\n")]
            headers = parse_headers(head_lines[1:])
            length_values = headers.get("content-length") or ["0"]
            try:
                length = int(length_values[0])
            except ValueError:
                raise SIPParseError(f"Bad Content-Length from {where}") from None
            if len(rest) >= length:
                consumed = len(buffer) - len(rest) + length
                data, buffer = buffer[:consumed], buffer[consumed:]
                message = parse_message(data)
                if matches(message, info):
                    if message["status_code"] < 200:
                        provisional.append(message["status_code"])
                    else:
                        return message, first_sent, 1, provisional
                continue
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise SIPParseError(f"SIP message from {where} larger than {MAX_MESSAGE_BYTES} bytes")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(where, total, 1, provisional)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(MAX_MESSAGE_BYTES)
        except socket.timeout:
            raise _timeout(where, total, 1, provisional) from None
        except OSError as exc:
            raise SIPConnectionError(f"Error receiving from {where}: {exc.strerror or exc}") from None
        if not chunk:
            raise SIPConnectionError(f"{where} closed the connection without a final response")
        buffer += chunk
