"""Filter for voiceops.webrtc_pbx.file_set: a list of names as file_set items.

``names | voiceops.webrtc_pbx.file_set_templates(src_dir, dest_dir, secret=[...])``
gives ``{template: src_dir/NAME.j2, dest: dest_dir/NAME, secret: NAME in secret}``
for each name, so a role that renders a list of configuration files hands them
to one file_set task; ``paths | voiceops.webrtc_pbx.file_set_copies(dest_dir)``
gives ``{src: PATH, dest: dest_dir/basename(PATH)}`` for files copied as they are.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: file_set_templates
short_description: Turn file names into voiceops.webrtc_pbx.file_set template items
description:
  - "For each name, an item C({template: <src_dir>/<name><suffix>, dest: <dest_dir>/<name>, secret: <name in secret>})."
options:
  _input:
    description: File names (relative, may contain subdirectories).
    type: list
    elements: str
    required: true
  src_dir:
    description: Directory of the templates, as the template lookup sees it (for example C(etc/asterisk)).
    type: str
    required: true
  dest_dir:
    description: Directory on the managed node.
    type: str
    required: true
  secret:
    description: Names whose content holds secrets (kept out of the result and the diff).
    type: list
    elements: str
    default: []
  suffix:
    description: Suffix of the template files.
    type: str
    default: .j2
"""


def file_set_templates(names, src_dir, dest_dir, secret=None, suffix=".j2"):
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise AnsibleFilterError("file_set_templates expects a list of file names")
    secret = set(secret or [])
    src_dir = str(src_dir).rstrip("/")
    dest_dir = str(dest_dir).rstrip("/")
    return [
        {"template": f"{src_dir}/{name}{suffix}", "dest": f"{dest_dir}/{name}", "secret": name in secret}
        for name in names
    ]


def file_set_copies(paths, dest_dir):
    """Controller paths as file_set src items, each to dest_dir/<its basename>."""
    if not isinstance(paths, list) or not all(isinstance(path, str) and path for path in paths):
        raise AnsibleFilterError("file_set_copies expects a list of paths")
    dest_dir = str(dest_dir).rstrip("/")
    return [{"src": path, "dest": f"{dest_dir}/{os.path.basename(path.rstrip('/'))}"} for path in paths]


class FilterModule:
    def filters(self):
        return {"file_set_templates": file_set_templates, "file_set_copies": file_set_copies}
