#!/usr/bin/env python3
"""Benchmark: G.711 trunk calls relayed by the lab's Asterisk, stepped up (issue #8).

SIPp (container webrtc-bench-sipp at <lab net>.23, image voiceops/sipp, built
on demand by lab/images/build.py) plays the Genesys SIP Server on both sides
of a relayed call, so that only the PBX's cost is on the path:

  SIPp UAC (.23:5070) --INVITE 5990..--> Asterisk (trunk endpoint "genesys",
  identified by address) --Dial PJSIP/...@genesys--> SIPp UAS (.23:5060, the
  trunk's primary contact in bench/profile.yml), which answers and echoes the
  RTP it receives back to its sender (-rtp_echo).

The UAC streams a PCMU tone on every call (rtp_stream, 50 packets/s). Both
legs use the trunk's own endpoint settings (G.711, direct_media=no,
rtp_symmetric), so Asterisk relays RTP between them in a native RTP bridge. A
drop-in dialplan file (extensions.d/zz-bench.conf, removed afterwards) routes
59xx from the trunk back out of it: that hairpin exists only for this
benchmark (the product refuses trunk-to-trunk calls).

For each concurrency step N: N calls are set up at --rate calls/s and all held
together for --window seconds; Asterisk's CPU (its container cgroup) is read
at the start and end of that window, the machine's total CPU too, and
`pjsip show channelstats` at the end gives received packets, lost packets and
jitter on every leg. Cost per call = (Asterisk CPU in the window - idle CPU) /
N, in % of one core. A step is clean when SIPp reports no failed call and RTP
loss is below 0.5 %. Needs `make lab` converged with bench/profile.yml
(bench/run_all.py does that).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, BenchError, ContainerSampler, lab_exec, lab_info, machine, sh, write_result  # noqa: E402

SIPP = "webrtc-bench-sipp"
SIPP_IMAGE = "voiceops/sipp:3.6"
DROPIN = "/etc/voiceops/asterisk/extensions.d/zz-bench.conf"
ASTERISK = "webrtc-asterisk"

DIALPLAN = """; bench/trunk_calls.py (removed when it ends): trunk -> trunk hairpin.
[from-genesys-engage]
exten => _599X.,1,Dial(PJSIP/${EXTEN}@genesys,30)
 same => n,Hangup()
