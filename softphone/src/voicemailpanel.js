// The voicemail panel: the agent's messages from the voicemail portal
// (voicemail.js), one shared <audio controls> player, Play / Delete per
// message and a Refresh button. Remote text (caller names, dates) goes
// through textContent only, never innerHTML.
//
// Playing a new (INBOX) message marks it read: once playback has started
// (and the browser holds the whole recording, so no later Range request
// needs the old place), POST read moves it to Old under a new id, and the
// list is fetched again. If the audio link fails (expired, moved), the
// message is looked up again by its msg_id and playback resumes there.

import { VoicemailError, callerText, formatVmDuration } from './voicemail.js';

const STALE_MS = 5 * 60 * 1000; // audio links are valid 10 min (voicemail_portal_audio_url_ttl)
const BUFFER_WAIT_MS = 4000;
const MWI_DEBOUNCE_MS = 400;

const $ = (id) => document.getElementById(id);

function errorText(err) {
  if (err instanceof VoicemailError) {
    return err.message;
  }
  return `voicemail: ${err && err.message ? err.message : String(err)}`;
}

function dateText(m) {
  const d = new Date(m.timestamp * 1000);
  return Number.isNaN(d.getTime()) || !m.timestamp ? m.date : d.toLocaleString();
}

export class VoicemailPanel {
  constructor(client) {
    this.client = client;
    this.el = {
      panel: $('vm-panel'),
      refresh: $('btn-vm-refresh'),
      counts: $('vm-counts'),
      status: $('vm-status'),
      list: $('vm-list'),
      empty: $('vm-empty'),
      now: $('vm-now'),
      audio: $('vm-audio'),
    };
    this.audio = this.el.audio;
    this.account = '';
    this.generation = 0;
    this.listing = null;
    this.listedAt = 0;
    this.queued = null;
    this.running = null;
    this.playing = null; // {msg_id, folder, id, marked, message}
    this.starting = false;
    this.recovered = '';
    this.confirming = ''; // msg_id whose deletion waits for confirmation
    this.mwiTimer = null;
    this.analysis = null; // {ctx, source}: createMediaElementSource works once per element

    this.el.panel.hidden = true;
    this.el.refresh.addEventListener('click', () => {
      this.refresh().catch(() => {});
    });
    this.el.list.addEventListener('click', (e) => this.onListClick(e));
    this.el.list.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.confirming) {
        e.preventDefault(); // keeps the page's Escape (hang up) out of it
        this.cancelDelete();
      }
    });
    this.audio.addEventListener('playing', () => this.onPlaying());
    this.audio.addEventListener('ended', () => this.renderNow());
    this.audio.addEventListener('pause', () => this.renderNow());
    this.audio.addEventListener('error', () => this.onAudioError());
    this.renderList();
  }

  // ----- account -------------------------------------------------------------

  // ext of the logged-in agent, '' when logged out.
  setAccount(ext) {
    const account = this.client.enabled ? String(ext || '') : '';
    if (account === this.account) {
      return;
    }
    this.generation += 1;
    this.account = account;
    this.listing = null;
    this.listedAt = 0;
    this.queued = null;
    this.confirming = '';
    clearTimeout(this.mwiTimer);
    this.stopAudio();
    this.setStatus('');
    this.el.panel.hidden = !account;
    this.renderList();
  }

  // A message-summary NOTIFY arrived: fetch the list (bursts coalesced).
  onMWI() {
    if (!this.account) {
      return;
    }
    clearTimeout(this.mwiTimer);
    this.mwiTimer = setTimeout(() => this.refresh().catch(() => {}), MWI_DEBOUNCE_MS);
  }

  // ----- list ----------------------------------------------------------------

  // Fetches the list (both folders). Calls while one is under way share the
  // next fetch, so the result is never older than the call.
  refresh() {
    if (!this.account) {
      return Promise.reject(this.notReady());
    }
    if (this.queued) {
      return this.queued;
    }
    const gen = this.generation;
    const p = (this.running || Promise.resolve()).catch(() => {}).then(() => {
      if (this.queued === p) {
        this.queued = null;
      }
      return this.load(gen);
    });
    this.queued = p;
    this.running = p;
    return p;
  }

  notReady() {
    return new VoicemailError(-1, this.client.enabled
      ? 'voicemail: not logged in'
      : 'voicemail: not configured on this server');
  }

  async load(gen) {
    if (gen !== this.generation) {
      throw new VoicemailError(-1, 'voicemail: logged out');
    }
    // Refresh stays enabled (a click joins the next fetch): disabling it
    // would take the keyboard focus away.
    this.el.panel.setAttribute('aria-busy', 'true');
    try {
      const listing = await this.client.list();
      if (gen !== this.generation) {
        throw new VoicemailError(-1, 'voicemail: logged out');
      }
      this.listing = listing;
      this.listedAt = Date.now();
      if (this.confirming && !this.byMsgId(this.confirming)) {
        this.confirming = '';
      }
      this.setStatus('');
      this.renderList();
      return listing;
    } catch (err) {
      if (gen === this.generation) {
        this.setStatus(errorText(err), true);
        if (!this.listing) {
          this.el.counts.textContent = '';
        }
      }
      throw err;
    } finally {
      if (gen === this.generation) {
        this.el.panel.removeAttribute('aria-busy');
      }
    }
  }

  find(folder, id) {
    return this.listing ? this.listing.messages.find((m) => m.folder === folder && m.id === id) || null : null;
  }

  byMsgId(msgId) {
    return msgId && this.listing ? this.listing.messages.find((m) => m.msg_id === msgId) || null : null;
  }

  // ----- playback ------------------------------------------------------------

  // Plays a message in the panel's player; resolves when playback started.
  async play(folder, id) {
    if (!this.account) {
      throw this.notReady();
    }
    this.recovered = '';
    let m = this.find(folder, id);
    if (!m || Date.now() - this.listedAt > STALE_MS) {
      await this.refresh();
      m = this.find(folder, id);
    }
    if (!m) {
      throw new VoicemailError(404);
    }
    return this.start(m, 0, true);
  }

  async start(m, at, retry) {
    if (!m.audio_url) {
      throw new VoicemailError(-1, 'voicemail: this message has no audio link');
    }
    this.playing = {
      msg_id: m.msg_id, folder: m.folder, id: m.id, marked: m.folder !== 'INBOX', message: m,
    };
    this.starting = true;
    this.setStatus('');
    try {
      this.audio.src = m.audio_url;
      if (at > 0) {
        this.audio.currentTime = at;
      }
      this.renderNow();
      this.markRows();
      await this.audio.play();
    } catch (err) {
      if (err && err.name === 'NotAllowedError') {
        const e = new VoicemailError(-1, 'voicemail: the browser blocked playback, press Play in the player');
        this.setStatus(e.message, true);
        throw e;
      }
      if (err && err.name === 'AbortError') {
        throw new VoicemailError(-1, 'voicemail: playback interrupted');
      }
      // The link failed (expired, or the message moved): list again once.
      if (retry && m.msg_id) {
        await this.refresh();
        const again = this.byMsgId(m.msg_id);
        if (again) {
          this.starting = false;
          return this.start(again, at, false);
        }
      }
      const e = new VoicemailError(-1, 'voicemail: the message could not be played');
      this.setStatus(e.message, true);
      throw e;
    } finally {
      this.starting = false;
    }
    const p = this.playing;
    return p ? { folder: p.folder, id: p.id, msg_id: p.msg_id } : null;
  }

  onPlaying() {
    this.renderNow();
    const p = this.playing;
    if (p && !p.marked) {
      p.marked = true;
      this.markRead(p).catch(() => {});
    }
  }

  // Marks a new message read once it is playing and fully buffered.
  async markRead(p) {
    const gen = this.generation;
    await this.waitBuffered(BUFFER_WAIT_MS);
    if (gen !== this.generation) {
      return;
    }
    try {
      const moved = await this.client.markRead(p.folder, p.id);
      if (moved && moved.folder && moved.id) {
        p.folder = moved.folder;
        p.id = moved.id;
        if (moved.audio_url) {
          p.message = moved;
        }
      }
    } catch (err) {
      if (gen === this.generation) {
        this.setStatus(errorText(err), true);
      }
    }
    if (gen === this.generation) {
      await this.refresh().catch(() => {});
    }
  }

  waitBuffered(ms) {
    const a = this.audio;
    const full = () => {
      const d = a.duration;
      if (!Number.isFinite(d) || d <= 0) {
        return false;
      }
      for (let i = 0; i < a.buffered.length; i += 1) {
        if (a.buffered.start(i) <= 0.05 && a.buffered.end(i) >= d - 0.05) {
          return true;
        }
      }
      return false;
    };
    const end = performance.now() + ms;
    return new Promise((resolve) => {
      const check = () => {
        if (full() || performance.now() >= end) {
          resolve();
        } else {
          setTimeout(check, 100);
        }
      };
      check();
    });
  }

  // The link stopped working during playback (expired, or the message was
  // moved by mark-read before the browser had all of it): resume from the
  // same position at the message's current place.
  onAudioError() {
    const p = this.playing;
    if (this.starting || !p || !this.audio.getAttribute('src')) {
      return;
    }
    if (this.recovered === p.msg_id || !p.msg_id) {
      this.setStatus('voicemail: the message could not be played', true);
      return;
    }
    this.recovered = p.msg_id;
    const at = this.audio.currentTime || 0;
    this.refresh().then(() => {
      const again = this.byMsgId(p.msg_id);
      if (!again || this.playing !== p) {
        return null;
      }
      return this.start(again, at, false);
    }).catch(() => {});
  }

  stopAudio() {
    this.playing = null;
    this.recovered = '';
    this.audio.pause();
    if (this.audio.getAttribute('src')) {
      this.audio.removeAttribute('src');
      this.audio.load();
    }
    this.renderNow();
  }

  // ----- delete --------------------------------------------------------------

  async remove(folder, id) {
    if (!this.account) {
      throw this.notReady();
    }
    const p = this.playing;
    if (p && p.folder === folder && p.id === id) {
      this.stopAudio();
    }
    let result;
    try {
      result = await this.client.remove(folder, id);
    } catch (err) {
      this.setStatus(errorText(err), true);
      throw err;
    }
    this.confirming = '';
    await this.refresh().catch(() => {});
    return result;
  }

  askDelete(msgId) {
    this.confirming = msgId;
    this.renderList();
    const keep = this.el.list.querySelector('li.confirming .vm-keep');
    if (keep) {
      keep.focus();
    }
  }

  cancelDelete() {
    const msgId = this.confirming;
    this.confirming = '';
    this.renderList();
    this.focusRow(msgId, '.vm-delete');
  }

  onListClick(e) {
    const button = e.target.closest('button');
    const li = button ? button.closest('li[data-id]') : null;
    if (!li) {
      return;
    }
    const { folder, id, msgId } = li.dataset;
    if (button.classList.contains('vm-play')) {
      this.play(folder, id).catch(() => {});
    } else if (button.classList.contains('vm-delete')) {
      this.askDelete(msgId);
    } else if (button.classList.contains('vm-keep')) {
      this.cancelDelete();
    } else if (button.classList.contains('vm-confirm')) {
      this.remove(folder, id).then(() => this.el.refresh.focus(), () => {});
    }
  }

  // ----- test hook: tone analysis of the player's output ---------------------

  // dB above the median level of 0-4 kHz at each frequency, averaged over ms
  // (as tests/integration/conftest.py ANALYSE_JS does for calls). The player
  // is routed through one AudioContext, made on first use and kept (it also
  // feeds the speakers, so the message stays audible).
  async toneLevels(freqs, ms = 1500) {
    if (!this.analysis) {
      const ctx = new AudioContext();
      const source = ctx.createMediaElementSource(this.audio);
      source.connect(ctx.destination);
      this.analysis = { ctx, source };
    }
    const { ctx, source } = this.analysis;
    await ctx.resume();
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    source.connect(an);
    const buf = new Float32Array(an.frequencyBinCount);
    const acc = new Float32Array(an.frequencyBinCount);
    let n = 0;
    try {
      const end = performance.now() + Math.max(100, Number(ms) || 0);
      while (performance.now() < end) {
        // eslint-disable-next-line no-await-in-loop
        await new Promise((r) => { setTimeout(r, 100); });
        an.getFloatFrequencyData(buf);
        for (let i = 0; i < buf.length; i += 1) {
          acc[i] += Math.max(buf[i], -160);
        }
        n += 1;
      }
    } finally {
      source.disconnect(an);
    }
    const binHz = ctx.sampleRate / an.fftSize;
    const avg = Array.from(acc, (v) => v / Math.max(n, 1));
    const upto = Math.floor(4000 / binHz);
    const sorted = avg.slice(2, upto).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    return freqs.map((f) => {
      const b = Math.round(Number(f) / binHz);
      let peak = -1e9;
      for (let i = Math.max(0, b - 2); i <= b + 2 && i < avg.length; i += 1) {
        peak = Math.max(peak, avg[i]);
      }
      return peak - median;
    });
  }

  setSpeaker(id) {
    if (typeof this.audio.setSinkId === 'function') {
      this.audio.setSinkId(id || '').catch(() => {});
    }
  }

  // ----- rendering -----------------------------------------------------------

  setStatus(text, isError = false) {
    this.el.status.hidden = !text;
    this.el.status.textContent = text;
    this.el.status.classList.toggle('error', Boolean(text) && isError);
  }

  renderNow() {
    const p = this.playing;
    if (!p) {
      this.el.now.textContent = 'Choose a message to play it here.';
      return;
    }
    const m = p.message;
    let what = 'Playing';
    if (this.audio.ended) {
      what = 'Played';
    } else if (this.audio.paused) {
      what = 'Paused';
    }
    this.el.now.textContent = `${what}: ${callerText(m)}, ${dateText(m)} (${formatVmDuration(m.duration)})`;
  }

  markRows() {
    const playing = this.playing ? this.playing.msg_id : '';
    for (const li of this.el.list.children) {
      li.classList.toggle('playing', Boolean(playing) && li.dataset.msgId === playing);
    }
  }

  focusRow(msgId, selector) {
    const li = [...this.el.list.children].find((x) => x.dataset.msgId === msgId);
    const target = li ? li.querySelector(selector) : null;
    (target || this.el.refresh).focus();
  }

  renderList() {
    const listing = this.listing;
    const messages = listing ? listing.messages : [];
    // Keep the keyboard focus on the same button of the same message.
    const active = document.activeElement;
    let focusKey = null;
    if (active && this.el.list.contains(active)) {
      const li = active.closest('li[data-msg-id]');
      const cls = ['vm-play', 'vm-delete', 'vm-keep', 'vm-confirm'].find((c) => active.classList.contains(c));
      focusKey = li ? { msgId: li.dataset.msgId, cls } : null;
    }

    if (!listing) {
      this.el.counts.textContent = this.account ? 'Loading\u2026' : '';
    } else {
      const fresh = listing.counts.INBOX ?? messages.filter((m) => m.folder === 'INBOX').length;
      const old = listing.counts.Old ?? messages.filter((m) => m.folder === 'Old').length;
      this.el.counts.textContent = `${fresh} new, ${old} old`;
    }
    this.el.empty.hidden = !listing || messages.length > 0;
    this.el.list.replaceChildren(...messages.map((m) => this.row(m)));
    this.markRows();
    this.renderNow();

    if (focusKey) {
      // A confirmation that went away leaves the focus on Delete.
      let cls = focusKey.cls || 'vm-play';
      if (['vm-keep', 'vm-confirm'].includes(cls) && focusKey.msgId !== this.confirming) {
        cls = 'vm-delete';
      }
      this.focusRow(focusKey.msgId, `.${cls}`);
    }
  }

  row(m) {
    const li = document.createElement('li');
    li.dataset.folder = m.folder;
    li.dataset.id = m.id;
    li.dataset.msgId = m.msg_id;
    li.dataset.new = String(m.new);
    li.classList.toggle('new', m.new);
    const who = callerText(m);
    const when = dateText(m);

    const info = document.createElement('div');
    info.className = 'vm-info';
    const caller = document.createElement('span');
    caller.className = 'vm-caller';
    caller.textContent = who;
    info.append(caller);
    if (m.new) {
      const badge = document.createElement('span');
      badge.className = 'vm-new';
      badge.textContent = 'New';
      info.append(badge);
    }
    const meta = document.createElement('span');
    meta.className = 'vm-meta';
    const time = document.createElement('time');
    time.dateTime = m.date;
    time.textContent = when;
    const duration = document.createElement('span');
    duration.className = 'vm-duration';
    duration.textContent = formatVmDuration(m.duration);
    duration.title = `${m.duration} s`;
    meta.append(time, ' \u00b7 ', duration);
    info.append(meta);

    const actions = document.createElement('div');
    actions.className = 'vm-actions';
    const button = (cls, text, label, extra = '') => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `small ${cls} ${extra}`.trim();
      b.textContent = text;
      b.setAttribute('aria-label', label);
      return b;
    };
    if (this.confirming && this.confirming === m.msg_id) {
      li.classList.add('confirming');
      const q = document.createElement('span');
      q.className = 'vm-question';
      q.textContent = 'Delete this message?';
      actions.append(
        q,
        button('vm-confirm', 'Delete', `Yes, delete the message from ${who}, ${when}`, 'reject'),
        button('vm-keep', 'Keep', 'No, keep the message'),
      );
    } else {
      actions.append(
        button('vm-play', 'Play', `Play the message from ${who}, ${when}`),
        button('vm-delete', 'Delete', `Delete the message from ${who}, ${when}`),
      );
    }
    li.append(info, actions);
    return li;
  }
}
