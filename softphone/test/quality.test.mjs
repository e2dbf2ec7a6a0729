// Unit checks of the pure modules (E-model MOS, getStats deltas, MWI
// parsing). No test framework: run with plain node from the repository root:
//   node --no-warnings softphone/test/quality.test.mjs
import assert from 'node:assert/strict';
import {
  estimateMOS, lossBetween, mosFromR, qualityFrom, rFactor, rating, statsSample,
} from '../src/quality.js';
import { parseMessageSummary } from '../src/mwi.js';

let passed = 0;
function test(name, fn) {
  try {
    fn();
    passed += 1;
  } catch (err) {
    console.error(`FAIL ${name}`);
    throw err;
  }
}
const close = (a, b, eps = 0.01) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b} (±${eps})`);

test('perfect network: R 93.2 minus 10 ms codec delay, MOS about 4.4', () => {
  close(rFactor({}), 93.2 - 10 / 40);
  close(estimateMOS({}), 4.40, 0.01);
  assert.equal(rating(estimateMOS({})), 'good');
});

test('MOS formula and clamping', () => {
  close(mosFromR(0), 1);
  close(mosFromR(-5), 1);
  close(mosFromR(100), 4.5);
  close(mosFromR(50), 1 + 0.035 * 50 + 7e-6 * 50 * -10 * 50);
  close(mosFromR(80), 1 + 0.035 * 80 + 7e-6 * 80 * 20 * 20);
});

test('delay impairment switches at Leff 160 ms', () => {
  // rtt 300 ms, jitter 0: Leff = 160 -> Id = (160 - 120) / 10 = 4
  close(rFactor({ rttMs: 300 }), 93.2 - 4);
  // rtt 298: Leff = 159 -> Id = 159 / 40
  close(rFactor({ rttMs: 298 }), 93.2 - 159 / 40);
  // jitter counts twice: rtt 0, jitter 20 -> Leff 50
  close(rFactor({ jitterMs: 20 }), 93.2 - 50 / 40);
});

test('packet loss: Ie_eff = 95 * Ppl / (Ppl + 25.1) for G.711 with PLC', () => {
  close(rFactor({ lossPct: 5, codec: 'PCMU' }), 93.2 - 10 / 40 - (95 * 5) / 30.1);
  assert.ok(estimateMOS({ lossPct: 1 }) > estimateMOS({ lossPct: 5 }));
  assert.ok(estimateMOS({ lossPct: 5 }) > estimateMOS({ lossPct: 20 }));
  assert.equal(rating(estimateMOS({ lossPct: 20 })), 'poor');
  close(estimateMOS({ lossPct: 100, rttMs: 2000 }), 1);
});

test('MOS always within 1..4.5', () => {
  for (const rttMs of [0, 50, 150, 400, 1000, 5000]) {
    for (const jitterMs of [0, 5, 30, 200]) {
      for (const lossPct of [0, 0.5, 3, 15, 60, 100]) {
        const mos = estimateMOS({ rttMs, jitterMs, lossPct });
        assert.ok(mos >= 1 && mos <= 4.5, `${mos} for ${rttMs}/${jitterMs}/${lossPct}`);
      }
    }
  }
});

test('missing or bad numbers count as zero', () => {
  close(estimateMOS({ rttMs: null, jitterMs: undefined, lossPct: NaN }), estimateMOS({}));
  close(estimateMOS({ lossPct: -5 }), estimateMOS({}));
});

const report = (over = {}) => [
  { id: 'IT01', type: 'inbound-rtp', kind: 'audio', timestamp: 1000, packetsReceived: 500, packetsLost: 0, jitter: 0.004, codecId: 'C1', ...over.inbound },
  { id: 'C1', type: 'codec', mimeType: 'audio/opus' },
  { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP1' },
  { id: 'CP1', type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: 0.02 },
  ...(over.extra || []),
];

test('statsSample: jitter and RTT in ms, codec name; candidate pair RTT as fallback', () => {
  const s = statsSample(report());
  close(s.jitterMs, 4);
  close(s.rttMs, 20);
  assert.equal(s.codec, 'opus');
  assert.equal(s.packetsReceived, 500);
});

test('statsSample: remote-inbound-rtp roundTripTime wins; Map input works', () => {
  const r = report({ extra: [{ id: 'RI', type: 'remote-inbound-rtp', kind: 'audio', roundTripTime: 0.05 }] });
  close(statsSample(new Map(r.map((x) => [x.id, x]))).rttMs, 50);
});

test('statsSample: no inbound audio -> nulls', () => {
  const s = statsSample([]);
  assert.equal(s.packetsReceived, null);
  assert.equal(qualityFrom(null, s), null);
});

test('loss between two samples uses the deltas', () => {
  const a = { packetsReceived: 1000, packetsLost: 10 };
  const b = { packetsReceived: 1090, packetsLost: 20 };
  close(lossBetween(a, b), 10);
  close(lossBetween(null, a), (100 * 10) / 1010);
  // counter reset (new stream): whole counters
  close(lossBetween(b, { packetsReceived: 50, packetsLost: 0 }), 0);
  // packetsLost going down (duplicates) is not negative loss
  close(lossBetween(b, { packetsReceived: 1190, packetsLost: 15 }), 0);
});

test('qualityFrom: rounded numbers and a rating', () => {
  const prev = statsSample(report());
  const cur = statsSample(report({ inbound: { packetsReceived: 600, packetsLost: 0, jitter: 0.006 } }));
  const q = qualityFrom(prev, cur);
  assert.deepEqual(Object.keys(q).sort(), ['codec', 'jitter_ms', 'loss_pct', 'mos', 'rating', 'rtt_ms']);
  assert.equal(q.loss_pct, 0);
  close(q.jitter_ms, 6, 0.05);
  close(q.rtt_ms, 20, 0.05);
  assert.ok(q.mos >= 4 && q.mos <= 4.5);
  assert.equal(q.rating, 'good');
});

test('MWI: message-summary body', () => {
  const m = parseMessageSummary('Messages-Waiting: yes\r\nMessage-Account: sip:1000@pbx\r\nVoice-Message: 2/1 (0/0)\r\n');
  assert.deepEqual(m, {
    waiting: true, new: 2, old: 1, urgent_new: 0, urgent_old: 0, account: 'sip:1000@pbx',
  });
  const none = parseMessageSummary('Messages-Waiting: no\r\nVoice-Message: 0/3\r\n');
  assert.equal(none.waiting, false);
  assert.equal(none.old, 3);
  assert.equal(parseMessageSummary('voice-message: 4/0 (1/0)').waiting, true);
  assert.equal(parseMessageSummary(undefined).waiting, false);
  assert.equal(parseMessageSummary('garbage').new, 0);
});

console.log(`quality/mwi: ${passed} checks passed`);
