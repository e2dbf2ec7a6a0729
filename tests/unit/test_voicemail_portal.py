"""The voicemail portal service (roles/voicemail_portal/files/.../voicemail_portal.py), run in-process.

The real HTTP server listens on an ephemeral loopback port and works on a
temporary spool of real WAV and msgNNNN.txt files; a fake AMI server records
the VoicemailRefresh actions and a small SMTP sink receives the e-mails.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import http.client
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/voicemail_portal/files/usr/local/libexec/voiceops/voicemail_portal.py"
SPEC = importlib.util.spec_from_file_location("voicemail_portal", SCRIPT)
vp = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(vp)

SECRET = "portal-secret-0123456789abcdef"
PASSWORDS = {"1000": "Pass-1000-xyz", "1001": "Pass-1001-xyz"}
AMI_SECRET = "ami-secret-987654321"
SMTP_PASSWORD = "smtp-pass-55555"


# -- fixtures: spool files --------------------------------------------------


def write_wav(path: Path, seconds: float, seed: int = 1) -> bytes:
    frames = bytes((seed * 7 + i) % 251 for i in range(int(8000 * seconds) * 2))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return path.read_bytes()


def add_message(
    spool: Path,
    mailbox: str,
    folder: str,
    n: int,
    *,
    caller='"Alice" <5551234>',
    origtime=1790000000,
    duration=3,
    msg_id=None,
) -> bytes:
    directory = spool / mailbox / folder
    directory.mkdir(parents=True, exist_ok=True)
    name = f"msg{n:04d}"
    data = write_wav(directory / f"{name}.wav", duration, seed=n + origtime % 97)
    (directory / f"{name}.txt").write_text(
        ";\n; Message Information file\n;\n[message]\n"
        f"origmailbox={mailbox}\ncontext=voiceops-agents\nmacrocontext=\nexten={mailbox}\nrdnis=unknown\n"
        f"priority=2\ncallerchan=PJSIP/trunk-0001\ncallerid={caller}\n"
        f"origdate=Thu Sep 21 10:13:20 AM UTC 2026\norigtime={origtime}\ncategory=\n"
        f"msg_id={msg_id or f'{origtime}-{mailbox}{n:04d}'}\nflag=\nduration={duration}\n"
    )
    return data


# -- fixtures: fake AMI and SMTP sink ---------------------------------------


class FakeAMI:
    """Speaks just enough AMI: banner, Login, any action -> Success, Logoff -> Goodbye. Records every action.

    ConfbridgeList answers from ``conferences`` (room -> list of event fields) the way Asterisk does: a
    Success with EventList start, one ConfbridgeList event per participant, ConfbridgeListComplete; an
    Error for a room with nobody in it.
    """

    def __init__(self):
        self.actions: list[dict] = []
        self.conferences: dict[str, list[dict]] = {}
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")
                buf = b""
                with contextlib.suppress(OSError):
                    while True:
                        while b"\r\n\r\n" not in buf:
                            chunk = conn.recv(4096)
                            if not chunk:
                                raise OSError
                            buf += chunk
                        block, buf = buf.split(b"\r\n\r\n", 1)
                        fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n"))
                        self.actions.append(fields)
                        aid = fields.get("ActionID", "")
                        if fields["Action"] == "Logoff":
                            conn.sendall(f"Response: Goodbye\r\nActionID: {aid}\r\n\r\n".encode())
                            break
                        if fields["Action"] == "ConfbridgeList":
                            conn.sendall(self._confbridge_list(fields.get("Conference", ""), aid))
                            continue
                        ok = fields["Action"] != "Login" or fields.get("Secret") == AMI_SECRET
                        status = "Success" if ok else "Error"
                        # An unrelated event first: the client must skip it.
                        conn.sendall(b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n")
                        conn.sendall(f"Response: {status}\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())

    def _confbridge_list(self, room, aid):
        people = self.conferences.get(room)
        if not people:
            return f"Response: Error\r\nActionID: {aid}\r\nMessage: No Conference by that name found.\r\n\r\n".encode()
        out = f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: list follows\r\n\r\n"
        for person in people:
            out += f"Event: ConfbridgeList\r\nActionID: {aid}\r\nConference: {room}\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in person.items()) + "\r\n"
        out += f"Event: ConfbridgeListComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
        out += f"ListItems: {len(people)}\r\n\r\n"
        return out.encode()

    def refreshes(self):
        return [(a.get("Context"), a.get("Mailbox")) for a in self.actions if a.get("Action") == "VoicemailRefresh"]

    def wait_refreshes(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.refreshes()) < count:
            time.sleep(0.02)
        return self.refreshes()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


class SMTPSink:
    """A minimal SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) that keeps what it receives."""

    def __init__(self):
        self.messages: list[dict] = []
        self.fail_next = 0
        self.connections = 0
        self.auth: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                self._session(conn.makefile("rb"), conn)

    def _session(self, rfile, conn):
        def reply(text):
            conn.sendall(text.encode() + b"\r\n")

        reply("220 sink ESMTP")
        mail_from, rcpt = None, []
        while True:
            line = rfile.readline()
            if not line:
                return
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME")
            elif verb == "AUTH":
                self.auth.append(base64.b64decode(cmd.split()[2]).decode())
                reply("235 ok")
            elif verb == "MAIL":
                if self.fail_next:
                    self.fail_next -= 1
                    reply("451 try again later")
                    continue
                mail_from, rcpt = cmd[10:], []
                reply("250 ok")
            elif verb == "RCPT":
                rcpt.append(cmd[8:])
                reply("250 ok")
            elif verb == "DATA":
                reply("354 go ahead")
                data = b""
                while True:
                    chunk = rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.messages.append({"from": mail_from, "rcpt": rcpt, "data": data})
                reply("250 queued")
            elif verb == "RSET":
                reply("250 ok")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("502 not implemented")

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def ami():
    server = FakeAMI()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    server = SMTPSink()
    yield server
    server.stop()


@pytest.fixture
def spool(tmp_path):
    path = tmp_path / "spool" / "voicemail" / "default"
    path.mkdir(parents=True)
    return path


def make_cfg(tmp_path, spool, ami=None, smtp=None, **extra):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    cfg = {
        "listen": "127.0.0.1",
        "port": 1,  # replaced by 0 (ephemeral) below; 1 passes check_config
        "spool_dir": str(spool),
        "state_dir": str(state),
        "context": "default",
        "secret": SECRET,
        "users": {ext: hashlib.sha256(f"{SECRET}:{pw}".encode()).hexdigest() for ext, pw in PASSWORDS.items()},
        "ami": {"host": "127.0.0.1", "port": ami.port, "username": "voiceops", "secret": AMI_SECRET} if ami else None,
        "poll_interval": 1,
        "smtp": {
            "host": "127.0.0.1" if smtp else "",
            "port": smtp.port if smtp else 587,
            "tls": "none",
            "username": "",
            "password": "",
            "from": "PBX voicemail <voicemail@pbx.example>",
        },
        "emails": {"1000": "agent1000@example.com"},
        "email_retry_initial": 60,
        "email_retry_max": 3600,
        "lock_timeout": 0.3,
        **extra,
    }
    assert vp.check_config(cfg) == []
    cfg["port"] = 0
    return cfg


@pytest.fixture
def portal(tmp_path, spool, ami):
    portals = []

    def start(**extra):
        p = vp.Portal(make_cfg(tmp_path, spool, ami=ami, **extra)).start(notifier=False)
        portals.append(p)
        return p

    yield start
    for p in portals:
        p.stop()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(p, method, path, auth=("1000", PASSWORDS["1000"]), headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = basic(*auth)
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp, data


API = "/voicemail/api"


# -- authentication and isolation --------------------------------------------


def test_lists_own_messages(portal, spool):
    add_message(spool, "1000", "INBOX", 0, origtime=1790000000, duration=3)
    add_message(spool, "1000", "INBOX", 1, caller="5550001", origtime=1790000600, duration=2)
    add_message(spool, "1000", "Old", 0, origtime=1780000000, duration=1)
    add_message(spool, "1001", "INBOX", 0)
    p = portal()
    status, resp, data = call(p, "GET", f"{API}/1000/messages")
    assert status == 200, data
    assert resp.getheader("Content-Type") == "application/json"
    assert resp.getheader("Cache-Control") == "no-store"
    body = json.loads(data)
    assert body["mailbox"] == "1000"
    assert body["counts"] == {"INBOX": 2, "Old": 1, "Work": 0, "Family": 0, "Friends": 0}
    ids = [(m["folder"], m["id"]) for m in body["messages"]]
    assert ids == [("INBOX", "msg0001"), ("INBOX", "msg0000"), ("Old", "msg0000")], "newest first"
    first = body["messages"][1]
    assert first["callerid"] == '"Alice" <5551234>'
    assert first["caller_name"] == "Alice" and first["caller_number"] == "5551234"
    assert first["date"] == "2026-09-21T14:13:20Z"
    assert first["duration"] == 3 and first["new"] is True
    assert first["msg_id"] == "1790000000-10000000"
    assert body["messages"][2]["new"] is False
    assert body["messages"][0]["caller_number"] == "5550001"
    assert first["audio_url"].startswith(f"{API}/1000/messages/INBOX/msg0000/audio?expires=")

    status, _, data = call(p, "GET", f"{API}/1000/messages?folder=Old")
    assert status == 200 and [m["id"] for m in json.loads(data)["messages"]] == ["msg0000"]
    status, _, _ = call(p, "GET", f"{API}/1000/messages?folder=Spam")
    assert status == 400


def test_empty_mailbox_lists_nothing(portal):
    p = portal()
    status, _, data = call(p, "GET", f"{API}/1001/messages", auth=("1001", PASSWORDS["1001"]))
    assert status == 200 and json.loads(data)["messages"] == []


@pytest.mark.parametrize(
    "auth",
    [None, ("1000", "wrong"), ("1000", ""), ("9999", "Pass-1000-xyz"), ("1001", PASSWORDS["1000"])],
    ids=["none", "wrong-password", "empty-password", "not-an-agent", "other-agents-password"],
)
def test_bad_credentials_get_401(portal, spool, auth):
    add_message(spool, "1000", "INBOX", 0)
    p = portal()
    for method, path in [
        ("GET", f"{API}/1000/messages"),
        ("GET", f"{API}/1000/messages/INBOX/msg0000/audio"),
        ("POST", f"{API}/1000/messages/INBOX/msg0000/read"),
        ("DELETE", f"{API}/1000/messages/INBOX/msg0000"),
        ("GET", f"{API}/whatever"),
    ]:
        status, resp, data = call(p, method, path, auth=auth)
        assert status == 401, (method, path, data)
        assert resp.getheader("WWW-Authenticate") is None, "no browser login dialog"
    assert (spool / "1000" / "INBOX" / "msg0000.wav").exists()


def test_malformed_authorization_gets_401(portal):
    p = portal()
    for header in ["Basic !!!", "Basic " + base64.b64encode(b"\xff\xfe").decode(), "Bearer abc", "Basic"]:
        status, _, _ = call(p, "GET", f"{API}/1000/messages", auth=None, headers={"Authorization": header})
        assert status == 401, header


def test_other_extension_gets_403(portal, spool, ami):
    add_message(spool, "1001", "INBOX", 0)
    p = portal()
    for method, path in [
        ("GET", f"{API}/1001/messages"),
        ("GET", f"{API}/1001/messages/INBOX/msg0000"),
        ("GET", f"{API}/1001/messages/INBOX/msg0000/audio"),
        ("POST", f"{API}/1001/messages/INBOX/msg0000/read"),
        ("DELETE", f"{API}/1001/messages/INBOX/msg0000"),
    ]:
        status, _, data = call(p, method, path)
        assert status == 403, (method, path, data)
        assert b"RIFF" not in data
    assert (spool / "1001" / "INBOX" / "msg0000.wav").exists()
    assert (spool / "1001" / "INBOX" / "msg0000.txt").exists()
    assert not (spool / "1001" / "Old").exists()
    time.sleep(0.2)
    assert ami.refreshes() == []


@pytest.mark.parametrize(
    "path",
    [
        "/voicemail/api/1000/messages/INBOX/../../1001/INBOX/msg0000/audio",
        "/voicemail/api/1000/messages/INBOX/%2e%2e/%2e%2e/1001/INBOX/msg0000/audio",
        "/voicemail/api/1000/../1001/messages",
        "/voicemail/api/1000/messages/..%2f..%2f1001%2fINBOX/msg0000/audio",
        "/voicemail/api/1000/messages/INBOX/msg0000.txt",
        "/voicemail/api/1000/messages/INBOX/msg00000/audio",
        "/voicemail/api/1000/messages/INBOX/msg0000/audio/../../../../../../../etc/passwd",
        "/voicemail/api/1000/messages/tmp/msg0000/audio",
        "/voicemail/api/1000/messages/inbox/msg0000/audio",
        "/voicemail/api/1000/messages/Spam/msg0000/audio",
        "/voicemail/api/1000%00/messages",
        "/voicemail/api/1/messages",
        "/voicemail/api/123456789/messages",
        "/voicemail/api/1000/messages/INBOX/msg0000/audio%00",
        "/voicemail/api/1000/messages/INBOX/msg0000/",
        "/voicemail/api/../../../etc/passwd",
    ],
)
def test_traversal_attempts_are_not_found(portal, spool, path):
    add_message(spool, "1000", "INBOX", 0)
    add_message(spool, "1001", "INBOX", 0)
    (spool / "1000" / "tmp").mkdir()
    add_message(spool, "1000", "tmp", 0)
    p = portal()
    status, _, data = call(p, "GET", path)
    assert status in (403, 404), (path, status)
    assert b"RIFF" not in data and b"[message]" not in data
    status, _, _ = call(p, "DELETE", path)
    assert status in (403, 404, 405)
    assert (spool / "1001" / "INBOX" / "msg0000.wav").exists()


# -- audio -------------------------------------------------------------------


def test_audio_whole_and_ranges(portal, spool):
    data = add_message(spool, "1000", "INBOX", 0, duration=2)
    size = len(data)
    p = portal()
    path = f"{API}/1000/messages/INBOX/msg0000/audio"
    status, resp, body = call(p, "GET", path)
    assert status == 200 and body == data
    assert resp.getheader("Content-Type") == "audio/wav"
    assert resp.getheader("Accept-Ranges") == "bytes"
    assert int(resp.getheader("Content-Length")) == size

    status, resp, body = call(p, "GET", path, headers={"Range": "bytes=100-1099"})
    assert status == 206
    assert resp.getheader("Content-Range") == f"bytes 100-1099/{size}"
    assert body == data[100:1100]

    status, resp, body = call(p, "GET", path, headers={"Range": f"bytes={size - 10}-"})
    assert status == 206 and body == data[-10:]
    assert resp.getheader("Content-Range") == f"bytes {size - 10}-{size - 1}/{size}"

    status, resp, body = call(p, "GET", path, headers={"Range": "bytes=-44"})
    assert status == 206 and body == data[-44:]

    status, resp, body = call(p, "GET", path, headers={"Range": "bytes=0-99999999"})
    assert status == 206 and body == data

    status, resp, _ = call(p, "GET", path, headers={"Range": f"bytes={size}-"})
    assert status == 416 and resp.getheader("Content-Range") == f"bytes */{size}"

    status, _, body = call(p, "GET", path, headers={"Range": "bytes=0-1,5-9"})
    assert status == 200 and body == data, "multiple ranges: the whole file"

    status, resp, body = call(p, "HEAD", path)
    assert status == 200 and body == b"" and int(resp.getheader("Content-Length")) == size

    status, _, _ = call(p, "GET", f"{API}/1000/messages/INBOX/msg0001/audio")
    assert status == 404


def test_signed_audio_link(portal, spool):
    data = add_message(spool, "1000", "INBOX", 0)
    add_message(spool, "1000", "INBOX", 1, origtime=1790000100)
    p = portal()
    listing = json.loads(call(p, "GET", f"{API}/1000/messages")[2])
    url = next(m["audio_url"] for m in listing["messages"] if m["id"] == "msg0000")
    # The <audio> element sends no Authorization header: the link alone must do, with Range.
    status, resp, body = call(p, "GET", url, auth=None, headers={"Range": "bytes=0-43"})
    assert status == 206 and body == data[:44]
    assert body.startswith(b"RIFF")

    base, _, query = url.partition("?")
    params = dict(kv.split("=") for kv in query.split("&"))
    other = base.replace("msg0000", "msg0001") + "?" + query
    assert call(p, "GET", other, auth=None)[0] == 403, "a link is bound to its message"
    forged = f"{base}?expires={params['expires']}&sig={'0' * 32}"
    assert call(p, "GET", forged, auth=None)[0] == 403
    later = f"{base}?expires={int(params['expires']) + 1}&sig={params['sig']}"
    assert call(p, "GET", later, auth=None)[0] == 403, "the expiry is signed"
    expired_sig = vp.audio_signature(SECRET, "1000", "INBOX", "msg0000", "1790000000-10000000", 1000)
    assert call(p, "GET", f"{base}?expires=1000&sig={expired_sig}", auth=None)[0] == 403
    cross = base.replace("/1000/", "/1001/") + "?" + query
    assert call(p, "GET", cross, auth=None)[0] in (403, 404)
    # The link opens audio only, never the API.
    assert call(p, "GET", f"{API}/1000/messages?{query}", auth=None)[0] == 401
    assert call(p, "DELETE", f"{base.rsplit('/', 1)[0]}?{query}", auth=None)[0] == 401


# -- changes -----------------------------------------------------------------


def test_mark_read_moves_to_next_old_number_and_refreshes_mwi(portal, spool, ami):
    wav = add_message(spool, "1000", "INBOX", 0, msg_id="1790000000-00000042")
    add_message(spool, "1000", "INBOX", 1, origtime=1790000500)
    add_message(spool, "1000", "Old", 0, origtime=1700000000)
    add_message(spool, "1000", "Old", 3, origtime=1700000300)
    p = portal()
    status, _, data = call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")
    assert status == 200, data
    moved = json.loads(data)
    assert (moved["folder"], moved["id"], moved["new"]) == ("Old", "msg0004", False), "Asterisk numbering: last + 1"
    assert moved["msg_id"] == "1790000000-00000042"
    old = spool / "1000" / "Old"
    assert (old / "msg0004.wav").read_bytes() == wav
    assert "msg_id=1790000000-00000042" in (old / "msg0004.txt").read_text()
    assert not (spool / "1000" / "INBOX" / "msg0000.wav").exists()
    assert not (spool / "1000" / "INBOX" / "msg0000.txt").exists()
    assert (spool / "1000" / "INBOX" / "msg0001.wav").exists()
    assert not list((spool / "1000" / "INBOX").glob(".lock*")) and not list(old.glob(".lock*"))
    assert ami.wait_refreshes(1) == [("default", "1000")]
    login = ami.actions[0]
    assert (login["Action"], login["Username"], login["Secret"]) == ("Login", "voiceops", AMI_SECRET)
    deadline = time.monotonic() + 5
    while ami.actions[-1]["Action"] != "Logoff" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [a["Action"] for a in ami.actions] == ["Login", "VoicemailRefresh", "Logoff"]

    # Reading an already read message changes nothing.
    status, _, data = call(p, "POST", f"{API}/1000/messages/Old/msg0004/read")
    assert status == 200 and json.loads(data)["id"] == "msg0004"
    status, _, _ = call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")
    assert status == 404
    # An Old folder that does not exist yet is created.
    add_message(spool, "1001", "INBOX", 0)
    status, _, data = call(p, "POST", f"{API}/1001/messages/INBOX/msg0000/read", auth=("1001", PASSWORDS["1001"]))
    assert status == 200 and json.loads(data)["id"] == "msg0000"
    assert (spool / "1001" / "Old" / "msg0000.wav").exists()
    assert ami.wait_refreshes(2)[-1] == ("default", "1001")


def test_full_old_folder_is_compacted_then_refused(portal, spool):
    add_message(spool, "1000", "INBOX", 0)
    add_message(spool, "1000", "INBOX", 1, origtime=1790000100)
    add_message(spool, "1000", "Old", 1, origtime=1700000000)
    add_message(spool, "1000", "Old", 2, origtime=1700000100)
    p = portal(max_messages=3)
    status, _, data = call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")
    assert status == 200 and json.loads(data)["id"] == "msg0002", "gaps closed first (msg0001, msg0002 -> 0, 1)"
    old = sorted(os.listdir(spool / "1000" / "Old"))
    assert old == [f"msg000{i}.{ext}" for i in range(3) for ext in ("txt", "wav")]
    assert "origtime=1700000000" in (spool / "1000" / "Old" / "msg0000.txt").read_text()
    status, _, data = call(p, "POST", f"{API}/1000/messages/INBOX/msg0001/read")
    assert status == 507, data
    assert (spool / "1000" / "INBOX" / "msg0001.wav").exists()


def test_delete_removes_both_files(portal, spool, ami):
    add_message(spool, "1000", "Old", 2)
    (spool / "1000" / "Old" / "msg0002.gsm").write_bytes(b"x")
    add_message(spool, "1000", "Old", 3)
    p = portal()
    status, _, data = call(p, "DELETE", f"{API}/1000/messages/Old/msg0002")
    assert status == 200 and json.loads(data) == {"deleted": {"folder": "Old", "id": "msg0002"}}
    assert sorted(os.listdir(spool / "1000" / "Old")) == ["msg0003.txt", "msg0003.wav"]
    assert ami.wait_refreshes(1) == [("default", "1000")]
    assert call(p, "DELETE", f"{API}/1000/messages/Old/msg0002")[0] == 404
    assert call(p, "GET", f"{API}/1000/messages/Old/msg0002/audio")[0] == 404


def test_changes_wait_for_asterisks_lock(portal, spool, ami):
    add_message(spool, "1000", "INBOX", 0)
    inbox = spool / "1000" / "INBOX"
    (inbox / ".lock").write_text("")  # Asterisk is saving a message
    p = portal()
    assert call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")[0] == 503
    assert call(p, "DELETE", f"{API}/1000/messages/INBOX/msg0000")[0] == 503
    assert (inbox / "msg0000.wav").exists() and (inbox / ".lock").exists()
    assert not list(inbox.glob(".lock-*")), "the unique lock file is removed"
    (inbox / ".lock").unlink()
    assert call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")[0] == 200


def test_body_limits_and_methods(portal, spool):
    add_message(spool, "1000", "INBOX", 0)
    p = portal()
    path = f"{API}/1000/messages/INBOX/msg0000/read"
    assert call(p, "POST", path, body=b"x" * 5000)[0] == 413
    assert call(p, "POST", path, headers={"Transfer-Encoding": "chunked"}, body=b"0\r\n\r\n")[0] == 411
    assert (spool / "1000" / "INBOX" / "msg0000.wav").exists()
    assert call(p, "DELETE", f"{API}/1000/messages")[0] == 405
    assert call(p, "GET", f"{API}/1000/messages/INBOX/msg0000/read")[0] == 405
    assert call(p, "POST", path, body=b"{}")[0] == 200


def test_concurrency_limit_answers_503(portal):
    p = portal(max_concurrent=1, request_timeout=3)
    hog = socket.create_connection(("127.0.0.1", p.port))
    hog.sendall(b"GET /voicemail/api/1000/messages HTTP/1.0\r\n")  # never finishes its headers
    time.sleep(0.3)
    try:
        status, resp, _ = call(p, "GET", f"{API}/1000/messages")
        assert status == 503 and resp.getheader("Retry-After") == "1"
    finally:
        hog.close()
    deadline = time.monotonic() + 5
    while call(p, "GET", f"{API}/1000/messages")[0] != 200:
        assert time.monotonic() < deadline, "the slot was not released"
        time.sleep(0.05)


def test_logs_hold_no_secrets(portal, spool, caplog):
    add_message(spool, "1000", "INBOX", 0)
    caplog.set_level(logging.INFO, logger="voicemail-portal")
    p = portal()
    listing = json.loads(call(p, "GET", f"{API}/1000/messages")[2])
    url = listing["messages"][0]["audio_url"]
    call(p, "GET", url, auth=None)
    call(p, "GET", f"{API}/1000/messages", auth=("1000", "guess-Secret-1"))
    call(p, "POST", f"{API}/1000/messages/INBOX/msg0000/read")
    time.sleep(0.3)
    text = caplog.text
    assert "/voicemail/api/1000/messages" in text
    sig = url.rsplit("sig=", 1)[1]
    credentials = basic("1000", PASSWORDS["1000"])[6:]
    for secret in (*PASSWORDS.values(), "guess-Secret-1", SECRET, AMI_SECRET, sig, credentials):
        assert secret not in text


# -- e-mail ------------------------------------------------------------------


def make_notifier(tmp_path, spool, smtp, **extra):
    cfg = make_cfg(tmp_path, spool, smtp=smtp, **extra)
    return vp.Notifier(cfg, vp.Spool(str(spool)))


def test_new_message_is_emailed_once_with_the_wav(tmp_path, spool, smtp):
    notifier = make_notifier(tmp_path, spool, smtp)
    assert notifier.enabled
    assert notifier.poll_once() == 0  # first run: baseline (nothing there)
    wav = add_message(spool, "1000", "INBOX", 0, caller='"Bob Smith" <+441234567890>', duration=4)
    add_message(spool, "1001", "INBOX", 0)  # 1001 has no address: no e-mail
    assert notifier.poll_once() == 1
    assert len(smtp.messages) == 1
    got = smtp.messages[0]
    assert got["rcpt"] == ["<agent1000@example.com>"]
    assert got["from"] == "<voicemail@pbx.example>"
    msg = email.message_from_bytes(got["data"], policy=email.policy.default)
    assert msg["To"] == "agent1000@example.com"
    assert "Bob Smith" in msg["Subject"] and "+441234567890" in msg["Subject"] and "0:04" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "+441234567890" in text and "2026-09-21T14:13:20Z" in text and "4 s" in text
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_content_type() == "audio/wav"
    assert attachments[0].get_filename() == "voicemail-1000-msg0000.wav"
    assert attachments[0].get_content() == wav

    assert notifier.poll_once() == 0
    # A restarted service remembers what it sent.
    again = make_notifier(tmp_path, spool, smtp)
    assert again.poll_once() == 0
    assert len(smtp.messages) == 1
    state = json.loads((tmp_path / "state" / "notified.json").read_text())
    assert "1000/1790000000-10000000" in state["notified"]


def test_existing_messages_at_first_start_are_not_emailed(tmp_path, spool, smtp):
    add_message(spool, "1000", "INBOX", 0)
    notifier = make_notifier(tmp_path, spool, smtp)
    assert notifier.poll_once() == 0
    add_message(spool, "1000", "INBOX", 1, origtime=1790000900)
    assert notifier.poll_once() == 1
    assert len(smtp.messages) == 1


def test_failed_send_is_retried_later_not_lost(tmp_path, spool, smtp, caplog):
    notifier = make_notifier(tmp_path, spool, smtp, email_retry_initial=60)
    notifier.poll_once(now=900)
    add_message(spool, "1000", "INBOX", 0)
    smtp.fail_next = 2
    assert notifier.poll_once(now=1000) == 0
    assert "failed (attempt 1, retry in 60 s)" in caplog.text
    connections = smtp.connections
    assert notifier.poll_once(now=1030) == 0
    assert smtp.connections == connections, "no new attempt before the retry time"
    assert notifier.poll_once(now=1061) == 0  # second failure: next retry after 120 s
    assert notifier.poll_once(now=1100) == 0
    assert smtp.connections == connections + 1
    assert notifier.poll_once(now=1182) == 1
    assert len(smtp.messages) == 1
    assert notifier.poll_once(now=5000) == 0
    assert len(smtp.messages) == 1


def test_message_being_saved_is_not_emailed_yet(tmp_path, spool, smtp):
    notifier = make_notifier(tmp_path, spool, smtp)
    notifier.poll_once()
    add_message(spool, "1000", "INBOX", 0)
    (spool / "1000" / "INBOX" / ".lock").write_text("")
    assert notifier.poll_once() == 0
    (spool / "1000" / "INBOX" / ".lock").unlink()
    (spool / "1000" / "INBOX" / "msg0000.wav").rename(spool / "1000" / "INBOX" / "keep.wav")
    assert notifier.poll_once() == 0, "no audio yet"
    (spool / "1000" / "INBOX" / "keep.wav").rename(spool / "1000" / "INBOX" / "msg0000.wav")
    assert notifier.poll_once() == 1


def test_smtp_login_and_notifier_thread(tmp_path, spool, smtp):
    cfg = make_cfg(tmp_path, spool, smtp=smtp)
    cfg["smtp"].update(username="pbx", password=SMTP_PASSWORD)
    cfg["poll_interval"] = 0.2
    (tmp_path / "state" / "notified.json").write_text('{"notified": {}}')  # not a first start
    p = vp.Portal(cfg).start()
    try:
        add_message(spool, "1000", "INBOX", 0)
        deadline = time.monotonic() + 5
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(smtp.messages) == 1
        assert smtp.auth == [f"\0pbx\0{SMTP_PASSWORD}"]
        time.sleep(0.5)
        assert len(smtp.messages) == 1
    finally:
        p.stop()


def test_large_recording_is_announced_without_attachment(tmp_path, spool, smtp):
    notifier = make_notifier(tmp_path, spool, smtp, email_max_attachment_bytes=1000)
    notifier.poll_once()
    add_message(spool, "1000", "INBOX", 0, duration=2)
    assert notifier.poll_once() == 1
    msg = email.message_from_bytes(smtp.messages[0]["data"], policy=email.policy.default)
    assert list(msg.iter_attachments()) == []
    assert "too large to attach" in msg.get_body(("plain",)).get_content()


# -- configuration -----------------------------------------------------------


def test_check_config_names_problems(tmp_path, spool):
    good = make_cfg(tmp_path, spool)
    good["port"] = 8092
    assert vp.check_config(good) == []
    cases = [
        ({"secret": "short"}, "secret"),
        ({"port": 70000}, "port"),
        ({"spool_dir": "relative/path"}, "spool_dir"),
        ({"emails": {"1999": "x@example.com"}}, "1999 is not an agent"),
        ({"emails": {"1000": "not-an-address"}}, "not an e-mail address"),
        ({"smtp": {**good["smtp"], "host": "relay", "tls": "ssl"}}, "smtp.tls"),
        ({"smtp": {**good["smtp"], "host": "relay", "from": ""}}, "smtp.from"),
        ({"smtp": {**good["smtp"], "host": "relay", "username": "u", "password": ""}}, "smtp.password"),
        ({"smtp": {**good["smtp"], "host": "relay", "port": 0}}, "smtp.port"),
        ({"users": {"10a0": "0" * 64}}, "users"),
    ]
    for change, expected in cases:
        problems = vp.check_config({**good, **change})
        assert any(expected in p for p in problems), (change, problems)
        assert SECRET not in " ".join(problems)

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**good, "secret": "short"}))
    res = subprocess.run([sys.executable, str(SCRIPT), "--check-config", str(path)], capture_output=True, text=True)
    assert res.returncode == 1 and "secret must be" in res.stderr
    path.write_text(json.dumps(good))
    res = subprocess.run([sys.executable, str(SCRIPT), "--check-config", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_role_template_renders_a_valid_config(tmp_path):
    """The role's config.json.j2 gives the service what it expects (keyed hashes, no passwords)."""
    yaml = pytest.importorskip("yaml")
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role = ROOT / "roles" / "voicemail_portal"
    variables = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    variables.update(
        voicemail_portal_secret=SECRET,
        voicemail_portal_users=[
            {"extension": "1000", "password": PASSWORDS["1000"]},
            {"extension": 1001, "password": PASSWORDS["1001"], "name": "B"},
        ],
        asterisk_ami_secret=AMI_SECRET,
        asterisk_voicemail_mailboxes=[
            {"extension": "1000", "pin": "1234", "email": "a@example.com"},
            {"extension": "1001", "pin": "4321"},
        ],
        voicemail_portal_smtp_host="relay.example.com",
        voicemail_portal_smtp_username="pbx",
        voicemail_portal_smtp_password=SMTP_PASSWORD,
        voicemail_portal_smtp_from="voicemail@example.com",
    )
    variables = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in variables.items()}
    templar = Templar(loader=DataLoader(), variables=variables)
    source = (role / "templates" / "etc" / "voiceops" / "voicemail-portal" / "config.json.j2").read_text()
    cfg = json.loads(templar.template(trust_as_template(source)))
    assert vp.check_config(cfg) == []
    assert cfg["users"] == {ext: hashlib.sha256(f"{SECRET}:{pw}".encode()).hexdigest() for ext, pw in PASSWORDS.items()}
    assert cfg["emails"] == {"1000": "a@example.com"}, "default: the mailboxes' email"
    assert cfg["ami"] == {"host": "127.0.0.1", "port": 5038, "username": "voiceops", "secret": AMI_SECRET}
    assert cfg["smtp"]["password"] == SMTP_PASSWORD and cfg["smtp"]["port"] == 587
    assert cfg["spool_dir"] == "/var/lib/voiceops/asterisk/spool/voicemail/default"
    rendered = json.dumps(cfg)
    assert PASSWORDS["1000"] not in rendered and PASSWORDS["1001"] not in rendered


