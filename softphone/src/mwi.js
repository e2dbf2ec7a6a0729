// Message waiting indication (RFC 3842 message-summary bodies). Pure.
//
//   Messages-Waiting: yes
//   Message-Account: sip:1000@pbx.example.org
//   Voice-Message: 2/1 (0/0)
//
// -> {waiting: true, new: 2, old: 1, urgent_new: 0, urgent_old: 0,
//     account: 'sip:1000@pbx.example.org'}

const MAX_COUNT = 99999;

const count = (v) => {
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? Math.min(n, MAX_COUNT) : 0;
};

export function emptyMWI() {
  return { waiting: false, new: 0, old: 0, urgent_new: 0, urgent_old: 0, account: '' };
}

export function parseMessageSummary(body) {
  const mwi = emptyMWI();
  if (typeof body !== 'string') {
    return mwi;
  }
  let sawWaiting = false;
  for (const raw of body.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z-]+)\s*:\s*(.*?)\s*$/.exec(raw);
    if (!m) {
      continue;
    }
    const name = m[1].toLowerCase();
    const value = m[2];
    if (name === 'messages-waiting') {
      sawWaiting = true;
      mwi.waiting = value.toLowerCase() === 'yes';
    } else if (name === 'message-account') {
      mwi.account = value.slice(0, 200);
    } else if (name === 'voice-message') {
      // new/old, optionally followed by (urgent_new/urgent_old)
      const v = /^(\d+)\s*\/\s*(\d+)(?:\s*\(\s*(\d+)\s*\/\s*(\d+)\s*\))?/.exec(value);
      if (v) {
        mwi.new = count(v[1]);
        mwi.old = count(v[2]);
        mwi.urgent_new = count(v[3]);
        mwi.urgent_old = count(v[4]);
      }
    }
  }
  if (!sawWaiting) {
    mwi.waiting = mwi.new > 0;
  }
  return mwi;
}
