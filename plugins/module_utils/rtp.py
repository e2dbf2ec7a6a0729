# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""RTP audio with the standard library: packets, G.711 u-law, tone analysis.

* RTP header packing and parsing (RFC 3550 5.1).
* G.711 u-law encoding and decoding with its own tables (``audioop`` is
  deprecated and removed in Python 3.13).
* A phase-continuous sine generator and a Goertzel detector that reports the
  level at one frequency against the total energy (a signal-to-noise ratio).
* Receiver statistics: loss from sequence numbers and the interarrival jitter
  of RFC 3550 6.4.1 / A.8.
* ``exchange``: send a tone as 20 ms PCMU packets to a peer for a while and
  collect what comes back on the same socket (symmetric RTP).
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import time

RTP_VERSION = 2
PT_PCMU = 0
CLOCK_RATE = 8000
HEADER = struct.Struct("!BBHII")

# --------------------------------------------------------------------------
# RTP header
# --------------------------------------------------------------------------


class RTPError(Exception):
    """Base class for RTP errors."""


class RTPParseError(RTPError):
    """The bytes are not an RTP packet."""


def pack_rtp(payload_type, sequence, timestamp, ssrc, payload=b"", marker=False, csrcs=()):
    """Bytes of an RTP packet (version 2, no padding, no extension)."""
    if not 0 <= payload_type <= 127:
        raise ValueError("payload_type must be 0..127")
    if len(csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    first = (RTP_VERSION << 6) | len(csrcs)
    second = (0x80 if marker else 0) | payload_type
    head = HEADER.pack(first, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return head + b"".join(struct.pack("!I", csrc & 0xFFFFFFFF) for csrc in csrcs) + bytes(payload)


def is_rtcp(data):
    """True for RTCP multiplexed on the RTP port (RFC 5761: packet types 192-223)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def parse_rtp(data):
    """Parse an RTP packet to a dict (``payload`` without CSRCs, extension and padding)."""
    if len(data) < HEADER.size:
        raise RTPParseError(f"RTP packet too short ({len(data)} bytes)")
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RTPParseError(f"Not RTP version 2 (version {version})")
    padding, extension, csrc_count = bool(first & 0x20), bool(first & 0x10), first & 0x0F
    offset = HEADER.size + 4 * csrc_count
    if len(data) < offset:
        raise RTPParseError("RTP packet shorter than its CSRC list")
    csrcs = list(struct.unpack_from(f"!{csrc_count}I", data, HEADER.size))
    ext = None
    if extension:
        if len(data) < offset + 4:
            raise RTPParseError("RTP packet shorter than its header extension")
        profile, words = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + 4 * words
        if len(data) < end:
            raise RTPParseError("RTP packet shorter than its header extension")
        ext = {"profile": profile, "data": bytes(data[offset + 4 : end])}
        offset = end
    end = len(data)
    if padding:
        count = data[-1]
        if count == 0 or end - count < offset:
            raise RTPParseError("Bad RTP padding")
        end -= count
    return {
        "version": version,
        "padding": padding,
        "extension": ext,
        "marker": bool(second & 0x80),
        "payload_type": second & 0x7F,
        "sequence": sequence,
        "timestamp": timestamp,
        "ssrc": ssrc,
        "csrcs": csrcs,
        "payload": bytes(data[offset:end]),
    }


# --------------------------------------------------------------------------
# G.711 u-law (ITU-T G.711, the classic Sun reference algorithm)
# --------------------------------------------------------------------------

ULAW_BIAS = 0x84
ULAW_CLIP = 32635
_BIAS14 = ULAW_BIAS >> 2
_CLIP14 = 8159


def _ulaw_decode(byte):
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
    return -sample if sign else sample


#: u-law byte -> 16-bit linear sample.
ULAW_DECODE = tuple(_ulaw_decode(byte) for byte in range(256))


def ulaw_encode_sample(sample):
    """One 16-bit linear sample -> u-law byte.

    Works on the 14 most significant bits like the Sun reference ``linear2ulaw``
    (and CPython's ``audioop.lin2ulaw``), so the bytes are identical.
    """
    value = int(sample) >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _CLIP14) + _BIAS14
    segment = max(value.bit_length() - 6, 0)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def lin2ulaw(samples):
    """Sequence of 16-bit linear samples -> u-law bytes."""
    return bytes(ulaw_encode_sample(sample) for sample in samples)


def ulaw2lin(data):
    """u-law bytes -> list of 16-bit linear samples."""
    return [ULAW_DECODE[byte] for byte in data]


# --------------------------------------------------------------------------
# Tone generation and detection
# --------------------------------------------------------------------------


class ToneGenerator:
    """Phase-continuous sine frames of 16-bit samples (``amplitude`` of full scale)."""

    def __init__(self, frequency, rate=CLOCK_RATE, amplitude=0.5):
        self.step = 2.0 * math.pi * frequency / rate
        self.scale = amplitude * 32767.0
        self.index = 0

    def frame(self, samples=160):
        start = self.index
        self.index += samples
        return [int(round(self.scale * math.sin(self.step * n))) for n in range(start, start + samples)]


def goertzel_power(samples, frequency, rate=CLOCK_RATE):
    """``|X(f)|^2`` of ``samples`` at exactly ``frequency`` (generalised Goertzel, any f)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)


def _db(value):
    return 10.0 * math.log10(value)


def tone_analysis(frames, frequency, rate=CLOCK_RATE):
    """Measure a tone in blocks of samples (one block per received packet).

    For each block of N samples the tone's energy is ``2 |X(f)|^2 / N`` (a sine
    of amplitude A gives ``A^2 N / 2``, its whole energy); the rest of the
    block's energy counts as noise.  Samples are scaled to full scale = 1.

    Returns ``{snr_db, level_dbfs, tone_dbfs, samples}``: the ratio of tone
    energy to everything else, and the RMS levels of all audio and of the
    tone (dB relative to a full-scale sine; -120 for silence).  Energies
    get a floor of one quantisation step so that silence gives 0 dB.
    """
    tone = total = 0.0
    count = 0
    for frame in frames:
        if not frame:
            continue
        block = [sample / 32768.0 for sample in frame]
        n = len(block)
        total += sum(x * x for x in block)
        tone += 2.0 * goertzel_power(block, frequency, rate) / n
        count += n
    tone = min(tone, total)
    floor = max(count, 1) * (1.0 / 32768.0) ** 2
    noise = max(total - tone, 0.0)
    snr = _db((tone + floor) / (noise + floor))

    def level(energy):
        if count == 0 or energy <= 0:
            return -120.0
        return max(_db(2.0 * energy / count), -120.0)  # 0 dBFS = full-scale sine

    return {"snr_db": snr, "level_dbfs": level(total), "tone_dbfs": level(tone), "samples": count}


# --------------------------------------------------------------------------
# Receiver statistics (RFC 3550 A.1, A.3, A.8)
# --------------------------------------------------------------------------

MAX_DROPOUT = 3000
MAX_MISORDER = 100


class ReceiveStats:
    """Loss and interarrival jitter of received RTP, per SSRC."""

    def __init__(self, clock_rate=CLOCK_RATE):
        self.clock_rate = clock_rate
        self.streams = {}

    def update(self, packet, arrival):
        """Account for ``packet`` (from ``parse_rtp``) that arrived at ``arrival`` (seconds)."""
        seq, ts = packet["sequence"], packet["timestamp"]
        stream = self.streams.get(packet["ssrc"])
        if stream is None:
            stream = {"base": seq, "max": seq, "cycles": 0, "received": 0, "jitter": 0.0, "last": None}
            self.streams[packet["ssrc"]] = stream
        else:
            delta = (seq - stream["max"]) & 0xFFFF
            if 0 < delta < MAX_DROPOUT:
                if seq < stream["max"]:
                    stream["cycles"] += 0x10000
                stream["max"] = seq
            elif delta != 0 and delta <= 0x10000 - MAX_MISORDER:
                # A big jump: the sender restarted; start counting again.
                stream.update(base=seq, max=seq, cycles=0, received=0)
        stream["received"] += 1
        arrival_units = arrival * self.clock_rate
        if stream["last"] is not None:
            last_arrival, last_ts = stream["last"]
            ts_delta = ((ts - last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = (arrival_units - last_arrival) - ts_delta
            stream["jitter"] += (abs(d) - stream["jitter"]) / 16.0
        stream["last"] = (arrival_units, ts)

    @property
    def received(self):
        return sum(stream["received"] for stream in self.streams.values())

    @property
    def expected(self):
        return sum(s["cycles"] + s["max"] - s["base"] + 1 for s in self.streams.values())

    @property
    def lost(self):
        return max(self.expected - self.received, 0)

    @property
    def loss_pct(self):
        expected = self.expected
        return 100.0 * self.lost / expected if expected else 0.0

    @property
    def jitter_ms(self):
        """Jitter of the stream with the most packets, in milliseconds."""
        if not self.streams:
            return 0.0
        main = max(self.streams.values(), key=lambda stream: stream["received"])
        return main["jitter"] * 1000.0 / self.clock_rate


# --------------------------------------------------------------------------
# Sockets and the send/receive loop
# --------------------------------------------------------------------------


def open_rtp_socket(address="127.0.0.1", attempts=20):
    """Bind a UDP socket for RTP on ``address``; returns ``(rtp_sock, rtcp_sock or None)``.

    Prefers an even port with the next port free for RTCP (RFC 3550 11), so
    RTCP from the peer lands on a socket (and is discarded) rather than
    causing ICMP errors.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    address = address.strip("[]")
    for _ in range(attempts):
        rtp_sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp_sock.bind((address, 0))
        except OSError:
            rtp_sock.close()
            raise
        port = rtp_sock.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp_sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp_sock.bind((address, port + 1))
            except OSError:
                rtcp_sock.close()
            else:
                return rtp_sock, rtcp_sock
        rtp_sock.close()
    rtp_sock = socket.socket(family, socket.SOCK_DGRAM)
    rtp_sock.bind((address, 0))
    return rtp_sock, None


def _drain(sock, limit=256):
    """Read up to ``limit`` pending datagrams from a non-blocking socket."""
    packets = []
    for _ in range(limit):
        try:
            data, peer = sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:  # e.g. ICMP errors reported on the socket
            break
        packets.append((data, peer, time.monotonic()))
    return packets


def exchange(
    sock,
    remote,
    duration,
    frequency,
    *,
    amplitude=0.5,
    ptime=20,
    payload_type=PT_PCMU,
    clock_rate=CLOCK_RATE,
    readers=None,
    stop=None,
    rtcp_sock=None,
):
    """Send a PCMU tone to ``remote`` for ``duration`` s while receiving RTP on ``sock``.

    ``readers`` maps other readable objects (with ``fileno``) to callbacks run
    when they are readable (the SIP connection); ``stop()`` ends the exchange
    early (a BYE from the peer).  After the last packet the loop waits a short
    tail for echoes still in flight.

    Returns ``{packets_sent, packets_received, first_sent_at, first_received_at,
    first_audio_ms, loss_pct, jitter_ms, frames, sources, stats}`` where
    ``frames`` are the decoded PCMU payloads in arrival order.
    """
    readers = dict(readers or {})
    frame_samples = int(clock_rate * ptime / 1000)
    interval = ptime / 1000.0
    total_frames = max(1, int(round(duration / interval)))
    generator = ToneGenerator(frequency, clock_rate, amplitude)
    ssrc = int.from_bytes(os.urandom(4), "big")
    sequence = int.from_bytes(os.urandom(2), "big")
    timestamp = int.from_bytes(os.urandom(4), "big")
    stats = ReceiveStats(clock_rate)
    frames, sources = [], set()
    sent = 0
    first_sent_at = first_received_at = None
    end_at = None
    sock.setblocking(False)
    if rtcp_sock is not None:
        rtcp_sock.setblocking(False)
    watch = [sock] + ([rtcp_sock] if rtcp_sock is not None else []) + list(readers)
    start = time.monotonic()
    while True:
        now = time.monotonic()
        if stop is not None and stop():
            break
        if sent < total_frames and now >= start + sent * interval:
            payload = lin2ulaw(generator.frame(frame_samples))
            packet = pack_rtp(payload_type, sequence + sent, timestamp + sent * frame_samples, ssrc, payload, sent == 0)
            try:
                sock.sendto(packet, remote)
            except OSError as exc:
                raise RTPError(f"Cannot send RTP to {remote[0]}:{remote[1]}: {exc.strerror or exc}") from None
            if first_sent_at is None:
                first_sent_at = time.monotonic()
            sent += 1
            continue
        if sent >= total_frames and end_at is None:
            delay = first_received_at - first_sent_at if first_received_at is not None else 0.5
            end_at = now + min(2.0, 0.3 + 2.0 * delay)
        if end_at is not None and now >= end_at:
            break
        next_event = start + sent * interval if sent < total_frames else end_at
        try:
            readable = select.select(watch, [], [], max(next_event - now, 0.0))[0]
        except InterruptedError:  # pragma: no cover
            continue
        for item in readable:
            if item is rtcp_sock:
                _drain(rtcp_sock)
            elif item is sock:
                for data, peer, arrival in _drain(sock):
                    if is_rtcp(data):
                        continue
                    try:
                        packet = parse_rtp(data)
                    except RTPParseError:
                        continue
                    if first_received_at is None:
                        first_received_at = arrival
                    sources.add(f"{peer[0]}:{peer[1]}")
                    stats.update(packet, arrival)
                    if packet["payload_type"] == PT_PCMU:
                        frames.append(ulaw2lin(packet["payload"]))
            else:
                readers[item]()
    first_audio = None
    if first_received_at is not None and first_sent_at is not None:
        first_audio = max(first_received_at - first_sent_at, 0.0) * 1000.0
    return {
        "packets_sent": sent,
        "packets_received": stats.received,
        "first_sent_at": first_sent_at,
        "first_received_at": first_received_at,
        "first_audio_ms": first_audio,
        "loss_pct": stats.loss_pct,
        "jitter_ms": stats.jitter_ms,
        "frames": frames,
        "sources": sorted(sources),
        "stats": stats,
    }
