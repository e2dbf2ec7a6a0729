# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure functions that turn AMI PJSIP listings into endpoint state.

Input is what one ``PJSIPShowEndpoints`` (``EndpointList`` events) and one
``PJSIPShowContacts`` (``ContactList`` events) return: mappings of AMI
``Key: Value`` fields.  Nothing here does I/O.

Only a fixed set of fields is copied into the results.  In particular the
authentication objects (``Auths``/``OutboundAuths``, and ``AuthDetail`` from
``PJSIPShowEndpoint``) are never part of the output.
"""

from __future__ import annotations

import re

from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.ami import AMIActionError, AMIAuthError

#: Device states that mean "not online" when no contact says otherwise.
OFFLINE_DEVICE_STATES = frozenset(("unavailable", "invalid", "unknown"))
#: Contact statuses that make an endpoint online.
ONLINE_CONTACT_STATUSES = frozenset(("reachable", "nonqualified"))
#: Contact statuses that do not count as a registration.
GONE_CONTACT_STATUSES = frozenset(("removed",))

WAIT_CONDITIONS = ("none", "online", "reachable", "registered")

_CONTACT_ID = re.compile(r"^(.*?)(?:;@|@@)")
_EMPTY_LISTING = re.compile(r"^\s*no\s+\w+\s+found", re.IGNORECASE)


def field(event, key, default=None):
    """Case-insensitive field lookup on a mapping of AMI fields.

    A key that was repeated in the message (joined with newlines by the AMI
    parser) yields its first non-empty value.
    """
    value = default
    if key in event:
        value = event[key]
    else:
        lowered = key.lower()
        for existing, candidate in event.items():
            if str(existing).lower() == lowered:
                value = candidate
                break
    if isinstance(value, str) and "\n" in value:
        parts = [part for part in value.split("\n") if part.strip()]
        value = parts[0] if parts else ""
    return value


def is_empty_listing_error(message):
    """True for the errors Asterisk sends instead of an empty list.

    ``PJSIPShowEndpoints`` answers ``Response: Error`` / ``No endpoints found``
    and ``PJSIPShowContacts`` ``No Contacts found`` when there is nothing to
    list.
    """
    return bool(message) and bool(_EMPTY_LISTING.match(str(message)))


def split_list(value):
    """Split an AMI comma-separated value (``"a,b,"``) into a list."""
    if value is None:
        return []
    return [item.strip() for item in str(value).split(",") if item.strip()]


def parse_int(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def count_channels(value):
    """``ActiveChannels``: a number, or a comma-separated list of channel ids."""
    if value is None:
        return 0
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    return len(split_list(text))


def parse_rtt_ms(value):
    """``RoundtripUsec`` (microseconds, or ``N/A``) to milliseconds."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.upper() == "N/A":
        return None
    try:
        usec = float(text)
    except ValueError:
        return None
    if usec < 0:
        return None
    return round(usec / 1000.0, 3)


def contact_aor(event):
    """AOR of a ``ContactList`` event.

    Taken from ``Aor`` when present, else from ``ObjectName``, which is
    ``aor;@hash`` for registered and ``aor@@hash`` for static contacts.
    """
    aor = field(event, "Aor")
    if aor:
        return str(aor)
    name = str(field(event, "ObjectName", "") or "")
    match = _CONTACT_ID.match(name)
    return match.group(1) if match else name


def build_contact(event):
    """Normalise one ``ContactList`` event."""
    return {
        "uri": str(field(event, "Uri", "") or ""),
        "status": str(field(event, "Status", "") or "Unknown"),
        "rtt_ms": parse_rtt_ms(field(event, "RoundtripUsec")),
        "user_agent": str(field(event, "UserAgent", "") or ""),
    }


def contact_is_online(contact):
    return contact["status"].lower() in ONLINE_CONTACT_STATUSES


def contact_is_reachable(contact):
    return contact["status"].lower() == "reachable"


def contact_is_registered(contact):
    return not contact.get("static") and contact["status"].lower() not in GONE_CONTACT_STATUSES


def static_contacts(event, known_uris):
    """Contacts configured on the AOR (``contact=``, e.g. a trunk).

    ``PJSIPShowContacts`` lists only registered contacts, but the endpoint's
    ``Contacts`` field names every contact as ``aor/uri``. A qualified static
    contact has no status of its own in any list action, so it is derived from
    the endpoint's device state, which Asterisk sets to Unavailable when none
    of its contacts answers OPTIONS.
    """
    device_state = str(field(event, "DeviceState", "") or "Unknown").lower()
    status = "Unreachable" if device_state in OFFLINE_DEVICE_STATES else "Reachable"
    found = []
    for item in split_list(str(field(event, "Contacts", "") or "")):
        uri = item.split("/", 1)[1] if "/" in item else item
        if uri and uri not in known_uris:
            found.append({"uri": uri, "status": status, "rtt_ms": None, "user_agent": "", "static": True})
    return found


