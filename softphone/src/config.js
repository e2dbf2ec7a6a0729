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
    iceTransportPolicy: policy,
    trunkPrefix: typeof raw.trunk_prefix === 'string' && /^[0-9*#]{0,4}$/.test(raw.trunk_prefix.trim())
      ? raw.trunk_prefix.trim()
      : '',
    trunkCodec: ['PCMU', 'PCMA', 'G722', 'opus'].includes(raw.trunk_codec) ? raw.trunk_codec : '',
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
