// Short-lived TURN credentials (coturn REST API style), fetched with HTTP
// Basic auth as the logged-in extension and cached until 80 % of their ttl.

const REFRESH_FRACTION = 0.8;

// HTTP Basic credentials (UTF-8) for an Authorization header. The result
// carries the password: never log it or put it in the DOM.
export function basicAuth(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) {
    binary += String.fromCharCode(b);
  }
  return `Basic ${btoa(binary)}`;
}

function parseCredentials(data) {
  if (!data || typeof data !== 'object') {
    throw new Error('TURN credentials: not a JSON object');
  }
  const { username, credential } = data;
  const uris = Array.isArray(data.uris)
    ? data.uris.filter((u) => typeof u === 'string' && /^(turns?|stuns?):/i.test(u))
    : [];
  if (typeof username !== 'string' || typeof credential !== 'string' || uris.length === 0) {
    throw new Error('TURN credentials: username, credential or uris missing');
  }
  const ttl = Number(data.ttl);
  return { username, credential, uris, ttl: Number.isFinite(ttl) && ttl > 0 ? ttl : 0 };
}

export class TurnCredentials {
  constructor(url) {
    this.url = url || '';
    this.cache = null;
    this.inflight = null;
  }

  get enabled() {
    return this.url !== '';
  }

  reset() {
    this.cache = null;
    this.inflight = null;
  }

  // Returns {username, credential, uris, ttl} or null when no URL is configured.
  async get(user, password) {
    if (!this.enabled) {
      return null;
    }
    if (this.cache && this.cache.user === user && performance.now() < this.cache.refreshAt) {
      return this.cache.value;
    }
    if (this.inflight && this.inflight.user === user) {
      return this.inflight.promise;
    }
    const promise = this.fetch(user, password).then((value) => {
      if (value.ttl > 0) {
        this.cache = {
          user,
          value,
          refreshAt: performance.now() + value.ttl * 1000 * REFRESH_FRACTION,
        };
      }
      return value;
    }).finally(() => {
      if (this.inflight && this.inflight.promise === promise) {
        this.inflight = null;
      }
    });
    this.inflight = { user, promise };
    return promise;
  }

  async fetch(user, password) {
    let response;
    try {
      response = await fetch(this.url, {
        method: 'GET',
        cache: 'no-store',
        credentials: 'same-origin',
        headers: {
          Accept: 'application/json',
          Authorization: basicAuth(user, password),
        },
      });
    } catch (err) {
      throw new Error('TURN credentials: server unreachable');
    }
    if (!response.ok) {
      throw new Error(`TURN credentials: HTTP ${response.status}`);
    }
    let data;
    try {
      data = await response.json();
    } catch (err) {
      throw new Error('TURN credentials: invalid JSON');
    }
    return parseCredentials(data);
  }
}
