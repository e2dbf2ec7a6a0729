# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.firewalld_rules import (
    FirewalldRulesError,
    apply,
    ensure_ipsets,
    missing_entries,
    parse_ports,
)

RULE = 'rule family="ipv4" source address="192.0.2.10" port port="5060" protocol="udp" accept'
RULE_SPACED = '  rule  family="ipv4"   source address="192.0.2.10" port port="5060"  protocol="udp" accept '
OTHER_RULE = 'rule family="ipv4" source address="192.0.2.11" port port="5060" protocol="udp" accept'

NOTHING = {"services": [], "ports": [], "rich_rules": [], "sources": []}


def view(services=(), ports=(), rich_rules=(), sources=()):
    return {
        "services": list(services),
        "ports": [tuple(port) for port in ports],
        "rich_rules": list(rich_rules),
        "sources": list(sources),
    }


class FakeBackend:
    """Both views of one zone in memory; records every add()."""

    def __init__(self, zone="public", permanent=None, runtime=None, invalid_rules=()):
        self.zone = zone
        self.permanent = permanent if permanent is not None else view()
        self.runtime = runtime if runtime is not None else view()
        self.invalid_rules = set(invalid_rules)
        self.calls = []

    def _view(self, permanent):
        return self.permanent if permanent else self.runtime

    def normalise_rich_rule(self, rule):
        if rule in self.invalid_rules:
            raise FirewalldRulesError(f"invalid rich rule {rule!r}: bad")
        return " ".join(rule.split())

    def current(self, permanent):
        return copy.deepcopy(self._view(permanent))

    def add(self, permanent, missing):
        self.calls.append((permanent, copy.deepcopy(missing)))
        target = self._view(permanent)
        for key in ("services", "ports", "rich_rules", "sources"):
            target[key].extend(missing[key])


# parse_ports


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([], []),
        (["5060/udp"], [("5060", "udp")]),
        (["10000-20000/udp"], [("10000-20000", "udp")]),
        (["1/tcp", "65535/tcp", "1-65535/udp"], [("1", "tcp"), ("65535", "tcp"), ("1-65535", "udp")]),
        (["3868/sctp", "4000/dccp"], [("3868", "sctp"), ("4000", "dccp")]),
        ([" 8089/tcp "], [("8089", "tcp")]),
        # order kept, repeats dropped; the same number over another protocol is another port
        (
            ["5060/udp", "5060/tcp", "5060/udp", "10000-20000/udp", "10000-20000/udp"],
            [("5060", "udp"), ("5060", "tcp"), ("10000-20000", "udp")],
        ),
    ],
)
def test_parse_ports_valid(ports, expected):
    assert parse_ports(ports) == expected


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        # firewalld spells ports without leading zeros and N-N as N; so does parse_ports
        (["080/tcp"], [("80", "tcp")]),
        (["80/tcp", "080/tcp"], [("80", "tcp")]),
        (["5060-5060/udp"], [("5060", "udp")]),
        (["5060/udp", "5060-5060/udp"], [("5060", "udp")]),
        (["05060-05070/udp"], [("5060-5070", "udp")]),
    ],
)
def test_parse_ports_spelled_as_firewalld_does(ports, expected):
    assert parse_ports(ports) == expected


@pytest.mark.parametrize(
    "item",
    ["5060", "udp", "/udp", "5060/", "5060/icmp", "udp/5060", "5060-/udp", "-5060/udp", "5060:5070/udp", "",
     "abc/tcp", "5060/udp/tcp", "5060 /udp", "123456/tcp", "1-123456/udp", "5060,5061/udp"],
)  # fmt: skip
def test_parse_ports_invalid_format(item):
    with pytest.raises(FirewalldRulesError) as exc:
        parse_ports(["8089/tcp", item])
    assert str(exc.value) == f"ports: {item!r} is not PORT/PROTOCOL or FIRST-LAST/PROTOCOL"


def test_parse_ports_non_string_item_is_named():
    with pytest.raises(FirewalldRulesError, match=r"^ports: 5060 is not PORT/PROTOCOL"):
        parse_ports([5060])


@pytest.mark.parametrize(
    "item", ["0/tcp", "65536/tcp", "99999/udp", "0-10/udp", "20000-10000/udp", "1-65536/udp", "00000/tcp"]
)
def test_parse_ports_out_of_range(item):
    with pytest.raises(FirewalldRulesError) as exc:
        parse_ports([item])
    assert str(exc.value) == f"ports: {item!r} is out of range"


