# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Minimal Asterisk Manager Interface (AMI) client.

Only the standard library is used so that the code runs on managed nodes
(Python 3.9+).  The client speaks the plain-text AMI protocol over TCP:

* the server sends a one-line banner (``Asterisk Call Manager/9.0.0``);
* every message is a block of ``Key: Value`` lines separated by CRLF and
  terminated by an empty line;
* responses and list events carry the ``ActionID`` of the action that caused
  them, which is how replies are matched to requests here.

The secret given to :meth:`AMIClient.login` is kept only to log in again after
a dropped connection.  It never appears in exception messages or in ``repr``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import time

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5038
DEFAULT_TIMEOUT = 10.0

# Upper bounds that protect the parser from a peer that is not an AMI server.
MAX_LINE_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_BANNER_BYTES = 1024

_ACTION_COUNTER = itertools.count(1)


class AMIError(Exception):
    """Base class of every error raised by this module."""


class AMIConnectionError(AMIError):
    """The TCP connection could not be made or was lost."""


class AMITimeout(AMIError):
    """The server did not answer within the allowed time."""


class AMIProtocolError(AMIError):
    """The peer sent something that is not a valid AMI message."""


class AMIActionError(AMIError):
    """The server answered ``Response: Error``."""

    def __init__(self, action, message, response=None):
        self.action = action
        self.message = message or ""
        self.response = dict(response or {})
        text = f"AMI action {action} failed"
        if self.message:
            text += f": {self.message}"
        super().__init__(text)


class AMIAuthError(AMIActionError):
    """Login was refused (``Response: Error`` / ``Authentication failed``)."""


class AMIMessage(dict):
    """One AMI message.

    Behaves like a ``dict``.  When a key is repeated (for example several
    ``Output:`` lines), the dict value holds all values joined with newlines
    and :meth:`getlist` returns them one by one.
    """

    def __init__(self, pairs=()):
        super().__init__()
        self._multi = {}
        #: For list actions: the ``...Complete`` event that closed the list.
        self.complete = None
        for key, value in pairs:
            self.add(key, value)

    def add(self, key, value):
        values = self._multi.setdefault(key, [])
        values.append(value)
        dict.__setitem__(self, key, "\n".join(values))

    def getlist(self, key):
        return list(self._multi.get(key, []))

    def get_ci(self, key, default=None):
        """Case-insensitive lookup (AMI keys are case-insensitive)."""
        if key in self:
            return self[key]
        lowered = key.lower()
        for existing, value in self.items():
            if existing.lower() == lowered:
                return value
        return default


def parse_message(block):
    """Parse one message block (without the terminating blank line).

    ``block`` is a ``str`` or ``bytes``; lines may end in CRLF or LF.  The
    value is everything after the first colon (one leading space removed), so
    values that contain ``': '`` survive intact.  A non-empty line without a
    colon, or a line with an empty key, raises :class:`AMIProtocolError`.
    """
    if isinstance(block, bytes):
        block = block.decode("utf-8", errors="replace")
    message = AMIMessage()
    for raw_line in block.split("\n"):
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise AMIProtocolError(f"Malformed AMI line (no 'Key: Value'): {_clip(line)!r}")
        if value.startswith(" "):
            value = value[1:]
        message.add(key, value.rstrip("\r"))
    if not message:
        raise AMIProtocolError("Empty AMI message")
    return message


def format_action(name, fields, action_id=None):
    """Serialise an action to bytes (CRLF lines, blank line terminator)."""
    lines = [f"Action: {name}"]
    if action_id is not None:
        lines.append(f"ActionID: {action_id}")
    for key, value in fields.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "yes" if item else "no"
            text = str(item)
            if "\r" in text or "\n" in text or "\r" in key or "\n" in key:
                raise ValueError(f"AMI field {key} must not contain line breaks")
            lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _clip(text, limit=120):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def is_error(message):
    return str(message.get_ci("Response", "")).lower() == "error"


def is_list_complete(message, complete_event=None):
    event = message.get_ci("Event")
    if event is None:
        return False
    if complete_event and event.lower() == complete_event.lower():
        return True
    return str(message.get_ci("EventList", "")).lower() == "complete"


