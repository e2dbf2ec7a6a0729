"""Softphone features end to end: transfers, call waiting, quality, keyboard, devices.

Each page's fake microphone plays its own tone (conftest.TONES), so every
step is checked by ear: who hears whom after a transfer, a hold or a swap.
"""

from __future__ import annotations

import pytest
from conftest import TONES, connect, wait_tone

WAIT_MS = 20000


def _login_all(lab, phones, *users: str):
    made = [phones(user) for user in users]
    for phone in made:
        phone.login(lab["passwords"][phone.user])
    return made


def _start(phone, method: str, *args) -> None:
    """Call softphone.<method>(*args) without waiting; the outcome lands in window.__result."""
    phone.js(
        """([method, args]) => {
             window.__result = null;
             window.softphone[method](...args).then(
               () => { window.__result = 'ok'; },
               (e) => { window.__result = String((e && e.message) || e); });
             return true;
           }""",
        [method, list(args)],
    )


def _result(phone, timeout: float = WAIT_MS) -> str:
    phone.page.wait_for_function("() => window.__result !== null", timeout=timeout)
    return phone.js("() => window.__result")


def _state(phone) -> dict:
    return phone.js("() => window.softphone.state()")


def _wait_no_call(phone, timeout: float = WAIT_MS) -> None:
    phone.page.wait_for_function(
        "() => { const s = window.softphone.state();"
        " return s.calls.length === 0 && ['ended', 'idle'].includes(s.call); }",
        timeout=timeout,
    )


def _wait_active(phone, number: str, state: str = "in-call", timeout: float = WAIT_MS) -> None:
    """Wait until the active call is the one with number and in state."""
    phone.page.wait_for_function(
        """([number, state]) => {
             const s = window.softphone.state();
             const active = s.calls.find((c) => c.active);
             return active && active.number === number && active.state === state && s.call === state;
           }""",
        arg=[number, state],
        timeout=timeout,
    )


def _hangup_all(*phones) -> None:
    for phone in phones:
        for _ in range(2):
            phone.js("() => window.softphone.hangup()")


def test_blind_transfer(phones, lab):
    a, b, c = _login_all(lab, phones, "1000", "1001", "1002")
    connect(a, b)
    wait_tone(b, TONES["1000"])
    wait_tone(a, TONES["1001"])

    # 1001 hands 1000 over to 1002. Asterisk confirms (NOTIFY 200) once 1002 answers.
    _start(b, "transfer", "1002")
    c.wait_call("incoming")
    c.js("() => window.softphone.answer()")
    c.wait_call("in-call")

    assert _result(b, timeout=30000) == "ok"
    _wait_no_call(b)
    assert a.js("() => window.softphone.state().call") == "in-call"

    wait_tone(a, TONES["1002"], timeout=15)  # 1000 hears 1002
    wait_tone(c, TONES["1000"], timeout=15)  # 1002 hears 1000

    # The transferring side's call log says where the call went.
    entry = b.js("() => window.softphone.callLog()[0]")
    assert entry["result"] == "transferred", entry
    assert entry["transfer"] == {"type": "blind", "target": "1002"}, entry
    assert "Transferred to 1002" in b.page.inner_text("#call-log")

    a.js("() => window.softphone.hangup()")
    _wait_no_call(c)


def test_blind_transfer_to_unknown_number_keeps_the_call(phones, lab):
    a, b = _login_all(lab, phones, "1000", "1001")
    connect(a, b)
    wait_tone(a, TONES["1001"])

    # Not an extension of from-internal: REFER is refused (404 NOTIFY) and the call stays.
    _start(b, "transfer", "nosuchext")
    result = _result(b, timeout=30000)
    assert result.startswith("Transfer "), result
    assert b.js("() => window.softphone.state().call") == "in-call"
    wait_tone(a, TONES["1001"])
    wait_tone(b, TONES["1000"])
    _hangup_all(a)
    _wait_no_call(b)


def test_attended_transfer(phones, lab):
    a, b, c = _login_all(lab, phones, "1000", "1001", "1002")
    connect(a, b)
    wait_tone(b, TONES["1000"])
    wait_tone(a, TONES["1001"])

    # 1001 consults 1002: 1000 goes on hold and no longer hears 1001.
    b.js("(n) => window.softphone.consult(n)", "1002")
    wait_tone(a, TONES["1001"], present=False, timeout=10)
    c.wait_call("incoming")
    c.js("() => window.softphone.answer()")
    c.wait_call("in-call")
    b.page.wait_for_function(
        "() => { const t = window.softphone.state().transfer; return t && t.consultConnected; }", timeout=WAIT_MS
    )
    s = _state(b)
    assert len(s["calls"]) == 2, s
    held = [call for call in s["calls"] if not call["active"]]
    assert held and held[0]["number"] == "1000" and held[0]["held"], s
    assert b.page.is_visible("#btn-complete-transfer")

    wait_tone(b, TONES["1002"])  # 1001 and 1002 talk
    wait_tone(c, TONES["1001"])

    assert b.js("() => window.softphone.completeTransfer().then(() => 'ok', (e) => String(e.message))") == "ok"
    _wait_no_call(b)

    wait_tone(a, TONES["1002"], timeout=15)  # 1000 and 1002 are connected
    wait_tone(c, TONES["1000"], timeout=15)
    entry = b.js("() => window.softphone.callLog().find((e) => e.number === '1000')")
    assert entry and entry["transfer"] == {"type": "attended", "target": "1002"}, entry

    a.js("() => window.softphone.hangup()")
    _wait_no_call(c)


