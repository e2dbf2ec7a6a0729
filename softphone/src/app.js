// Entry point: loads config.json, wires Phone <-> UI, exposes window.softphone
// (stable test hooks, see softphone/README.md).

import { loadConfig } from './config.js';
import { Phone, CALL, MSG } from './phone.js';
import { createUI } from './ui.js';
import { Ringtone } from './ringtone.js';
import { addCallLogEntry, callLogEntries, clearCallLog } from './calllog.js';

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
let phone = null;
let config = null;
let configError = null;

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
  reject() {
    if (phone) {
      phone.reject();
    }
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
  if (s.call === CALL.INCOMING) {
    ringtone.start();
    document.title = `Incoming call: ${s.peer}`;
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
    fire('registered', e.detail);
  });
  phone.addEventListener('incoming', (e) => {
    fire('incoming', e.detail);
    if (config.autoAnswer) {
      phone.answer().catch(report);
    }
  });
  phone.addEventListener('accepted', (e) => fire('accepted', e.detail));
  phone.addEventListener('ended', (e) => {
    const d = e.detail;
    const entry = {
      direction: d.direction,
      number: d.number,
      duration: d.duration,
      time: new Date(d.startedAt).toISOString(),
      result: d.result,
    };
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

const unlockAudio = () => ringtone.unlock();
document.addEventListener('pointerdown', unlockAudio, { once: true });
document.addEventListener('keydown', unlockAudio, { once: true });

const ready = loadConfig().then((cfg) => {
  config = cfg;
  phone = new Phone(cfg, { remoteAudio });
  bindPhone();
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

function requirePhone() {
  if (!phone) {
    throw new Error(configError || 'Not ready');
  }
  return phone;
}

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
  answer: async () => (await withPhone()).answer(),
  hangup: () => (phone ? phone.hangup() : false),
  mute: (on = true) => requirePhone().mute(on),
  hold: async (on = true) => (await withPhone()).hold(on),
  sendDTMF: (digits) => requirePhone().sendDTMF(digits),
  remoteStream: () => (phone ? phone.remoteStream() : null),
  peerConnection: () => (phone ? phone.peerConnection() : null),
  timings: () => (phone ? phone.timings() : null),
  lastError: () => (phone ? phone.error : configError),
});
