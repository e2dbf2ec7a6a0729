// HTTP plumbing shared by the clients of the voicemail portal API
// (voicemail_portal role, same origin under /voicemail/api/): the voicemail
// panel (voicemail.js) and the conference participant list (conference.js).
// HTTP Basic with the logged-in extension and SIP password, as the TURN
// credential fetch does (turn.js). No DOM here.
//
// The password only ever goes into the Authorization header: never into
// URLs, error messages, logs or the DOM.

import { basicAuth } from './turn.js';

// The portal serves "<ext>/..." for these extensions only.
const ACCOUNT_RE = /^[0-9]{2,8}$/;

export function validAccount(ext) {
  return typeof ext === 'string' && ACCOUNT_RE.test(ext);
}

// A remote string field cut to limit characters ('' for anything else).
export const clip = (v, limit = 200) => (typeof v === 'string' ? v.slice(0, limit) : '');

export class PortalError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'PortalError';
    this.status = status;
  }
}

// {status, contentType, body}: body is the parsed JSON, the text, or for
// audio {audio_bytes}. Never throws for HTTP errors.
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

// Subclasses set `label` (prefix of the error texts) and `noAccount` (text
// for an extension the portal does not serve), and may override error()
// (their Error type) and failure() (an HTTP error answer -> Error).
export class PortalClient {
  // base: the API path ("/voicemail/api/", "" = off); credentials: a function
  // returning {ext, password} of the logged-in agent, or null.
  constructor(base, credentials, fetchImpl = (...a) => window.fetch(...a)) {
    this.base = base || '';
    this.credentials = credentials;
    this.fetchImpl = fetchImpl;
    this.label = 'portal';
    this.noAccount = 'this extension has no portal account';
  }

  get enabled() {
    return this.base !== '';
  }

  error(status, message) {
    return new PortalError(status, message);
  }

  failure(answer) {
    return this.error(answer.status, `${this.label}: request failed (HTTP ${answer.status})`);
  }

  account() {
    if (!this.enabled) {
      throw this.error(-1, `${this.label}: not configured on this server`);
    }
    const c = this.credentials();
    if (!c || !c.ext || !c.password) {
      throw this.error(-1, `${this.label}: not logged in`);
    }
    if (!validAccount(c.ext)) {
      throw this.error(-1, `${this.label}: ${this.noAccount}`);
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

  // A JSON object answer (2xx), else the failure() Error.
  async request(path, options = {}) {
    const answer = await this.raw(path, options);
    if (answer.status < 200 || answer.status > 299) {
      throw this.failure(answer, options);
    }
    if (!answer.body || typeof answer.body !== 'object') {
      throw this.error(-1, `${this.label}: unexpected answer from the server`);
    }
    return answer.body;
  }
}
