// Ringtone synthesised with WebAudio oscillators (no audio file needed).
// Cadence: double ring (0.4 s on, 0.2 s off, 0.4 s on, 2 s off), 400+450 Hz.
// "soft" (a call waiting behind the active call): one short quiet burst
// every 3 s, so the other party's voice stays audible.

const PERIOD_S = 3;
const MODES = {
  normal: { bursts: [[0, 0.4], [0.6, 1.0]], level: 0.12 },
  soft: { bursts: [[0, 0.25]], level: 0.03 },
};

export class Ringtone {
  constructor() {
    this.ctx = null;
    this.nodes = null;
    this.timer = null;
    this.mode = null;
  }

  context() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) {
        return null;
      }
      this.ctx = new Ctx();
    }
    return this.ctx;
  }

  // Call from a user gesture so that later playback is allowed.
  unlock() {
    const ctx = this.context();
    if (ctx && ctx.state === 'suspended') {
      ctx.resume().catch(() => {});
    }
  }

  get playing() {
    return this.nodes !== null;
  }

  start(mode = 'normal') {
    const { bursts, level } = MODES[mode] || MODES.normal;
    if (this.playing && this.mode === mode) {
      return;
    }
    this.stop();
    this.mode = mode;
    const ctx = this.context();
    if (!ctx) {
      return;
    }
    if (ctx.state === 'suspended') {
      ctx.resume().catch(() => {});
    }
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscillators = [400, 450].map((freq) => {
      const osc = ctx.createOscillator();
      osc.type = 'sine';
      osc.frequency.value = freq;
      osc.connect(gain);
      osc.start();
      return osc;
    });
    this.nodes = { gain, oscillators };
    const schedule = () => {
      const t0 = ctx.currentTime + 0.05;
      for (const [on, off] of bursts) {
        gain.gain.setValueAtTime(0, t0 + on);
        gain.gain.linearRampToValueAtTime(level, t0 + on + 0.02);
        gain.gain.setValueAtTime(level, t0 + off - 0.02);
        gain.gain.linearRampToValueAtTime(0, t0 + off);
      }
    };
    schedule();
    this.timer = window.setInterval(schedule, PERIOD_S * 1000);
  }

  stop() {
    this.mode = null;
    if (this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
    if (!this.nodes) {
      return;
    }
    const { gain, oscillators } = this.nodes;
    this.nodes = null;
    for (const osc of oscillators) {
      try {
        osc.stop();
      } catch (err) {
        // already stopped
      }
      osc.disconnect();
    }
    gain.disconnect();
  }
}
