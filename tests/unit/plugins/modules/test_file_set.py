# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/modules/file_set.py: directories and files with owner/group/mode, check mode, diff, secrets."""

from __future__ import annotations

import base64
import json
import os
import stat

from ansible_collections.voiceops.webrtc_pbx.plugins.modules import file_set
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module

# The current user, so that the tests pass as root and as an ordinary user.
OWNER = str(os.getuid())
GROUP = str(os.getgid())
SECRET = "pjsip-password-Xq7t93"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def run(check_mode=False, diff=False, **args):
    args.setdefault("owner", OWNER)
    args.setdefault("group", GROUP)
    return run_module(file_set.main, args, check_mode=check_mode, diff=diff)


def file_item(dest, content, **extra):
    return dict(extra, dest=str(dest), content_b64=b64(content))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_nested_directories_with_mode(tmp_path):
    top = tmp_path / "etc"
    nested = top / "asterisk" / "keys"
    directories = [{"path": str(top), "mode": "0750"}, {"path": str(nested), "mode": "0700"}]
    failed, result = run(directories=directories)
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_directories"] == [str(top), str(nested)]
    assert result["changed_files"] == []
    assert nested.is_dir()
    assert mode_of(top) == 0o750
    assert mode_of(nested) == 0o700
    assert (os.stat(nested).st_uid, os.stat(nested).st_gid) == (os.getuid(), os.getgid())

    failed, result = run(directories=directories)
    assert not failed, result
    assert result["changed"] is False
    assert result["changed_directories"] == []


