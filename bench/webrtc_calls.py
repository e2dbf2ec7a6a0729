#!/usr/bin/env python3
"""Benchmark: concurrent WebRTC browser <-> trunk calls, PCMU and Opus on the browser leg (issue #8).

Headless Chromium (Debian's /usr/bin/chromium driven by Playwright, the flags
of tests/integration/conftest.py's Phone) opens one softphone page per call,
each with its own JsSIP UA, WSS connection through nginx TLS and DTLS-SRTP
call. --pages-per-browser pages (default 10) share one Chromium process, one
browser context and one renderer (--context-per-page: a context and renderer
each, ~25 % more CPU); each Chromium has a fake microphone playing a tone of
its own (500/700/900/1100 Hz). SIPp (bench/trunk_calls.py's sipp_peer) plays
the trunk's SIP Server: it answers and echoes the RTP back.

The browsers cost ~10 % of a core per call (Chromium's WebRTC, audio and
network service processes): on a 2-core machine that also runs the lab, about
10 calls keep real time; beyond that the machine is saturated, the pages fall
behind (late packets, concealment, SIP session refreshes missed: Asterisk ends
such calls after ~60-75 s) and the figures say so.

  page (ICE, DTLS-SRTP) --> Asterisk --> trunk "genesys" (G.711 RTP) --> SIPp echo

Each step of --calls runs two phases, with the range agents of bench/profile.yml:

  pcmu  agents 30000.. (codecs [ulaw]): PCMU on both legs, no transcoding
  opus  agents 31000.. (codecs [opus, ulaw]): Opus on the browser leg, Asterisk
        transcodes Opus <-> G.711 for the trunk. The pages offer Opus alone:
        offered Opus and PCMU, Asterisk answers a call bound for the G.711
        trunk PCMU first (its bridged peer's codec), and the browser sends PCMU

Each page dials 9 + 0201234NNNN (a UK national number -> +44201234NNNN, allowed
for outbound class default). For each phase:

  idle      Asterisk's CPU (its container cgroup) with the pages registered and
            no calls, --idle s before the calls and again after them
  calls     established = pages in a call at the start AND the end of the window
  CPU       Asterisk's CPU over --window s with every call up, minus idle,
            divided by the calls: % of one core per call; 200 / that = calls
            a 2-core host could carry (Asterisk alone, nothing else on it).
            Read in 1 s slices: the headline is the median slice with calls
            minus the median idle slice, which a short burst from someone else
            on the shared lab does not move (the plain means are kept next to
            it); a measurement whose slices are not steady is taken again
            (--retries). Also scaled to the nominal packet rate (50/s each way
            on each leg), for a machine too busy to keep the browsers on time
  media     each page's RTCPeerConnection.getStats() at both ends of the window:
            received packets, lost packets, jitter (inbound-rtp: the whole loop
            browser -> Asterisk -> SIPp -> Asterisk -> browser), concealment,
            codec (mimeType), DTLS state, SRTP cipher, candidate pair; and
            Asterisk's view, `pjsip show channelstats` (codec, loss, jitter of
            the browser legs and of the trunk legs)
  audio     every page listens to its received audio (WebAudio FFT) for its
            Chromium's tone: heard = tone >= 20 dB above the spectrum's median
  machine   whole-machine busy % and the CPU of all Chromium processes: the
            load generator shares the machine's cores with the lab

Needs `make lab` converged with bench/profile.yml (range agents 30000/31000,
trunk primary = SIPp at <lab net>.23); not at the same time as another
benchmark that starts SIPp (bench/trunk_calls.py): they share its container.
Sends traffic only to the lab. Prints figures, writes JSON to bench/results/,
exits non-zero when a phase established fewer calls than asked.

  .venv/bin/python bench/webrtc_calls.py                 # 20 calls, both phases
  .venv/bin/python bench/webrtc_calls.py --calls 10,20   # two steps
  .venv/bin/python bench/webrtc_calls.py --calls 4 --window 10 --phases pcmu
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ASTERISK,
    ROOT,
    BenchError,
    ContainerSampler,
    lab_exec,
    lab_info,
    machine,
    sh,
    write_result,
)
from trunk_calls import SIPP, machine_cpu, sipp_peer  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import ANALYSE_JS, CHROMIUM, PRESENT_DB, write_tone  # noqa: E402

sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from agents import derive_password  # noqa: E402

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover
    sys.exit("bench: needs playwright (.venv/bin/python, requirements.txt)")

# first extension; the browser leg's codec: name, getStats mimeType, Asterisk's name; goals (issue #8)
PHASES = {
    "pcmu": {
        "first": 30000,
        "codec": "PCMU",
        "mime": "audio/pcmu",
        "asterisk": "ulaw",
        "goal_pct": 0.6,
        "goal_calls": 300,
    },
    "opus": {
        "first": 31000,
        "codec": "Opus",
        "mime": "audio/opus",
        "asterisk": "opus",
        "goal_pct": 1.2,
        "goal_calls": 150,
    },
}
RANGE_COUNT = 40  # agents per range in bench/profile.yml
# One Chromium per --pages-per-browser pages (Chromium's audio service opens at
# most 16 input streams: the 17th getUserMedia fails "in use"), each with a
# fake microphone of its own tone, so a page that heard another browser's
# audio would not pass.
TONES_HZ = [500.0, 700.0, 900.0, 1100.0]
MAX_PAGES_PER_BROWSER = 15
NUMBER = "90201234{:04d}"  # 9 + UK national number (0NXXXXXXXXX -> +44...)

# As conftest.Phone, plus: never throttle pages that are not in front. run()
# adds --renderer-process-limit=1 unless --context-per-page: with one browser
# context per Chromium and phase, all its pages share one renderer (~25 % less
# CPU per call than a renderer per page: shared WebRTC threads and audio mixer).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]

STATS_JS = """
async () => {
  const pc = window.softphone.peerConnection();
  if (!pc) return null;
  const rep = await pc.getStats();
  const all = new Map();
  rep.forEach((s) => all.set(s.id, s));
  const out = {connectionState: pc.connectionState, in: null, out: null, remote: null, transport: null};
  for (const s of all.values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      const c = all.get(s.codecId) || {};
      out.in = {
        packetsReceived: s.packetsReceived, packetsLost: s.packetsLost, jitter: s.jitter,
        packetsDiscarded: s.packetsDiscarded ?? null,
        concealedSamples: s.concealedSamples ?? null, totalSamplesReceived: s.totalSamplesReceived ?? null,
        jitterBufferDelay: s.jitterBufferDelay ?? null, jitterBufferEmittedCount: s.jitterBufferEmittedCount ?? null,
        codec: c.mimeType || null, clockRate: c.clockRate || null, t: s.timestamp,
      };
    } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
      const c = all.get(s.codecId) || {};
      out.out = {packetsSent: s.packetsSent, codec: c.mimeType || null};
    } else if (s.type === 'remote-inbound-rtp' && s.kind === 'audio') {
      out.remote = {packetsLost: s.packetsLost, jitter: s.jitter, roundTripTime: s.roundTripTime ?? null};
    } else if (s.type === 'transport') {
      const pair = all.get(s.selectedCandidatePairId) || {};
      const local = all.get(pair.localCandidateId) || {};
      const remote = all.get(pair.remoteCandidateId) || {};
      out.transport = {
        dtlsState: s.dtlsState || null, srtpCipher: s.srtpCipher || null, tlsVersion: s.tlsVersion || null,
        local: local.candidateType || null, remote: remote.candidateType || null, protocol: local.protocol || null,
      };
    }
  }
  return out;
}
"""

# Opus phase only: the page offers Opus (and telephone-event) alone. Offered
# Opus and PCMU, Asterisk answers a call to the G.711 trunk with PCMU first (the
# bridged peer's codec, no transcoding), so the browser leg would be PCMU.
OPUS_ONLY_JS = """
(() => {
  const createOffer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    const caps = RTCRtpReceiver.getCapabilities('audio');
    const want = caps ? caps.codecs.filter((c) => /^audio\\/(opus|telephone-event)$/i.test(c.mimeType)) : [];
    for (const t of this.getTransceivers()) {
      if (want.length && !t.stopped && t.receiver.track && t.receiver.track.kind === 'audio') {
        t.setCodecPreferences(want);
      }
    }
    return createOffer.apply(this, args);
  };
})();
"""

# Every page: keep the last call's end (the softphone:ended event) for the report.
ENDED_JS = "window.addEventListener('softphone:ended', (e) => { window.__benchEnded = e.detail; });"

CALL_STATE_JS = "() => ['in-call', 'ended', 'idle'].includes(window.softphone.state().call)"


class PageError(RuntimeError):
    pass


# -- the load generator's own CPU ------------------------------------------------


def tree_cpu_s(marker: str) -> float:
    """CPU seconds (utime + stime) of every Chromium whose command line holds marker: all their processes."""
    tck = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = collections.defaultdict(list)
    cpu: dict[int, float] = {}
    roots = []
    markers: set[bytes] = set()
    cmds: list[tuple[int, bytes]] = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(p.name)
        children[int(fields[1])].append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tck
        if marker.encode() in cmd:
            roots.append(pid)
            # Chromium's children (zygote, renderers, utility) share its profile directory.
            profile = re.search(rb"--user-data-dir=([^\x00]+)", cmd)
            if profile:
                markers.add(profile.group(0))
        cmds.append((pid, cmd))
    roots += [pid for pid, cmd in cmds if any(m in cmd for m in markers)]
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return sum(cpu.get(pid, 0.0) for pid in seen)


# -- Asterisk's view ---------------------------------------------------------------


def asterisk(cmd: str) -> str:
    return lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", cmd, check=False)


def sipp_id() -> str:
    """The SIPp peer container's id: another benchmark starting its own peer replaces it (same name and address)."""
    return sh("docker", "inspect", "-f", "{{.Id}}", SIPP, check=False).strip()


