# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/action/file_set.py: validation, rendering/reading on the controller, one module call."""

from __future__ import annotations

import base64
import json
import os
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.voiceops.webrtc_pbx.plugins.action.file_set import ActionModule

SECRET = "ami-secret-Zr81kq"


def decode(entry):
    return base64.b64decode(entry["content_b64"])


class Harness:
    """An ActionModule with a real DataLoader and Templar; the role lives in tmp_path/role."""

    def __init__(self, tmp_path, args, module_result=None):
        self.role = tmp_path / "role"
        loader = DataLoader()
        task = mock.MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = False
        task.action = "voiceops.webrtc_pbx.file_set"
        connection = mock.MagicMock()
        connection._shell.tmpdir = "/remote/tmp"
        self.action = ActionModule(
            task=task,
            connection=connection,
            play_context=mock.MagicMock(),
            loader=loader,
            templar=Templar(loader=loader),
            shared_loader_obj=mock.MagicMock(),
        )
        if module_result is None:
            module_result = {"changed": True, "changed_files": [], "changed_directories": []}
        self.execute = mock.MagicMock(return_value=dict(module_result))
        self.action._execute_module = self.execute
        self.action._find_needle = self.find_needle

    def find_needle(self, dirname, needle):
        path = self.role / dirname / needle
        if not path.exists():
            raise AnsibleError(f"Could not find or access '{needle}'")
        return str(path)

    def add(self, dirname, name, data):
        path = self.role / dirname / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    def run(self, task_vars=None):
        return self.action.run(task_vars=task_vars or {})

    @property
    def module_args(self):
        assert self.execute.call_count == 1
        return self.execute.call_args.kwargs["module_args"]


# Validation


@pytest.mark.parametrize(
    "args, message",
    [
        ({"files": [], "bogus": 1, "state": "x"}, "file_set: unsupported options bogus, state"),
        ({"files": "a"}, "file_set: files must be a list"),
        ({"files": [{"dest": "/etc/a", "content": "a"}, {"content": "b"}]}, "file_set: files[1] needs dest"),
        ({"files": ["/etc/a"]}, "file_set: files[0] needs dest"),
        (
            {"files": [{"dest": "/etc/a", "content": "a", "force": True, "backup": True}]},
            "file_set: files[0] (/etc/a): unsupported keys backup, force",
        ),
        (
            {"files": [{"dest": "/etc/a", "content": "a"}, {"dest": "/etc/b", "mode": "0640"}]},
            "file_set: files[1] (/etc/b) needs exactly one of template, src, content, remote_src",
        ),
        (
            {"files": [{"dest": "/etc/a", "content": "a", "template": "a.j2"}]},
            "file_set: files[0] (/etc/a) needs exactly one of template, src, content, remote_src",
        ),
        ({"directories": "/etc/a"}, "file_set: directories must be a list"),
    ],
)
def test_validate_errors(tmp_path, args, message):
    harness = Harness(tmp_path, args)
    with pytest.raises(AnsibleActionFail) as excinfo:
        harness.action._validate(args)
    assert excinfo.value.message == message


def test_validate_returns_files_and_accepts_empty_content(tmp_path):
    files = [{"dest": "/etc/empty", "content": ""}, {"dest": "/etc/b", "src": "b", "content": None}]
    harness = Harness(tmp_path, {})
    assert harness.action._validate({"files": files, "owner": 1000}) == files
    assert harness.action._validate({}) == []


def test_run_fails_validation_before_any_module_call(tmp_path):
    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a"}]})
    with pytest.raises(AnsibleActionFail, match=r"files\[0\] \(/etc/a\) needs exactly one"):
        harness.run()
    harness.execute.assert_not_called()


# The module call


def test_content_items_and_task_options(tmp_path):
    args = {
        "owner": 1000,
        "group": 1001,
        "mode": "0640",
        "directory_mode": "0750",
        "directories": ["/opt/a", {"path": "/opt/a/b", "mode": "0700"}],
        "files": [
            {"dest": "/opt/a/x.conf", "content": "x=1\nnom=café\n", "owner": 0, "group": 5, "mode": "0600"},
            {"dest": "/opt/a/empty", "content": "", "secret": False, "mode": None},
        ],
    }
    harness = Harness(tmp_path, args)
    task_vars = {"inventory_hostname": "pbx1"}
    harness.run(task_vars)
    call = harness.execute.call_args.kwargs
    assert call["module_name"] == "voiceops.webrtc_pbx.file_set"
    assert call["task_vars"] is task_vars
    module_args = harness.module_args
    assert module_args == {
        "owner": "1000",
        "group": "1001",
        "mode": "0640",
        "directory_mode": "0750",
        "directories": ["/opt/a", {"path": "/opt/a/b", "mode": "0700"}],
        "files": [
            {
                "dest": "/opt/a/x.conf",
                "owner": "0",
                "group": "5",
                "mode": "0600",
                "content_b64": base64.b64encode("x=1\nnom=café\n".encode()).decode(),
            },
            {"dest": "/opt/a/empty", "secret": False, "content_b64": ""},
        ],
    }
    # The task's own args are not changed.
    assert args["owner"] == 1000
    assert "content_b64" not in args["files"][0]


