#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pjsip_endpoint_info
short_description: Read Asterisk PJSIP endpoint and contact state over AMI
version_added: 0.1.0
description:
  - Connects to the Asterisk Manager Interface (AMI), runs one C(PJSIPShowEndpoints) and one C(PJSIPShowContacts)
    list action and returns the state of every PJSIP endpoint with its contacts.
  - The cost does not grow with the number of endpoints; the per-endpoint C(PJSIPShowEndpoint) action is never used
    (it is one request per endpoint and its C(AuthDetail) events contain passwords).
  - Optionally polls until endpoints are online, reachable or registered, and fails with the list of endpoints that
    are not.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  ami_host:
    description:
      - Address of the AMI listener.
    type: str
    default: 127.0.0.1
  ami_port:
    description:
      - TCP port of the AMI listener.
    type: int
    default: 5038
  ami_username:
    description:
      - AMI user (a section of C(manager.conf)).
      - The PJSIP list actions belong to the AMI class C(system), and Asterisk authorizes actions against the user's
        C(write) permissions, so the user needs C(write = system) (and C(read = system)) in C(manager.conf).
    type: str
    required: true
  ami_secret:
    description:
      - Secret of O(ami_username).
    type: str
    required: true
  endpoints:
    description:
      - Only return (and wait for) these endpoints.
      - Requested endpoints that Asterisk does not know are listed in RV(missing) and count as not ready when waiting.
      - By default all endpoints are returned.
    type: list
    elements: str
  timeout:
    description:
      - Seconds allowed for connecting to AMI and for each AMI action (including all events of a list).
    type: float
    default: 10
  wait_for:
    description:
      - Condition to poll for.
      - V(none) does not wait (unless O(min_online) is set, which implies V(online)).
      - V(online) means the endpoint's device state is not C(Unavailable), C(Invalid) or C(Unknown), or one of its
        contacts is C(Reachable) or C(NonQualified).
      - V(reachable) means at least one contact answered the qualify OPTIONS (status C(Reachable)). Contacts of AORs
        with C(qualify_frequency=0) are C(NonQualified) and never become reachable; use V(registered) or V(online)
        for them.
      - V(registered) means at least one contact exists (registered or static).
      - Without O(min_online) every selected endpoint must meet the condition, and at least one must exist.
    type: str
    choices: [none, online, reachable, registered]
    default: none
  min_online:
    description:
      - Instead of all selected endpoints, require at least this many to meet O(wait_for).
    type: int
  wait_timeout:
    description:
      - Seconds to keep polling until the condition holds.
      - V(0) checks the condition once and fails at once if it does not hold.
      - While waiting, connection failures (for example Asterisk still starting) are retried until the time is up.
      - Ignored when there is no condition (O(wait_for=none) and no O(min_online)).
    type: float
    default: 0
  poll_interval:
    description:
      - Seconds between two polls while waiting.
    type: float
    default: 2
notes:
  - Enable AMI in C(manager.conf) (C(enabled = yes)) and give the user C(read = system) and C(write = system).
  - Asterisk answers C(No endpoints found) or C(No Contacts found) instead of an empty list; both are treated as empty.
  - No result ever contains authentication objects, C(AuthDetail) or secrets.
seealso:
  - name: PJSIPShowEndpoints AMI action
    description: Asterisk documentation of the list action used.
    link: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/PJSIPShowEndpoints/
  - name: PJSIPShowContacts AMI action
    description: Asterisk documentation of the list action used.
    link: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/PJSIPShowContacts/
"""

EXAMPLES = r"""
- name: Read all PJSIP endpoints
  voiceops.webrtc_pbx.pjsip_endpoint_info:
    ami_username: ansible
    ami_secret: "{{ vault_ami_secret }}"
  register: pjsip

- name: Show which endpoints are offline
  ansible.builtin.debug:
    msg: "{{ pjsip.endpoints | rejectattr('online') | map(attribute='name') | list }}"

