#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: turn_allocation
short_description: Allocate a TURN relay with credentials, test peer permissions and free it again
version_added: 0.1.0
description:
  - Performs an authenticated RFC 5766 / RFC 8656 TURN C(Allocate) (UDP relay) from the managed node against a TURN
    server such as coturn, over UDP or TCP, and reports the relayed and reflexive addresses, the granted lifetime and
    the round trip time.
  - The first C(Allocate) is sent without credentials; the server's C(401 Unauthorized) supplies C(REALM) and
    C(NONCE), and the request is repeated with C(USERNAME), C(REALM), C(NONCE), C(MESSAGE-INTEGRITY) (long-term
    credentials, keyed with the MD5 of C(username:realm:password)) and C(FINGERPRINT). A C(438 Stale Nonce) is
    retried once with the new nonce.
  - Credentials are either static (O(username) and O(password)) or TURN REST credentials derived from the shared
    secret (O(rest_secret)) exactly like coturn's C(use-auth-secret) expects.
  - For every address in O(permission_peers) a C(CreatePermission) is sent and its outcome compared with
    O(expect_permission), which checks C(denied-peer-ip) / C(allowed-peer-ip) policies without sending any data to
    the peers.
  - Finally the allocation is deleted with a C(Refresh) of C(LIFETIME) 0 (best effort, also after a failure), so a
    health check does not count against the server's quotas.
  - Uses only the Python standard library.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
    details: The allocation only lives for the duration of the module and is freed at the end, so the module runs
      normally in check mode and always reports C(changed=false).
  diff_mode:
    support: none
options:
  host:
    description:
      - Host name or IP address of the TURN server.
    type: str
    required: true
  port:
    description:
      - Port of the TURN server.
    type: int
    default: 3478
  transport:
    description:
      - Transport between the managed node and the TURN server. The relay itself is always UDP.
    type: str
    choices: [udp, tcp]
    default: udp
  timeout:
    description:
      - Seconds to wait for each response (over UDP including RFC 5389 retransmissions).
    type: float
    default: 5
  realm:
    description:
      - Realm to authenticate in. By default the realm of the server's C(401) response is used.
    type: str
  username:
    description:
      - Static TURN user name (coturn C(user=) or C(lt-cred-mech) database).
      - Mutually exclusive with O(rest_secret); requires O(password).
    type: str
  password:
    description:
      - Password of O(username).
    type: str
  rest_secret:
    description:
      - TURN REST shared secret (coturn C(static-auth-secret) with C(use-auth-secret)).
      - The user name is C(<unix expiry>:<rest_user>) with the expiry O(rest_ttl) seconds from now, the password
        C(base64(HMAC-SHA1(rest_secret, username))).
    type: str
  rest_user:
    description:
      - User part of the TURN REST user name.
    type: str
    default: health
  rest_ttl:
    description:
      - Validity of the TURN REST credentials in seconds.
    type: int
    default: 300
  permission_peers:
    description:
      - Peer IP addresses (IPv4 or IPv6, no port) to send a C(CreatePermission) for.
    type: list
    elements: str
    default: []
  expect_permission:
    description:
      - Expected outcome of the C(CreatePermission) requests for O(permission_peers).
      - V(allowed) expects a success response, V(denied) expects C(403 Forbidden) (what coturn answers for
        C(denied-peer-ip) ranges). Any other outcome counts as a mismatch and fails the module, naming the peers.
    type: str
    choices: [allowed, denied]
    default: allowed
notes:
  - One of O(username) or O(rest_secret) is required.
  - Credentials are used as given (UTF-8); SASLprep is not applied, which makes no difference for ASCII credentials.
  - Only C(MESSAGE-INTEGRITY) (HMAC-SHA1) is supported, not the RFC 8489 C(MESSAGE-INTEGRITY-SHA256).
  - Over TCP the allocation belongs to the TCP connection and ends with it in any case.
seealso:
  - module: voiceops.webrtc_pbx.stun_binding
"""

EXAMPLES = r"""
- name: coturn relays with TURN REST credentials, and refuses the private ranges
  voiceops.webrtc_pbx.turn_allocation:
    host: turn.example.com
    rest_secret: "{{ coturn_static_auth_secret }}"
    permission_peers: [127.0.0.1, 10.0.0.1, 192.168.1.1]
    expect_permission: denied
  register: turn

- name: Show the relay
  ansible.builtin.debug:
    msg: "{{ turn.relayed_address }}:{{ turn.relayed_port }} for {{ turn.lifetime }} s, {{ turn.rtt_ms }} ms"

- name: Public peers may be reached, over TCP, with a static user
  voiceops.webrtc_pbx.turn_allocation:
    host: 192.0.2.10
    transport: tcp
    realm: turn.example.com
    username: monitor
    password: "{{ vault_turn_monitor_password }}"
    permission_peers: [198.51.100.20]
"""

RETURN = r"""
relayed_address:
  description: Relayed transport address (C(XOR-RELAYED-ADDRESS)) allocated by the server.
  returned: success
  type: str
  sample: 203.0.113.10
relayed_port:
  description: Port of the relayed transport address.
  returned: success
  type: int
  sample: 49160
mapped_address:
  description: Reflexive address of the managed node as seen by the server (C(XOR-MAPPED-ADDRESS)).
  returned: success
  type: str
  sample: 198.51.100.7
mapped_port:
  description: Reflexive port of the managed node.
  returned: success
  type: int
  sample: 40123
lifetime:
  description: Allocation lifetime in seconds granted by the server (C(LIFETIME)), null when absent.
  returned: success
  type: int
  sample: 600
