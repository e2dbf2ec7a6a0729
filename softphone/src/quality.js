// Call quality from RTCPeerConnection.getStats(): pure functions only (no
// DOM, no WebRTC objects), so they run under plain node as well
// (softphone/test/quality.test.mjs).
//
// MOS is estimated with the simplified ITU-T G.107 E-model:
//   effective latency  Leff = rtt/2 + 2 * jitter + 10 ms (codec/jitter buffer)
//   delay impairment   Id   = Leff / 40            (Leff < 160 ms)
//                             (Leff - 120) / 10    (otherwise)
//   loss impairment    Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl + Bpl)
//   R = 93.2 - Id - Ie_eff
//   MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R), clamped to 1..4.5

// Equipment impairment Ie and packet-loss robustness Bpl per codec
// (ITU-T G.113 Appendix I; G.711 with packet loss concealment). Opus and
// G.722 are wideband codecs outside the narrowband E-model: they are rated
// like G.711 with PLC, which keeps the scale comparable between calls.
export const CODEC_IMPAIRMENT = Object.freeze({
  pcmu: { ie: 0, bpl: 25.1 },
  pcma: { ie: 0, bpl: 25.1 },
  g722: { ie: 0, bpl: 25.1 },
  opus: { ie: 0, bpl: 25.1 },
});
const DEFAULT_IMPAIRMENT = CODEC_IMPAIRMENT.pcmu;

// Ratings shown next to the numbers.
export const MOS_GOOD = 4.0;
export const MOS_FAIR = 3.6;

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const round = (v, digits) => (v === null ? null : Number(v.toFixed(digits)));

export function rFactor({ rttMs = 0, jitterMs = 0, lossPct = 0, codec = '' } = {}) {
  const rtt = Math.max(0, num(rttMs) || 0);
  const jitter = Math.max(0, num(jitterMs) || 0);
  const ppl = Math.min(100, Math.max(0, num(lossPct) || 0));
  const leff = rtt / 2 + 2 * jitter + 10;
  const id = leff < 160 ? leff / 40 : (leff - 120) / 10;
  const { ie, bpl } = CODEC_IMPAIRMENT[String(codec).toLowerCase()] || DEFAULT_IMPAIRMENT;
  const ieEff = ie + ((95 - ie) * ppl) / (ppl + bpl);
  return 93.2 - id - ieEff;
}

export function mosFromR(r) {
  if (!Number.isFinite(r) || r <= 0) {
    return 1;
  }
  const mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
  return Math.min(4.5, Math.max(1, mos));
}

// {rttMs, jitterMs, lossPct, codec} -> MOS (1..4.5); missing values count as 0.
export function estimateMOS(input) {
  return mosFromR(rFactor(input));
}

export function rating(mos) {
  if (!Number.isFinite(mos)) {
    return 'unknown';
  }
  if (mos >= MOS_GOOD) {
    return 'good';
  }
  return mos >= MOS_FAIR ? 'fair' : 'poor';
}

// One sample out of a getStats() report (an RTCStatsReport, a Map or an
// array of stats objects): counters of the received audio and the RTT.
export function statsSample(report) {
  const list = [];
  if (report && typeof report.forEach === 'function') {
    report.forEach((s) => list.push(s));
  } else if (report && typeof report[Symbol.iterator] === 'function') {
    for (const s of report) {
      list.push(Array.isArray(s) ? s[1] : s);
    }
  }
  const byId = new Map(list.filter((s) => s && s.id).map((s) => [s.id, s]));
  const isAudio = (s) => (s.kind || s.mediaType) === 'audio';
  const inbound = list.find((s) => s && s.type === 'inbound-rtp' && isAudio(s));
  const remoteInbound = list.find((s) => s && s.type === 'remote-inbound-rtp' && isAudio(s)
    && num(s.roundTripTime) !== null);

  // Selected candidate pair: via the transport, else the nominated one.
  let pair = null;
  const transport = list.find((s) => s && s.type === 'transport' && s.selectedCandidatePairId);
  if (transport) {
    pair = byId.get(transport.selectedCandidatePairId) || null;
  }
  if (!pair) {
    pair = list.find((s) => s && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') || null;
  }

  let rttMs = null;
  if (remoteInbound) {
    rttMs = remoteInbound.roundTripTime * 1000;
  } else if (pair && num(pair.currentRoundTripTime) !== null) {
    rttMs = pair.currentRoundTripTime * 1000;
  }
  let codec = '';
  if (inbound && inbound.codecId && byId.has(inbound.codecId)) {
    codec = String(byId.get(inbound.codecId).mimeType || '').replace(/^audio\//i, '').toLowerCase();
  }
  return {
    timestamp: inbound ? num(inbound.timestamp) : null,
    packetsReceived: inbound ? num(inbound.packetsReceived) : null,
    packetsLost: inbound ? num(inbound.packetsLost) : null,
    jitterMs: inbound && num(inbound.jitter) !== null ? inbound.jitter * 1000 : null,
    rttMs,
    codec,
  };
}

// Loss (%) between two samples of the same stream; the whole call so far
// when there is no previous sample. packetsLost can go down (duplicates):
// never below 0.
export function lossBetween(prev, cur) {
  if (!cur || cur.packetsReceived === null || cur.packetsLost === null) {
    return null;
  }
  let lost = cur.packetsLost;
  let received = cur.packetsReceived;
  if (prev && prev.packetsReceived !== null && prev.packetsLost !== null
    && cur.packetsReceived >= prev.packetsReceived) {
    lost -= prev.packetsLost;
    received -= prev.packetsReceived;
  }
  lost = Math.max(0, lost);
  received = Math.max(0, received);
  return lost + received > 0 ? (100 * lost) / (lost + received) : 0;
}

// The quality shown to the user and returned by softphone.quality().
export function qualityFrom(prev, cur) {
  if (!cur || cur.packetsReceived === null) {
    return null;
  }
  const lossPct = lossBetween(prev, cur);
  const mos = estimateMOS({
    rttMs: cur.rttMs, jitterMs: cur.jitterMs, lossPct, codec: cur.codec,
  });
  return {
    rtt_ms: round(cur.rttMs, 1),
    jitter_ms: round(cur.jitterMs, 1),
    loss_pct: round(lossPct, 2),
    mos: round(mos, 2),
    rating: rating(mos),
    codec: cur.codec,
  };
}
