// Local call history kept in localStorage (never contains credentials).

const KEY = 'softphone.callLog';
const MAX_ENTRIES = 50;

function read() {
  try {
    const data = JSON.parse(window.localStorage.getItem(KEY) || '[]');
    return Array.isArray(data) ? data.filter((e) => e && typeof e === 'object') : [];
  } catch (err) {
    return [];
  }
}

function write(entries) {
  try {
    window.localStorage.setItem(KEY, JSON.stringify(entries.slice(0, MAX_ENTRIES)));
  } catch (err) {
    // Storage full or disabled: the log is a convenience, keep going.
  }
}

// entry: {direction: 'in'|'out', missed (bool), number, duration (s),
//         time (ISO), result ('answered', 'transferred', 'missed', 'rejected',
//         'cancelled', 'failed'), transfer (optional: {type: 'blind' |
//         'attended', target}), callUUID (optional: X-Genesys-CallUUID of an
//         incoming call)}
export function addCallLogEntry(entry) {
  const entries = read();
  entries.unshift(entry);
  write(entries);
  return entries.slice(0, MAX_ENTRIES);
}

export function callLogEntries() {
  return read();
}

export function clearCallLog() {
  write([]);
}
