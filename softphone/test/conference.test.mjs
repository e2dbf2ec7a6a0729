// Unit checks of the conference participant client and its poller
// (softphone/src/conference.js) with a fake fetch and fake timers. No test
// framework: run with plain node from the repository root:
//   node --no-warnings softphone/test/conference.test.mjs
import assert from 'node:assert/strict';
import {
  ConferenceClient, ConferenceError, Poller, confErrorText, conferencePath, normalizeParticipants,
  participantText,
} from '../src/conference.js';
import { PortalError } from '../src/portal.js';
import { fakeFetch, suite } from './helpers.mjs';

const { test, run } = suite();

const LISTING = {
  room: '700',
  admin: true,
  participants: [
    {
      id: '1732800000.17', number: '1001', name: 'Agent 1001', admin: false, muted: false, me: false,
    },
    {
      id: '1732800000.18',
      number: '1000',
      name: 'Agent 1000',
      admin: true,
      muted: true,
      me: true,
      channel: 'PJSIP/1000-0001',
    },
  ],
};

const creds = { ext: '1000', password: 'sëcret:pw' };
const client = (answers, c = creds, base = '/voicemail/api/') => {
  const f = fakeFetch(answers);
  return { c: new ConferenceClient(base, () => c, f.impl), calls: f.calls };
};

const decodeBasic = (header) => new TextDecoder().decode(
  Uint8Array.from(atob(header.slice(6)), (ch) => ch.charCodeAt(0)),
);

test('paths: encoded room and id, only known actions', () => {
  assert.equal(conferencePath('1000', '700'), '1000/conferences/700');
  assert.equal(conferencePath('1000', '*7#'), '1000/conferences/*7%23');
  assert.equal(conferencePath('1000', '+700'), '1000/conferences/%2B700');
  assert.equal(conferencePath('1000', '700', '1732800000.17', 'mute'),
    '1000/conferences/700/participants/1732800000.17/mute');
  assert.equal(conferencePath('1000', '700', 'a/b?c#d e', 'kick'),
    '1000/conferences/700/participants/a%2Fb%3Fc%23d%20e/kick');
  assert.equal(conferencePath('1000', '700', 'x', 'unmute'), '1000/conferences/700/participants/x/unmute');
  assert.throws(() => conferencePath('alice', '700'), ConferenceError);
  assert.throws(() => conferencePath('1000', ''), /not a conference number/);
  assert.throws(() => conferencePath('1000', '../1001'), /not a conference number/);
  for (const id of ['', '.', '..', 17, null, 'x'.repeat(129)]) {
    assert.throws(() => conferencePath('1000', '700', id, 'mute'), /no such participant/);
  }
  assert.throws(() => conferencePath('1000', '700', 'x', 'ban'), /unknown action ban/);
  assert.throws(() => conferencePath('1000', '700', 'x'), /unknown action/);
});

test('answers: known fields only, typed, entries without an id left out', () => {
  const d = normalizeParticipants({
    ...LISTING,
    extra: 1,
    participants: [...LISTING.participants, null, { number: '1002' }, { id: 'z', admin: 'yes', name: 7 }],
  }, '700');
  assert.equal(d.room, '700');
  assert.equal(d.admin, true);
  assert.equal('extra' in d, false);
  assert.equal(d.participants.length, 3);
  assert.deepEqual(d.participants[1], {
    id: '1732800000.18', number: '1000', name: 'Agent 1000', admin: true, muted: true, me: true,
  });
  assert.deepEqual(d.participants[2], {
    id: 'z', number: '', name: '', admin: false, muted: false, me: false,
  });
  assert.equal(normalizeParticipants({ participants: [] }, '700').admin, false);
  assert.throws(() => normalizeParticipants({ ...LISTING, room: '701' }, '700'), /unexpected answer/);
  assert.throws(() => normalizeParticipants({ error: 'x' }, '700'), /unexpected answer/);
  assert.equal(participantText(LISTING.participants[0]), 'Agent 1001 (1001)');
  assert.equal(participantText({ name: '1001', number: '1001' }), '1001');
  assert.equal(participantText({ name: '', number: '' }), 'Unknown participant');
});

