# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What voiceops.webrtc_pbx.firewalld_rules adds to a zone, apart from firewalld itself.

The backend (the module's FirewalldBackend, or a fake in the unit tests) has:

- ``current(permanent)`` -> ``{"services": [...], "ports": [(port, protocol)], "rich_rules": [...],
  "sources": [...]}``
- ``add(permanent, missing)`` with a dict of the same shape
- ``normalise_rich_rule(rule)`` -> firewalld's canonical form of a rich rule
- ``ipset(name)`` -> ``None`` or ``{"type": ..., "options": {...}}`` of a permanent ipset
- ``set_ipset(name, settings, replace)`` creates it (replacing the one there), ``reload()`` reloads firewalld
"""

from __future__ import annotations

import re

SECTIONS = ("services", "ports", "rich_rules", "sources")
PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/(tcp|udp|sctp|dccp)$")


class FirewalldRulesError(Exception):
    """Bad input or a firewalld that cannot be used; the message names what."""


def parse_ports(ports):
    """'5060/udp' and '10000-20000/udp' as (port, protocol) tuples, in order, without repeats."""
    parsed = []
    for item in ports:
        match = PORT_RE.match(str(item).strip())
        if not match:
            raise FirewalldRulesError(f"ports: {item!r} is not PORT/PROTOCOL or FIRST-LAST/PROTOCOL")
        first, last, protocol = match.groups()
        if not 1 <= int(first) <= 65535 or (last is not None and not int(first) <= int(last) <= 65535):
            raise FirewalldRulesError(f"ports: {item!r} is out of range")
        # firewalld's own spelling: no leading zeros, "N-N" is "N".
        first, last = int(first), int(last if last is not None else first)
        port = (f"{first}-{last}" if last != first else str(first), protocol)
        if port not in parsed:
            parsed.append(port)
    return parsed


def _port_range(port):
    first, _, last = str(port).partition("-")
    return int(first), int(last or first)


def _covered(port, ports):
    """Whether a (port, protocol) lies inside one of ``ports``.

    The running firewall merges adjacent and overlapping ranges (5060 and 5061 become 5060-5061) and
    refuses to add a port inside a range it has (ALREADY_ENABLED), so a port counts as present when covered.
    """
    low, high = _port_range(port[0])
    for have, protocol in ports:
        first, last = _port_range(have)
        if protocol == port[1] and first <= low and high <= last:
            return True
    return False


def missing_entries(current, services, ports, rich_rules, sources=()):
    """What of the wanted services, ports, (normalised) rich rules and sources the current view lacks."""
    have_ports = [tuple(port) for port in current["ports"]]
    missing_ports = []
    for port in ports:
        if not _covered(port, have_ports + missing_ports):
            missing_ports.append(port)
    have_rules = set(current["rich_rules"])
    return {
        "services": [service for service in dict.fromkeys(services) if service not in current["services"]],
        "ports": missing_ports,
        "rich_rules": [rule for rule in dict.fromkeys(rich_rules) if rule not in have_rules],
        "sources": [source for source in dict.fromkeys(sources) if source not in current.get("sources", [])],
    }


def readable(section):
    return {
        "services": list(section["services"]),
        "ports": [f"{port}/{protocol}" for port, protocol in section["ports"]],
        "rich_rules": list(section["rich_rules"]),
        "sources": list(section.get("sources", [])),
    }


def ensure_ipsets(backend, ipsets, check_mode):
    """Create each permanent ipset that is missing or has another type or options, then reload firewalld.

    firewalld creates ipsets only in its permanent configuration: the running firewall knows a new one after a
    reload, which happens only when an ipset was created (a re-run never reloads). Entries are not managed (a
    guard adds them at runtime). Returns (names created, diff).
    """
    created = []
    diff = []
    for ipset in ipsets:
        want = {"type": ipset["type"], "options": {key: str(value) for key, value in ipset["options"].items()}}
        have = backend.ipset(ipset["name"])
        if have == want:
            continue
        created.append(ipset["name"])
        diff.append(
            {
                "before_header": f"ipset {ipset['name']} (permanent)",
                "after_header": f"ipset {ipset['name']} (permanent)",
                "before": have if have is not None else "absent",
                "after": want,
            }
        )
        if not check_mode:
            backend.set_ipset(ipset["name"], want, replace=have is not None)
    if created and not check_mode:
        backend.reload()
    return created, diff


def apply(backend, services, ports, rich_rules, check_mode, sources=()):
    """Add what is missing, permanent first; returns (added, diff) with both views."""
    rules = [backend.normalise_rich_rule(rule) for rule in rich_rules]
    # The running firewall keeps rules in its own normalised form as well.
    added = {}
    diff = []
    for permanent in (True, False):
        label = "permanent" if permanent else "runtime"
        current = backend.current(permanent)
        current = dict(current, rich_rules=[backend.normalise_rich_rule(rule) for rule in current["rich_rules"]])
        missing = missing_entries(current, services, ports, rules, sources)
        if any(missing.values()) and not check_mode:
            backend.add(permanent, missing)
        added[label] = readable(missing)
        if any(missing.values()):
            after = {key: list(current.get(key, [])) + list(missing[key]) for key in SECTIONS}
            diff.append(
                {
                    "before_header": f"zone {backend.zone} ({label})",
                    "after_header": f"zone {backend.zone} ({label})",
                    "before": readable(current),
                    "after": readable(after),
                }
            )
    return added, diff
