"""PBX applications end to end: voicemail, conference, queue, recording.

Browsers (conftest.Phone) place the calls; audio is asserted twice over: the
received track in the browser (WebAudio FFT, wait_tone) and the files
Asterisk writes on the host (voicemail messages, MixMonitor recordings), whose
spectrum must carry each party's tone (conftest.TONES).
"""

from __future__ import annotations

import re
import time
import wave
from io import BytesIO

import pytest
from conftest import (
    MIX_ABSENT_DB,
    MIX_PRESENT_DB,
    PRESENT_DB,
    TONES,
    VM_SPOOL,
    asterisk_cli,
    clear_mailbox,
    connect,
    finished_wav,
    lab_exec,
    leave_voicemail,
    wait_tone,
    wav_levels,
)

SPOOL = "/var/lib/voiceops/asterisk/spool"
# Queue 800 waits with music_class lab-hold: .lab/lab-hold.wav (lab/lab.py),
# notes C-E-G-E; E5 sounds half the time. Ringing (Queue option r) would be
# the us ringback 440+480 Hz instead.
HOLD_NOTE = 659.25
RINGBACK = (440.0, 480.0)


def hangup_all(*phones) -> None:
    for p in phones:
        p.js("() => { try { window.softphone.hangup(); } catch (e) { /* idle */ } }")


def test_unanswered_call_goes_to_voicemail_with_mwi_and_playback(phones, lab):
    pins = lab["voicemail_pins"]
    assert pins.get("1001"), "lab secrets have no voicemail PINs: run `make lab`"
    box = f"{VM_SPOOL}/1001"
    clear_mailbox(lab, "1001")
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    b.page.wait_for_function("() => !window.softphone.mwi().waiting", timeout=30000)

    # B lets it ring: after the ring timeout the call goes to B's mailbox.
    leave_voicemail(a, b)

    # The message is on the host volume and holds A's tone.
    deadline = time.monotonic() + 10
    while "msg0000.wav" not in lab_exec(lab, "ls", f"{box}/INBOX") and time.monotonic() < deadline:
        time.sleep(0.5)
    levels = wav_levels(finished_wav(lab, f"{box}/INBOX/msg0000.wav"), [TONES["1000"]])
    assert levels[TONES["1000"]] > 20, levels
    meta = lab_exec(lab, "cat", f"{box}/INBOX/msg0000.txt")
    assert re.search(r"callerid=.*1000", meta), meta

    # B's softphone shows message waiting (NOTIFY message-summary).
    b.page.wait_for_function("() => window.softphone.mwi().waiting && window.softphone.mwi().new >= 1", timeout=30000)

    # B dials voicemail, enters the PIN, plays the new message and hears A's tone.
    b.js("(t) => window.softphone.call(t)", "601")
    b.wait_call("in-call")
    time.sleep(2)
    b.dtmf(pins["1001"] + "#")
    time.sleep(1.2 * len(pins["1001"]) + 4)  # the browser sends about one digit a second
    b.dtmf("1")
    wait_tone(b, TONES["1000"], timeout=30)
    hangup_all(b)


def test_voicemail_rejects_a_wrong_pin(phones, lab):
    b = phones("1001")
    b.login(lab["passwords"]["1001"])
    b.js("(t) => window.softphone.call(t)", "601")
    b.wait_call("in-call")
    channel = None
    deadline = time.monotonic() + 10
    while channel is None and time.monotonic() < deadline:
        for line in asterisk_cli(lab, "core show channels concise").splitlines():
            if line.startswith("PJSIP/1001-") and "VoiceMailMain" in line:
                channel = line.split("!", 1)[0]
        time.sleep(0.3)
    assert channel, "601 did not reach VoiceMailMain"
    time.sleep(1)
    wrong = "9" * len(lab["voicemail_pins"]["1001"])
    if wrong == lab["voicemail_pins"]["1001"]:
        wrong = "8" * len(wrong)
    b.dtmf(wrong + "#")
    time.sleep(1.2 * len(wrong) + 4)
    log = lab_exec(lab, "sh", "-c", f"grep -F '<{channel}>' /var/log/voiceops/asterisk/messages.log")
    hangup_all(b)
    assert "vm-incorrect" in log, log[-2000:]  # "login incorrect", asked again
    assert "vm-youhave" not in log, log[-2000:]  # never reached the mailbox