# -- conference control -------------------------------------------------------


def participant(ext, uid, admin=False, muted=False):
    return {
        "Channel": f"PJSIP/{ext}-0000{uid}",
        "CallerIDNum": ext,
        "CallerIDName": f"Agent {ext}",
        "Uniqueid": f"1790000000.{uid}",
        "Admin": "Yes" if admin else "No",
        "Muted": "Yes" if muted else "No",
    }


@pytest.fixture
def room(ami):
    vp._ROOM_CACHE.clear()
    ami.conferences["700"] = [participant("1000", 11, admin=True), participant("1001", 12, muted=True)]
    return ami


def test_participant_lists_the_room(portal, room):
    status, _, data = call(portal(), "GET", f"{API}/1001/conferences/700", auth=("1001", PASSWORDS["1001"]))
    assert status == 200
    body = json.loads(data)
    assert body["room"] == "700" and body["admin"] is False
    assert body["participants"] == [
        {"id": "1790000000.11", "number": "1000", "name": "Agent 1000", "admin": True, "muted": False, "me": False},
        {"id": "1790000000.12", "number": "1001", "name": "Agent 1001", "admin": False, "muted": True, "me": True},
    ]
    # Channel names stay inside the portal.
    assert b"PJSIP/" not in data


def test_agent_outside_the_room_gets_403(portal, room):
    room.conferences["700"] = [participant("1000", 11, admin=True)]
    p = portal()
    auth = ("1001", PASSWORDS["1001"])
    status, _, data = call(p, "GET", f"{API}/1001/conferences/700", auth=auth)
    assert (status, json.loads(data)["error"]) == (403, "not in this conference")
    status, _, _ = call(p, "GET", f"{API}/1001/conferences/701", auth=auth)
    assert status == 403
    # Another agent's path: 403 before anything is asked of Asterisk.
    before = len(room.actions)
    status, _, _ = call(p, "GET", f"{API}/1000/conferences/700", auth=auth)
    assert status == 403 and len(room.actions) == before


