"""Voicemail in the browser and by e-mail (voicemail_portal role).

An unanswered call leaves a message in 1001's mailbox (the caller's fake
microphone plays conftest.TONES["1000"], 700 Hz). Then:

* the softphone's voicemail panel (window.softphone.voicemail* hooks, which
  talk to /voicemail/api/ through nginx with the agent's own credentials)
  lists it, plays it (the tone is in the player's output), moves it to Old
  once playback started, refuses another agent's mailbox, and deletes it;
* the portal e-mails it, with the WAV attached, to 1001's address. The lab
  must send mail to 127.0.0.1:2525 without TLS (voicemail_portal_smtp_host
  127.0.0.1, voicemail_portal_smtp_port 2525, voicemail_portal_smtp_tls none,
  1001 -> agent1001@lab.invalid); the test runs a small SMTP sink there.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import time

import pytest
from conftest import PRESENT_DB, TONES, clear_mailbox, lab_exec, leave_voicemail, wav_levels

PORTAL_CONFIG = "/etc/voiceops/voicemail-portal/config.json"
SINK_DIR = "/tmp/smtp-sink"
SINK_SCRIPT = "/tmp/smtp_sink.py"
SINK_PORT = 2525
MAIL_TO = "agent1001@lab.invalid"
WAV_TYPES = ("audio/wav", "audio/x-wav")


def vm_list(phone) -> dict:
    return phone.js("() => window.softphone.voicemailList()")


def wait_listing(phone, pick, timeout: float, what: str):
    """List again until pick(listing) gives something; fail with the last listing (or error)."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = vm_list(phone)
        except Exception as exc:  # noqa: BLE001 - Playwright's Error: keep polling, report at the end
            last = f"error: {exc}"
        else:
            found = pick(last)
            if found:
                return found
        if time.monotonic() > end:
            pytest.fail(f"{phone.user}: {what} not within {timeout:.0f} s; last listing: {last}")
        time.sleep(1)


def test_voicemail_panel_lists_plays_marks_read_and_deletes(phones, lab):
    clear_mailbox(lab, "1001")
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])

    # The panel fetched the (now empty) list after login.
    b.page.wait_for_selector("#vm-panel:not([hidden])", timeout=15000)
    listing = vm_list(b)
    assert not [m for m in listing["messages"] if m["folder"] in ("INBOX", "Old")], listing

    leave_voicemail(a, b)

    # The NOTIFY (message-summary) arrives; the panel lists the new message.
    b.page.wait_for_function("() => window.softphone.mwi().waiting", timeout=30000)
    msg = wait_listing(
        b,
        lambda lst: next(
            (m for m in lst["messages"] if m["folder"] == "INBOX" and m["caller_number"] == "1000"),
            None,
        ),
        30,
        "a new INBOX message from 1000",
    )
    assert msg["new"] is True, msg
    assert msg["duration"] >= 2, msg
    assert msg["audio_url"].startswith(f"/voicemail/api/1001/messages/INBOX/{msg['id']}/audio?"), msg
    b.page.wait_for_function(
        "(id) => [...document.querySelectorAll('#vm-list li')].some("
        "(li) => li.dataset.msgId === id && li.dataset.new === 'true' && li.querySelector('.vm-play'))",
        arg=msg["msg_id"],
        timeout=10000,
    )

    # Play it in the panel: A's tone is in the player's output.
    started = b.js("([f, i]) => window.softphone.voicemailPlay(f, i)", [msg["folder"], msg["id"]])
    assert started["msg_id"] == msg["msg_id"], started
    tone = TONES["1000"]
    level = None
    for _ in range(3):
        level = b.js("([f, ms]) => window.softphone.voicemailToneLevels(f, ms)", [[tone], 1500])[0]
        if level >= PRESENT_DB:
            break
    assert level >= PRESENT_DB, f"{tone:.0f} Hz only {level:.1f} dB above the median in the voicemail player"

    # Playback started: the message was marked read (moved to Old, new id, same msg_id).
    def moved_to_old(lst):
        mine = [m for m in lst["messages"] if m["msg_id"] == msg["msg_id"]]
        return next((m for m in mine if m["folder"] == "Old"), None) if len(mine) == 1 else None

    old = wait_listing(b, moved_to_old, 20, "the played message in Old")
    assert old["new"] is False, old
    assert old["caller_number"] == "1000", old
    b.page.wait_for_function(
        "(id) => [...document.querySelectorAll('#vm-list li')].some("
        "(li) => li.dataset.msgId === id && li.dataset.folder === 'Old' && li.dataset.new === 'false')",
        arg=msg["msg_id"],
        timeout=10000,
    )

    # An agent reaches only their own mailbox; without credentials nothing.
    other = b.js("() => window.softphone.voicemailFetch('1000/messages')")
    assert other["status"] == 403, other
    anonymous = b.js("() => window.softphone.voicemailFetch('1001/messages', {auth: false})")
    assert anonymous["status"] == 401, anonymous

    # Delete: the list no longer has it.
    b.js("([f, i]) => window.softphone.voicemailDelete(f, i)", [old["folder"], old["id"]])
    after = vm_list(b)
    assert all(m["msg_id"] != msg["msg_id"] for m in after["messages"]), after
    b.page.wait_for_function(
        "(id) => ![...document.querySelectorAll('#vm-list li')].some((li) => li.dataset.msgId === id)",
        arg=msg["msg_id"],
        timeout=10000,
    )

    # The password never reaches the page's DOM; no script errors.
    assert lab["passwords"]["1001"] not in b.page.content()
    assert not b.errors, b.errors


