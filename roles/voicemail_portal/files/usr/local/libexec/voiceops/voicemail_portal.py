#!/usr/bin/python3
"""Voicemail portal (voiceops.webrtc_pbx voicemail_portal role).

Gives each agent their own Asterisk voicemail over HTTP and e-mails new
messages to their owners.

* HTTP API (JSON), on loopback behind nginx at /voicemail/api/. An agent
  authenticates with HTTP Basic (extension and SIP password); the
  configuration holds only sha256("<secret>:<password>") per extension, as the
  TURN credential service does. An agent reaches only
  /voicemail/api/<own extension>/... (another extension: 403).
* Storage: Asterisk's file voicemail spool of one context,
  <spool>/<mailbox>/<folder>/msgNNNN.{wav,txt}. Changes take Asterisk's own
  directory lock (<dir>/.lock, made with link(2) like ast_lock_path), move a
  message to the next number of the destination folder as Asterisk's
  save_to_folder does, and then ask Asterisk to refresh the mailbox's MWI
  (AMI VoicemailRefresh).
* E-mail: a thread polls the INBOX of every mailbox with an address and sends
  each new message (by msg_id) once, with the WAV attached; failed sends are
  retried with a growing delay; the msg_ids already sent are kept in a state
  file.

  voicemail_portal.py CONFIG                 run (systemd unit voiceops-voicemail-portal)
  voicemail_portal.py --check-config CONFIG  check a configuration file and exit

Standard library only (Python 3.9+). Secrets (passwords, the AMI secret, the
SMTP password, audio link signatures) are never logged.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.message
import email.utils
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import smtplib
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote

LOG = logging.getLogger("voicemail-portal")

FOLDERS = ("INBOX", "Old", "Work", "Family", "Friends")
MAILBOX_RE = re.compile(r"^[0-9]{2,8}$")
MSG_RE = re.compile(r"^msg[0-9]{4}$")
MSG_FILE_RE = re.compile(r"^(msg[0-9]{4})\.([A-Za-z0-9]{1,8})$")
ROUTE_RE = re.compile(
    r"^/voicemail/api/(?P<mailbox>[0-9]{2,8})/messages"
    r"(?:/(?P<folder>INBOX|Old|Work|Family|Friends)/(?P<id>msg[0-9]{4})(?P<action>/audio|/read)?)?$"
)
CONFERENCE_RE = re.compile(
    r"^/voicemail/api/(?P<mailbox>[0-9]{2,8})/conferences/(?P<room>[0-9]{2,8})"
    r"(?:/participants/(?P<id>[A-Za-z0-9._-]{1,64})/(?P<action>mute|unmute|kick))?$"
)
API_PREFIX = "/voicemail/api/"
MAX_MESSAGES = 10000  # msg0000 .. msg9999
MAX_BODY = 1024
CHUNK = 64 * 1024
TLS_MODES = ("starttls", "tls", "none")


class PortalError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


# -- configuration ---------------------------------------------------------


def load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def check_config(cfg):
    """Return a list of problems (empty when the configuration is usable). Never includes secret values."""
    problems = []
    if not isinstance(cfg.get("secret"), str) or len(cfg["secret"]) < 24:
        problems.append("secret must be a string of at least 24 characters")
    users = cfg.get("users")
    if not isinstance(users, dict) or not users:
        problems.append("users must be a non-empty mapping of extension to keyed hash")
        users = {}
    for ext, digest in users.items():
        if not MAILBOX_RE.match(str(ext)) or not re.match(r"^[0-9a-f]{64}$", str(digest)):
            problems.append(f"users: extension {ext!r} needs 2-8 digits and a sha256 hex digest")
    for key in ("port",):
        if not isinstance(cfg.get(key), int) or not 1 <= cfg[key] <= 65535:
            problems.append(f"{key} must be a TCP port (1-65535)")
    spool = cfg.get("spool_dir")
    if not isinstance(spool, str) or not spool.startswith("/"):
        problems.append("spool_dir must be an absolute path")
    if not isinstance(cfg.get("state_dir"), str) or not cfg["state_dir"].startswith("/"):
        problems.append("state_dir must be an absolute path")
    if not isinstance(cfg.get("poll_interval", 5), (int, float)) or cfg.get("poll_interval", 5) < 1:
        problems.append("poll_interval must be at least 1 second")
    emails = cfg.get("emails") or {}
    if not isinstance(emails, dict):
        problems.append("emails must be a mapping of extension to address")
        emails = {}
    for ext, addr in emails.items():
        if str(ext) not in users:
            problems.append(f"emails: {ext} is not an agent")
        if not isinstance(addr, str) or not re.match(r"^[^@\s<>]+@[^@\s<>]+$", addr):
            problems.append(f"emails: the address of {ext} is not an e-mail address")
    smtp = cfg.get("smtp") or {}
    if smtp.get("host"):
        if smtp.get("tls") not in TLS_MODES:
            problems.append(f"smtp.tls must be one of {', '.join(TLS_MODES)}")
        if not isinstance(smtp.get("port"), int) or not 1 <= smtp["port"] <= 65535:
            problems.append("smtp.port must be a TCP port (1-65535)")
        if not smtp.get("from"):
            problems.append("smtp.from is required when smtp.host is set")
        if smtp.get("username") and not smtp.get("password"):
            problems.append("smtp.password is required when smtp.username is set")
    ami = cfg.get("ami")
    if ami and (not ami.get("username") or not ami.get("secret") or not isinstance(ami.get("port"), int)):
        problems.append("ami needs host, port, username and secret (or null to disable MWI refresh)")
    return problems


# -- authentication --------------------------------------------------------


def password_hash(secret, password):
    return hashlib.sha256(f"{secret}:{password}".encode()).hexdigest()


def check_basic(header, secret, users):
    """Return the extension when the Basic credentials match its keyed hash, else None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    expected = users.get(user)
    given = password_hash(secret, password)
    if expected and hmac.compare_digest(expected, given):
        return user
    return None