def test_admin_mutes_unmutes_and_kicks_one_participant(portal, room):
    p = portal()
    for action, ami_action in (("mute", "ConfbridgeMute"), ("unmute", "ConfbridgeUnmute"), ("kick", "ConfbridgeKick")):
        status, _, data = call(p, "POST", f"{API}/1000/conferences/700/participants/1790000000.12/{action}")
        assert status == 200, data
        assert json.loads(data) == {"participant": "1790000000.12", "action": action}
        sent = [a for a in room.actions if a["Action"] == ami_action]
        assert sent == [{**sent[0], "Conference": "700", "Channel": "PJSIP/1001-000012"}]


def test_participant_cannot_mute_and_unknown_ids_are_404(portal, room):
    p = portal()
    status, _, data = call(
        p, "POST", f"{API}/1001/conferences/700/participants/1790000000.11/mute", auth=("1001", PASSWORDS["1001"])
    )
    assert (status, json.loads(data)["error"]) == (403, "only a conference admin may do this")
    status, _, _ = call(p, "POST", f"{API}/1000/conferences/700/participants/1790000000.99/mute")
    assert status == 404
    status, _, _ = call(p, "GET", f"{API}/1000/conferences/700/participants/1790000000.12/mute")
    assert status == 405
    assert not [a for a in room.actions if a["Action"].startswith("ConfbridgeM")]


