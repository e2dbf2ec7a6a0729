"""The lab's hold music (lab/lab.py, .lab/lab-hold.wav): same bytes every time, the notes the queue test listens for."""

from __future__ import annotations

import importlib.util
import io
import math
import struct
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_tool", ROOT / "lab" / "lab.py")
lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab)

C5, E5, G5 = 523.25, 659.25, 783.99


def _samples(data: bytes) -> tuple[int, list[int]]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        raw = w.readframes(w.getnframes())
        return w.getframerate(), list(struct.unpack(f"<{len(raw) // 2}h", raw))


def _power(samples: list[int], freq: float, rate: int) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_hold_music_is_the_same_8_khz_loop_every_time():
    data = lab.hold_music_wav()
    assert data == lab.hold_music_wav()
    rate, samples = _samples(data)
    assert rate == 8000 and len(samples) == 8 * 8000
    assert 0.2 * 32767 < max(abs(x) for x in samples) < 0.5 * 32767  # soft, never clipped
    assert max(abs(x) for x in samples[:8] + samples[-8:]) < 200  # fades: the loop restarts without a click


def test_hold_music_plays_c_e_g_e_and_no_ringback():
    rate, samples = _samples(lab.hold_music_wav())
    note = int(0.4 * rate)
    heard = []
    for k in range(len(samples) // note):
        seg = samples[k * note : (k + 1) * note]
        power = {f: _power(seg, f, rate) for f in (C5, E5, G5, 440.0, 480.0)}
        top = max(power, key=power.get)
        assert power[top] > 1000 * max(power[440.0], power[480.0]), (k, power)  # ringback bins 30 dB down
        heard.append(top)
    assert heard == [C5, E5, G5, E5] * 5


def test_ensure_hold_music_rewrites_only_a_missing_or_changed_file(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "LAB", tmp_path)
    monkeypatch.setattr(lab, "HOLD_MUSIC", tmp_path / "lab-hold.wav")
    path = lab.ensure_hold_music()
    assert path.read_bytes() == lab.hold_music_wav()
    mtime = path.stat().st_mtime_ns
    lab.ensure_hold_music()
    assert path.stat().st_mtime_ns == mtime  # unchanged file left alone
    path.write_bytes(b"damaged")
    lab.ensure_hold_music()
    assert path.read_bytes() == lab.hold_music_wav()