def test_directories_as_strings_use_directory_mode(tmp_path):
    paths = [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    failed, result = run(directory_mode="0710", directories=paths)
    assert not failed, result
    assert result["changed_directories"] == paths
    assert [mode_of(path) for path in paths] == [0o710, 0o710]


def test_directory_item_mode_overrides_directory_mode(tmp_path):
    failed, result = run(
        directory_mode="0750", directories=[str(tmp_path / "a"), {"path": str(tmp_path / "b"), "mode": "0700"}]
    )
    assert not failed, result
    assert mode_of(tmp_path / "a") == 0o750
    assert mode_of(tmp_path / "b") == 0o700


def test_existing_directory_mode_change(tmp_path):
    target = tmp_path / "d"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    failed, result = run(diff=True, directory_mode="0750", directories=[str(target)])
    assert not failed, result
    assert result["changed_directories"] == [str(target)]
    assert mode_of(target) == 0o750
    assert result["diff"] == [
        {"before": {"path": str(target), "mode": "0755"}, "after": {"path": str(target), "mode": "0750"}}
    ]


def test_invalid_directory_item(tmp_path):
    failed, result = run(directories=[{"mode": "0750"}])
    assert failed
    assert result["msg"] == "directories[0] must be a path or a dict with path"


def test_directory_path_is_a_file(tmp_path):
    path = tmp_path / "plain"
    path.write_text("x")
    failed, result = run(directories=[str(path)])
    assert failed
    assert result["msg"] == f"{path} exists and is not a directory"


def test_writes_new_file_with_mode_and_is_idempotent(tmp_path):
    dest = tmp_path / "pjsip.conf"
    files = [file_item(dest, "[global]\ntype=global\n", mode="0640")]
    failed, result = run(files=files)
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_files"] == [str(dest)]
    assert dest.read_text() == "[global]\ntype=global\n"
    assert mode_of(dest) == 0o640
    assert (os.stat(dest).st_uid, os.stat(dest).st_gid) == (os.getuid(), os.getgid())
    # No temporary file is left behind in the directory.
    assert sorted(os.listdir(tmp_path)) == ["pjsip.conf"]

    failed, result = run(files=files, diff=True)
    assert not failed, result
    assert result["changed"] is False
    assert result["changed_files"] == []
    assert result["diff"] == []


def test_task_level_mode_is_default_for_files(tmp_path):
    dest = tmp_path / "a.conf"
    other = tmp_path / "b.conf"
    failed, result = run(mode="0600", files=[file_item(dest, "a\n"), file_item(other, "b\n", mode="0644")])
    assert not failed, result
    assert mode_of(dest) == 0o600
    assert mode_of(other) == 0o644


def test_directories_and_files_in_one_call(tmp_path):
    directory = tmp_path / "etc" / "asterisk"
    dest = directory / "extensions.conf"
    failed, result = run(
        directory_mode="0750",
        mode="0640",
        directories=[str(tmp_path / "etc"), str(directory)],
        files=[file_item(dest, "[default]\n")],
    )
    assert not failed, result
    assert result["changed_directories"] == [str(tmp_path / "etc"), str(directory)]
    assert result["changed_files"] == [str(dest)]
    assert dest.read_text() == "[default]\n"


def test_content_change_rewrites_and_diff_shows_before_after(tmp_path):
    dest = tmp_path / "extensions.conf"
    dest.write_text("exten => 100,1,Answer()\n")
    os.chmod(dest, 0o640)
    failed, result = run(diff=True, files=[file_item(dest, "exten => 100,1,Hangup()\n", mode="0640")])
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_files"] == [str(dest)]
    assert dest.read_text() == "exten => 100,1,Hangup()\n"
    assert result["diff"] == [
        {
            "before_header": str(dest),
            "after_header": str(dest),
            "before": "exten => 100,1,Answer()\n",
            "after": "exten => 100,1,Hangup()\n",
        }
    ]


def test_new_file_diff_header_says_absent(tmp_path):
    dest = tmp_path / "new.conf"
    failed, result = run(diff=True, files=[file_item(dest, "x=1\n", mode="0640")])
    assert not failed, result
    assert result["diff"][0] == {
        "before_header": f"{dest} (absent)",
        "after_header": str(dest),
        "before": "",
        "after": "x=1\n",
    }


def test_mode_only_change(tmp_path):
    dest = tmp_path / "rtp.conf"
    dest.write_text("[general]\n")
    os.chmod(dest, 0o644)
    inode = os.stat(dest).st_ino
    failed, result = run(diff=True, files=[file_item(dest, "[general]\n", mode="0640")])
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_files"] == [str(dest)]
    assert mode_of(dest) == 0o640
    assert dest.read_text() == "[general]\n"
    # Not rewritten: the same inode (a rewrite goes through a temporary file and a rename).
    assert os.stat(dest).st_ino == inode
    assert result["diff"] == [
        {"before": {"path": str(dest), "mode": "0644"}, "after": {"path": str(dest), "mode": "0640"}}
    ]


def test_check_mode_creates_and_writes_nothing(tmp_path):
    directory = tmp_path / "new" / "dir"
    inside = directory / "inside.conf"
    existing = tmp_path / "existing.conf"
    existing.write_text("old\n")
    os.chmod(existing, 0o640)
    failed, result = run(
        check_mode=True,
        diff=True,
        directory_mode="0750",
        mode="0640",
        directories=[str(tmp_path / "new"), str(directory)],
        files=[file_item(inside, "fresh\n"), file_item(existing, "new\n")],
    )
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_directories"] == [str(tmp_path / "new"), str(directory)]
    assert result["changed_files"] == [str(inside), str(existing)]
    assert not (tmp_path / "new").exists()
    assert existing.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["existing.conf"]
    assert {"before_header": str(existing), "after_header": str(existing), "before": "old\n", "after": "new\n"} in (
        result["diff"]
    )


def test_check_mode_mode_change_is_reported_not_applied(tmp_path):
    dest = tmp_path / "a.conf"
    dest.write_text("same\n")
    os.chmod(dest, 0o644)
    failed, result = run(check_mode=True, files=[file_item(dest, "same\n", mode="0600")])
    assert not failed, result
    assert result["changed"] is True
    assert result["changed_files"] == [str(dest)]
    assert mode_of(dest) == 0o644


def test_check_mode_unchanged(tmp_path):
    dest = tmp_path / "a.conf"
    dest.write_text("same\n")
    os.chmod(dest, 0o640)
    failed, result = run(check_mode=True, directories=[str(tmp_path)], files=[file_item(dest, "same\n", mode="0640")])
    assert not failed, result
    assert result["changed"] is False


def test_secret_content_never_in_result(tmp_path):
    dest = tmp_path / "pjsip.conf"
    dest.write_text(f"password=old-{SECRET}\n")
    os.chmod(dest, 0o640)
    content = f"password={SECRET}\n"
    failed, result = run(diff=True, files=[file_item(dest, content, mode="0600", secret=True)])
    assert not failed, result
    assert result["changed_files"] == [str(dest)]
    assert dest.read_text() == content
    dumped = json.dumps(result)
    assert SECRET not in dumped
    assert b64(content) not in dumped
    content_diff = result["diff"][0]
    # Both sides hidden, but different, so the diff shows that the secret file changed.
    assert content_diff["before"] == file_set.HIDDEN.format(size=len(f"password=old-{SECRET}\n")) + "\n"
    assert content_diff["after"] == file_set.HIDDEN_CHANGED.format(size=len(content)) + "\n"
    # The mode change is still reported.
    assert result["diff"][1] == {
        "before": {"path": str(dest), "mode": "0640"},
        "after": {"path": str(dest), "mode": "0600"},
    }


def test_secret_new_file_in_check_mode(tmp_path):
    dest = tmp_path / "manager.conf"
    failed, result = run(check_mode=True, diff=True, files=[file_item(dest, f"secret={SECRET}\n", secret=True)])
    assert not failed, result
    assert result["changed_files"] == [str(dest)]
    assert SECRET not in json.dumps(result)
    assert result["diff"][0]["after"] == file_set.HIDDEN_CHANGED.format(size=len(f"secret={SECRET}\n")) + "\n"
    assert not dest.exists()


def test_binary_content_diff_note(tmp_path):
    dest = tmp_path / "hold.wav"
    data = b"RIFF\x24\x00\x00\x00WAVEfmt \xff\xfe\x80\x81"
    failed, result = run(diff=True, files=[file_item(dest, data, mode="0640")])
    assert not failed, result
    assert dest.read_bytes() == data
    assert result["diff"][0]["after"] == f"(binary, {len(data)} bytes)\n"
    assert result["diff"][0]["before"] == ""


def test_nul_bytes_are_binary(tmp_path):
    # Valid UTF-8, but NUL bytes (silence in a sound file) are binary, as for ansible.builtin.copy.
    dest = tmp_path / "silence.sln"
    data = b"\x00" * 32
    failed, result = run(diff=True, files=[file_item(dest, data, mode="0640")])
    assert not failed, result
    assert dest.read_bytes() == data
    assert result["diff"][0]["after"] == "(binary, 32 bytes)\n"


def test_large_content_diff_note(tmp_path):
    dest = tmp_path / "big.txt"
    data = b"a" * (file_set.DIFF_LIMIT + 1)
    failed, result = run(diff=True, files=[file_item(dest, data, mode="0640")])
    assert not failed, result
    assert dest.read_bytes() == data
    assert result["diff"][0]["after"] == f"({len(data)} bytes, not shown)\n"


def test_no_diff_key_without_diff_mode(tmp_path):
    failed, result = run(files=[file_item(tmp_path / "a", "a\n")])
    assert not failed, result
    assert "diff" not in result


def test_dest_is_a_directory(tmp_path):
    dest = tmp_path / "conf.d"
    dest.mkdir()
    failed, result = run(files=[file_item(dest, "x\n")])
    assert failed
    assert result["msg"] == f"{dest} is a directory, not a file"


def test_missing_parent_directory(tmp_path):
    dest = tmp_path / "missing" / "a.conf"
    failed, result = run(files=[file_item(dest, "x\n")])
    assert failed
    assert "directories" in result["msg"]
    assert str(dest) in result["msg"]
    assert not (tmp_path / "missing").exists()


def test_missing_content_b64(tmp_path):
    failed, result = run(files=[{"dest": str(tmp_path / "a")}])
    assert failed
    assert "content_b64" in result["msg"]


def test_remote_src_copies_a_file_of_the_managed_node(tmp_path):
    source = tmp_path / "server.crt"
    source.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    dest = tmp_path / "turn.crt"
    item = {"dest": str(dest), "remote_src": str(source), "mode": "0400", "secret": True}
    failed, result = run(files=[item])
    assert not failed, result
    assert dest.read_bytes() == source.read_bytes()
    assert oct(dest.stat().st_mode & 0o777) == "0o400"
    failed, result = run(files=[item])
    assert not failed and result["changed"] is False


def test_missing_remote_src_fails_naming_it(tmp_path):
    failed, result = run(files=[{"dest": str(tmp_path / "turn.crt"), "remote_src": str(tmp_path / "nope.crt")}])
    assert failed
    assert "nope.crt" in result["msg"] and "does not exist" in result["msg"]


def test_absent_removes_files_and_trees_and_reports_them(tmp_path):
    stale = tmp_path / "recordings-certificate.pem"
    stale.write_text("old\n")
    tree = tmp_path / "old-class"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.wav").write_bytes(b"RIFF")
    gone = tmp_path / "never-there"
    failed, result = run(check_mode=True, absent=[str(stale), str(tree), str(gone)])
    assert not failed, result
    assert result["changed"] is True and result["removed"] == [str(stale), str(tree)]
    assert stale.exists() and tree.exists()
    failed, result = run(absent=[str(stale), str(tree), str(gone)])
    assert result["removed"] == [str(stale), str(tree)]
    assert not stale.exists() and not tree.exists()
    failed, result = run(absent=[str(stale), str(tree), str(gone)])
    assert result["changed"] is False and result["removed"] == []


def test_purge_removes_what_is_no_longer_managed_below_the_directories(tmp_path):
    moh = tmp_path / "moh"
    kept_class = moh / "default"
    kept_class.mkdir(parents=True)
    (kept_class / "hold.wav").write_bytes(b"RIFF-kept")
    (kept_class / "old.wav").write_bytes(b"RIFF-old")
    (moh / "gone-class" / "sub").mkdir(parents=True)
    (moh / "gone-class" / "sub" / "a.wav").write_bytes(b"RIFF")
    (moh / ".hidden").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("not below a purged directory\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("a link's target survives\n")
    (moh / "link").symlink_to(target)
    args = {
        "purge": [str(moh)],
        "directories": [str(moh), str(kept_class), str(moh / "new-class")],
        "files": [{"dest": str(kept_class / "hold.wav"), "content_b64": "UklGRi1rZXB0"}],
    }
    expected = sorted(str(p) for p in (moh / ".hidden", moh / "gone-class", moh / "link", kept_class / "old.wav"))
    failed, result = run(check_mode=True, **args)
    assert not failed, result
    assert result["changed"] is True and result["removed"] == expected
    assert (kept_class / "old.wav").exists() and (moh / "gone-class").exists()
    failed, result = run(**args)
    assert not failed, result
    assert result["removed"] == expected
    assert sorted(p.name for p in moh.iterdir()) == ["default", "new-class"]
    assert [p.name for p in kept_class.iterdir()] == ["hold.wav"]
    assert outside.exists() and (target / "keep.txt").exists()
    failed, result = run(**args)
    assert result["changed"] is False and result["removed"] == []


def test_purge_of_a_missing_directory_changes_nothing(tmp_path):
    failed, result = run(purge=[str(tmp_path / "nowhere")])
    assert not failed, result
    assert result["changed"] is False and result["removed"] == []