test('participants: GET with Basic auth of the agent, password nowhere else', async () => {
  const { c, calls } = client([{ body: LISTING }]);
  const d = await c.participants('700');
  assert.equal(calls[0].url, '/voicemail/api/1000/conferences/700');
  assert.equal(calls[0].init.method, 'GET');
  assert.equal(calls[0].init.redirect, 'error');
  assert.equal(decodeBasic(calls[0].init.headers.Authorization), '1000:sëcret:pw');
  assert.ok(!calls[0].url.includes('pw'));
  assert.equal(d.participants.length, 2);
  assert.equal('channel' in d.participants[1], false);
});

test('mute, unmute, kick: POST to the encoded participant', async () => {
  const { c, calls } = client([
    { body: { participant: '1732800000.17', action: 'mute' } },
    { body: { participant: '1732800000.17', action: 'unmute' } },
    { body: { participant: 'a/b', action: 'kick' } },
  ]);
  assert.deepEqual(await c.act('700', '1732800000.17', 'mute'), { participant: '1732800000.17', action: 'mute' });
  assert.equal(calls[0].url, '/voicemail/api/1000/conferences/700/participants/1732800000.17/mute');
  assert.equal(calls[0].init.method, 'POST');
  assert.match(calls[0].init.headers.Authorization, /^Basic /);
  await c.act('700', '1732800000.17', 'unmute');
  assert.equal(calls[1].url, '/voicemail/api/1000/conferences/700/participants/1732800000.17/unmute');
  assert.deepEqual(await c.act('700', 'a/b', 'kick'), { participant: 'a/b', action: 'kick' });
  assert.equal(calls[2].url, '/voicemail/api/1000/conferences/700/participants/a%2Fb/kick');
  await assert.rejects(c.act('700', '..', 'kick'), /no such participant/);
  assert.equal(calls.length, 3);
});

test('errors: the server\'s message, else a readable text; never the password', async () => {
  const cases = [
    ['GET', { status: 403, body: { error: 'not in this conference' } }, 403, 'conference: not in this conference'],
    ['POST', { status: 403, body: { error: 'only a conference admin may do this' } }, 403,
      'conference: only a conference admin may do this'],
    ['POST', { status: 404, body: { error: 'no such participant' } }, 404, 'conference: no such participant'],
    ['POST', { status: 404, type: 'text/html', body: '<html>' }, 404, 'conference: no such participant'],
    ['POST', { status: 409, body: { error: 'Asterisk refused: x' } }, 409, 'conference: Asterisk refused: x'],
    ['GET', { status: 404, body: { error: 'not found' } }, 404,
      'conference: participant list not available on this server'],
    ['GET', { status: 502, type: 'text/html', body: '<html>bad gateway</html>' }, 502,
      'conference: service unavailable, retry later'],
    ['GET', { status: 401, body: {} }, 401, 'conference: login expired'],
    ['GET', new TypeError('network'), 0, 'conference: server unreachable'],
  ];
  for (const [method, answer, status, message] of cases) {
    const { c } = client([answer]);
    const attempt = method === 'GET' ? c.participants('700') : c.act('700', '1732800000.17', 'kick');
    // eslint-disable-next-line no-await-in-loop
    await assert.rejects(attempt, (err) => {
      assert.ok(err instanceof ConferenceError);
      assert.ok(err instanceof PortalError);
      assert.equal(err.status, status);
      assert.equal(err.message, message);
      assert.ok(!err.message.includes(creds.password));
      return true;
    });
  }
  await assert.rejects(client([{ body: { participant: 'x' } }, { body: '[]' }]).c.participants('700'),
    /unexpected answer/);
  await assert.rejects(client([], null).c.participants('700'), /conference: not logged in/);
  await assert.rejects(client([], creds, '').c.participants('700'), /conference: not configured/);
  await assert.rejects(client([], { ext: 'alice', password: 'x' }).c.participants('700'), /no portal account/);
  assert.equal(confErrorText(418), 'conference: request failed (HTTP 418)');
});