"""

UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voiceops trunk call">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:bench@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:bench@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec rtp_stream="/bench/tone.ulaw,-1,0"/></action></nop>
  <pause milliseconds="HOLD_MS"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:bench@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def ulaw_tone(seconds: float = 2.0, freq: float = 1000.0) -> bytes:
    """A G.711 mu-law tone (-10 dBFS), raw bytes, 8 kHz."""
    import math  # noqa: PLC0415

    def encode(sample: int) -> int:
        bias, clip = 0x84, 32635
        sign = 0x80 if sample < 0 else 0
        sample = min(abs(sample), clip) + bias
        exponent = max(0, sample.bit_length() - 8)
        mantissa = (sample >> (exponent + 3)) & 0x0F
        return ~(sign | (exponent << 4) | mantissa) & 0xFF

    n = int(8000 * seconds)
    return bytes(encode(int(10362 * math.sin(2 * math.pi * freq * i / 8000))) for i in range(n))


def ensure_sipp(lab: dict, peer: str) -> str:
    """Start the SIPp container; return the address it sends from.

    peer "network": its own address <lab net>.23 on the lab network (the path
    a real SIP Server's packets take: veth and bridge). peer "loopback": in the
    lab host's network namespace, so that every packet goes over loopback as
    in the bare-Asterisk figures of issue #8.
    """
    if peer == "loopback":
        ip = lab["ip"]
        network = ["--network", f"container:{lab['container']}"]
    else:
        ip = f"{lab['ip'].rsplit('.', 1)[0]}.23"
        network = ["--network", "webrtc-lab", "--ip", ip]
    build = subprocess.run(
        [sys.executable, str(ROOT / "lab" / "images" / "build.py"), "sipp"], capture_output=True, text=True
    )
    if build.returncode != 0:
        raise BenchError(f"building the SIPp image failed: {build.stderr.strip()[-400:]}")
    if sh("docker", "ps", "-aq", "--filter", f"name=^{SIPP}$", check=False).strip():
        raise BenchError(f"container {SIPP} exists: another benchmark uses it (if stale: docker rm -f {SIPP})")
    limits = ["--ulimit", "nofile=16384:16384"]
    sh("docker", "run", "-d", "--name", SIPP, *network, *limits, SIPP_IMAGE, "sleep", "infinity")
    sh("docker", "exec", SIPP, "mkdir", "-p", "/bench")
    subprocess.run(["docker", "exec", "-i", SIPP, "sh", "-c", "cat > /bench/tone.ulaw"], input=ulaw_tone(), check=True)
    return ip


@contextlib.contextmanager
def sipp_peer(lab: dict, peer: str = "network", uas_port: int = 5060):
    """SIPp as the trunk's primary SIP Server: answers OPTIONS and calls, echoes RTP.

    Yields SIPp's address; removes the container at exit. The lab must be
    converged with bench/profile.yml (trunk primary = <lab net>.23), or for
    peer "loopback" with genesys_trunk_primary = the lab host's address and
    genesys_trunk_port = uas_port.
    """
    sipp_ip = ensure_sipp(lab, peer)
    try:
        uas = ["docker", "exec", "-d", SIPP, "sipp", "-sn", "uas", "-i", sipp_ip, "-p", str(uas_port), "-mi", sipp_ip,
               "-mp", "6000", "-rtp_echo", "-aa", "-nostdin", "-max_socket", "4096", "-bg"]  # fmt: skip
        sh(*uas)
        for _ in range(30):
            state = lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "pjsip show endpoint genesys", check=False)
            if re.search(r"Contact:\s+genesys/\S+\s+\S+\s+Avail", state):
                break
            time.sleep(1)
        else:
            raise BenchError(
                "the trunk never saw SIPp's UAS as available: is the lab converged with bench/profile.yml?"
            )
        yield sipp_ip
    finally:
        sh("docker", "rm", "-f", SIPP, check=False)


def parse_channelstats(text: str) -> dict:
    """Totals from `pjsip show channelstats`: rx count/lost, tx count, max/mean jitter (ms)."""
    rx = lost = 0
    jitters = []
    for line in text.splitlines():
        # BridgeId ChannelId UpTime Codec | Receive: Count Lost Pct Jitter | Transmit: Count Lost Pct Jitter | RTT
        m = re.search(r"\S+\s+\d\d:\d\d:\d\d\s+\S+\s+(\d+)\s+(\d+)\s+\d+\s+([\d.]+)\s+\d+\s+\d+\s+\d+\s+[\d.]+", line)
        if not m:
            continue
        rx += int(m.group(1))
        lost += int(m.group(2))
        jitters.append(float(m.group(3)) * 1000)  # seconds
    return {
        "legs": len(jitters),
        "rx_packets": rx,
        "rx_lost": lost,
        "loss_pct": 100.0 * lost / (rx + lost) if rx + lost else None,
        "jitter_ms_max": max(jitters) if jitters else None,
        "jitter_ms_mean": sum(jitters) / len(jitters) if jitters else None,
    }


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def run_step(sipp_ip: str, pbx_ip: str, n: int, rate: int, window: float, sampler: ContainerSampler,
             idle_rate: float) -> dict:  # fmt: skip
    ramp = n / rate
    hold_ms = int((ramp + 3 + window + 2) * 1000)
    scenario = UAC_XML.replace("HOLD_MS", str(hold_ms))
    subprocess.run(
        ["docker", "exec", "-i", SIPP, "sh", "-c", "cat > /bench/uac.xml"], input=scenario.encode(), check=True
    )
    cmd = ["docker", "exec", SIPP, "sipp", "-sf", "/bench/uac.xml", "-i", sipp_ip, "-p", "5070", "-mi", sipp_ip,
           "-s", f"5990{n}", "-l", str(n), "-m", str(n), "-r", str(rate), "-max_socket", "4096",
           "-rtp_threadtasks", "50", "-nostdin", "-timeout", str(int(hold_ms / 1000 + ramp + 60)),
           "-trace_stat", "-stf", f"/bench/uac-{n}.csv", "-fd", "1", f"{pbx_ip}:5060"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(ramp + 3)
    first = sampler.sample(pss=False)
    busy0, total0 = machine_cpu()
    time.sleep(window)
    last = sampler.sample(pss=False)
    busy1, total1 = machine_cpu()
    stats_text = lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "pjsip show channelstats", check=False)
    channels = lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "core show channels count", check=False)
    err = proc.communicate(timeout=hold_ms / 1000 + 120)[1]
    csv = sh(
        "docker", "exec", SIPP, "sh", "-c", f"tail -n 1 /bench/uac-{n}.csv; head -n 1 /bench/uac-{n}.csv", check=False
    )
    lines = csv.strip().splitlines()
    counters = dict(zip(lines[1].split(";"), lines[0].split(";"))) if len(lines) == 2 else {}
    a0 = first["containers"][ASTERISK]["cgroup_cpu_s"]
    a1 = last["containers"][ASTERISK]["cgroup_cpu_s"]
    elapsed = last["t"] - first["t"]
    cpu_rate = (a1 - a0) / elapsed
    active = re.search(r"(\d+) active call", channels)
    media = parse_channelstats(stats_text)
    failed = int(counters.get("FailedCall(C)", "-1") or -1)
    ok = int(counters.get("SuccessfulCall(C)", "0") or 0)
    return {
        "concurrent": n,
        "active_calls_seen": int(active.group(1)) if active else None,
        "sipp_exit": proc.returncode,
        "sipp_successful": ok,
        "sipp_failed": failed,
        "sipp_stderr": err.strip()[-300:],
        "asterisk_cpu_pct_core": 100 * cpu_rate,
        "per_call_pct_core": 100 * (cpu_rate - idle_rate) / n,
        "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0),
        "media": media,
        "clean": proc.returncode == 0 and failed == 0 and media["loss_pct"] is not None and media["loss_pct"] < 0.5,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="50,100,200,300,400", help="concurrency steps (default %(default)s)")
    ap.add_argument("--rate", type=int, default=40, help="new calls per second while ramping")
    ap.add_argument("--window", type=float, default=20.0, help="seconds all calls of a step are measured together")
    ap.add_argument("--stop-after-dirty", type=int, default=1, help="stop after this many unclean steps")
    ap.add_argument(
        "--peer",
        choices=["network", "loopback"],
        default="network",
        help="where SIPp runs: its own address on the lab network (default), or in the lab host's "
        "network namespace so that SIP and RTP go over loopback (converge first with "
        "-e genesys_trunk_primary=<lab host address> -e genesys_trunk_port=<--uas-port>)",
    )
    ap.add_argument("--uas-port", type=int, default=None, help="SIPp UAS port (default 5060; 5090 for loopback)")
    args = ap.parse_args(argv)
    uas_port = args.uas_port or (5090 if args.peer == "loopback" else 5060)
    lab = lab_info()
    steps = [int(s) for s in args.steps.split(",")]
    results = []
    try:
        with sipp_peer(lab, args.peer, uas_port) as sipp_ip, ContainerSampler([ASTERISK]) as sampler:
            lab_exec("sh", "-c", f"cat > {DROPIN} && chmod 0644 {DROPIN}", stdin=DIALPLAN)
            lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "dialplan reload")
            s0 = sampler.sample(pss=False)
            time.sleep(10)
            s1 = sampler.sample(pss=False)
            idle = (s1["containers"][ASTERISK]["cgroup_cpu_s"] - s0["containers"][ASTERISK]["cgroup_cpu_s"]) / (
                s1["t"] - s0["t"]
            )
            dirty = 0
            for n in steps:
                step = run_step(sipp_ip, lab["ip"], n, args.rate, args.window, sampler, idle)
                results.append(step)
                m = step["media"]
                loss = f"{m['loss_pct']:.3f} %" if m["loss_pct"] is not None else "?"
                jitter = f"{m['jitter_ms_max']:.1f} ms" if m["jitter_ms_max"] is not None else "?"
                print(f"  {n:4d} calls: {'clean' if step['clean'] else 'NOT clean'}  sipp ok {step['sipp_successful']} "
                      f"failed {step['sipp_failed']}  Asterisk {step['asterisk_cpu_pct_core']:.1f} % of a core, "
                      f"{step['per_call_pct_core']:.3f} %/call  loss {loss}  max jitter {jitter}  "
                      f"machine busy {step['machine_busy_pct']:.0f} %", flush=True)  # fmt: skip
                if not step["clean"]:
                    dirty += 1
                    if dirty >= args.stop_after_dirty:
                        break
                time.sleep(5)
    finally:
        lab_exec("rm", "-f", DROPIN, check=False)
        lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "dialplan reload", check=False)
    clean = [r for r in results if r["clean"]]
    best = max(clean, key=lambda r: r["concurrent"]) if clean else None
    result = {
        "benchmark": "trunk_calls",
        "idle_asterisk_pct_core": 100 * idle,
        "peer": args.peer,
        "rate": args.rate,
        "window_s": args.window,
        "steps": results,
        "max_clean_concurrent": best["concurrent"] if best else 0,
        "per_call_pct_core_at_max": best["per_call_pct_core"] if best else None,
        "goals": {"per_call_pct_core": 0.41, "clean_concurrent": 300},
    }
    out = write_result("trunk_calls", result)
    print(f"trunk calls (G.711, relayed, SIPp UAC -> Asterisk -> SIPp echo; {machine()})")
    if best:
        print(f"  most clean concurrent calls: {best['concurrent']} (goal >= 300); "
              f"Asterisk {best['per_call_pct_core']:.3f} % of a core per call (goal <= 0.41 %)")  # fmt: skip
    else:
        print("  no clean step")
    print(f"  JSON: {out.relative_to(ROOT)}")
    return 0 if best else 1


if __name__ == "__main__":
    sys.exit(main())
