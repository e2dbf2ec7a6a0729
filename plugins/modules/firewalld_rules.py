#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewalld_rules
short_description: Open a set of services, ports, rich rules and sources in a firewalld zone in one module run
version_added: 0.2.0
description:
  - Enables every given service, port and rich rule in one firewalld zone, both in the permanent configuration
    and in the running firewall (the running firewall is changed directly, never reloaded, so Docker's chains
    stay). One module run and one D-Bus connection for the whole set, where M(ansible.posix.firewalld) needs one
    module run per item (issue 8).
  - Only adds; entries already in the zone that are not listed stay.
  - O(ipsets) are created in the permanent configuration first (firewalld knows ipsets only there); when one
    was created or replaced, firewalld is reloaded once so that the running firewall has it, before the zone's
    entries are added. A re-run with the ipsets in place never reloads.
  - Rich rules are compared in firewalld's normalised form, so spacing and attribute order do not matter.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - firewalld running, and its Python bindings (C(python3-firewall)) on the managed node.
options:
  zone:
    description: The zone.
    type: str
    required: true
  services:
    description: firewalld service names to enable.
    type: list
    elements: str
    default: []
  ports:
    description: Ports or port ranges as C(PORT/PROTOCOL) or C(FIRST-LAST/PROTOCOL).
    type: list
    elements: str
    default: []
  rich_rules:
    description: Rich rules to enable.
    type: list
    elements: str
    default: []
  sources:
    description: Sources to bind to the zone, addresses or networks or C(ipset:NAME).
    type: list
    elements: str
    default: []
    version_added: 0.3.0
  ipsets:
    description:
      - Permanent ipsets that must exist with exactly this type and these options (an ipset with other options,
        for example a C(timeout), is replaced). Their entries are not managed.
    type: list
    elements: dict
    default: []
    version_added: 0.3.0
    suboptions:
      name:
        description: The ipset's name.
        type: str
        required: true
      type:
        description: Its type.
        type: str
        default: hash:ip
      options:
        description: Its options (for example C(family=inet6)); none by default.
        type: dict
        default: {}
"""

EXAMPLES = r"""
- name: Open the web, WSS, TURN and RTP ports; SIP only from the trunk
  voiceops.webrtc_pbx.firewalld_rules:
    zone: public
    services: [http, https]
    ports: [8089/tcp, 3478/udp, 3478/tcp, 5349/tcp, 10000-20000/udp]
    rich_rules:
      - rule family="ipv4" source address="192.0.2.10" port port="5060" protocol="udp" accept

- name: Drop everything from the addresses a guard puts in an ipset
  voiceops.webrtc_pbx.firewalld_rules:
    zone: drop
    ipsets:
      - name: voiceops-banned
        type: hash:ip
    sources: ["ipset:voiceops-banned"]
"""

RETURN = r"""
added:
  description: What was added (or would be in check mode), per configuration.
  type: dict
  returned: always
  contains:
    permanent:
      description: Services, ports, rich rules and sources added to the permanent configuration.
      type: dict
    runtime:
      description: Services, ports, rich rules and sources added to the running firewall.
      type: dict
ipsets_created:
  description: Ipsets created or replaced (or that would be in check mode); firewalld was reloaded when not empty.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.firewalld_rules import (
    FirewalldRulesError,
    apply,
    ensure_ipsets,
    parse_ports,
)


class FirewalldBackend:
    """The permanent and the runtime view of one zone through firewalld's D-Bus client."""

    def __init__(self, zone):
        from firewall.client import FirewallClient  # noqa: PLC0415 - only on the managed node
        from firewall.core.rich import Rich_Rule  # noqa: PLC0415

        self.zone = zone
        self.client = FirewallClient()
        if not self.client.connected:
            raise FirewalldRulesError("firewalld is not running (no D-Bus connection)")
        self._rich = Rich_Rule
        if zone not in self.client.getZones():
            raise FirewalldRulesError(f"zone {zone} does not exist")
        self._config = self.client.config().getZoneByName(zone)
        self._settings = self._config.getSettings()

    def normalise_rich_rule(self, rule):
        try:
            return str(self._rich(rule_str=rule))
        except Exception as exc:  # firewalld raises its own FirewallError
            raise FirewalldRulesError(f"invalid rich rule {rule!r}: {exc}") from exc

    def current(self, permanent):
        if permanent:
            settings = self._settings
            return {
                "services": list(settings.getServices()),
                "ports": [tuple(port) for port in settings.getPorts()],
                "rich_rules": list(settings.getRichRules()),
                "sources": list(settings.getSources()),
            }
        return {
            "services": list(self.client.getServices(self.zone)),
            "ports": [tuple(port) for port in self.client.getPorts(self.zone)],
            "rich_rules": list(self.client.getRichRules(self.zone)),
            "sources": list(self.client.getSources(self.zone)),
        }

    def ipset(self, name):
        config = self.client.config()
        if name not in config.getIPSetNames():
            return None
        settings = config.getIPSetByName(name).getSettings()
        return {"type": settings.getType(), "options": dict(settings.getOptions())}

    def set_ipset(self, name, settings, replace):
        from firewall.client import FirewallClientIPSetSettings  # noqa: PLC0415 - only on the managed node

        config = self.client.config()
        if replace:
            config.getIPSetByName(name).remove()
        new = FirewallClientIPSetSettings()
        new.setType(settings["type"])
        new.setOptions(settings["options"])
        config.addIPSet(name, new)

    def reload(self):
        self.client.reload()

    def add(self, permanent, missing):
        if permanent:
            for service in missing["services"]:
                self._settings.addService(service)
            for port, protocol in missing["ports"]:
                self._settings.addPort(port, protocol)
            for rule in missing["rich_rules"]:
                self._settings.addRichRule(rule)
            for source in missing.get("sources", []):
                self._settings.addSource(source)
            self._config.update(self._settings)
            return
        for service in missing["services"]:
            self.client.addService(self.zone, service, 0)
        for port, protocol in missing["ports"]:
            self.client.addPort(self.zone, port, protocol, 0)
        for rule in missing["rich_rules"]:
            self.client.addRichRule(self.zone, rule, 0)
        for source in missing.get("sources", []):
            self.client.addSource(self.zone, source)


def main():
    module = AnsibleModule(
        argument_spec={
            "zone": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "str", "default": []},
            "ports": {"type": "list", "elements": "str", "default": []},
            "rich_rules": {"type": "list", "elements": "str", "default": []},
            "sources": {"type": "list", "elements": "str", "default": []},
            "ipsets": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "type": {"type": "str", "default": "hash:ip"},
                    "options": {"type": "dict", "default": {}},
                },
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        ports = parse_ports(params["ports"])
        backend = FirewalldBackend(params["zone"])
        ipsets_created, ipset_diff = ensure_ipsets(backend, params["ipsets"], module.check_mode)
        added, diff = apply(
            backend, params["services"], ports, params["rich_rules"], module.check_mode, sources=params["sources"]
        )
    except ImportError as exc:
        module.fail_json(msg=f"firewalld's Python bindings are missing on the managed node: {exc}")
    except FirewalldRulesError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # D-Bus errors from firewalld, e.g. INVALID_SERVICE for a mistyped service name
        module.fail_json(msg=f"firewalld refused the change in zone {params['zone']}: {exc}")
    changed = bool(ipsets_created) or any(any(section.values()) for section in added.values())
    result = {"changed": changed, "added": added, "ipsets_created": ipsets_created}
    if module._diff:
        result["diff"] = ipset_diff + diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
