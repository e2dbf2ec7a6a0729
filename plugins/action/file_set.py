# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of voiceops.webrtc_pbx.file_set: render and read on the controller, one module run on the node.

Templates are rendered the way ansible.builtin.template renders them (role templates/ lookup, the search path
for includes, trim_blocks, the template_* variables); src files are read from the role's files/. Everything goes
to the file_set module in one call, base64-encoded, so a role's configuration costs one module run instead of two
per file.
"""

from __future__ import annotations

import base64
import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

try:  # ansible-core >= 2.19 (data tagging)
    from ansible._internal._templating import _template_vars
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core
    _template_vars = None

    def trust_as_template(value):
        return value


SOURCES = ("template", "src", "content", "remote_src")
FILE_KEYS = set(SOURCES) | {"dest", "owner", "group", "mode", "secret", "validate"}
MODULE_FILE_KEYS = ("dest", "owner", "group", "mode", "secret", "validate")
TASK_KEYS = {"directories", "files", "absent", "purge", "owner", "group", "mode", "directory_mode"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def _validate(self, args):
        unknown = sorted(set(args) - TASK_KEYS)
        if unknown:
            raise AnsibleActionFail("file_set: unsupported options {}".format(", ".join(unknown)))
        files = args.get("files") or []
        if not isinstance(files, list):
            raise AnsibleActionFail("file_set: files must be a list")
        for index, item in enumerate(files):
            if not isinstance(item, dict) or not item.get("dest"):
                raise AnsibleActionFail(f"file_set: files[{index}] needs dest")
            extra = sorted(set(item) - FILE_KEYS)
            if extra:
                raise AnsibleActionFail(
                    f"file_set: files[{index}] ({item['dest']}): unsupported keys {', '.join(extra)}"
                )
            given = [key for key in SOURCES if item.get(key) is not None]
            if len(given) != 1:
                raise AnsibleActionFail(
                    f"file_set: files[{index}] ({item['dest']}) needs exactly one of template, src, content, remote_src"
                )
        if not isinstance(args.get("directories") or [], list):
            raise AnsibleActionFail("file_set: directories must be a list")
        return files

    def _render(self, name, dest, task_vars):
        try:
            source = self._find_needle("templates", name)
        except AnsibleError as exc:
            raise AnsibleActionFail(to_text(exc)) from exc
        data = trust_as_template(self._loader.get_text_file_contents(source))
        searchpath = list(task_vars.get("ansible_search_path", [])) + [self._loader._basedir, os.path.dirname(source)]
        paths = []
        for path in searchpath:
            paths.extend([os.path.join(path, "templates"), path])
        variables = dict(task_vars)
        if _template_vars is not None:
            variables.update(
                _template_vars.generate_ansible_template_vars(
                    path=name,
                    fullpath=source,
                    dest_path=dest,
                    include_ansible_managed="ansible_managed" not in variables,
                )
            )
        templar = self._templar.copy_with_new_env(searchpath=paths, available_variables=variables)
        rendered = templar.template(data, escape_backslashes=False, overrides={"trim_blocks": True})
        return to_bytes(rendered if rendered is not None else "", errors="surrogate_or_strict")

    def _read(self, name):
        try:
            source = self._find_needle("files", name)
        except AnsibleError as exc:
            raise AnsibleActionFail(to_text(exc)) from exc
        with open(to_bytes(source, errors="surrogate_or_strict"), "rb") as handle:
            return handle.read()

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        files = self._validate(args)
        module_files = []
        for item in files:
            if item.get("remote_src") is not None:
                data = None  # read by the module on the managed node
            elif item.get("template") is not None:
                data = self._render(item["template"], item["dest"], task_vars)
            elif item.get("src") is not None:
                data = self._read(item["src"])
            else:
                data = to_bytes(item["content"], errors="surrogate_or_strict")
            entry = {key: item[key] for key in MODULE_FILE_KEYS if item.get(key) is not None}
            for key in ("owner", "group"):
                if key in entry:
                    entry[key] = str(entry[key])
            if data is None:
                entry["remote_src"] = item["remote_src"]
            else:
                entry["content_b64"] = to_text(base64.b64encode(data))
            module_files.append(entry)
        module_args = {
            key: args[key]
            for key in ("directories", "absent", "purge", "owner", "group", "mode", "directory_mode")
            if args.get(key) is not None
        }
        for key in ("owner", "group"):
            if key in module_args:
                module_args[key] = str(module_args[key])
        module_args["files"] = module_files
        result.update(
            self._execute_module(
                module_name="voiceops.webrtc_pbx.file_set",
                module_args=module_args,
                task_vars=task_vars,
            )
        )
        # The invocation would repeat every file's content, secrets included.
        result.pop("invocation", None)
        return result