- name: Wait up to two minutes until the trunk answers qualify OPTIONS
  voiceops.webrtc_pbx.pjsip_endpoint_info:
    ami_username: ansible
    ami_secret: "{{ vault_ami_secret }}"
    endpoints: [genesys-trunk]
    wait_for: reachable
    wait_timeout: 120
    poll_interval: 5

- name: Wait until at least 50 WebRTC agents are registered
  voiceops.webrtc_pbx.pjsip_endpoint_info:
    ami_host: 127.0.0.1
    ami_port: 5038
    ami_username: ansible
    ami_secret: "{{ vault_ami_secret }}"
    wait_for: registered
    min_online: 50
    wait_timeout: 300
"""

RETURN = r"""
endpoints:
  description: The selected endpoints, sorted by name.
  returned: success, and on a failed wait
  type: list
  elements: dict
  contains:
    name:
      description: Endpoint name (C(ObjectName)).
      type: str
      sample: "1000"
    aor:
      description: AOR(s) of the endpoint as configured (comma-separated).
      type: str
      sample: "1000"
    transport:
      description: Transport configured on the endpoint (may be empty).
      type: str
      sample: transport-wss
    device_state:
      description: Asterisk device state.
      type: str
      sample: Not in use
    active_channels:
      description: Number of active channels.
      type: int
      sample: 0
    online:
      description:
        - Device state not C(Unavailable), C(Invalid) or C(Unknown), or a contact C(Reachable) or C(NonQualified).
      type: bool
      sample: true
    registered:
      description: At least one contact exists.
      type: bool
      sample: true
    reachable:
      description: At least one contact is C(Reachable).
      type: bool
      sample: false
    contacts:
      description: Contacts of the endpoint.
      type: list
      elements: dict
      contains:
        uri:
          description: Contact URI.
          type: str
          sample: sip:3k1d9f@df7jal23ls0d.invalid;transport=ws
        status:
          description: C(Reachable), C(Unreachable), C(NonQualified), C(Unknown), ...
          type: str
          sample: NonQualified
        rtt_ms:
          description: Qualify round trip time in milliseconds, null when not qualified.
          type: float
          sample: 12.345
        user_agent:
          description: User-Agent of the registration.
          type: str
          sample: JsSIP 3.13.8
  sample:
    - name: "1000"
      aor: "1000"
      transport: transport-wss
      device_state: Not in use
      active_channels: 0
      online: true
      registered: true
      reachable: false
      contacts:
        - uri: sip:3k1d9f@df7jal23ls0d.invalid;transport=ws
          status: NonQualified
          rtt_ms: null
          user_agent: JsSIP 3.13.8
summary:
  description: Counts over the selected endpoints.
  returned: success, and on a failed wait
  type: dict
  contains:
    total:
      description: Number of selected endpoints.
      type: int
    online:
      description: Endpoints that are online.
      type: int
    offline:
      description: Endpoints that are not online.
      type: int
    registered:
      description: Endpoints with at least one contact.
      type: int
    contacts_total:
      description: Number of contacts of the selected endpoints.
      type: int
    contacts_reachable:
      description: Contacts with status C(Reachable).
      type: int
  sample: {total: 3, online: 2, offline: 1, registered: 2, contacts_total: 2, contacts_reachable: 1}
missing:
  description: Names given in O(endpoints) that Asterisk does not know.
  returned: always
  type: list
  elements: str
  sample: []
failing:
  description: Endpoints that do not meet the wait condition (empty without a condition).
  returned: always
  type: list
  elements: str
  sample: ["1002"]
condition:
  description: Human readable result of the last evaluation of the wait condition.
  returned: always
  type: str
  sample: 3 of 3 endpoint(s) online
polls:
  description: Number of successful polls (each is one C(PJSIPShowEndpoints) plus one C(PJSIPShowContacts)).
  returned: always
  type: int
  sample: 1
