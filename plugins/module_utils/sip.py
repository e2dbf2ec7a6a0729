# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIP over UDP, TCP or TLS with the standard library.

Builds an out-of-dialog OPTIONS request (RFC 3261), sends it, retransmits it
over UDP (timer E: T1 = 500 ms doubling up to T2 = 4 s), skips provisional
responses and parses the final response.

For synthetic calls it also has a minimal user agent client: SDP offer and
answer (RFC 4566), Digest authentication (RFC 2617 / RFC 7616 with MD5 and
SHA-256) and an INVITE dialog with ACK, CANCEL and BYE (``SIPCall``).
"""

from __future__ import annotations

import hashlib
import os
import select
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


class SIPAuthError(SIPError):
    """A Digest challenge cannot be answered (unsupported algorithm or qop)."""


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
    method = info.get("method", "OPTIONS").upper()
    if len(cseq) != 2 or cseq[1].upper() != method or cseq[0] != str(info["cseq"]):
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


def split_stream_message(buffer, where="the peer"):
    """Frame one SIP message from a stream buffer (RFC 3261 18.3).

    Returns ``(message_bytes, rest)``, or ``(None, buffer)`` while the message
    is incomplete.  Leading keep-alive CRLFs are dropped.
    """
    buffer = buffer.lstrip(b"\r\n")
    head, rest = _split_head(buffer)
    if head is None:
        return None, buffer
    head_lines = [line.rstrip("\r") for line in head.decode("utf-8", errors="replace").split("\n")]
    headers = parse_headers(head_lines[1:])
    length_values = headers.get("content-length") or ["0"]
    try:
        length = int(length_values[0])
    except ValueError:
        raise SIPParseError(f"Bad Content-Length from {where}") from None
    if len(rest) < length:
        return None, buffer
    consumed = len(buffer) - len(rest) + length
    return buffer[:consumed], buffer[consumed:]


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
        data, buffer = split_stream_message(buffer, where)
        if data is not None:
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


# ---------------------------------------------------------------------------
# Header helpers for dialogs
# ---------------------------------------------------------------------------


def split_header_values(values):
    """Split comma-separated header values, ignoring commas in ``<...>`` and quotes."""
    if isinstance(values, str):
        values = [values]
    items = []
    for value in values or []:
        current, depth, quoted, escaped = "", 0, False, False
        for char in value:
            if escaped:
                escaped = False
            elif quoted and char == "\\":
                escaped = True
            elif char == '"':
                quoted = not quoted
            elif not quoted and char == "<":
                depth += 1
            elif not quoted and char == ">":
                depth = max(depth - 1, 0)
            elif char == "," and not quoted and depth == 0:
                if current.strip():
                    items.append(current.strip())
                current = ""
                continue
            current += char
        if current.strip():
            items.append(current.strip())
    return items


def name_addr_uri(value):
    """The URI of a name-addr or addr-spec header value (``"A" <sip:a@b>;tag=1`` -> ``sip:a@b``)."""
    if value is None:
        return None
    start = value.find("<")
    if start >= 0:
        end = value.find(">", start)
        return value[start + 1 : end if end > 0 else None].strip()
    return value.split(";", 1)[0].strip()


def header_param(value, name):
    """A parameter of a header value after the URI (``tag`` of ``<sip:a@b>;tag=1``)."""
    if value is None:
        return None
    tail = value[value.rfind(">") + 1 :] if ">" in value else value.partition(";")[2]
    for param in tail.split(";"):
        key, _, param_value = param.partition("=")
        if key.strip().lower() == name.lower():
            return param_value.strip()
    return None


def build_request(
    method,
    request_uri,
    *,
    transport,
    local_host,
    local_port,
    branch,
    call_id,
    cseq,
    from_uri,
    from_tag,
    to_uri,
    to_tag=None,
    cseq_method=None,
    contact=None,
    routes=(),
    headers=(),
    body="",
    content_type="application/sdp",
    user_agent=None,
    max_forwards=70,
):
    """Bytes of a SIP request (``headers`` is a list of ``(name, value)`` pairs)."""
    lines = [
        f"{method} {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {format_host(local_host)}:{int(local_port)};branch={branch};rport",
        f"Max-Forwards: {max_forwards}",
        f"From: <{from_uri}>;tag={from_tag}",
        f"To: <{to_uri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {int(cseq)} {cseq_method or method}",
    ]
    lines.extend(f"Route: {route}" for route in routes)
    if contact:
        lines.append(f"Contact: {contact}")
    return _finish_message(lines, headers, ("User-Agent", user_agent), body, content_type)


def build_response(
    request, status_code, reason, *, to_tag=None, headers=(), body="", content_type="application/sdp", server=None
):
    """Bytes of a response to a parsed request (Via, From, To, Call-ID and CSeq copied).

    ``to_tag`` is added to the ``To`` header unless it already has a tag.
    """
    h = request["headers"]
    lines = [f"SIP/2.0 {int(status_code)} {reason}"]
    lines.extend(f"Via: {via}" for via in split_header_values(h.get("via", [])))
    if status_code < 300:
        lines.extend(f"Record-Route: {route}" for route in h.get("record-route", []))
    lines.append(f"From: {header(request, 'from', '')}")
    to_value = header(request, "to", "")
    if to_tag and status_code > 100 and header_param(to_value, "tag") is None:
        to_value += f";tag={to_tag}"
    lines.append(f"To: {to_value}")
    lines.append(f"Call-ID: {header(request, 'call-id', '')}")
    lines.append(f"CSeq: {header(request, 'cseq', '')}")
    return _finish_message(lines, headers, ("Server", server), body, content_type)


def _finish_message(lines, headers, software, body, content_type):
    """Extra headers, User-Agent/Server, body with Content-Type and Content-Length: the message's bytes."""
    lines.extend(f"{name}: {value}" for name, value in headers)
    if software[1]:
        lines.append(f"{software[0]}: {software[1]}")
    payload = body.encode("utf-8") if body else b""
    if payload:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