# missing_entries


def test_missing_entries_port_inside_an_existing_range_is_present():
    current = view(ports=[("10000-20000", "udp"), ("5060-5061", "tcp")])
    wanted = [("15000", "udp"), ("10000-20000", "udp"), ("5061", "tcp"), ("12000-13000", "udp")]
    assert missing_entries(current, [], wanted, [])["ports"] == []


def test_missing_entries_other_protocol_or_partial_overlap_is_missing():
    current = view(ports=[("10000-20000", "udp"), ("5060", "udp")])
    wanted = [("15000", "tcp"), ("9000-10500", "udp"), ("19999-20001", "udp"), ("5060-5061", "udp")]
    assert missing_entries(current, [], wanted, [])["ports"] == wanted


def test_missing_entries_port_inside_a_wanted_range_is_added_once():
    # the running firewall refuses 15000/udp once 10000-20000/udp is in (ALREADY_ENABLED)
    wanted = [("10000-20000", "udp"), ("15000", "udp"), ("15000", "udp")]
    assert missing_entries(view(), [], wanted, [])["ports"] == [("10000-20000", "udp")]


# apply


def test_apply_adds_everything_to_both_views_permanent_first():
    backend = FakeBackend()
    added, _ = apply(backend, ["http", "https"], [("5060", "udp"), ("10000-20000", "udp")], [RULE], False)
    expected = {
        "services": ["http", "https"],
        "ports": [("5060", "udp"), ("10000-20000", "udp")],
        "rich_rules": [RULE],
        "sources": [],
    }
    assert backend.calls == [(True, expected), (False, expected)]
    readable = {
        "services": ["http", "https"],
        "ports": ["5060/udp", "10000-20000/udp"],
        "rich_rules": [RULE],
        "sources": [],
    }
    assert added == {"permanent": readable, "runtime": readable}
    assert backend.permanent == backend.runtime == expected


def test_apply_port_missing_only_at_runtime_is_added_only_at_runtime():
    backend = FakeBackend(
        permanent=view(services=["http"], ports=[("5060", "udp"), ("8089", "tcp")]),
        runtime=view(services=["http"], ports=[("8089", "tcp")]),
    )
    added, diff = apply(backend, ["http"], [("5060", "udp"), ("8089", "tcp")], [], False)
    assert backend.calls == [(False, {"services": [], "ports": [("5060", "udp")], "rich_rules": [], "sources": []})]
    assert added == {
        "permanent": NOTHING,
        "runtime": {"services": [], "ports": ["5060/udp"], "rich_rules": [], "sources": []},
    }
    assert backend.runtime["ports"] == [("8089", "tcp"), ("5060", "udp")]
    assert [entry["before_header"] for entry in diff] == ["zone public (runtime)"]


def test_apply_service_missing_only_permanently_is_added_only_permanently():
    backend = FakeBackend(permanent=view(services=["http"]), runtime=view(services=["http", "https"]))
    added, diff = apply(backend, ["http", "https"], [], [], False)
    assert backend.calls == [(True, {"services": ["https"], "ports": [], "rich_rules": [], "sources": []})]
    assert added["permanent"]["services"] == ["https"]
    assert added["runtime"] == NOTHING
    assert [entry["after_header"] for entry in diff] == ["zone public (permanent)"]


def test_apply_each_view_gets_its_own_missing_entries():
    backend = FakeBackend(
        permanent=view(services=["https"], rich_rules=[RULE]),
        runtime=view(services=["http"], ports=[("5060", "udp")]),
    )
    added, _ = apply(backend, ["http", "https"], [("5060", "udp")], [RULE], False)
    assert backend.calls == [
        (True, {"services": ["http"], "ports": [("5060", "udp")], "rich_rules": [], "sources": []}),
        (False, {"services": ["https"], "ports": [], "rich_rules": [RULE], "sources": []}),
    ]
    assert added["permanent"] == {"services": ["http"], "ports": ["5060/udp"], "rich_rules": [], "sources": []}
    assert added["runtime"] == {"services": ["https"], "ports": [], "rich_rules": [RULE], "sources": []}


