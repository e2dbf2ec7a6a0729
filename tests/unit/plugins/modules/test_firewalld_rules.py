# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import sys

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.firewalld_rules import FirewalldRulesError
from ansible_collections.voiceops.webrtc_pbx.plugins.modules import firewalld_rules
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module

RULE = 'rule family="ipv4" source address="192.0.2.10" port port="5060" protocol="udp" accept'
NOTHING = {"services": [], "ports": [], "rich_rules": [], "sources": []}


class FakeBackend:
    """Stands in for FirewalldBackend: same methods, a ``zone``, both views in memory."""

    def __init__(self, zone, permanent=None, runtime=None, ipsets=None):
        self.zone = zone
        self.ipsets = copy.deepcopy(ipsets or {})
        self.reloads = 0
        self.views = {True: dict(copy.deepcopy(NOTHING), **copy.deepcopy(permanent or {}))}
        self.views[False] = dict(copy.deepcopy(NOTHING), **copy.deepcopy(runtime or {}))
        self.calls = []

    def normalise_rich_rule(self, rule):
        if not rule.startswith("rule "):
            raise FirewalldRulesError(f"invalid rich rule {rule!r}: INVALID_RULE")
        return " ".join(rule.split())

    def current(self, permanent):
        return copy.deepcopy(self.views[permanent])

    def ipset(self, name):
        return copy.deepcopy(self.ipsets.get(name))

    def set_ipset(self, name, settings, replace):
        assert replace == (name in self.ipsets)
        self.ipsets[name] = copy.deepcopy(settings)

    def reload(self):
        self.reloads += 1

    def add(self, permanent, missing):
        self.calls.append((permanent, copy.deepcopy(missing)))
        for key, values in missing.items():
            self.views[permanent][key].extend(values)


@pytest.fixture
def backends(monkeypatch):
    """Replace FirewalldBackend; ``backends.state`` seeds both views, ``backends.made`` lists the instances."""

    class Factory:
        state = {}
        made = []
        error = None

        def __call__(self, zone):
            if self.error is not None:
                raise self.error
            backend = FakeBackend(zone, **self.state)
            self.made.append(backend)
            return backend

    factory = Factory()
    monkeypatch.setattr(firewalld_rules, "FirewalldBackend", factory)
    return factory


def run(check_mode=False, diff=False, **args):
    return run_module(firewalld_rules.main, args, check_mode=check_mode, diff=diff)


ARGS = {
    "zone": "public",
    "services": ["http", "https"],
    "ports": ["8089/tcp", "10000-20000/udp"],
    "rich_rules": [RULE],
}
ALL = {"services": ["http", "https"], "ports": ["8089/tcp", "10000-20000/udp"], "rich_rules": [RULE], "sources": []}


def test_adds_missing_entries(backends):
    failed, result = run(**ARGS)
    assert not failed, result
    assert result["changed"] is True
    assert result["added"] == {"permanent": ALL, "runtime": ALL}
    assert "diff" not in result
    [backend] = backends.made
    assert backend.zone == "public"
    wanted = {
        "services": ["http", "https"],
        "ports": [("8089", "tcp"), ("10000-20000", "udp")],
        "rich_rules": [RULE],
        "sources": [],
    }
    assert backend.calls == [(True, wanted), (False, wanted)]


def test_only_the_runtime_view_changes(backends):
    backends.state = {
        "permanent": {"services": ["http", "https"], "ports": [("8089", "tcp"), ("10000-20000", "udp")]},
        "runtime": {"services": ["http", "https"], "ports": [("8089", "tcp")]},
    }
    failed, result = run(zone="public", services=["http", "https"], ports=["8089/tcp", "10000-20000/udp"])
    assert not failed, result
    assert result["changed"] is True
    assert result["added"] == {
        "permanent": NOTHING,
        "runtime": {"services": [], "ports": ["10000-20000/udp"], "rich_rules": [], "sources": []},
    }
    assert backends.made[0].calls == [
        (False, {"services": [], "ports": [("10000-20000", "udp")], "rich_rules": [], "sources": []})
    ]


def test_nothing_to_do_is_unchanged(backends):
    state = {
        "services": ["http", "https"],
        "ports": [("8089", "tcp"), ("10000-20000", "udp")],
        "rich_rules": [RULE],
        "sources": [],
    }
    backends.state = {"permanent": state, "runtime": state}
    failed, result = run(diff=True, **ARGS)
    assert not failed, result
    assert result["changed"] is False
    assert result["added"] == {"permanent": NOTHING, "runtime": NOTHING}
    assert result["diff"] == []
    assert backends.made[0].calls == []