def test_no_files(tmp_path):
    harness = Harness(tmp_path, {"directories": ["/opt/a"]})
    harness.run()
    assert harness.module_args == {"directories": ["/opt/a"], "files": []}


def test_result_without_invocation(tmp_path):
    content = f"secret={SECRET}\n"
    args = {"files": [{"dest": "/etc/manager.conf", "content": content, "secret": True}]}
    module_result = {
        "changed": True,
        "changed_files": ["/etc/manager.conf"],
        "changed_directories": [],
        "invocation": {"module_args": {"files": [{"content_b64": base64.b64encode(content.encode()).decode()}]}},
    }
    harness = Harness(tmp_path, args, module_result=module_result)
    result = harness.run()
    assert "invocation" not in result
    assert result["changed"] is True
    assert result["changed_files"] == ["/etc/manager.conf"]
    dumped = json.dumps(result)
    assert SECRET not in dumped
    assert base64.b64encode(content.encode()).decode() not in dumped
    assert harness.module_args["files"][0]["secret"] is True


def test_src_bytes_unchanged(tmp_path):
    data = bytes(range(256)) + b"\r\n\x00RIFF"
    harness = Harness(tmp_path, {"files": [{"dest": "/var/lib/moh/a.wav", "src": "moh/a.wav"}]})
    harness.add("files", "moh/a.wav", data)
    harness.run()
    (entry,) = harness.module_args["files"]
    assert entry["dest"] == "/var/lib/moh/a.wav"
    assert decode(entry) == data


def test_missing_src(tmp_path):
    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a", "src": "nope.wav"}]})
    with pytest.raises(AnsibleActionFail, match="nope.wav"):
        harness.run()
    harness.execute.assert_not_called()


def test_template_rendered_with_task_vars(tmp_path):
    harness = Harness(
        tmp_path,
        {
            "files": [
                {"dest": "/etc/asterisk/pjsip.conf", "template": "etc/asterisk/pjsip.conf.j2", "secret": True},
                {"dest": "/etc/asterisk/plain.conf", "content": "{{ not_rendered }}\n"},
            ]
        },
    )
    harness.add(
        "templates",
        "etc/asterisk/pjsip.conf.j2",
        "; {{ template_destpath }}\n"
        "{% for endpoint in endpoints %}\n"
        "[{{ endpoint }}]\n"
        "{% endfor %}\n"
        "password={{ password }}\n"
        '{% include "common.j2" %}\n',
    )
    # Includes are found next to the template (the search path of ansible.builtin.template).
    harness.add("templates", "etc/asterisk/common.j2", "host={{ inventory_hostname | upper }}\n")
    harness.run({"endpoints": ["100", "101"], "password": SECRET, "inventory_hostname": "pbx1"})
    rendered, plain = harness.module_args["files"]
    # trim_blocks: no blank lines from the block tags, as with ansible.builtin.template.
    assert decode(rendered).decode() == f"; /etc/asterisk/pjsip.conf\n[100]\n[101]\npassword={SECRET}\nhost=PBX1\n"
    assert rendered["secret"] is True
    # Literal content is not templated by the action.
    assert decode(plain) == b"{{ not_rendered }}\n"


def test_template_ansible_managed(tmp_path):
    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a", "template": "a.j2"}]})
    harness.add("templates", "a.j2", "; {{ ansible_managed }}\n")
    harness.run({})
    assert decode(harness.module_args["files"][0]).startswith(b"; Ansible managed")

    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a", "template": "a.j2"}]})
    harness.run({"ansible_managed": "by voiceops"})
    assert decode(harness.module_args["files"][0]) == b"; by voiceops\n"


def test_template_undefined_variable_fails(tmp_path):
    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a", "template": "a.j2"}]})
    harness.add("templates", "a.j2", "x={{ not_defined_anywhere }}\n")
    with pytest.raises(AnsibleError, match="not_defined_anywhere"):
        harness.run({})
    harness.execute.assert_not_called()


def test_missing_template(tmp_path):
    harness = Harness(tmp_path, {"files": [{"dest": "/etc/a", "template": "missing.j2"}]})
    with pytest.raises(AnsibleActionFail, match="missing.j2"):
        harness.run({})


def test_search_path_not_mutated(tmp_path):
    harness = Harness(
        tmp_path, {"files": [{"dest": "/etc/a", "template": "a.j2"}, {"dest": "/etc/b", "template": "a.j2"}]}
    )
    harness.add("templates", "a.j2", "a\n")
    search_path = [str(tmp_path / "role"), os.path.dirname(str(tmp_path))]
    harness.run({"ansible_search_path": search_path})
    assert search_path == [str(tmp_path / "role"), os.path.dirname(str(tmp_path))]
    assert [decode(entry) for entry in harness.module_args["files"]] == [b"a\n", b"a\n"]
