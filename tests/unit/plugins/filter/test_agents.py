"""plugins/filter/agents.py: agent ranges with derived passwords."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.voiceops.webrtc_pbx.plugins.filter.agents import (
    FilterModule,
    agent_extensions,
    agent_ranges,
    derive_password,
)


def test_password_is_sha256_of_secret_and_extension():
    expected = hashlib.sha256(b"s3cret-value-long-enough:20000").hexdigest()[:24]
    assert derive_password("s3cret-value-long-enough", "20000") == expected
    assert len(expected) == 24
    assert derive_password("s3cret-value-long-enough", "20001") != expected
    assert derive_password("another-secret-value-xyz", "20000") != expected


def test_expands_ranges_in_order_with_carried_keys():
    agents = agent_ranges(
        [
            {"first": 20000, "count": 3, "outbound_class": "national", "codecs": ["ulaw"]},
            {"first": "31000", "count": 2, "name_prefix": "Floor B", "call_limit": 1},
        ],
        "x" * 24,
    )
    assert [a["extension"] for a in agents] == ["20000", "20001", "20002", "31000", "31001"]
    assert agents[0]["outbound_class"] == "national" and agents[0]["codecs"] == ["ulaw"]
    assert "call_limit" not in agents[0]
    assert agents[3]["name"] == "Floor B 31000" and agents[3]["call_limit"] == 1
    assert agents[4]["password"] == derive_password("x" * 24, "31001")


def test_without_secret_only_extensions():
    agents = agent_ranges([{"first": 5000, "count": 2}])
    assert [a["extension"] for a in agents] == ["5000", "5001"]
    assert all("password" not in a for a in agents)


def test_empty_input():
    assert agent_ranges([]) == []
    assert agent_ranges(None) == []


@pytest.mark.parametrize(
    "ranges,message",
    [
        ("20000-20010", "must be a list"),
        ([["20000", 10]], "asterisk_agent_ranges[0] must be a dict"),
        ([{"first": "2000a", "count": 1}], "asterisk_agent_ranges[0].first"),
        ([{"first": "0200", "count": 1}], "asterisk_agent_ranges[0].first"),
        ([{"first": 7, "count": 1}], "asterisk_agent_ranges[0].first"),
        ([{"first": 20000, "count": 0}], "asterisk_agent_ranges[0].count"),
        ([{"first": 20000, "count": "many"}], "asterisk_agent_ranges[0].count"),
        ([{"first": 20000, "count": 50000}], "asterisk_agent_ranges[0].count"),
        ([{"first": 20000, "count": 1}, {"first": 99990, "count": 20}], "asterisk_agent_ranges[1]: 99990 + 20"),
        ([{"first": 20000, "count": 1, "tenant": "a"}], "unknown key(s): tenant"),
    ],
)
def test_bad_ranges_name_the_variable(ranges, message):
    with pytest.raises(AnsibleFilterError) as exc:
        agent_ranges(ranges, "x" * 24)
    assert message in str(exc.value)


def test_registered_as_a_filter():
    assert FilterModule().filters()["agent_ranges"] is agent_ranges


def test_agent_extensions_lists_agents_then_ranges_as_strings():
    agents = [{"extension": 1000, "password": "x"}, {"extension": "1001"}, {"name": "no extension"}]
    ranges = [{"first": 20000, "count": 3}]
    assert agent_extensions(agents, ranges) == ["1000", "1001", "20000", "20001", "20002"]
    assert agent_extensions(agents) == ["1000", "1001"]
    assert agent_extensions(None, None) == []
    assert FilterModule().filters()["agent_extensions"] is agent_extensions


def test_agent_extensions_same_as_the_jinja_chain_for_thousands():
    agents = [{"extension": str(1000 + i)} for i in range(50)]
    ranges = [{"first": 20000, "count": 5000}, {"first": 30000, "count": 40, "name_prefix": "PCMU"}]
    chain = [str(agent["extension"]) for agent in agents + agent_ranges(ranges, "secret")]
    assert agent_extensions(agents, ranges) == chain


@pytest.mark.parametrize(
    ("agents", "ranges", "message"),
    [
        ({"extension": "1000"}, [], "asterisk_agents must be a list"),
        ([], [{"first": "0100", "count": 1}], "asterisk_agent_ranges[0].first"),
    ],
)
def test_agent_extensions_bad_input_names_the_variable(agents, ranges, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        agent_extensions(agents, ranges)
