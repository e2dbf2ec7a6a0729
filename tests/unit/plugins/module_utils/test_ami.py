# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import time

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.ami import (
    AMIActionError,
    AMIAuthError,
    AMIClient,
    AMIConnectionError,
    AMIError,
    AMIMessage,
    AMIProtocolError,
    AMITimeout,
    format_action,
    is_list_complete,
    parse_message,
)

SECRET = "s3cr3t-Pa55:word"


def client_for(server, timeout=2.0):
    return AMIClient(server.host, server.port, timeout=timeout)


# -- parser -----------------------------------------------------------------


def test_parse_crlf_message():
    msg = parse_message(b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n")
    assert msg == {"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"}


def test_parse_lf_only_and_blank_lines():
    msg = parse_message("Event: FullyBooted\n\nStatus: Fully Booted\n")
    assert msg["Event"] == "FullyBooted"
    assert msg["Status"] == "Fully Booted"


def test_parse_value_containing_colon_space():
    msg = parse_message("UserAgent: SIP Server: 8.1.103.95\r\nUri: sip:1000@127.0.0.1:5060;transport=ws")
    assert msg["UserAgent"] == "SIP Server: 8.1.103.95"
    assert msg["Uri"] == "sip:1000@127.0.0.1:5060;transport=ws"


def test_parse_repeated_keys():
    msg = parse_message("Response: Success\r\nOutput: line one\r\nOutput: line: two\r\n")
    assert msg.getlist("Output") == ["line one", "line: two"]
    assert msg["Output"] == "line one\nline: two"
    assert msg.getlist("Missing") == []


def test_parse_empty_values():
    msg = parse_message("Path:\r\nRegServer: \r\nKey:  two spaces")
    assert msg["Path"] == ""
    assert msg["RegServer"] == ""
    assert msg["Key"] == " two spaces"


def test_parse_case_insensitive_lookup():
    msg = parse_message("response: Error\r\nmessage: nope")
    assert msg.get_ci("Response") == "Error"
    assert msg.get_ci("MESSAGE") == "nope"
    assert msg.get_ci("absent", "x") == "x"


@pytest.mark.parametrize("block", ["Response Success", "Response: Success\r\njunk line", ": no key", "", "\r\n"])
def test_parse_malformed(block):
    with pytest.raises(AMIProtocolError):
        parse_message(block)


def test_format_action():
    data = format_action("Login", {"Username": "admin", "Secret": "x", "Events": False, "Skip": None}, "id-1")
    assert data == b"Action: Login\r\nActionID: id-1\r\nUsername: admin\r\nSecret: x\r\nEvents: no\r\n\r\n"


def test_format_action_repeats_list_values_and_rejects_line_breaks():
    data = format_action("Originate", {"Variable": ["A=1", "B=2"]})
    assert b"Variable: A=1\r\nVariable: B=2\r\n" in data
    with pytest.raises(ValueError):
        format_action("Command", {"Command": "core show\r\nAction: Logoff"})


def test_is_list_complete():
    assert is_list_complete(AMIMessage([("Event", "EndpointListComplete"), ("EventList", "Complete")]))
    assert is_list_complete(AMIMessage([("Event", "ContactListComplete")]), "ContactListComplete")
    assert not is_list_complete(AMIMessage([("Event", "EndpointList")]), "EndpointListComplete")
    assert not is_list_complete(AMIMessage([("Response", "Success"), ("EventList", "Complete")]))


# -- client against the fake server -----------------------------------------


def test_normal_transcript(ami_server):
    server = ami_server("normal")
    with client_for(server) as client:
        assert client.banner == "Asterisk Call Manager/9.0.0"
        login = client.login("admin", SECRET)
        assert login["Message"] == "Authentication accepted"
        response, endpoints = client.action_list("PJSIPShowEndpoints", complete_event="EndpointListComplete")
        assert response["EventList"] == "start"
        assert response.complete["ListItems"] == "3"
        assert [e["ObjectName"] for e in endpoints] == ["1000", "1001", "genesys-trunk"]
        _, contacts = client.action_list("PJSIPShowContacts")
        assert len(contacts) == 2
        assert contacts[0].getlist("Endpoint") == ["1000", "1000"]
        assert contacts[1]["UserAgent"] == "SIP Server: 8.1.103.95"
    assert server.errors == []
    assert server.action_names() == ["Login", "PJSIPShowEndpoints", "PJSIPShowContacts", "Logoff"]
    login_action = server.actions[0]
    assert login_action["Username"] == "admin"
    assert login_action["Secret"] == SECRET
    assert login_action["Events"] == "off"
    ids = [a["ActionID"] for a in server.actions]
    assert len(set(ids)) == len(ids)
    assert not client.connected


def test_action_returns_response_and_raises_on_error(ami_server):
    server = ami_server(
        {
            "steps": [
                {"expect": "Login", "reply": [{"Response": "Success", "Message": "Authentication accepted"}]},
                {"expect": "Ping", "reply": [{"Response": "Success", "Ping": "Pong", "Timestamp": "1.5"}]},
                {"expect": "Getvar", "reply": [{"Response": "Error", "Message": "No such channel"}]},
            ]
        }
    )
    with client_for(server) as client:
        client.login("admin", SECRET)
        assert client.action("Ping")["Ping"] == "Pong"
        with pytest.raises(AMIActionError) as info:
            client.action("Getvar", Variable="X", Channel="PJSIP/none")
        assert info.value.message == "No such channel"
        assert info.value.action == "Getvar"
    assert server.actions[2]["Variable"] == "X"


def test_unrelated_messages_are_skipped(ami_server):
    server = ami_server(
        {
            "steps": [
                {
                    "expect": "Login",
                    "reply": [
                        {"Event": "FullyBooted", "ActionID": None, "Status": "Fully Booted"},
                        {"Response": "Success", "Message": "Authentication accepted"},
                    ],
                },
                {
                    "expect": "PJSIPShowContacts",
                    "reply": [
                        {"Response": "Success", "ActionID": "someone-else", "Message": "stale"},
                        {"Response": "Success", "EventList": "start", "Message": "A listing: follows"},
                        {"Event": "ContactList", "ActionID": "other", "Uri": "sip:ignored@x"},
                        {"Event": "PeerStatus", "ActionID": None, "Peer": "PJSIP/1000"},
                        {"Event": "ContactList", "Uri": "sip:mine@x"},
                        {"Event": "ContactListComplete", "EventList": "Complete", "ListItems": 1},
                    ],
                },
            ]
        }
    )
    with client_for(server) as client:
        client.login("admin", SECRET)
        response, events = client.action_list("PJSIPShowContacts")
    assert response["Message"] == "A listing: follows"
    assert [e["Uri"] for e in events] == ["sip:mine@x"]


def test_empty_listing_is_an_action_error(ami_server):
    server = ami_server("empty")
    with client_for(server) as client:
        client.login("admin", SECRET)
        with pytest.raises(AMIActionError) as info:
            client.action_list("PJSIPShowEndpoints")
    assert info.value.message == "No endpoints found"
    assert not isinstance(info.value, AMIAuthError)


def test_malformed_reply(ami_server):
    server = ami_server("malformed")
    client = client_for(server)
    client.login("admin", SECRET)
    with pytest.raises(AMIProtocolError, match="no 'Key: Value'"):
        client.action_list("PJSIPShowEndpoints")
    client.close()


def test_authentication_failure(ami_server):
    server = ami_server("auth_failure")
    client = client_for(server)
    with pytest.raises(AMIAuthError) as info:
        client.login("admin", SECRET)
    exc = info.value
    assert isinstance(exc, AMIActionError)
    assert "Authentication failed" in str(exc)
    assert "'admin'" in str(exc)
    for text in (str(exc), repr(exc), repr(exc.args), repr(exc.response), repr(client)):
        assert SECRET not in text
    assert not client.connected


def test_timeout_waiting_for_list_complete(ami_server):
    server = ami_server("timeout")
    client = client_for(server, timeout=0.5)
    client.login("admin", SECRET)
    start = time.monotonic()
    with pytest.raises(AMITimeout, match="EndpointListComplete"):
        client.action_list("PJSIPShowEndpoints", complete_event="EndpointListComplete")
    assert time.monotonic() - start < 2.0
    client.close()


def test_timeout_waiting_for_banner(ami_server):
    server = ami_server({"banner": None})
    client = client_for(server, timeout=0.3)
    with pytest.raises(AMITimeout, match="banner"):
        client.connect()
    assert not client.connected


def test_unexpected_banner(ami_server):
    server = ami_server({"banner": "SSH-2.0-OpenSSH_9.2"})
    with pytest.raises(AMIProtocolError, match="banner"):
        client_for(server).connect()


def test_connection_refused(ami_server):
    server = ami_server("refused")
    client = client_for(server)
    with pytest.raises(AMIConnectionError, match="refused") as info:
        client.login("admin", SECRET)
    assert SECRET not in str(info.value)


def test_reconnect_and_retry_once_after_drop(ami_server):
    server = ami_server("dropped")
    with client_for(server) as client:
        client.login("admin", SECRET)
        with pytest.raises(AMIActionError, match="No endpoints found"):
            client.action_list("PJSIPShowEndpoints")
        assert client.reconnects == 1
        with pytest.raises(AMIActionError, match="No Contacts found"):
            client.action_list("PJSIPShowContacts")
    assert server.connections == 2
    assert server.action_names() == [
        "Login",
        "PJSIPShowEndpoints",
        "Login",
        "PJSIPShowEndpoints",
        "PJSIPShowContacts",
        "Logoff",
    ]
    assert server.actions[2]["Secret"] == SECRET


def test_second_drop_is_a_connection_error(ami_server):
    ok = {"Response": "Success", "Message": "Authentication accepted"}
    server = ami_server(
        {
            "steps": [
                {"expect": "Login", "reply": [ok]},
                {"expect": "Ping", "then": "close"},
                {"expect": "Login", "reply": [ok]},
                {"expect": "Ping", "then": "close"},
            ]
        }
    )
    client = client_for(server)
    client.login("admin", SECRET)
    with pytest.raises(AMIConnectionError, match="retry after reconnect also failed") as info:
        client.action("Ping")
    assert SECRET not in str(info.value)
    assert server.connections == 2


def test_no_retry_when_disabled(ami_server):
    ok = {"Response": "Success", "Message": "Authentication accepted"}
    server = ami_server({"steps": [{"expect": "Login", "reply": [ok]}, {"expect": "Originate", "then": "close"}]})
    client = client_for(server)
    client.login("admin", SECRET)
    with pytest.raises(AMIConnectionError, match="closed the connection"):
        client.action("Originate", retry=False, Channel="PJSIP/1000")
    assert server.connections == 1


def test_every_error_is_an_amierror():
    for cls in (AMIConnectionError, AMIAuthError, AMITimeout, AMIProtocolError, AMIActionError):
        assert issubclass(cls, AMIError)


def test_repr_has_no_secret(ami_server):
    server = ami_server("normal")
    client = client_for(server)
    client.login("admin", SECRET)
    assert SECRET not in repr(client)
    assert SECRET not in str(vars(client).get("banner"))
    assert "admin" in repr(client)
    client.logoff()
