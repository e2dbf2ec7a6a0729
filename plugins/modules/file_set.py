#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_set
short_description: Put a set of directories and files in place in one module call
version_added: 0.2.0
description:
  - Creates directories and writes files, each with its owner, group and mode, in one run on the managed node,
    instead of one M(ansible.builtin.file), M(ansible.builtin.template) or M(ansible.builtin.copy) call per path
    (two module runs per path for template and copy). A role's whole configuration costs one module run on a
    re-run, which is what makes the collection's idempotent re-run fast (issue 8).
  - The action plugin of the same name renders O(files[].template) with the task's variables on the controller,
    like M(ansible.builtin.template) (role C(templates/) lookup, C(trim_blocks)), reads O(files[].src) from the
    role's C(files/), and sends the results to this module.
  - A file is written (atomically, through a temporary file in its directory) only when its content differs;
    owner, group and mode are then set where they differ. Directories are handled first, in the given order.
  - Reports one diff per changed path. The content of a file marked O(files[].secret) never appears in the
    result, nor does any binary or large file's.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  directories:
    description:
      - Directories to create (with parents) and to give the owner, group and mode.
      - A string is a path with the task-level O(owner), O(group) and O(directory_mode).
    type: list
    elements: raw
    default: []
  files:
    description:
      - Files to write. Each item has O(files[].dest) and exactly one of O(files[].template), O(files[].src) or
        O(files[].content).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path of the file on the managed node. Its directory must exist or be in O(directories).
        type: path
        required: true
      template:
        description:
          - Template to render on the controller (action plugin only), looked up like M(ansible.builtin.template)'s
            C(src).
        type: str
      src:
        description:
          - File to copy from the controller (action plugin only), looked up like M(ansible.builtin.copy)'s C(src).
        type: str
      content:
        description: Literal content of the file.
        type: str
      remote_src:
        description:
          - Path of a file on the managed node to copy (for example a certificate another role or tool put there).
        type: path
      owner:
        description: Owner (name or uid). Defaults to O(owner).
        type: str
      group:
        description: Group (name or gid). Defaults to O(group).
        type: str
      mode:
        description: Mode as an octal string. Defaults to O(mode).
        type: raw
      validate:
        description:
          - Command that checks the new content before it replaces the file, with C(%s) standing for a temporary
            copy, like M(ansible.builtin.template)'s C(validate). Not run in check mode.
        type: str
      secret:
        description: Keep the content out of the result and the diff (passwords, keys).
        type: bool
        default: false
  absent:
    description:
      - Paths to remove when they exist (files, links, or directories with their content), after the files are
        written.
    type: list
    elements: path
    default: []
  purge:
    description:
      - Directories whose content is this task's alone. After the files are written, every file, link or directory
        below them (at any depth) that is not in O(directories) or O(files) (nor a directory leading to one of them)
        is removed, like a role's class or prompt that is no longer configured. Reported in RV(removed).
      - The directories themselves are kept.
    type: list
    elements: path
    default: []
    version_added: 0.3.0
  owner:
    description: Default owner of files and directories.
    type: str
  group:
    description: Default group of files and directories.
    type: str
  mode:
    description: Default mode of files.
    type: raw
  directory_mode:
    description: Default mode of directories.
    type: raw
notes:
  - The module itself receives each file's content base64-encoded in C(content_b64) (or O(files[].remote_src));
    use it through the action plugin (the task name C(voiceops.webrtc_pbx.file_set)).
"""

EXAMPLES = r"""
- name: Render Asterisk configuration
  voiceops.webrtc_pbx.file_set:
    owner: "1000"
    group: "1000"
    mode: "0640"
    directory_mode: "0750"
    directories:
      - /opt/asterisk/etc
    files:
      - dest: /opt/asterisk/etc/pjsip.conf
        template: etc/asterisk/pjsip.conf.j2
        secret: true
      - dest: /opt/asterisk/etc/extensions.conf
        template: etc/asterisk/extensions.conf.j2
      - dest: /opt/asterisk/etc/README
        content: "Managed by Ansible\n"
        mode: "0644"
  notify: Reload asterisk
"""

RETURN = r"""
changed_files:
  description: Files whose content, owner, group or mode changed (or would change in check mode).
  type: list
  elements: str
  returned: always
changed_directories:
  description: Directories created or whose owner, group or mode changed (or would change).
  type: list
  elements: str
  returned: always
removed:
  description:
    - Paths of O(absent) that existed, and unmanaged paths below O(purge), that were removed (or would be in check
      mode).
  type: list
  elements: str
  returned: always