def active_calls() -> int | None:
    m = re.search(r"(\d+) active call", asterisk("core show channels count"))
    return int(m.group(1)) if m else None


def _count(token: str) -> int:
    return int(float(token[:-1]) * 1000) if token.endswith("K") else int(token)


def parse_channelstats(text: str) -> dict:
    """{channel: {codec, rx, lost, jitter_ms}} from `pjsip show channelstats`."""
    chans = {}
    for line in text.splitlines():
        # BridgeId ChannelId UpTime Codec | Receive: Count Lost Pct Jitter | Transmit: Count Lost Pct Jitter | RTT
        tok = line.split()
        at = next((i for i, t in enumerate(tok) if re.fullmatch(r"\d\d:\d\d:\d\d", t)), None)
        if not at or len(tok) < at + 6:
            continue
        try:
            chans[tok[at - 1]] = {
                "bridge": tok[at - 2] if at >= 2 else None,
                "codec": tok[at + 1],
                "rx": _count(tok[at + 2]),
                "lost": _count(tok[at + 3]),
                "jitter_ms": float(tok[at + 5]) * 1000,  # printed in seconds
            }
        except ValueError:
            continue
    return chans


def leg_kind(chan: str, chans: dict, first: int) -> str:
    """browser (this phase's agents), trunk (bridged with one of them) or other (someone else's call)."""

    def mine(name: str) -> bool:
        return name[:5].isdigit() and first <= int(name[:5]) < first + RANGE_COUNT

    if mine(chan):
        return "browser"
    bridges = {c["bridge"] for name, c in chans.items() if mine(name)}
    return "trunk" if chan.startswith("genesys") and chans[chan]["bridge"] in bridges else "other"


