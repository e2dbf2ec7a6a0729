"""The Genesys trunk against the SIP Server simulator (lab/simulator.py).

Browsers dial out through the trunk and hear their own tone echoed by the
simulator; the simulator calls route points and the mapped agent answers with
the CallUUID in the softphone and the CDR; OPTIONS in both directions; the
backup takes over when the primary is down or answers 503; blocked numbers
and non-trunk sources never reach anybody.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
import wave
from io import BytesIO

import pytest
from conftest import (
    ROOT,
    TONES,
    _health,
    ami_args,
    asterisk_cli,
    channel_codecs,
    host_file,
    lab_exec,
    run_module,
    run_playbook,
    transcoding_channels,
    wait_tone,
    wav_levels,
)

sys.path.insert(0, str(ROOT / "lab"))
import simulator  # noqa: E402

NET = os.environ.get("VOICEOPS_LAB_NET", "172.28.77")
SIM_IP = {"primary": f"{NET}.21", "backup": f"{NET}.22"}
CDR = "/var/log/voiceops/asterisk/cdr-custom/Master.csv"
# asterisk_recording_dir of the lab (the asterisk role's default).
MONITOR = "/var/lib/voiceops/asterisk/spool/monitor"


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def _network(lab) -> str:
    out = _docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", lab["container"])
    return out.stdout.split()[0]


def _trunk_state(inventory, tmp_path, endpoint: str) -> str:
    out = run_module(inventory, "pjsip_endpoint_info", ami_args(endpoints=[endpoint]), tmp_path)
    assert not out.get("failed"), out.get("msg")
    return out["endpoints"][0]["contacts"][0]["status"]


def _wait_trunk(inventory, tmp_path, endpoint: str, status: str, timeout: float = 60) -> float:
    t0 = time.monotonic()
    state = None
    while time.monotonic() - t0 < timeout:
        state = _trunk_state(inventory, tmp_path, endpoint)
        if state == status:
            return time.monotonic() - t0
        time.sleep(1)
    pytest.fail(f"trunk endpoint {endpoint} stayed {state}, never {status}")


@pytest.fixture
def sim(lab, inventory, tmp_path):
    """Both simulator instances running, answering with echo; restored afterwards."""

    def ensure() -> None:
        for role, ip in SIM_IP.items():
            state = _docker("inspect", "-f", "{{.State.Status}}", simulator.NAMES[role]).stdout.strip()
            if state != "running":
                if state:
                    simulator.resume(role)
                else:
                    simulator.start(role, _network(lab), ip, lab["ip"])
            simulator.set_mode(role, "echo")

    def ready() -> None:
        """Both directions in service: our qualify sees both SIP Servers, and both see the PBX.

        An earlier test may have recreated Asterisk or stopped a simulator just
        now; each side's OPTIONS poll takes some seconds to notice the other.
        """
        out = run_module(
            inventory,
            "pjsip_endpoint_info",
            ami_args(endpoints=["genesys", "genesys-backup"], wait_for="reachable", wait_timeout=60),
            tmp_path,
        )
        assert not out.get("failed"), out.get("msg")
        end = time.monotonic() + 30
        while not all((st := simulator.status(role))["in_service"] for role in SIM_IP):
            if time.monotonic() > end:
                pytest.fail(f"a SIP Server simulator does not see the PBX in service after 30 s: {st}")
            time.sleep(1)

    ensure()
    ready()
    yield simulator
    ensure()
    ready()


def _dial(phone, number: str) -> None:
    phone.js("(t) => window.softphone.call(t)", number)


def _hangup(phone) -> None:
    phone.js("() => window.softphone.hangup()")
    phone.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=10000)


def _cdr_lines(lab, needle: str, timeout: float = 10) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = [line for line in lab_exec(lab, "tail", "-n", "50", CDR).splitlines() if needle in line]
        if lines:
            return lines
        time.sleep(0.5)
    return []


def test_options_both_directions(sim, lab, inventory, tmp_path):
    # Our OPTIONS to both SIP Servers (qualify) ...
    for endpoint in ("genesys", "genesys-backup"):
        assert _trunk_state(inventory, tmp_path, endpoint) == "Reachable"
    for ip in SIM_IP.values():
        out = run_module(inventory, "sip_options_ping", {"host": ip, "port": 5060, "timeout": 5}, tmp_path)
        assert not out.get("failed") and out["status_code"] == 200, out
    # ... and theirs to us (oos-check): the PBX is in service on both.
    for role in SIM_IP:
        st = sim.status(role)
        print(f"\n{st['simulator']}: PBX {st['contact']} {st['state']} rtt {st['rtt_ms']} ms")
        assert st["in_service"], st
        assert st["contact"] == f"sip:{lab['ip']}:5060"


def test_outbound_call_normalised_and_echoed(sim, phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    before = len(sim.dialled("primary"))
    _dial(a, "902071234567")  # 9 + national number
    a.wait_call("in-call")
    level = wait_tone(a, TONES["1000"])
    print(f"\noutbound 9+02071234567: own tone back at {level:.1f} dB")
    # softphone_trunk_codec: the browser leg uses the trunk's PCMU, so Asterisk relays without transcoding.
    assert channel_codecs(lab, "1000") == ["ulaw"], channel_codecs(lab, "1000")
    assert channel_codecs(lab, "genesys") == ["ulaw"], channel_codecs(lab, "genesys")
    assert transcoding_channels(lab) == [], transcoding_channels(lab)
    got = sim.dialled("primary")[before:]
    assert got == ["+442071234567"], got
    _hangup(a)
    cdr = _cdr_lines(lab, "+442071234567")
    assert cdr and "genesys" in cdr[-1], cdr


def test_inbound_route_point_reaches_agent_with_call_uuid(sim, phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    call_uuid = sim.call("primary", "5000", uui="04a1b2c3d4")
    a.wait_call("incoming")
    data = a.js("() => window.softphone.state().callData")
    print(f"\nattached data shown to the agent: {data}")
    assert data.get("X-Genesys-CallUUID") == call_uuid
    assert "04a1b2c3d4" in data.get("User-to-User", "")
    shown = a.page.locator('#call-data dd[data-header="X-Genesys-CallUUID"]').inner_text()
    assert shown == call_uuid
    a.js("() => window.softphone.answer()")
    a.wait_call("in-call")
    # The customer side echoes: the agent's own tone back proves audio both ways.
    wait_tone(a, TONES["1000"])
    # The agent was offered only the trunk's codec: no transcoding on either leg.
    assert channel_codecs(lab, "1000") == ["ulaw"], channel_codecs(lab, "1000")
    assert channel_codecs(lab, "genesys") == ["ulaw"], channel_codecs(lab, "genesys")
    assert transcoding_channels(lab) == [], transcoding_channels(lab)
    _hangup(a)
    cdr = _cdr_lines(lab, call_uuid)
    assert cdr, f"CallUUID {call_uuid} not in the CDR"
    end = time.monotonic() + 10
    while not any(r["uuid"] == call_uuid for r in sim.inbound("primary")) and time.monotonic() < end:
        time.sleep(0.5)
    assert any(r["uuid"] == call_uuid and r["dialstatus"] == "ANSWER" for r in sim.inbound("primary"))


def test_unknown_dnis_gets_announcement_and_release(sim, lab):
    sim.call("primary", "5999")
    end = time.monotonic() + 20
    rows: list[dict] = []
    while time.monotonic() < end:
        rows = [r for r in sim.inbound("primary") if r["dnis"] == "5999"]
        if rows:
            break
        time.sleep(0.5)
    assert rows, "the simulator's call to 5999 never ended"
    print(f"\nunknown DNIS 5999 -> simulator saw {rows[-1]}")
    assert rows[-1]["dialstatus"] != "ANSWER" and rows[-1]["cause"] == "1"  # unallocated number
    log = lab_exec(lab, "grep", "-c", "unknown DNIS 5999", "/var/log/voiceops/asterisk/messages.log")
    assert int(log.strip() or 0) > 0


def _trunk_channels(lab) -> list[list[str]]:
    """The PBX's live trunk channels, `core show channels concise` fields (channel!context!exten!prio!state!app!...)."""
    rows = [line.split("!") for line in asterisk_cli(lab, "core show channels concise").splitlines()]
    return [r for r in rows if r[0].startswith("PJSIP/genesys-") and len(r) > 5]