"""

import base64
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

# Larger or binary files are reported as changed without their text in the diff.
DIFF_LIMIT = 64 * 1024
HIDDEN = "(content hidden: secret, {size} bytes)"
HIDDEN_CHANGED = "(content hidden: secret, changed, {size} bytes)"


def file_args(path, owner, group, mode):
    return {
        "path": path,
        "owner": owner,
        "group": group,
        "mode": mode,
        "secontext": [None, None, None],
        "attributes": None,
    }


def text_for_diff(data, secret, after=False):
    """The diff text of a file's bytes, or a note when it must not or cannot be shown.

    A secret file's two sides differ (the after side says changed), so the diff shows that it changed.
    """
    if secret:
        return (HIDDEN_CHANGED if after else HIDDEN).format(size=len(data)) + "\n"
    if len(data) > DIFF_LIMIT:
        return f"({len(data)} bytes, not shown)\n"
    if b"\x00" in data:  # valid UTF-8 can still be binary (silence in a sound file), as for ansible.builtin.copy
        return f"(binary, {len(data)} bytes)\n"
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(data)} bytes)\n"


def ensure_directory(module, item, defaults):
    path = item["path"]
    changed = False
    diff = {"before": {"path": path}, "after": {"path": path}}
    if not os.path.isdir(path):
        if os.path.lexists(path):
            module.fail_json(msg=f"{path} exists and is not a directory")
        diff["before"]["state"] = "absent"
        diff["after"]["state"] = "directory"
        changed = True
        if not module.check_mode:
            os.makedirs(path)
        else:
            return changed, diff
    args = file_args(
        path,
        item.get("owner", defaults["owner"]),
        item.get("group", defaults["group"]),
        item.get("mode", defaults["directory_mode"]),
    )
    changed = module.set_fs_attributes_if_different(args, changed, diff=diff)
    return changed, diff


def read_bytes(module, path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc}")
        return None


def write_file(module, dest, data, validate=None):
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        module.fail_json(msg=f"the directory of {dest} does not exist; add it to directories")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if validate:
            if "%s" not in validate:
                module.fail_json(msg=f"validate for {dest} must contain %s")
            rc, out, err = module.run_command(validate % tmp)
            if rc != 0:
                module.fail_json(msg=f"{dest}: the new content failed validation ({validate})", stdout=out, stderr=err)
        module.atomic_move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_file(module, item, defaults):
    dest = item["dest"]
    secret = bool(item.get("secret"))
    if item.get("remote_src"):
        data = read_bytes(module, item["remote_src"])
        if data is None:
            module.fail_json(msg=f"remote_src {item['remote_src']} for {dest} does not exist on the managed node")
    else:
        data = base64.b64decode(item.get("content_b64") or "")
    if os.path.isdir(dest):
        module.fail_json(msg=f"{dest} is a directory, not a file")
    before = read_bytes(module, dest)
    changed = before != data
    diffs = []
    if changed:
        diffs.append(
            {
                "before_header": dest if before is not None else f"{dest} (absent)",
                "after_header": dest,
                "before": "" if before is None else text_for_diff(before, secret),
                "after": text_for_diff(data, secret, after=True),
            }
        )
        if module.check_mode:
            if before is None:
                return True, diffs
        else:
            write_file(module, dest, data, item.get("validate"))
    attrs = {"before": {"path": dest}, "after": {"path": dest}}
    args = file_args(
        dest,
        item.get("owner", defaults["owner"]),
        item.get("group", defaults["group"]),
        item.get("mode", defaults["mode"]),
    )
    if module.set_fs_attributes_if_different(args, False, diff=attrs):
        changed = True
        diffs.append(attrs)
    return changed, diffs


def remove_path(module, path):
    """Remove a file, link or directory tree; True when something was there."""
    if not os.path.lexists(path):
        return False
    if not module.check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def unmanaged_paths(roots, managed):
    """Paths below roots that are neither managed nor a directory leading to a managed path (sorted)."""
    keep = set()
    for path in managed:
        path = os.path.normpath(path)
        while path not in keep and path != os.path.dirname(path):
            keep.add(path)
            path = os.path.dirname(path)
    found = []
    for root in roots:
        root = os.path.normpath(root)
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        for top, dirs, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(top, name)
                if path not in keep:
                    found.append(path)
            for name in sorted(dirs):
                path = os.path.join(top, name)
                if path not in keep or os.path.islink(path):
                    found.append(path)
            # Do not descend into what goes (os.walk does not follow links to directories).
            dirs[:] = [name for name in dirs if os.path.join(top, name) in keep]
    return sorted(found)


def normalise_directory(item, index, module):
    if isinstance(item, str):
        return {"path": item}
    if isinstance(item, dict) and item.get("path"):
        return {key: value for key, value in item.items() if value is not None}
    module.fail_json(msg=f"directories[{index}] must be a path or a dict with path")
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "raw", "default": []},
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "required_one_of": [["content_b64", "remote_src"]],
                "mutually_exclusive": [["content_b64", "remote_src"]],
                "options": {
                    "dest": {"type": "path", "required": True},
                    "content_b64": {"type": "str"},
                    "remote_src": {"type": "path"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "mode": {"type": "raw"},
                    "validate": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                },
            },
            "absent": {"type": "list", "elements": "path", "default": []},
            "purge": {"type": "list", "elements": "path", "default": []},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "directory_mode": {"type": "raw"},
        },
        supports_check_mode=True,
    )
    defaults = {key: module.params[key] for key in ("owner", "group", "mode", "directory_mode")}
    changed_directories = []
    changed_files = []
    diffs = []
    managed = [item["dest"] for item in module.params["files"]]
    for index, raw in enumerate(module.params["directories"]):
        item = normalise_directory(raw, index, module)
        managed.append(item["path"])
        changed, diff = ensure_directory(module, item, defaults)
        if changed:
            changed_directories.append(item["path"])
            diffs.append(diff)
    for item in module.params["files"]:
        item = {key: value for key, value in item.items() if value is not None}
        changed, file_diffs = ensure_file(module, item, defaults)
        if changed:
            changed_files.append(item["dest"])
            diffs.extend(file_diffs)
    removed = []
    stale = unmanaged_paths(module.params["purge"], managed) if module.params["purge"] else []
    for path in module.params["absent"] + stale:
        if remove_path(module, path):
            removed.append(path)
            diffs.append({"before": {"path": path, "state": "present"}, "after": {"path": path, "state": "absent"}})
    result = {
        "changed": bool(changed_files or changed_directories or removed),
        "changed_files": changed_files,
        "changed_directories": changed_directories,
        "removed": removed,
    }
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