def foreign_legs(first: int) -> int:
    """Media channels in Asterisk that are not this benchmark's calls."""
    chans = parse_channelstats(asterisk("pjsip show channelstats"))
    return sum(1 for chan in chans if leg_kind(chan, chans, first) == "other")


def channel_legs(start: dict, end: dict, first: int, seconds: float) -> dict:
    """Asterisk's view per leg kind (browser legs of the phase's agents, trunk legs, others) over the window."""
    legs: dict[str, dict] = {}
    for chan, c in end.items():
        kind = leg_kind(chan, end, first)
        b = start.get(chan)
        if b is None:  # came up during the window: not counted
            continue
        leg = legs.setdefault(kind, {"legs": 0, "codecs": collections.Counter(), "rx": 0, "lost": 0, "jitter": []})
        leg["legs"] += 1
        leg["codecs"][c["codec"]] += 1
        leg["rx"] += c["rx"] - b["rx"]
        leg["lost"] += max(0, c["lost"] - b["lost"])
        leg["jitter"].append(c["jitter_ms"])
    out = {}
    for kind, leg in legs.items():
        j = leg.pop("jitter")
        out[kind] = {
            **leg,
            "codecs": dict(leg["codecs"]),
            "rx_packets_per_s": leg["rx"] / seconds,
            "loss_pct": 100.0 * leg["lost"] / (leg["rx"] + leg["lost"]) if leg["rx"] + leg["lost"] else None,
            "jitter_ms_mean": sum(j) / len(j),
            "jitter_ms_max": max(j),
        }
    return out


# -- pages ---------------------------------------------------------------------------


async def open_page(context, web_url: str, tries: int = 2):
    """A softphone page; one retry (a busy machine can stall a load)."""
    for attempt in range(tries):
        page = await context.new_page()
        try:
            await page.goto(web_url, timeout=60000)
            await page.wait_for_function("() => window.softphone !== undefined", timeout=60000)
            await page.evaluate("() => window.softphone.ready()")
            return page
        except Exception:
            await page.close()
            if attempt == tries - 1:
                raise
    raise PageError("unreachable")


async def login(page, ext: str, password: str) -> None:
    err = await page.evaluate(
        "async ([u, p]) => { try { await window.softphone.login(u, p); return null; }"
        " catch (e) { return e.message; } }",
        [ext, password],
    )
    if err:
        raise PageError(f"{ext}: login failed: {err}")


async def place_call(page, target: str, timeout_ms: int) -> dict:
    """Dial target; wait until the call is up or over. Returns the page's state (and error)."""
    err = await page.evaluate(
        "async (t) => { try { await window.softphone.call(t); return null; } catch (e) { return e.message; } }", target
    )
    if not err:
        try:
            await page.wait_for_function(CALL_STATE_JS, timeout=timeout_ms, polling=250)
        except Exception as exc:  # noqa: BLE001 - reported per call
            err = f"no answer within {timeout_ms / 1000:.0f} s ({type(exc).__name__})"
    state = await page.evaluate(
        "() => ({...window.softphone.state(), error: window.softphone.lastError(), ended: window.__benchEnded})"
    )
    if err:
        state["error"] = err
    return state


async def page_stats(page) -> dict | None:
    try:
        return await page.evaluate(STATS_JS)
    except Exception as exc:  # noqa: BLE001 - a closed page counts as no stats
        return {"error": str(exc)}


async def tone_level(page, hz: float, seconds: float) -> float | None:
    try:
        res = await page.evaluate(ANALYSE_JS, {"freqs": [hz], "ms": int(seconds * 1000)})
    except Exception:  # noqa: BLE001
        return None
    if isinstance(res, list) and res:
        return float(res[0])
    return None


