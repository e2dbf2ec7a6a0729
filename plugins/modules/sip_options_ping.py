#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sip_options_ping
short_description: Send a SIP OPTIONS request and check the response
version_added: 0.1.0
description:
  - Sends one out-of-dialog SIP C(OPTIONS) request over UDP, TCP or TLS from the managed node and reports the final
    response status, reason phrase, round trip time and the C(Server)/C(User-Agent) header.
  - Over UDP the request is retransmitted as RFC 3261 describes (500 ms, doubling up to 4 s) until O(timeout).
  - Fails when no final response arrives, the connection is refused, or the status is not in O(expected_status).
  - Uses only the Python standard library.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
    details: The module only sends a read-only OPTIONS request, so it runs normally in check mode.
  diff_mode:
    support: none
options:
  host:
    description:
      - Host name or IP address of the SIP server.
    type: str
    required: true
  port:
    description:
      - Port of the SIP server.
      - Defaults to V(5061) for O(transport=tls) and V(5060) otherwise.
    type: int
  transport:
    description:
      - Transport to use.
    type: str
    choices: [udp, tcp, tls]
    default: udp
  user:
    description:
      - User part of the Request-URI (C(sip:USER@host:port)).
      - Asterisk answers C(404 Not Found) when this user is not an extension in the context of the endpoint that the
        request matched; without a user the request is for the server itself.
    type: str
  from_user:
    description:
      - User part of the C(From) and C(Contact) URIs.
    type: str
    default: ansible
  user_agent:
    description:
      - Value of the C(User-Agent) header sent.
    type: str
    default: ansible-voiceops-sip-options-ping
  timeout:
    description:
      - Seconds to wait for a final response (including UDP retransmissions and TCP/TLS connection set-up).
    type: float
    default: 5
  expected_status:
    description:
      - Final status codes that count as success.
    type: list
    elements: int
    default: [200]
  validate_certs:
    description:
      - For O(transport=tls), verify the server certificate and host name.
    type: bool
    default: true
  ca_path:
    description:
      - For O(transport=tls), a PEM file with CA certificates to trust instead of the system store.
    type: path
  server_name:
    description:
      - For O(transport=tls), the name sent in SNI and checked against the certificate. Defaults to O(host).
    type: str
notes:
  - The source address and port are chosen by the operating system; C(Via) and C(Contact) carry them and C(rport)
    is requested.
  - O(expected_status) may list error codes on purpose, for example V([404]) to prove that an unknown user is
    rejected.
"""

EXAMPLES = r"""
- name: Asterisk answers OPTIONS on UDP 5060
  voiceops.webrtc_pbx.sip_options_ping:
    host: 127.0.0.1

- name: The trunk-facing TLS listener answers, with a private CA
  voiceops.webrtc_pbx.sip_options_ping:
    host: pbx.example.com
    transport: tls
    ca_path: /etc/asterisk/keys/ca.pem

- name: Extension 1000 exists in the trunk context
  voiceops.webrtc_pbx.sip_options_ping:
    host: 127.0.0.1
    user: "1000"
    expected_status: [200]
  register: ping

- name: Show the round trip time
  ansible.builtin.debug:
    msg: "{{ ping.status_code }} {{ ping.reason }} in {{ ping.rtt_ms }} ms from {{ ping.server }}"
"""

RETURN = r"""
status_code:
  description: Status code of the final response.
  returned: when a final response was received
  type: int
  sample: 200
reason:
  description: Reason phrase of the final response.
  returned: when a final response was received
  type: str
  sample: OK
rtt_ms:
  description: Milliseconds from the first transmission to the final response.
  returned: when a final response was received
  type: float
  sample: 0.734
server:
  description: The C(Server) header of the response, or the C(User-Agent) header when there is no C(Server) header.
  returned: when a final response was received
  type: str
  sample: Asterisk PBX 22.10.1
user_agent:
  description: The C(User-Agent) header of the response, if any.
  returned: when a final response was received
  type: str
  sample: null
headers:
  description: All response headers (names in Title-Case, repeated headers joined with C(, )).
  returned: when a final response was received
  type: dict
  sample:
    Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER
    Accept: application/sdp
    Server: Asterisk PBX 22.10.1
transmissions:
  description: Number of times the request was sent (UDP retransmissions included).
  returned: when a final response was received
  type: int
  sample: 1
provisional:
  description: Status codes of provisional (1xx) responses received before the final one.
  returned: when a final response was received
  type: list
  elements: int
  sample: []
request_uri:
  description: Request-URI that was sent.
  returned: always
  type: str
  sample: sip:127.0.0.1:5060
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.sip import (
    DEFAULT_PORTS,
    SIPConnectionError,
    SIPError,
    SIPTimeout,
    build_request_uri,
    options_ping,
)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int"),
            transport=dict(type="str", default="udp", choices=["udp", "tcp", "tls"]),
            user=dict(type="str"),
            from_user=dict(type="str", default="ansible"),
            user_agent=dict(type="str", default="ansible-voiceops-sip-options-ping"),
            timeout=dict(type="float", default=5.0),
            expected_status=dict(type="list", elements="int", default=[200]),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            server_name=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    port = p["port"] or DEFAULT_PORTS[p["transport"]]
    request_uri = build_request_uri(p["host"], port, p["transport"], p["user"])
    where = f"{p['host']}:{port} over {p['transport']}"
    result = dict(changed=False, request_uri=request_uri)
    try:
        response = options_ping(
            p["host"],
            port,
            transport=p["transport"],
            user=p["user"],
            timeout=p["timeout"],
            from_user=p["from_user"],
            user_agent=p["user_agent"],
            validate_certs=p["validate_certs"],
            ca_path=p["ca_path"],
            server_name=p["server_name"],
        )
    except SIPTimeout as exc:
        module.fail_json(msg=f"SIP OPTIONS timed out: {exc}", **result)
    except SIPConnectionError as exc:
        module.fail_json(msg=f"SIP OPTIONS to {where} failed: {exc}", **result)
    except (SIPError, OSError) as exc:
        module.fail_json(msg=f"SIP OPTIONS to {where} failed: {exc}", **result)

    result.update(
        status_code=response["status_code"],
        reason=response["reason"],
        rtt_ms=response["rtt_ms"],
        server=response["server"] or response["user_agent"],
        user_agent=response["user_agent"],
        headers=response["headers"],
        transmissions=response["transmissions"],
        provisional=response["provisional"],
    )
    if response["status_code"] not in p["expected_status"]:
        module.fail_json(
            msg=(
                f"{where} answered OPTIONS {request_uri} with {response['status_code']} {response['reason']}, "
                f"expected {', '.join(str(code) for code in p['expected_status'])}"
            ),
            **result,
        )
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
