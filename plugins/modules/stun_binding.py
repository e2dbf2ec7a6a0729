#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stun_binding
short_description: Send a STUN Binding Request and report the mapped address
version_added: 0.1.0
description:
  - Sends one RFC 5389 STUN Binding Request from the managed node to a STUN (or TURN) server over UDP or TCP and
    reports the reflexive transport address the server saw (C(XOR-MAPPED-ADDRESS), IPv4 or IPv6), the round trip
    time and the server's C(SOFTWARE) attribute.
  - Over UDP the request is retransmitted as RFC 5389 describes (500 ms, doubling) until O(timeout).
  - Servers that only speak RFC 3489 and answer with C(MAPPED-ADDRESS) are understood as well.
  - Uses only the Python standard library.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
    details: The module only sends a read-only Binding Request, so it runs normally in check mode.
  diff_mode:
    support: none
options:
  host:
    description:
      - Host name or IP address of the STUN server.
    type: str
    required: true
  port:
    description:
      - Port of the STUN server.
    type: int
    default: 3478
  transport:
    description:
      - Transport to use.
    type: str
    choices: [udp, tcp]
    default: udp
  timeout:
    description:
      - Seconds to wait for the response (including retransmissions).
    type: float
    default: 5
  software:
    description:
      - Value of a C(SOFTWARE) attribute to include in the request. None is sent by default.
    type: str
notes:
  - A Binding Request needs no credentials, also on coturn with C(use-auth-secret).
"""

EXAMPLES = r"""
- name: coturn answers STUN on UDP 3478
  voiceops.webrtc_pbx.stun_binding:
    host: 127.0.0.1
  register: stun

- name: Show the reflexive address
  ansible.builtin.debug:
    msg: "{{ stun.mapped_address }}:{{ stun.mapped_port }} in {{ stun.rtt_ms }} ms ({{ stun.software }})"

- name: Same over TCP
  voiceops.webrtc_pbx.stun_binding:
    host: turn.example.com
    port: 3478
    transport: tcp
    timeout: 3
"""

RETURN = r"""
mapped_address:
  description: Reflexive IP address reported by the server.
  returned: success
  type: str
  sample: 203.0.113.7
mapped_port:
  description: Reflexive port reported by the server.
  returned: success
  type: int
  sample: 54321
mapped_family:
  description: C(IPv4) or C(IPv6).
  returned: success
  type: str
  sample: IPv4
mapped_attribute:
  description: Attribute the address came from, C(XOR-MAPPED-ADDRESS) or C(MAPPED-ADDRESS).
  returned: success
  type: str
  sample: XOR-MAPPED-ADDRESS
rtt_ms:
  description: Milliseconds from the last transmission of the request to the response.
  returned: success
  type: float
  sample: 0.412
software:
  description: The server's C(SOFTWARE) attribute, null when absent.
  returned: success
  type: str
  sample: "Coturn-4.6.1 'Gorst'"
response_origin:
  description: C(RESPONSE-ORIGIN) attribute (address and port), null when absent.
  returned: success
  type: dict
  sample: {"address": "192.0.2.10", "port": 3478}
other_address:
  description: C(OTHER-ADDRESS) attribute (address and port), null when absent.
  returned: success
  type: dict
  sample: null
transmissions:
  description: Number of times the request was sent.
  returned: success
  type: int
  sample: 1
attributes:
  description: Names of the attributes in the response, in order.
  returned: success
  type: list
  elements: str
  sample: [XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN, SOFTWARE, FINGERPRINT]
local_address:
  description: Local address and port the request was sent from.
  returned: success
  type: dict
  sample: {"address": "192.0.2.55", "port": 40000}
error_code:
  description: STUN error code, when the server answered with a Binding Error Response.
  returned: on an error response
  type: int
  sample: 400
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.stun import (
    STUNConnectionError,
    STUNError,
    STUNErrorResponse,
    STUNParseError,
    STUNTimeout,
    binding_request,
)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=3478),
            transport=dict(type="str", default="udp", choices=["udp", "tcp"]),
            timeout=dict(type="float", default=5.0),
            software=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    where = f"{p['host']}:{p['port']} over {p['transport']}"
    try:
        response = binding_request(
            p["host"], p["port"], transport=p["transport"], timeout=p["timeout"], software=p["software"]
        )
    except STUNTimeout as exc:
        module.fail_json(msg=f"STUN timeout: {exc}; is the server running and the port open in the firewall?")
    except STUNErrorResponse as exc:
        module.fail_json(
            msg=f"STUN server {where} answered with error {exc.code} {exc.reason}",
            error_code=exc.code,
            reason=exc.reason,
        )
    except STUNParseError as exc:
        module.fail_json(msg=f"Invalid STUN response from {where}: {exc}")
    except STUNConnectionError as exc:
        module.fail_json(msg=f"STUN request to {where} failed: {exc}")
    except (STUNError, OSError) as exc:
        module.fail_json(msg=f"STUN request to {where} failed: {exc}")

    keys = (
        "mapped_address",
        "mapped_port",
        "mapped_family",
        "mapped_attribute",
        "rtt_ms",
        "software",
        "response_origin",
        "other_address",
        "transmissions",
        "attributes",
        "local_address",
    )
    module.exit_json(changed=False, **{key: response[key] for key in keys})


def main():
    run_module()


if __name__ == "__main__":
    main()