# ---------------------------------------------------------------------------
# SDP (RFC 4566 / RFC 3264), just what an audio call needs
# ---------------------------------------------------------------------------

DEFAULT_AUDIO_FORMATS = ((0, "PCMU/8000", None), (101, "telephone-event/8000", "0-16"))


def build_sdp(
    address,
    port,
    formats=DEFAULT_AUDIO_FORMATS,
    ptime=20,
    direction="sendrecv",
    session_id=None,
    session_version=None,
    session_name="voiceops health check",
):
    """An SDP offer/answer with one audio stream.

    ``formats`` is a sequence of ``(payload_type, "encoding/clock", fmtp or None)``.
    """
    family = "IP6" if ":" in address else "IP4"
    address = address.strip("[]")
    session_id = session_id if session_id is not None else int.from_bytes(os.urandom(4), "big")
    session_version = session_version if session_version is not None else session_id
    lines = [
        "v=0",
        f"o=- {session_id} {session_version} IN {family} {address}",
        f"s={session_name}",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {int(port)} RTP/AVP {' '.join(str(fmt[0]) for fmt in formats)}",
    ]
    for payload_type, encoding, fmtp in formats:
        lines.append(f"a=rtpmap:{payload_type} {encoding}")
        if fmtp:
            lines.append(f"a=fmtp:{payload_type} {fmtp}")
    if ptime:
        lines.append(f"a=ptime:{int(ptime)}")
    if direction:
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def _float_or_none(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_sdp(text):
    """Parse SDP to ``{origin, connection, media: [...]}``.

    Each media entry has ``media``, ``port``, ``proto``, ``formats`` (list of
    str), ``connection`` (media-level c= address or the session one),
    ``rtpmap`` and ``fmtp`` (dicts keyed by payload type string), ``ptime``
    and ``direction``.
    """
    session = {"origin": None, "connection": None, "media": []}
    current = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "o":
            session["origin"] = value
        elif kind == "c":
            parts = value.split()
            address = parts[2].split("/", 1)[0] if len(parts) >= 3 else None
            if current is None:
                session["connection"] = address
            else:
                current["connection"] = address
        elif kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SIPParseError(f"Malformed SDP media line: {line[:120]!r}")
            try:
                port = int(parts[1].split("/", 1)[0])
            except ValueError:
                raise SIPParseError(f"Malformed SDP media port: {line[:120]!r}") from None
            current = {
                "media": parts[0],
                "port": port,
                "proto": parts[2],
                "formats": parts[3:],
                "connection": None,
                "rtpmap": {},
                "fmtp": {},
                "ptime": None,
                "direction": None,
            }
            session["media"].append(current)
        elif kind == "a":
            name, _, attr = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if current is not None:
                    current["direction"] = name
                else:
                    session.setdefault("direction", name)
            elif current is not None and name in ("rtpmap", "fmtp"):
                payload_type, _, rest = attr.partition(" ")
                current[name][payload_type.strip()] = rest.strip()
            elif current is not None and name == "ptime":
                current["ptime"] = _float_or_none(attr)
    for media in session["media"]:
        media["connection"] = media["connection"] or session["connection"]
        media["direction"] = media["direction"] or session.get("direction") or "sendrecv"
    return session


# ---------------------------------------------------------------------------
# Digest authentication (RFC 2617, RFC 7616 / RFC 8760 algorithms)
# ---------------------------------------------------------------------------

_DIGEST_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _hasher(algorithm):
    base = algorithm.upper()
    if base.endswith("-SESS"):
        base = base[: -len("-SESS")]
    name = _DIGEST_HASHES.get(base)
    if name is None:
        raise SIPAuthError(f"Unsupported Digest algorithm {algorithm!r}")

    def digest(text):
        try:
            hasher = hashlib.new(name, usedforsecurity=False)
        except TypeError:  # pragma: no cover - Python without usedforsecurity
            hasher = hashlib.new(name)
        except ValueError:
            raise SIPAuthError(f"Digest algorithm {algorithm!r} is not available in this Python") from None
        hasher.update(text.encode("utf-8"))
        return hasher.hexdigest()

    return digest


def digest_supported(algorithm):
    try:
        _hasher(algorithm or "MD5")("")
    except SIPAuthError:
        return False
    return True


def parse_auth_params(value):
    """``'Digest realm="a", nonce="b"'`` -> ``("digest", {"realm": "a", "nonce": "b"})``."""
    value = (value or "").strip()
    scheme, _, rest = value.partition(" ")
    params = {}
    index, length = 0, len(rest)
    while index < length:
        while index < length and rest[index] in " \t,":
            index += 1
        start = index
        while index < length and rest[index] not in "=,":
            index += 1
        key = rest[start:index].strip().lower()
        if index >= length or rest[index] == ",":
            if key:
                params[key] = ""
            continue
        index += 1  # '='
        while index < length and rest[index] in " \t":
            index += 1
        if index < length and rest[index] == '"':
            index += 1
            chars = []
            while index < length and rest[index] != '"':
                if rest[index] == "\\" and index + 1 < length:
                    index += 1
                chars.append(rest[index])
                index += 1
            index += 1  # closing quote
            param = "".join(chars)
        else:
            start = index
            while index < length and rest[index] != ",":
                index += 1
            param = rest[start:index].strip()
        if key:
            params[key] = param
    return scheme.lower(), params


def digest_response(
    username, password, realm, nonce, method, uri, qop=None, nc=None, cnonce=None, algorithm="MD5", body=""
):
    """The ``response`` value of a Digest Authorization (RFC 2617 3.2.2.1)."""
    algorithm = algorithm or "MD5"
    digest = _hasher(algorithm)
    ha1 = digest(f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + digest(body or "")
    ha2 = digest(a2)
    if qop:
        return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return digest(f"{ha1}:{nonce}:{ha2}")


def choose_challenge(message):
    """The first Digest challenge of a 401/407 with a supported algorithm.

    Returns ``(authorization_header_name, params)`` or ``None``.  Servers list
    challenges in order of preference (RFC 7616 3.7).
    """
    for source, target in (("www-authenticate", "Authorization"), ("proxy-authenticate", "Proxy-Authorization")):
        for value in message["headers"].get(source, []):
            scheme, params = parse_auth_params(value)
            if scheme == "digest" and params.get("nonce") is not None and digest_supported(params.get("algorithm")):
                return target, params
    return None


def build_authorization(params, username, password, method, uri, nc=1, cnonce=None, body=""):
    """The value of an Authorization header answering challenge ``params``."""
    qop_options = [item.strip().lower() for item in params.get("qop", "").split(",") if item.strip()]
    qop = None
    if qop_options:
        if "auth" in qop_options:
            qop = "auth"
        elif "auth-int" in qop_options:
            qop = "auth-int"
        else:
            raise SIPAuthError(f"Unsupported Digest qop {params.get('qop')!r}")
    algorithm = params.get("algorithm") or None
    cnonce = cnonce or random_token(8)
    nc_text = f"{int(nc):08x}"
    response = digest_response(
        username,
        password,
        params.get("realm", ""),
        params["nonce"],
        method,
        uri,
        qop=qop,
        nc=nc_text if qop else None,
        cnonce=cnonce if qop or (algorithm or "").upper().endswith("-SESS") else None,
        algorithm=algorithm or "MD5",
        body=body,
    )

    def quote(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    parts = [
        f"username={quote(username)}",
        f"realm={quote(params.get('realm', ''))}",
        f"nonce={quote(params['nonce'])}",
        f"uri={quote(uri)}",
        f"response={quote(response)}",
    ]
    if algorithm:
        parts.append(f"algorithm={algorithm}")
    if "opaque" in params:
        parts.append(f"opaque={quote(params['opaque'])}")
    if qop:
        parts.extend([f"qop={qop}", f"nc={nc_text}", f"cnonce={quote(cnonce)}"])
    elif (algorithm or "").upper().endswith("-SESS"):
        parts.append(f"cnonce={quote(cnonce)}")
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------
# Connection and INVITE dialog (user agent client)
# ---------------------------------------------------------------------------


class SIPConnection:
    """A UDP or TCP socket to one SIP server that sends and receives whole messages."""

    def __init__(self, host, port, transport="udp", timeout=5.0):
        transport = transport.lower()
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        self.transport = transport
        self.host = host
        self.port = int(port)
        self.where = f"{host}:{self.port} over {transport}"
        socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        family, _, proto, _, sockaddr = _resolve(host, self.port, socktype)
        self._buffer = b""
        self.sock = socket.socket(family, socktype, proto)
        try:
            self.sock.settimeout(max(timeout, 0.001))
            self.sock.connect(sockaddr)
        except socket.timeout:
            self.sock.close()
            raise SIPTimeout(f"Timed out connecting to {self.where}") from None
        except OSError as exc:
            self.sock.close()
            raise SIPConnectionError(f"Cannot connect to {self.where}: {exc.strerror or exc}") from None
        self.local_host, self.local_port = self.sock.getsockname()[:2]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.sock.close()

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        try:
            if self.transport == "udp":
                self.sock.send(data)
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise SIPConnectionError(f"Cannot send to {self.where}: {exc.strerror or exc}") from None

    def receive(self, timeout):
        """The next parsed message, or ``None`` when nothing arrives within ``timeout`` seconds.

        Datagrams that are not SIP (keep-alives, garbage) are skipped.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if self.transport != "udp":
                data, self._buffer = split_stream_message(self._buffer, self.where)
                if data is not None:
                    try:
                        return parse_message(data)
                    except SIPParseError:
                        continue
                if len(self._buffer) > MAX_MESSAGE_BYTES:
                    raise SIPParseError(f"SIP message from {self.where} larger than {MAX_MESSAGE_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not select.select([self.sock], [], [], 0)[0]:
                return None
            self.sock.settimeout(max(remaining, 0.0001))
            try:
                chunk = self.sock.recv(MAX_MESSAGE_BYTES)
            except socket.timeout:
                return None
            except ConnectionRefusedError:
                raise SIPConnectionError(
                    f"{self.where} refused the request (ICMP port unreachable: nothing listens there)"
                ) from None
            except OSError as exc:
                raise SIPConnectionError(f"Error receiving from {self.where}: {exc.strerror or exc}") from None
            if self.transport == "udp":
                try:
                    return parse_message(chunk)
                except SIPParseError:
                    continue
            if not chunk:
                raise SIPConnectionError(f"{self.where} closed the connection")
            self._buffer += chunk


class SIPCall:
    """One outgoing call: INVITE with Digest authentication, ACK, CANCEL, BYE.

    Requests always go to the connected server (an outbound proxy in RFC 3261
    terms); the dialog's remote target and route set are used in the
    Request-URI and Route headers.  Requests the server sends (BYE, re-INVITE,
    OPTIONS, ...) are answered while waiting for responses and in ``poll``.
    The password is only used to compute Digest responses; it never appears
    in messages, errors or attributes.
    """

    MAX_CHALLENGES = 3

    def __init__(
        self,
        conn,
        request_uri,
        to_uri,
        from_uri,
        username,
        password,
        user_agent="ansible-voiceops-sip-echo-call",
        contact_user=None,
    ):
        self.conn = conn
        self.request_uri = request_uri
        self.to_uri = to_uri
        self.from_uri = from_uri
        self.username = username
        self._password = password
        self.user_agent = user_agent
        contact_params = "" if conn.transport == "udp" else f";transport={conn.transport}"
        user = contact_user or username
        self.contact = f"<sip:{user}@{format_host(conn.local_host)}:{conn.local_port}{contact_params}>"
        self.call_id = f"{random_token(12)}@{conn.local_host.strip('[]')}"
        self.from_tag = random_token(6)
        self.cseq = int.from_bytes(os.urandom(2), "big") % 10000 + 1
        self.local_sdp = ""
        self.remote_tag = None
        self.remote_target = None
        self.route_set = []
        self.established = False
        self.remote_bye = False
        self.provisional = []
        self.auth_error = None
        self.invite_sent_at = None
        self.answered_at = None
        self.final_response = None
        self._challenge = None  # (header name, params)
        self._nc = 0
        self._acks = {}  # INVITE CSeq number -> ACK bytes (resent for retransmitted finals)
        self._pending_invite = None
        self._invite_auth = None

    # -- building -----------------------------------------------------------

    def _credentials(self, method, uri, body=""):
        if self._challenge is None:
            return []
        name, params = self._challenge
        self._nc += 1
        return [(name, build_authorization(params, self.username, self._password, method, uri, self._nc, body=body))]

    def _request(self, method, *, uri=None, body="", cseq=None, branch=None, to_tag=None, routes=(), auth=None):
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        uri = uri or self.request_uri
        branch = branch or BRANCH_MAGIC + random_token(10)
        headers = list(auth) if auth is not None else self._credentials(method, uri, body)
        if method in ("INVITE", "BYE"):
            headers.append(("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
        data = build_request(
            method,
            uri,
            transport=self.conn.transport,
            local_host=self.conn.local_host,
            local_port=self.conn.local_port,
            branch=branch,
            call_id=self.call_id,
            cseq=cseq,
            from_uri=self.from_uri,
            from_tag=self.from_tag,
            to_uri=self.to_uri,
            to_tag=to_tag,
            contact=self.contact if method in ("INVITE",) else None,
            routes=routes,
            headers=headers,
            body=body,
            user_agent=self.user_agent,
        )
        info = {"call_id": self.call_id, "branch": branch, "cseq": cseq, "method": method, "uri": uri}
        return data, info, headers

    # -- transactions --------------------------------------------------------

    def _transaction(self, data, info, deadline, invite=False):
        """Send a request (retransmitting over UDP) and return its final response."""
        udp = self.conn.transport == "udp"
        interval = T1
        transmissions = 0
        proceeding = False
        next_send = time.monotonic()
        total = max(deadline - time.monotonic(), 0.0)
        info["provisional"] = []
        while True:
            now = time.monotonic()
            if now >= deadline:
                codes = ", ".join(str(code) for code in info["provisional"])
                text = f"No final response to {info['method']} from {self.conn.where} within {total:.1f}s"
                text += f" ({transmissions} request(s) sent" + (f"; provisional: {codes})" if codes else ")")
                raise SIPTimeout(text)
            resend = udp and not (invite and proceeding)
            if transmissions == 0 or (resend and now >= next_send):
                self.conn.send(data)
                if transmissions == 0:
                    info["sent_at"] = time.monotonic()
                transmissions += 1
                next_send = time.monotonic() + interval
                interval = interval * 2 if invite else min(interval * 2, T2)
            wait = deadline - time.monotonic()
            if resend:
                wait = min(wait, next_send - time.monotonic())
            message = self.conn.receive(max(wait, 0.001))
            if message is None:
                continue
            if message["kind"] == "request":
                self._answer_request(message)
                continue
            if not matches(message, info):
                self._stray_response(message)
                continue
            if message["status_code"] < 200:
                info["provisional"].append(message["status_code"])
                proceeding = True
                if not invite:
                    interval = T2
                continue
            info["received_at"] = time.monotonic()
            return message

    def _ack_failure(self, response, info):
        """ACK a non-2xx final response to INVITE (same branch, RFC 3261 17.1.1.3)."""
        data, _, _ = self._request(
            "ACK",
            uri=info["uri"],
            cseq=info["cseq"],
            branch=info["branch"],
            to_tag=header_param(header(response, "to"), "tag"),
            auth=[],
        )
        self._acks[info["cseq"]] = data
        self.conn.send(data)

    def _establish(self, response, info):
        """Set up the dialog from a 2xx to INVITE and send the ACK (RFC 3261 13.2.2.4)."""
        self.remote_tag = header_param(header(response, "to"), "tag")
        contact = split_header_values(response["headers"].get("contact", []))
        self.remote_target = name_addr_uri(contact[0]) if contact else info["uri"]
        self.route_set = list(reversed(split_header_values(response["headers"].get("record-route", []))))
        data, _, _ = self._request(
            "ACK",
            uri=self.remote_target,
            cseq=info["cseq"],
            to_tag=self.remote_tag,
            routes=self.route_set,
            auth=self._invite_auth or [],
        )
        self._acks[info["cseq"]] = data
        self.conn.send(data)
        self.established = True
        self.answered_at = info.get("received_at") or time.monotonic()

    def _stray_response(self, message):
        """Re-ACK retransmitted final responses to INVITE; finish a pending (cancelled) INVITE."""
        cseq = (header(message, "cseq") or "").split()
        if header(message, "call-id") != self.call_id or len(cseq) != 2 or cseq[1].upper() != "INVITE":
            return
        if message["status_code"] < 200:
            return
        pending = self._pending_invite
        if pending is not None and matches(message, pending):
            self._pending_invite = None
            self.final_response = message
            if message["status_code"] < 300:
                pending["received_at"] = time.monotonic()
                self._establish(message, pending)
            else:
                self._ack_failure(message, pending)
            return
        ack = self._acks.get(int(cseq[0])) if cseq[0].isdigit() else None
        if ack is not None:
            self.conn.send(ack)

    def _answer_request(self, request):
        method = (request["method"] or "").upper()
        if method == "ACK":
            return
        same_call = header(request, "call-id") == self.call_id
        body, headers = "", []
        if method == "BYE":
            code, reason = (200, "OK") if same_call else (481, "Call/Transaction Does Not Exist")
            if same_call:
                self.remote_bye = True
                self.established = False
        elif method == "INVITE":
            if same_call and self.established:
                code, reason, body = 200, "OK", self.local_sdp
                headers.append(("Contact", self.contact))
            else:
                code, reason = 486, "Busy Here"
        elif method in ("OPTIONS", "INFO", "UPDATE", "NOTIFY"):
            code, reason = 200, "OK"
            if method in ("OPTIONS", "UPDATE"):
                headers.append(("Contact", self.contact))
        elif method == "CANCEL":
            code, reason = 481, "Call/Transaction Does Not Exist"
        else:
            code, reason = 501, "Not Implemented"
        headers.append(("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
        response = build_response(
            request, code, reason, to_tag=random_token(6), headers=headers, body=body, server=self.user_agent
        )
        self.conn.send(response)

    def _challenged(self, response, had_credentials):
        """Take the challenge of a 401/407; False (and ``auth_error``) when it cannot be answered.

        ``had_credentials``: the request answered an earlier challenge of the same request loop, so a
        new challenge without ``stale=true`` means the password is wrong.
        """
        picked = choose_challenge(response)
        if picked is None:
            offered = response["headers"].get("www-authenticate", []) + response["headers"].get(
                "proxy-authenticate", []
            )
            schemes = sorted(
                {
                    parse_auth_params(value)[0] + " " + (parse_auth_params(value)[1].get("algorithm") or "")
                    for value in offered
                }
            )
            self.auth_error = (
                "no supported Digest challenge (offered: " + (", ".join(s.strip() for s in schemes) or "none") + ")"
            )
            return False
        _, params = picked
        if had_credentials and params.get("stale", "").lower() != "true":
            self.auth_error = f"the credentials of user {self.username!r} were rejected (wrong username or password?)"
            return False
        self._challenge = picked
        self._nc = 0
        return True

    # -- public --------------------------------------------------------------

    def invite(self, sdp, timeout):
        """Send INVITE (answering Digest challenges) and return the final response.

        On a 2xx the dialog is established and ACKed; a non-2xx is ACKed and
        returned (``auth_error`` says why a 401/407 is final).  Raises
        ``SIPTimeout`` after sending CANCEL when no final response arrives.
        """
        deadline = time.monotonic() + timeout
        self.local_sdp = sdp
        challenges = 0
        while True:
            data, info, auth = self._request("INVITE", body=sdp)
            self._invite_auth = [item for item in auth if item[0].endswith("Authorization")]
            try:
                response = self._transaction(data, info, deadline, invite=True)
            except SIPTimeout:
                self.provisional.extend(info["provisional"])
                if info["provisional"]:
                    self._cancel(info)
                raise
            finally:
                if self.invite_sent_at is None:
                    self.invite_sent_at = info.get("sent_at")
            self.provisional.extend(info["provisional"])
            self.final_response = response
            code = response["status_code"]
            if code < 300:
                self._establish(response, info)
                return response
            self._ack_failure(response, info)
            if code in (401, 407) and challenges < self.MAX_CHALLENGES:
                try:
                    answerable = self._challenged(response, challenges > 0)
                except SIPAuthError as exc:
                    self.auth_error = str(exc)
                    answerable = False
                if answerable:
                    challenges += 1
                    continue
            return response

    def _cancel(self, invite_info, timeout=2.0):
        """Best-effort CANCEL of an INVITE that got only provisional responses."""
        self._pending_invite = invite_info
        data, info, _ = self._request(
            "CANCEL", uri=invite_info["uri"], cseq=invite_info["cseq"], branch=invite_info["branch"], auth=[]
        )
        info["method"] = "CANCEL"
        deadline = time.monotonic() + timeout
        try:
            self._transaction(data, info, deadline)
            while self._pending_invite is not None and time.monotonic() < deadline:
                self.poll(deadline - time.monotonic(), until=lambda: self._pending_invite is None)
        except SIPError:
            pass
        finally:
            self._pending_invite = None

    def bye(self, timeout):
        """End the dialog; returns the final response to BYE (Digest challenges answered)."""
        deadline = time.monotonic() + timeout
        challenges = 0
        try:
            while True:
                data, info, _ = self._request(
                    "BYE", uri=self.remote_target, to_tag=self.remote_tag, routes=self.route_set
                )
                response = self._transaction(data, info, deadline)
                if response["status_code"] in (401, 407) and challenges < self.MAX_CHALLENGES:
                    # Credentials sent pre-emptively (from the INVITE's challenge) may be refused
                    # once; only refusing the answer to this request's own challenge is final.
                    try:
                        answerable = self._challenged(response, challenges > 0)
                    except SIPAuthError as exc:
                        self.auth_error = str(exc)
                        answerable = False
                    if answerable:
                        challenges += 1
                        continue
                return response
        finally:
            self.established = False

    def poll(self, timeout=0.0, until=None):
        """Handle whatever the server sent (requests, retransmitted responses) for up to ``timeout`` s."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            message = self.conn.receive(max(deadline - time.monotonic(), 0.0))
            if message is None:
                return
            if message["kind"] == "request":
                self._answer_request(message)
            else:
                self._stray_response(message)
            if until is not None and until():
                return