def audio_signature(secret, mailbox, folder, msg, msg_id, expires):
    text = f"voicemail-audio:{mailbox}:{folder}:{msg}:{msg_id}:{expires}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


# -- spool -----------------------------------------------------------------


class LockTimeout(Exception):
    pass


@contextlib.contextmanager
def spool_lock(directory, timeout=5.0):
    """Asterisk's path lock: link a unique file to <directory>/.lock (ast_lock_path_lockfile)."""
    lock = os.path.join(directory, ".lock")
    unique = os.path.join(directory, f".lock-{secrets.randbits(32):08x}")
    fd = os.open(unique, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                os.link(unique, lock)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise LockTimeout(directory) from None
                time.sleep(0.01)
    finally:
        os.unlink(unique)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def parse_message_info(path):
    """Read msgNNNN.txt (an ini-like file with a [message] section) into a dict."""
    info = {}
    section = None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith(";"):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip().lower()
                    continue
                if section == "message" and "=" in line:
                    key, _, value = line.partition("=")
                    info[key.strip().lower()] = value.strip()
    except FileNotFoundError:
        return None
    return info


def split_callerid(callerid):
    match = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$', callerid or "")
    if match:
        return match.group(1).strip(), match.group(2).strip()
    return "", (callerid or "").strip()


def clean(text, limit=200):
    return re.sub(r"[\x00-\x1f\x7f]", "", str(text))[:limit]


def wav_duration(path):
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    return max(0, round((size - 44) / 16000))  # 8 kHz, 16-bit mono PCM


class Spool:
    """One voicemail context directory: <root>/<mailbox>/<folder>/msgNNNN.*"""

    def __init__(self, root, audio_format="wav", lock_timeout=5.0, max_messages=100):
        self.root = root
        self.audio_format = audio_format
        self.lock_timeout = lock_timeout
        self.max_messages = min(int(max_messages), MAX_MESSAGES)
        self._locks = {}
        self._locks_guard = threading.Lock()

    def mailbox_lock(self, mailbox):
        with self._locks_guard:
            return self._locks.setdefault(mailbox, threading.Lock())

    def folder_dir(self, mailbox, folder):
        if not MAILBOX_RE.match(mailbox) or folder not in FOLDERS:
            raise PortalError(404, "not found")
        return os.path.join(self.root, mailbox, folder)

    def numbers(self, directory):
        """Message names present in a folder (any file msgNNNN.<ext>)."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return set()
        return {m.group(1) for m in map(MSG_FILE_RE.match, names) if m}

    def describe(self, mailbox, folder, msg):
        directory = self.folder_dir(mailbox, folder)
        audio = os.path.join(directory, f"{msg}.{self.audio_format}")
        info = parse_message_info(os.path.join(directory, f"{msg}.txt"))
        if info is None or not os.path.isfile(audio):
            return None
        try:
            origtime = int(info.get("origtime", ""))
        except ValueError:
            origtime = int(os.path.getmtime(audio))
        try:
            duration = int(info.get("duration", ""))
        except ValueError:
            duration = wav_duration(audio)
        name, number = split_callerid(info.get("callerid", ""))
        return {
            "folder": folder,
            "id": msg,
            "msg_id": clean(info.get("msg_id", "")),
            "callerid": clean(info.get("callerid", "")),
            "caller_name": clean(name),
            "caller_number": clean(number),
            "date": datetime.datetime.fromtimestamp(origtime, datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
            "timestamp": origtime,
            "duration": duration,
            "size": os.path.getsize(audio),
            "new": folder == "INBOX",
        }

    def list(self, mailbox, folders=FOLDERS):
        messages = []
        for folder in folders:
            directory = self.folder_dir(mailbox, folder)
            for msg in sorted(self.numbers(directory)):
                item = self.describe(mailbox, folder, msg)
                if item:
                    messages.append(item)
        messages.sort(key=lambda m: (-m["timestamp"], m["folder"], m["id"]))
        return messages

    def audio_path(self, mailbox, folder, msg):
        if not MSG_RE.match(msg):
            raise PortalError(404, "not found")
        path = os.path.join(self.folder_dir(mailbox, folder), f"{msg}.{self.audio_format}")
        if not os.path.isfile(path):
            raise PortalError(404, "no such message")
        return path

    def _files(self, directory, msg):
        prefix = f"{msg}."
        try:
            return sorted(n for n in os.listdir(directory) if n.startswith(prefix) and MSG_FILE_RE.match(n))
        except FileNotFoundError:
            return []

    def move(self, mailbox, folder, msg, dest_folder):
        """Move a message to the next free number of dest_folder (Asterisk's numbering); return the new id."""
        src = self.folder_dir(mailbox, folder)
        dst = self.folder_dir(mailbox, dest_folder)
        with self.mailbox_lock(mailbox):
            if not self._files(src, msg):
                raise PortalError(404, "no such message")
            if not os.path.isdir(dst):
                parent = os.stat(src)
                os.makedirs(dst, mode=0o700, exist_ok=True)
                os.chmod(dst, parent.st_mode & 0o7777)
                with contextlib.suppress(PermissionError):
                    os.chown(dst, parent.st_uid, parent.st_gid)
            try:
                with spool_lock(dst, self.lock_timeout), spool_lock(src, self.lock_timeout):
                    files = self._files(src, msg)
                    if not files:
                        raise PortalError(404, "no such message")
                    number = self._next_number(dst)
                    if number >= self.max_messages:
                        # Asterisk's maxmsg: close the gaps first, as Asterisk does when it opens a folder.
                        self._resequence(dst)
                        number = self._next_number(dst)
                    if number >= self.max_messages:
                        raise PortalError(507, f"folder {dest_folder} is full ({self.max_messages} messages)")
                    new = f"msg{number:04d}"
                    # The audio last: Asterisk counts a message by its audio file.
                    for name in sorted(files, key=lambda n: n.endswith("." + self.audio_format)):
                        os.rename(os.path.join(src, name), os.path.join(dst, new + name[len(msg) :]))
                    return new
            except LockTimeout:
                raise PortalError(503, "mailbox busy, try again") from None

    def _next_number(self, directory):
        taken = [int(n[3:]) for n in self.numbers(directory)]
        return max(taken) + 1 if taken else 0

    def _resequence(self, directory):
        """Renumber a folder's messages 0..n-1 in order (caller holds the folder's lock)."""
        for index, msg in enumerate(sorted(self.numbers(directory))):
            new = f"msg{index:04d}"
            if new != msg:
                for name in self._files(directory, msg):
                    os.rename(os.path.join(directory, name), os.path.join(directory, new + name[len(msg) :]))

    def delete(self, mailbox, folder, msg):
        directory = self.folder_dir(mailbox, folder)
        with self.mailbox_lock(mailbox):
            if not self._files(directory, msg):
                raise PortalError(404, "no such message")
            try:
                with spool_lock(directory, self.lock_timeout):
                    files = self._files(directory, msg)
                    for name in sorted(files, key=lambda n: not n.endswith("." + self.audio_format)):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(directory, name))
                    if not files:
                        raise PortalError(404, "no such message")
            except LockTimeout:
                raise PortalError(503, "mailbox busy, try again") from None


# -- AMI (MWI refresh) -----------------------------------------------------


def _ami_read(sock, buf, deadline):
    """Read one AMI message (Key: Value lines up to a blank line); return (dict, rest)."""
    while b"\r\n\r\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("AMI timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("AMI closed the connection")
        buf += chunk
        if len(buf) > 1024 * 1024:
            raise ConnectionError("AMI message too large")
    block, buf = buf.split(b"\r\n\r\n", 1)
    fields = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields, buf


def _ami_action(name, fields, action_id):
    lines = [f"Action: {name}", f"ActionID: {action_id}"]
    for key, value in fields.items():
        text = str(value)
        if "\r" in text or "\n" in text:
            raise ValueError(f"AMI field {key} must not contain line breaks")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AmiSession:
    """One AMI login: ``with AmiSession(ami) as s: s.call(...)``; logs off on exit."""

    def __init__(self, ami, timeout=5.0):
        self.ami = ami
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.n = 0

    def __enter__(self):
        self.sock = socket.create_connection(
            (self.ami.get("host", "127.0.0.1"), int(self.ami["port"])), timeout=self.timeout
        )
        try:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(1024)
                if not chunk or len(self.buf) > 1024:
                    raise ConnectionError("no AMI banner")
                self.buf += chunk
            banner, _, self.buf = self.buf.partition(b"\n")
            if not banner.decode("utf-8", "replace").lower().startswith("asterisk call manager"):
                raise ConnectionError("not an AMI server")
            reply = self.call(
                "Login", {"Username": self.ami["username"], "Secret": self.ami["secret"], "Events": "off"}
            )
            if reply.get("response", "").lower() != "success":
                raise PermissionError(f"AMI login refused: {clean(reply.get('message', ''))}")
        except BaseException:
            self.sock.close()
            raise
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            self.call("Logoff", {})
        self.sock.close()

    def _send(self, name, fields):
        self.n += 1
        action_id = f"voicemail-portal-{os.getpid()}-{threading.get_ident()}-{self.n}"
        self.sock.sendall(_ami_action(name, fields, action_id))
        return action_id

    def call(self, name, fields):
        """Send an action and return its response (events in between are skipped)."""
        action_id = self._send(name, fields)
        while True:
            reply, self.buf = _ami_read(self.sock, self.buf, self.deadline)
            if "response" in reply and reply.get("actionid", action_id) == action_id:
                return reply

    def collect(self, name, fields, event, complete):
        """Send a list action; return (response, [its events named event]) up to the complete event."""
        action_id = self._send(name, fields)
        response, events = None, []
        while True:
            reply, self.buf = _ami_read(self.sock, self.buf, self.deadline)
            if reply.get("actionid") != action_id:
                continue
            if "response" in reply:
                response = reply
                # A list action answers Error (or "No active conferences.") without events.
                if reply["response"].lower() != "success" or reply.get("eventlist", "").lower() != "start":
                    return response, events
            elif reply.get("event", "").lower() == event.lower():
                events.append(reply)
            elif reply.get("event", "").lower() == complete.lower():
                return response, events


def ami_refresh(ami, context, mailboxes, timeout=5.0):
    """Log in to AMI, send VoicemailRefresh for each mailbox, log off. Raises on failure."""
    failed = []
    with AmiSession(ami, timeout) as session:
        for mailbox in mailboxes:
            reply = session.call("VoicemailRefresh", {"Context": context, "Mailbox": mailbox})
            if reply.get("response", "").lower() != "success":
                failed.append(f"{mailbox}: {clean(reply.get('message', ''))}")
    if failed:
        raise RuntimeError("VoicemailRefresh failed for " + "; ".join(failed))


# -- conference control (ConfBridge over AMI) ---------------------------------


_ROOM_CACHE: dict[str, tuple[float, list]] = {}
_ROOM_CACHE_LOCK = threading.Lock()
_ROOM_ACTS = [0]  # mutes, unmutes and kicks sent through the portal (guarded by the lock)
ROOM_CACHE_S = 1.0  # every participant's softphone polls its room every 2 s


def conference_participants(ami, room, timeout=5.0, fresh=False):
    """The participants of a ConfBridge conference (AMI ConfbridgeList), [] when it has none.

    One AMI query per room and second at most, however many participants poll it.
    An answer is cached from the moment its query was sent, and not at all
    when a mute, unmute or kick went through while it was under way (it may
    predate the action).
    """
    now = time.monotonic()
    with _ROOM_CACHE_LOCK:
        hit = _ROOM_CACHE.get(room)
        if hit and not fresh and now - hit[0] < ROOM_CACHE_S:
            return hit[1]
        for stale in [r for r, (t, _) in _ROOM_CACHE.items() if now - t >= ROOM_CACHE_S]:
            del _ROOM_CACHE[stale]
        acts = _ROOM_ACTS[0]
    people = _query_participants(ami, room, timeout)
    with _ROOM_CACHE_LOCK:
        if _ROOM_ACTS[0] == acts:
            _ROOM_CACHE[room] = (now, people)
    return people


def _query_participants(ami, room, timeout):
    with AmiSession(ami, timeout) as session:
        _, events = session.collect("ConfbridgeList", {"Conference": room}, "ConfbridgeList", "ConfbridgeListComplete")
    return [
        {
            "id": clean(e.get("uniqueid", ""), 64),
            "channel": clean(e.get("channel", ""), 120),
            "number": clean(e.get("calleridnum", ""), 40),
            "name": clean(e.get("calleridname", ""), 80),
            "admin": e.get("admin", "").lower() == "yes",
            "muted": e.get("muted", "").lower() == "yes",
        }
        for e in events
        if e.get("uniqueid") and e.get("channel")
    ]


CONFERENCE_ACTIONS = {"mute": "ConfbridgeMute", "unmute": "ConfbridgeUnmute", "kick": "ConfbridgeKick"}


def conference_act(ami, room, channel, action, timeout=5.0):
    """Mute, unmute or kick one channel of a conference; raises PortalError when Asterisk refuses."""
    with AmiSession(ami, timeout) as session:
        reply = session.call(CONFERENCE_ACTIONS[action], {"Conference": room, "Channel": channel})
    with _ROOM_CACHE_LOCK:
        _ROOM_CACHE.pop(room, None)
        _ROOM_ACTS[0] += 1
    if reply.get("response", "").lower() != "success":
        raise PortalError(409, f"Asterisk refused: {clean(reply.get('message', ''))}")


def own_channel(participant, extension):
    """True when the participant's channel belongs to the agent (PJSIP/<extension>-...)."""
    return participant["channel"].startswith(f"PJSIP/{extension}-")


class MwiRefresher(threading.Thread):
    """Coalesces mailbox changes and refreshes them over AMI off the request path."""

    def __init__(self, ami, context):
        super().__init__(name="mwi-refresh", daemon=True)
        self.ami = ami
        self.context = context
        self.pending = set()
        self.cond = threading.Condition()
        self.stopping = False
        self.refreshed = 0

    def request(self, mailbox):
        if not self.ami:
            return
        with self.cond:
            self.pending.add(mailbox)
            self.cond.notify()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify()

    def run(self):
        while True:
            with self.cond:
                while not self.pending and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                batch, self.pending = sorted(self.pending), set()
            try:
                ami_refresh(self.ami, self.context, batch)
                self.refreshed += len(batch)
            except Exception as exc:  # noqa: BLE001 (the portal keeps serving; MWI catches up later)
                LOG.warning("MWI refresh of %s failed: %s", ",".join(batch), clean(exc))
                time.sleep(1)


# -- e-mail notification ---------------------------------------------------


def build_email(smtp, to, mailbox, item, wav_path, max_attachment):
    caller = item["callerid"] or "unknown caller"
    minutes, seconds = divmod(int(item["duration"]), 60)
    length = f"{minutes}:{seconds:02d}"
    msg = email.message.EmailMessage()
    msg["Subject"] = f"New voicemail for {mailbox} from {caller} ({length})"
    msg["From"] = smtp["from"]
    msg["To"] = to
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=email.utils.parseaddr(smtp["from"])[1].rpartition("@")[2] or None)
    body = [
        f"You have a new voicemail in mailbox {mailbox}.",
        "",
        f"Caller:   {caller}",
        f"Date:     {item['date']}",
        f"Duration: {length} ({item['duration']} s)",
        "",
    ]
    size = os.path.getsize(wav_path)
    attach = size <= max_attachment
    if not attach:
        body.append(f"The recording ({size} bytes) is too large to attach; listen to it in the softphone.")
    else:
        body.append("The recording is attached; you can also listen to it in the softphone.")
    msg.set_content("\n".join(body) + "\n")
    if attach:
        with open(wav_path, "rb") as fh:
            data = fh.read()
        msg.add_attachment(data, maintype="audio", subtype="wav", filename=f"voicemail-{mailbox}-{item['id']}.wav")
    return msg