waited:
  description: Seconds spent polling.
  returned: always
  type: float
  sample: 0.012
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.ami import (
    AMIActionError,
    AMIAuthError,
    AMIClient,
    AMIConnectionError,
    AMIError,
    AMIProtocolError,
    AMITimeout,
)
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.pjsip_state import (
    evaluate_wait,
    fetch_endpoints,
    select_endpoints,
    summarize,
)


def _error_message(exc):
    if isinstance(exc, AMIAuthError):
        return f"AMI login failed: {exc.message}"
    if isinstance(exc, AMITimeout):
        return f"AMI timeout: {exc}"
    if isinstance(exc, AMIConnectionError):
        return f"AMI connection failed: {exc}"
    if isinstance(exc, AMIProtocolError):
        return f"AMI protocol error (is this port really an Asterisk manager?): {exc}"
    if isinstance(exc, AMIActionError):
        text = f"AMI error: {exc}"
        if "permission denied" in exc.message.lower():
            text += " (the AMI user needs read = system and write = system in manager.conf)"
        return text
    return f"AMI error: {exc}"


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            ami_host=dict(type="str", default="127.0.0.1"),
            ami_port=dict(type="int", default=5038),
            ami_username=dict(type="str", required=True),
            ami_secret=dict(type="str", required=True, no_log=True),
            endpoints=dict(type="list", elements="str"),
            timeout=dict(type="float", default=10.0),
            wait_for=dict(type="str", default="none", choices=["none", "online", "reachable", "registered"]),
            min_online=dict(type="int"),
            wait_timeout=dict(type="float", default=0.0),
            poll_interval=dict(type="float", default=2.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    if p["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must not be negative")
    if p["poll_interval"] <= 0:
        module.fail_json(msg="poll_interval must be greater than 0")
    if p["min_online"] is not None and p["min_online"] < 0:
        module.fail_json(msg="min_online must not be negative")

    names = p["endpoints"] or None
    waiting = p["wait_for"] != "none" or p["min_online"] is not None
    wait_for = p["wait_for"] if p["wait_for"] != "none" else "online"
    start = time.monotonic()
    deadline = start + (p["wait_timeout"] if waiting else 0)

    result = dict(changed=False, endpoints=[], summary=summarize([]), missing=[], failing=[], condition="", polls=0)
    client = AMIClient(p["ami_host"], p["ami_port"], timeout=p["timeout"])
    try:
        while True:
            try:
                if not client.connected:
                    client.login(p["ami_username"], p["ami_secret"])
                all_endpoints = fetch_endpoints(client)
            except (AMIConnectionError, AMITimeout) as exc:
                # Asterisk may still be starting: keep trying while a wait is running.
                client.close()
                if not waiting or time.monotonic() + p["poll_interval"] > deadline:
                    result["waited"] = round(time.monotonic() - start, 3)
                    module.fail_json(msg=_error_message(exc), **result)
                time.sleep(p["poll_interval"])
                continue
            except AMIError as exc:
                result["waited"] = round(time.monotonic() - start, 3)
                module.fail_json(msg=_error_message(exc), **result)

            result["polls"] += 1
            selected, missing = select_endpoints(all_endpoints, names)
            result.update(endpoints=selected, summary=summarize(selected), missing=missing)
            if not waiting:
                result["condition"] = "No wait condition"
                break
            ok, failing, message = evaluate_wait(all_endpoints, wait_for, names=names, min_online=p["min_online"])
            result.update(failing=failing, condition=message)
            if ok:
                break
            if time.monotonic() + p["poll_interval"] > deadline:
                result["waited"] = round(time.monotonic() - start, 3)
                if p["wait_timeout"] > 0:
                    msg = (
                        f"Timed out after {p['wait_timeout']}s ({result['polls']} polls) "
                        f"waiting for endpoints to be {wait_for}: {message}"
                    )
                else:
                    msg = f"Endpoints are not {wait_for} (wait_timeout=0, checked once): {message}"
                module.fail_json(msg=msg, **result)
            time.sleep(p["poll_interval"])
    finally:
        client.logoff()

    result["waited"] = round(time.monotonic() - start, 3)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
