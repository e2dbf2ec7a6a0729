#!/usr/bin/env python3
"""voiceops SIP guard: bans sources that keep failing SIP authentication.

Follows Asterisk's security log (res_security_log) and counts failed
authentications per source address (InvalidAccountID, ChallengeResponseFailed,
InvalidPassword, FailedACL, ...). A source with max_failures failures within
find_time seconds is added to a firewalld ipset (runtime entries, bound to
the drop zone) for ban_time seconds, so every port - WSS, HTTPS, SIP, TURN - goes
silent for it, and its open connections are closed (ss -K).

SIP over WebSocket reaches Asterisk through nginx on the same host. nginx
connects to Asterisk from 127.<b>.<c>.<d> for a client a.b.c.d (proxy_bind),
so each client has its own loopback address in Asterisk's log; the guard maps
it back to the client: while the socket is open, among the client connections
of nginx's listening ports (ss); once it has closed, from nginx's WebSocket
log (one line per closed socket: time, client, loopback address). A failure
that cannot be mapped yet waits up to pending_time seconds for that line.
127.0.0.1 itself is never banned.

  sipguard.py CONFIG            run (systemd unit voiceops-sipguard)
  sipguard.py CONFIG --unban IP remove a ban now
  sipguard.py CONFIG --list     bans made by this guard that have not expired

Standard library only; needs firewall-cmd and ss.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

FAIL_EVENTS = {
    "InvalidAccountID",
    "ChallengeResponseFailed",
    "InvalidPassword",
    "FailedACL",
    "AuthMethodNotAllowed",
    "RequestNotAllowed",
    "UnexpectedAddress",
}
EVENT_RE = re.compile(r'SecurityEvent="([^"]+)"')
REMOTE_RE = re.compile(r'RemoteAddress="IPV[46]/[A-Z]+/([^"]+)/\d+"')
ACCOUNT_RE = re.compile(r'AccountID="([^"]*)"')


def log(msg: str) -> None:
    print(msg, flush=True)


class Follower:
    """tail -F for one file: survives rotation (copytruncate or rename)."""

    def __init__(self, path: str, from_end: bool = True):
        self.path = path
        self.fh = None
        self.inode = None
        self.from_end = from_end

    def lines(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if self.fh is None or st.st_ino != self.inode or st.st_size < self.fh.tell():
            if self.fh:
                self.fh.close()
            self.fh = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open
            self.inode = st.st_ino
            if self.from_end:
                self.fh.seek(0, os.SEEK_END)
            self.from_end = False
        out = []
        while True:
            line = self.fh.readline()
            if not line or not line.endswith("\n"):
                if line:
                    self.fh.seek(self.fh.tell() - len(line.encode()))
                return out
            out.append(line)


def _tail(ip: str) -> str:
    return ip.split(".", 1)[1]


def client_for_loopback(addr: str, ports: list[int]) -> str | None:
    """127.b.c.d (nginx's proxy_bind) -> the client a.b.c.d connected to nginx now."""
    tail = _tail(addr)
    sports = " or ".join(f"sport = :{p}" for p in ports)
    res = subprocess.run(["ss", "-Htn", "state", "all", f"( {sports} )"], capture_output=True, text=True)
    found = set()
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        peer = cols[-1].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        if peer.count(".") == 3 and peer.split(".", 1)[1] == tail and not peer.startswith("127."):
            found.add(peer)
    return found.pop() if len(found) == 1 else None


class Guard:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.ignore = [ipaddress.ip_network(n, strict=False) for n in cfg.get("ignore", [])]
        self.failures: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.state_path = Path(cfg["state_file"])
        self.bans = self._load()
        self.seen: dict[str, tuple[str, float]] = {}  # loopback tail -> (client, when) from nginx's ws log
        self.pending: list[tuple[float, str, str]] = []  # (when, loopback address, log line) not mapped yet

    def _load(self) -> dict:
        try:
            bans = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        now = time.time()
        return {ip: exp for ip, exp in bans.items() if exp > now}

    def _save(self) -> None:
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.bans, indent=1))
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _state(self):
        """Read-modify-write of the ban state under an exclusive lock.

        The daemon and `--unban` (another process) both edit the state file:
        without the lock, a daemon holding an older copy would write an unbanned
        address back, or reconcile would restore its firewall entry.
        """
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path.with_name(f".{self.state_path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.bans = self._load()
            yield
            self._save()

    def ignored(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return True
        return addr.is_loopback or any(addr in net for net in self.ignore)

    def handle_ws_log(self, line: str, now: float) -> None:
        """nginx voiceops_ws log: '<msec> <client> <loopback bind> <status> <request time>'."""
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("127.") and parts[2] != "127.0.0.1":
            self.seen[_tail(parts[2])] = (parts[1], now)

    def map_loopback(self, addr: str) -> str | None:
        client = client_for_loopback(addr, self.cfg["ws_ports"])
        if client is None and _tail(addr) in self.seen:
            client = self.seen[_tail(addr)][0]
        return client

    def handle(self, line: str, now: float) -> None:
        ev = EVENT_RE.search(line)
        if not ev or ev.group(1) not in FAIL_EVENTS:
            return
        remote = REMOTE_RE.search(line)
        if not remote:
            return
        ip = remote.group(1)
        if ip.startswith("127.") and ip != "127.0.0.1":
            client = self.map_loopback(ip)
            if client is None:
                self.pending.append((now, ip, line))
                return
            self.count(client, now, ev.group(1), line, f" via {ip}")
        else:
            self.count(ip, now, ev.group(1), line, "")

    def retry_pending(self, now: float) -> None:
        waiting, self.pending = self.pending, []
        for when, addr, line in waiting:
            client = self.seen.get(_tail(addr), (None, 0))[0]
            if client is not None:
                self.count(client, when, EVENT_RE.search(line).group(1), line, f" via {addr}")
            elif now - when < self.cfg.get("pending_time", 30):
                self.pending.append((when, addr, line))
            else:
                log(f"cannot map {addr} to a WebSocket client: failure not counted")
        horizon = now - 600
        self.seen = {t: v for t, v in self.seen.items() if v[1] >= horizon}

    def count(self, ip: str, now: float, event: str, line: str, via: str) -> None:
        if self.ignored(ip):
            return
        if ip in self.bans:
            self.bans = self._load()  # still banned, or lifted with --unban since?
            if ip in self.bans:
                return
        q = self.failures[ip]
        q.append(now)
        while q and q[0] < now - self.cfg["find_time"]:
            q.popleft()
        if len(q) >= self.cfg["max_failures"]:
            account = ACCOUNT_RE.search(line)
            self.ban(
                ip,
                f"{len(q)} failures in {self.cfg['find_time']} s, last {event} "
                f"for account '{account.group(1) if account else ''}'{via}",
            )
            q.clear()

    def ban(self, ip: str, why: str) -> None:
        with self._state():
            res = self._firewall("add", ip)
            if res.returncode != 0:
                log(f"ban of {ip} failed: {res.stderr.strip() or res.stdout.strip()}")
                return
            self.bans[ip] = time.time() + self.cfg["ban_time"]
        # The drop zone stops new packets only: established connections (a WebSocket
        # that keeps guessing) pass firewalld's conntrack rule, so close them now.
        subprocess.run(["ss", "-K", "dst", ip], capture_output=True, text=True)
        log(f"BAN {ip} for {self.cfg['ban_time']} s: {why}")

    def _firewall(self, action: str, ip: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["firewall-cmd", f"--ipset={self.cfg['ipset']}", f"--{action}-entry={ip}"], capture_output=True, text=True
        )

    def unban(self, ip: str) -> int:
        with self._state():
            self.bans.pop(ip, None)
            res = self._firewall("remove", ip)
        print(f"unbanned {ip}" if res.returncode == 0 else f"{ip}: {res.stderr.strip() or res.stdout.strip()}")
        return res.returncode

    def expire(self, now: float) -> None:
        if not any(exp <= now for exp in self.bans.values()):
            return
        with self._state():
            for ip in [ip for ip, exp in self.bans.items() if exp <= now]:
                del self.bans[ip]
                self._firewall("remove", ip)
                log(f"ban of {ip} expired")

    def reconcile(self) -> None:
        """Bans are runtime ipset entries: put them back after a firewalld reload or restart."""
        with self._state():  # the state file is authoritative (--unban edits it)
            for ip in list(self.bans):
                if self._firewall("query", ip).returncode != 0:
                    self._firewall("add", ip)
                    log(f"ban of {ip} restored in the firewall")

    def run(self) -> None:
        followers = [Follower(p) for p in self.cfg["security_logs"]]
        ws_logs = [Follower(p) for p in self.cfg.get("ws_logs", [])]
        last_reconcile = 0.0
        log(
            f"voiceops-sipguard: {self.cfg['max_failures']} failures in {self.cfg['find_time']} s -> "
            f"{self.cfg['ban_time']} s ban (ipset {self.cfg['ipset']}); following "
            + ", ".join(self.cfg["security_logs"])
        )
        while True:
            now = time.time()
            for f in ws_logs:
                for line in f.lines():
                    self.handle_ws_log(line, now)
            for f in followers:
                for line in f.lines():
                    self.handle(line, now)
            self.retry_pending(now)
            self.expire(now)
            if now - last_reconcile >= self.cfg.get("reconcile_interval", 30):
                self.reconcile()
                last_reconcile = now
            time.sleep(self.cfg.get("poll_interval", 0.5))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cfg = json.loads(Path(argv[1]).read_text())
    guard = Guard(cfg)
    if len(argv) == 4 and argv[2] == "--unban":
        return guard.unban(argv[3])
    if len(argv) == 3 and argv[2] == "--list":
        print(json.dumps(guard.bans, indent=1))
        return 0
    guard.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
