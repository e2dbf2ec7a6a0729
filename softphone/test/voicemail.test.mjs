// Unit checks of the voicemail portal client (softphone/src/voicemail.js)
// with a fake fetch. No test framework: run with plain node from the
// repository root:
//   node --no-warnings softphone/test/voicemail.test.mjs
import assert from 'node:assert/strict';
import {
  VoicemailClient, VoicemailError, callerText, formatVmDuration, messagePath, normalizeListing,
  normalizeMessage, vmErrorText,
} from '../src/voicemail.js';
import { fakeFetch, suite } from './helpers.mjs';

const { test, run } = suite();

const MSG = {
  folder: 'INBOX',
  id: 'msg0000',
  msg_id: '1790000000-00000001',
  callerid: '"Alice" <5551234>',
  caller_name: 'Alice',
  caller_number: '5551234',
  date: '2026-09-21T14:13:20Z',
  timestamp: 1790000000,
  duration: 12,
  size: 192044,
  new: true,
  audio_url: '/voicemail/api/1000/messages/INBOX/msg0000/audio?expires=1790000600&sig=abc',
};

const creds = { ext: '1000', password: 'sëcret:pw' };

test('error texts are readable', () => {
  assert.equal(vmErrorText(401), 'voicemail: login expired');
  assert.match(vmErrorText(403), /^voicemail: access denied/);
  assert.match(vmErrorText(503), /retry later/);
  assert.match(vmErrorText(429), /retry later/);
  assert.match(vmErrorText(0), /unreachable/);
  assert.equal(vmErrorText(418), 'voicemail: request failed (HTTP 418)');
});

test('paths: only what the portal routes', () => {
  assert.equal(messagePath('1000'), '1000/messages');
  assert.equal(messagePath('1000', 'Old', 'msg0003'), '1000/messages/Old/msg0003');
  assert.equal(messagePath('1000', 'INBOX', 'msg0003', 'read'), '1000/messages/INBOX/msg0003/read');
  assert.throws(() => messagePath('alice'), VoicemailError);
  assert.throws(() => messagePath('1000', 'INBOX', '../x'), VoicemailError);
  assert.throws(() => messagePath('1000', 'Trash', 'msg0000'), VoicemailError);
  assert.throws(() => messagePath('1000', 'INBOX', 'msg0000', 'x'), VoicemailError);
});

test('messages: known fields, audio links of this message only', () => {
  const m = normalizeMessage({ ...MSG, extra: '<b>' }, '1000');
  assert.equal(m.audio_url, MSG.audio_url);
  assert.equal(m.new, true);
  assert.equal('extra' in m, false);
  assert.equal(normalizeMessage({ ...MSG, audio_url: 'https://evil.example/x' }, '1000').audio_url, '');
  assert.equal(normalizeMessage({ ...MSG, audio_url: '//evil.example/voicemail/api/1000/messages/INBOX/msg0000/audio' },
    '1000').audio_url, '');
  assert.equal(normalizeMessage({ ...MSG, audio_url: MSG.audio_url.replace('msg0000', 'msg0001') }, '1000').audio_url, '');
  assert.equal(normalizeMessage(MSG, '1001').audio_url, '');
  assert.equal(normalizeMessage({ ...MSG, id: 'x' }, '1000'), null);
  assert.equal(normalizeMessage({ ...MSG, folder: 'Trash' }, '1000'), null);
  const listing = normalizeListing({ mailbox: '1000', counts: { INBOX: 1, Old: 0, Bogus: 3 }, messages: [MSG, null] }, '1000');
  assert.deepEqual(listing.counts, { INBOX: 1, Old: 0 });
  assert.equal(listing.messages.length, 1);
  assert.throws(() => normalizeListing({ error: 'x' }, '1000'), VoicemailError);
});

test('display helpers', () => {
  assert.equal(formatVmDuration(0), '0:00');
  assert.equal(formatVmDuration(75), '1:15');
  assert.equal(callerText(MSG), 'Alice (5551234)');
  assert.equal(callerText({ caller_name: '1000', caller_number: '1000' }), '1000');
  assert.equal(callerText({ caller_name: '', caller_number: '' }), 'Unknown caller');
});

