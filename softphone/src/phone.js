// SIP/WebRTC logic on top of JsSIP. No DOM access except the remote <audio>.
//
// Up to MAX_CALLS calls: one active (its audio plays), the other on hold or
// waiting (a second incoming call rings softly until answered or rejected).
//
// Events (dispatched on the Phone, an EventTarget):
//   change      any state change (UI re-renders from snapshot())
//   registered  detail {extension}
//   incoming    detail {number, display, id, waiting}
//   accepted    detail {direction, number, id}
//   transferred detail {id, number, type: 'blind'|'attended', target}
//   mwi         detail {waiting, new, old, urgent_new, urgent_old, account}
//   ended       detail {id, direction, number, cause, originator, failed,
//               result, statusCode, duration, startedAt, callUUID, transfer}

import JsSIP from 'jssip';
import { TurnCredentials } from './turn.js';
import { emptyMWI, parseMessageSummary } from './mwi.js';
import { qualityFrom, statsSample } from './quality.js';

// Never let JsSIP print SIP traffic (it would include digest material).
JsSIP.debug.disable();

export const REG = Object.freeze({
  UNREGISTERED: 'unregistered',
  REGISTERING: 'registering',
  REGISTERED: 'registered',
  FAILED: 'failed',
});

export const CALL = Object.freeze({
  IDLE: 'idle',
  CALLING: 'calling',
  RINGING: 'ringing',
  INCOMING: 'incoming',
  IN_CALL: 'in-call',
  ON_HOLD: 'on-hold',
  ENDED: 'ended',
});

export const MSG = Object.freeze({
  WRONG_CREDENTIALS: 'Wrong extension or password',
  UNREACHABLE: 'Server unreachable',
  MIC_BLOCKED: 'Microphone blocked: allow microphone access',
});

const AUTH_FAILURE_CODES = [401, 403, 407];
const RELAY_CUTOFF_MS = 150;
const DTMF_RE = /^[0-9A-D*#]+$/i;
const TARGET_RE = /^[A-Za-z0-9_.+*#-]+$/;

// Attached data: INVITE headers shown to the agent (X-* and User-to-User).
const CALL_DATA_MAX_HEADERS = 20;
const CALL_DATA_MAX_VALUE = 200;
const CALL_UUID_HEADER = 'x-genesys-calluuid';
const isCallDataHeader = (name) => /^x-/i.test(name) || name.toLowerCase() === 'user-to-user';

const now = () => performance.now();

// Codec policy per leg: a trunk call (outbound prefix + number) offers only
// config.trunkCodec (plus telephone-event for DTMF), so the browser leg uses
// the trunk's own G.711 from the first packet and Asterisk never transcodes.
// (Offering it first is not enough: Asterisk sets up the bridge's formats
// before the browser leg's codec is final and then resamples via slin48 for
// the whole call.) Calls between agents keep the browser's codecs (Opus).
export function restrictCodecs(sdp, codec) {
  if (!codec || typeof sdp !== 'string') {
    return sdp;
  }
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  const keep = new Set();
  const rtpmap = /^a=rtpmap:(\d+) ([^/\s]+)\//i;
  for (const line of lines) {
    const m = rtpmap.exec(line);
    if (m && (m[2].toLowerCase() === codec.toLowerCase() || m[2].toLowerCase() === 'telephone-event')) {
      keep.add(m[1]);
    }
  }
  const wanted = [...keep].filter((pt) => lines.some((l) => {
    const m = rtpmap.exec(l);
    return m && m[1] === pt && m[2].toLowerCase() === codec.toLowerCase();
  }));
  if (!wanted.length) {
    return sdp;
  }
  let audio = false;
  return lines.filter((line) => {
    if (line.startsWith('m=')) {
      audio = line.startsWith('m=audio');
    }
    const m = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ ]/.exec(line);
    return !(audio && m && !keep.has(m[1]));
  }).map((line) => {
    const m = /^(m=audio \S+ \S+)((?: \d+)+)$/.exec(line);
    if (!m) {
      return line;
    }
    const pts = m[2].trim().split(' ').filter((pt) => keep.has(pt));
    const ordered = wanted.concat(pts.filter((pt) => !wanted.includes(pt)));
    return `${m[1]} ${ordered.join(' ')}`;
  }).join(eol);
}

function micError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return MSG.MIC_BLOCKED;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone found';
    case 'NotReadableError':
      return 'Microphone is in use by another application';
    default:
      return `Microphone error: ${(err && err.name) || 'unknown'}`;
  }
}

function candidateType(candidate) {
  if (candidate.type) {
    return candidate.type;
  }
  const m = / typ (\w+)/.exec(candidate.candidate || '');
  return m ? m[1] : '';
}

// JsSIP keys request.headers by a canonical spelling (X-Genesys-Calluuid);
// recover the names as they appear on the wire from the raw message.
function receivedHeaderNames(data) {
  const names = new Map();
  const text = typeof data === 'string' ? data : '';
  const end = text.indexOf('\r\n\r\n');
  const lines = (end === -1 ? text : text.slice(0, end)).split('\r\n').slice(1);
  for (const line of lines) {
    const m = /^([^\s:]+)\s*:/.exec(line);
    if (m && !names.has(m[1].toLowerCase())) {
      names.set(m[1].toLowerCase(), m[1]);
    }
  }
  return names;
}

