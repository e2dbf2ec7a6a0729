// DOM rendering and user input. Knows nothing about SIP: it renders a
// snapshot() of the Phone and calls the action callbacks it was given.
// All remote-controlled text (caller id, attached data, log entries) goes
// through textContent / dataset only, never innerHTML.

const REG_TEXT = {
  unregistered: () => 'Unregistered',
  registering: () => 'Registering\u2026',
  registered: () => 'Registered',
  failed: (s) => `Registration failed: ${s.registrationReason}`,
};

const ACTIVE = new Set(['calling', 'ringing', 'incoming', 'in-call', 'on-hold']);
const ESTABLISHED = new Set(['in-call', 'on-hold']);
const DIGIT_RE = /^[0-9*#]$/;
// Keyboard shortcuts (plain letter outside text fields, Alt+letter anywhere).
const SHORTCUT_KEYS = new Set(['m', 'h', 't', 's', 'v']);

const CALL_STATE_TEXT = {
  calling: 'calling',
  ringing: 'ringing',
  incoming: 'ringing (incoming)',
  'in-call': 'connected',
  'on-hold': 'on hold',
};

const RATING_TEXT = { good: 'good', fair: 'fair', poor: 'poor', unknown: '–' };

const $ = (id) => document.getElementById(id);

export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${mm}:${ss}`;
}

function peerName(s) {
  if (s.peerDisplay && s.peerDisplay !== s.peer) {
    return `${s.peerDisplay} (${s.peer})`;
  }
  return s.peer || 'unknown';
}

function callName(c) {
  return peerName({ peer: c.number, peerDisplay: c.display });
}

function fmt(v, digits, unit) {
  return typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(digits)}${unit}` : '–';
}

export function qualityText(q) {
  if (!q) {
    return '';
  }
  return `MOS ${fmt(q.mos, 1, '')} · RTT ${fmt(q.rtt_ms, 0, ' ms')} · jitter ${fmt(q.jitter_ms, 0, ' ms')}`
    + ` · loss ${fmt(q.loss_pct, 1, ' %')}`;
}

function callText(s) {
  const who = peerName(s);
  switch (s.call) {
    case 'calling':
      return `Calling ${who}\u2026`;
    case 'ringing':
      return `Ringing ${who}\u2026`;
    case 'incoming':
      return `Incoming call from ${who}`;
    case 'in-call':
      return `In call with ${who}`;
    case 'on-hold':
      return s.held ? `On hold: ${who}` : `Held by ${who}`;
    case 'ended':
      return `Call ended: ${s.endCause}`;
    default:
      return s.registration === 'registered' ? 'Ready' : 'Idle';
  }
}

const DIRECTION_TEXT = {
  out: {
    answered: 'Outgoing', transferred: 'Outgoing', cancelled: 'Cancelled', failed: 'Failed',
  },
  in: {
    answered: 'Incoming', transferred: 'Incoming', missed: 'Missed', rejected: 'Rejected',
  },
};