def test_recorded_route_writes_a_wav_of_the_whole_call(sim, lab):
    # Lab inventory: DNIS 5600 -> internal 600 (echo test) with record: true. The customer
    # sends a steady tone; the PBX answers, starts recording and echoes the tone back.
    tone = TONES["1000"]  # a frequency wav_levels' reference bins keep clear of
    ani = "+15550156"
    pattern = re.compile(rf"\d{{8}}-\d{{6}}_{re.escape(ani)}_5600_[0-9.]+\.wav")
    day = time.strftime("%Y/%m/%d", time.gmtime())

    def recordings() -> set[str]:
        listing = lab_exec(lab, "sh", "-c", f"ls {MONITOR}/{day}/ 2>/dev/null")
        return {n for n in listing.split() if pattern.fullmatch(n)}

    before = recordings()
    call_uuid = sim.call("primary", "5600", ani=ani, tone=int(tone))
    end = time.monotonic() + 15
    while not [c for c in _trunk_channels(lab) if c[4] == "Up" and c[5] == "Echo"] and time.monotonic() < end:
        time.sleep(0.5)
    assert [c for c in _trunk_channels(lab) if c[4] == "Up" and c[5] == "Echo"], _trunk_channels(lab)
    # Recording from the PBX's answer: the file is there while the call is up ...
    end = time.monotonic() + 5
    while not recordings() - before and time.monotonic() < end:
        time.sleep(0.5)
    new = sorted(recordings() - before)
    assert new, f"no recording <date-time>_{ani}_5600_<call id>.wav in {MONITOR}/{day} during the call"
    t_answer = time.monotonic()
    time.sleep(8)
    # ... and to the hangup (the PBX hangs up, so the simulator logs the answered call).
    for chan in _trunk_channels(lab):
        asterisk_cli(lab, f"channel request hangup {chan[0]}")
    call_s = time.monotonic() - t_answer
    end = time.monotonic() + 15
    while not any(r["uuid"] == call_uuid for r in sim.inbound("primary")) and time.monotonic() < end:
        time.sleep(0.5)
    assert any(r["uuid"] == call_uuid and r["dialstatus"] == "ANSWER" for r in sim.inbound("primary"))
    assert sorted(recordings() - before) == new, "one recording per call, not one per leg"
    path = f"{MONITOR}/{day}/{new[0]}"
    seconds = 0.0
    end = time.monotonic() + 10  # MixMonitor finishes the WAV header when the channel is gone
    while time.monotonic() < end:
        data = host_file(lab, path)
        try:
            with wave.open(BytesIO(data)) as w:
                seconds = w.getnframes() / w.getframerate()
        except (wave.Error, EOFError, ValueError):
            seconds = 0.0
        if seconds >= call_s - 1.5:
            break
        time.sleep(0.5)
    print(f"\nDNIS 5600 recorded to {new[0]}: {seconds:.1f} s of a {call_s:.1f} s answered call")
    # From the answer (it started before we first saw it) to the hangup.
    assert call_s - 1.5 <= seconds < call_s + 6, (seconds, call_s)
    levels = wav_levels(data, [tone])
    assert levels[tone] > 20, levels


