# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.ami import parse_message
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.pjsip_state import (
    build_endpoints,
    contact_aor,
    count_channels,
    evaluate_wait,
    field,
    is_empty_listing_error,
    parse_rtt_ms,
    select_endpoints,
    split_list,
    summarize,
)
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_ami import load_fixture, render_message


def events_of(fixture, action):
    """Messages of a transcript step, parsed like the client parses them."""
    for step in load_fixture(fixture)["steps"]:
        if step.get("expect") == action:
            messages = [parse_message(render_message(m, "x")[:-4]) for m in step["reply"]]
            return [m for m in messages if "Event" in m and not m["Event"].endswith("Complete")]
    raise AssertionError(f"no step {action}")


@pytest.fixture
def normal():
    return build_endpoints(events_of("normal", "PJSIPShowEndpoints"), events_of("normal", "PJSIPShowContacts"))


def by_name(endpoints):
    return {ep["name"]: ep for ep in endpoints}


def test_build_endpoints_normal(normal):
    assert [ep["name"] for ep in normal] == ["1000", "1001", "genesys-trunk"]
    eps = by_name(normal)
    agent = eps["1000"]
    assert agent == {
        "name": "1000",
        "aor": "1000",
        "transport": "transport-wss",
        "device_state": "Not in use",
        "active_channels": 0,
        "online": True,
        "registered": True,
        "reachable": False,
        "contacts": [
            {
                "uri": "sip:k3v1p8s2@r4nd0mh0st.invalid;transport=ws",
                "status": "NonQualified",
                "rtt_ms": None,
                "user_agent": "JsSIP 3.13.8",
            }
        ],
    }
    idle = eps["1001"]
    assert idle["online"] is False
    assert idle["contacts"] == []
    assert idle["registered"] is False
    trunk = eps["genesys-trunk"]
    assert trunk["online"] is True
    assert trunk["reachable"] is True
    assert trunk["active_channels"] == 2
    assert trunk["contacts"] == [
        {"uri": "sip:192.0.2.20:5060", "status": "Reachable", "rtt_ms": 1.234, "user_agent": "SIP Server: 8.1.103.95"}
    ]


def test_no_auth_data_in_output(normal):
    text = json.dumps(normal)
    assert "auth" not in text.lower()
    assert "1000-auth" not in text


def test_online_through_contact_even_if_device_state_unavailable():
    eps = build_endpoints(
        [{"ObjectName": "a", "Aor": "a", "DeviceState": "Unavailable"}],
        [{"ObjectName": "a;@h", "Endpoint": "a", "Uri": "sip:a@x", "Status": "Reachable", "RoundtripUsec": "500"}],
    )
    assert eps[0]["online"] is True
    assert eps[0]["contacts"][0]["rtt_ms"] == 0.5


@pytest.mark.parametrize("state", ["Unavailable", "Invalid", "Unknown", ""])
def test_offline_device_states(state):
    eps = build_endpoints(
        [{"ObjectName": "a", "Aor": "a", "DeviceState": state}],
        [{"ObjectName": "a;@h", "Endpoint": "a", "Uri": "sip:a@x", "Status": "Unreachable", "RoundtripUsec": "N/A"}],
    )
    assert eps[0]["online"] is False
    assert eps[0]["registered"] is True
    assert eps[0]["reachable"] is False


def test_contacts_matched_by_aor_list_and_deduplicated():
    eps = build_endpoints(
        [{"ObjectName": "trunk", "Aor": "trunk-a,trunk-b", "DeviceState": "Not in use"}],
        [
            {"ObjectName": "trunk-a@@1", "Uri": "sip:10.0.0.1", "Status": "Reachable", "RoundtripUsec": "100"},
            {"ObjectName": "trunk-b@@2", "Uri": "sip:10.0.0.2", "Status": "Unreachable"},
            {"ObjectName": "trunk-b@@3", "Endpoint": "trunk", "Uri": "sip:10.0.0.2", "Status": "Unreachable"},
            {"ObjectName": "other;@4", "Endpoint": "other", "Uri": "sip:10.0.0.3", "Status": "Reachable"},
        ],
    )
    assert [c["uri"] for c in eps[0]["contacts"]] == ["sip:10.0.0.1", "sip:10.0.0.2"]


def test_removed_contact_is_not_registered():
    eps = build_endpoints(
        [{"ObjectName": "a", "Aor": "a", "DeviceState": "Unavailable"}],
        [{"ObjectName": "a;@h", "Endpoint": "a", "Uri": "sip:a@x", "Status": "Removed"}],
    )
    assert eps[0]["registered"] is False


def test_duplicate_and_nameless_endpoint_events_are_ignored():
    eps = build_endpoints(
        [{"ObjectName": "a", "DeviceState": "Not in use"}, {"ObjectName": "a", "DeviceState": "Unavailable"}, {}]
    )
    assert len(eps) == 1
    assert eps[0]["device_state"] == "Not in use"


