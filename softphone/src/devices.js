// Audio device choice: microphone (getUserMedia deviceId, see Phone) and
// speaker (HTMLMediaElement.setSinkId where the browser has it). The choice
// is kept in localStorage; "" means the system default.

export const DEVICE_KEYS = Object.freeze({
  audioinput: 'softphone.microphone',
  audiooutput: 'softphone.speaker',
});

const MAX_ID_LENGTH = 512;

export function sinkSupported(element) {
  return Boolean(element && typeof element.setSinkId === 'function');
}

export class Devices {
  constructor(storage, { remoteAudio }) {
    this.storage = storage;
    this.remoteAudio = remoteAudio;
  }

  selected(kind) {
    const key = DEVICE_KEYS[kind];
    const v = key ? this.storage.get(key) : null;
    return typeof v === 'string' && v.length <= MAX_ID_LENGTH ? v : '';
  }

  remember(kind, id) {
    if (id) {
      this.storage.set(DEVICE_KEYS[kind], id);
    } else {
      this.storage.remove(DEVICE_KEYS[kind]);
    }
  }

  // {audioinput: [{deviceId, label}], audiooutput: [...], selected: {...},
  //  sinkSupported}. Labels are empty until microphone access is granted.
  async list() {
    const result = {
      audioinput: [],
      audiooutput: [],
      selected: { audioinput: this.selected('audioinput'), audiooutput: this.selected('audiooutput') },
      sinkSupported: sinkSupported(this.remoteAudio),
    };
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
      return result;
    }
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch (err) {
      return result;
    }
    const seen = new Set();
    for (const d of devices) {
      if ((d.kind !== 'audioinput' && d.kind !== 'audiooutput') || !d.deviceId) {
        continue;
      }
      const key = `${d.kind}:${d.deviceId}`;
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      const n = result[d.kind].length + 1;
      result[d.kind].push({
        deviceId: d.deviceId,
        label: d.label || (d.kind === 'audioinput' ? `Microphone ${n}` : `Speaker ${n}`),
      });
    }
    return result;
  }

  // Plays the remote audio (and the ringtone's AudioContext, if given) on
  // the speaker id. Rejects when the browser cannot choose the output.
  async applySpeaker(id, audioContext = null) {
    if (!sinkSupported(this.remoteAudio)) {
      throw new Error('This browser cannot choose the speaker');
    }
    await this.remoteAudio.setSinkId(id || '');
    if (audioContext && typeof audioContext.setSinkId === 'function') {
      try {
        await audioContext.setSinkId(id || '');
      } catch (err) {
        // the ringtone keeps the default output
      }
    }
  }
}