export function createUI(actions) {
  const el = {
    regStatus: $('reg-status'),
    loginForm: $('login-form'),
    loginExt: $('login-ext'),
    loginPass: $('login-pass'),
    loginRemember: $('login-remember'),
    accountInfo: $('account-info'),
    accountExt: $('account-ext'),
    btnLogout: $('btn-logout'),
    error: $('error'),
    callState: $('call-state'),
    callTimer: $('call-timer'),
    incoming: $('incoming'),
    incomingText: $('incoming-text'),
    btnAnswer: $('btn-answer'),
    btnReject: $('btn-reject'),
    callDataBox: $('call-data-box'),
    callData: $('call-data'),
    dialForm: $('dial-form'),
    dialInput: $('dial-input'),
    dtmfSent: $('dtmf-sent'),
    keypad: $('keypad'),
    btnCall: $('btn-call'),
    btnHangup: $('btn-hangup'),
    btnMute: $('btn-mute'),
    btnHold: $('btn-hold'),
    volume: $('volume'),
    callsBox: $('calls-box'),
    calls: $('calls'),
    btnSwitch: $('btn-switch'),
    quality: $('quality'),
    qualityRating: $('quality-rating'),
    qualityNumbers: $('quality-numbers'),
    transferForm: $('transfer-form'),
    transferInput: $('transfer-input'),
    btnTransfer: $('btn-transfer'),
    btnConsult: $('btn-consult'),
    transferActions: $('transfer-actions'),
    btnCompleteTransfer: $('btn-complete-transfer'),
    btnCancelTransfer: $('btn-cancel-transfer'),
    transferStatus: $('transfer-status'),
    conferenceBox: $('conference-box'),
    mwiBox: $('mwi-box'),
    mwi: $('mwi'),
    btnVoicemail: $('btn-voicemail'),
    micSelect: $('mic-select'),
    speakerSelect: $('speaker-select'),
    speakerNote: $('speaker-note'),
    callLog: $('call-log'),
    callLogEmpty: $('call-log-empty'),
    btnClearLog: $('btn-clear-log'),
  };

  let snap = null;
  let timer = null;
  let callDataKey = '';
  let callsKey = '';
  let options = { voicemailNumber: '', conferenceDtmf: {} };

  // ----- input -------------------------------------------------------------

  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    actions.login(el.loginExt.value, el.loginPass.value, el.loginRemember.checked);
  });
  el.btnLogout.addEventListener('click', () => actions.logout());
  el.dialForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (snap && snap.incoming) {
      actions.answer();
    } else if (!(snap && ACTIVE.has(snap.call))) {
      actions.call(el.dialInput.value);
    }
  });
  el.btnAnswer.addEventListener('click', () => actions.answer());
  el.btnReject.addEventListener('click', () => actions.reject());
  el.btnSwitch.addEventListener('click', () => actions.switchCall());
  el.transferForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!el.btnTransfer.disabled) {
      actions.transfer(el.transferInput.value);
    }
  });
  el.btnConsult.addEventListener('click', () => actions.consult(el.transferInput.value));
  el.btnCompleteTransfer.addEventListener('click', () => actions.completeTransfer());
  el.btnCancelTransfer.addEventListener('click', () => actions.cancelTransfer());
  el.conferenceBox.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-conf-action]');
    if (button) {
      actions.conference(button.dataset.confAction);
    }
  });
  el.btnVoicemail.addEventListener('click', () => actions.voicemail());
  el.micSelect.addEventListener('change', () => actions.setDevice('audioinput', el.micSelect.value));
  el.speakerSelect.addEventListener('change', () => actions.setDevice('audiooutput', el.speakerSelect.value));
  el.btnHangup.addEventListener('click', () => actions.hangup());
  el.btnMute.addEventListener('click', () => actions.mute(!(snap && snap.muted)));
  el.btnHold.addEventListener('click', () => actions.hold(!(snap && snap.held)));
  el.volume.addEventListener('input', () => actions.volume(Number(el.volume.value)));
  el.btnClearLog.addEventListener('click', () => actions.clearLog());
  el.keypad.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-digit]');
    if (button) {
      digit(button.dataset.digit);
    }
  });

  function digit(d) {
    flashKey(d);
    if (snap && ESTABLISHED.has(snap.call)) {
      if (actions.dtmf(d)) {
        el.dtmfSent.value = (el.dtmfSent.value + d).slice(-24);
      }
    } else {
      el.dialInput.value += d;
    }
  }

  function flashKey(d) {
    const key = el.keypad.querySelector(`button[data-digit="${d}"]`);
    if (key) {
      key.classList.add('pressed');
      setTimeout(() => key.classList.remove('pressed'), 150);
    }
  }

  const isTextField = (t) => t instanceof HTMLInputElement
    && ['text', 'password', 'search', 'tel', 'number', ''].includes(t.type);

  function shortcut(letter) {
    if (!snap) {
      return false;
    }
    const established = ESTABLISHED.has(snap.call);
    switch (letter) {
      case 'm':
        if (established) {
          actions.mute(!snap.muted);
        }
        return true;
      case 'h':
        if (established) {
          actions.hold(!snap.held);
        }
        return true;
      case 't':
        if (!el.transferForm.hidden) {
          el.transferInput.focus();
        }
        return true;
      case 's':
        if (snap.calls && snap.calls.length > 1) {
          actions.switchCall();
        }
        return true;
      case 'v':
        if (!el.btnVoicemail.hidden && !el.btnVoicemail.disabled) {
          actions.voicemail();
        }
        return true;
      default:
        return false;
    }
  }

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.defaultPrevented) {
      return;
    }
    const t = e.target;
    if (t instanceof Element && t.closest('#login-form')) {
      return; // typing credentials
    }
    if (e.altKey) {
      // Alt+letter works anywhere; e.code, since Alt changes e.key on macOS.
      const m = /^Key([A-Z])$/.exec(e.code || '');
      if (m && SHORTCUT_KEYS.has(m[1].toLowerCase())) {
        e.preventDefault();
        shortcut(m[1].toLowerCase());
      }
      return;
    }
    const typing = isTextField(t) || t instanceof HTMLSelectElement;
    const inCall = snap && ESTABLISHED.has(snap.call);
    if (DIGIT_RE.test(e.key)) {
      if (typing && t !== el.dialInput) {
        return; // e.g. the transfer number
      }
      if (inCall) {
        // During a call, digits are DTMF and leave the dialled number alone.
        e.preventDefault();
        digit(e.key);
      } else if (t !== el.dialInput) {
        e.preventDefault();
        digit(e.key);
        el.dialInput.focus();
      }
      return;
    }
    if (e.key === 'Escape' && snap) {
      if (snap.incoming && snap.incoming.waiting) {
        e.preventDefault();
        actions.reject(snap.incoming.id);
      } else if (ACTIVE.has(snap.call)) {
        e.preventDefault();
        actions.hangup();
      }
      return;
    }
    const onPage = t === document.body || t === document.documentElement || t === null;
    // Handled here rather than by implicit form submission, which browsers
    // skip while the Call button is disabled.
    if (e.key === 'Enter' && (onPage || t === el.dialInput)) {
      e.preventDefault();
      if (snap && snap.incoming) {
        actions.answer();
      } else if (!(snap && ACTIVE.has(snap.call))) {
        actions.call(el.dialInput.value);
      }
      return;
    }
    if (!typing && e.key.length === 1 && SHORTCUT_KEYS.has(e.key.toLowerCase())) {
      e.preventDefault();
      shortcut(e.key.toLowerCase());
      return;
    }
    if (e.key === 'Backspace' && !inCall && !typing) {
      e.preventDefault();
      el.dialInput.value = el.dialInput.value.slice(0, -1);
    }
  });

  // ----- output ------------------------------------------------------------

  function renderTimer() {
    if (!snap) {
      return;
    }
    let seconds = 0;
    if (ESTABLISHED.has(snap.call) && snap.acceptedAt) {
      seconds = (Date.now() - snap.acceptedAt) / 1000;
    } else if (snap.call === 'ended') {
      seconds = snap.duration;
    }
    el.callTimer.textContent = formatDuration(seconds);
  }

  // Attached data (SIP headers of the incoming INVITE): inside the incoming
  // call box while ringing, then just below it until the call ends.
  function renderCallData(s) {
    const entries = Object.entries(s.callData || {});
    const visible = ACTIVE.has(s.call) && entries.length > 0;
    el.callDataBox.hidden = !visible;
    if (s.call === 'incoming') {
      if (el.callDataBox.parentElement !== el.incoming) {
        el.incoming.append(el.callDataBox);
      }
    } else if (el.callDataBox.previousElementSibling !== el.incoming) {
      el.incoming.after(el.callDataBox);
    }
    const key = visible ? JSON.stringify(entries) : '';
    if (key === callDataKey) {
      return;
    }
    callDataKey = key;
    el.callData.replaceChildren();
    if (!visible) {
      return;
    }
    for (const [name, value] of entries) {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.dataset.header = name;
      dd.dataset.header = name;
      dt.textContent = name;
      dd.textContent = String(value);
      el.callData.append(dt, dd);
    }
  }

  // Both calls when there are two: who, state, which one is active.
  function renderCalls(s) {
    const calls = s.calls || [];
    const show = calls.length > 1;
    el.callsBox.hidden = !show;
    const other = calls.find((c) => !c.active);
    el.btnSwitch.disabled = !show || !other || !(ESTABLISHED.has(other.state) || other.waiting);
    const key = show ? JSON.stringify(calls) : '';
    if (key === callsKey) {
      return;
    }
    callsKey = key;
    el.calls.replaceChildren();
    if (!show) {
      return;
    }
    calls.forEach((c, i) => {
      const li = document.createElement('li');
      li.dataset.callId = String(c.id);
      li.dataset.state = c.state;
      li.classList.toggle('active', c.active);
      const line = document.createElement('span');
      line.className = 'line';
      line.textContent = `Line ${i + 1}`;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = callName(c);
      const what = document.createElement('span');
      what.className = 'what';
      let text = CALL_STATE_TEXT[c.state] || c.state;
      if (c.waiting) {
        text = 'waiting';
      } else if (c.state === 'on-hold' && !c.held) {
        text = 'held by the other side';
      }
      what.textContent = c.active ? `${text} · active` : text;
      li.append(line, who, what);
      el.calls.append(li);
    });
  }

  function renderQuality(s, established) {
    const q = established ? s.quality : null;
    el.quality.hidden = !q;
    if (!q) {
      return;
    }
    el.quality.dataset.rating = q.rating || 'unknown';
    el.qualityRating.textContent = RATING_TEXT[q.rating] || '–';
    el.qualityNumbers.textContent = qualityText(q);
  }

  function renderTransfer(s, established) {
    const t = s.transfer;
    el.transferForm.hidden = !(established || t);
    const busy = Boolean(t) || Boolean(s.transferring);
    el.btnTransfer.disabled = !established || busy;
    el.btnConsult.disabled = !established || busy || (s.calls || []).length > 1;
    el.transferActions.hidden = !t;
    el.btnCompleteTransfer.disabled = !(t && t.state === 'consulting' && t.consultConnected);
    el.btnCancelTransfer.disabled = !t || t.state === 'transferring';
    let status = '';
    if (t && t.state === 'transferring') {
      status = `Transferring to ${t.target}\u2026`;
    } else if (t) {
      status = t.consultConnected
        ? `Talking to ${t.target}; the first call is on hold. Complete or cancel the transfer.`
        : `Calling ${t.target}; the first call is on hold.`;
    } else if (s.transferring) {
      status = 'Transferring\u2026';
    }
    if (el.transferStatus.textContent !== status) {
      el.transferStatus.textContent = status;
    }
  }

  function renderMWI(s, active) {
    const m = s.mwi || { waiting: false, new: 0, old: 0 };
    el.mwi.dataset.waiting = String(Boolean(m.waiting));
    let text = 'No new voicemail';
    if (m.waiting || m.new > 0) {
      text = `Voicemail: ${m.new} new, ${m.old} old`;
    } else if (m.old > 0) {
      text = `Voicemail: no new, ${m.old} old`;
    }
    el.mwi.textContent = text;
    el.btnVoicemail.hidden = !options.voicemailNumber;
    el.btnVoicemail.disabled = s.registration !== 'registered' || active;
  }

  function configure(opts) {
    options = { ...options, ...opts };
    const dtmf = options.conferenceDtmf || {};
    for (const button of el.conferenceBox.querySelectorAll('button[data-conf-action]')) {
      button.hidden = !dtmf[button.dataset.confAction];
      if (dtmf[button.dataset.confAction]) {
        button.dataset.dtmf = dtmf[button.dataset.confAction];
      }
    }
    if (options.voicemailNumber) {
      el.btnVoicemail.title = `Call voicemail ${options.voicemailNumber} (V or Alt+V)`;
    }
    if (snap) {
      render(snap);
    }
  }

  function fillSelect(select, devices, selected, fallbackLabel) {
    const current = select.value;
    select.replaceChildren();
    const def = document.createElement('option');
    def.value = '';
    def.textContent = fallbackLabel;
    select.append(def);
    for (const d of devices) {
      if (d.deviceId === 'default') {
        continue; // the browser's own "default" entry: same as ours
      }
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label;
      select.append(o);
    }
    const wanted = selected || current || '';
    select.value = [...select.options].some((o) => o.value === wanted) ? wanted : '';
  }

  // list: softphone.devices() result.
  function renderDevices(list) {
    fillSelect(el.micSelect, list.audioinput, list.selected.audioinput, 'Default microphone');
    fillSelect(el.speakerSelect, list.audiooutput, list.selected.audiooutput, 'Default speaker');
    el.speakerSelect.disabled = !list.sinkSupported;
    el.speakerNote.hidden = list.sinkSupported;
  }

  function render(s) {
    const prev = snap;
    snap = s;

    el.regStatus.dataset.state = s.registration;
    el.regStatus.textContent = REG_TEXT[s.registration](s);

    el.loginForm.hidden = s.loggedIn;
    el.accountInfo.hidden = !s.loggedIn;
    el.accountExt.textContent = s.extension;
    el.btnLogout.textContent = s.registration === 'registered' ? 'Log out' : 'Cancel';

    el.error.hidden = !s.lastError;
    el.error.textContent = s.lastError || '';

    el.callState.dataset.state = s.call;
    el.callState.textContent = callText(s);

    const active = ACTIVE.has(s.call);
    const established = ESTABLISHED.has(s.call);
    const incoming = s.incoming || null;
    el.incoming.hidden = !incoming;
    el.incoming.classList.toggle('waiting', Boolean(incoming && incoming.waiting));
    if (!incoming) {
      el.incomingText.textContent = '';
    } else if (incoming.waiting) {
      el.incomingText.textContent = `Call waiting: ${callName(incoming)}`;
    } else {
      el.incomingText.textContent = `Incoming call from ${callName(incoming)}`;
    }
    el.btnAnswer.textContent = incoming && incoming.waiting ? 'Answer (hold current)' : 'Answer';
    el.btnAnswer.disabled = !incoming;
    el.btnReject.disabled = !incoming;
    el.btnCall.disabled = s.registration !== 'registered' || active;
    el.btnHangup.disabled = !active;
    el.btnMute.disabled = !established;
    el.btnHold.disabled = !established;
    el.btnMute.setAttribute('aria-pressed', String(s.muted));
    el.btnMute.textContent = s.muted ? 'Unmute' : 'Mute';
    el.btnHold.setAttribute('aria-pressed', String(s.held));
    el.btnHold.textContent = s.held ? 'Resume' : 'Hold';

    renderCallData(s);
    renderCalls(s);
    renderQuality(s, established);
    renderTransfer(s, established);
    el.conferenceBox.hidden = !(s.conference && established);
    renderMWI(s, active);

    if (s.call === 'incoming' && (!prev || prev.call !== 'incoming')) {
      el.btnAnswer.focus();
    }
    if (established && prev && !ESTABLISHED.has(prev.call)) {
      el.dtmfSent.value = '';
    }

    renderTimer();
    if (established && timer === null) {
      timer = setInterval(renderTimer, 500);
    } else if (!established && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  function renderLog(entries) {
    el.callLog.replaceChildren();
    el.callLogEmpty.hidden = entries.length > 0;
    for (const entry of entries) {
      const li = document.createElement('li');
      const dir = document.createElement('span');
      const labels = DIRECTION_TEXT[entry.direction] || {};
      dir.className = `dir ${entry.result || ''}`;
      dir.textContent = labels[entry.result] || (entry.direction === 'in' ? 'Incoming' : 'Outgoing');
      dir.title = entry.direction === 'in' ? 'Incoming call' : 'Outgoing call';
      li.dataset.direction = entry.missed ? 'missed' : String(entry.direction || '');

      const number = document.createElement('button');
      number.type = 'button';
      number.className = 'number';
      number.textContent = String(entry.number || '');
      number.title = 'Put this number in the dial field';
      number.addEventListener('click', () => {
        el.dialInput.value = String(entry.number || '');
        el.dialInput.focus();
      });

      const duration = document.createElement('span');
      duration.className = 'duration';
      duration.textContent = formatDuration(Number(entry.duration) || 0);

      const time = document.createElement('time');
      time.className = 'time';
      const date = new Date(entry.time);
      if (!Number.isNaN(date.getTime())) {
        time.dateTime = date.toISOString();
        time.textContent = date.toLocaleString();
      }
      li.append(dir, number, duration, time);
      if (entry.transfer && typeof entry.transfer === 'object') {
        const tr = document.createElement('span');
        tr.className = 'transfer-info';
        const kind = entry.transfer.type === 'attended' ? 'attended' : 'blind';
        tr.textContent = `Transferred to ${String(entry.transfer.target || '').slice(0, 64)} (${kind})`;
        li.append(tr);
      }
      if (entry.callUUID) {
        const uuid = document.createElement('span');
        uuid.className = 'call-uuid';
        uuid.title = 'X-Genesys-CallUUID';
        uuid.textContent = `CallUUID ${String(entry.callUUID).slice(0, 200)}`;
        li.append(uuid);
      }
      el.callLog.append(li);
    }
  }

  function setLogin(ext, password, remember) {
    el.loginExt.value = ext || '';
    el.loginPass.value = password || '';
    el.loginRemember.checked = Boolean(remember);
  }

  function clearPassword() {
    el.loginPass.value = '';
  }

  function setVolume(v) {
    el.volume.value = String(v);
  }

  return {
    render, renderLog, renderDevices, configure, setLogin, clearPassword, setVolume,
  };
}