// {name: value} of the INVITE's X-* and User-to-User headers, in the order
// received; repeated headers are joined with ", ". At most
// CALL_DATA_MAX_HEADERS names, values cut to CALL_DATA_MAX_VALUE characters.
export function extractCallData(request) {
  const data = {};
  const headers = request && request.headers;
  if (!headers || typeof headers !== 'object') {
    return data;
  }
  const received = receivedHeaderNames(request.data);
  let count = 0;
  for (const [key, entries] of Object.entries(headers)) {
    if (!isCallDataHeader(key) || !Array.isArray(entries)) {
      continue;
    }
    if (count >= CALL_DATA_MAX_HEADERS) {
      break;
    }
    const value = entries
      // Unfold continuation lines; no control characters on screen.
      .map((h) => String(h && h.raw !== undefined ? h.raw : '')
        .replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim())
      .filter(Boolean)
      .join(', ');
    data[received.get(key.toLowerCase()) || key] = value.slice(0, CALL_DATA_MAX_VALUE);
    count += 1;
  }
  return data;
}

function callUUID(data) {
  const name = Object.keys(data).find((n) => n.toLowerCase() === CALL_UUID_HEADER);
  return name ? data[name] : '';
}

function stopStream(stream) {
  if (stream) {
    for (const track of stream.getTracks()) {
      track.stop();
    }
  }
}

// At most this many calls at once (one active, one on hold or waiting); a
// further incoming call is answered 486 Busy Here.
export const MAX_CALLS = 2;
const TRANSFER_TIMEOUT_MS = 60000;
const QUALITY_INTERVAL_MS = 2000;

export class Phone extends EventTarget {
  constructor(config, { remoteAudio }) {
    super();
    this.config = config;
    this.remoteAudio = remoteAudio;
    this.turn = new TurnCredentials(config.turnCredentialsUrl);
    this.ua = null;
    this.creds = null;
    this.reg = { state: REG.UNREGISTERED, reason: '' };
    this.calls = []; // live calls, at most MAX_CALLS
    this.current = null; // the active call (its audio plays), one of this.calls
    this.last = null; // most recent active call (for timings / ended info)
    this.idleState = CALL.IDLE; // call state when there is no call: idle or ended
    this.transfer = null; // attended transfer in progress: {first, consult, target, state}
    this.mwi = emptyMWI();
    this.micDeviceId = '';
    this.error = null;
    this.loginWaiter = null;
    this.callSeq = 0;
    this.qualityTimer = null;
  }

  // ----- state -------------------------------------------------------------

  get callState() {
    return this.current ? this.current.state : this.idleState;
  }

  callInfo(call) {
    return {
      id: call.id,
      direction: call.direction,
      number: call.number,
      display: call.display,
      state: call.state,
      held: call.held,
      remote_held: call.remoteHeld,
      muted: call.muted,
      active: call === this.current,
      waiting: call.state === CALL.INCOMING && call !== this.current,
      transferring: call.transferring ? call.transferring.type : null,
    };
  }

  isConference(call) {
    return Boolean(call && (this.config.conferenceNumbers || []).includes(call.number));
  }

  // The incoming call shown with Answer / Reject: the active one, else a
  // call waiting behind the active call.
  incomingCall() {
    if (this.current && this.current.state === CALL.INCOMING) {
      return this.current;
    }
    return this.calls.find((c) => c.state === CALL.INCOMING) || null;
  }

  snapshot() {
    const call = this.current || this.last;
    const incoming = this.incomingCall();
    const t = this.transfer;
    return {
      registration: this.reg.state,
      registrationReason: this.reg.reason,
      loggedIn: this.ua !== null,
      extension: this.creds ? this.creds.ext : '',
      call: this.callState,
      direction: call ? call.direction : null,
      peer: call ? call.number : '',
      peerDisplay: call ? call.display : '',
      muted: Boolean(this.current && this.current.muted),
      held: Boolean(this.current && this.current.held),
      remoteHeld: Boolean(this.current && this.current.remoteHeld),
      // Only while the call lasts: cleared when it ends.
      callData: this.current ? { ...this.current.data } : {},
      acceptedAt: call ? call.acceptedAt : null,
      duration: call ? call.duration : 0,
      endCause: call ? call.endCause : '',
      lastError: this.error,
      calls: this.calls.map((c) => this.callInfo(c)),
      incoming: incoming ? this.callInfo(incoming) : null,
      transfer: t ? {
        type: 'attended',
        state: t.state,
        target: t.target,
        first: t.first.id,
        consult: t.consult ? t.consult.id : null,
        consultConnected: Boolean(t.consult && t.consult.accepted && !t.consult.done),
      } : null,
      transferring: Boolean(this.current && this.current.transferring),
      conference: Boolean(this.current && this.current.accepted && this.isConference(this.current)),
      quality: this.quality(),
      mwi: { ...this.mwi },
    };
  }

  timings() {
    return this.last ? { ...this.last.timings } : null;
  }

  remoteStream() {
    return this.current ? this.current.remoteStream : null;
  }

  peerConnection() {
    return this.current && this.current.session ? this.current.session.connection : null;
  }

