"""Fixtures for browser calls against the deployed stack.

The target is the lab host container: LAB_HOST_CONTAINER (set by molecule)
or the one `make lab` made. Its address comes from `docker inspect`, the
agents' passwords from .lab/secrets.yml. Traffic goes only to that container.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import time
import wave
from io import BytesIO
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / ".lab"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TONES = {"1000": 700.0, "1001": 1300.0, "1002": 1900.0}
PRESENT_DB = 20.0  # tone this far above the median spectrum level counts as heard
ABSENT_DB = 10.0
# With another loud tone in the same audio, Opus puts artefacts up to ~30 dB above
# the median around it (a tone really heard measures 70-100 dB): there a tone
# counts as gone below MIX_ABSENT_DB and as heard above MIX_PRESENT_DB.
MIX_ABSENT_DB = 40.0
MIX_PRESENT_DB = 50.0


FAILURES = LAB / "verify-failures.txt"


def pytest_sessionstart(session):
    FAILURES.unlink(missing_ok=True)


def pytest_runtest_logreport(report):
    """Append each failed test and its one-line reason to .lab/verify-failures.txt.

    `make molecule` prints that file after molecule's own recap, so the
    failing test is on the last lines of a CI log that shows only its tail.
    """
    if not report.failed:
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    reason = (crash.message if crash else str(report.longrepr)).strip().splitlines() or ["?"]
    LAB.mkdir(exist_ok=True)
    with FAILURES.open("a") as f:
        f.write(f"{report.nodeid.split('/')[-1]} ({report.when}): {reason[0][:300]}\n")


def _container() -> str:
    return os.environ.get("LAB_HOST_CONTAINER", "webrtc-lab-host")


@pytest.fixture(scope="session")
def lab():
    name = _container()
    res = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.fail(f"lab host container {name} not found: run `make lab` (or molecule converge) first")
    ip = res.stdout.split()[0]
    secrets = json.loads((LAB / "secrets.yml").read_text())
    return {
        "container": name,
        "ip": ip,
        "web_url": f"https://{ip}/",
        "passwords": secrets["lab_agent_passwords"],
        "voicemail_pins": secrets.get("lab_voicemail_pins", {}),
        "conference_admin_pin": secrets.get("lab_conference_admin_pin"),
    }


def lab_exec(lab, *cmd: str) -> str:
    res = subprocess.run(["docker", "exec", lab["container"], *cmd], capture_output=True, text=True)
    return res.stdout


def asterisk_cli(lab, command: str) -> str:
    """An Asterisk CLI command in the lab host's Asterisk container."""
    return lab_exec(lab, "docker", "exec", "webrtc-asterisk", "asterisk", "-rx", command)


def channel_codecs(lab, endpoint: str) -> list[str]:
    """Codecs of the endpoint's live channels in Asterisk (`pjsip show channelstats`)."""
    out = asterisk_cli(lab, "pjsip show channelstats")
    codecs = []
    for line in out.splitlines():
        fields = line.split()
        for i, field in enumerate(fields[:-2]):
            if field.startswith(f"{endpoint}-") and i + 2 < len(fields):
                codecs.append(fields[i + 2])  # ChannelId UpTime Codec
    return codecs


def transcoding_channels(lab) -> list[str]:
    """Live channels Asterisk is transcoding on (`core show channel`: Read/WriteTranscode Yes)."""
    found = []
    for line in asterisk_cli(lab, "core show channels concise").splitlines():
        name = line.split("!", 1)[0]
        if name and "Transcode: Yes" in asterisk_cli(lab, f"core show channel {name}"):
            found.append(name)
    return found