# -- e-mail notification -------------------------------------------------------

SMTP_SINK = r'''
"""SMTP sink for tests: every message goes to <dir>/mail-NNNN.eml (envelope in .json)."""
import json
import os
import re
import socketserver
import sys
import threading

OUT = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 2525
LOCK = threading.Lock()
SEQ = [0]


def address(arg):
    m = re.search(r"<([^>]*)>", arg)
    return m.group(1) if m else arg.split(":", 1)[-1].strip().split(" ")[0]


class Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def store(self, sender, rcpts, data):
        with LOCK:
            SEQ[0] += 1
            base = os.path.join(OUT, "mail-%04d" % SEQ[0])
        with open(base + ".json.tmp", "w") as fh:
            json.dump({"from": sender, "to": rcpts}, fh)
        os.replace(base + ".json.tmp", base + ".json")
        with open(base + ".eml.tmp", "wb") as fh:
            fh.write(data)
        os.replace(base + ".eml.tmp", base + ".eml")

    def handle(self):
        self.reply("220 smtp-sink ESMTP ready")
        sender, rcpts = None, []
        while True:
            raw = self.rfile.readline(65537)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-smtp-sink")
                self.reply("250 HELP")
            elif verb == "HELO":
                self.reply("250 smtp-sink")
            elif verb == "MAIL":
                sender, rcpts = address(line[4:]), []
                self.reply("250 OK")
            elif verb == "RCPT":
                if sender is None:
                    self.reply("503 MAIL first")
                else:
                    rcpts.append(address(line[4:]))
                    self.reply("250 OK")
            elif verb == "DATA":
                if sender is None or not rcpts:
                    self.reply("503 MAIL and RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                while True:
                    raw = self.rfile.readline(1 << 20)
                    if not raw:
                        return
                    if raw in (b".\r\n", b".\n"):
                        break
                    if raw.startswith(b"."):
                        raw = raw[1:]  # dot-unstuffing (RFC 5321 4.5.2)
                    data += raw
                self.store(sender, rcpts, bytes(data))
                sender, rcpts = None, []
                self.reply("250 OK queued")
            elif verb == "RSET":
                sender, rcpts = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


os.makedirs(OUT, exist_ok=True)
with Server(("127.0.0.1", PORT), Handler) as server:
    with open(os.path.join(OUT, "sink.pid.tmp"), "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(os.path.join(OUT, "sink.pid.tmp"), os.path.join(OUT, "sink.pid"))  # listening now
    server.serve_forever()
'''


def host_bytes(lab, path: str) -> bytes:
    res = subprocess.run(["docker", "exec", lab["container"], "cat", path], capture_output=True, timeout=30)
    assert res.returncode == 0, f"{path}: {res.stderr.decode(errors='replace')}"
    return res.stdout


