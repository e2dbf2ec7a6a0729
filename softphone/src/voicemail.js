// Voicemail portal client (voicemail_portal role, same origin under
// /voicemail/api/): HTTP Basic with the logged-in extension and SIP password
// (the shared plumbing is in portal.js). No DOM here; the helpers at the top
// are pure (softphone/test/voicemail.test.mjs).
//
// The password only ever goes into the Authorization header: never into
// URLs, error messages, logs or the DOM.

import {
  PortalClient, PortalError, clip as str, validAccount,
} from './portal.js';

export const VM_FOLDERS = Object.freeze(['INBOX', 'Old', 'Work', 'Family', 'Friends']);
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

export class VoicemailError extends PortalError {
  constructor(status, message = vmErrorText(status)) {
    super(status, message);
    this.name = 'VoicemailError';
  }
}

export const validMailbox = validAccount;

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

// "Name (number)", or whichever of the two is there ('' for neither).
export function nameAndNumber(name, number) {
  const n = (name || '').trim();
  const d = (number || '').trim();
  if (n && d && n !== d) {
    return `${n} (${d})`;
  }
  return d || n;
}

export function callerText(m) {
  return nameAndNumber(m.caller_name, m.caller_number) || 'Unknown caller';
}

export class VoicemailClient extends PortalClient {
  // base: the API path ("/voicemail/api/", "" = off); credentials: a function
  // returning {ext, password} of the logged-in agent, or null.
  constructor(base, credentials, fetchImpl) {
    super(base, credentials, fetchImpl);
    this.label = 'voicemail';
    this.noAccount = 'this extension has no mailbox';
  }

  error(status, message) {
    return new VoicemailError(status, message);
  }

  failure(answer) {
    return new VoicemailError(answer.status);
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
