// Voicemail portal client (voicemail_portal role, same origin under
// /voicemail/api/): HTTP Basic with the logged-in extension and SIP password,
// as the TURN credential fetch does (turn.js). No DOM here; the helpers at
// the top are pure (softphone/test/voicemail.test.mjs).
//
// The password only ever goes into the Authorization header: never into
// URLs, error messages, logs or the DOM.

import { basicAuth } from './turn.js';

export const VM_FOLDERS = Object.freeze(['INBOX', 'Old', 'Work', 'Family', 'Friends']);
const MAILBOX_RE = /^[0-9]{2,8}$/;
const ID_RE = /^msg[0-9]{4}$/;

// Readable text for an HTTP status of the portal (or of nginx in front of it).
export function vmErrorText(status) {
  switch (status) {
    case 0:
      return 'voicemail: server unreachable';
    case 401:
      return 'voicemail: login expired';
    case 403:
      return 'voicemail: access denied (not your mailbox, or the audio link expired)';
    case 404:
      return 'voicemail: message not found';
    case 429:
      return 'voicemail: too many requests, retry later';
    case 502:
    case 504:
      return 'voicemail: service unavailable, retry later';
    case 503:
      return 'voicemail: mailbox busy, retry later';
    case 507:
      return 'voicemail: the Old folder is full, delete some messages';
    default:
      return `voicemail: request failed (HTTP ${status})`;
  }
}

export class VoicemailError extends Error {
  constructor(status, message = vmErrorText(status)) {
    super(message);
    this.name = 'VoicemailError';
    this.status = status;
  }
}

export function validMailbox(ext) {
  return typeof ext === 'string' && MAILBOX_RE.test(ext);
}

export function validMessage(folder, id) {
  return VM_FOLDERS.includes(folder) && typeof id === 'string' && ID_RE.test(id);
}

// "<ext>/messages[/<folder>/<id>[/<action>]]" below the API base; throws on
// anything the portal would not route (nothing user-typed reaches a URL).
export function messagePath(ext, folder, id, action = '') {
  if (!validMailbox(ext)) {
    throw new VoicemailError(-1, 'voicemail: this extension has no mailbox');
  }
  if (folder === undefined) {
    return `${ext}/messages`;
  }
  if (!validMessage(folder, id)) {
    throw new VoicemailError(-1, 'voicemail: no such message');
  }
  if (action && !['audio', 'read'].includes(action)) {
    throw new VoicemailError(-1, `voicemail: unknown action ${action}`);
  }
  return `${ext}/messages/${folder}/${id}${action ? `/${action}` : ''}`;
}

const str = (v, limit = 200) => (typeof v === 'string' ? v.slice(0, limit) : '');
const num = (v) => {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
};

