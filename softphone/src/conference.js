// Conference participant control through the voicemail portal
// (voicemail_portal role, same origin under /voicemail/api/; HTTP plumbing
// shared with the voicemail client in portal.js):
//
//   GET  <ext>/conferences/<room>                          the participants
//   POST <ext>/conferences/<room>/participants/<id>/<mute|unmute|kick>
//
// <room> is the conference number the agent dialled; only a conference admin
// may act on a participant (the portal checks). No DOM here
// (softphone/test/conference.test.mjs); the list is conferencepanel.js.

import {
  PortalClient, PortalError, clip, validAccount,
} from './portal.js';
import { nameAndNumber } from './voicemail.js';

export const CONFERENCE_ACTIONS = Object.freeze(['mute', 'unmute', 'kick']);
const ROOM_RE = /^[A-Za-z0-9*#+._-]{1,32}$/; // config.js conference numbers
const ID_MAX = 128;

// Readable text for an HTTP status without a message from the portal.
export function confErrorText(status) {
  switch (status) {
    case 0:
      return 'conference: server unreachable';
    case 401:
      return 'conference: login expired';
    case 403:
      return 'conference: access denied';
    case 404:
      return 'conference: no such participant';
    case 429:
      return 'conference: too many requests, retry later';
    case 502:
    case 503:
    case 504:
      return 'conference: service unavailable, retry later';
    default:
      return `conference: request failed (HTTP ${status})`;
  }
}

export class ConferenceError extends PortalError {
  constructor(status, message = confErrorText(status)) {
    super(status, message);
    this.name = 'ConferenceError';
  }
}

function validRoom(room) {
  return typeof room === 'string' && ROOM_RE.test(room);
}

function validId(id) {
  return typeof id === 'string' && id !== '' && id !== '.' && id !== '..' && id.length <= ID_MAX;
}

// "<ext>/conferences/<room>[/participants/<id>/<action>]" below the API base,
// every part URL-encoded; throws on anything the portal would not route.
export function conferencePath(ext, room, id, action) {
  if (!validAccount(ext)) {
    throw new ConferenceError(-1, 'conference: this extension has no portal account');
  }
  if (!validRoom(room)) {
    throw new ConferenceError(-1, 'conference: not a conference number');
  }
  const base = `${ext}/conferences/${encodeURIComponent(room)}`;
  if (id === undefined) {
    return base;
  }
  if (!validId(id)) {
    throw new ConferenceError(-1, 'conference: no such participant');
  }
  if (!CONFERENCE_ACTIONS.includes(action)) {
    throw new ConferenceError(-1, `conference: unknown action ${String(action).slice(0, 32)}`);
  }
  return `${base}/participants/${encodeURIComponent(id)}/${action}`;
}

// The portal's answer as the softphone uses it: known fields only, types
// checked, participants without a usable id left out.
export function normalizeParticipants(data, room) {
  if (!data || typeof data !== 'object' || !Array.isArray(data.participants)
    || (data.room !== undefined && String(data.room) !== room)) {
    throw new ConferenceError(-1, 'conference: unexpected answer from the server');
  }
  const participants = [];
  for (const p of data.participants) {
    if (p && typeof p === 'object' && validId(p.id)) {
      participants.push({
        id: p.id,
        number: clip(p.number, 64),
        name: clip(p.name, 120),
        admin: p.admin === true,
        muted: p.muted === true,
        me: p.me === true,
      });
    }
  }
  return { room, admin: data.admin === true, participants };
}

// What the list shows for a participant.
export function participantText(p) {
  return nameAndNumber(p.name, p.number) || 'Unknown participant';
}

export class ConferenceClient extends PortalClient {
  // base: the API path ("/voicemail/api/", "" = off); credentials: a function
  // returning {ext, password} of the logged-in agent, or null.
  constructor(base, credentials, fetchImpl) {
    super(base, credentials, fetchImpl);
    this.label = 'conference';
    this.noAccount = 'this extension has no portal account';
  }

  error(status, message) {
    return new ConferenceError(status, message);
  }

  // The portal's own message ({"error": "..."}) when it sent one.
  failure(answer) {
    const said = answer.body && typeof answer.body === 'object' ? clip(answer.body.error).trim() : '';
    return new ConferenceError(answer.status, said ? `conference: ${said}` : undefined);
  }

  // {room, admin, participants: [{id, number, name, admin, muted, me}]}
  async participants(room) {
    const { ext } = this.account();
    const path = conferencePath(ext, room);
    let data;
    try {
      data = await this.request(path);
    } catch (err) {
      if (err.status === 404) {
        // No conference routes behind the API (an older voicemail portal).
        throw new ConferenceError(404, 'conference: participant list not available on this server');
      }
      throw err;
    }
    return normalizeParticipants(data, room);
  }

  // action: mute, unmute or kick; resolves with {participant, action}.
  async act(room, id, action) {
    const { ext } = this.account();
    const data = await this.request(conferencePath(ext, room, id, action), { method: 'POST' });
    return { participant: typeof data.participant === 'string' ? data.participant : id, action };
  }
}

// Runs task(key) every interval ms while started: one request at a time
// (the next is scheduled when the previous has settled), results of an
// earlier key or of a request overtaken by refresh() are dropped, and
// failures back off (interval doubled per failure, up to maxInterval).
// onResult(err, value) gets every result that is still wanted.
export class Poller {
  constructor(task, onResult, {
    interval = 2000, maxInterval = 8000, timers = globalThis,
  } = {}) {
    this.task = task;
    this.onResult = onResult;
    this.interval = interval;
    this.maxInterval = maxInterval;
    this.timers = timers;
    this.key = null;
    this.running = false;
    this.generation = 0;
    this.timer = null;
    this.inflight = false;
    this.again = false;
    this.failures = 0;
  }

  // Polls for key (now, then every interval); a different key restarts.
  start(key) {
    if (this.running && this.key === key) {
      return;
    }
    this.stop();
    this.key = key;
    this.running = true;
    this.run();
  }

  stop() {
    this.running = false;
    this.key = null;
    this.generation += 1;
    this.failures = 0;
    this.again = false;
    this.cancelTimer();
  }

  // Ask again as soon as possible (e.g. after an action): an answer already
  // under way is dropped and the new request follows it.
  refresh() {
    if (!this.running) {
      return;
    }
    this.generation += 1;
    this.failures = 0;
    this.cancelTimer();
    this.run();
  }

  delay() {
    return Math.min(this.maxInterval, this.interval * 2 ** Math.min(this.failures, 16));
  }

  cancelTimer() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  run() {
    this.timer = null;
    if (!this.running) {
      return;
    }
    if (this.inflight) {
      this.again = true;
      return;
    }
    const { generation, key } = this;
    this.inflight = true;
    this.again = false;
    Promise.resolve()
      .then(() => this.task(key))
      .then((value) => [null, value], (err) => [err || new Error('failed'), undefined])
      .then(([err, value]) => {
        this.inflight = false;
        if (this.running && generation === this.generation) {
          this.failures = err ? this.failures + 1 : 0;
          try {
            this.onResult(err, value);
          } catch (e) {
            // a rendering problem must not stop the polling
          }
        }
        // onResult may have stopped, restarted or refreshed the poller.
        if (!this.running || this.inflight || this.timer !== null) {
          return;
        }
        if (this.again) {
          this.run();
        } else {
          this.timer = this.timers.setTimeout(() => this.run(), this.delay());
        }
      });
  }
}
