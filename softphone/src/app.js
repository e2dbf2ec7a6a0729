// Entry point: loads config.json, wires Phone <-> UI, exposes window.softphone
// (stable test hooks, see softphone/README.md).

import { loadConfig } from './config.js';
import { Phone, CALL, MSG } from './phone.js';
import { createUI } from './ui.js';
import { Ringtone } from './ringtone.js';
import { addCallLogEntry, callLogEntries, clearCallLog } from './calllog.js';
import { Devices } from './devices.js';
import { parseMessageSummary } from './mwi.js';
import { estimateMOS, rating } from './quality.js';
import { VoicemailClient } from './voicemail.js';
import { VoicemailPanel } from './voicemailpanel.js';
import { ConferenceClient } from './conference.js';
import { ConferencePanel } from './conferencepanel.js';

const CREDENTIALS_KEY = 'softphone.credentials';
const VOLUME_KEY = 'softphone.volume';
const TITLE = document.title;

const storage = {
  get(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (err) {
      return null;
    }
  },
  set(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (err) {
      // storage disabled or full
    }
  },
  remove(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (err) {
      // storage disabled
    }
  },
};

const remoteAudio = document.getElementById('remote-audio');
const ringtone = new Ringtone();
const devices = new Devices(storage, { remoteAudio });
let phone = null;
let config = null;
let configError = null;
// Voicemail portal: the agent's own credentials, straight from the Phone's
// memory (never stored here, never shown).
let vmClient = new VoicemailClient('', () => null);
let vmPanel = null;
// Conference participants: the same portal and credentials.
let confPanel = null;

function idleSnapshot() {
  return {
    registration: 'unregistered',
    registrationReason: '',
    loggedIn: false,
    extension: '',
    call: CALL.IDLE,
    direction: null,
    peer: '',
    peerDisplay: '',
    muted: false,
    held: false,
    remoteHeld: false,
    callData: {},
    acceptedAt: null,
    duration: 0,
    endCause: '',
    lastError: configError,
    calls: [],
    incoming: null,
    transfer: null,
    transferring: false,
    conference: false,
    quality: null,
    mwi: {
      waiting: false, new: 0, old: 0, urgent_new: 0, urgent_old: 0, account: '',
    },
  };
}

function fire(name, detail) {
  window.dispatchEvent(new CustomEvent(`softphone:${name}`, { detail }));
}

function report(err) {
  const message = err && err.message ? err.message : String(err);
  if (phone) {
    phone.setError(message);
  }
}

function storedCredentials() {
  try {
    const c = JSON.parse(storage.get(CREDENTIALS_KEY) || 'null');
    if (c && typeof c.extension === 'string' && typeof c.password === 'string') {
      return c;
    }
  } catch (err) {
    // fall through
  }
  return null;
}

// ----- actions (shared by the UI and the test hooks) -------------------------

function login(ext, password, remember = false) {
  if (!phone) {
    return Promise.reject(new Error(configError || 'Not ready'));
  }
  if (!remember) {
    storage.remove(CREDENTIALS_KEY);
  }
  const attempt = phone.login(ext, password);
  attempt.then(() => {
    if (remember) {
      storage.set(CREDENTIALS_KEY, JSON.stringify({ extension: String(ext).trim(), password }));
    }
  }, (err) => {
    if (err.message === MSG.WRONG_CREDENTIALS) {
      storage.remove(CREDENTIALS_KEY);
    }
    if (phone.error !== err.message) {
      report(err);
    }
  });
  return attempt;
}

function logout() {
  storage.remove(CREDENTIALS_KEY);
  return phone ? phone.logout() : Promise.resolve(true);
}

function voicemail() {
  const p = requirePhone();
  if (!config.voicemailNumber) {
    return Promise.reject(new Error('No voicemail number configured'));
  }
  return p.call(config.voicemailNumber);
}

// The number of the conference room whose box is shown: the active call is
// an established call to a conference number ('' otherwise).
function conferenceRoom(s) {
  return s && s.conference && (s.call === CALL.IN_CALL || s.call === CALL.ON_HOLD) ? s.peer : '';
}

// Sends the DTMF sequence configured for a conference action.
function conference(action) {
  const p = requirePhone();
  const sequences = config.conferenceDtmf;
  if (!Object.prototype.hasOwnProperty.call(sequences, action)) {
    throw new Error(`Unknown conference action ${action} (one of ${Object.keys(sequences).join(', ')})`);
  }
  if (!sequences[action]) {
    throw new Error(`Conference action ${action} is switched off`);
  }
  p.sendDTMF(sequences[action]);
  return sequences[action];
}

