# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import math
import struct
import warnings

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import rtp

# -- G.711 u-law -------------------------------------------------------------------------


def test_ulaw_reference_values():
    assert rtp.ulaw_encode_sample(0) == 0xFF
    assert rtp.ULAW_DECODE[0xFF] == 0 and rtp.ULAW_DECODE[0x7F] == 0  # +0 and -0
    assert rtp.ULAW_DECODE[0x80] == 32124 and rtp.ULAW_DECODE[0x00] == -32124
    assert rtp.ulaw_encode_sample(32767) == 0x80 and rtp.ulaw_encode_sample(-32768) == 0x00
    assert rtp.ULAW_DECODE[0xFE] == 8 and rtp.ULAW_DECODE[0x7E] == -8


def test_ulaw_every_code_round_trips():
    for byte in range(256):
        expected = 0xFF if byte == 0x7F else byte  # -0 encodes as +0
        assert rtp.ulaw_encode_sample(rtp.ULAW_DECODE[byte]) == expected


def test_ulaw_linear_round_trip_error_is_within_one_step():
    for sample in range(-32768, 32768, 7):
        decoded = rtp.ulaw2lin(rtp.lin2ulaw([sample]))[0]
        clipped = max(min(sample, rtp.ULAW_CLIP), -rtp.ULAW_CLIP)
        # Quantisation step of the segment: 8 for small values up to 1024 near full scale.
        biased = max(abs(clipped), abs(decoded)) + rtp.ULAW_BIAS
        step = 2 ** (max(biased.bit_length() - 8, 0) + 3)
        assert abs(decoded - clipped) <= step, sample


def test_ulaw_matches_audioop_when_available():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    samples = list(range(-32768, 32768, 13))
    linear = struct.pack(f"<{len(samples)}h", *samples)
    assert rtp.lin2ulaw(samples) == audioop.lin2ulaw(linear, 2)
    ulaw = bytes(range(256))
    assert rtp.ulaw2lin(ulaw) == list(struct.unpack("<256h", audioop.ulaw2lin(ulaw, 2)))


# -- tone generation and Goertzel ------------------------------------------------------------


def tone_frames(frequency, count=50, amplitude=0.5, through_ulaw=True):
    generator = rtp.ToneGenerator(frequency, amplitude=amplitude)
    frames = []
    for _ in range(count):
        frame = generator.frame(160)
        frames.append(rtp.ulaw2lin(rtp.lin2ulaw(frame)) if through_ulaw else frame)
    return frames


def test_tone_generator_is_phase_continuous():
    generator = rtp.ToneGenerator(1000, amplitude=0.5)
    joined = generator.frame(80) + generator.frame(80)
    assert joined == rtp.ToneGenerator(1000, amplitude=0.5).frame(160)
    assert max(joined) == round(0.5 * 32767)


def test_goertzel_detects_the_right_frequency_only():
    frames = tone_frames(1000)
    right = rtp.tone_analysis(frames, 1000)
    assert right["snr_db"] > 30  # u-law quantisation noise only
    assert -6.5 < right["level_dbfs"] < -5.5 and -6.5 < right["tone_dbfs"] < -5.5
    for wrong in (400, 1200, 2000, 3000):
        assert rtp.tone_analysis(frames, wrong)["snr_db"] < -15, wrong


@pytest.mark.parametrize("frequency", [440, 697, 1004, 2600])
def test_goertzel_any_frequency(frequency):
    assert rtp.tone_analysis(tone_frames(frequency, through_ulaw=False), frequency)["snr_db"] > 60


def test_goertzel_power_of_a_pure_sine():
    n, amplitude = 160, 0.5
    samples = [amplitude * math.sin(2 * math.pi * 1000 * i / 8000) for i in range(n)]
    assert rtp.goertzel_power(samples, 1000) == pytest.approx((amplitude * n / 2) ** 2, rel=1e-9)
    assert rtp.goertzel_power(samples, 2000) == pytest.approx(0, abs=1e-9)


def test_tone_in_noise_and_silence():
    silence = [[0] * 160 for _ in range(10)]
    result = rtp.tone_analysis(silence, 1000)
    assert result["snr_db"] == 0 and result["level_dbfs"] == -120
    assert rtp.tone_analysis([], 1000)["snr_db"] == 0
    # Tone at -26 dBFS plus a 3 kHz interferer at -6 dBFS: about -20 dB.
    loud = rtp.ToneGenerator(3000, amplitude=0.5)
    quiet = rtp.ToneGenerator(1000, amplitude=0.05)
    mixed = [[a + b for a, b in zip(loud.frame(), quiet.frame())] for _ in range(20)]
    assert rtp.tone_analysis(mixed, 1000)["snr_db"] == pytest.approx(-20, abs=0.5)


# -- RTP header ------------------------------------------------------------------------------