// A message as the panel uses it: known fields only, types checked, the
// audio link only when it is a same-origin path of this mailbox.
export function normalizeMessage(m, mailbox) {
  if (!m || typeof m !== 'object' || !validMessage(m.folder, m.id)) {
    return null;
  }
  // The portal signs links under its own prefix (/voicemail/api/): accept
  // any same-origin path to this message's audio.
  const audio = str(m.audio_url, 1000);
  const [audioPath] = audio.split('?');
  const audioOk = audioPath.startsWith('/') && !audioPath.startsWith('//') && !/[\\#\s]/.test(audio)
    && audioPath.endsWith(`/${mailbox}/messages/${m.folder}/${m.id}/audio`);
  return {
    folder: m.folder,
    id: m.id,
    msg_id: str(m.msg_id),
    callerid: str(m.callerid),
    caller_name: str(m.caller_name),
    caller_number: str(m.caller_number),
    date: str(m.date, 64),
    timestamp: num(m.timestamp),
    duration: num(m.duration),
    size: num(m.size),
    new: m.new === true,
    audio_url: audioOk ? audio : '',
  };
}

// The listing answer -> {mailbox, counts, messages} (messages newest first,
// as the portal sends them).
export function normalizeListing(data, mailbox) {
  if (!data || typeof data !== 'object' || !Array.isArray(data.messages)) {
    throw new VoicemailError(-1, 'voicemail: unexpected answer from the server');
  }
  const counts = {};
  if (data.counts && typeof data.counts === 'object') {
    for (const f of VM_FOLDERS) {
      if (f in data.counts) {
        counts[f] = num(data.counts[f]);
      }
    }
  }
  const messages = data.messages.map((m) => normalizeMessage(m, mailbox)).filter(Boolean);
  return { mailbox, counts, messages };
}

export function formatVmDuration(seconds) {
  const s = Math.max(0, Math.round(num(seconds)));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function callerText(m) {
  const name = (m.caller_name || '').trim();
  const number = (m.caller_number || '').trim();
  if (name && number && name !== number) {
    return `${name} (${number})`;
  }
  return number || name || 'Unknown caller';
}

// {status, body}: body is the parsed JSON, the text, or for audio
// {audio_bytes}. Never throws for HTTP errors (status 0: no answer).
async function readAnswer(response) {
  const type = (response.headers.get('Content-Type') || '').toLowerCase();
  let body = null;
  try {
    if (type.includes('json')) {
      body = await response.json();
    } else if (type.startsWith('audio/')) {
      body = { audio_bytes: (await response.arrayBuffer()).byteLength };
    } else {
      body = (await response.text()).slice(0, 2000);
    }
  } catch (err) {
    body = null;
  }
  return { status: response.status, contentType: type, body };
}

export class VoicemailClient {
  // base: the API path ("/voicemail/api/", "" = off); credentials: a function
  // returning {ext, password} of the logged-in agent, or null.
  constructor(base, credentials, fetchImpl = (...a) => window.fetch(...a)) {
    this.base = base || '';
    this.credentials = credentials;
    this.fetchImpl = fetchImpl;
  }

  get enabled() {
    return this.base !== '';
  }

  account() {
    if (!this.enabled) {
      throw new VoicemailError(-1, 'voicemail: not configured on this server');
    }
    const c = this.credentials();
    if (!c || !c.ext || !c.password) {
      throw new VoicemailError(-1, 'voicemail: not logged in');
    }
    if (!validMailbox(c.ext)) {
      throw new VoicemailError(-1, 'voicemail: this extension has no mailbox');
    }
    return c;
  }

  // Raw request below the API base with the agent's credentials (auth:
  // false sends none). Resolves {status, contentType, body}; status 0 when
  // the server could not be reached.
  async raw(path, { method = 'GET', headers = {}, auth = true } = {}) {
    const c = auth ? this.account() : null;
    const url = this.base + String(path).replace(/^\/+/, '');
    const h = { Accept: 'application/json', ...headers };
    if (c) {
      h.Authorization = basicAuth(c.ext, c.password);
    }
    let response;
    try {
      response = await this.fetchImpl(url, {
        method,
        headers: h,
        cache: 'no-store',
        credentials: 'same-origin',
        redirect: 'error',
      });
    } catch (err) {
      return { status: 0, contentType: '', body: null };
    }
    return readAnswer(response);
  }

  async request(path, options) {
    const answer = await this.raw(path, options);
    if (answer.status < 200 || answer.status > 299) {
      throw new VoicemailError(answer.status);
    }
    if (!answer.body || typeof answer.body !== 'object') {
      throw new VoicemailError(-1, 'voicemail: unexpected answer from the server');
    }
    return answer.body;
  }

  // Both folders (no filter) unless folder is given.
  async list(folder) {
    const { ext } = this.account();
    let path = messagePath(ext);
    if (folder !== undefined) {
      if (!VM_FOLDERS.includes(folder)) {
        throw new VoicemailError(-1, `voicemail: unknown folder ${folder}`);
      }
      path += `?folder=${folder}`;
    }
    let data;
    try {
      data = await this.request(path);
    } catch (err) {
      if (err.status === 404) {
        // No portal behind /voicemail/api/ (voicemail_portal not deployed).
        throw new VoicemailError(404, 'voicemail: not available on this server');
      }
      throw err;
    }
    if (data.mailbox !== undefined && data.mailbox !== ext) {
      throw new VoicemailError(-1, 'voicemail: unexpected answer from the server');
    }
    return normalizeListing(data, ext);
  }

  // POST read: the message moves INBOX -> Old under a new id; resolves with
  // the message at its new place.
  async markRead(folder, id) {
    const { ext } = this.account();
    const data = await this.request(messagePath(ext, folder, id, 'read'), { method: 'POST' });
    return normalizeMessage(data, ext) || { folder: data.folder, id: data.id };
  }

  async remove(folder, id) {
    const { ext } = this.account();
    return this.request(messagePath(ext, folder, id), { method: 'DELETE' });
  }
}