async def in_call(page) -> bool | dict:
    """True while in the call, else how it ended (the softphone:ended event's detail)."""
    try:
        return await page.evaluate(
            "() => window.softphone.state().call === 'in-call' || (window.__benchEnded ?? {call: 'not in call'})"
        )
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}


async def hang_up(page) -> None:
    try:
        await page.evaluate("() => window.softphone.hangup()")
        await page.wait_for_function(
            "() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=10000, polling=250
        )
    except Exception:  # noqa: BLE001 - best effort; Asterisk's rtp_timeout ends what is left
        return


async def close_page(page) -> None:
    try:
        await page.evaluate("() => window.softphone.logout()")
        await asyncio.sleep(0.2)
        await page.close()
    except Exception:  # noqa: BLE001
        pass


async def bounded(limit: int, coros) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(coro):
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


# -- figures ---------------------------------------------------------------------------


def _cpu_s(sample: dict) -> float:
    return sample["containers"][ASTERISK]["cgroup_cpu_s"]


async def cpu_slices(sampler: ContainerSampler, seconds: float) -> dict:
    """Asterisk's CPU (cgroup) over `seconds` in 1 s slices, in cores: mean over all, median slice, each slice."""
    first = prev = sampler.sample(pss=False)
    rates = []
    end = time.monotonic() + seconds
    while time.monotonic() < end - 0.05:
        await asyncio.sleep(min(1.0, end - time.monotonic()))
        cur = sampler.sample(pss=False)
        rates.append((_cpu_s(cur) - _cpu_s(prev)) / (cur["t"] - prev["t"]))
        prev = cur
    return {
        "seconds": prev["t"] - first["t"],
        "mean": (_cpu_s(prev) - _cpu_s(first)) / (prev["t"] - first["t"]),
        "median": statistics.median(rates),
        "slices": [round(r, 5) for r in rates],
    }


def steady(m: dict) -> bool:
    """No outside burst in a measurement: its 1 s slices (less the highest and the lowest) within 50 % of
    their median, plus 3 % of a core."""
    cut = sorted(m["slices"])
    if len(cut) >= 5:
        cut = cut[1:-1]
    return cut[-1] - cut[0] <= 0.5 * m["median"] + 0.03


async def steady_slices(sampler: ContainerSampler, seconds: float, retries: int, label: str, first: int) -> dict:
    """cpu_slices, measured again (up to `retries` times) while someone else shows: a burst in the
    slices, or calls that are not ours in Asterisk at the start or the end."""
    for attempt in range(retries + 1):
        before = foreign_legs(first)
        m = await cpu_slices(sampler, seconds)
        m["foreign_legs"] = max(before, foreign_legs(first))
        m["attempt"] = attempt + 1
        m["steady"] = steady(m) and not m["foreign_legs"]
        if m["steady"]:
            return m
        print(f"  {label}: not steady (Asterisk 1 s slices {min(m['slices']):.3f}-{max(m['slices']):.3f} cores,"
              f" {m['foreign_legs']} media legs of other calls){'; again' if attempt < retries else ''}",
              flush=True)  # fmt: skip
    return m


def cpu_per_call(before: dict, busy: dict, after: dict, calls: int) -> dict:
    """% of one core per call: (busy - idle) / calls.

    Headline: median 1 s slice with the calls minus the median idle slice (idle
    before and after the calls), robust against short bursts from others on the
    shared lab (a converge, a registration storm); the mean-based figure is kept
    next to it. They agree when nothing else ran.
    """
    idle_median = statistics.median(before["slices"] + after["slices"])
    idle_mean = (before["mean"] * before["seconds"] + after["mean"] * after["seconds"]) / (
        before["seconds"] + after["seconds"]
    )
    per_call = 100 * (busy["median"] - idle_median) / calls if calls else None
    per_call_mean = 100 * (busy["mean"] - idle_mean) / calls if calls else None
    return {
        "cpu_steady": before["steady"] and busy["steady"] and after["steady"],
        "idle_before": before,
        "idle_after": after,
        "idle_asterisk_pct_core": 100 * idle_median,
        "idle_asterisk_pct_core_mean": 100 * idle_mean,
        "asterisk_pct_core": 100 * busy["median"],
        "asterisk_pct_core_mean": 100 * busy["mean"],
        "per_call_pct_core": per_call,
        "per_call_pct_core_mean": per_call_mean,
        "calls_per_2core_host": 200 / per_call if per_call and per_call > 0 else None,
        "calls_per_2core_host_mean": 200 / per_call_mean if per_call_mean and per_call_mean > 0 else None,
    }


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"n": len(values), "mean": sum(values) / len(values), "max": max(values), "min": min(values)}