def send_email(smtp, msg):
    context = ssl.create_default_context()
    if not smtp.get("validate_certs", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    timeout = float(smtp.get("timeout", 30))
    if smtp.get("tls") == "tls":
        client = smtplib.SMTP_SSL(smtp["host"], int(smtp["port"]), timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(smtp["host"], int(smtp["port"]), timeout=timeout)
    with client:
        client.ehlo()
        if smtp.get("tls") == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if smtp.get("username"):
            client.login(smtp["username"], smtp["password"])
        client.send_message(msg)


class Notifier(threading.Thread):
    """Polls INBOX folders of mailboxes with an address and mails each new message once."""

    def __init__(self, cfg, spool):
        super().__init__(name="email-notifier", daemon=True)
        self.smtp = cfg.get("smtp") or {}
        self.emails = {str(k): v for k, v in (cfg.get("emails") or {}).items()}
        self.spool = spool
        self.interval = float(cfg.get("poll_interval", 5))
        self.retry_initial = float(cfg.get("email_retry_initial", 60))
        self.retry_max = float(cfg.get("email_retry_max", 3600))
        self.keep = float(cfg.get("email_state_keep", 30 * 86400))
        self.max_attachment = int(cfg.get("email_max_attachment_bytes", 10 * 1024 * 1024))
        self.state_file = os.path.join(cfg["state_dir"], "notified.json")
        self.stop_event = threading.Event()
        self.notified = {}
        self.retries = {}  # key -> (attempts, next attempt time)
        self.baseline = not os.path.exists(self.state_file)
        if not self.baseline:
            try:
                self.notified = dict(load(self.state_file).get("notified", {}))
            except (OSError, ValueError, AttributeError) as exc:
                LOG.warning("state file %s unreadable (%s): starting from the current INBOX", self.state_file, exc)
                self.baseline = True

    @property
    def enabled(self):
        return bool(self.smtp.get("host")) and bool(self.emails)

    def save(self):
        tmp = f"{self.state_file}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"notified": self.notified}, fh)
        os.replace(tmp, self.state_file)

    def poll_once(self, now=None):
        """One pass over the INBOXes; returns the number of e-mails sent."""
        now = time.time() if now is None else now
        sent = 0
        changed = False
        scanned = set()
        for mailbox, address in sorted(self.emails.items()):
            inbox = self.spool.folder_dir(mailbox, "INBOX")
            if os.path.exists(os.path.join(inbox, ".lock")):
                continue  # Asterisk is saving a message: next pass
            scanned.add(mailbox)
            for msg in sorted(self.spool.numbers(inbox)):
                item = self.spool.describe(mailbox, "INBOX", msg)
                if item is None:
                    continue  # audio or .txt not there yet
                key = f"{mailbox}/{item['msg_id'] or str(item['timestamp']) + '-' + msg}"
                if key in self.notified:
                    self.notified[key] = now
                    continue
                if self.baseline:
                    self.notified[key] = now
                    changed = True
                    continue
                attempts, not_before = self.retries.get(key, (0, 0.0))
                if now < not_before:
                    continue
                try:
                    wav = self.spool.audio_path(mailbox, "INBOX", msg)
                    send_email(self.smtp, build_email(self.smtp, address, mailbox, item, wav, self.max_attachment))
                except PortalError:
                    continue  # gone meanwhile
                except Exception as exc:  # noqa: BLE001 (logged; retried later)
                    delay = min(self.retry_max, self.retry_initial * (2**attempts))
                    self.retries[key] = (attempts + 1, now + delay)
                    LOG.warning(
                        "e-mail for %s %s to %s failed (attempt %d, retry in %d s): %s",
                        mailbox,
                        msg,
                        address,
                        attempts + 1,
                        delay,
                        clean(exc),
                    )
                    continue
                self.retries.pop(key, None)
                self.notified[key] = now
                changed = True
                sent += 1
                LOG.info("e-mailed voicemail %s %s to %s", mailbox, msg, address)
        # Forget messages gone from a scanned INBOX for a long time (keeps the state small).
        stale = [
            k for k, seen in self.notified.items() if k.split("/", 1)[0] in scanned and now - float(seen) > self.keep
        ]
        for key in stale:
            del self.notified[key]
        if changed or stale or self.baseline:
            self.save()
        self.baseline = False
        return sent

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 (never let the notifier die)
                LOG.exception("notifier pass failed")
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()


# -- HTTP ------------------------------------------------------------------


def parse_range(header, size):
    """Return (start, end) for a single 'bytes=' range, None for the whole file; raise PortalError(416)."""
    if not header:
        return None
    match = re.match(r"^bytes=(\d*)-(\d*)$", header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: send the whole file (RFC 9110 allows ignoring Range)
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            raise PortalError(416, "range not satisfiable")
    else:
        length = int(last)
        if length == 0 or size == 0:
            raise PortalError(416, "range not satisfiable")
        start, end = max(0, size - length), size - 1
    return start, end


class Server(ThreadingHTTPServer):
    """Threading server with a cap on concurrent requests (503 beyond it)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, max_concurrent):
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.active = 0
        self.active_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            body = b'{"error": "busy"}'
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                    b"Cache-Control: no-store\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
            self.shutdown_request(request)
            LOG.warning("busy: request from %s refused (concurrency limit)", client_address[0])
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        with self.active_lock:
            self.active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.active_lock:
                self.active -= 1
            self.slots.release()


def make_handler(cfg, spool, refresher):
    secret = cfg["secret"]
    users = {str(k): v for k, v in cfg["users"].items()}
    ttl = int(cfg.get("audio_url_ttl", 600))

    class Handler(BaseHTTPRequestHandler):
        server_version = "voiceops-voicemail-portal"
        sys_version = ""
        timeout = float(cfg.get("request_timeout", 30))
        user = "-"

        # -- responses

        def _headers(self, code, ctype, length, extra=None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(length))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()

        def _json(self, code, body, extra=None):
            data = json.dumps(body).encode()
            self._headers(code, "application/json", len(data), extra)
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, code, message, extra=None):
            self._json(code, {"error": message}, extra)

        # -- request plumbing

        def _route(self):
            raw_path, _, query = self.path.partition("?")
            match = ROUTE_RE.match(raw_path) or CONFERENCE_RE.match(raw_path)
            try:
                return match, parse_qs(query, max_num_fields=8) if query else {}
            except ValueError:
                raise PortalError(400, "bad query") from None

        def _discard_body(self):
            if self.headers.get("Transfer-Encoding"):
                raise PortalError(411, "length required")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise PortalError(400, "bad Content-Length") from None
            if length < 0 or length > MAX_BODY:
                raise PortalError(413, "body too large")
            if length:
                self.rfile.read(length)

        def _authorize(self, mailbox, query, allow_signed=None):
            """Basic auth (or, for audio, a signed link). Returns the extension; raises 401/403."""
            if allow_signed and "sig" in query and "expires" in query:
                folder, msg, msg_id = allow_signed
                try:
                    expires = int(query["expires"][0])
                except ValueError:
                    expires = 0
                want = audio_signature(secret, mailbox, folder, msg, msg_id, expires)
                if expires >= time.time() and hmac.compare_digest(want, query["sig"][0]):
                    self.user = f"{mailbox}(link)"
                    return mailbox
                raise PortalError(403, "audio link expired or invalid")
            user = check_basic(self.headers.get("Authorization"), secret, users)
            if not user:
                # No WWW-Authenticate: browsers must not pop up a login dialog.
                raise PortalError(401, "authentication required")
            self.user = user
            if mailbox is not None and user != mailbox:
                raise PortalError(403, "not your mailbox")
            return user

        def _dispatch(self):
            match, query = self._route()
            if self.command in ("POST", "DELETE"):
                self._discard_body()
            if not match:
                # Authenticate before telling anything about the path space.
                self._authorize(None, query)
                raise PortalError(404, "not found")
            if match.re is CONFERENCE_RE:
                return self._conference(match)
            mailbox, folder, msg, action = match.group("mailbox", "folder", "id", "action")
            if action == "/audio" and self.command in ("GET", "HEAD"):
                signed = None
                if "sig" in query:
                    info = parse_message_info(os.path.join(spool.folder_dir(mailbox, folder), f"{msg}.txt")) or {}
                    signed = (folder, msg, clean(info.get("msg_id", "")))
                self._authorize(mailbox, query, signed)
                return self._audio(mailbox, folder, msg)
            self._authorize(mailbox, query)
            if folder is None:
                if self.command != "GET":
                    raise PortalError(405, "method not allowed")
                wanted = query.get("folder", [None])[0]
                if wanted is not None and wanted not in FOLDERS:
                    raise PortalError(400, f"folder must be one of {', '.join(FOLDERS)}")
                return self._json(200, self._listing(mailbox, (wanted,) if wanted else FOLDERS))
            if action is None and self.command == "GET":
                item = spool.describe(mailbox, folder, msg)
                if not item:
                    raise PortalError(404, "no such message")
                return self._json(200, self._with_url(mailbox, item))
            if action is None and self.command == "DELETE":
                spool.delete(mailbox, folder, msg)
                refresher.request(mailbox)
                LOG.info("%s deleted %s/%s", mailbox, folder, msg)
                return self._json(200, {"deleted": {"folder": folder, "id": msg}})
            if action == "/read" and self.command == "POST":
                if folder != "INBOX":
                    item = spool.describe(mailbox, folder, msg)
                    if not item:
                        raise PortalError(404, "no such message")
                    return self._json(200, self._with_url(mailbox, item))
                new = spool.move(mailbox, "INBOX", msg, "Old")
                refresher.request(mailbox)
                LOG.info("%s marked %s/%s read -> Old/%s", mailbox, folder, msg, new)
                item = spool.describe(mailbox, "Old", new)
                return self._json(200, self._with_url(mailbox, item) if item else {"folder": "Old", "id": new})
            raise PortalError(405, "method not allowed")

        def _conference(self, match):
            """Conference control: any participant lists the room, its admins mute, unmute and kick."""
            mailbox, room, pid, action = match.group("mailbox", "room", "id", "action")
            self._authorize(mailbox, {})
            if self.command != ("POST" if action else "GET"):
                raise PortalError(405, "method not allowed")
            if not cfg.get("ami"):
                raise PortalError(503, "conference control needs AMI (voicemail_portal_ami_enabled)")
            try:
                people = conference_participants(cfg["ami"], room, fresh=action is not None)
            except (OSError, TimeoutError, ConnectionError, PermissionError) as exc:
                LOG.warning("AMI ConfbridgeList failed: %s", exc.__class__.__name__)
                raise PortalError(503, "Asterisk is not reachable") from None
            mine = [p for p in people if own_channel(p, mailbox)]
            if not mine:
                raise PortalError(403, "not in this conference")
            admin = any(p["admin"] for p in mine)
            if action is None:
                listing = [
                    {k: p[k] for k in ("id", "number", "name", "admin", "muted")} | {"me": own_channel(p, mailbox)}
                    for p in people
                ]
                return self._json(200, {"room": room, "admin": admin, "participants": listing})
            if not admin:
                raise PortalError(403, "only a conference admin may do this")
            target = next((p for p in people if p["id"] == pid), None)
            if target is None:
                raise PortalError(404, "no such participant")
            try:
                conference_act(cfg["ami"], room, target["channel"], action)
            except (OSError, TimeoutError, ConnectionError, PermissionError) as exc:
                LOG.warning("AMI %s failed: %s", CONFERENCE_ACTIONS[action], exc.__class__.__name__)
                raise PortalError(503, "Asterisk is not reachable") from None
            LOG.info("%s: conference %s: %s %s (%s)", mailbox, room, action, target["number"], pid)
            return self._json(200, {"participant": pid, "action": action})

        def _with_url(self, mailbox, item):
            expires = int(time.time()) + ttl
            sig = audio_signature(secret, mailbox, item["folder"], item["id"], item["msg_id"], expires)
            item = dict(item)
            path = f"{API_PREFIX}{mailbox}/messages/{item['folder']}/{item['id']}/audio"
            item["audio_url"] = f"{path}?expires={expires}&sig={quote(sig)}"
            return item

        def _listing(self, mailbox, folders):
            messages = [self._with_url(mailbox, m) for m in spool.list(mailbox, folders)]
            counts = {f: 0 for f in folders}
            for m in messages:
                counts[m["folder"]] += 1
            return {"mailbox": mailbox, "counts": counts, "messages": messages}

        def _audio(self, mailbox, folder, msg):
            path = spool.audio_path(mailbox, folder, msg)
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                try:
                    span = parse_range(self.headers.get("Range"), size)
                except PortalError:
                    return self._error(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
                extra = {"Accept-Ranges": "bytes", "Content-Disposition": f'inline; filename="{msg}.wav"'}
                if span is None:
                    start, end, code = 0, size - 1, 200
                else:
                    (start, end), code = span, 206
                    extra["Content-Range"] = f"bytes {start}-{end}/{size}"
                length = max(0, end - start + 1)
                self._headers(code, "audio/wav", length, extra)
                if self.command == "HEAD":
                    return None
                fh.seek(start)
                while length > 0:
                    chunk = fh.read(min(CHUNK, length))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    length -= len(chunk)
            return None

        def _handle(self):
            try:
                self._dispatch()
            except PortalError as exc:
                self._error(exc.status, exc.message)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # noqa: BLE001 (a bug must not take the service down)
                LOG.exception("request failed")
                with contextlib.suppress(OSError):
                    self._error(500, "internal error")

        do_GET = do_HEAD = do_POST = do_DELETE = _handle  # noqa: N815 (http.server API)

        def log_request(self, code="-", size="-"):
            # Path only: the query of an audio link carries its signature. Never the Authorization header.
            path = self.path.partition("?")[0][:200]
            LOG.info("%s %s %s %s %s", self.address_string(), self.user, self.command, clean(path), code)

        def log_message(self, fmt, *args):
            LOG.info("%s %s", self.address_string(), clean(fmt % args, 300))

    return Handler


class Portal:
    """The HTTP server, the MWI refresher and the e-mail notifier together."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.spool = Spool(
            cfg["spool_dir"],
            cfg.get("audio_format", "wav"),
            float(cfg.get("lock_timeout", 5)),
            int(cfg.get("max_messages", 100)),
        )
        self.refresher = MwiRefresher(cfg.get("ami"), cfg.get("context", "default"))
        self.notifier = Notifier(cfg, self.spool)
        self.server = Server(
            (cfg.get("listen", "127.0.0.1"), int(cfg.get("port", 8092))),
            make_handler(cfg, self.spool, self.refresher),
            int(cfg.get("max_concurrent", 32)),
        )
        self.thread = None

    @property
    def port(self):
        return self.server.server_address[1]

    def start(self, notifier=True):
        self.refresher.start()
        if notifier and self.notifier.enabled:
            self.notifier.start()
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.refresher.stop()
        self.notifier.stop()


def main(argv):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(threadName)s: %(message)s", stream=sys.stderr)
    if len(argv) == 3 and argv[1] == "--check-config":
        try:
            problems = check_config(load(argv[2]))
        except (OSError, ValueError) as exc:
            problems = [f"cannot read the configuration: {exc.__class__.__name__}"]
        for problem in problems:
            print(f"voicemail portal configuration: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cfg = load(argv[1])
    problems = check_config(cfg)
    if problems:
        for problem in problems:
            LOG.error("configuration: %s", problem)
        return 1
    os.makedirs(cfg["state_dir"], mode=0o700, exist_ok=True)
    portal = Portal(cfg)
    LOG.info(
        "listening on %s:%d, spool %s, %d agents, e-mail %s, MWI refresh %s",
        cfg.get("listen", "127.0.0.1"),
        portal.port,
        cfg["spool_dir"],
        len(cfg["users"]),
        "on" if portal.notifier.enabled else "off",
        "on" if cfg.get("ami") else "off",
    )
    portal.refresher.start()
    if portal.notifier.enabled:
        portal.notifier.start()
    with contextlib.suppress(KeyboardInterrupt):
        portal.server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