  quality() {
    const call = this.current;
    return call && call.accepted && !call.done && call.quality ? { ...call.quality } : null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  changed() {
    this.emit('change', this.snapshot());
  }

  setError(message) {
    this.error = message;
    this.changed();
  }

  setReg(state, reason = '') {
    this.reg = { state, reason };
    if (reason) {
      this.error = reason;
    }
    this.changed();
  }

  setCallState(call, state) {
    call.state = state;
    this.changed();
  }

  findCall(id) {
    const n = Number(id);
    return this.calls.find((c) => c.id === n) || null;
  }

  // Makes call the active one: its remote audio plays on the <audio>.
  activate(call) {
    this.current = call;
    if (call) {
      this.last = call;
    }
    const stream = call ? call.remoteStream : null;
    if (this.remoteAudio.srcObject !== stream) {
      this.remoteAudio.srcObject = stream;
      if (stream) {
        const p = this.remoteAudio.play();
        if (p && p.catch) {
          p.catch(() => {});
        }
      }
    }
  }

  // ----- registration ------------------------------------------------------

  login(ext, password) {
    const extension = String(ext || '').trim();
    if (!extension || !/^[A-Za-z0-9_.+-]+$/.test(extension)) {
      return Promise.reject(new Error('Enter a valid extension'));
    }
    if (!password) {
      return Promise.reject(new Error('Enter the password'));
    }
    this.stopUA();
    this.creds = { ext: extension, password: String(password) };
    this.error = null;
    this.mwi = emptyMWI();
    this.turn.reset();
    this.setReg(REG.REGISTERING);

    let ua;
    try {
      ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(this.config.wssUrl)],
        uri: `sip:${extension}@${this.config.sipDomain}`,
        password: this.creds.password,
        display_name: extension,
        register: true,
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: this.config.reconnectMaxS || 10,
        user_agent: `voiceops-softphone JsSIP/${JsSIP.version}`,
      });
    } catch (err) {
      this.creds = null;
      this.setReg(REG.FAILED, 'Invalid configuration (wss_url or sip_domain)');
      return Promise.reject(new Error(this.reg.reason));
    }
    this.ua = ua;
    this.bindUA(ua);

    const promise = new Promise((resolve, reject) => {
      this.loginWaiter = { resolve, reject };
    });
    // Warm the TURN credential cache; a failure here is not fatal.
    this.turn.get(extension, this.creds.password).catch(() => {});
    ua.start();
    return promise;
  }

  settleLogin(error) {
    const waiter = this.loginWaiter;
    this.loginWaiter = null;
    if (waiter) {
      if (error) {
        waiter.reject(new Error(error));
      } else {
        waiter.resolve(true);
      }
    }
  }

  bindUA(ua) {
    const on = (name, fn) => ua.on(name, (e) => {
      if (ua === this.ua) {
        fn(e);
      }
    });
    on('connected', () => {
      if (this.reg.state !== REG.REGISTERED) {
        this.setReg(REG.REGISTERING);
      }
    });
    on('disconnected', () => {
      // JsSIP keeps reconnecting with back-off; show the failure meanwhile.
      this.setReg(REG.FAILED, MSG.UNREACHABLE);
      this.settleLogin(MSG.UNREACHABLE);
    });
    on('registered', () => {
      this.error = null;
      this.setReg(REG.REGISTERED);
      this.settleLogin(null);
      this.emit('registered', { extension: this.creds.ext });
    });
    on('registrationFailed', (e) => {
      const code = e.response ? e.response.status_code : 0;
      let reason;
      if (AUTH_FAILURE_CODES.includes(code)) {
        reason = MSG.WRONG_CREDENTIALS;
      } else if (e.cause === JsSIP.C.causes.CONNECTION_ERROR) {
        reason = MSG.UNREACHABLE;
      } else if (e.cause === JsSIP.C.causes.REQUEST_TIMEOUT) {
        reason = 'Server not responding';
      } else if (e.response) {
        reason = `${code} ${e.response.reason_phrase || e.cause}`.trim();
      } else {
        reason = e.cause || 'unknown error';
      }
      if (reason === MSG.WRONG_CREDENTIALS) {
        // Retrying with the same password cannot succeed: stop here.
        this.stopUA();
      }
      this.setReg(REG.FAILED, reason);
      this.settleLogin(reason);
    });
    on('newRTCSession', (e) => {
      if (e.originator === 'remote') {
        this.onIncoming(e.session, e.request);
      }
    });
    // Out-of-dialog NOTIFY (Asterisk's unsolicited MWI). JsSIP has already
    // answered it 200 OK when this fires.
    on('sipEvent', (e) => {
      const event = e.event && e.event.event ? String(e.event.event).toLowerCase() : '';
      if (event === 'message-summary') {
        this.mwi = parseMessageSummary(e.request ? e.request.body : '');
        this.changed();
        this.emit('mwi', { ...this.mwi });
      }
    });
  }

  stopUA() {
    const ua = this.ua;
    this.ua = null;
    if (ua) {
      try {
        ua.stop();
      } catch (err) {
        // ignore
      }
    }
  }

  logout() {
    this.transfer = null;
    for (const call of [...this.calls]) {
      this.terminateCall(call);
    }
    this.stopUA();
    for (const call of [...this.calls]) {
      this.finish(call, { originator: 'local', cause: 'Logged out', failed: !call.accepted });
    }
    this.creds = null;
    this.mwi = emptyMWI();
    this.turn.reset();
    this.settleLogin('Logged out');
    this.setReg(REG.UNREGISTERED);
    if (this.callState !== CALL.IDLE) {
      this.last = null;
      this.idleState = CALL.IDLE;
      this.changed();
    }
    return Promise.resolve(true);
  }

  // ----- media helpers -----------------------------------------------------

  async microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error('Microphone unavailable: open the page over HTTPS');
    }
    const audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
    if (this.micDeviceId) {
      try {
        return await navigator.mediaDevices.getUserMedia({
          audio: { ...audio, deviceId: { exact: this.micDeviceId } },
          video: false,
        });
      } catch (err) {
        // The chosen microphone is gone: fall back to the default one.
        if (!err || !['NotFoundError', 'OverconstrainedError'].includes(err.name)) {
          throw new Error(micError(err));
        }
      }
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ audio, video: false });
    } catch (err) {
      throw new Error(micError(err));
    }
  }

  // Microphone for the next calls, and for the live calls (replaceTrack on
  // their audio sender, keeping the mute/hold state). Resolves with the
  // number of live calls switched.
  async setMicrophone(deviceId) {
    this.micDeviceId = typeof deviceId === 'string' ? deviceId : '';
    let switched = 0;
    for (const call of [...this.calls]) {
      const pc = call.session && call.session.connection;
      if (call.done || !pc || !call.localStream) {
        continue;
      }
      const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
      if (!sender) {
        continue;
      }
      const stream = await this.microphone();
      const track = stream.getAudioTracks()[0];
      if (!track || call.done) {
        stopStream(stream);
        continue;
      }
      const old = sender.track;
      track.enabled = old ? old.enabled : true;
      await sender.replaceTrack(track);
      if (call.done) {
        track.stop();
        continue;
      }
      if (old) {
        call.localStream.removeTrack(old);
        old.stop();
      }
      call.localStream.addTrack(track);
      switched += 1;
    }
    return switched;
  }

  async pcConfig() {
    const { stunUrls, iceTransportPolicy } = this.config;
    const iceServers = [];
    if (stunUrls.length) {
      iceServers.push({ urls: stunUrls });
    }
    if (this.turn.enabled) {
      try {
        const t = await this.turn.get(this.creds.ext, this.creds.password);
        iceServers.push({ urls: t.uris, username: t.username, credential: t.credential });
      } catch (err) {
        if (iceTransportPolicy === 'relay') {
          throw err;
        }
        // Without relay-only policy the call can still work without TURN.
      }
    } else if (iceTransportPolicy === 'relay') {
      throw new Error('Relay-only calls need TURN (turn_credentials_url is not set)');
    }
    return {
      iceServers,
      iceTransportPolicy,
      rtcpMuxPolicy: 'require',
      bundlePolicy: 'max-bundle',
    };
  }

  async prepareMedia(call) {
    const [micResult, pcResult] = await Promise.allSettled([this.microphone(), this.pcConfig()]);
    if (micResult.status === 'fulfilled') {
      call.localStream = micResult.value;
    }
    if (micResult.status === 'rejected') {
      throw micResult.reason;
    }
    if (pcResult.status === 'rejected') {
      throw pcResult.reason;
    }
    return pcResult.value;
  }

  // ----- call quality (getStats every 2 s) ---------------------------------

  startQualityTimer() {
    if (this.qualityTimer === null) {
      this.qualityTimer = setInterval(() => this.sampleQuality(), QUALITY_INTERVAL_MS);
    }
  }

  stopQualityTimerIfIdle() {
    if (this.qualityTimer !== null && !this.calls.some((c) => c.accepted)) {
      clearInterval(this.qualityTimer);
      this.qualityTimer = null;
    }
  }

  async sampleQuality() {
    const calls = this.calls.filter((c) => c.accepted && !c.done && c.session && c.session.connection);
    let updated = false;
    for (const call of calls) {
      let report;
      try {
        report = await call.session.connection.getStats();
      } catch (err) {
        continue;
      }
      if (call.done) {
        continue;
      }
      const sample = statsSample(report);
      const q = qualityFrom(call.qualitySample, sample);
      if (sample.packetsReceived !== null) {
        call.qualitySample = sample;
      }
      if (q) {
        call.quality = q;
        updated = true;
      }
    }
    if (updated) {
      this.changed();
    }
  }

  // ----- calls -------------------------------------------------------------

  newCall(direction, number, display = '') {
    this.callSeq += 1;
    const call = {
      id: this.callSeq,
      direction,
      number,
      display,
      state: direction === 'in' ? CALL.INCOMING : CALL.CALLING,
      data: {},
      session: null,
      localStream: null,
      remoteStream: null,
      muted: false,
      held: false,
      remoteHeld: false,
      accepted: false,
      acceptedAt: null,
      startedAt: Date.now(),
      duration: 0,
      endCause: '',
      done: false,
      waiter: null,
      answering: null,
      ice: null,
      quality: null,
      qualitySample: null,
      transferring: null, // {type, target} while a REFER is pending
      transferred: null, // {type, target} once the transfer succeeded
      referWaiter: null,
      timings: {
        direction,
        call_started: now(),
        invite_sent: null,
        invite_received: null,
        accepted: null,
        confirmed: null,
        ended: null,
      },
    };
    this.calls.push(call);
    return call;
  }

  targetUri(target) {
    const t = String(target || '').replace(/[\s()]/g, '');
    if (!t) {
      throw new Error('Enter a number to call');
    }
    if (/^sips?:/i.test(t)) {
      return t;
    }
    if (t.includes('@')) {
      return `sip:${t}`;
    }
    if (!TARGET_RE.test(t)) {
      throw new Error(`Invalid number: ${t}`);
    }
    return `sip:${t}@${this.config.sipDomain}`;
  }

  settleCall(call, event, error) {
    const waiter = call.waiter;
    if (!waiter || (!error && waiter.event !== event)) {
      return;
    }
    call.waiter = null;
    if (error) {
      waiter.reject(new Error(error));
    } else {
      waiter.resolve(true);
    }
  }

  async call(target) {
    if (!this.ua || this.reg.state !== REG.REGISTERED) {
      throw new Error('Not registered');
    }
    if (this.calls.length) {
      throw new Error('A call is already in progress');
    }
    return this.placeCall(target).promise;
  }

  // Places an outgoing call and makes it the active one. Returns {call,
  // promise}: the promise resolves once the INVITE has been sent.
  placeCall(target) {
    const uri = this.targetUri(target);
    const number = String(target).trim();
    this.error = null;
    const call = this.newCall('out', number);
    this.activate(call);
    this.changed();
    return { call, promise: this.dial(call, uri, number) };
  }

  async dial(call, uri, number) {
    let pcConfig;
    try {
      pcConfig = await this.prepareMedia(call);
    } catch (err) {
      this.finish(call, { originator: 'local', cause: err.message, failed: true });
      this.setError(err.message);
      throw err;
    }
    if (call.done) {
      stopStream(call.localStream);
      throw new Error('Call cancelled');
    }
    const done = new Promise((resolve, reject) => {
      call.waiter = { event: 'sending', resolve, reject };
    });
    try {
      const handlers = this.sessionHandlers(call);
      const { trunkPrefix, trunkCodec } = this.config;
      if (trunkCodec && trunkPrefix && number.startsWith(trunkPrefix) && number.length > trunkPrefix.length) {
        call.trunkCodec = trunkCodec;
        handlers.sdp = (e) => {
          if (e.originator === 'local' && e.type === 'offer') {
            e.sdp = restrictCodecs(e.sdp, trunkCodec);
          }
        };
      }
      call.session = this.ua.call(uri, {
        mediaStream: call.localStream,
        pcConfig,
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
        eventHandlers: handlers,
      });
    } catch (err) {
      this.finish(call, { originator: 'local', cause: err.message, failed: true });
      this.setError(err.message);
      throw err;
    }
    return done;
  }

  onIncoming(session, request) {
    if (this.calls.length >= MAX_CALLS || !this.creds) {
      try {
        session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      } catch (err) {
        // ignore
      }
      return;
    }
    const identity = session.remote_identity;
    const number = (identity && identity.uri && identity.uri.user) || 'unknown';
    const display = (identity && identity.display_name) || '';
    const call = this.newCall('in', number, display);
    try {
      call.data = extractCallData(request);
    } catch (err) {
      call.data = {}; // never let odd headers stop the call from ringing
    }
    call.timings.invite_received = now();
    call.session = session;
    for (const [name, fn] of Object.entries(this.sessionHandlers(call))) {
      session.on(name, fn);
    }
    if (!this.current) {
      this.activate(call); // otherwise it waits behind the active call
    }
    this.changed();
    this.emit('incoming', {
      number, display, id: call.id, waiting: call !== this.current,
    });
  }

  // Answers the incoming call (id, or the one ringing / waiting). A call
  // that is connected gets put on hold first; the answered call becomes the
  // active one.
  async answer(id = null) {
    const call = id === null || id === undefined ? this.incomingCall() : this.findCall(id);
    if (!call || call.direction !== 'in' || call.state !== CALL.INCOMING || !call.session) {
      throw new Error('No incoming call to answer');
    }
    if (call.answering) {
      return call.answering;
    }
    this.error = null;
    call.answering = (async () => {
      const others = this.calls.filter((c) => c !== call && !c.done);
      if (others.some((c) => c.direction === 'out' && !c.accepted)) {
        throw new Error('Hang up the call being placed first');
      }
      for (const other of others) {
        if (other.accepted && !other.held) {
          await this.holdQuietly(other);
        }
      }
      if (call.done) {
        throw new Error('Call ended before it was answered');
      }
      this.activate(call);
      this.changed();
      let pcConfig;
      try {
        pcConfig = await this.prepareMedia(call);
      } catch (err) {
        this.setError(err.message);
        if (!call.done) {
          try {
            call.session.terminate({ status_code: 480, reason_phrase: 'Temporarily Unavailable' });
          } catch (e) {
            this.finish(call, { originator: 'local', cause: err.message, failed: true });
          }
        }
        throw err;
      }
      if (call.done) {
        stopStream(call.localStream);
        throw new Error('Call ended before it was answered');
      }
      const accepted = new Promise((resolve, reject) => {
        call.waiter = { event: 'accepted', resolve, reject };
      });
      call.session.answer({
        mediaStream: call.localStream,
        pcConfig,
        mediaConstraints: { audio: true, video: false },
      });
      return accepted;
    })();
    call.answering.catch(() => {
      if (!call.done && !call.accepted) {
        call.answering = null; // may be tried again
        this.changed();
      }
    });
    this.changed();
    return call.answering;
  }

  // Rejects the incoming call (id, or the one ringing / waiting) with 486.
  reject(id = null) {
    const call = id === null || id === undefined ? this.incomingCall() : this.findCall(id);
    if (!call || call.state !== CALL.INCOMING || !call.session) {
      return false;
    }
    try {
      call.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
    } catch (err) {
      this.finish(call, { originator: 'local', cause: 'Rejected', failed: true });
    }
    return true;
  }

  terminateCall(call) {
    if (call.done) {
      return;
    }
    if (!call.session) {
      // Still acquiring microphone / TURN credentials: nothing sent yet.
      this.finish(call, { originator: 'local', cause: 'Canceled', failed: true });
      return;
    }
    try {
      call.session.terminate();
    } catch (err) {
      this.finish(call, { originator: 'local', cause: 'Terminated', failed: false });
    }
  }

  // Ends the active call (cancel, reject or BYE).
  hangup() {
    const call = this.current;
    if (!call) {
      return false;
    }
    if (call.state === CALL.INCOMING && !call.answering) {
      return this.reject(call.id);
    }
    this.terminateCall(call);
    return true;
  }

  requireEstablished() {
    const call = this.current;
    if (!call || !call.session || !call.accepted || call.done) {
      throw new Error('No established call');
    }
    return call;
  }

  mute(on = true) {
    const call = this.current;
    if (!call || !call.session || call.done) {
      throw new Error('No active call');
    }
    if (on) {
      call.session.mute({ audio: true });
    } else {
      call.session.unmute({ audio: true });
    }
    call.muted = call.session.isMuted().audio;
    this.changed();
    return call.muted;
  }

  hold(on = true) {
    let call;
    try {
      call = this.requireEstablished();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.holdCall(call, on);
  }

  holdCall(call, on = true) {
    const session = call.session;
    if (Boolean(on) === session.isOnHold().local) {
      return Promise.resolve(call.held);
    }
    if (call.waiter) {
      return Promise.reject(new Error('Another hold/resume is pending'));
    }
    return new Promise((resolve, reject) => {
      // Settled by the re-INVITE's success callback, or rejected by finish()
      // when JsSIP ends the call because the re-INVITE failed.
      call.waiter = { event: 'reinvite', resolve: () => resolve(Boolean(on)), reject };
      const done = () => this.settleCall(call, 'reinvite');
      const started = on ? session.hold({}, done) : session.unhold({}, done);
      if (!started) {
        call.waiter = null;
        reject(new Error('Cannot change hold now (another re-INVITE is pending)'));
      }
    });
  }

  // Puts call on hold before another call gets the audio; a call that ends
  // meanwhile is fine (nothing left to hold).
  async holdQuietly(call) {
    try {
      await this.holdCall(call, true);
    } catch (err) {
      if (!call.done) {
        throw err;
      }
    }
  }

  // Makes another call the active one: the active call goes on hold, the
  // other one is resumed (or answered when it is a waiting incoming call).
  // id: the call to switch to; default the other call. Resolves with its id.
  async switchTo(id = null) {
    const target = id === null || id === undefined
      ? this.calls.find((c) => c !== this.current && !c.done)
      : this.findCall(id);
    if (!target || target.done) {
      throw new Error('No other call to switch to');
    }
    if (target.state === CALL.INCOMING) {
      await this.answer(target.id);
      return target.id;
    }
    if (!target.accepted) {
      throw new Error('That call is not connected yet');
    }
    const active = this.current;
    if (active && active !== target && !active.done) {
      if (!active.accepted) {
        throw new Error('Hang up the call being placed first');
      }
      if (!active.held) {
        await this.holdQuietly(active);
      }
    }
    if (target.done) {
      throw new Error('That call has ended');
    }
    this.activate(target);
    this.changed();
    if (target.held) {
      await this.holdCall(target, false);
    }
    return target.id;
  }

  sendDTMF(digits) {
    const call = this.requireEstablished();
    const tones = String(digits || '');
    if (!DTMF_RE.test(tones)) {
      throw new Error(`Invalid DTMF digits: ${tones}`);
    }
    call.session.sendDTMF(tones, { transportType: 'RFC2833' });
    return true;
  }

  // ----- transfers ---------------------------------------------------------

  // Sends REFER on call's dialog. Resolves when the transfer is accepted
  // (NOTIFY with a 2xx sipfrag, or the dialog ended after 202 Accepted);
  // the call is then ended. Rejects with a readable reason otherwise.
  refer(call, target, options, info) {
    if (call.transferring) {
      return Promise.reject(new Error('A transfer of this call is already in progress'));
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let acceptedByServer = false;
      let timer = null;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        call.referWaiter = null;
        call.transferring = null;
      };
      const succeed = () => {
        if (settled) {
          return;
        }
        settle();
        call.transferred = info;
        this.terminateCall(call);
        this.changed();
        this.emit('transferred', { id: call.id, number: call.number, ...info });
        resolve(true);
      };
      const fail = (message) => {
        if (settled) {
          return;
        }
        settle();
        this.changed();
        reject(new Error(message));
      };
      timer = setTimeout(() => fail('Transfer timed out'), TRANSFER_TIMEOUT_MS);
      call.referWaiter = {
        ended: () => (acceptedByServer ? succeed() : fail('Transfer failed: the call ended')),
      };
      call.transferring = info;
      this.changed();
      let subscriber;
      try {
        subscriber = call.session.refer(target, {
          ...options,
          eventHandlers: {
            requestSucceeded: () => {
              acceptedByServer = true;
            },
            requestFailed: (e) => {
              const r = e.response;
              fail(`Transfer rejected: ${r ? `${r.status_code} ${r.reason_phrase || ''}`.trim() : e.cause}`);
            },
            accepted: succeed,
            failed: (e) => {
              const s = e.status_line || {};
              fail(`Transfer failed: ${`${s.status_code || ''} ${s.reason_phrase || ''}`.trim() || 'unknown'}`);
            },
          },
        });
      } catch (err) {
        fail(`Transfer failed: ${err.message}`);
        return;
      }
      if (!subscriber) {
        fail('Transfer not possible in this call state');
      }
    });
  }

  // Blind transfer of the active call to number.
  transferTo(number) {
    let call;
    let uri;
    try {
      call = this.requireEstablished();
      uri = this.targetUri(number);
    } catch (err) {
      return Promise.reject(err);
    }
    const target = String(number).trim();
    return this.refer(call, uri, {}, { type: 'blind', target });
  }

  // Attended transfer, step 1: hold the active call and call number.
  // Resolves once the consultation INVITE has been sent.
  async consult(number) {
    const first = this.requireEstablished();
    if (this.transfer) {
      throw new Error('A transfer is already in progress');
    }
    if (this.calls.length >= MAX_CALLS) {
      throw new Error('Two calls already: end one before consulting');
    }
    if (first.transferring) {
      throw new Error('A transfer of this call is already in progress');
    }
    this.targetUri(number); // throws on an invalid number before anything is sent
    if (!first.held) {
      await this.holdCall(first, true);
    }
    if (first.done) {
      throw new Error('The call ended');
    }
    const target = String(number).trim();
    this.transfer = { first, consult: null, target, state: 'consulting' };
    const { call, promise } = (() => {
      try {
        return this.placeCall(target);
      } catch (err) {
        this.transfer = null;
        this.changed();
        throw err;
      }
    })();
    this.transfer.consult = call;
    this.changed();
    return promise;
  }

  // Attended transfer, step 2: REFER the first call's party to the
  // consultation target (Refer-To with Replaces of the consultation dialog).
  async completeTransfer() {
    const t = this.transfer;
    if (!t || !t.consult) {
      throw new Error('No consultation call');
    }
    const { first, consult } = t;
    if (first.done) {
      throw new Error('The call to transfer has ended');
    }
    if (consult.done || !consult.accepted) {
      throw new Error('The consultation call is not connected');
    }
    t.state = 'transferring';
    this.changed();
    try {
      await this.refer(first, consult.session.remote_identity.uri, { replaces: consult.session },
        { type: 'attended', target: consult.number });
    } catch (err) {
      if (this.transfer === t) {
        if (first.done || consult.done) {
          this.transfer = null;
        } else {
          t.state = 'consulting';
        }
        this.changed();
      }
      throw err;
    }
    // Asterisk ends the consultation call as well; do not wait for it.
    consult.transferred = { type: 'attended', target: first.number };
    this.terminateCall(consult);
    if (this.transfer === t) {
      this.transfer = null;
      this.changed();
    }
    return true;
  }

  // Attended transfer cancelled: hang up the consultation, resume the first.
  async cancelTransfer() {
    const t = this.transfer;
    if (!t) {
      throw new Error('No transfer in progress');
    }
    this.transfer = null;
    if (t.consult && !t.consult.done) {
      this.terminateCall(t.consult);
    }
    this.changed();
    if (t.first.done) {
      return false;
    }
    this.activate(t.first);
    this.changed();
    if (t.first.held) {
      await this.holdCall(t.first, false);
    }
    return true;
  }

  // ----- session events ----------------------------------------------------

  attachRemote(call, stream) {
    call.remoteStream = stream;
    if (this.current === call && this.remoteAudio.srcObject !== stream) {
      this.remoteAudio.srcObject = stream;
      const p = this.remoteAudio.play();
      if (p && p.catch) {
        p.catch(() => {});
      }
    }
  }

  onTrack(call, ev) {
    if (call.done || ev.track.kind !== 'audio') {
      return;
    }
    let stream = ev.streams && ev.streams[0];
    if (!stream) {
      stream = call.remoteStream || new MediaStream();
      if (!stream.getTracks().includes(ev.track)) {
        stream.addTrack(ev.track);
      }
    }
    this.attachRemote(call, stream);
  }

  // Fallback when no 'track' event was seen (should not happen).
  ensureRemote(call) {
    const pc = call.session && call.session.connection;
    if (call.remoteStream || !pc) {
      return;
    }
    const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === 'audio');
    if (tracks.length) {
      this.attachRemote(call, new MediaStream(tracks));
    }
  }

  // JsSIP waits for ICE gathering to complete, which can take many seconds.
  // Cut it short: ice_gathering_timeout_ms after the first candidate, or
  // for relay-only calls shortly after the first relay candidate.
  onIceCandidate(call, e) {
    if (!call.ice || call.ice.ready !== e.ready) {
      if (call.ice) {
        clearTimeout(call.ice.timer);
      }
      call.ice = { ready: e.ready, timer: null };
    }
    if (call.ice.timer !== null) {
      return;
    }
    const relayOnly = this.config.iceTransportPolicy === 'relay';
    if (relayOnly && candidateType(e.candidate) !== 'relay') {
      return;
    }
    const delay = relayOnly
      ? Math.min(RELAY_CUTOFF_MS, this.config.iceGatheringTimeoutMs)
      : this.config.iceGatheringTimeoutMs;
    call.ice.timer = setTimeout(e.ready, delay);
  }

  updateHoldState(call) {
    if (call.done || !call.accepted) {
      return;
    }
    this.setCallState(call, call.held || call.remoteHeld ? CALL.ON_HOLD : CALL.IN_CALL);
  }

  sessionHandlers(call) {
    return {
      peerconnection: (e) => {
        e.peerconnection.addEventListener('track', (ev) => this.onTrack(call, ev));
      },
      icecandidate: (e) => this.onIceCandidate(call, e),
      sending: () => {
        call.timings.invite_sent = now();
        this.settleCall(call, 'sending');
      },
      progress: () => {
        if (call.direction === 'out' && call.state === CALL.CALLING) {
          this.setCallState(call, CALL.RINGING);
        }
      },
      accepted: () => {
        call.timings.accepted = now();
        call.accepted = true;
        call.acceptedAt = Date.now();
        this.ensureRemote(call);
        call.state = CALL.IN_CALL;
        this.updateHoldState(call);
        this.startQualityTimer();
        this.settleCall(call, 'accepted');
        this.emit('accepted', { direction: call.direction, number: call.number, id: call.id });
      },
      confirmed: () => {
        call.timings.confirmed = now();
        this.ensureRemote(call);
      },
      hold: (e) => {
        if (e.originator === 'local') {
          call.held = true;
        } else {
          call.remoteHeld = true;
        }
        this.updateHoldState(call);
      },
      unhold: (e) => {
        if (e.originator === 'local') {
          call.held = false;
        } else {
          call.remoteHeld = false;
        }
        this.updateHoldState(call);
      },
      muted: () => {
        call.muted = true;
        this.changed();
      },
      unmuted: () => {
        call.muted = false;
        this.changed();
      },
      ended: (e) => this.finish(call, { originator: e.originator, cause: e.cause, failed: false }),
      failed: (e) => this.finish(call, {
        originator: e.originator,
        cause: e.cause,
        failed: true,
        statusCode: (e.message && e.message.status_code) || null,
      }),
    };
  }

  finish(call, { originator, cause, failed, statusCode = null }) {
    if (call.done) {
      return;
    }
    call.done = true;
    call.timings.ended = now();
    if (call.ice) {
      clearTimeout(call.ice.timer);
    }
    stopStream(call.localStream);
    call.duration = call.acceptedAt ? Math.round((Date.now() - call.acceptedAt) / 1000) : 0;
    call.endCause = cause || (failed ? 'Failed' : 'Terminated');
    // A pending REFER: the dialog ending after 202 Accepted means success.
    if (call.referWaiter) {
      call.referWaiter.ended();
    }
    this.calls = this.calls.filter((c) => c !== call);
    const t = this.transfer;
    if (t && (t.first === call || t.consult === call)) {
      if (t.state === 'transferring') {
        if (t.consult === call && !call.transferred) {
          call.transferred = { type: 'attended', target: t.first.number };
        }
      } else {
        this.transfer = null; // the other call stays (on hold) as a normal call
      }
    }
    if (this.current === call) {
      // The other call (on hold, or waiting) becomes the active one; a held
      // call stays on hold until resumed.
      this.activate(this.calls[0] || null);
    }
    call.remoteStream = null;
    this.settleCall(call, null, call.endCause);
    if (!this.calls.length) {
      this.idleState = CALL.ENDED;
      this.last = call;
    }
    this.stopQualityTimerIfIdle();

    let result;
    if (call.transferred) {
      result = 'transferred';
    } else if (call.accepted) {
      result = 'answered';
    } else if (call.direction === 'in') {
      result = originator === 'local' ? 'rejected' : 'missed';
    } else {
      result = call.endCause === JsSIP.C.causes.CANCELED ? 'cancelled' : 'failed';
    }
    this.changed();
    this.emit('ended', {
      id: call.id,
      direction: call.direction,
      number: call.number,
      cause: call.endCause,
      originator,
      failed,
      result,
      statusCode,
      duration: call.duration,
      startedAt: call.startedAt,
      callUUID: callUUID(call.data),
      transfer: call.transferred ? { ...call.transferred } : null,
    });
  }
}