def media_figures(before: list, after: list, window: float) -> dict:
    """Loss, jitter, packet rate, concealment and codecs over the window, from both getStats snapshots."""
    loss, jitter, pps, conceal, rjit, rtt = [], [], [], [], [], []
    lost_total = expected_total = 0
    codecs_in: collections.Counter = collections.Counter()
    codecs_out: collections.Counter = collections.Counter()
    dtls: collections.Counter = collections.Counter()
    ciphers: collections.Counter = collections.Counter()
    pairs: collections.Counter = collections.Counter()
    for b, a in zip(before, after):
        if not (isinstance(b, dict) and isinstance(a, dict) and b.get("in") and a.get("in")):
            continue
        bi, ai = b["in"], a["in"]
        rx = ai["packetsReceived"] - bi["packetsReceived"]
        dt = (ai["t"] - bi["t"]) / 1000 if ai.get("t") and bi.get("t") else window
        lost = max(0, ai["packetsLost"] - bi["packetsLost"])
        lost_total += lost
        expected_total += rx + lost
        if rx + lost:
            loss.append(100.0 * lost / (rx + lost))
        pps.append(rx / dt)
        jitter.append(1000.0 * ai["jitter"])
        if ai.get("totalSamplesReceived") is not None and bi.get("totalSamplesReceived") is not None:
            samples = ai["totalSamplesReceived"] - bi["totalSamplesReceived"]
            if samples > 0:
                conceal.append(100.0 * (ai["concealedSamples"] - bi["concealedSamples"]) / samples)
        codecs_in[ai["codec"]] += 1
        if a.get("out"):
            codecs_out[a["out"]["codec"]] += 1
        if a.get("remote"):
            if a["remote"].get("jitter") is not None:
                rjit.append(1000.0 * a["remote"]["jitter"])
            if a["remote"].get("roundTripTime") is not None:
                rtt.append(1000.0 * a["remote"]["roundTripTime"])
        t = a.get("transport") or {}
        dtls[t.get("dtlsState")] += 1
        ciphers[t.get("srtpCipher")] += 1
        pairs[f"{t.get('local')}/{t.get('remote')}/{t.get('protocol')}"] += 1
    return {
        "pages_with_stats": len(pps),
        "loss_pct": summary(loss),
        "loss_pct_overall": 100.0 * lost_total / expected_total if expected_total else None,
        "jitter_ms": summary(jitter),
        "rx_packets_per_s": summary(pps),
        "concealed_pct": summary(conceal),
        "asterisk_rtcp_jitter_ms": summary(rjit),
        "rtt_ms": summary(rtt),
        "codec_received": dict(codecs_in),
        "codec_sent": dict(codecs_out),
        "dtls_state": {str(k): v for k, v in dtls.items()},
        "srtp_cipher": {str(k): v for k, v in ciphers.items()},
        "candidate_pair": dict(pairs),
    }


# -- one phase -------------------------------------------------------------------------