def write_tone(path: Path, freq: float, seconds: float = 20.0, rate: int = 48000) -> Path:
    frames = bytearray()
    for i in range(int(seconds * rate)):
        frames += struct.pack("<h", int(0.5 * 32767 * math.sin(2 * math.pi * freq * i / rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


@pytest.fixture(scope="session")
def tone_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return {user: write_tone(d / f"tone-{user}.wav", f) for user, f in TONES.items()}


@pytest.fixture(scope="session")
def playwright_instance():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


class Phone:
    """One softphone page in its own Chromium process (one fake microphone each)."""

    def __init__(self, pw, lab, user: str, tone: Path, query: str = ""):
        self.user = user
        self.browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            ignore_default_args=["--mute-audio"],
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tone}",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        # The lab CA is not in Chromium's store: ignore certificate errors in tests only.
        self.context = self.browser.new_context(ignore_https_errors=True, permissions=["microphone"])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(lab["web_url"] + query)
        self.page.wait_for_function("() => window.softphone !== undefined", timeout=15000)

    def login(self, password: str, timeout: float = 15000) -> None:
        self.page.evaluate("([u, p]) => window.softphone.login(u, p)", [self.user, password])
        self.wait_reg("registered", timeout)

    def wait_reg(self, state: str, timeout: float = 15000) -> None:
        self.page.wait_for_function("(s) => window.softphone.state().registration === s", arg=state, timeout=timeout)

    def wait_call(self, state: str, timeout: float = 20000) -> None:
        self.page.wait_for_function("(s) => window.softphone.state().call === s", arg=state, timeout=timeout)

    def wait_media(self, timeout: float = 10000) -> None:
        """Until the call's media path is up: ICE/DTLS connected and the audio sender can insert DTMF.

        "in-call" means the 200 OK arrived; Chromium refuses RFC 2833 digits
        (canInsertDTMF false) until the transport has been writable.
        """
        self.page.wait_for_function(
            """() => {
              const pc = window.softphone.peerConnection();
              if (!pc || pc.connectionState !== 'connected') return false;
              const s = pc.getSenders().find((x) => x.track && x.track.kind === 'audio');
              return Boolean(s && s.dtmf && s.dtmf.canInsertDTMF);
            }""",
            timeout=timeout,
        )

    def dtmf(self, digits: str) -> None:
        """Send digits (RFC 2833) once the media path is up."""
        self.wait_media()
        self.js("(d) => window.softphone.sendDTMF(d)", digits)

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def tone_levels(self, freqs: list[float], seconds: float = 1.5) -> dict:
        """dB above the median spectrum level at each frequency of the received audio."""
        res = self.page.evaluate(ANALYSE_JS, {"freqs": freqs, "ms": int(seconds * 1000)})
        if isinstance(res, dict):
            return res
        return {str(f): level for f, level in zip(freqs, res)}

    def close(self) -> None:
        """Log out (BYE for every call, un-REGISTER) before the browser goes.

        Closing the browser alone leaves the calls up in Asterisk until RTP
        times out, so a test that failed mid-call would still be in the next
        test's conference or queue.
        """
        try:
            self.page.evaluate("() => window.softphone && window.softphone.logout()")
            self.page.wait_for_function("() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=3000)
            self.page.wait_for_timeout(300)  # the BYEs leave over the WebSocket
        except Exception:  # noqa: BLE001, S110 - best effort at teardown
            pass
        try:
            self.browser.close()
        except Exception:  # noqa: BLE001, S110 - best effort at teardown
            return


def drop_leftover_channels(lab, users, timeout: float = 5.0) -> list[str]:
    """Wait for Asterisk to drop the channels of these test softphones; hang up any still there.

    Only PJSIP/<user>- channels of the given users (the test's own phones).
    Returns the names that had to be hung up.
    """
    prefixes = tuple(f"PJSIP/{u}-" for u in users)

    def left() -> list[str]:
        out = asterisk_cli(lab, "core show channels concise")
        return [n for n in (line.split("!", 1)[0] for line in out.splitlines()) if n.startswith(prefixes)]

    deadline = time.monotonic() + timeout
    names = left()
    while names and time.monotonic() < deadline:
        time.sleep(0.5)
        names = left()
    for name in names:
        asterisk_cli(lab, f"channel request hangup {name}")
    return names


def connect(caller: Phone, callee: Phone) -> None:
    """caller dials callee, callee answers; returns when both are in the call."""
    caller.js("(t) => window.softphone.call(t)", callee.user)
    callee.wait_call("incoming")
    callee.js("() => window.softphone.answer()")
    caller.wait_call("in-call")
    callee.wait_call("in-call")


def wait_tone(
    phone,
    freq: float,
    present: bool = True,
    timeout: float = 8.0,
    present_db: float = PRESENT_DB,
    absent_db: float = ABSENT_DB,
) -> float:
    """Poll the received audio until the tone is (or is not) there; return the last level.

    The thresholds are dB above the median spectrum level; with another loud
    tone in the same audio, pass stricter ones (codec artefacts around it).
    """
    end = time.monotonic() + timeout
    level = None
    while time.monotonic() < end:
        levels = phone.tone_levels([freq], seconds=1.0)
        assert "error" not in levels, levels
        level = levels[str(freq)]
        if (level >= present_db) if present else (level < absent_db):
            return level
    state = "heard" if present else "gone"
    pytest.fail(f"{phone.user}: tone {freq:.0f} Hz never {state} (last level {level:.1f} dB)")


ANALYSE_JS = """
async ({freqs, ms}) => {
  const stream = window.softphone.remoteStream();
  if (!stream || stream.getAudioTracks().length === 0) return {error: 'no remote stream'};
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser();
  an.fftSize = 8192;
  an.smoothingTimeConstant = 0;
  src.connect(an);
  const buf = new Float32Array(an.frequencyBinCount);
  const acc = new Float32Array(an.frequencyBinCount);
  let n = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await new Promise(r => setTimeout(r, 100));
    an.getFloatFrequencyData(buf);
    for (let i = 0; i < buf.length; i++) acc[i] += Math.max(buf[i], -160);
    n++;
  }
  const binHz = ctx.sampleRate / an.fftSize;
  const avg = Array.from(acc, v => v / n);
  const upto = Math.floor(4000 / binHz);
  const sorted = avg.slice(2, upto).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const out = [];
  for (const f of freqs) {
    const b = Math.round(f / binHz);
    let peak = -1e9;
    for (let i = b - 2; i <= b + 2; i++) peak = Math.max(peak, avg[i]);
    out.push(peak - median);
  }
  src.disconnect();
  await ctx.close();
  return out;
}
"""


@pytest.fixture
def phones(playwright_instance, lab, tone_files):
    made: list[Phone] = []

    def make(user: str, query: str = "") -> Phone:
        phone = Phone(playwright_instance, lab, user, tone_files[user], query)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()
    if made:
        dropped = drop_leftover_channels(lab, {p.user for p in made})
        if dropped:
            print(f"teardown: hung up channels the phones left behind: {dropped}")


# Running the collection's modules and playbooks against the lab host.
BIN = Path(sys.executable).parent


def _env() -> dict:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_COLLECTIONS_PATH=str(LAB / "collections"),
    )


@pytest.fixture(scope="session")
def inventory(lab, tmp_path_factory):
    """The lab inventory, pointed at whichever lab host container this run uses."""
    d = tmp_path_factory.mktemp("inventory")
    (d / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "webrtc_pbx": {
                            "children": {
                                "asterisk_nodes": {"hosts": {"lab-pbx": None}},
                                "edge_nodes": {"hosts": {"lab-pbx": None}},
                            }
                        }
                    }
                }
            }
        )
    )
    (d / "host_vars").mkdir()
    (d / "host_vars" / "lab-pbx.yml").write_text(
        json.dumps(
            {
                "ansible_connection": "community.docker.docker",
                "ansible_host": lab["container"],
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        )
    )
    (d / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    return d


def run_playbook(inventory, playbook: str, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """playbooks/<playbook> against the lab host, with the lab secrets."""
    cmd = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / playbook),
        "-e",
        f"@{LAB / 'secrets.yml'}",
        *extra,
    ]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def run_module(inventory, module: str, args: dict, tmp_path: Path) -> dict:
    play = [
        {
            "hosts": "lab-pbx",
            "gather_facts": False,
            "tasks": [
                {"name": "run", f"voiceops.webrtc_pbx.{module}": args, "register": "out", "ignore_errors": True},
                {
                    "name": "dump",
                    "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(tmp_path / "out.json")},
                    "delegate_to": "localhost",
                },
            ],
        }
    ]
    pb = tmp_path / "play.yml"
    pb.write_text(json.dumps(play))
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(pb), "-e", f"@{LAB / 'secrets.yml'}"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (tmp_path / "out.json").exists(), res.stdout[-3000:] + res.stderr[-2000:]
    return json.loads((tmp_path / "out.json").read_text())


def ami_args(**extra) -> dict:
    return {"ami_username": "voiceops", "ami_secret": "{{ asterisk_ami_secret }}", **extra}


def _health(inventory, tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "health-report.json"
    res = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(ROOT / "playbooks" / "health.yml"),
            "-e",
            f"@{LAB / 'secrets.yml'}",
            "-e",
            "health_validate_certs=false",
            "-e",
            f"health_report_path={report}",
            *extra,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return res, data


VM_SPOOL = "/var/lib/voiceops/asterisk/spool/voicemail/default"


def host_file(lab, path: str) -> bytes:
    """A file's bytes from the lab host."""
    res = subprocess.run(["docker", "exec", lab["container"], "cat", path], capture_output=True, timeout=30)
    assert res.returncode == 0, f"{path}: {res.stderr.decode(errors='replace')}"
    return res.stdout


def finished_wav(lab, path: str, timeout: float = 10.0) -> bytes:
    """A WAV file's bytes once its writer has closed it.

    Asterisk's format_wav writes the RIFF and data sizes only when the file is
    closed (MixMonitor after the channel or the toggle stops): until then the
    header says 0 frames.
    """
    end = time.monotonic() + timeout
    while True:
        data = host_file(lab, path)
        riff = struct.unpack("<I", data[4:8])[0] if len(data) >= 44 else -1
        if riff == len(data) - 8 or time.monotonic() > end:
            assert riff == len(data) - 8, f"{path}: still being written after {timeout:.0f} s ({len(data)} bytes)"
            return data
        time.sleep(0.5)


def wav_levels(data: bytes, freqs: list[float]) -> dict[float, float]:
    """dB of each frequency above the median of a spread of other frequencies (Goertzel), for a WAV file."""
    with wave.open(BytesIO(data)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, (w.getsampwidth(), w.getnchannels())
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)

    def power(f: float) -> float:
        coeff = 2 * math.cos(2 * math.pi * f / rate)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + coeff * s1 - s2, s1
        return s1 * s1 + s2 * s2 - coeff * s1 * s2

    refs = [f for f in range(350, 3500, 150) if all(abs(f - t) > 120 for t in TONES.values())]
    ref = sorted(power(f) for f in refs)[len(refs) // 2] or 1.0
    return {f: 10 * math.log10(max(power(f), 1e-9) / ref) for f in freqs}


def clear_mailbox(lab, ext: str) -> None:
    lab_exec(lab, "sh", "-c", f"rm -rf {VM_SPOOL}/{ext}/INBOX {VM_SPOOL}/{ext}/Old")


def leave_voicemail(caller, callee, record_s: float = 8.0) -> None:
    """caller rings callee, who does not answer: VoiceMail answers after the ring timeout (20 s in the lab)."""
    caller.js("(t) => window.softphone.call(t)", callee.user)
    callee.wait_call("incoming")
    caller.wait_call("in-call", timeout=45000)  # VoiceMail answered
    # "The person at extension ... is unavailable ..." takes 13 s before the beep.
    time.sleep(14 + record_s)
    caller.js("() => window.softphone.hangup()")
    callee.page.wait_for_function("() => window.softphone.state().call !== 'incoming'", timeout=15000)