class AMIClient:
    """Synchronous AMI client.

    ``timeout`` bounds the TCP connect, reading the banner, and each whole
    action (for list actions: until the ``...Complete`` event arrived).
    """

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, timeout=DEFAULT_TIMEOUT, action_id_prefix=None):
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.banner = None
        self.username = None
        self._secret = None
        self._sock = None
        self._buffer = b""
        self._prefix = action_id_prefix or f"ansible-{os.getpid()}-{id(self) % 100000}"
        self.reconnects = 0

    def __repr__(self):
        return (
            f"AMIClient(host={self.host!r}, port={self.port!r}, username={self.username!r}, "
            f"connected={self.connected!r})"
        )

    # -- connection -------------------------------------------------------

    @property
    def connected(self):
        return self._sock is not None

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def connect(self):
        """Open the TCP connection and read the banner."""
        self.close()
        deadline = time.monotonic() + self.timeout
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise AMITimeout(f"Timed out after {self.timeout}s connecting to AMI at {self.address}") from None
        except ConnectionRefusedError:
            raise AMIConnectionError(
                f"Connection refused by AMI at {self.address} (is Asterisk running and manager.conf enabled=yes "
                "with a matching bindaddr/port?)"
            ) from None
        except socket.gaierror as exc:
            raise AMIConnectionError(f"Cannot resolve AMI host {self.host}: {exc}") from None
        except OSError as exc:
            raise AMIConnectionError(f"Cannot connect to AMI at {self.address}: {_os_error_text(exc)}") from None
        self._sock = sock
        self._buffer = b""
        try:
            line = self._read_line(deadline, MAX_BANNER_BYTES, "the AMI banner")
        except _DroppedConnection as exc:
            self.close()
            raise AMIConnectionError(f"{exc} before sending its banner") from None
        except AMIError:
            self.close()
            raise
        banner = line.decode("utf-8", errors="replace").strip()
        if not banner.lower().startswith("asterisk call manager"):
            self.close()
            raise AMIProtocolError(f"Unexpected AMI banner from {self.address}: {_clip(banner)!r}")
        self.banner = banner
        return banner

    def close(self):
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer = b""

    def __enter__(self):
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.connected and self.username is not None and exc_type is None:
                self.logoff()
        finally:
            self.close()
        return False

    # -- low level I/O ----------------------------------------------------

    def _recv(self, deadline, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AMITimeout(f"Timed out after {self.timeout}s waiting for {what} from {self.address}")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout:
            raise AMITimeout(f"Timed out after {self.timeout}s waiting for {what} from {self.address}") from None
        except OSError as exc:
            self.close()
            raise _DroppedConnection(f"Connection to AMI at {self.address} lost: {_os_error_text(exc)}") from None
        if not chunk:
            self.close()
            raise _DroppedConnection(f"AMI at {self.address} closed the connection")
        return chunk

    def _read_line(self, deadline, limit, what):
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                line, self._buffer = self._buffer[:index], self._buffer[index + 1 :]
                return line.rstrip(b"\r")
            if len(self._buffer) > limit:
                raise AMIProtocolError(f"Line longer than {limit} bytes while reading {what}")
            self._buffer += self._recv(deadline, what)

    def read_message(self, deadline=None, what="a message"):
        """Read and parse the next message (blocks until a blank line).

        After a timeout or a protocol error the state of the stream is
        unknown, so the connection is closed (a later action reconnects).
        """
        try:
            return self._read_message(deadline, what)
        except (AMITimeout, AMIProtocolError):
            self.close()
            raise

    def _read_message(self, deadline, what):
        if self._sock is None:
            raise _DroppedConnection(f"Not connected to AMI at {self.address}")
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        while True:
            # Skip stray empty lines between messages.
            self._buffer = self._buffer.lstrip(b"\r\n")
            end, sep_len = _find_terminator(self._buffer)
            if end >= 0:
                block, self._buffer = self._buffer[:end], self._buffer[end + sep_len :]
                return parse_message(block)
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise AMIProtocolError(f"AMI message larger than {MAX_MESSAGE_BYTES} bytes")
            self._buffer += self._recv(deadline, what)

    def _send(self, data):
        if self._sock is None:
            raise _DroppedConnection(f"Not connected to AMI at {self.address}")
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(data)
        except socket.timeout:
            raise AMITimeout(f"Timed out after {self.timeout}s sending to AMI at {self.address}") from None
        except OSError as exc:
            self.close()
            raise _DroppedConnection(f"Connection to AMI at {self.address} lost: {_os_error_text(exc)}") from None

    def _next_action_id(self):
        return f"{self._prefix}-{next(_ACTION_COUNTER)}"

    # -- actions ----------------------------------------------------------

    def login(self, username, secret):
        """Log in with ``Events: off`` (list actions still deliver their events)."""
        self.username = username
        self._secret = secret
        try:
            if not self.connected:
                self.connect()
            return self._login(time.monotonic() + self.timeout)
        except _DroppedConnection as exc:
            raise AMIConnectionError(f"{exc} (during login)") from None

    def _login(self, deadline):
        action_id = self._next_action_id()
        fields = {"Username": self.username, "Secret": self._secret, "Events": "off"}
        self._send(format_action("Login", fields, action_id))
        response = self._read_response(action_id, deadline, "Login")
        if is_error(response):
            text = response.get_ci("Message", "") or "login rejected"
            self.close()
            raise AMIAuthError(
                "Login",
                f"{text} (user {self.username!r} at {self.address}; check manager.conf secret, permit/deny)",
                _safe_response(response),
            )
        return response

    def _read_response(self, action_id, deadline, action):
        while True:
            message = self.read_message(deadline, f"the response to {action}")
            if message.get_ci("Response") is None:
                continue  # an unrelated event
            received_id = message.get_ci("ActionID")
            if received_id is not None and received_id != action_id:
                continue  # response to an earlier, abandoned action
            return message

    def _reconnect(self, deadline):
        self.reconnects += 1
        self.connect()
        if self.username is not None:
            self._login(deadline)

    def _with_retry(self, func, retry, deadline):
        try:
            return func(deadline)
        except _DroppedConnection as exc:
            if not retry:
                raise AMIConnectionError(str(exc)) from None
            first_error = str(exc)
        try:
            self._reconnect(deadline)
            return func(deadline)
        except _DroppedConnection as exc:
            raise AMIConnectionError(f"{exc} (retry after reconnect also failed; first error: {first_error})") from None

    def action(self, name, retry=True, **fields):
        """Send an action and return its response (an :class:`AMIMessage`).

        ``Response: Error`` raises :class:`AMIActionError`.  If the connection
        was dropped, the client reconnects, logs in again and re-sends the
        action once (``retry=False`` disables this for non-idempotent actions).
        """
        deadline = time.monotonic() + self.timeout

        def run(deadline):
            if not self.connected:
                raise _DroppedConnection(f"Not connected to AMI at {self.address}")
            action_id = self._next_action_id()
            self._send(format_action(name, fields, action_id))
            return self._read_response(action_id, deadline, name)

        response = self._with_retry(run, retry, deadline)
        if is_error(response):
            raise AMIActionError(name, response.get_ci("Message", ""), _safe_response(response))
        return response

    def action_list(self, name, complete_event=None, retry=True, **fields):
        """Run a list action; return ``(response, events)``.

        Events with our ActionID are collected until the completion event
        (``EventList: Complete``, or an event named ``complete_event``).  The
        completion event itself is not part of ``events``; it is available as
        ``response.complete``.
        """
        deadline = time.monotonic() + self.timeout

        def run(deadline):
            if not self.connected:
                raise _DroppedConnection(f"Not connected to AMI at {self.address}")
            action_id = self._next_action_id()
            self._send(format_action(name, fields, action_id))
            response = self._read_response(action_id, deadline, name)
            if is_error(response):
                return response, []
            events = []
            what = f"the events of {name} ({complete_event or 'EventList: Complete'})"
            while True:
                message = self.read_message(deadline, what)
                if message.get_ci("Event") is None:
                    continue
                if message.get_ci("ActionID") != action_id:
                    continue
                if is_list_complete(message, complete_event):
                    response.complete = message
                    return response, events
                events.append(message)

        response, events = self._with_retry(run, retry, deadline)
        if is_error(response):
            raise AMIActionError(name, response.get_ci("Message", ""), _safe_response(response))
        return response, events

    def logoff(self):
        """Send ``Logoff`` (best effort) and close the connection."""
        if not self.connected:
            return
        try:
            action_id = self._next_action_id()
            self._send(format_action("Logoff", {}, action_id))
            deadline = time.monotonic() + min(self.timeout, 2.0)
            self._read_response(action_id, deadline, "Logoff")
        except AMIError:
            pass
        finally:
            self.close()


class _DroppedConnection(AMIConnectionError):
    """Internal: the connection went away; may be retried once."""


def _find_terminator(buffer):
    """Return (index, length) of the first blank-line terminator."""
    candidates = []
    for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        index = buffer.find(sep)
        if index >= 0:
            candidates.append((index, len(sep)))
    if not candidates:
        return -1, 0
    return min(candidates)


def _os_error_text(exc):
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable (%s)" % (exc.strerror or exc)
    return exc.strerror or str(exc)


_SENSITIVE_KEYS = ("secret", "password", "authdetail", "md5cred")


def _safe_response(response):
    return {k: v for k, v in response.items() if k.lower() not in _SENSITIVE_KEYS}