async function listDevices() {
  const list = await devices.list();
  ui.renderDevices(list);
  return list;
}

// kind: 'audioinput' | 'audiooutput'; id: a deviceId from devices(), or ""
// for the default. Resolves with {kind, id, switched} (switched: live calls
// moved to the new microphone).
async function setDevice(kind, id = '') {
  const deviceId = typeof id === 'string' ? id : '';
  if (kind === 'audioinput') {
    const p = await withPhone();
    const switched = await p.setMicrophone(deviceId);
    devices.remember(kind, deviceId);
    listDevices().catch(() => {});
    return { kind, id: deviceId, switched };
  }
  if (kind === 'audiooutput') {
    await devices.applySpeaker(deviceId, ringtone.ctx);
    devices.remember(kind, deviceId);
    if (vmPanel) {
      vmPanel.setSpeaker(deviceId);
    }
    listDevices().catch(() => {});
    return { kind, id: deviceId, switched: 0 };
  }
  throw new Error(`Unknown device kind ${kind} (audioinput or audiooutput)`);
}

const ui = createUI({
  login(ext, password, remember) {
    ringtone.unlock(); // user gesture: allow the ringtone to play later
    ui.clearPassword();
    login(ext, password, remember).catch(() => {});
  },
  logout() {
    logout();
  },
  call(number) {
    ringtone.unlock();
    if (phone) {
      phone.call(number).catch(report);
    }
  },
  answer() {
    if (phone) {
      phone.answer().catch(report);
    }
  },
  reject(id) {
    if (phone) {
      phone.reject(id);
    }
  },
  switchCall() {
    if (phone) {
      phone.switchTo().catch(report);
    }
  },
  transfer(number) {
    if (phone) {
      phone.transferTo(number).catch(report);
    }
  },
  consult(number) {
    if (phone) {
      phone.consult(number).catch(report);
    }
  },
  completeTransfer() {
    if (phone) {
      phone.completeTransfer().catch(report);
    }
  },
  cancelTransfer() {
    if (phone) {
      phone.cancelTransfer().catch(report);
    }
  },
  conference(action) {
    try {
      conference(action);
    } catch (err) {
      report(err);
    }
  },
  voicemail() {
    ringtone.unlock();
    try {
      voicemail().catch(report);
    } catch (err) {
      report(err);
    }
  },
  setDevice(kind, id) {
    setDevice(kind, id).catch(report);
  },
  hangup() {
    if (phone) {
      phone.hangup();
    }
  },
  mute(on) {
    try {
      phone.mute(on);
    } catch (err) {
      report(err);
    }
  },
  hold(on) {
    phone.hold(on).catch(report);
  },
  dtmf(digit) {
    try {
      return phone.sendDTMF(digit);
    } catch (err) {
      report(err);
      return false;
    }
  },
  volume(v) {
    remoteAudio.volume = v;
    storage.set(VOLUME_KEY, String(v));
  },
  clearLog() {
    clearCallLog();
    ui.renderLog([]);
  },
});

// ----- phone events ---------------------------------------------------------

function onChange(s) {
  ui.render(s);
  if (vmPanel) {
    vmPanel.setAccount(s.loggedIn ? s.extension : '');
  }
  if (confPanel) {
    confPanel.setRoom(s.loggedIn ? conferenceRoom(s) : '');
  }
  if (s.call === CALL.INCOMING) {
    ringtone.start('normal');
    document.title = `Incoming call: ${s.peer}`;
  } else if (s.incoming && s.incoming.waiting) {
    // A second call behind the active one: quieter, so the call stays audible.
    ringtone.start('soft');
    document.title = `Call waiting: ${s.incoming.number}`;
  } else {
    ringtone.stop();
    document.title = TITLE;
  }
}

function checkMicrophonePermission() {
  if (!navigator.permissions || !navigator.permissions.query) {
    return;
  }
  navigator.permissions.query({ name: 'microphone' }).then((status) => {
    if (status.state === 'denied') {
      phone.setError(MSG.MIC_BLOCKED);
    }
  }).catch(() => {});
}