def test_only_zone_given_is_unchanged(backends):
    failed, result = run(zone="public")
    assert not failed, result
    assert result == {"changed": False, "added": {"permanent": NOTHING, "runtime": NOTHING}, "ipsets_created": []}
    assert backends.made[0].calls == []


def test_check_mode_reports_but_adds_nothing(backends):
    failed, result = run(check_mode=True, **ARGS)
    assert not failed, result
    assert result["changed"] is True
    assert result["added"] == {"permanent": ALL, "runtime": ALL}
    assert backends.made[0].calls == []


def test_diff_only_in_diff_mode(backends):
    backends.state = {"permanent": {"services": ["http"]}, "runtime": copy.deepcopy(ALL)}
    args = {"zone": "dmz", "services": ["http", "https"]}
    failed, result = run(**args)
    assert not failed, result
    assert "diff" not in result
    failed, result = run(diff=True, **args)
    assert not failed, result
    assert result["changed"] is True
    assert result["diff"] == [
        {
            "before_header": "zone dmz (permanent)",
            "after_header": "zone dmz (permanent)",
            "before": {"services": ["http"], "ports": [], "rich_rules": [], "sources": []},
            "after": {"services": ["http", "https"], "ports": [], "rich_rules": [], "sources": []},
        }
    ]


def test_diff_in_check_mode(backends):
    failed, result = run(check_mode=True, diff=True, zone="public", ports=["5060/udp"])
    assert not failed, result
    assert [entry["after"]["ports"] for entry in result["diff"]] == [["5060/udp"], ["5060/udp"]]
    assert backends.made[0].calls == []


def test_backend_error_unknown_zone_fails(backends):
    backends.error = FirewalldRulesError("zone nosuchzone does not exist")
    failed, result = run(zone="nosuchzone", services=["http"])
    assert failed
    assert result["msg"] == "zone nosuchzone does not exist"
    assert "added" not in result


def test_backend_error_firewalld_not_running_fails(backends):
    backends.error = FirewalldRulesError("firewalld is not running (no D-Bus connection)")
    failed, result = run(**ARGS)
    assert failed
    assert result["msg"] == "firewalld is not running (no D-Bus connection)"


def test_invalid_rich_rule_fails_and_adds_nothing(backends):
    failed, result = run(zone="public", services=["http"], rich_rules=[RULE, "accept everything"])
    assert failed
    assert result["msg"] == "invalid rich rule 'accept everything': INVALID_RULE"
    assert backends.made[0].calls == []


def test_missing_bindings_fail(backends):
    backends.error = ImportError("No module named 'firewall'")
    failed, result = run(**ARGS)
    assert failed
    assert "python bindings" in result["msg"].lower()
    assert "No module named 'firewall'" in result["msg"]


def test_missing_bindings_fail_with_the_real_backend(monkeypatch):
    # None in sys.modules makes the lazy import in FirewalldBackend.__init__ raise ImportError
    monkeypatch.setitem(sys.modules, "firewall", None)
    monkeypatch.setitem(sys.modules, "firewall.client", None)
    failed, result = run(**ARGS)
    assert failed
    assert result["msg"].startswith("firewalld's Python bindings are missing on the managed node: ")


@pytest.mark.parametrize("port", ["5060", "70000/udp", "5060/icmp", "20000-10000/udp"])
def test_invalid_port_fails_before_the_backend(backends, port):
    failed, result = run(zone="public", ports=["8089/tcp", port])
    assert failed
    assert result["msg"].startswith(f"ports: {port!r} ")
    assert backends.made == []


def test_zone_is_required(backends):
    failed, result = run(services=["http"])
    assert failed
    assert "zone" in result["msg"]
    assert backends.made == []


def test_creates_the_ipset_reloads_and_binds_it_as_a_source(backends):
    args = {"zone": "drop", "ipsets": [{"name": "banned"}], "sources": ["ipset:banned"]}
    failed, result = run(diff=True, **args)
    assert not failed, result
    assert result["changed"] is True and result["ipsets_created"] == ["banned"]
    backend = backends.made[0]
    assert backend.ipsets == {"banned": {"type": "hash:ip", "options": {}}} and backend.reloads == 1
    assert backend.views[True]["sources"] == backend.views[False]["sources"] == ["ipset:banned"]
    assert result["diff"][0]["before"] == "absent"
    backends.state = {
        "ipsets": backend.ipsets,
        "permanent": {"sources": ["ipset:banned"]},
        "runtime": {"sources": ["ipset:banned"]},
    }
    failed, result = run(**args)
    assert not failed, result
    assert result["changed"] is False and result["ipsets_created"] == []
    assert backends.made[1].reloads == 0