def test_attended_transfer_cancel_resumes_first_call(phones, lab):
    a, b, c = _login_all(lab, phones, "1000", "1001", "1002")
    connect(a, b)
    wait_tone(a, TONES["1001"])

    b.js("(n) => window.softphone.consult(n)", "1002")
    c.wait_call("incoming")
    c.js("() => window.softphone.answer()")
    c.wait_call("in-call")
    wait_tone(c, TONES["1001"])
    wait_tone(a, TONES["1001"], present=False, timeout=10)

    assert b.js("() => window.softphone.cancelTransfer()") is True
    _wait_no_call(c)
    _wait_active(b, "1000")
    assert _state(b)["transfer"] is None
    wait_tone(a, TONES["1001"], timeout=10)  # back with 1000 both ways
    wait_tone(b, TONES["1000"], timeout=10)
    _hangup_all(a)
    _wait_no_call(b)


def test_call_waiting_answer_and_switch(phones, lab):
    a, b, c = _login_all(lab, phones, "1000", "1001", "1002")
    connect(a, b)
    wait_tone(b, TONES["1000"])
    wait_tone(a, TONES["1001"])

    # 1002 calls 1000 during the call: shown as waiting, the first call stays active.
    c.js("(t) => window.softphone.call(t)", "1000")
    a.page.wait_for_function(
        "() => { const s = window.softphone.state();"
        " return s.calls.length === 2 && s.incoming !== null && s.incoming.waiting; }",
        timeout=WAIT_MS,
    )
    s = _state(a)
    waiting = s["incoming"]
    assert waiting["number"] == "1002" and waiting["direction"] == "in" and waiting["state"] == "incoming", s
    first = next(call for call in s["calls"] if call["active"])
    assert first["number"] == "1001" and s["call"] == "in-call", s
    assert a.page.is_visible("#incoming")
    assert "Call waiting" in a.page.inner_text("#incoming-text")
    wait_tone(a, TONES["1001"])  # still talking to 1001

    # Answer: 1001 goes on hold, 1000 and 1002 talk.
    a.js("() => window.softphone.answer()")
    _wait_active(a, "1002")
    c.wait_call("in-call")
    s = _state(a)
    held = next(call for call in s["calls"] if not call["active"])
    assert held["number"] == "1001" and held["held"] and held["state"] == "on-hold", s
    wait_tone(b, TONES["1000"], present=False, timeout=10)
    wait_tone(a, TONES["1002"])
    wait_tone(c, TONES["1000"])

    # Switch back: 1002 on hold, 1000 and 1001 talk again.
    a.js("() => window.softphone.switchCall()")
    _wait_active(a, "1001")
    wait_tone(a, TONES["1001"], timeout=10)
    wait_tone(b, TONES["1000"], timeout=10)
    wait_tone(c, TONES["1000"], present=False, timeout=10)
    s = _state(a)
    assert [call["held"] for call in s["calls"] if call["number"] == "1002"] == [True], s

    # Hanging up the active call leaves the held one, which stays on hold.
    a.js("() => window.softphone.hangup()")
    _wait_no_call(b)
    _wait_active(a, "1002", state="on-hold")
    a.js("() => window.softphone.hangup()")
    _wait_no_call(a)
    _wait_no_call(c)


def _emodel(rtt: float = 0.0, jitter: float = 0.0, loss: float = 0.0) -> float:
    """Reference E-model (same formula as softphone/src/quality.js)."""
    leff = rtt / 2 + 2 * jitter + 10
    delay = leff / 40 if leff < 160 else (leff - 120) / 10
    ie_eff = 95 * loss / (loss + 25.1)
    r = 93.2 - delay - ie_eff
    if r <= 0:
        return 1.0
    return min(4.5, max(1.0, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)))