def test_apply_check_mode_adds_nothing_but_reports():
    backend = FakeBackend(runtime=view(services=["http"]))
    before = (copy.deepcopy(backend.permanent), copy.deepcopy(backend.runtime))
    added, diff = apply(backend, ["http"], [("5060", "udp")], [RULE], True)
    assert backend.calls == []
    assert (backend.permanent, backend.runtime) == before
    assert added == {
        "permanent": {"services": ["http"], "ports": ["5060/udp"], "rich_rules": [RULE], "sources": []},
        "runtime": {"services": [], "ports": ["5060/udp"], "rich_rules": [RULE], "sources": []},
    }
    assert [entry["before_header"] for entry in diff] == ["zone public (permanent)", "zone public (runtime)"]


def test_apply_rich_rules_compared_after_normalisation():
    # wanted with extra spaces, stored normalised
    backend = FakeBackend(permanent=view(rich_rules=[RULE]), runtime=view(rich_rules=[RULE]))
    added, diff = apply(backend, [], [], [RULE_SPACED], False)
    assert backend.calls == []
    assert added == {"permanent": NOTHING, "runtime": NOTHING}
    assert diff == []
    # stored with extra spaces, wanted normalised
    backend = FakeBackend(permanent=view(rich_rules=[RULE_SPACED]), runtime=view(rich_rules=[RULE_SPACED]))
    added, _ = apply(backend, [], [], [RULE], False)
    assert backend.calls == []


def test_apply_adds_rich_rules_in_normalised_form():
    backend = FakeBackend(permanent=view(rich_rules=[RULE]))
    added, _ = apply(backend, [], [], [RULE_SPACED, OTHER_RULE], False)
    assert backend.calls == [
        (True, {"services": [], "ports": [], "rich_rules": [OTHER_RULE], "sources": []}),
        (False, {"services": [], "ports": [], "rich_rules": [RULE, OTHER_RULE], "sources": []}),
    ]
    assert added["runtime"]["rich_rules"] == [RULE, OTHER_RULE]


def test_apply_duplicates_in_input_are_added_once():
    backend = FakeBackend()
    added, _ = apply(
        backend,
        ["http", "http", "https", "http"],
        [("5060", "udp"), ("5060", "udp")],
        [RULE, RULE_SPACED, RULE],
        False,
    )
    once = {"services": ["http", "https"], "ports": [("5060", "udp")], "rich_rules": [RULE], "sources": []}
    assert backend.calls == [(True, once), (False, once)]
    assert (
        added["permanent"]
        == added["runtime"]
        == {
            "services": ["http", "https"],
            "ports": ["5060/udp"],
            "rich_rules": [RULE],
            "sources": [],
        }
    )


def test_apply_port_covered_by_a_range_is_not_added():
    # the running firewall keeps merged ranges: 5060 and 5061 come back as 5060-5061
    backend = FakeBackend(
        permanent=view(ports=[("5060", "udp"), ("5061", "udp"), ("10000-20000", "udp")]),
        runtime=view(ports=[("5060-5061", "udp"), ("10000-20000", "udp")]),
    )
    added, diff = apply(backend, [], [("5060", "udp"), ("5061", "udp"), ("10082-20000", "udp")], [], False)
    assert backend.calls == []
    assert added == {"permanent": NOTHING, "runtime": NOTHING}
    assert diff == []


def test_apply_diff_has_before_and_after_of_changed_views_only():
    backend = FakeBackend(
        zone="trusted",
        permanent=view(services=["http"], ports=[("5060", "udp")], rich_rules=[RULE]),
        runtime=view(services=["http"], ports=[("5060", "udp")], rich_rules=[RULE_SPACED]),
    )
    added, diff = apply(backend, ["http", "https"], [("5060", "udp"), ("8089", "tcp")], [RULE], False)
    before = {"services": ["http"], "ports": ["5060/udp"], "rich_rules": [RULE], "sources": []}
    after = {"services": ["http", "https"], "ports": ["5060/udp", "8089/tcp"], "rich_rules": [RULE], "sources": []}
    assert diff == [
        {
            "before_header": "zone trusted (permanent)",
            "after_header": "zone trusted (permanent)",
            "before": before,
            "after": after,
        },
        {
            "before_header": "zone trusted (runtime)",
            "after_header": "zone trusted (runtime)",
            "before": before,
            "after": after,
        },
    ]


def test_apply_diff_is_the_same_in_check_mode():
    def run(check_mode):
        backend = FakeBackend(permanent=view(services=["http"]), runtime=view(services=["http", "https"]))
        return apply(backend, ["https"], [("5060", "udp")], [], check_mode)

    assert run(True) == run(False)


