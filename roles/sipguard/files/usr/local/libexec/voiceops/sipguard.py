#!/usr/bin/env python3
"""voiceops SIP guard: bans sources that keep failing SIP authentication.

Follows Asterisk's security log (res_security_log) and counts failed
authentications per source address (InvalidAccountID, ChallengeResponseFailed,
InvalidPassword, FailedACL, ...). A source with max_failures failures within
find_time seconds is added to a firewalld ipset (created with a timeout of
ban_time, bound to the drop zone), so every port - WSS, HTTPS, SIP, TURN - goes
silent for it.

SIP over WebSocket reaches Asterisk through nginx on the same host. nginx
connects to Asterisk from 127.<b>.<c>.<d> for a client a.b.c.d (proxy_bind),
so each client has its own loopback address in Asterisk's log; the guard maps
it back to the client by looking up the client connections of nginx's
listening ports (ss). 127.0.0.1 itself is never banned.

  sipguard.py CONFIG            run (systemd unit voiceops-sipguard)
  sipguard.py CONFIG --unban IP remove a ban now
  sipguard.py CONFIG --list     bans made by this guard that have not expired

Standard library only; needs firewall-cmd and ss.
"""

from __future__ import annotations

import collections
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


def client_for_loopback(addr: str, ports: list[int]) -> str | None:
    """127.b.c.d (nginx's proxy_bind) -> the client a.b.c.d connected to nginx now."""
    tail = addr.split(".", 1)[1]
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

    def _load(self) -> dict:
        try:
            bans = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        now = time.time()
        return {ip: exp for ip, exp in bans.items() if exp > now}

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.bans, indent=1))
        os.replace(tmp, self.state_path)

    def ignored(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return True
        return addr.is_loopback or any(addr in net for net in self.ignore)

    def handle(self, line: str, now: float) -> None:
        ev = EVENT_RE.search(line)
        if not ev or ev.group(1) not in FAIL_EVENTS:
            return
        remote = REMOTE_RE.search(line)
        if not remote:
            return
        ip = remote.group(1)
        via = ""
        if ip.startswith("127.") and ip != "127.0.0.1":
            client = client_for_loopback(ip, self.cfg["ws_ports"])
            if client is None:
                log(f"cannot map {ip} to a WebSocket client (connection gone?): failure not counted")
                return
            via, ip = f" via {ip}", client
        if self.ignored(ip) or ip in self.bans:
            return
        q = self.failures[ip]
        q.append(now)
        while q and q[0] < now - self.cfg["find_time"]:
            q.popleft()
        if len(q) >= self.cfg["max_failures"]:
            account = ACCOUNT_RE.search(line)
            self.ban(
                ip,
                f"{len(q)} failures in {self.cfg['find_time']} s, last {ev.group(1)} "
                f"for account '{account.group(1) if account else ''}'{via}",
            )
            q.clear()

    def ban(self, ip: str, why: str) -> None:
        res = subprocess.run(
            ["firewall-cmd", f"--ipset={self.cfg['ipset']}", f"--add-entry={ip}"], capture_output=True, text=True
        )
        if res.returncode != 0:
            log(f"ban of {ip} failed: {res.stderr.strip() or res.stdout.strip()}")
            return
        self.bans[ip] = time.time() + self.cfg["ban_time"]
        self._save()
        log(f"BAN {ip} for {self.cfg['ban_time']} s: {why}")

    def unban(self, ip: str) -> int:
        res = subprocess.run(
            ["firewall-cmd", f"--ipset={self.cfg['ipset']}", f"--remove-entry={ip}"], capture_output=True, text=True
        )
        self.bans.pop(ip, None)
        self._save()
        print(f"unbanned {ip}" if res.returncode == 0 else f"{ip}: {res.stderr.strip() or res.stdout.strip()}")
        return res.returncode

    def expire(self, now: float) -> None:
        expired = [ip for ip, exp in self.bans.items() if exp <= now]
        for ip in expired:
            del self.bans[ip]
            log(f"ban of {ip} expired")
        if expired:
            self._save()

    def run(self) -> None:
        followers = [Follower(p) for p in self.cfg["security_logs"]]
        log(
            f"voiceops-sipguard: {self.cfg['max_failures']} failures in {self.cfg['find_time']} s -> "
            f"{self.cfg['ban_time']} s ban (ipset {self.cfg['ipset']}); following "
            + ", ".join(self.cfg["security_logs"])
        )
        while True:
            now = time.time()
            for f in followers:
                for line in f.lines():
                    self.handle(line, now)
            self.expire(now)
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
