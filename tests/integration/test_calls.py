"""End-to-end calls from headless Chromium through nginx TLS to Asterisk.

Audio is asserted: each browser's fake microphone plays its own tone
(conftest.TONES) and a WebAudio FFT of the received track must find the
expected tone (and not find it when muted or on hold).
"""

from __future__ import annotations

import time

from conftest import (
    MIX_ABSENT_DB,
    TONES,
    asterisk_cli,
    channel_codecs,
    connect,
    lab_exec,
    transcoding_channels,
    wait_tone,
)


def _timings(phone) -> dict:
    t = phone.js("() => window.softphone.timings()")
    return {k: v for k, v in t.items() if v is not None}


def test_two_users_register(phones, lab):
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    out = asterisk_cli(lab, "pjsip show contacts")
    assert "1000/" in out and "1001/" in out


def test_wrong_password_is_reported_without_retry_storm(phones, lab):
    a = phones("1002")
    err = a.js(
        "([u, p]) => window.softphone.login(u, p).then(() => 'ok', (e) => String(e))", ["1002", "not-the-password"]
    )
    assert "Wrong extension or password" in err
    a.wait_reg("failed")
    status = a.page.inner_text("#reg-status")
    assert "Wrong extension or password" in status
    time.sleep(3)
    assert a.js("() => window.softphone.state().registration") == "failed"


def test_echo_test_returns_own_tone(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call")
    level = wait_tone(a, TONES["1000"])
    t = _timings(a)
    print(f"\necho 600: INVITE->200 OK {t['accepted'] - t['invite_sent']:.0f} ms, tone level {level:.1f} dB")
    a.js("() => window.softphone.hangup()")
    a.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=10000)


def test_agent_to_agent_call_mute_hold_dtmf(phones, lab):
    a = phones("1000")
    b = phones("1001")
    a.login(lab["passwords"]["1000"])
    b.login(lab["passwords"]["1001"])
    connect(a, b)
    t0 = time.monotonic()
    level_b = wait_tone(b, TONES["1000"])  # B hears A
    first_audio_ms = (time.monotonic() - t0) * 1000
    level_a = wait_tone(a, TONES["1001"])  # A hears B
    t = _timings(a)
    print(
        f"\nA->B: INVITE->200 OK {t['accepted'] - t['invite_sent']:.0f} ms, answer->tone heard at B"
        f" <= {first_audio_ms:.0f} ms; levels B<-A {level_b:.1f} dB, A<-B {level_a:.1f} dB"
    )
    # Between agents: Opus on both legs, no transcoding.
    assert channel_codecs(lab, "1000") == ["opus"] and channel_codecs(lab, "1001") == ["opus"], (
        channel_codecs(lab, "1000"),
        channel_codecs(lab, "1001"),
    )
    assert transcoding_channels(lab) == [], transcoding_channels(lab)
    # A does not hear its own tone from B's side (no echo path).
    # A receives B's loud tone: Opus artefacts around it put 10-20 dB at 700 Hz
    # (14 dB measured); an echo path would bring A's tone back at 70-100 dB.
    own = a.tone_levels([TONES["1000"]], seconds=3.0)[str(TONES["1000"])]
    print(f"A's own tone in A's received audio: {own:.1f} dB")
    assert own < MIX_ABSENT_DB, f"A hears its own tone at {own:.1f} dB"

    # Mute removes A's tone at B; unmute brings it back.
    a.js("() => window.softphone.mute(true)")
    wait_tone(b, TONES["1000"], present=False)
    a.js("() => window.softphone.mute(false)")
    wait_tone(b, TONES["1000"])

    # Hold stops A's tone at B (re-INVITE sendonly/inactive); resume restores it.
    a.js("() => window.softphone.hold(true)")
    a.wait_call("on-hold")
    wait_tone(b, TONES["1000"], present=False, timeout=10)
    a.js("() => window.softphone.hold(false)")
    a.wait_call("in-call")
    wait_tone(b, TONES["1000"], timeout=10)

    a.js("() => window.softphone.hangup()")
    b.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=10000)


def test_dtmf_reaches_asterisk(phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    a.js("(t) => window.softphone.call(t)", "602")
    a.wait_call("in-call")
    time.sleep(1.0)
    a.dtmf("4711#")
    deadline = time.monotonic() + 15
    log = ""
    while time.monotonic() < deadline:
        log = lab_exec(lab, "grep", "DTMF test received digits", "/var/log/voiceops/asterisk/messages.log")
        if "digits 4711 from 1000" in log:
            break
        time.sleep(0.5)
    assert "digits 4711 from 1000" in log, log[-500:]
    a.js("() => window.softphone.hangup()")


def test_relay_only_call_through_coturn(phones, lab):
    a = phones("1001", query="?ice=relay")
    a.login(lab["passwords"]["1001"])
    a.js("(t) => window.softphone.call(t)", "600")
    a.wait_call("in-call", timeout=30000)
    level = wait_tone(a, TONES["1001"], timeout=12)
    # The pair in use is the transport's selected pair; polled, the stats lag the media a little.
    local_type = a.page.evaluate(
        """async () => {
             const pc = window.softphone.peerConnection();
             for (let i = 0; i < 20; i += 1) {
               const st = await pc.getStats();
               const cands = {}; const pairs = {}; let selected = null;
               st.forEach((r) => {
                 if (r.type === 'local-candidate') cands[r.id] = r.candidateType;
                 if (r.type === 'candidate-pair') pairs[r.id] = r;
                 if (r.type === 'transport' && r.selectedCandidatePairId) selected = r.selectedCandidatePairId;
               });
               const pair = selected && pairs[selected];
               if (pair && cands[pair.localCandidateId]) return cands[pair.localCandidateId];
               await new Promise((resolve) => setTimeout(resolve, 250));
             }
             return 'no selected candidate pair';
           }"""
    )
    print(f"\nrelay-only echo: tone level {level:.1f} dB, local candidate type {local_type}")
    assert local_type == "relay"
    a.js("() => window.softphone.hangup()")
