"""sipguard's log parsing, counting and client mapping (the firewall itself is exercised by
tests/integration/test_sipguard.py against real firewalld)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "sipguard", ROOT / "roles" / "sipguard" / "files" / "usr" / "local" / "libexec" / "voiceops" / "sipguard.py"
)
sipguard = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(sipguard)

LINE = (
    '[2026-11-27 23:14:37.874] SECURITY[78] res_security_log.c: SecurityEvent="{event}",'
    'EventTV="2026-11-27T23:14:37.874+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
    'AccountID="1002",SessionID="90ff",LocalAddress="IPV4/WS/127.0.0.1/8088",'
    'RemoteAddress="IPV4/{transport}/{ip}/32956",Challenge="1/2",Response="3",ExpectedResponse=""\n'
)


class Recorder:
    """Stands in for firewall-cmd and ss: records calls, answers like them."""

    def __init__(self, ss_output: str = ""):
        self.calls: list[list[str]] = []
        self.ss_output = ss_output

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        out = self.ss_output if argv[0] == "ss" else "success"
        return subprocess.CompletedProcess(argv, 0, stdout=out, stderr="")

    def bans(self) -> list[str]:
        return [a[2].split("=", 1)[1] for a in self.calls if a[0] == "firewall-cmd" and a[2].startswith("--add-entry")]


@pytest.fixture
def guard(tmp_path, monkeypatch):
    def make(ss_output: str = "", **cfg):
        rec = Recorder(ss_output)
        monkeypatch.setattr(sipguard.subprocess, "run", rec)
        config = {
            "max_failures": 5,
            "find_time": 60,
            "ban_time": 600,
            "ipset": "voiceops-banned",
            "ignore": ["192.0.2.0/24"],
            "security_logs": [],
            "ws_ports": [8089, 443],
            "state_file": str(tmp_path / "bans.json"),
            **cfg,
        }
        return sipguard.Guard(config), rec

    return make


def feed(g, n: int, ip: str, event: str = "ChallengeResponseFailed", transport: str = "UDP", t0: float = 1000.0):
    for i in range(n):
        g.handle(LINE.format(event=event, transport=transport, ip=ip), t0 + i)


def test_ban_after_max_failures(guard):
    g, rec = guard()
    feed(g, 4, "203.0.113.7")
    assert rec.bans() == []
    feed(g, 1, "203.0.113.7", t0=1010)
    assert rec.bans() == ["203.0.113.7"]
    assert "203.0.113.7" in g.bans
    feed(g, 10, "203.0.113.7", t0=1020)
    assert rec.bans() == ["203.0.113.7"], "an already banned source is banned once"


def test_failures_outside_the_window_do_not_add_up(guard):
    g, rec = guard()
    for i in range(10):
        feed(g, 1, "203.0.113.8", t0=1000 + i * 30)  # one failure every 30 s, window 60 s
    assert rec.bans() == []


@pytest.mark.parametrize("event", ["InvalidAccountID", "InvalidPassword", "FailedACL"])
def test_other_failure_events_count(guard, event):
    g, rec = guard()
    feed(g, 5, "198.51.100.9", event=event)
    assert rec.bans() == ["198.51.100.9"]


def test_successful_and_informational_events_do_not_count(guard):
    g, rec = guard()
    feed(g, 20, "198.51.100.10", event="ChallengeSent")
    feed(g, 20, "198.51.100.10", event="SuccessfulAuth")
    assert rec.bans() == []


def test_loopback_ignored_and_trunk_never_banned(guard):
    g, rec = guard()
    feed(g, 20, "127.0.0.1", transport="WS")
    feed(g, 20, "192.0.2.21")  # in sipguard_ignore (the trunk)
    assert rec.bans() == []


def test_websocket_client_mapped_from_nginx_loopback_bind(guard):
    ss = (
        "ESTAB 0 0 172.28.77.10:8089 172.28.77.98:51234\n"
        "ESTAB 0 0 172.28.77.10:8089 172.28.77.1:40000\n"
        "ESTAB 0 0 [::ffff:172.28.77.10]:443 [::ffff:10.28.77.55]:41000\n"
    )
    g, rec = guard(ss_output=ss)
    feed(g, 5, "127.28.77.98", transport="WS")
    assert rec.bans() == ["172.28.77.98"]
    ss_calls = [c for c in rec.calls if c[0] == "ss"]
    assert ss_calls and "sport = :8089 or sport = :443" in ss_calls[0][-1]


def test_ambiguous_or_vanished_websocket_client_is_not_banned(guard):
    ss = "ESTAB 0 0 172.28.77.10:8089 172.28.77.98:1\nESTAB 0 0 172.28.77.10:8089 10.28.77.98:2\n"
    g, rec = guard(ss_output=ss)
    feed(g, 10, "127.28.77.98", transport="WS")
    assert rec.bans() == []


def test_bans_survive_a_restart_until_they_expire(guard, monkeypatch):
    g, rec = guard()
    feed(g, 5, "203.0.113.9")
    g2, _ = guard()
    assert "203.0.113.9" in g2.bans
    g2.expire(g2.bans["203.0.113.9"] + 1)
    assert g2.bans == {}


def test_follower_reads_new_lines_and_survives_truncation(tmp_path):
    log = tmp_path / "security.log"
    log.write_text("old line\n")
    f = sipguard.Follower(str(log))
    assert f.lines() == []  # starts at the end
    with log.open("a") as fh:
        fh.write("one\ntw")
    assert f.lines() == ["one\n"]
    with log.open("a") as fh:
        fh.write("o\n")
    assert f.lines() == ["two\n"]
    log.write_text("after rotation\n")  # copytruncate
    assert f.lines() == ["after rotation\n"]


def test_closed_websocket_mapped_later_from_the_nginx_log(guard):
    g, rec = guard(ss_output="")  # the attacker's sockets are already closed
    feed(g, 5, "127.28.77.97", transport="WS")
    g.retry_pending(1010)
    assert rec.bans() == [] and len(g.pending) == 5
    g.handle_ws_log("1795822722.123 172.28.77.97 127.28.77.97 101 0.412\n", 1011)
    g.retry_pending(1011)
    assert rec.bans() == ["172.28.77.97"]
    assert g.pending == []


def test_unmapped_failures_are_dropped_after_the_pending_time(guard):
    g, rec = guard(ss_output="", pending_time=30)
    feed(g, 5, "127.1.2.3", transport="WS")
    g.retry_pending(1100)
    assert g.pending == [] and rec.bans() == []


def test_expired_bans_leave_the_firewall_and_reconcile_restores_missing_ones(guard):
    g, rec = guard()
    feed(g, 5, "203.0.113.10")
    expiry = g.bans["203.0.113.10"]
    g.reconcile()
    assert ["firewall-cmd", "--ipset=voiceops-banned", "--query-entry=203.0.113.10"] in rec.calls
    g.expire(expiry + 1)
    assert ["firewall-cmd", "--ipset=voiceops-banned", "--remove-entry=203.0.113.10"] in rec.calls
    assert g.bans == {}


def test_an_unban_from_another_process_is_not_undone_by_the_daemon(guard):
    """`--unban` runs beside the daemon: neither the daemon's next save nor its reconcile brings the ban back."""
    daemon, _ = guard()
    feed(daemon, 5, "203.0.113.11")
    unbanner, rec = guard()  # from here on, rec records both guards' commands
    assert unbanner.unban("203.0.113.11") == 0
    assert rec.calls == [["firewall-cmd", "--ipset=voiceops-banned", "--remove-entry=203.0.113.11"]]
    feed(daemon, 5, "203.0.113.12", t0=1100)  # the daemon saves its state for another ban
    assert set(json.loads(Path(daemon.cfg["state_file"]).read_text())) == {"203.0.113.12"}
    rec.calls.clear()
    daemon.reconcile()
    assert rec.calls and not [c for c in rec.calls if c[-1].endswith("=203.0.113.11")], rec.calls
    assert set(daemon.bans) == {"203.0.113.12"}