def test_polls_share_one_ami_query_per_second(portal, room):
    p = portal()
    for user in ("1000", "1001", "1000"):
        status, _, _ = call(p, "GET", f"{API}/{user}/conferences/700", auth=(user, PASSWORDS[user]))
        assert status == 200
    assert [a["Action"] for a in room.actions].count("ConfbridgeList") == 1
    # An action always checks a fresh list, and the next poll sees its effect.
    call(p, "POST", f"{API}/1000/conferences/700/participants/1790000000.12/unmute")
    room.conferences["700"][1]["Muted"] = "No"
    _, _, data = call(p, "GET", f"{API}/1001/conferences/700", auth=("1001", PASSWORDS["1001"]))
    assert json.loads(data)["participants"][1]["muted"] is False
    assert [a["Action"] for a in room.actions].count("ConfbridgeList") == 3


def test_a_list_that_was_under_way_during_an_action_is_not_cached(room, monkeypatch):
    # A poll's ConfbridgeList answered just before the admin's mute reached
    # Asterisk would otherwise be served, unmuted, for another second.
    cfg = {"host": "127.0.0.1", "port": room.port, "username": "voiceops", "secret": AMI_SECRET}
    real = vp._query_participants
    acted = []

    def slow_query(ami, name, timeout):
        people = real(ami, name, timeout)
        if not acted:  # the admin's mute lands while this answer is on its way
            acted.append(vp.conference_act(cfg, name, "PJSIP/1001-000012", "mute"))
        return people

    monkeypatch.setattr(vp, "_query_participants", slow_query)
    room.conferences["700"][1]["Muted"] = "No"
    assert vp.conference_participants(cfg, "700")[1]["muted"] is False
    room.conferences["700"][1]["Muted"] = "Yes"
    assert vp.conference_participants(cfg, "700")[1]["muted"] is True
    assert [a["Action"] for a in room.actions].count("ConfbridgeList") == 2
    # Without an action in between, the answer is cached as before.
    assert vp.conference_participants(cfg, "700")[1]["muted"] is True
    assert [a["Action"] for a in room.actions].count("ConfbridgeList") == 2


def test_conference_control_without_ami_is_503(tmp_path, spool):
    p = vp.Portal(make_cfg(tmp_path, spool, ami=None)).start(notifier=False)
    try:
        status, _, _ = call(p, "GET", f"{API}/1000/conferences/700")
    finally:
        p.stop()
    assert status == 503