def test_apply_nothing_to_do_calls_no_add():
    state = view(services=["http", "https"], ports=[("5060", "udp"), ("10000-20000", "udp")], rich_rules=[RULE])
    backend = FakeBackend(permanent=copy.deepcopy(state), runtime=copy.deepcopy(state))
    added, diff = apply(backend, ["https", "http"], [("10000-20000", "udp"), ("5060", "udp")], [RULE], False)
    assert backend.calls == []
    assert added == {"permanent": NOTHING, "runtime": NOTHING}
    assert diff == []


def test_apply_empty_input_calls_no_add():
    backend = FakeBackend()
    assert apply(backend, [], [], [], False) == ({"permanent": NOTHING, "runtime": NOTHING}, [])
    assert backend.calls == []


def test_apply_second_run_is_idempotent():
    backend = FakeBackend()
    args = (["http"], [("5060", "udp"), ("10000-20000", "udp")], [RULE_SPACED])
    apply(backend, *args, False)
    assert len(backend.calls) == 2
    added, diff = apply(backend, *args, False)
    assert len(backend.calls) == 2
    assert added == {"permanent": NOTHING, "runtime": NOTHING}
    assert diff == []


def test_apply_invalid_rich_rule_fails_before_any_add():
    backend = FakeBackend(invalid_rules=["rule nonsense"])
    with pytest.raises(FirewalldRulesError, match="invalid rich rule 'rule nonsense'"):
        apply(backend, ["http"], [("5060", "udp")], [RULE, "rule nonsense"], False)
    assert backend.calls == []


# sources and ipsets


def test_apply_adds_missing_sources_to_both_views_once():
    backend = FakeBackend(zone="drop", permanent=view(sources=["ipset:banned"]))
    added, diff = apply(backend, [], [], [], False, sources=["ipset:banned", "192.0.2.0/24", "192.0.2.0/24"])
    assert added["permanent"]["sources"] == ["192.0.2.0/24"]
    assert added["runtime"]["sources"] == ["ipset:banned", "192.0.2.0/24"]
    assert backend.permanent["sources"] == backend.runtime["sources"] == ["ipset:banned", "192.0.2.0/24"]
    assert diff[1]["after"]["sources"] == ["ipset:banned", "192.0.2.0/24"]
    assert apply(backend, [], [], [], False, sources=["ipset:banned"])[1] == []


class IpsetBackend:
    def __init__(self, ipsets):
        self.ipsets = copy.deepcopy(ipsets)
        self.calls = []

    def ipset(self, name):
        return copy.deepcopy(self.ipsets.get(name))

    def set_ipset(self, name, settings, replace):
        self.calls.append(("set", name, replace))
        self.ipsets[name] = copy.deepcopy(settings)

    def reload(self):
        self.calls.append(("reload",))


BANNED = {"name": "banned", "type": "hash:ip", "options": {}}


def test_ensure_ipsets_creates_a_missing_ipset_then_reloads_once():
    backend = IpsetBackend({})
    created, diff = ensure_ipsets(backend, [BANNED, dict(BANNED, name="other")], False)
    assert created == ["banned", "other"]
    assert backend.calls == [("set", "banned", False), ("set", "other", False), ("reload",)]
    assert diff[0]["before"] == "absent" and diff[0]["after"] == {"type": "hash:ip", "options": {}}


def test_ensure_ipsets_replaces_one_with_other_options_and_keeps_a_matching_one():
    backend = IpsetBackend(
        {"banned": {"type": "hash:ip", "options": {"timeout": "3600"}}, "ok": {"type": "hash:ip", "options": {}}}
    )
    created, _ = ensure_ipsets(backend, [BANNED, dict(BANNED, name="ok")], False)
    assert created == ["banned"]
    assert backend.calls == [("set", "banned", True), ("reload",)]
    assert backend.ipsets["banned"] == {"type": "hash:ip", "options": {}}


def test_ensure_ipsets_in_place_never_reloads():
    backend = IpsetBackend({"banned": {"type": "hash:ip", "options": {"family": "inet"}}})
    created, diff = ensure_ipsets(backend, [dict(BANNED, options={"family": "inet"})], False)
    assert (created, diff, backend.calls) == ([], [], [])


def test_ensure_ipsets_check_mode_reports_and_changes_nothing():
    backend = IpsetBackend({"banned": {"type": "hash:net", "options": {}}})
    created, diff = ensure_ipsets(backend, [BANNED], True)
    assert created == ["banned"] and len(diff) == 1
    assert backend.calls == [] and backend.ipsets["banned"]["type"] == "hash:net"