// Fake timers and a task whose answers the test releases one by one.
function harness(options = {}) {
  const timers = {
    queue: [],
    n: 0,
    setTimeout(fn, ms) {
      this.n += 1;
      this.queue.push({ id: this.n, fn, ms });
      return this.n;
    },
    clearTimeout(id) {
      this.queue = this.queue.filter((t) => t.id !== id);
    },
  };
  const pending = [];
  const started = [];
  let active = 0;
  let maxActive = 0;
  const results = [];
  const task = (key) => {
    started.push(key);
    active += 1;
    maxActive = Math.max(maxActive, active);
    return new Promise((resolve, reject) => {
      pending.push({
        key,
        ok: (v) => { active -= 1; resolve(v); },
        fail: (e) => { active -= 1; reject(e); },
      });
    });
  };
  const poller = new Poller(task, (err, value) => results.push(err ? `err:${err.message}` : value),
    { interval: 2000, maxInterval: 8000, timers, ...options });
  const settle = () => new Promise((r) => { setImmediate(r); });
  return {
    poller,
    timers,
    pending,
    started,
    results,
    maxActive: () => maxActive,
    settle,
    async tick() {
      const t = timers.queue.shift();
      assert.ok(t, 'a timer is scheduled');
      t.fn();
      await settle();
      return t.ms;
    },
  };
}

test('poller: one request at a time, every interval after the answer', async () => {
  const h = harness();
  h.poller.start('700');
  await h.settle();
  assert.deepEqual(h.started, ['700']);
  assert.equal(h.timers.queue.length, 0, 'no timer while the request runs');
  h.poller.start('700'); // same room: nothing new
  h.poller.refresh(); // under way: queued behind it, not in parallel
  await h.settle();
  assert.equal(h.started.length, 1);
  h.pending.shift().ok('stale');
  await h.settle();
  assert.deepEqual(h.results, [], 'the answer overtaken by refresh() is dropped');
  assert.equal(h.started.length, 2);
  h.pending.shift().ok('a');
  await h.settle();
  assert.deepEqual(h.results, ['a']);
  assert.equal(h.timers.queue.length, 1);
  assert.equal(await h.tick(), 2000);
  h.pending.shift().ok('b');
  await h.settle();
  assert.deepEqual(h.results, ['a', 'b']);
  assert.equal(h.maxActive(), 1);
});

test('poller: failures back off quietly, a success resets the interval', async () => {
  const h = harness();
  h.poller.start('700');
  await h.settle();
  const delays = [];
  for (let i = 0; i < 4; i += 1) {
    h.pending.shift().fail(new Error(`e${i}`));
    // eslint-disable-next-line no-await-in-loop
    await h.settle();
    // eslint-disable-next-line no-await-in-loop
    delays.push(await h.tick());
  }
  assert.deepEqual(delays, [4000, 8000, 8000, 8000]);
  h.pending.shift().ok('ok');
  await h.settle();
  assert.equal(await h.tick(), 2000);
  assert.deepEqual(h.results, ['err:e0', 'err:e1', 'err:e2', 'err:e3', 'ok']);
});

test('poller: stop and a new room drop old answers and timers', async () => {
  const h = harness();
  h.poller.start('700');
  await h.settle();
  h.poller.stop();
  h.pending.shift().ok('late');
  await h.settle();
  assert.deepEqual(h.results, []);
  assert.equal(h.timers.queue.length, 0, 'nothing scheduled once stopped');

  h.poller.start('700');
  await h.settle();
  h.pending.shift().ok('x');
  await h.settle();
  assert.equal(h.timers.queue.length, 1);
  h.poller.stop();
  assert.equal(h.timers.queue.length, 0, 'the timer is cancelled');

  h.poller.start('700');
  await h.settle();
  h.poller.start('701'); // another room while 700's request runs: no overlap
  await h.settle();
  assert.deepEqual(h.started, ['700', '700', '700']);
  h.pending.shift().ok('700-late');
  await h.settle();
  assert.deepEqual(h.started, ['700', '700', '700', '701']);
  h.pending.shift().ok('701');
  await h.settle();
  assert.deepEqual(h.results, ['x', '701']);
  assert.equal(h.maxActive(), 1);
  h.poller.stop();
});

test('poller: a throwing onResult does not stop the polling', async () => {
  const timers = { setTimeout: (fn) => { timers.fn = fn; return 1; }, clearTimeout() {} };
  let n = 0;
  const poller = new Poller(async () => { n += 1; return n; }, () => { throw new Error('render'); }, { timers });
  poller.start('700');
  await new Promise((r) => { setImmediate(r); });
  assert.equal(typeof timers.fn, 'function');
  poller.stop();
});

await run('conference');