def test_conference_mixes_three_browsers_and_admin_mutes_participants(phones, lab):
    pin = lab["conference_admin_pin"]
    assert pin, "lab secrets have no conference admin PIN: run `make lab`"
    admin, p1, p2 = phones("1000"), phones("1001"), phones("1002")
    for p in (admin, p1, p2):
        p.login(lab["passwords"][p.user])
    for p, entry in ((admin, pin + "#"), (p1, "#"), (p2, "#")):
        p.js("(t) => window.softphone.call(t)", "700")
        p.wait_call("in-call")
        time.sleep(2)
        p.dtmf(entry)
    deadline = time.monotonic() + 20
    while "3" not in asterisk_cli(lab, "confbridge list").split() and time.monotonic() < deadline:
        time.sleep(0.5)
    listing = asterisk_cli(lab, "confbridge list 700")
    assert listing.count("PJSIP/") == 3, listing
    # Each hears the other two (mixing), not itself.
    for p in (admin, p1, p2):
        for other in (admin, p1, p2):
            if other is not p:
                wait_tone(p, TONES[other.user], timeout=20)
    # The admin mutes the participants: their tones disappear for everyone,
    # while the admin is still heard.
    admin.dtmf("*4")
    wait_tone(p1, TONES["1002"], present=False, timeout=10)
    wait_tone(p2, TONES["1001"], present=False, timeout=10)
    wait_tone(admin, TONES["1001"], present=False, timeout=10)
    wait_tone(p1, TONES["1000"], timeout=10)
    # And unmutes them.
    admin.dtmf("*4")
    wait_tone(p1, TONES["1002"], timeout=10)
    wait_tone(p2, TONES["1001"], timeout=10)
    # The admin mutes one chosen participant from the softphone's participant
    # list (voicemail portal -> AMI ConfbridgeMute): 1001's tone disappears for
    # the others while 1002 is still heard. The list may lag the unmute above
    # by the portal's room cache (ROOM_CACHE_S, 1 s): the softphones poll it.
    deadline = time.monotonic() + 5
    while True:
        room = admin.js("() => window.softphone.conferenceParticipants()")
        target = next((x for x in room["participants"] if x["number"] == "1001"), None)
        if (target and not target["muted"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert room["admin"] is True and len(room["participants"]) == 3, room
    assert target and not target["muted"] and not target["me"], room
    # A participant sees the room but may not mute anyone.
    seen = p2.js("() => window.softphone.conferenceParticipants()")
    assert seen["admin"] is False and {x["number"] for x in seen["participants"]} == {"1000", "1001", "1002"}
    # Its softphone hides the admin-only controls; the admin's shows them.
    shown = (
        "(want) => (getComputedStyle(document.querySelector('[data-conf-action=lock]')).display !== 'none') === want"
    )
    p2.page.wait_for_function(shown, arg=False, timeout=10000)
    admin.page.wait_for_function(shown, arg=True, timeout=10000)
    refused = p2.js(
        "(id) => window.softphone.conferenceMute(id).then(() => 'muted', (e) => String(e.message || e))", target["id"]
    )
    assert "admin" in refused, refused
    admin.js("(id) => window.softphone.conferenceMute(id, true)", target["id"])
    # Another loud tone is still mixed in: the thresholds for a mix.
    strict = {"present_db": MIX_PRESENT_DB, "absent_db": MIX_ABSENT_DB, "timeout": 10}
    wait_tone(p2, TONES["1001"], present=False, **strict)
    wait_tone(admin, TONES["1001"], present=False, **strict)
    wait_tone(p2, TONES["1000"], **strict)
    wait_tone(admin, TONES["1002"], **strict)
    assert (
        next(
            x
            for x in admin.js("() => window.softphone.conferenceParticipants()")["participants"]
            if x["number"] == "1001"
        )["muted"]
        is True
    )
    admin.js("(id) => window.softphone.conferenceMute(id, false)", target["id"])
    wait_tone(p2, TONES["1001"], **strict)
    hangup_all(admin, p1, p2)


def test_conference_refuses_a_wrong_pin(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "700")
    a.wait_call("in-call")
    for _ in range(3):
        time.sleep(2)
        a.dtmf("12340#")
        time.sleep(2)
    # Three wrong PINs (a room without participant PIN accepts only #) hang up.
    a.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=20000)
    assert "PJSIP/1000" not in asterisk_cli(lab, "confbridge list 700")


def test_conference_room_recording_holds_every_participant(phones, lab):
    a, b = phones("1000"), phones("1001")
    for p in (a, b):
        p.login(lab["passwords"][p.user])
    start = time.time()
    for p in (a, b):
        p.js("(t) => window.softphone.call(t)", "701")  # lab room 701: record: true
        p.wait_call("in-call")
        time.sleep(2)
        p.dtmf("#")
    wait_tone(a, TONES["1001"], timeout=20)
    wait_tone(b, TONES["1000"], timeout=20)
    time.sleep(5)
    hangup_all(a, b)
    time.sleep(1)
    listing = lab_exec(lab, "sh", "-c", f"ls {SPOOL}/monitor/conference/ 2>/dev/null")
    names = [n for n in listing.split() if (m := re.fullmatch(r"701-(\d+)\.wav", n)) and int(m[1]) >= start - 5]
    assert names, f"no recording of room 701 (701-<epoch>.wav) in {SPOOL}/monitor/conference: {listing}"
    levels = wav_levels(
        finished_wav(lab, f"{SPOOL}/monitor/conference/{sorted(names)[-1]}"), [TONES["1000"], TONES["1001"]]
    )
    assert all(v > 20 for v in levels.values()), levels


def test_queue_rings_a_member_who_answers(phones, lab):
    caller, m1, m2 = phones("1000"), phones("1001"), phones("1002")
    for p in (caller, m1, m2):
        p.login(lab["passwords"][p.user])
    caller.js("(t) => window.softphone.call(t)", "800")
    caller.wait_call("in-call")  # the queue answers and rings its members
    m1.wait_call("incoming")
    m2.wait_call("incoming")
    m2.js("() => window.softphone.answer()")
    m2.wait_call("in-call")
    wait_tone(m2, TONES["1000"])
    wait_tone(caller, TONES["1002"])
    m1.page.wait_for_function("() => window.softphone.state().call !== 'incoming'", timeout=10000)
    hangup_all(caller, m2)


def test_queue_caller_hears_hold_music_while_no_member_answers(phones, lab):
    files = asterisk_cli(lab, "moh show files")
    assert "/var/spool/asterisk/moh/lab-hold/lab-hold" in files, files  # installed from the controller
    caller, m1 = phones("1000"), phones("1001")
    for p in (caller, m1):
        p.login(lab["passwords"][p.user])
    caller.js("(t) => window.softphone.call(t)", "800")
    caller.wait_call("in-call")  # the queue answers and rings its members
    m1.wait_call("incoming")  # who lets it ring
    wait_tone(caller, HOLD_NOTE, timeout=10)
    # About 4 s of waiting: the hold note throughout, and no ringback. What the
    # notes leak into the ringback bins through the analyser window stays far
    # below the note; ringback itself would be as loud as the music.
    levels = caller.tone_levels([HOLD_NOTE, *RINGBACK], seconds=4.0)
    note = levels[str(HOLD_NOTE)]
    assert note >= PRESENT_DB, levels
    assert all(levels[str(f)] <= note - PRESENT_DB for f in RINGBACK), levels
    assert m1.js("() => window.softphone.state().call") != "in-call", "a member answered"
    hangup_all(caller)
    m1.page.wait_for_function("() => window.softphone.state().call !== 'incoming'", timeout=10000)


def test_record_toggle_writes_a_wav_with_both_parties(phones, lab):
    a, b = phones("1000"), phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    start = time.time()
    connect(a, b)
    wait_tone(b, TONES["1000"])
    wait_tone(a, TONES["1001"])
    a.dtmf("*3")  # asterisk_feature_codes.record_toggle: start
    time.sleep(8)
    a.dtmf("*3")  # stop
    time.sleep(1)
    hangup_all(a)
    day = time.strftime("%Y/%m/%d", time.gmtime(start))
    listing = lab_exec(lab, "sh", "-c", f"ls {SPOOL}/monitor/{day}/ 2>/dev/null")
    names = [n for n in listing.split() if re.fullmatch(r"\d{8}-\d{6}_1000_1001_[0-9.]+\.wav", n)]
    assert names, f"no recording named <date-time>_1000_1001_<call id>.wav in {SPOOL}/monitor/{day}: {listing}"
    data = finished_wav(lab, f"{SPOOL}/monitor/{day}/{sorted(names)[-1]}")
    levels = wav_levels(data, [TONES["1000"], TONES["1001"]])
    assert all(v > 20 for v in levels.values()), levels
    with wave.open(BytesIO(data)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 5 < seconds < 12, seconds  # started and stopped by the toggle, not the whole call


@pytest.mark.parametrize("days_old, kept", [(1, True), (400, False)])
def test_recording_retention_deletes_only_old_files(lab, days_old, kept):
    d = f"{SPOOL}/monitor/2000/01/01"
    f = f"{d}/retention-test-{days_old}.wav"
    lab_exec(lab, "sh", "-c", f"mkdir -p {d} && : > {f} && touch -d '{days_old} days ago' {f}")
    out = lab_exec(
        lab,
        "sh",
        "-c",
        "systemctl start voiceops-recordings.service; systemctl show -p Result voiceops-recordings.service",
    )
    assert "Result=success" in out, out
    exists = lab_exec(lab, "sh", "-c", f"test -e {f} && echo yes || echo no").strip()
    lab_exec(lab, "rm", "-f", f)
    assert exists == ("yes" if kept else "no")


def test_ivr_digit_reaches_the_configured_agent(phones, lab):
    a, b = phones("1000"), phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    a.js("(t) => window.softphone.call(t)", "500")
    a.wait_call("in-call")
    time.sleep(2)  # into the spoken prompt
    a.dtmf("1")  # option 1: agent 1001
    b.wait_call("incoming")
    b.js("() => window.softphone.answer()")
    b.wait_call("in-call")
    wait_tone(b, TONES["1000"])
    wait_tone(a, TONES["1001"])
    hangup_all(a, b)


def test_ivr_timeout_goes_to_the_timeout_destination(phones, lab):
    a, c = phones("1000"), phones("1002")
    a.login(lab["passwords"]["1000"])
    c.login(lab["passwords"]["1002"])
    a.js("(t) => window.softphone.call(t)", "500")
    a.wait_call("in-call")
    # Two rounds of prompt + 4 s timeout, then on_timeout: agent 1002.
    c.wait_call("incoming", timeout=90000)
    c.js("() => window.softphone.answer()")
    c.wait_call("in-call")
    wait_tone(c, TONES["1000"])
    wait_tone(a, TONES["1002"])
    hangup_all(a, c)


def test_ivr_invalid_choices_end_the_call(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "500")
    a.wait_call("in-call")
    time.sleep(2)
    a.dtmf("7")  # no option 7: "invalid", prompt again
    time.sleep(6)  # after "invalid" (not interruptible), into the repeated prompt
    a.dtmf("7")  # second attempt used up: on_invalid hangup
    a.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=30000)
    log = lab_exec(lab, "sh", "-c", "tail -n 300 /var/log/voiceops/asterisk/messages.log")
    assert "IVR main: 1000 made no valid choice" in log, log[-1500:]
