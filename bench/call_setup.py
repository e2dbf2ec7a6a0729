#!/usr/bin/env python3
"""Benchmark: call setup through nginx TLS to the echo test (issue #8).

One headless Chromium softphone (the same Phone class the integration tests
use, Debian's Chromium, a fake microphone playing a tone) places N calls to
600 over WSS. For each call:

  setup   INVITE sent -> 200 OK received (the softphone's own timings)
  audio   200 OK -> the caller's tone first heard back in the received track
          (WebAudio FFT polled every 10 ms inside the page)

Prints p50/p95/max and writes JSON to bench/results/. Needs `make lab` first.
Goal (issue #8): p50 <= 100 ms for each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, lab_info, machine, pct, write_result  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import TONES, Phone, write_tone  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

FIRST_AUDIO_JS = """
async ({freq, acceptedAt, timeoutMs}) => {
  const stream = window.softphone.remoteStream();
  if (!stream) return null;
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser();
  an.fftSize = 2048;
  an.smoothingTimeConstant = 0;
  src.connect(an);
  const buf = new Float32Array(an.frequencyBinCount);
  const bin = Math.round(freq / (ctx.sampleRate / an.fftSize));
  const end = performance.now() + timeoutMs;
  let heard = null;
  while (performance.now() < end) {
    an.getFloatFrequencyData(buf);
    const sorted = Array.from(buf.slice(2, 200)).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    if (Math.max(buf[bin - 1], buf[bin], buf[bin + 1]) - median > 20) { heard = performance.now(); break; }
    await new Promise(r => setTimeout(r, 10));
  }
  src.disconnect();
  await ctx.close();
  return heard === null ? null : heard - acceptedAt;
}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args(argv)
    info = lab_info()
    lab = {k: info[k] for k in ("container", "ip", "web_url", "passwords")}
    setup, audio = [], []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        tone = write_tone(Path(tmp) / "tone.wav", TONES["1000"])
        phone = Phone(pw, lab, "1000", tone)
        try:
            phone.login(lab["passwords"]["1000"])
            for _ in range(args.calls):
                phone.js("(t) => window.softphone.call(t)", "600")
                phone.wait_call("in-call")
                t = phone.js("() => window.softphone.timings()")
                setup.append(t["accepted"] - t["invite_sent"])
                probe = {"freq": TONES["1000"], "acceptedAt": t["accepted"], "timeoutMs": 5000}
                heard = phone.js(FIRST_AUDIO_JS, probe)
                if heard is not None:
                    audio.append(max(heard, 0.0))
                phone.js("() => window.softphone.hangup()")
                phone.page.wait_for_function(
                    "() => ['ended', 'idle'].includes(window.softphone.state().call)", timeout=10000
                )
                time.sleep(0.3)
        finally:
            phone.close()
    result = {
        "benchmark": "call_setup",
        "machine": machine(),
        "calls": args.calls,
        "setup_ms": {"p50": pct(setup, 50), "p95": pct(setup, 95), "max": max(setup), "mean": statistics.mean(setup)},
        "first_audio_ms": (
            {"p50": pct(audio, 50), "p95": pct(audio, 95), "max": max(audio), "heard": len(audio)} if audio else None
        ),
    }
    out = write_result("call_setup", result)
    print(f"call setup, {args.calls} calls to 600 through nginx TLS ({result['machine']})")
    print(f"  INVITE -> 200 OK   p50 {result['setup_ms']['p50']:.0f} ms  p95 {result['setup_ms']['p95']:.0f} ms"
          f"  max {result['setup_ms']['max']:.0f} ms   (goal p50 <= 100 ms)")  # fmt: skip
    if audio:
        fa = result["first_audio_ms"]
        print(f"  200 OK -> audio    p50 {fa['p50']:.0f} ms  p95 {fa['p95']:.0f} ms  max {fa['max']:.0f} ms"
              f"   heard in {fa['heard']}/{args.calls} calls (goal p50 <= 100 ms)")  # fmt: skip
    else:
        print("  200 OK -> audio    never heard")
    print(f"  JSON: {out.relative_to(ROOT)}")
    return 0 if audio and len(audio) == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