function bindPhone() {
  phone.addEventListener('change', (e) => onChange(e.detail));
  phone.addEventListener('registered', (e) => {
    checkMicrophonePermission();
    listDevices().catch(() => {});
    if (vmPanel) {
      vmPanel.refresh().catch(() => {});
    }
    fire('registered', e.detail);
  });
  phone.addEventListener('incoming', (e) => {
    fire('incoming', e.detail);
    if (config.autoAnswer && !e.detail.waiting) {
      phone.answer().catch(report);
    }
  });
  phone.addEventListener('accepted', (e) => {
    fire('accepted', e.detail);
    listDevices().catch(() => {}); // labels are known once the microphone is open
  });
  phone.addEventListener('transferred', (e) => fire('transferred', e.detail));
  phone.addEventListener('mwi', (e) => {
    if (vmPanel) {
      vmPanel.onMWI();
    }
    fire('mwi', e.detail);
  });
  phone.addEventListener('ended', (e) => {
    const d = e.detail;
    // Numbers, times and results only: never credentials.
    const entry = {
      direction: d.direction,
      missed: d.result === 'missed',
      number: d.number,
      duration: d.duration,
      time: new Date(d.startedAt).toISOString(),
      result: d.result,
    };
    if (d.transfer) {
      entry.transfer = { type: d.transfer.type, target: String(d.transfer.target) };
    }
    if (d.callUUID) {
      entry.callUUID = d.callUUID;
    }
    const entries = addCallLogEntry(entry);
    ui.renderLog(entries);
    fire('ended', d);
  });
}

function initVolume() {
  const stored = Number(storage.get(VOLUME_KEY));
  const v = storage.get(VOLUME_KEY) !== null && Number.isFinite(stored)
    ? Math.min(1, Math.max(0, stored))
    : 1;
  remoteAudio.volume = v;
  ui.setVolume(v);
}

// ----- start-up --------------------------------------------------------------

ui.render(idleSnapshot());
ui.renderLog(callLogEntries());
initVolume();

function initDevices() {
  const speaker = devices.selected('audiooutput');
  if (speaker) {
    devices.applySpeaker(speaker).catch(() => devices.remember('audiooutput', ''));
  }
  listDevices().catch(() => {});
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener('devicechange', () => listDevices().catch(() => {}));
  }
}
initDevices();

const unlockAudio = () => ringtone.unlock();
document.addEventListener('pointerdown', unlockAudio, { once: true });
document.addEventListener('keydown', unlockAudio, { once: true });

const ready = loadConfig().then((cfg) => {
  config = cfg;
  phone = new Phone(cfg, { remoteAudio });
  phone.micDeviceId = devices.selected('audioinput');
  const portalCredentials = () => (phone && phone.creds
    ? { ext: phone.creds.ext, password: phone.creds.password }
    : null);
  vmClient = new VoicemailClient(cfg.voicemailApiUrl, portalCredentials);
  vmPanel = new VoicemailPanel(vmClient);
  confPanel = new ConferencePanel(new ConferenceClient(cfg.voicemailApiUrl, portalCredentials));
  vmPanel.setSpeaker(devices.selected('audiooutput'));
  bindPhone();
  ui.configure({ voicemailNumber: cfg.voicemailNumber, conferenceDtmf: cfg.conferenceDtmf });
  ui.render(phone.snapshot());
  const saved = storedCredentials();
  if (saved) {
    ui.setLogin(saved.extension, '', true);
    login(saved.extension, saved.password, true).catch(() => {});
  }
  fire('ready', {});
  return true;
});
ready.catch((err) => {
  configError = `Configuration error: ${err.message}`;
  ui.render(idleSnapshot());
});

window.addEventListener('pagehide', () => {
  if (phone) {
    phone.logout();
  }
});
window.addEventListener('pageshow', (e) => {
  if (e.persisted) {
    window.location.reload();
  }
});

// ----- test hooks ------------------------------------------------------------

async function withPhone() {
  await ready;
  return phone;
}

async function withVoicemail() {
  await ready;
  if (!vmPanel) {
    throw new Error('voicemail: not ready');
  }
  return vmPanel;
}

// The conference participant list and the room of the current conference
// call; rejects when no conference call is up.
async function withConference() {
  await ready;
  if (!confPanel) {
    throw new Error('conference: not ready');
  }
  const room = conferenceRoom(phone.snapshot());
  if (!room) {
    throw new Error('conference: no conference call is up');
  }
  return { panel: confPanel, room };
}

