# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small fake AMI server that replays a YAML transcript on 127.0.0.1.

Transcript format (``tests/unit/fixtures/ami/*.yml``)::

    description: free text
    mode: script            # or "refused": nothing listens on the port
    banner: "Asterisk Call Manager/9.0.0"   # null: send no banner
    repeat_tail: 2          # optional: replay the last N steps forever
    steps:
      - expect: Login       # action name the client must send
        delay: 0.1          # optional seconds before replying
        reply:              # messages; ActionID of the action is inserted
                            # (a message with "ActionID: null" gets none)
          - {Response: Success, Message: Authentication accepted}
          - [[Event, X], [Key, a], [Key, b]]   # list of pairs: repeated keys
        raw: "bytes as is"  # instead of reply: sent verbatim
        then: close         # optional: close | hang (stop answering)

``Logoff`` is answered with ``Response: Goodbye`` automatically unless a
step expects it.  Everything the client sent is kept in ``actions``.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import yaml

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "ami")


def load_fixture(name):
    path = name if os.path.isabs(name) else os.path.join(FIXTURE_DIR, name if name.endswith(".yml") else name + ".yml")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_message(message, action_id):
    """Render one reply message (mapping or list of pairs) to AMI bytes."""
    pairs = list(message.items()) if isinstance(message, dict) else [tuple(pair) for pair in message]
    keys = [str(k).lower() for k, _ in pairs]
    lines = []
    for index, (key, value) in enumerate(pairs):
        if key.lower() == "actionid":
            if value is None:
                continue  # "ActionID: null" -> an event that carries no ActionID
            value = str(value).replace("{action_id}", action_id or "")
        value = _text(value)
        lines.append(f"{key}: {value}")
        if index == 0 and "actionid" not in keys and action_id is not None:
            lines.append(f"ActionID: {action_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_action(block):
    fields = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        if not line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value[1:] if value.startswith(" ") else value
    return fields


class FakeAMIServer:
    """Replay a transcript to clients on 127.0.0.1 (ephemeral port)."""

    def __init__(self, transcript):
        if isinstance(transcript, str):
            transcript = load_fixture(transcript)
        self.transcript = transcript
        self.mode = transcript.get("mode", "script")
        self.banner = transcript.get("banner", "Asterisk Call Manager/9.0.0")
        self.steps = list(transcript.get("steps") or [])
        self.repeat_tail = int(transcript.get("repeat_tail") or 0)
        self.actions = []
        self.errors = []
        self.connections = 0
        self._step = 0
        self._stop = threading.Event()
        self._thread = None
        self._listener = None
        self.host = "127.0.0.1"
        self.port = None

    # -- lifecycle --------------------------------------------------------

    def start(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        if self.mode == "refused":
            sock.close()  # the port is now free: connecting is refused
            return self
        sock.listen(5)
        sock.settimeout(0.05)
        self._listener = sock
        self._thread = threading.Thread(target=self._serve, name="fake-ami", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- inspection -------------------------------------------------------

    def action_names(self):
        return [a.get("Action", "") for a in self.actions]

    # -- serving ----------------------------------------------------------

    def _next_step(self):
        if self._step < len(self.steps):
            step = self.steps[self._step]
            self._step += 1
            return step
        if self.repeat_tail:
            tail = self.steps[-self.repeat_tail :]
            step = tail[(self._step - len(self.steps)) % self.repeat_tail]
            self._step += 1
            return step
        return None

    def _peek_expect(self):
        if self._step < len(self.steps):
            return str(self.steps[self._step].get("expect", "")).lower()
        if self.repeat_tail:
            tail = self.steps[-self.repeat_tail :]
            return str(tail[(self._step - len(self.steps)) % self.repeat_tail].get("expect", "")).lower()
        return None

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                self._handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _recv_actions(self, conn, buffer):
        """Yield complete action blocks; returns when the peer closes."""
        while not self._stop.is_set():
            while b"\r\n\r\n" in buffer:
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                if block.strip():
                    yield block
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            buffer += chunk

    def _hang(self, conn):
        # Keep the connection open without answering until the client leaves.
        for _ in self._recv_actions(conn, b""):
            pass

    def _handle(self, conn):
        conn.settimeout(0.05)
        if self.banner is None:
            self._hang(conn)
            return
        conn.sendall((f"{self.banner}\r\n").encode())
        for block in self._recv_actions(conn, b""):
            action = parse_action(block)
            self.actions.append(action)
            name = action.get("Action", "")
            action_id = action.get("ActionID")
            if name.lower() == "logoff" and self._peek_expect() != "logoff":
                conn.sendall(render_message({"Response": "Goodbye", "Message": "Thanks for all the fish."}, action_id))
                return
            step = self._next_step()
            if step is None:
                self.errors.append(f"unexpected action {name} after the end of the script")
                conn.sendall(render_message({"Response": "Error", "Message": "fake: script exhausted"}, action_id))
                continue
            expected = step.get("expect")
            if expected and str(expected).lower() != name.lower():
                self.errors.append(f"expected action {expected}, got {name}")
            if step.get("delay"):
                time.sleep(float(step["delay"]))
            if "raw" in step:
                conn.sendall(str(step["raw"]).encode("utf-8"))
            for message in step.get("reply") or []:
                conn.sendall(render_message(message, action_id))
            then = step.get("then")
            if then == "close":
                return
            if then == "hang":
                self._hang(conn)
                return