test('list: Basic auth of the agent, no folder filter, parsed answer', async () => {
  const f = fakeFetch([{ body: { mailbox: '1000', counts: { INBOX: 1, Old: 0 }, messages: [MSG] } }]);
  const c = new VoicemailClient('/voicemail/api/', () => creds, f.impl);
  const listing = await c.list();
  assert.equal(listing.messages[0].id, 'msg0000');
  assert.equal(f.calls[0].url, '/voicemail/api/1000/messages');
  const auth = f.calls[0].init.headers.Authorization;
  const decoded = new TextDecoder().decode(Uint8Array.from(atob(auth.slice(6)), (ch) => ch.charCodeAt(0)));
  assert.equal(decoded, '1000:sëcret:pw');
  assert.equal(f.calls[0].init.method, 'GET');
  assert.ok(!f.calls[0].url.includes('pw'));
});

test('list: errors become readable messages without the password', async () => {
  for (const [status, re] of [[401, /login expired/], [403, /access denied/], [503, /retry later/],
    [404, /not available/]]) {
    const f = fakeFetch([{ status, body: { error: 'x' } }]);
    const c = new VoicemailClient('/voicemail/api/', () => creds, f.impl);
    await assert.rejects(c.list(), (err) => {
      assert.match(err.message, re);
      assert.ok(!err.message.includes(creds.password));
      assert.equal(err.status, status);
      return true;
    });
  }
  const down = new VoicemailClient('/voicemail/api/', () => creds, fakeFetch([new TypeError('x')]).impl);
  await assert.rejects(down.list(), /unreachable/);
  const nobody = new VoicemailClient('/voicemail/api/', () => null, fakeFetch([]).impl);
  await assert.rejects(nobody.list(), /not logged in/);
  const off = new VoicemailClient('', () => creds, fakeFetch([]).impl);
  await assert.rejects(off.list(), /not configured/);
  const foreign = new VoicemailClient('/voicemail/api/', () => creds, fakeFetch([{ body: { mailbox: '1001', messages: [] } }]).impl);
  await assert.rejects(foreign.list(), /unexpected answer/);
});

test('mark read and delete', async () => {
  const moved = {
    ...MSG, folder: 'Old', id: 'msg0004', new: false, audio_url: '/voicemail/api/1000/messages/Old/msg0004/audio?expires=1&sig=x',
  };
  const f = fakeFetch([{ body: moved }, { body: { deleted: { folder: 'Old', id: 'msg0004' } } }]);
  const c = new VoicemailClient('/voicemail/api/', () => creds, f.impl);
  const m = await c.markRead('INBOX', 'msg0000');
  assert.equal(f.calls[0].url, '/voicemail/api/1000/messages/INBOX/msg0000/read');
  assert.equal(f.calls[0].init.method, 'POST');
  assert.equal(m.folder, 'Old');
  assert.equal(m.id, 'msg0004');
  assert.equal(m.audio_url, moved.audio_url);
  const d = await c.remove('Old', 'msg0004');
  assert.equal(f.calls[1].url, '/voicemail/api/1000/messages/Old/msg0004');
  assert.equal(f.calls[1].init.method, 'DELETE');
  assert.deepEqual(d, { deleted: { folder: 'Old', id: 'msg0004' } });
  await assert.rejects(c.remove('Old', '../../1001'), VoicemailError);
});

test('raw: status and body, with or without credentials', async () => {
  const f = fakeFetch([{ status: 403, body: { error: 'not your mailbox' } }, { status: 401, body: { error: 'a' } },
    { type: 'audio/wav', body: 'RIFF1234' }]);
  const c = new VoicemailClient('/voicemail/api/', () => creds, f.impl);
  assert.deepEqual(await c.raw('1001/messages'), {
    status: 403, contentType: 'application/json', body: { error: 'not your mailbox' },
  });
  assert.equal(f.calls[0].url, '/voicemail/api/1001/messages');
  assert.equal((await c.raw('/1000/messages', { auth: false })).status, 401);
  assert.equal(f.calls[1].url, '/voicemail/api/1000/messages');
  assert.equal(f.calls[1].init.headers.Authorization, undefined);
  const audio = await c.raw('1000/messages/INBOX/msg0000/audio');
  assert.deepEqual(audio.body, { audio_bytes: 8 });
});

await run('voicemail');