// A plain copy (no shared objects) for callers of the test hooks.
const copy = (v) => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

function requirePhone() {
  if (!phone) {
    throw new Error(configError || 'Not ready');
  }
  return phone;
}

const callInfo = (c) => ({ ...c });

window.softphone = Object.freeze({
  ready: () => ready,
  state() {
    const s = phone ? phone.snapshot() : idleSnapshot();
    return {
      registration: s.registration,
      call: s.call,
      muted: s.muted,
      held: s.held,
      remote_held: s.remoteHeld,
      direction: s.direction,
      peer: s.peer,
      reason: s.registrationReason,
      callData: { ...s.callData },
      calls: s.calls.map(callInfo),
      incoming: s.incoming ? callInfo(s.incoming) : null,
      transfer: s.transfer ? { ...s.transfer } : null,
      transferring: s.transferring,
      conference: s.conference,
      mwi: { ...s.mwi },
    };
  },
  login: async (ext, password) => {
    await withPhone();
    return login(ext, password, false);
  },
  logout: async () => {
    await withPhone();
    return logout();
  },
  call: async (target) => (await withPhone()).call(target),
  answer: async (id) => (await withPhone()).answer(id),
  reject: (id) => (phone ? phone.reject(id) : false),
  hangup: () => (phone ? phone.hangup() : false),
  mute: (on = true) => requirePhone().mute(on),
  hold: async (on = true) => (await withPhone()).hold(on),
  sendDTMF: (digits) => requirePhone().sendDTMF(digits),
  // Two calls: switch the active one (the other goes on hold).
  switchCall: async () => (await withPhone()).switchTo(),
  switchTo: async (id) => (await withPhone()).switchTo(id),
  // Transfers.
  transfer: async (number) => (await withPhone()).transferTo(number),
  consult: async (number) => (await withPhone()).consult(number),
  completeTransfer: async () => (await withPhone()).completeTransfer(),
  cancelTransfer: async () => (await withPhone()).cancelTransfer(),
  // Voicemail and conferences.
  mwi: () => {
    const m = phone ? phone.snapshot().mwi : idleSnapshot().mwi;
    return { ...m };
  },
  parseMWI: (body) => parseMessageSummary(body),
  voicemail: async () => {
    await withPhone();
    return voicemail();
  },
  conference: (action) => conference(action),
  // Conference participants (voicemail portal) of the current conference
  // call; mute / unmute / kick need a conference admin.
  conferenceParticipants: async () => {
    const { panel, room } = await withConference();
    return copy(await panel.participants(room));
  },
  conferenceMute: async (id, muted = true) => {
    const { panel, room } = await withConference();
    return copy(await panel.act(room, id, muted ? 'mute' : 'unmute'));
  },
  conferenceKick: async (id) => {
    const { panel, room } = await withConference();
    return copy(await panel.act(room, id, 'kick'));
  },
  // Voicemail portal (the panel): {mailbox, counts, messages} of both folders.
  voicemailList: async () => copy(await (await withVoicemail()).refresh()),
  voicemailPlay: async (folder, id) => copy(await (await withVoicemail()).play(folder, id)),
  voicemailDelete: async (folder, id) => copy(await (await withVoicemail()).remove(folder, id)),
  voicemailToneLevels: async (freqs, ms = 1500) => (await withVoicemail()).toneLevels(freqs, ms),
  voicemailFetch: async (path, options = {}) => {
    await withVoicemail();
    const { method, headers, auth } = options || {};
    const answer = await vmClient.raw(path, { method, headers, auth });
    return copy(answer);
  },
  // Audio devices.
  devices: () => listDevices(),
  setDevice: (kind, id) => setDevice(kind, id),
  // Call quality.
  quality: () => (phone ? phone.quality() : null),
  estimateMOS: ({
    rtt_ms: rttMs = 0, jitter_ms: jitterMs = 0, loss_pct: lossPct = 0, codec = '',
  } = {}) => estimateMOS({
    rttMs, jitterMs, lossPct, codec,
  }),
  qualityRating: (mos) => rating(mos),
  callLog: () => callLogEntries(),
  remoteStream: () => (phone ? phone.remoteStream() : null),
  peerConnection: () => (phone ? phone.peerConnection() : null),
  timings: () => (phone ? phone.timings() : null),
  lastError: () => (phone ? phone.error : configError),
});