def test_summarize(normal):
    assert summarize(normal) == {
        "total": 3,
        "online": 2,
        "offline": 1,
        "registered": 2,
        "contacts_total": 2,
        "contacts_reachable": 1,
    }
    assert summarize([]) == {
        "total": 0,
        "online": 0,
        "offline": 0,
        "registered": 0,
        "contacts_total": 0,
        "contacts_reachable": 0,
    }


def test_select_endpoints(normal):
    selected, missing = select_endpoints(normal, ["genesys-trunk", "nope", "1000", "nope"])
    assert [ep["name"] for ep in selected] == ["1000", "genesys-trunk"]
    assert missing == ["nope"]
    assert select_endpoints(normal, None) == (normal, [])


def test_wait_online_lists_failing(normal):
    ok, failing, message = evaluate_wait(normal, "online")
    assert not ok
    assert failing == ["1001"]
    assert "1001 (device state Unavailable, no contacts)" in message
    assert message.startswith("2 of 3 endpoint(s) online")


def test_wait_reachable(normal):
    ok, failing, message = evaluate_wait(normal, "reachable")
    assert not ok
    assert failing == ["1000", "1001"]
    assert "contacts: 1 NonQualified" in message


def test_wait_registered_with_names(normal):
    assert evaluate_wait(normal, "registered", names=["1000", "genesys-trunk"])[:2] == (True, [])
    ok, failing, message = evaluate_wait(normal, "registered", names=["1000", "2000"])
    assert not ok
    assert failing == ["2000"]
    assert "2000 (not found)" in message


def test_wait_min_online(normal):
    ok, failing, message = evaluate_wait(normal, "online", min_online=2)
    assert ok
    assert failing == ["1001"]
    assert message.startswith("2 of 3 endpoint(s) online, need at least 2")
    ok, _, message = evaluate_wait(normal, "online", min_online=3)
    assert not ok
    # wait_for none + min_online means online
    assert evaluate_wait(normal, "none", min_online=2)[0]
    assert not evaluate_wait(normal, "none", min_online=3)[0]


def test_wait_none_and_empty():
    assert evaluate_wait([], "none") == (True, [], "No wait condition")
    ok, failing, message = evaluate_wait([], "online")
    assert not ok
    assert failing == []
    assert message == "No PJSIP endpoints found"
    assert evaluate_wait([], "online", min_online=0)[0]


def test_wait_unknown_condition(normal):
    with pytest.raises(ValueError):
        evaluate_wait(normal, "happy")


def test_helpers():
    assert parse_rtt_ms("N/A") is None
    assert parse_rtt_ms("") is None
    assert parse_rtt_ms(None) is None
    assert parse_rtt_ms("-1") is None
    assert parse_rtt_ms("junk") is None
    assert parse_rtt_ms("123456") == 123.456
    assert count_channels("") == 0
    assert count_channels("3") == 3
    assert count_channels("1700000000.1,1700000000.2,") == 2
    assert count_channels(None) == 0
    assert split_list("a, b,,") == ["a", "b"]
    assert contact_aor({"ObjectName": "1000;@abc"}) == "1000"
    assert contact_aor({"ObjectName": "trunk@@abc"}) == "trunk"
    assert contact_aor({"ObjectName": "x", "Aor": "y"}) == "y"
    assert field({"endpoint": "\n1000\n1000"}, "Endpoint") == "1000"
    assert is_empty_listing_error("No endpoints found")
    assert is_empty_listing_error("No Contacts found\n")
    assert not is_empty_listing_error("Permission denied")
    assert not is_empty_listing_error("")


def _static_event(device_state):
    return {
        "Event": "EndpointList",
        "ObjectName": "genesys",
        "Aor": "genesys",
        "Contacts": "genesys/sip:192.0.2.10:5060,",
        "DeviceState": device_state,
        "ActiveChannels": "",
    }


def test_static_trunk_contact_status_follows_device_state():
    # PJSIPShowContacts never lists static (contact=) contacts; as seen on Asterisk 22.10.
    up = build_endpoints([_static_event("Not in use")], [])[0]
    assert up["contacts"] == [
        {"uri": "sip:192.0.2.10:5060", "status": "Reachable", "rtt_ms": None, "user_agent": "", "static": True}
    ]
    assert up["reachable"] and not up["registered"]
    down = build_endpoints([_static_event("Unavailable")], [])[0]
    assert down["contacts"][0]["status"] == "Unreachable"
    assert not down["reachable"] and not down["online"]


def test_registered_contact_is_not_duplicated_as_static():
    event = {
        "Event": "EndpointList",
        "ObjectName": "1000",
        "Aor": "1000",
        "Contacts": "1000/sip:a@b.invalid;transport=ws,",
        "DeviceState": "Not in use",
    }
    contact = {
        "Event": "ContactList",
        "ObjectName": "1000;@abc",
        "Aor": "1000",
        "Endpoint": "1000",
        "Uri": "sip:a@b.invalid;transport=ws",
        "Status": "Reachable",
        "RoundtripUsec": "1500",
        "UserAgent": "JsSIP",
    }
    ep = build_endpoints([event], [contact])[0]
    assert len(ep["contacts"]) == 1 and ep["registered"]