def test_call_quality(phones, lab):
    a, b = _login_all(lab, phones, "1000", "1001")
    assert a.js("() => window.softphone.quality()") is None
    connect(a, b)
    wait_tone(b, TONES["1000"])

    a.page.wait_for_function(
        """() => { const q = window.softphone.quality();
                   return q && [q.rtt_ms, q.jitter_ms, q.loss_pct, q.mos].every((v) => typeof v === 'number'); }""",
        timeout=WAIT_MS,
    )
    q = a.js("() => window.softphone.quality()")
    print(f"\nquality 1000<-1001: {q}")
    assert 1 <= q["mos"] <= 4.5, q
    assert q["rtt_ms"] >= 0 and q["jitter_ms"] >= 0 and 0 <= q["loss_pct"] <= 100, q
    assert q["rating"] in ("good", "fair", "poor"), q
    a.page.wait_for_selector("#quality", state="visible", timeout=5000)
    assert "MOS" in a.page.inner_text("#quality")
    assert a.page.get_attribute("#quality", "data-rating") in ("good", "fair", "poor")

    # The E-model itself, through the page's pure function.
    cases = [
        {},
        {"rtt_ms": 100},
        {"rtt_ms": 300},
        {"jitter_ms": 30},
        {"loss_pct": 2},
        {"rtt_ms": 150, "jitter_ms": 20, "loss_pct": 5},
        {"rtt_ms": 2000, "loss_pct": 100},
    ]
    got = a.js("(cases) => cases.map((c) => window.softphone.estimateMOS(c))", cases)
    for case, mos in zip(cases, got, strict=True):
        expected = _emodel(case.get("rtt_ms", 0), case.get("jitter_ms", 0), case.get("loss_pct", 0))
        assert mos == pytest.approx(expected, abs=1e-6), (case, mos, expected)
    assert got[0] == pytest.approx(4.40, abs=0.01)
    assert got[-1] == 1.0
    assert a.js("() => [4.3, 3.8, 2.5].map((m) => window.softphone.qualityRating(m))") == ["good", "fair", "poor"]

    a.js("() => window.softphone.hangup()")
    _wait_no_call(a)
    assert a.js("() => window.softphone.quality()") is None
    assert a.page.is_hidden("#quality")


def test_keyboard_call_and_hangup(phones, lab):
    a = phones("1000")
    a.page.set_viewport_size({"width": 1366, "height": 768})
    a.login(lab["passwords"]["1000"])
    # Laptop screen: no horizontal scrolling.
    assert a.js("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")

    # Digits typed on the page go to the dial field; Enter calls the echo test.
    a.js("() => { if (document.activeElement) document.activeElement.blur(); }")
    a.page.keyboard.type("600")
    assert a.page.input_value("#dial-input") == "600"
    a.page.keyboard.press("Enter")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])

    # Alt+M mutes (the echo goes quiet) and unmutes.
    a.page.keyboard.press("Alt+KeyM")
    a.page.wait_for_function("() => window.softphone.state().muted === true", timeout=5000)
    wait_tone(a, TONES["1000"], present=False)
    a.page.keyboard.press("Alt+KeyM")
    a.page.wait_for_function("() => window.softphone.state().muted === false", timeout=5000)
    wait_tone(a, TONES["1000"])

    # Tab reaches the Hang up button, which shows a focus ring.
    reached = False
    for _ in range(40):
        a.page.keyboard.press("Tab")
        if a.js("() => document.activeElement && document.activeElement.id") == "btn-hangup":
            reached = True
            break
    assert reached, "Tab never reached #btn-hangup"
    assert a.js("() => getComputedStyle(document.activeElement).outlineStyle") != "none"

    # Escape hangs up.
    a.page.keyboard.press("Escape")
    _wait_no_call(a, timeout=10000)
    assert a.js("() => window.softphone.callLog()[0].direction") == "out"


def test_microphone_selection_keeps_call_audio(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])

    devices = a.js("() => window.softphone.devices()")
    inputs = devices["audioinput"]
    assert inputs, devices
    assert all(d["deviceId"] and d["label"] for d in inputs), devices
    # Prefer a real entry over the browser's "default" alias, so the exact deviceId path is used.
    choice = next((d for d in inputs if d["deviceId"] not in ("default", "communications")), inputs[0])
    res = a.js("(id) => window.softphone.setDevice('audioinput', id)", choice["deviceId"])
    assert res == {"kind": "audioinput", "id": choice["deviceId"], "switched": 1}, res
    assert a.js("() => localStorage.getItem('softphone.microphone')") == choice["deviceId"]
    # The old track was stopped: the echo only carries the tone through the new one.
    assert (
        a.js(
            """() => window.softphone.peerConnection().getSenders()
                 .filter((s) => s.track && s.track.kind === 'audio').map((s) => s.track.readyState).join()"""
        )
        == "live"
    )
    wait_tone(a, TONES["1000"], timeout=10)
    if choice["deviceId"] != "default":
        a.page.wait_for_function(
            "(id) => document.getElementById('mic-select').value === id", arg=choice["deviceId"], timeout=5000
        )
    a.js("() => window.softphone.hangup()")
    _wait_no_call(a)

    # The next call opens the chosen microphone too.
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    wait_tone(a, TONES["1000"])
    a.js("() => window.softphone.hangup()")
    _wait_no_call(a)
