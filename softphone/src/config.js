// Loads config.json (served next to index.html) and applies URL overrides.

const DEFAULT_ICE_TIMEOUT_MS = 500;
const MIN_ICE_TIMEOUT_MS = 50;
const MAX_ICE_TIMEOUT_MS = 10000;

function wsUrl(value) {
  if (typeof value !== 'string' || !value.trim()) {
    throw new Error('wss_url is missing');
  }
  const url = value.trim();
  // A path such as "/ws" means "this host": wss on https pages, ws otherwise.
  if (url.startsWith('/')) {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${window.location.host}${url}`;
  }
  if (!/^wss?:\/\//i.test(url)) {
    throw new Error('wss_url must start with wss:// (or ws://)');
  }
  return url;
}

function iceTimeout(value) {
  const n = Number(value);
  if (value === undefined || value === null || value === '' || !Number.isFinite(n)) {
    return DEFAULT_ICE_TIMEOUT_MS;
  }
  return Math.min(MAX_ICE_TIMEOUT_MS, Math.max(MIN_ICE_TIMEOUT_MS, Math.round(n)));
}

// Longest wait between WebSocket reconnection attempts, in seconds. JsSIP
// waits a random 1..2^n s (n = attempts so far) up to this: its default of 30
// can keep an agent offline ~30 s after Asterisk is back from a restart.
const DEFAULT_RECONNECT_MAX_S = 10;

function reconnectMax(value) {
  const n = Number(value);
  if (value === undefined || value === null || value === '' || !Number.isFinite(n)) {
    return DEFAULT_RECONNECT_MAX_S;
  }
  return Math.min(60, Math.max(2, Math.round(n)));
}

// Conference controls: DTMF sequences sent in a conference call (ConfBridge
// menu). Keys are the actions of softphone.conference(action).
export const CONFERENCE_DTMF_DEFAULTS = Object.freeze({
  mute_self: '*1',
  lock: '*2',
  kick_last: '*3',
  mute_all: '*4',
  count: '*5',
  leave: '*8',
});
const DTMF_SEQUENCE_RE = /^[0-9A-D*#]{1,16}$/i;
const NUMBER_RE = /^[A-Za-z0-9*#+._-]{1,32}$/;

function dialNumber(value) {
  const v = typeof value === 'number' ? String(value) : value;
  return typeof v === 'string' && NUMBER_RE.test(v.trim()) ? v.trim() : '';
}

// Defaults merged with the configured sequences; "" switches a button off,
// invalid values keep the default.
function conferenceDtmf(value) {
  const out = { ...CONFERENCE_DTMF_DEFAULTS };
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const key of Object.keys(CONFERENCE_DTMF_DEFAULTS)) {
      const v = value[key];
      if (v === '') {
        out[key] = '';
      } else if (typeof v === 'string' && DTMF_SEQUENCE_RE.test(v.trim())) {
        out[key] = v.trim().toUpperCase();
      }
    }
  }
  return Object.freeze(out);
}

// Voicemail portal API (voicemail_portal role), same origin: a path such as
// "/voicemail/api/". Missing: the default; "" switches the panel off.
export const DEFAULT_VOICEMAIL_API_URL = '/voicemail/api/';

function voicemailApiUrl(value) {
  if (value === undefined || value === null) {
    return DEFAULT_VOICEMAIL_API_URL;
  }
  if (typeof value !== 'string') {
    return DEFAULT_VOICEMAIL_API_URL;
  }
  const v = value.trim();
  if (v === '') {
    return '';
  }
  // Same-origin paths only (the page's CSP allows nothing else anyway).
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(v) || v.includes('//') || v.split('/').includes('..')) {
    return DEFAULT_VOICEMAIL_API_URL;
  }
  return v.endsWith('/') ? v : `${v}/`;
}

function stringList(value) {
  if (!Array.isArray(value)) {
    return [];
  }
  return value.filter((v) => typeof v === 'string' && v.trim()).map((v) => v.trim());
}

export function normalizeConfig(raw, params) {
  if (!raw || typeof raw !== 'object') {
    throw new Error('config.json is not a JSON object');
  }
  let policy = raw.ice_transport_policy === 'relay' ? 'relay' : 'all';
  const iceParam = params.get('ice');
  if (iceParam === 'relay' || iceParam === 'all') {
    policy = iceParam;
  }
  const domain = typeof raw.sip_domain === 'string' && raw.sip_domain.trim()
    ? raw.sip_domain.trim()
    : window.location.hostname;
  return Object.freeze({
    wssUrl: wsUrl(raw.wss_url),
    sipDomain: domain,
    turnCredentialsUrl: typeof raw.turn_credentials_url === 'string'
      ? raw.turn_credentials_url.trim()
      : '',
    stunUrls: stringList(raw.stun_urls),
    iceGatheringTimeoutMs: iceTimeout(raw.ice_gathering_timeout_ms),
    reconnectMaxS: reconnectMax(raw.reconnect_max_interval_s),
    iceTransportPolicy: policy,
    trunkPrefix: typeof raw.trunk_prefix === 'string' && /^[0-9*#]{0,4}$/.test(raw.trunk_prefix.trim())
      ? raw.trunk_prefix.trim()
      : '',
    trunkCodec: ['PCMU', 'PCMA', 'G722', 'opus'].includes(raw.trunk_codec) ? raw.trunk_codec : '',
    voicemailNumber: dialNumber(raw.voicemail_number),
    voicemailApiUrl: voicemailApiUrl(raw.voicemail_api_url),
    conferenceNumbers: Object.freeze((Array.isArray(raw.conference_numbers) ? raw.conference_numbers : [])
      .map(dialNumber).filter(Boolean)),
    conferenceDtmf: conferenceDtmf(raw.conference_dtmf),
    autoAnswer: params.get('autoanswer') === '1',
  });
}

export async function loadConfig() {
  const response = await fetch('config.json', { cache: 'no-store', credentials: 'same-origin' });
  if (!response.ok) {
    throw new Error(`config.json: HTTP ${response.status}`);
  }
  let raw;
  try {
    raw = await response.json();
  } catch (err) {
    throw new Error('config.json is not valid JSON');
  }
  return normalizeConfig(raw, new URLSearchParams(window.location.search));
}
