// SIP/WebRTC logic on top of JsSIP. No DOM access except the remote <audio>.
//
// Events (dispatched on the Phone, an EventTarget):
//   change      any state change (UI re-renders from snapshot())
//   registered  detail {extension}
//   incoming    detail {number, display}
//   accepted    detail {direction, number}
//   ended       detail {direction, number, cause, originator, failed, result,
//               statusCode, duration, startedAt, callUUID}

import JsSIP from 'jssip';
import { TurnCredentials } from './turn.js';

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

export class Phone extends EventTarget {
  constructor(config, { remoteAudio }) {
    super();
    this.config = config;
    this.remoteAudio = remoteAudio;
    this.turn = new TurnCredentials(config.turnCredentialsUrl);
    this.ua = null;
    this.creds = null;
    this.reg = { state: REG.UNREGISTERED, reason: '' };
    this.callState = CALL.IDLE;
    this.current = null; // active call context
    this.last = null; // most recent call context (for timings / ended info)
    this.error = null;
    this.loginWaiter = null;
    this.callSeq = 0;
  }

  // ----- state -------------------------------------------------------------

  snapshot() {
    const call = this.current || this.last;
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

  setCall(state) {
    this.callState = state;
    this.changed();
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
    if (this.current) {
      this.hangup();
    }
    this.stopUA();
    this.creds = null;
    this.turn.reset();
    this.settleLogin('Logged out');
    this.setReg(REG.UNREGISTERED);
    if (this.callState !== CALL.IDLE) {
      this.last = null;
      this.setCall(CALL.IDLE);
    }
    return Promise.resolve(true);
  }

  // ----- media helpers -----------------------------------------------------

  async microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error('Microphone unavailable: open the page over HTTPS');
    }
    try {
      return await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
    } catch (err) {
      throw new Error(micError(err));
    }
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

  // ----- calls -------------------------------------------------------------

  newCall(direction, number, display = '') {
    this.callSeq += 1;
    const call = {
      id: this.callSeq,
      direction,
      number,
      display,
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
      ice: null,
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
    this.current = call;
    this.last = call;
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
    if (this.current) {
      throw new Error('A call is already in progress');
    }
    const uri = this.targetUri(target);
    const number = String(target).trim();
    this.error = null;
    const call = this.newCall('out', number);
    this.setCall(CALL.CALLING);

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
    if (this.current || !this.creds) {
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
    this.setCall(CALL.INCOMING);
    this.emit('incoming', { number, display });
  }

  async answer() {
    const call = this.current;
    if (!call || call.direction !== 'in' || this.callState !== CALL.INCOMING || !call.session) {
      throw new Error('No incoming call to answer');
    }
    if (call.answering) {
      return call.answering;
    }
    this.error = null;
    call.answering = (async () => {
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
    this.changed();
    return call.answering;
  }

  reject() {
    const call = this.current;
    if (!call || this.callState !== CALL.INCOMING || !call.session) {
      return false;
    }
    try {
      call.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
    } catch (err) {
      this.finish(call, { originator: 'local', cause: 'Rejected', failed: true });
    }
    return true;
  }

  hangup() {
    const call = this.current;
    if (!call) {
      return false;
    }
    if (this.callState === CALL.INCOMING && !call.answering) {
      return this.reject();
    }
    if (!call.session) {
      // Still acquiring microphone / TURN credentials: nothing sent yet.
      this.finish(call, { originator: 'local', cause: 'Canceled', failed: true });
      return true;
    }
    try {
      call.session.terminate();
    } catch (err) {
      this.finish(call, { originator: 'local', cause: 'Terminated', failed: false });
    }
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

  async hold(on = true) {
    const call = this.requireEstablished();
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

  sendDTMF(digits) {
    const call = this.requireEstablished();
    const tones = String(digits || '');
    if (!DTMF_RE.test(tones)) {
      throw new Error(`Invalid DTMF digits: ${tones}`);
    }
    call.session.sendDTMF(tones, { transportType: 'RFC2833' });
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
    this.setCall(call.held || call.remoteHeld ? CALL.ON_HOLD : CALL.IN_CALL);
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
        if (call.direction === 'out' && this.callState === CALL.CALLING) {
          this.setCall(CALL.RINGING);
        }
      },
      accepted: () => {
        call.timings.accepted = now();
        call.accepted = true;
        call.acceptedAt = Date.now();
        this.ensureRemote(call);
        this.setCall(CALL.IN_CALL);
        this.settleCall(call, 'accepted');
        this.emit('accepted', { direction: call.direction, number: call.number });
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
    if (this.current === call) {
      this.current = null;
      this.remoteAudio.srcObject = null;
    }
    call.remoteStream = null;
    this.settleCall(call, null, call.endCause);

    let result;
    if (call.accepted) {
      result = 'answered';
    } else if (call.direction === 'in') {
      result = originator === 'local' ? 'rejected' : 'missed';
    } else {
      result = call.endCause === JsSIP.C.causes.CANCELED ? 'cancelled' : 'failed';
    }
    this.setCall(CALL.ENDED);
    this.emit('ended', {
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
    });
  }
}
