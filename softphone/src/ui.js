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
  out: { answered: 'Outgoing', cancelled: 'Cancelled', failed: 'Failed' },
  in: { answered: 'Incoming', missed: 'Missed', rejected: 'Rejected' },
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
    callLog: $('call-log'),
    callLogEmpty: $('call-log-empty'),
    btnClearLog: $('btn-clear-log'),
  };

  let snap = null;
  let timer = null;
  let callDataKey = '';

  // ----- input -------------------------------------------------------------

  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    actions.login(el.loginExt.value, el.loginPass.value, el.loginRemember.checked);
  });
  el.btnLogout.addEventListener('click', () => actions.logout());
  el.dialForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (snap && snap.call === 'incoming') {
      actions.answer();
    } else if (!(snap && ACTIVE.has(snap.call))) {
      actions.call(el.dialInput.value);
    }
  });
  el.btnAnswer.addEventListener('click', () => actions.answer());
  el.btnReject.addEventListener('click', () => actions.reject());
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

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) {
      return;
    }
    const t = e.target;
    if (t instanceof Element && t.closest('#login-form')) {
      return; // typing credentials
    }
    const inCall = snap && ESTABLISHED.has(snap.call);
    if (DIGIT_RE.test(e.key)) {
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
    if (e.key === 'Escape' && snap && ACTIVE.has(snap.call)) {
      e.preventDefault();
      actions.hangup();
      return;
    }
    const onPage = t === document.body || t === document.documentElement || t === null;
    // Handled here rather than by implicit form submission, which browsers
    // skip while the Call button is disabled.
    if (e.key === 'Enter' && (onPage || t === el.dialInput)) {
      e.preventDefault();
      if (snap && snap.call === 'incoming') {
        actions.answer();
      } else if (!(snap && ACTIVE.has(snap.call))) {
        actions.call(el.dialInput.value);
      }
      return;
    }
    if (e.key === 'Backspace' && !inCall && !isTextField(t)) {
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
    el.incoming.hidden = s.call !== 'incoming';
    el.incomingText.textContent = s.call === 'incoming' ? `Incoming call from ${peerName(s)}` : '';
    el.btnAnswer.disabled = s.call !== 'incoming';
    el.btnReject.disabled = s.call !== 'incoming';
    el.btnCall.disabled = s.registration !== 'registered' || active;
    el.btnHangup.disabled = !active;
    el.btnMute.disabled = !established;
    el.btnHold.disabled = !established;
    el.btnMute.setAttribute('aria-pressed', String(s.muted));
    el.btnMute.textContent = s.muted ? 'Unmute' : 'Mute';
    el.btnHold.setAttribute('aria-pressed', String(s.held));
    el.btnHold.textContent = s.held ? 'Resume' : 'Hold';

    renderCallData(s);

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

  return { render, renderLog, setLogin, clearPassword, setVolume };
}