def stop_sink(lab, pid: int) -> None:
    """Ends exactly that process, and only while it is still the sink."""
    lab_exec(lab, "sh", "-c", f"grep -q smtp_sink /proc/{pid}/cmdline 2>/dev/null && kill {pid}")


def start_sink(lab) -> int:
    left = lab_exec(lab, "sh", "-c", f"cat {SINK_DIR}/sink.pid 2>/dev/null").strip()
    if left.isdigit():
        stop_sink(lab, int(left))  # left over by an interrupted run
        time.sleep(0.5)
    lab_exec(lab, "sh", "-c", f"rm -rf {SINK_DIR} && mkdir -p {SINK_DIR}")
    subprocess.run(
        ["docker", "exec", "-i", lab["container"], "sh", "-c", f"cat > {SINK_SCRIPT}"],
        input=SMTP_SINK.encode(),
        check=True,
        capture_output=True,
        timeout=30,
    )
    subprocess.run(
        ["docker", "exec", "-d", lab["container"], "python3", SINK_SCRIPT, SINK_DIR, str(SINK_PORT)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    end = time.monotonic() + 15
    while time.monotonic() < end:
        pid = lab_exec(lab, "sh", "-c", f"cat {SINK_DIR}/sink.pid 2>/dev/null").strip()
        if pid.isdigit():
            return int(pid)
        time.sleep(0.2)
    pytest.fail(f"SMTP sink did not start on 127.0.0.1:{SINK_PORT} in {lab['container']} (port in use?)")


def portal_mail_settings(lab) -> dict:
    """The portal's relay and 1001's address (nothing secret leaves the container)."""
    script = (
        "import json,sys;c=json.load(open(sys.argv[1]));s=c.get('smtp') or {};"
        "print(json.dumps({'host':s.get('host'),'port':s.get('port'),'tls':s.get('tls'),"
        "'email':(c.get('emails') or {}).get('1001')}))"
    )
    out = lab_exec(lab, "python3", "-c", script, PORTAL_CONFIG).strip()
    return json.loads(out) if out.startswith("{") else {}


def wait_mail(lab, to: str, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        names = sorted(n for n in lab_exec(lab, "ls", SINK_DIR).split() if n.endswith(".eml"))
        for name in names:
            msg = email.message_from_bytes(host_bytes(lab, f"{SINK_DIR}/{name}"), policy=email.policy.default)
            if to in str(msg.get("To", "")):
                envelope = json.loads(host_bytes(lab, f"{SINK_DIR}/{name[:-4]}.json"))
                return msg, envelope
        time.sleep(1)
    pytest.fail(f"no e-mail to {to} within {timeout:.0f} s (sink saw: {lab_exec(lab, 'ls', SINK_DIR).split()})")


def test_new_voicemail_is_emailed_with_the_recording(phones, lab):
    settings = {k: str(v) for k, v in portal_mail_settings(lab).items()}
    wanted = {"host": "127.0.0.1", "port": str(SINK_PORT), "tls": "none", "email": MAIL_TO}
    assert settings == wanted, (
        f"the lab's voicemail portal must mail to 127.0.0.1:{SINK_PORT} without TLS and 1001 -> {MAIL_TO}: "
        f"has {settings}"
    )
    clear_mailbox(lab, "1001")
    pid = start_sink(lab)
    try:
        a = phones("1000")
        b = phones("1001")
        a.login(lab["passwords"]["1000"])
        b.login(lab["passwords"]["1001"])
        leave_voicemail(a, b)

        msg, envelope = wait_mail(lab, MAIL_TO, 60)
        assert MAIL_TO in envelope["to"], envelope
        assert "1001" in msg["Subject"] and "1000" in msg["Subject"], msg["Subject"]
        attachments = [p for p in msg.iter_attachments() if p.get_content_type() in WAV_TYPES]
        assert len(attachments) == 1, [p.get_content_type() for p in msg.iter_attachments()]
        wav = attachments[0].get_content()
        assert wav[:4] == b"RIFF", wav[:16]
        levels = wav_levels(wav, [TONES["1000"]])
        assert levels[TONES["1000"]] >= PRESENT_DB, levels
    finally:
        stop_sink(lab, pid)
        clear_mailbox(lab, "1001")