def test_blocked_number_never_reaches_the_trunk(sim, phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    before = {r: len(sim.dialled(r)) for r in SIM_IP}
    _dial(a, "900881123456")  # 9 + 00 881 ... -> +881123456, a blocked satellite range
    a.page.wait_for_function("() => ['ended', 'idle', 'failed'].includes(window.softphone.state().call)", timeout=20000)
    assert {r: len(sim.dialled(r)) for r in SIM_IP} == before
    assert _cdr_lines(lab, "blocked:+881123456")


def test_primary_503_fails_over_to_backup(sim, phones, lab):
    sim.set_mode("primary", "fail")
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    before = {r: len(sim.dialled(r)) for r in SIM_IP}
    t0 = time.monotonic()
    _dial(a, "9+15550001")
    a.wait_call("in-call")
    print(f"\n503 at the primary -> answered by the backup after {time.monotonic() - t0:.2f} s")
    wait_tone(a, TONES["1000"])
    assert sim.dialled("primary")[before["primary"] :] == ["+15550001"]
    assert sim.dialled("backup")[before["backup"] :] == ["+15550001"]
    _hangup(a)


def test_primary_down_trunk_unreachable_then_backup_carries_calls(sim, phones, lab, inventory, tmp_path):
    sim.stop("primary")
    took = _wait_trunk(inventory, tmp_path, "genesys", "Unreachable")
    print(f"\nprimary stopped: trunk shown Unreachable after {took:.1f} s")
    res, report = _health(inventory, tmp_path, "-e", json.dumps({"health_trunk_timeout": 3}))
    assert res.returncode != 0
    failed = {c["check"] for c in report["checks"] if not c["ok"]}
    assert failed == {"trunk reachable"}, failed

    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    before = len(sim.dialled("backup"))
    t0 = time.monotonic()
    _dial(a, "9+15550002")
    a.wait_call("in-call")
    print(f"call via the backup answered after {time.monotonic() - t0:.2f} s")
    wait_tone(a, TONES["1000"])
    assert sim.dialled("backup")[before:] == ["+15550002"]
    _hangup(a)


INVITE_PY = r"""
import socket, sys, uuid
target, ruri_user = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.settimeout(4)
local = s.getsockname()[1]
src = socket.gethostbyname(socket.gethostname()) if target != "127.0.0.1" else "127.0.0.1"
sdp = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n") % (src, src)
msg = (
    "INVITE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
    "From: <sip:+15550199@%s>;tag=%s\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:+15550199@%s:%d>\r\nX-Genesys-CallUUID: FRAUD\r\nContent-Type: application/sdp\r\n"
    "Content-Length: %d\r\n\r\n%s"
) % (ruri_user, target, src, local, uuid.uuid4().hex, src, uuid.uuid4().hex[:8], ruri_user, target,
     uuid.uuid4().hex, src, local, len(sdp), sdp)
s.sendto(msg.encode(), (target, 5060))
codes = []
try:
    while True:
        data = s.recv(65535).decode(errors="replace")
        codes.append(data.split(" ", 2)[1])
except socket.timeout:
    pass
print(" ".join(codes) or "none")
"""


def test_invite_from_a_non_trunk_address_is_rejected(sim, phones, lab):
    a = phones("1000")
    a.login(lab["passwords"]["1000"])
    before = {r: len(sim.dialled(r)) for r in SIM_IP}
    # From another container on the lab network: firewalld drops SIP from non-trunk sources.
    res = _docker(
        "run", "--rm", "--network", _network(lab), "--ip", f"{NET}.99", "--entrypoint", "python3",
        "voiceops/labhost:12", "-c", INVITE_PY, lab["ip"], "5000",
    )  # fmt: skip
    outside = res.stdout.strip()
    # From the host itself (loopback passes the firewall): Asterisk must refuse it too.
    inside = lab_exec(lab, "python3", "-c", INVITE_PY, "127.0.0.1", "5000").strip()
    print(f"\nINVITE to route point 5000 from {NET}.99: {outside}; from loopback: {inside}")
    assert res.returncode == 0, res.stderr
    assert outside == "none" or all(c.startswith(("401", "403")) for c in outside.split())
    assert inside.split() and all(c in ("401", "403") for c in inside.split()), inside
    time.sleep(1)
    assert a.js("() => window.softphone.state().call") not in ("incoming", "in-call")
    # Toll fraud: the same INVITE to 9 + a number never reaches SIP Server.
    lab_exec(lab, "python3", "-c", INVITE_PY, "127.0.0.1", "900442071234567")
    assert {r: len(sim.dialled(r)) for r in SIM_IP} == before


def _refused(phone, number: str) -> None:
    _dial(phone, number)
    phone.page.wait_for_function(
        "() => ['ended', 'idle', 'failed'].includes(window.softphone.state().call)", timeout=20000
    )


def test_outbound_classes_restrict_who_calls_what(sim, phones, lab):
    # Lab inventory: 1001 is class national (+44 only), 1002 class internal (no outside calls).
    b = phones("1001")
    b.login(lab["passwords"]["1001"])
    c = phones("1002")
    c.login(lab["passwords"]["1002"])
    before = {r: len(sim.dialled(r)) for r in SIM_IP}
    _refused(c, "902071234569")
    _refused(b, "9+15550004")
    assert {r: len(sim.dialled(r)) for r in SIM_IP} == before, "a refused call reached SIP Server"
    assert _cdr_lines(lab, "denied:+442071234569") and _cdr_lines(lab, "denied:+15550004")
    _dial(b, "902071234569")  # national: allowed for 1001
    b.wait_call("in-call")
    wait_tone(b, TONES["1001"])
    assert sim.dialled("primary")[before["primary"] :] == ["+442071234569"]
    _hangup(b)


def test_digest_mode_both_directions(sim, phones, lab, inventory, tmp_path):
    # Digest both ways: SIP Server authenticates to us (inbound), we to it (outbound).
    inbound_pw, outbound_pw = f"In{uuid.uuid4().hex}", f"Out{uuid.uuid4().hex}"
    digest = {"to_pbx": ("genesys", inbound_pw), "from_pbx": ("voiceops", outbound_pw)}
    extra = json.dumps(
        {
            "genesys_trunk_auth_mode": "digest",
            "genesys_trunk_inbound_password": inbound_pw,
            "genesys_trunk_outbound_password": outbound_pw,
        }
    )
    try:
        for role, ip in SIM_IP.items():
            sim.start(role, _network(lab), ip, lab["ip"], digest=digest)
        res = run_playbook(inventory, "site.yml", "--tags", "genesys_trunk", "-e", extra)
        assert res.returncode == 0, res.stdout[-3000:]
        assert inbound_pw not in res.stdout and outbound_pw not in res.stdout
        for endpoint in ("genesys", "genesys-backup"):
            _wait_trunk(inventory, tmp_path, endpoint, "Reachable")
        a = phones("1000")
        a.login(lab["passwords"]["1000"])
        before = len(sim.dialled("primary"))
        _dial(a, "9+15550005")
        a.wait_call("in-call")
        wait_tone(a, TONES["1000"])
        assert sim.dialled("primary")[before:] == ["+15550005"]
        _hangup(a)
        call_uuid = sim.call("primary", "5000")
        a.wait_call("incoming")
        assert a.js("() => window.softphone.state().callData")["X-Genesys-CallUUID"] == call_uuid
        a.js("() => window.softphone.answer()")
        a.wait_call("in-call")
        wait_tone(a, TONES["1000"])
        _hangup(a)
        security = "/var/log/voiceops/asterisk/security.log"
        auth_log = lab_exec(lab, "grep", "-c", 'SuccessfulAuth.*AccountID="genesys"', security)
        assert int(auth_log.strip() or 0) > 0, "SIP Server's INVITE was not digest-authenticated"
    finally:
        for role, ip in SIM_IP.items():
            sim.start(role, _network(lab), ip, lab["ip"])
        res = run_playbook(inventory, "site.yml", "--tags", "genesys_trunk")
        assert res.returncode == 0, res.stdout[-3000:]