def build_endpoints(endpoint_events, contact_events=()):
    """Combine ``EndpointList`` and ``ContactList`` events.

    A contact belongs to an endpoint when its ``Endpoint`` field names it or
    when its AOR is one of the endpoint's AORs.  Returns a list of dicts
    sorted by name::

        {name, aor, transport, device_state, active_channels, online,
         registered, reachable, contacts: [{uri, status, rtt_ms, user_agent}]}
    """
    contacts = []
    for event in contact_events:
        contacts.append((str(field(event, "Endpoint", "") or ""), contact_aor(event), build_contact(event)))

    result = {}
    for event in endpoint_events:
        name = str(field(event, "ObjectName", "") or "")
        if not name or name in result:
            continue
        aor_text = str(field(event, "Aor", "") or "")
        aors = set(split_list(aor_text))
        own = []
        seen = set()
        for endpoint_name, aor, contact in contacts:
            if endpoint_name != name and aor not in aors:
                continue
            if contact["uri"] in seen:
                continue
            seen.add(contact["uri"])
            own.append(dict(contact))
        own.extend(static_contacts(event, seen))
        own.sort(key=lambda c: c["uri"])
        device_state = str(field(event, "DeviceState", "") or "Unknown")
        online = device_state.lower() not in OFFLINE_DEVICE_STATES or any(contact_is_online(c) for c in own)
        result[name] = {
            "name": name,
            "aor": aor_text,
            "transport": str(field(event, "Transport", "") or ""),
            "device_state": device_state,
            "active_channels": count_channels(field(event, "ActiveChannels")),
            "online": bool(online),
            "registered": any(contact_is_registered(c) for c in own),
            "reachable": any(contact_is_reachable(c) for c in own),
            "contacts": own,
        }
    return [result[name] for name in sorted(result)]


def select_endpoints(endpoints, names=None):
    """Keep the endpoints named in ``names`` (all when ``names`` is empty).

    Returns ``(selected, missing)`` where ``missing`` lists requested names
    that Asterisk does not know, in the order requested.
    """
    if not names:
        return list(endpoints), []
    wanted = []
    for name in names:
        if name not in wanted:
            wanted.append(name)
    by_name = {ep["name"]: ep for ep in endpoints}
    selected = [by_name[name] for name in sorted(by_name) if name in wanted]
    missing = [name for name in wanted if name not in by_name]
    return selected, missing


def summarize(endpoints):
    contacts = [c for ep in endpoints for c in ep["contacts"]]
    online = sum(1 for ep in endpoints if ep["online"])
    return {
        "total": len(endpoints),
        "online": online,
        "offline": len(endpoints) - online,
        "registered": sum(1 for ep in endpoints if ep["registered"]),
        "contacts_total": len(contacts),
        "contacts_reachable": sum(1 for c in contacts if contact_is_reachable(c)),
    }


def endpoint_satisfies(endpoint, wait_for):
    if wait_for == "online":
        return endpoint["online"]
    if wait_for == "reachable":
        return endpoint["reachable"]
    if wait_for == "registered":
        return endpoint["registered"]
    if wait_for == "none":
        return True
    raise ValueError(f"Unknown wait condition {wait_for!r} (expected one of {', '.join(WAIT_CONDITIONS)})")


def describe_endpoint(endpoint):
    """Short explanation of an endpoint's state, for error messages."""
    contacts = endpoint["contacts"]
    if not contacts:
        contact_text = "no contacts"
    else:
        statuses = {}
        for contact in contacts:
            statuses[contact["status"]] = statuses.get(contact["status"], 0) + 1
        contact_text = "contacts: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    return f"device state {endpoint['device_state']}, {contact_text}"


def evaluate_wait(endpoints, wait_for="online", names=None, min_online=None):
    """Check a wait condition.

    ``endpoints`` is the output of :func:`build_endpoints`.  ``wait_for`` is
    one of ``online``, ``reachable`` (a contact answered qualify OPTIONS),
    ``registered`` (at least one contact) or ``none``.  ``names`` restricts
    the check to those endpoints; a requested name that does not exist fails.

    Without ``min_online`` every selected endpoint must meet the condition
    (and at least one endpoint must exist).  With ``min_online`` at least that
    many selected endpoints must meet it; ``wait_for=none`` then means
    ``online``.

    Returns ``(ok, failing_names, message)``.
    """
    if wait_for in (None, "none"):
        if min_online is None:
            return True, [], "No wait condition"
        wait_for = "online"
    if wait_for not in WAIT_CONDITIONS:
        raise ValueError(f"Unknown wait condition {wait_for!r} (expected one of {', '.join(WAIT_CONDITIONS)})")

    selected, missing = select_endpoints(endpoints, names)
    good = [ep for ep in selected if endpoint_satisfies(ep, wait_for)]
    bad = [ep for ep in selected if not endpoint_satisfies(ep, wait_for)]
    failing = [ep["name"] for ep in bad] + list(missing)
    details = [f"{ep['name']} ({describe_endpoint(ep)})" for ep in bad]
    details += [f"{name} (not found)" for name in missing]
    considered = len(selected) + len(missing)

    if min_online is not None:
        ok = len(good) >= min_online
        message = f"{len(good)} of {considered} endpoint(s) {wait_for}, need at least {min_online}"
    else:
        ok = not failing and considered > 0
        if considered == 0:
            message = "No PJSIP endpoints found"
        else:
            message = f"{len(good)} of {considered} endpoint(s) {wait_for}"
    if details:
        message += f"; not {wait_for}: {'; '.join(details)}"
    return ok, failing, message


def _list_events(client, action, complete_event):
    try:
        _, events = client.action_list(action, complete_event=complete_event)
    except AMIAuthError:
        raise
    except AMIActionError as exc:
        if is_empty_listing_error(exc.message):
            return []
        raise
    return events


def fetch_endpoints(client):
    """One PJSIPShowEndpoints plus one PJSIPShowContacts -> endpoint list."""
    endpoint_events = _list_events(client, "PJSIPShowEndpoints", "EndpointListComplete")
    contact_events = _list_events(client, "PJSIPShowContacts", "ContactListComplete")
    return build_endpoints(endpoint_events, contact_events)