async def run_phase(
    name: str, n: int, browsers: list, lab: dict, secret: str, args, sampler: ContainerSampler, marker: str
) -> dict:
    spec = PHASES[name]
    exts = [str(spec["first"] + i) for i in range(n)]
    res: dict = {
        "phase": name,
        "codec": spec["codec"],
        "agents": f"{exts[0]}-{exts[-1]}",
        "requested": n,
    }
    print(f"[{name}] opening {n} pages in {len(browsers)} Chromium, logging in {res['agents']}", flush=True)
    t0 = time.monotonic()
    contexts = []
    for i in range(n if args.context_per_page else len(browsers)):
        context = await browsers[i % len(browsers)][0].new_context(ignore_https_errors=True, permissions=["microphone"])
        await context.add_init_script(ENDED_JS)
        if name == "opus":
            await context.add_init_script(OPUS_ONLY_JS)
        contexts.append(context)
    # Page i in browser i % browsers; it listens for that browser's tone.
    where = [(contexts[i % len(contexts)], browsers[i % len(browsers)][1]) for i in range(n)]
    opened = await bounded(args.parallel, [open_page(c, lab["web_url"]) for c, _ in where])
    pages = [o for o in opened if not isinstance(o, BaseException)]
    failures = [f"open: {o}" for o in opened if isinstance(o, BaseException)]
    try:
        loaded = [(o, e, hz) for o, e, (_, hz) in zip(opened, exts, where) if not isinstance(o, BaseException)]
        logins = await bounded(args.parallel, [login(p, e, derive_password(secret, e)) for p, e, _ in loaded])
        failures += [str(r) for r in logins if isinstance(r, BaseException)]
        live = [(hz, p, e) for (p, e, hz), r in zip(loaded, logins) if not isinstance(r, BaseException)]
        res["registered"] = len(live)
        res["setup_s"] = {"pages_and_logins": time.monotonic() - t0}

        peer0 = sipp_id()
        # Idle: pages registered, no calls.
        busy_calls = active_calls()
        res["active_calls_before"] = busy_calls
        if busy_calls:
            print(f"[{name}] warning: {busy_calls} call(s) already up in Asterisk (someone else's?)", flush=True)
        await asyncio.sleep(2)
        idle_before = await steady_slices(sampler, args.idle, args.retries, f"[{name}] idle before", spec["first"])

        # Calls, started --stagger s apart.
        print(f"[{name}] placing {len(live)} calls ({args.stagger:.2f} s apart)", flush=True)
        t1 = time.monotonic()
        tasks = []
        for i, (_, page, _) in enumerate(live):
            tasks.append(asyncio.create_task(place_call(page, NUMBER.format(i), int(args.answer_timeout * 1000))))
            await asyncio.sleep(args.stagger)
        states = await asyncio.gather(*tasks, return_exceptions=True)
        res["setup_s"]["calls"] = time.monotonic() - t1
        up, tones = [], []
        for (hz, page, ext), st in zip(live, states):
            if isinstance(st, dict) and st.get("call") == "in-call":
                up.append((page, ext))
                tones.append(hz)
            else:
                failures.append(f"{ext}: call not up: {st}")
        res["answered"] = len(up)
        print(f"[{name}] {len(up)}/{n} calls up; settling {args.settle:.0f} s", flush=True)
        await asyncio.sleep(args.settle)

        # The window: CPU and media over --window s with every call up.
        st_before = await asyncio.gather(*(page_stats(p) for p, _ in up))
        chans0 = parse_channelstats(asterisk("pjsip show channelstats"))
        tc0 = time.monotonic()
        m0 = machine_cpu()
        c0, tw0 = tree_cpu_s(marker), time.monotonic()
        busy = await steady_slices(sampler, args.window, args.retries, f"[{name}] window", spec["first"])
        m1 = machine_cpu()
        c1, tw1 = tree_cpu_s(marker), time.monotonic()
        st_after = await asyncio.gather(*(page_stats(p) for p, _ in up))
        ast_stats = asterisk("pjsip show channelstats")
        tc1 = time.monotonic()
        ast_calls = active_calls()
        if sipp_id() != peer0:
            failures.insert(
                0, "the SIPp peer was replaced during the phase (another benchmark using it?): media invalid"
            )
            res["peer_replaced"] = True
        still = await asyncio.gather(*(in_call(p) for p, _ in up))
        elapsed = busy["seconds"]
        established = sum(1 for st in still if st is True)
        for (_, ext), st in zip(up, still):
            if st is not True:
                failures.append(f"{ext}: call dropped during the window: {st}")
        res.update(
            {
                "established": established,
                "asterisk_active_calls": ast_calls,
                "window_s": elapsed,
                "asterisk_cpu_window": busy,
                "machine_busy_pct": 100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
                "chromium_pct_core": 100 * (c1 - c0) / (tw1 - tw0),
                "media": media_figures(st_before, st_after, elapsed),
                "asterisk_channelstats_text": ast_stats.splitlines()[:120],
                "asterisk_channelstats": channel_legs(chans0, parse_channelstats(ast_stats), spec["first"], tc1 - tc0),
            }
        )

        # Audio: does each page hear its own tone back?
        levels = await bounded(args.parallel, [tone_level(p, hz, args.listen) for (p, _), hz in zip(up, tones)])
        heard = [lv for lv in levels if isinstance(lv, float) and lv >= PRESENT_DB]
        res["audio"] = {
            "checked": len(levels),
            "heard": len(heard),
            "threshold_db": PRESENT_DB,
            "level_db": summary([lv for lv in levels if isinstance(lv, float)]),
        }
        for (_, ext), lv in zip(up, levels):
            if not (isinstance(lv, float) and lv >= PRESENT_DB):
                failures.append(f"{ext}: tone not heard back (level {lv})")
        # Codec: what the browsers received and sent, and Asterisk's browser legs.
        media, legs = res["media"], res["asterisk_channelstats"].get("browser", {})
        res["codec_ok"] = (
            bool(media["codec_received"])
            and all((k or "").lower() == spec["mime"] for k in [*media["codec_received"], *media["codec_sent"]])
            and set(legs.get("codecs", {})) == {spec["asterisk"]}
        )

        print(f"[{name}] hanging up; idle again for {args.idle:.0f} s", flush=True)
        await asyncio.gather(*(hang_up(p) for p, _ in up))
        await asyncio.sleep(2)
        idle_after = await steady_slices(sampler, args.idle, args.retries, f"[{name}] idle after", spec["first"])
        res.update(cpu_per_call(idle_before, busy, idle_after, established))
        # The packets Asterisk relayed against the nominal 50/s each way: on a
        # starved machine the browsers send less, and the cost per call reads low.
        legs = [res["asterisk_channelstats"].get(k, {}) for k in ("browser", "trunk")]
        rx = sum(leg.get("rx_packets_per_s", 0.0) for leg in legs)
        count = sum(leg.get("legs", 0) for leg in legs)  # legs up for the whole window
        res["asterisk_rx_packets_per_s"] = rx
        res["packet_rate_vs_nominal"] = rx / (count * 50) if count else None
        ratio, per_call = res["packet_rate_vs_nominal"], res["per_call_pct_core"]
        res["per_call_pct_core_at_nominal_rate"] = per_call / ratio if per_call is not None and ratio else None
    finally:
        await asyncio.gather(*(close_page(p) for p in pages), return_exceptions=True)
        await asyncio.gather(*(c.close() for c in contexts), return_exceptions=True)
    res["failures"] = failures[:50]
    res["ok"] = res.get("established", 0) >= n and not res.get("peer_replaced")
    # The names bench/run_all.py's summary reads.
    res["calls_established"] = res.get("established", 0)
    res["capacity_2core"] = res.get("calls_per_2core_host")
    return res