def test_rtp_pack_parse_round_trip():
    packet = rtp.pack_rtp(0, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xff" * 160, marker=True)
    assert len(packet) == 172
    assert packet[:12] == bytes.fromhex("8080ffffffffffffdeadbeef")
    parsed = rtp.parse_rtp(packet)
    assert parsed["version"] == 2 and parsed["marker"] is True and parsed["payload_type"] == 0
    assert (parsed["sequence"], parsed["timestamp"], parsed["ssrc"]) == (65535, 0xFFFFFFFF, 0xDEADBEEF)
    assert parsed["payload"] == b"\xff" * 160 and parsed["csrcs"] == [] and parsed["extension"] is None
    plain = rtp.parse_rtp(rtp.pack_rtp(101, 1, 2, 3, b"\x01\x00\x00\xa0"))
    assert plain["marker"] is False and plain["payload_type"] == 101


def test_rtp_parse_csrc_extension_and_padding():
    head = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x00, 7, 8, 9)
    csrcs = struct.pack("!II", 11, 12)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    packet = head + csrcs + extension + b"abcd" + b"\x00\x00\x03"
    parsed = rtp.parse_rtp(packet)
    assert parsed["csrcs"] == [11, 12]
    assert parsed["extension"] == {"profile": 0xBEDE, "data": b"\x10\xaa\x00\x00"}
    assert parsed["payload"] == b"abcd" and parsed["padding"] is True
    assert rtp.parse_rtp(rtp.pack_rtp(0, 1, 2, 3, b"x", csrcs=[5]))["csrcs"] == [5]


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\x80\x00", "too short"),
        (b"\x40" + b"\x00" * 11, "version 2"),
        (b"\x83" + b"\x00" * 11, "CSRC"),
        (b"\x90" + b"\x00" * 11 + b"\x00\x00\x00\x05", "extension"),
        (b"\xa0" + b"\x00" * 11 + b"\x00", "padding"),
    ],
)
def test_rtp_parse_errors(data, message):
    with pytest.raises(rtp.RTPParseError, match=message):
        rtp.parse_rtp(data)


def test_rtcp_is_recognised():
    assert rtp.is_rtcp(bytes([0x81, 200]) + b"\x00" * 26)  # sender report
    assert not rtp.is_rtcp(rtp.pack_rtp(0, 1, 2, 3, b"x"))
    # Why RFC 5761 forbids payload types 64-95 when RTCP is multiplexed: PT 72 + marker reads as SR.
    assert rtp.is_rtcp(rtp.pack_rtp(72, 1, 2, 3, b"x", marker=True))


# -- receiver statistics ------------------------------------------------------------------------


def packet(seq, ts, ssrc=1):
    return {"sequence": seq & 0xFFFF, "timestamp": ts & 0xFFFFFFFF, "ssrc": ssrc}


def test_loss_from_sequence_numbers_with_wrap():
    stats = rtp.ReceiveStats()
    for i in range(100):
        if i % 10 != 5:  # lose 10
            stats.update(packet(65500 + i, i * 160), i * 0.02)
    assert stats.expected == 100 and stats.received == 90
    assert stats.loss_pct == pytest.approx(10.0)
    assert stats.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_reordering_is_not_loss():
    stats = rtp.ReceiveStats()
    for i, seq in enumerate([1, 2, 4, 3, 5]):
        stats.update(packet(seq, seq * 160), i * 0.02)
    assert stats.expected == 5 and stats.lost == 0


def test_jitter_rfc3550():
    # Every other packet 10 ms late: |D| = 10 ms = 80 timestamp units each time after the first.
    stats = rtp.ReceiveStats()
    jitter = 0.0
    for i in range(200):
        stats.update(packet(i, i * 160 + 1_000_000_000), i * 0.02 + (0.01 if i % 2 else 0.0))
        if i:
            jitter += (80 - jitter) / 16
    assert stats.jitter_ms == pytest.approx(jitter / 8, rel=1e-6)
    assert 9.9 < stats.jitter_ms <= 10


def test_jitter_survives_timestamp_wrap():
    stats = rtp.ReceiveStats()
    for i in range(50):
        stats.update(packet(i, 0xFFFFFF00 + i * 160), i * 0.02)
    assert stats.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_new_ssrc_counts_separately():
    stats = rtp.ReceiveStats()
    for i in range(10):
        stats.update(packet(i, i * 160, ssrc=1), i * 0.02)
    for i in range(20):
        stats.update(packet(30000 + i, i * 160, ssrc=2), 0.2 + i * 0.02)
    assert stats.expected == 30 and stats.lost == 0


# -- sockets and the exchange loop --------------------------------------------------------------


def test_exchange_against_a_local_echo():
    sock, rtcp_sock = rtp.open_rtp_socket("127.0.0.1")
    echo, _ = rtp.open_rtp_socket("127.0.0.1")
    try:
        port = sock.getsockname()[1]
        if rtcp_sock is not None:
            assert port % 2 == 0 and rtcp_sock.getsockname()[1] == port + 1
        echo.setblocking(False)
        seen = []

        def reflect():
            data, peer = echo.recvfrom(2048)
            seen.append(rtp.parse_rtp(data))
            echo.sendto(data, peer)

        result = rtp.exchange(sock, echo.getsockname(), 0.2, 1000, readers={echo: reflect})
    finally:
        for item in (sock, rtcp_sock, echo):
            if item is not None:
                item.close()
    assert result["packets_sent"] == 10 == result["packets_received"] == len(seen)
    assert seen[0]["marker"] and not any(p["marker"] for p in seen[1:])
    assert result["loss_pct"] == 0 and result["first_audio_ms"] >= 0
    assert rtp.tone_analysis(result["frames"], 1000)["snr_db"] > 30