rtt_ms:
  description: Milliseconds from the (last transmission of the) authenticated C(Allocate) to its response.
  returned: success
  type: float
  sample: 1.25
permissions:
  description: Outcome of the C(CreatePermission) for each of O(permission_peers), in order.
  returned: success and on a permission mismatch
  type: list
  elements: dict
  contains:
    peer:
      description: Peer IP address.
      type: str
      sample: 10.0.0.1
    allowed:
      description: Whether the server created the permission.
      type: bool
      sample: false
    error_code:
      description: Error code of the error response, null on success.
      type: int
      sample: 403
    reason:
      description: Reason phrase of the error response, null on success.
      type: str
      sample: Forbidden
  sample: [{"peer": "10.0.0.1", "allowed": false, "error_code": 403, "reason": "Forbidden"}]
username:
  description: User name the requests were authenticated with (the TURN REST one includes the expiry).
  returned: whenever the server was contacted, also on failure
  type: str
  sample: "1767225600:health"
realm:
  description: Realm the requests were authenticated in.
  returned: success
  type: str
  sample: turn.example.com
auth_required:
  description: Whether the server demanded credentials. C(false) means it relays for anyone.
  returned: success
  type: bool
  sample: true
released:
  description: Whether the final C(Refresh) with C(LIFETIME) 0 freed the allocation.
  returned: success
  type: bool
  sample: true
software:
  description: The server's C(SOFTWARE) attribute, null when absent.
  returned: success
  type: str
  sample: "Coturn-4.6.1 'Gorst'"
error_code:
  description: TURN error code when the server answered with an error response.
  returned: on an error response
  type: int
  sample: 486
reason:
  description: Reason phrase of that error response.
  returned: on an error response
  type: str
  sample: Allocation Quota Reached
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.stun import (
    STUNConnectionError,
    STUNError,
    STUNParseError,
    STUNTimeout,
)
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.turn import (
    TURNErrorResponse,
    rest_credentials,
    turn_check,
)

RESULT_KEYS = (
    "relayed_address",
    "relayed_port",
    "mapped_address",
    "mapped_port",
    "lifetime",
    "rtt_ms",
    "permissions",
    "realm",
    "auth_required",
    "released",
    "software",
)


def permission_mismatches(permissions, expect):
    """Describe the permissions whose outcome differs from ``expect`` (allowed|denied)."""
    mismatches = []
    for item in permissions:
        outcome = "allowed" if item["allowed"] else f"{item['error_code']} {item['reason']}".rstrip()
        as_expected = item["allowed"] if expect == "allowed" else item["error_code"] == 403
        if not as_expected:
            mismatches.append(f"{item['peer']} ({outcome})")
    return mismatches


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=3478),
            transport=dict(type="str", default="udp", choices=["udp", "tcp"]),
            timeout=dict(type="float", default=5.0),
            realm=dict(type="str"),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            rest_secret=dict(type="str", no_log=True),
            rest_user=dict(type="str", default="health"),
            rest_ttl=dict(type="int", default=300),
            permission_peers=dict(type="list", elements="str", default=[]),
            expect_permission=dict(type="str", default="allowed", choices=["allowed", "denied"]),
        ),
        mutually_exclusive=[("username", "rest_secret"), ("password", "rest_secret")],
        required_together=[("username", "password")],
        required_one_of=[("username", "rest_secret")],
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    if p["rest_ttl"] <= 0:
        module.fail_json(msg="rest_ttl must be greater than 0")
    bad_peers = []
    for peer in p["permission_peers"]:
        try:
            ipaddress.ip_address(peer)
        except ValueError:
            bad_peers.append(peer)
    if bad_peers:
        module.fail_json(msg=f"permission_peers must be IP addresses without port: {', '.join(bad_peers)}")

    if p["rest_secret"] is not None:
        username, password = rest_credentials(p["rest_secret"], p["rest_user"], p["rest_ttl"])
    else:
        username, password = p["username"], p["password"]

    where = f"{p['host']}:{p['port']} over {p['transport']}"
    try:
        result = turn_check(
            p["host"],
            p["port"],
            transport=p["transport"],
            timeout=p["timeout"],
            username=username,
            password=password,
            realm=p["realm"],
            permission_peers=p["permission_peers"],
        )
    except STUNTimeout as exc:
        module.fail_json(
            msg=f"TURN timeout: {exc}; is the TURN server running and the port open in the firewall?", username=username
        )
    except TURNErrorResponse as exc:  # includes TURNAuthError (401 after authenticating)
        module.fail_json(msg=f"TURN server {where}: {exc}", error_code=exc.code, reason=exc.reason, username=username)
    except STUNParseError as exc:
        module.fail_json(msg=f"Invalid TURN response from {where}: {exc}", username=username)
    except STUNConnectionError as exc:
        module.fail_json(msg=f"TURN request to {where} failed: {exc}", username=username)
    except (STUNError, OSError) as exc:
        module.fail_json(msg=f"TURN request to {where} failed: {exc}", username=username)

    output = {key: result[key] for key in RESULT_KEYS}
    mismatches = permission_mismatches(result["permissions"], p["expect_permission"])
    if mismatches:
        module.fail_json(
            msg=f"TURN server {where}: CreatePermission outcome differs from expect_permission="
            f"{p['expect_permission']} for {len(mismatches)} peer(s): {', '.join(mismatches)}",
            username=username,
            **output,
        )
    module.exit_json(changed=False, username=username, **output)


def main():
    run_module()


if __name__ == "__main__":
    main()