async def run(args, lab: dict, secret: str) -> list[dict]:
    results = []
    count = -(-max(args.calls) // args.pages_per_browser)
    with tempfile.TemporaryDirectory(prefix="webrtc-calls-") as tmp:
        async with async_playwright() as pw:
            browsers = []
            try:
                for i in range(count):
                    hz = TONES_HZ[i % len(TONES_HZ)]
                    tone = write_tone(Path(tmp) / f"tone-{i}-{hz:.0f}.wav", hz)
                    browser = await pw.chromium.launch(
                        executable_path=CHROMIUM,
                        headless=True,
                        ignore_default_args=["--mute-audio"],
                        args=[
                            *CHROMIUM_ARGS,
                            *([] if args.context_per_page else ["--renderer-process-limit=1"]),
                            f"--use-file-for-fake-audio-capture={tone}",
                            *args.chromium_arg,
                        ],
                    )
                    browsers.append((browser, hz))
                with sipp_peer(lab), ContainerSampler([ASTERISK]) as sampler:
                    steps = [(n, name) for n in args.calls for name in args.phases]
                    for i, (n, name) in enumerate(steps):
                        if i:
                            await asyncio.sleep(args.pause)
                        try:
                            results.append(await run_phase(name, n, browsers, lab, secret, args, sampler, tmp))
                        except Exception as exc:  # noqa: BLE001 - the other steps still run and report
                            first = PHASES[name]["first"]
                            results.append(
                                {
                                    "phase": name,
                                    "codec": PHASES[name]["codec"],
                                    "requested": n,
                                    "agents": f"{first}-{first + n - 1}",
                                    "failures": [f"{type(exc).__name__}: {exc}"],
                                    "ok": False,
                                }
                            )
            finally:
                for browser, _ in browsers:
                    await browser.close()
    return results


def fmt(value, spec: str = ".2f", unit: str = "") -> str:
    return "?" if value is None else f"{value:{spec}}{unit}"


def report(phase: dict) -> None:
    spec = PHASES[phase["phase"]]
    m = phase.get("media") or {}
    loss, jit = m.get("loss_pct") or {}, m.get("jitter_ms") or {}
    ast = (phase.get("asterisk_channelstats") or {}).get("browser", {})
    trunk = (phase.get("asterisk_channelstats") or {}).get("trunk", {})
    print(f"  {phase['phase'].upper()} on the browser leg, {phase['requested']} calls (agents {phase['agents']}):")
    print(f"    calls established      {phase.get('established', 0)}/{phase['requested']}"
          f"   (Asterisk saw {phase.get('asterisk_active_calls')} active calls)")  # fmt: skip
    audio = phase.get("audio") or {}
    print(f"    audio verified         {audio.get('heard', 0)}/{audio.get('checked', 0)} pages hear their tone back"
          f" (level mean {fmt((audio.get('level_db') or {}).get('mean'), '.0f', ' dB')})")  # fmt: skip
    print(f"    codec                  browser getStats {m.get('codec_received')} sent {m.get('codec_sent')};"
          f" Asterisk browser legs {ast.get('codecs')}, trunk legs {trunk.get('codecs')}"
          f" -> {'OK' if phase.get('codec_ok') else 'NOT ' + spec['codec']}")  # fmt: skip
    print(f"    DTLS-SRTP              dtls {m.get('dtls_state')} srtp {m.get('srtp_cipher')}"
          f" pair {m.get('candidate_pair')}")  # fmt: skip
    print(f"    Asterisk CPU           {fmt(phase.get('asterisk_pct_core'), '.1f')} % of a core with the calls, "
          f"idle {fmt(phase.get('idle_asterisk_pct_core'), '.1f')} %  (median 1 s slices; means "
          f"{fmt(phase.get('asterisk_pct_core_mean'), '.1f')} % /"
          f" {fmt(phase.get('idle_asterisk_pct_core_mean'), '.1f')} %)")  # fmt: skip
    print(f"    per call               {fmt(phase.get('per_call_pct_core'), '.3f')} % of a core"
          f" (goal <= {spec['goal_pct']} %) -> {fmt(phase.get('calls_per_2core_host'), '.0f')} calls"
          f" per 2-core host (goal >= {spec['goal_calls']});"
          f" from means {fmt(phase.get('per_call_pct_core_mean'), '.3f')} %"
          f" -> {fmt(phase.get('calls_per_2core_host_mean'), '.0f')}")  # fmt: skip
    print(f"    packet rate            Asterisk received {fmt(phase.get('asterisk_rx_packets_per_s'), '.0f')} pkt/s ="
          f" {fmt(100 * (phase.get('packet_rate_vs_nominal') or 0), '.0f')} % of nominal (50/s each way per leg);"
          f" per call at nominal {fmt(phase.get('per_call_pct_core_at_nominal_rate'), '.3f', ' %')}")  # fmt: skip
    print(f"    loss (browser rx)      mean {fmt(loss.get('mean'), '.3f', ' %')}"
          f"  max {fmt(loss.get('max'), '.3f', ' %')}"
          f"  overall {fmt(m.get('loss_pct_overall'), '.3f', ' %')};"
          f" Asterisk rx browser legs {fmt(ast.get('loss_pct'), '.3f', ' %')},"
          f" trunk legs {fmt(trunk.get('loss_pct'), '.3f', ' %')}")  # fmt: skip
    print(f"    jitter (browser rx)    mean {fmt(jit.get('mean'), '.1f', ' ms')}"
          f"  max {fmt(jit.get('max'), '.1f', ' ms')};"
          f" Asterisk rx browser legs mean {fmt(ast.get('jitter_ms_mean'), '.1f', ' ms')}"
          f" max {fmt(ast.get('jitter_ms_max'), '.1f', ' ms')}")  # fmt: skip
    print(f"    packets/s per page     mean {fmt((m.get('rx_packets_per_s') or {}).get('mean'), '.1f')}"
          f"  min {fmt((m.get('rx_packets_per_s') or {}).get('min'), '.1f')};"
          f" concealed mean {fmt((m.get('concealed_pct') or {}).get('mean'), '.2f', ' %')}")  # fmt: skip
    print(f"    machine                {fmt(phase.get('machine_busy_pct'), '.0f')} % busy (all cores);"
          f" Chromium (the load generator) {fmt(phase.get('chromium_pct_core'), '.0f')} % of a core")  # fmt: skip
    if not phase.get("cpu_steady", True):
        print(
            "    ! Asterisk's CPU was not steady or others' calls were up (see JSON): the per-call figure is doubtful"
        )
    for f in phase.get("failures", [])[:5]:
        print(f"    ! {f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--calls", default="20", help=f"concurrent calls per phase, or steps such as 10,20 (1-{RANGE_COUNT})"
    )
    ap.add_argument("--phases", default="pcmu,opus", help="phases in order (default %(default)s)")
    ap.add_argument("--window", type=float, default=20.0, help="seconds measured with every call up")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle baseline before the calls")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after the last answer before measuring")
    ap.add_argument("--stagger", type=float, default=0.25, help="seconds between call starts")
    ap.add_argument("--listen", type=float, default=1.5, help="seconds each page listens for its tone")
    ap.add_argument("--parallel", type=int, default=8, help="pages opened / logged in at once")
    ap.add_argument("--answer-timeout", type=float, default=30.0, help="seconds a call may take to be answered")
    ap.add_argument("--pause", type=float, default=5.0, help="seconds between phases")
    ap.add_argument(
        "--pages-per-browser", type=int, default=10, help=f"pages per Chromium process (1-{MAX_PAGES_PER_BROWSER})"
    )
    ap.add_argument(
        "--context-per-page",
        action="store_true",
        help="a browser context (and renderer process) per page instead of one per Chromium",
    )
    ap.add_argument("--retries", type=int, default=1, help="measure again when Asterisk's CPU is not steady")
    ap.add_argument("--chromium-arg", action="append", default=[], help="extra Chromium switch (repeatable)")
    args = ap.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in args.phases if p not in PHASES]
    if unknown or not args.phases:
        ap.error(f"--phases: one or more of {', '.join(PHASES)}")
    if not 1 <= args.pages_per_browser <= MAX_PAGES_PER_BROWSER:
        ap.error(f"--pages-per-browser must be 1-{MAX_PAGES_PER_BROWSER}")
    try:
        args.calls = [int(c) for c in args.calls.split(",")]
    except ValueError:
        ap.error("--calls: numbers separated by commas")
    if not all(1 <= c <= RANGE_COUNT for c in args.calls):
        ap.error(f"--calls must be 1-{RANGE_COUNT} (agents per range in bench/profile.yml)")

    lab = lab_info()
    secret = lab["secrets"].get("asterisk_agent_range_secret")
    if not secret:
        raise BenchError("asterisk_agent_range_secret missing from .lab/secrets.yml")
    if sh("docker", "ps", "-aq", "--filter", f"name=^{SIPP}$", check=False).strip():
        raise BenchError(f"container {SIPP} exists: another trunk benchmark is running (or left it); wait or remove it")
    steps = ",".join(map(str, args.calls))
    print(f"WebRTC calls browser <-> trunk, {steps} concurrent per phase ({machine()})", flush=True)
    phases = asyncio.run(run(args, lab, secret))

    result = {
        "benchmark": "webrtc_calls",
        "machine": machine(),
        "calls": args.calls,
        "window_s": args.window,
        "idle_s": args.idle,
        "load_generator": f"headless Chromium (Playwright), one page per call, {args.pages_per_browser} pages"
        " per Chromium process, on the same machine as the lab: it shares the cores with Asterisk",
        "pages_per_browser": args.pages_per_browser,
        "path": "Chromium page -(WSS via nginx, DTLS-SRTP)-> Asterisk -(G.711 RTP, trunk genesys)-> SIPp UAS echo",
        "phases": phases,
        "goals": {
            k: {"per_call_pct_core": v["goal_pct"], "calls_per_2core_host": v["goal_calls"]} for k, v in PHASES.items()
        },
    }
    out = write_result("webrtc_calls", result)
    print(f"WebRTC calls, browser <-> trunk ({machine()})")
    for phase in phases:
        report(phase)
    print("  The browsers run on the same cores as the lab: machine busy % includes them.")
    print(f"  JSON: {out.relative_to(ROOT)}")
    return 0 if all(p["ok"] for p in phases) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench: {exc}")
