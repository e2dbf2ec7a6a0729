// The participant list in the conference box: while an established call to
// a conference number is the active call, the room's participants from the
// voicemail portal (conference.js), polled every 2 s. A conference admin gets
// Mute / Unmute and Remove buttons for every other participant. Remote text
// (names, numbers) goes through textContent only, never innerHTML.
//
// Polling is quiet: a failed request leaves a short note in the list's own
// status line (no alert) and the next one comes later (back-off).

import {
  ConferenceError, Poller, participantText,
} from './conference.js';

const $ = (id) => document.getElementById(id);
const ACTION_ERROR_MS = 6000; // how long a refused action stays in the status

function errorText(err) {
  if (err instanceof ConferenceError) {
    return err.message;
  }
  return `conference: ${err && err.message ? err.message : String(err)}`;
}

function tag(text, kind) {
  const span = document.createElement('span');
  span.className = `conf-tag ${kind}`;
  span.textContent = text;
  return span;
}

export class ConferencePanel {
  constructor(client, pollOptions = {}) {
    this.client = client;
    this.el = {
      box: $('conf-people'),
      title: $('conf-people-title'),
      status: $('conf-status'),
      list: $('conf-participants'),
      // The DTMF controls (index.html): the admin-only ones hide once the
      // participant list says this agent joined as a participant.
      controls: $('conference-box'),
    };
    this.room = '';
    this.data = null; // the last answer for this room
    this.pollError = '';
    this.actionError = '';
    this.actionErrorAt = 0;
    this.busy = new Set(); // participant ids with an action under way
    this.key = '';
    this.poller = new Poller((room) => this.client.participants(room), (err, data) => this.polled(err, data),
      pollOptions);

    this.el.box.hidden = true;
    this.el.list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-participant-action]');
      const li = button && button.closest('li[data-participant-id]');
      if (li && button.getAttribute('aria-disabled') !== 'true') {
        this.act(this.room, li.dataset.participantId, button.dataset.participantAction).catch(() => {});
      }
    });
  }

  // room: the number of the established conference call that is the active
  // call, '' when there is none: stops polling and empties the list.
  setRoom(room) {
    const r = room && this.client.enabled ? String(room) : '';
    if (r === this.room) {
      return;
    }
    this.room = r;
    this.data = null;
    this.busy.clear();
    this.actionError = '';
    this.pollError = r ? 'Loading participants\u2026' : '';
    this.el.box.hidden = !r;
    this.render();
    if (r) {
      this.poller.start(r);
    } else {
      this.poller.stop();
    }
  }

  polled(err, data) {
    if (!err) {
      this.show(data);
      return;
    }
    if (err.status === 401 || err.status === 403) {
      // Not (or no longer) in the room, e.g. still at the PIN prompt: no
      // stale list.
      this.data = null;
    }
    this.pollError = errorText(err);
    this.render();
  }

  show(data) {
    if (!data || data.room !== this.room) {
      return;
    }
    this.data = data;
    this.pollError = '';
    if (this.actionError && Date.now() - this.actionErrorAt > ACTION_ERROR_MS) {
      this.actionError = '';
    }
    this.render();
  }

  // The participants of room (the API hook); shown when it is this room.
  async participants(room) {
    const data = await this.client.participants(room);
    this.show(data);
    return data;
  }

  // action: mute, unmute or kick. The list shows the change at once and is
  // fetched again; a refusal (not an admin, gone, ...) shows in the status.
  async act(room, id, action) {
    const here = () => room === this.room;
    if (here()) {
      this.busy.add(id);
      this.actionError = '';
      this.render();
    }
    try {
      const answer = await this.client.act(room, id, action);
      if (here() && this.data) {
        const people = action === 'kick'
          ? this.data.participants.filter((p) => p.id !== id)
          : this.data.participants.map((p) => (p.id === id ? { ...p, muted: action === 'mute' } : p));
        this.data = { ...this.data, participants: people };
      }
      return answer;
    } catch (err) {
      if (here()) {
        this.actionError = errorText(err);
        this.actionErrorAt = Date.now();
      }
      throw err;
    } finally {
      if (here()) {
        this.busy.delete(id);
        this.render();
        this.poller.refresh();
      }
    }
  }

  render() {
    const d = this.data;
    const people = d ? d.participants : [];
    this.el.title.textContent = d ? `Participants (${people.length})` : 'Participants';
    const status = this.actionError || this.pollError;
    if (this.el.status.textContent !== status) {
      this.el.status.textContent = status;
    }
    this.el.status.hidden = !status;
    this.el.status.classList.toggle('error', Boolean(this.actionError));

    if (this.el.controls) {
      this.el.controls.dataset.role = d ? (d.admin ? 'admin' : 'participant') : '';
    }
    const key = d ? JSON.stringify([d.admin, people, [...this.busy]]) : '';
    if (key === this.key) {
      return;
    }
    this.key = key;
    // The list is rebuilt: keep the keyboard focus on the same button (or,
    // when that participant is gone, on the one now in its place).
    const focused = document.activeElement;
    let refocus = null;
    if (focused && this.el.list.contains(focused) && focused.dataset.kind) {
      const li = focused.closest('li');
      refocus = {
        id: li.dataset.participantId,
        kind: focused.dataset.kind,
        at: [...this.el.list.children].indexOf(li),
      };
    }
    this.el.list.replaceChildren(...people.map((p) => this.item(p, d.admin)));
    if (refocus) {
      const items = [...this.el.list.children];
      const li = items.find((x) => x.dataset.participantId === refocus.id)
        || items.slice(refocus.at).find((x) => x.querySelector('button'))
        || items.reverse().find((x) => x.querySelector('button'));
      const target = li && (li.querySelector(`button[data-kind="${refocus.kind}"]`) || li.querySelector('button'));
      if (target) {
        target.focus();
      }
    }
  }

  item(p, admin) {
    const li = document.createElement('li');
    li.dataset.participantId = p.id;
    li.dataset.muted = String(p.muted);
    li.dataset.admin = String(p.admin);
    li.dataset.me = String(p.me);
    li.classList.toggle('me', p.me);
    const label = participantText(p);

    const info = document.createElement('span');
    info.className = 'conf-info';
    const who = document.createElement('span');
    who.className = 'conf-who';
    who.textContent = label;
    info.append(who);
    if (p.me) {
      info.append(tag('you', 'me'));
    }
    if (p.admin) {
      info.append(tag('admin', 'admin'));
    }
    if (p.muted) {
      info.append(tag('muted', 'muted'));
    }
    li.append(info);

    if (admin && !p.me) {
      const busy = this.busy.has(p.id);
      const actions = document.createElement('span');
      actions.className = 'conf-actions';
      const mute = document.createElement('button');
      mute.type = 'button';
      mute.className = 'small';
      mute.dataset.kind = 'mute';
      mute.dataset.participantAction = p.muted ? 'unmute' : 'mute';
      mute.textContent = p.muted ? 'Unmute' : 'Mute';
      mute.setAttribute('aria-label', `${p.muted ? 'Unmute' : 'Mute'} ${label}`);
      mute.setAttribute('aria-disabled', String(busy));
      const kick = document.createElement('button');
      kick.type = 'button';
      kick.className = 'small reject';
      kick.dataset.kind = 'kick';
      kick.dataset.participantAction = 'kick';
      kick.textContent = 'Remove';
      kick.setAttribute('aria-label', `Remove ${label} from the conference`);
      kick.setAttribute('aria-disabled', String(busy));
      actions.append(mute, kick);
      li.append(actions);
    }
    return li;
  }
}
