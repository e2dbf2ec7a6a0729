"""Filters for the voiceops.webrtc_pbx agent list.

``agent_ranges`` expands ``asterisk_agent_ranges`` (blocks of extensions such
as 20000-24999 for a contact centre floor) into the same dicts as
``asterisk_agents``. Each range agent's SIP password is derived from one vault
secret, ``asterisk_agent_range_secret``:

    password(ext) = sha256("<secret>:<ext>") as hex, first 24 characters

so an inventory with thousands of agents holds one secret, and a provisioning
system (or a load client) derives the same password.
"""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: agent_ranges
short_description: Expand agent ranges into agent dicts with derived passwords
description:
  - Turns a list of C({first, count, ...}) ranges into C({extension, name, password, ...}) dicts.
  - The password of extension N is the first 24 hex characters of sha256("<secret>:<N>").
options:
  _input:
    description: List of ranges, each with C(first) (digits), C(count) and optional C(name_prefix),
      C(outbound_class), C(call_limit), C(codecs).
    type: list
    elements: dict
    required: true
  secret:
    description: The range secret (vault). Without it, passwords are left out (extensions only).
    type: str
    default: ""
"""

RANGE_KEYS = {"first", "count", "name_prefix", "outbound_class", "call_limit", "codecs"}
CARRIED = ("outbound_class", "call_limit", "codecs")
MAX_COUNT = 20000


def derive_password(secret: str, extension: str) -> str:
    """The SIP password of a range agent (first 24 hex characters of sha256)."""
    return hashlib.sha256(f"{secret}:{extension}".encode()).hexdigest()[:24]


def agent_ranges(ranges, secret=""):
    if ranges in (None, ""):
        return []
    if not isinstance(ranges, (list, tuple)):
        raise AnsibleFilterError("asterisk_agent_ranges must be a list of {first, count} ranges")
    agents = []
    for index, rng in enumerate(ranges):
        where = f"asterisk_agent_ranges[{index}]"
        if not isinstance(rng, dict):
            raise AnsibleFilterError(f"{where} must be a dict with first and count")
        unknown = sorted(set(rng) - RANGE_KEYS)
        if unknown:
            raise AnsibleFilterError(f"{where} has unknown key(s): {', '.join(unknown)}")
        first = str(rng.get("first", ""))
        if not first.isdigit() or first.startswith("0") or not 2 <= len(first) <= 8:
            raise AnsibleFilterError(
                f"{where}.first must be an extension of 2-8 digits not starting with 0 (got {first!r})"
            )
        try:
            count = int(rng.get("count", 0))
        except (TypeError, ValueError):
            count = 0
        if not 1 <= count <= MAX_COUNT:
            raise AnsibleFilterError(f"{where}.count must be 1-{MAX_COUNT} (got {rng.get('count')!r})")
        last = int(first) + count - 1
        if len(str(last)) != len(first):
            raise AnsibleFilterError(f"{where}: {first} + {count} agents runs past {len(first)} digits (last {last})")
        prefix = rng.get("name_prefix", "Agent")
        for number in range(int(first), last + 1):
            ext = str(number)
            agent = {"extension": ext, "name": f"{prefix} {ext}", "range": index}
            if secret:
                agent["password"] = derive_password(str(secret), ext)
            for key in CARRIED:
                if key in rng:
                    agent[key] = rng[key]
            agents.append(agent)
    return agents


def agent_extensions(agents, ranges=None):
    """The extensions (strings) of the listed agents and of the ranges, in order.

    What `agents + ranges | agent_ranges | map(attribute='extension') | map('string') | list` gives, computed
    in Python: with thousands of range agents that Jinja chain is what made the validation slow (issue 8).
    Agents without an extension are left out (the asterisk role's validation reports them).
    """
    if agents in (None, ""):
        agents = []
    if not isinstance(agents, (list, tuple)):
        raise AnsibleFilterError("asterisk_agents must be a list of {extension, password} agents")
    listed = [str(agent["extension"]) for agent in agents if isinstance(agent, dict) and "extension" in agent]
    return listed + [agent["extension"] for agent in agent_ranges(ranges)]


class FilterModule:
    def filters(self):
        return {"agent_ranges": agent_ranges, "agent_extensions": agent_extensions}
